// npm run symbolize < log.txt: the log with every WebAssembly frame of a stack trace named, from
// the names kept beside the module when it was built (build/index_bg.names.json).

import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { ROOT } from "./setup.mjs";
import { symbolize } from "./wasm-names.mjs";

const NAMES = join(ROOT, "build", "index_bg.names.json");
if (!existsSync(NAMES)) {
  console.error(`[symbolize] ${NAMES} is missing: npm start or npm test builds the Worker and writes it`);
  process.exit(1);
}
const names = JSON.parse(readFileSync(NAMES, "utf8"));
process.stdout.write(symbolize(readFileSync(0, "utf8"), names));
