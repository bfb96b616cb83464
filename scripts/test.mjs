// npm test: set everything up, then run the native unit tests of the pure core and of
// switchyard-agent (cargo test --workspace) and the integration tests against the real Worker
// in the local runtime (node --test).

import { spawnSync } from "node:child_process";
import { readdirSync } from "node:fs";
import { join } from "node:path";
import { ROOT, setup } from "./setup.mjs";

function step(title, command, args) {
  console.log(`\n=== ${title}: ${command} ${args.join(" ")}`);
  const result = spawnSync(command, args, { cwd: ROOT, stdio: "inherit" });
  if (result.error) throw result.error;
  return result.status === 0;
}

try {
  setup();
} catch (error) {
  console.error(`[setup] ${error.message}`);
  process.exit(1);
}

const nativeOk = step("native unit tests", "cargo", ["test", "--locked", "--workspace"]);

const testFiles = readdirSync(join(ROOT, "tests"))
  .filter((name) => name.endsWith(".test.mjs"))
  .sort()
  .map((name) => join("tests", name));
// One file at a time: each starts its own workerd, and the machines have two cores.
const integrationOk = step("integration tests", process.execPath, ["--test", "--test-concurrency=1", ...testFiles]);

if (!nativeOk || !integrationOk) {
  console.error(`\nFAILED: ${[!nativeOk && "native unit tests", !integrationOk && "integration tests"].filter(Boolean).join(", ")}`);
  process.exit(1);
}
console.log("\nAll tests passed.");
