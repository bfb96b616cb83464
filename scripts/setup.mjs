// Sets up everything switchyard needs on this machine, skipping what is already there, and
// builds the Worker when its sources changed. `npm start`, `npm test` and `npm run bench` call
// it first; wrangler's [build] step calls it with --build-only.
//
//   node scripts/setup.mjs                 install what is missing, then build if stale
//   node scripts/setup.mjs --build-only    build if stale (tools must be installed)
//   --quiet                                print only what changes
//
// Only package registries are used (npm, crates.io, and Debian's apt for the browser tests'
// chromium). Nothing is downloaded from anywhere else: worker-build is pointed at local
// wasm-bindgen, esbuild and wasm-opt binaries, and playwright-core drives the system Chromium
// rather than downloading its own.

import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, readdirSync, statSync, writeFileSync } from "node:fs";
import { homedir } from "node:os";
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";

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

function checkNode() {
  const [major, minor] = process.versions.node.split(".").map(Number);
  if (major < 20 || (major === 20 && minor < 19)) {
    throw new Error(`Node ${process.versions.node} is too old: Vite 7 (the example dashboard's build) needs Node 20.19 or later`);
  }
}

function ensureNpmPackages() {
  const installed = join(ROOT, "node_modules", ".package-lock.json");
  const lock = join(ROOT, "package-lock.json");
  const manifest = join(ROOT, "package.json");
  const fresh =
    existsSync(installed) &&
    statSync(installed).mtimeMs >= statSync(lock).mtimeMs &&
    statSync(installed).mtimeMs >= statSync(manifest).mtimeMs;
  if (fresh) return say("npm packages: installed");
  say("npm packages: installing (npm ci)");
  run("npm", ["ci", "--no-audit", "--no-fund"], { env: { ...process.env, CI: "true" } });
}

function ensureRust() {
  if (!capture(cargoBin("cargo"), ["--version"])) {
    throw new Error("cargo is not installed: install Rust with rustup first (https://rustup.rs)");
  }
  const targets = capture(cargoBin("rustup"), ["target", "list", "--installed"]) ?? "";
  if (targets.split("\n").includes(WASM_TARGET)) return say(`rust target ${WASM_TARGET}: installed`);
  say(`rust target ${WASM_TARGET}: installing`);
  run(cargoBin("rustup"), ["target", "add", WASM_TARGET]);
}

/** Installs a crate's binaries at an exact version unless that version is already installed. */
function ensureCargoTool(crate, binary, version) {
  const current = capture(cargoBin(binary), ["--version"]);
  if (current && current.split(/\s+/).includes(version)) return say(`${crate} ${version}: installed`);
  say(`${crate} ${version}: installing with cargo (this takes several minutes once)`);
  try {
    run(cargoBin("cargo"), ["install", crate, "--version", `=${version}`, "--locked"]);
  } catch (error) {
    // A crate's own lock file can pin a dependency version the registry has since yanked;
    // resolving afresh within the crate's semver ranges then works.
    say(`${crate}: --locked install failed (${error.message}); retrying with fresh resolution`);
    run(cargoBin("cargo"), ["install", crate, "--version", `=${version}`, "--force"]);
  }
}

/** The wasm-bindgen version in Cargo.lock: the CLI must match the library exactly. */
export function lockedWasmBindgenVersion() {
  const lock = readFileSync(join(ROOT, "Cargo.lock"), "utf8");
  const match = lock.match(/\[\[package\]\]\nname = "wasm-bindgen"\nversion = "([^"]+)"/);
  if (!match) throw new Error("Cargo.lock has no wasm-bindgen package");
  return match[1];
}

/** Debian's package, which playwright-core drives in the dashboard's browser tests. */
const CHROMIUM = "/usr/bin/chromium";

/**
 * Installs Debian's chromium for the browser tests where apt is available and we are root. Elsewhere
 * the browser tests are skipped with the reason (set CHROMIUM_PATH to use another Chromium).
 */
function ensureChromium() {
  if (process.env.CHROMIUM_PATH || existsSync(CHROMIUM)) return say("chromium: installed");
  const apt = capture("apt-get", ["--version"]);
  const root = typeof process.getuid === "function" && process.getuid() === 0;
  if (!apt || !root) return say("chromium: not installed and apt-get is not usable here; the browser tests will be skipped");
  say("chromium: installing (apt-get install chromium)");
  const env = { ...process.env, DEBIAN_FRONTEND: "noninteractive" };
  const install = () =>
    spawnSync("apt-get", ["install", "-y", "-q", "--no-install-recommends", "chromium"], { stdio: quiet ? "ignore" : "inherit", env }).status === 0;
  // A fresh machine may have no package lists yet.
  if (!install()) {
    run("apt-get", ["update", "-q"], { env });
    if (!install()) throw new Error("apt-get install chromium failed");
  }
}

function ensureTools() {
  checkNode();
  ensureNpmPackages();
  ensureChromium();
  ensureRust();
  ensureCargoTool("worker-build", "worker-build", WORKER_BUILD_VERSION);
  ensureCargoTool("wasm-bindgen-cli", "wasm-bindgen", lockedWasmBindgenVersion());
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
  if (built && readFileSync(INPUTS_STAMP, "utf8") === hash) return say("worker build: up to date");
  say("worker build: building (worker-build --release)");
  const env = {
    ...process.env,
    WASM_BINDGEN_BIN: cargoBin("wasm-bindgen"),
    ESBUILD_BIN: nodeBin("esbuild"),
    WASM_OPT_BIN: nodeBin("wasm-opt"),
  };
  run(cargoBin("worker-build"), ["--release"], { env });
  mkdirSync(BUILD_DIR, { recursive: true });
  writeFileSync(INPUTS_STAMP, hash);
}

/** Where `buildAgent` puts the switchyard-agent binary. */
export const AGENT_BINARY = join(ROOT, "target", "release", process.platform === "win32" ? "switchyard-agent.exe" : "switchyard-agent");

/** Builds the switchyard-agent runner (a native release build; cargo skips it when current). */
export function buildAgent() {
  say("switchyard-agent: building (cargo build --release -p switchyard-agent)");
  run(cargoBin("cargo"), ["build", "--release", "--locked", "--quiet", "-p", "switchyard-agent"]);
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
  if (existsSync(built) && statSync(built).mtimeMs >= newest) return say("client build: up to date");
  say("client build: building (tsc -p tsconfig.build.json)");
  run(process.execPath, [join(ROOT, "node_modules", "typescript", "bin", "tsc"), "-p", "tsconfig.build.json"], { cwd: CLIENT_DIR });
}

/** Installs what is missing and builds: the whole set-up. */
export function setup(options = {}) {
  quiet = Boolean(options.quiet);
  ensureTools();
  buildWorker();
  buildAgent();
  buildClient();
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const args = process.argv.slice(2);
  quiet = args.includes("--quiet");
  try {
    if (args.includes("--build-only")) buildWorker();
    else setup({ quiet });
  } catch (error) {
    console.error(`[setup] ${error.message}`);
    process.exit(1);
  }
}
