// A user's clone of the repository is whole by itself: nothing beside it is read. The working
// tree (tracked files and new ones that are not ignored) is copied into an empty temporary
// directory, and the native tests run there, where no sibling directory exists to lean on.

import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { after, before, describe, test } from "node:test";
import { ROOT } from "../scripts/setup.mjs";

/** Native test time in the clone: a first compile of the workspace crates in test mode. */
const NATIVE_TESTS_TIMEOUT_MS = 20 * 60_000;

/** The only file that may look beside the repository: the bench, for the optional peer. */
const MAY_LOOK_BESIDE = new Set(["scripts/bench.mjs"]);

/** Every file a clone of this working tree would hold. */
function repositoryFiles() {
  const listed = spawnSync("git", ["ls-files", "-z", "--cached", "--others", "--exclude-standard"], {
    cwd: ROOT,
    encoding: "utf8",
  });
  assert.equal(listed.status, 0, listed.stderr);
  return listed.stdout.split("\0").filter((path) => path && existsSync(join(ROOT, path)));
}

describe("a clone with nothing beside it", { timeout: NATIVE_TESTS_TIMEOUT_MS + 60_000 }, () => {
  let parent;
  let clone;
  let files;
  before(() => {
    parent = mkdtempSync(join(tmpdir(), "switchyard-clone-"));
    clone = join(parent, "switchyard");
    files = repositoryFiles();
    for (const path of files) {
      mkdirSync(dirname(join(clone, path)), { recursive: true });
      cpSync(join(ROOT, path), join(clone, path));
    }
  });
  after(() => {
    if (parent) rmSync(parent, { recursive: true, force: true });
  });

  test("the clone's parent directory holds the clone and nothing else", () => {
    assert.deepEqual(readdirSync(parent), ["switchyard"]);
  });

  test("no file but the bench names a directory beside the repository", () => {
    // Spelled in parts so that this file does not match itself.
    const shared = "sha" + "red";
    const beside = [`../${shared}`, `"..", "${shared}"`, `${shared}/seed`];
    const offenders = files.filter((path) => {
      if (MAY_LOOK_BESIDE.has(path)) return false;
      const text = readFileSync(join(ROOT, path), "latin1");
      return beside.some((needle) => text.includes(needle));
    });
    assert.deepEqual(offenders, []);
  });

  test("every native test passes in the clone", () => {
    // Compiled dependencies are shared with the checkout's own target directory (they are the
    // same crates from the registry); the workspace's crates are built afresh from the clone.
    const result = spawnSync("cargo", ["test", "--locked", "--workspace", "--quiet"], {
      cwd: clone,
      encoding: "utf8",
      timeout: NATIVE_TESTS_TIMEOUT_MS,
      env: { ...process.env, CARGO_TARGET_DIR: join(ROOT, "target") },
    });
    const output = `${result.stdout}\n${result.stderr}`;
    assert.equal(result.status, 0, output.slice(-8000));
    assert.match(result.stdout, /test result: ok\. [1-9]\d* passed/);
  });
});
