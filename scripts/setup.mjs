// Sets up everything switchyard needs on this machine, skipping what is already there, and
// builds the Worker when its sources changed. `npm start`, `npm test` and `npm run bench` call
// it first; wrangler's [build] step calls it with --build-only. It prints a numbered plan, then
// each step with the time it took; a first run on a fresh machine takes 15 to 25 minutes, most
// of it compiling worker-build and wasm-bindgen-cli once.
//
//   node scripts/setup.mjs                 install what is missing, then build if stale
//   node scripts/setup.mjs --build-only    build if stale (tools must be installed)
//   --quiet                                print nothing but failures
//
// Only package registries are used (npm, crates.io, and Debian's apt for the browser tests'
// chromium, which `npm test` installs just before those tests, not here). Nothing is downloaded
// from anywhere else: worker-build is pointed at local wasm-bindgen, esbuild and wasm-opt
// binaries, and playwright-core drives the system Chromium rather than downloading its own.

import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { homedir } from "node:os";
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { splitNames } from "./wasm-names.mjs";

export const ROOT = dirname(dirname(fileURLToPath(import.meta.url)));

/** The worker-build release this project is built with. */
export const WORKER_BUILD_VERSION = "0.8.7";
const WASM_TARGET = "wasm32-unknown-unknown";
const BUILD_DIR = join(ROOT, "build");
const INPUTS_STAMP = join(BUILD_DIR, ".inputs-sha256");

let quiet = false;

function say(message) {
  if (!quiet) console.log(`[setup] ${message}`);
}

/** Runs a command, streaming its output; throws with the command line when it fails. */
function run(command, args, options = {}) {
  const result = spawnSync(command, args, { cwd: ROOT, stdio: "inherit", ...options });
  if (result.error) throw new Error(`${command} could not be started: ${result.error.message}`);
  if (result.status !== 0) throw new Error(`${command} ${args.join(" ")} failed with exit code ${result.status}`);
}

/** Runs a command and returns its trimmed stdout, or null when it cannot run or fails. */
function capture(command, args) {
  const result = spawnSync(command, args, { cwd: ROOT, encoding: "utf8" });
  if (result.error || result.status !== 0) return null;
  return result.stdout.trim();
}

function cargoBin(name) {
  const home = process.env.CARGO_HOME || join(homedir(), ".cargo");
  const candidate = join(home, "bin", name);
  return existsSync(candidate) ? candidate : name;
}

function nodeBin(name) {
  return join(ROOT, "node_modules", ".bin", name);
}

/** How to get each prerequisite the set-up cannot install itself, for the message that names it. */
const PREREQUISITES = [
  ["git", ["--version"], "git (Debian and Ubuntu: apt-get install git; macOS: xcode-select --install)"],
  ["cc", ["--version"], "a C compiler for the crates that build C code (Debian and Ubuntu: apt-get install gcc; Fedora: dnf install gcc; macOS: xcode-select --install)"],
  [cargoBin("cargo"), ["--version"], "Rust's cargo, through rustup (https://rustup.rs, or Debian's rustup package, then rustup default stable)"],
  [cargoBin("rustup"), ["--version"], "rustup, which adds the WebAssembly target (https://rustup.rs, or Debian's rustup package)"],
];

/** Names every missing prerequisite at once, with what provides it. */
function checkPrerequisites() {
  const problems = [];
  const [major, minor] = process.versions.node.split(".").map(Number);
  if (major < 22 || (major === 22 && minor < 12)) {
    problems.push(`Node ${process.versions.node} is too old for wrangler (22.12 or later): run the set-up through npm (npm start, npm test), which provides one`);
  }
  for (const [command, args, provider] of PREREQUISITES) {
    if (capture(command, args) === null) problems.push(`${command.split("/").pop()} is missing: install ${provider}`);
  }
  if (problems.length) throw new Error(`missing prerequisites:\n  - ${problems.join("\n  - ")}`);
  return "present";
}

function ensureNpmPackages() {
  const installed = join(ROOT, "node_modules", ".package-lock.json");
  const lock = join(ROOT, "package-lock.json");
  const manifest = join(ROOT, "package.json");
  const fresh =
    existsSync(installed) &&
    statSync(installed).mtimeMs >= statSync(lock).mtimeMs &&
    statSync(installed).mtimeMs >= statSync(manifest).mtimeMs;
  if (fresh) return "installed";
  say("npm ci");
  run("npm", ["ci", "--no-audit", "--no-fund"], { env: { ...process.env, CI: "true" } });
  return "installed now";
}

function ensureRustTarget() {
  const targets = capture(cargoBin("rustup"), ["target", "list", "--installed"]) ?? "";
  if (targets.split("\n").includes(WASM_TARGET)) return "installed";
  say(`rustup target add ${WASM_TARGET}`);
  run(cargoBin("rustup"), ["target", "add", WASM_TARGET]);
  return "installed now";
}

/** Installs a crate's binaries at an exact version unless that version is already installed. */
function ensureCargoTool(crate, binary, version) {
  const current = capture(cargoBin(binary), ["--version"]);
  if (current && current.split(/\s+/).includes(version)) return "installed";
  say(`cargo install ${crate} --version =${version} (several minutes, once per machine; cargo shows its progress)`);
  try {
    run(cargoBin("cargo"), ["install", crate, "--version", `=${version}`, "--locked"]);
  } catch (error) {
    // A crate's own lock file can pin a dependency version the registry has since yanked;
    // resolving afresh within the crate's semver ranges then works.
    say(`${crate}: --locked install failed (${error.message}); retrying with fresh resolution`);
    run(cargoBin("cargo"), ["install", crate, "--version", `=${version}`, "--force"]);
  }
  return "installed now";
}

/** The wasm-bindgen version in Cargo.lock: the CLI must match the library exactly. */
export function lockedWasmBindgenVersion() {
  const lock = readFileSync(join(ROOT, "Cargo.lock"), "utf8");
  const match = lock.match(/\[\[package\]\]\nname = "wasm-bindgen"\nversion = "([^"]+)"/);
  if (!match) throw new Error("Cargo.lock has no wasm-bindgen package");
  return match[1];
}

/** The Chromium playwright-core drives in the browser tests: Debian's package, or CHROMIUM_PATH. */
export const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";

/**
 * Installs Debian's chromium for the browser tests where apt is available and we are root; `npm
 * test` calls this just before those tests, and the bench before its Lighthouse figure. It never
 * fails: without a browser the browser tests are skipped with the reason (set CHROMIUM_PATH to use
 * another Chromium). Returns why there is no browser, or null when there is one.
 */
export function ensureChromium() {
  if (existsSync(CHROMIUM)) return null;
  if (process.env.CHROMIUM_PATH) return `CHROMIUM_PATH names ${CHROMIUM}, which does not exist`;
  const apt = capture("apt-get", ["--version"]);
  const root = typeof process.getuid === "function" && process.getuid() === 0;
  if (!apt || !root) return `no ${CHROMIUM}, and apt-get is not usable here (it needs root); set CHROMIUM_PATH to a Chromium`;
  console.log("[setup] chromium for the browser tests: apt-get install chromium");
  const env = { ...process.env, DEBIAN_FRONTEND: "noninteractive" };
  const install = () =>
    spawnSync("apt-get", ["install", "-y", "-q", "--no-install-recommends", "chromium"], { stdio: "inherit", env }).status === 0;
  // A fresh machine may have no package lists yet.
  if (install()) return null;
  if (spawnSync("apt-get", ["update", "-q"], { stdio: "inherit", env }).status === 0 && install()) return null;
  return "apt-get install chromium failed (see its output above)";
}

/** Aider, the one coding CLI that comes from PyPI rather than npm; its tests need it. */
export const AIDER_VERSION = "0.86.2";
const AIDER_DIR = join(ROOT, ".tools", `aider-${AIDER_VERSION}`);
export const AIDER = join(AIDER_DIR, "bin", "aider");

/**
 * Installs aider-chat into a virtual environment of its own under .tools/ (Aider supports Python
 * 3.10 to 3.12); `npm test` calls this just before the integration tests. It never fails: the
 * Aider test is skipped with the reason instead. Returns why there is no Aider, or null.
 */
export function ensureAider() {
  if (existsSync(AIDER)) return null;
  const python = ["python3.12", "python3.11", "python3.10", "python3"].find((name) => {
    const version = capture(name, ["-c", "import sys, venv; print('%d.%d' % sys.version_info[:2])"]);
    return version && ["3.10", "3.11", "3.12"].includes(version.trim());
  });
  if (!python) return "no Python 3.10-3.12 with venv on PATH (Aider supports only those)";
  console.log(`[setup] aider-chat ${AIDER_VERSION} for its test: ${python} -m venv ${relative(ROOT, AIDER_DIR)} && pip install`);
  rmSync(AIDER_DIR, { recursive: true, force: true });
  const venv = spawnSync(python, ["-m", "venv", AIDER_DIR], { stdio: "inherit" });
  const pip = venv.status === 0 && spawnSync(join(AIDER_DIR, "bin", "pip"), ["install", "--quiet", "--disable-pip-version-check", `aider-chat==${AIDER_VERSION}`], { stdio: "inherit" });
  if (pip && pip.status === 0 && existsSync(AIDER)) return null;
  rmSync(AIDER_DIR, { recursive: true, force: true });
  return `installing aider-chat ${AIDER_VERSION} from PyPI failed (see its output above)`;
}

function listFiles(dir) {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    return entry.isDirectory() ? listFiles(path) : [path];
  });
}

/** A hash over every file the WebAssembly build reads, so a rebuild happens exactly when needed. */
function inputsHash() {
  const files = [...listFiles(join(ROOT, "src")), ...["Cargo.toml", "Cargo.lock", "openapi.json"].map((f) => join(ROOT, f))];
  const hash = createHash("sha256");
  for (const file of files.sort()) {
    hash.update(relative(ROOT, file)).update("\0").update(readFileSync(file)).update("\0");
  }
  return hash.digest("hex");
}

/** Builds build/index.js and its WebAssembly module unless they match the current sources. */
export function buildWorker() {
  const hash = inputsHash();
  const built = existsSync(join(BUILD_DIR, "index.js")) && existsSync(INPUTS_STAMP);
  if (built && readFileSync(INPUTS_STAMP, "utf8") === hash) {
    // A module built before its names were split off gets them split now; a split one is kept.
    splitWasmNames();
    return "up to date";
  }
  say("worker-build --release (a few minutes when the Rust sources changed)");
  const env = {
    ...process.env,
    WASM_BINDGEN_BIN: cargoBin("wasm-bindgen"),
    ESBUILD_BIN: nodeBin("esbuild"),
    WASM_OPT_BIN: nodeBin("wasm-opt"),
  };
  run(cargoBin("worker-build"), ["--release"], { env });
  splitWasmNames();
  mkdirSync(BUILD_DIR, { recursive: true });
  writeFileSync(INPUTS_STAMP, hash);
  return "built now";
}

/** The names section is a sixth of the module: it goes beside it, for `npm run symbolize`. */
function splitWasmNames() {
  splitNames(join(BUILD_DIR, "index_bg.wasm"), join(BUILD_DIR, "index_bg.names.json"));
}

/** Where `buildAgent` puts the switchyard-agent binary. */
export const AGENT_BINARY = join(ROOT, "target", "release", process.platform === "win32" ? "switchyard-agent.exe" : "switchyard-agent");

/** Builds the switchyard-agent runner (a native release build; cargo skips it when current). */
export function buildAgent() {
  const builtAt = () => (existsSync(AGENT_BINARY) ? statSync(AGENT_BINARY).mtimeMs : 0);
  const before = builtAt();
  // Not --quiet: a first build takes minutes, and cargo's progress shows it is moving.
  run(cargoBin("cargo"), ["build", "--release", "--locked", "-p", "switchyard-agent"], { stdio: quiet ? "ignore" : "inherit" });
  return builtAt() === before ? "up to date" : "built now";
}

const CLIENT_DIR = join(ROOT, "clients", "typescript");

/**
 * Compiles the TypeScript client to `clients/typescript/dist/` (JavaScript and declarations, what
 * the example dashboard and any other package import) unless it is newer than its sources.
 */
export function buildClient() {
  const built = join(CLIENT_DIR, "dist", "index.js");
  const inputs = [...listFiles(join(CLIENT_DIR, "src")), join(CLIENT_DIR, "tsconfig.json"), join(CLIENT_DIR, "tsconfig.build.json")];
  const newest = Math.max(...inputs.map((file) => statSync(file).mtimeMs));
  if (existsSync(built) && statSync(built).mtimeMs >= newest) return "up to date";
  say("tsc -p tsconfig.build.json");
  run(process.execPath, [join(ROOT, "node_modules", "typescript", "bin", "tsc"), "-p", "tsconfig.build.json"], { cwd: CLIENT_DIR });
  return "built now";
}

/** "4m 05s" or "12.3s". */
function elapsed(sinceMs) {
  const seconds = (Date.now() - sinceMs) / 1000;
  if (seconds < 60) return `${seconds.toFixed(1)}s`;
  return `${Math.floor(seconds / 60)}m ${String(Math.round(seconds % 60)).padStart(2, "0")}s`;
}

/** The set-up's steps in order; each returns what it found or did, and skips work already done. */
function plan() {
  const bindgen = lockedWasmBindgenVersion();
  return [
    ["prerequisites: Node, git, a C compiler, Rust", checkPrerequisites],
    ["npm packages", ensureNpmPackages],
    [`Rust target ${WASM_TARGET}`, ensureRustTarget],
    [`worker-build ${WORKER_BUILD_VERSION}`, () => ensureCargoTool("worker-build", "worker-build", WORKER_BUILD_VERSION)],
    [`wasm-bindgen-cli ${bindgen}`, () => ensureCargoTool("wasm-bindgen-cli", "wasm-bindgen", bindgen)],
    ["the Worker (WebAssembly, release)", buildWorker],
    ["switchyard-agent (native, release)", buildAgent],
    ["the TypeScript client", buildClient],
  ];
}

/** Installs what is missing and builds: the whole set-up, step by step with the time of each. */
export function setup(options = {}) {
  quiet = Boolean(options.quiet);
  const steps = plan();
  const started = Date.now();
  say(`plan: ${steps.map(([title], i) => `${i + 1}. ${title}`).join("; ")}`);
  steps.forEach(([title, step], i) => {
    const stepStarted = Date.now();
    say(`${i + 1}/${steps.length} ${title}...`);
    const outcome = step();
    say(`${i + 1}/${steps.length} ${title}: ${outcome} (${elapsed(stepStarted)})`);
  });
  say(`ready in ${elapsed(started)}`);
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const args = process.argv.slice(2);
  quiet = args.includes("--quiet");
  try {
    if (args.includes("--build-only")) say(`the Worker: ${buildWorker()}`);
    else setup({ quiet });
  } catch (error) {
    console.error(`[setup] ${error.message}`);
    process.exit(1);
  }
}
