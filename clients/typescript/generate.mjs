// Writes src/schema.ts from the repository's openapi.json (`npm run generate`). The drift test
// calls `generate` on the document the Worker serves and compares, so both use these options.
import { readFileSync, writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import openapiTS, { astToString, COMMENT_HEADER } from "openapi-typescript";

export const DOCUMENT = fileURLToPath(new URL("../../openapi.json", import.meta.url));
export const SCHEMA = fileURLToPath(new URL("./src/schema.ts", import.meta.url));

/** The TypeScript declarations of an OpenAPI document. */
export async function generate(document) {
  // A default in the document is what the server assumes when a field is left out, so request
  // fields with defaults stay optional.
  const ast = await openapiTS(structuredClone(document), { defaultNonNullable: false });
  return COMMENT_HEADER + astToString(ast);
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  writeFileSync(SCHEMA, await generate(JSON.parse(readFileSync(DOCUMENT, "utf8"))));
  console.log(`wrote ${SCHEMA}`);
}
