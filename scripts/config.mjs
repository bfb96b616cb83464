// Reads wrangler.jsonc, the Worker's configuration, for the scripts and tests that need what it
// says (the test runtimes' copies, the deploy plan, the bench's compatibility date). JSONC is
// JSON with comments and trailing commas; jsonc-parser reads it as wrangler does.

import { readFileSync } from "node:fs";
import { join } from "node:path";
import { parse, printParseErrorCode } from "jsonc-parser";
import { ROOT } from "./setup.mjs";

/** The Worker's configuration file. */
export const WRANGLER_CONFIG = join(ROOT, "wrangler.jsonc");

/** The configuration at `path` as a plain object; throws naming the file and the first problem. */
export function readWranglerConfig(path = WRANGLER_CONFIG) {
  const errors = [];
  const config = parse(readFileSync(path, "utf8"), errors, { allowTrailingComma: true });
  if (errors.length) {
    const [first] = errors;
    throw new Error(`${path} is not valid JSONC: ${printParseErrorCode(first.error)} at offset ${first.offset}`);
  }
  if (config === null || typeof config !== "object" || Array.isArray(config)) throw new Error(`${path} does not hold an object`);
  return config;
}
