// Runs one of the project's scripts on a Node recent enough for its tools. wrangler needs Node
// 22.12 or later; where the machine's Node is older (Debian 12 ships 20), a Node from the npm
// registry's `node-<platform>-<arch>` package is installed once into .tools/ and used instead,
// first on PATH, so that every tool the script starts (wrangler, npm, vite) runs on it too.
//
//   node scripts/with-node.mjs scripts/test.mjs [args...]
//
// This file itself must run on old Node versions: plain ES modules, nothing newer than Node 18.

import { spawn, spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { delimiter, dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = dirname(dirname(fileURLToPath(import.meta.url)));

/** The oldest Node the project's tools accept (wrangler's `engines`). */
const NODE_MIN = [22, 12];
/** The Node installed where the machine's is older: the current long-term-support line. */
export const NODE_PROVIDED_VERSION = "24.22.3";
const TOOLS_DIR = join(ROOT, ".tools", `node-${NODE_PROVIDED_VERSION}`);
const PACKAGE = `node-${process.platform}-${process.arch}`;
const PROVIDED_BIN = join(TOOLS_DIR, "node_modules", PACKAGE, "bin", process.platform === "win32" ? "node.exe" : "node");

function recentEnough(version) {
  const [major, minor] = version.split(".").map(Number);
  return major > NODE_MIN[0] || (major === NODE_MIN[0] && minor >= NODE_MIN[1]);
}

/** The Node to run the project's scripts on: this one when recent enough, else the provided one. */
export function projectNode() {
  if (recentEnough(process.versions.node)) return process.execPath;
  if (!existsSync(PROVIDED_BIN)) {
    console.log(
      `[setup] Node ${process.versions.node} is older than ${NODE_MIN.join(".")}: installing Node ${NODE_PROVIDED_VERSION} ` +
        `from the npm registry (${PACKAGE}) into ${join(".tools", `node-${NODE_PROVIDED_VERSION}`)}`,
    );
    const npm = process.platform === "win32" ? "npm.cmd" : "npm";
    const install = spawnSync(npm, ["install", "--no-save", "--no-package-lock", "--no-audit", "--no-fund", "--prefix", TOOLS_DIR, `${PACKAGE}@${NODE_PROVIDED_VERSION}`], {
      stdio: "inherit",
    });
    if (install.status !== 0 || !existsSync(PROVIDED_BIN)) {
      throw new Error(
        `could not install ${PACKAGE}@${NODE_PROVIDED_VERSION} with npm; install Node ${NODE_MIN.join(".")} or later yourself (https://nodejs.org)`,
      );
    }
  }
  return PROVIDED_BIN;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const [script, ...args] = process.argv.slice(2);
  if (!script) {
    console.error("usage: node scripts/with-node.mjs SCRIPT [ARGS...]");
    process.exit(2);
  }
  let node;
  try {
    node = projectNode();
  } catch (error) {
    console.error(`[setup] ${error.message}`);
    process.exit(1);
  }
  const env = { ...process.env, PATH: `${dirname(node)}${delimiter}${process.env.PATH ?? ""}` };
  const child = spawn(node, [join(ROOT, script), ...args], { stdio: "inherit", env });
  // Ctrl-C reaches the child from the terminal; a signal sent to this process alone is passed on.
  // Either way the child decides how to stop, and its exit status becomes this one's.
  for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"]) {
    process.on(signal, () => {
      if (child.exitCode === null) child.kill(signal);
    });
  }
  child.on("error", (error) => {
    console.error(`[setup] ${node} could not be started: ${error.message}`);
    process.exit(1);
  });
  child.on("exit", (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
}
