// npm run train-analysis: regenerate the word model's weights
// (src/core/registry/analysis/word_weights.rs) from the labelled tasks of
// tests/fixtures/analysis/tuning*.json. Run it after adding or changing a labelled task; the
// native test that writes the file is the one that, without WRITE_WORD_WEIGHTS, fails while the
// table and the sets disagree. The held-back sets are never read.

import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { ROOT } from "./setup.mjs";

const test = "core::registry::analysis::tests::the_word_weights_are_the_ones_the_tuning_sets_train";
const result = spawnSync("cargo", ["test", "--locked", "--lib", "-p", "switchyard", "--", "--exact", test], {
  cwd: ROOT,
  stdio: "inherit",
  env: { ...process.env, WRITE_WORD_WEIGHTS: "1" },
});
if (result.error) throw result.error;
if (result.status !== 0) process.exit(result.status ?? 1);
const table = readFileSync(join(ROOT, "src", "core", "registry", "analysis", "word_weights.rs"), "utf8");
console.log(`word_weights.rs: ${table.split("\n").filter((line) => line.startsWith("    (")).length} words`);
