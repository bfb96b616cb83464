// npm test: set everything up, then run the native unit tests of the pure core and of
// switchyard-agent (cargo test --workspace), the TypeScript client's type check and Vitest tests
// (its drift test starts the real Worker), the example dashboard's type check, and the
// integration tests against the real Worker in the local runtime (node --test), the dashboard's
// browser tests among them.

import { spawnSync } from "node:child_process";
import { readdirSync } from "node:fs";
import { join } from "node:path";
import { ensureChromium, ROOT, setup } from "./setup.mjs";

function step(title, command, args, cwd = ROOT) {
  console.log(`\n=== ${title}: ${command} ${args.join(" ")}`);
  const result = spawnSync(command, args, { cwd, stdio: "inherit" });
  if (result.error) throw result.error;
  return result.status === 0;
}

try {
  setup();
} catch (error) {
  console.error(`[setup] ${error.message}`);
  process.exit(1);
}

const results = {};
results["native unit tests"] = step("native unit tests", "cargo", ["test", "--locked", "--workspace"]);

const bin = (name) => join(ROOT, "node_modules", ".bin", name);
const client = join(ROOT, "clients", "typescript");
const dashboard = join(ROOT, "examples", "sveltekit");
results["client type check"] = step("client type check", bin("tsc"), ["-p", "."], client);
results["client tests"] = step("client tests", bin("vitest"), ["run"], client);
results["dashboard type check"] =
  step("dashboard sync", bin("svelte-kit"), ["sync"], dashboard) &&
  step("dashboard type check", bin("svelte-check"), ["--tsconfig", "./tsconfig.json", "--fail-on-warnings"], dashboard);

const testFiles = readdirSync(join(ROOT, "tests"))
  .filter((name) => name.endsWith(".test.mjs"))
  .sort()
  .map((name) => join("tests", name));
// Only the browser tests need Chromium, so it is installed now rather than by the set-up that
// `npm start` shares; without it they are skipped with the reason.
const noBrowser = ensureChromium();
if (noBrowser) console.log(`\n[test] the browser tests will be skipped: ${noBrowser}`);
// One file at a time: each starts its own workerd, and the machines have two cores.
results["integration tests"] = step("integration tests", process.execPath, ["--test", "--test-concurrency=1", ...testFiles]);

const failed = Object.entries(results).filter(([, ok]) => !ok).map(([name]) => name);
if (failed.length) {
  console.error(`\nFAILED: ${failed.join(", ")}`);
  process.exit(1);
}
console.log("\nAll tests passed.");
