// The example SvelteKit dashboard (examples/sveltekit) for end-to-end tests and the bench: build
// it, serve the build (with `vite preview` and a URL, or in workerd with the service binding)
// pointed at a test Worker, and drive it with the system Chromium through playwright-core.

import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { buildClient, CHROMIUM, ROOT } from "../../scripts/setup.mjs";

export { CHROMIUM };
import { answers, freePort, QUIET_ENV, retryTakenPort, spawnGroup, stopGroup } from "./worker.mjs";

export const DASHBOARD_DIR = join(ROOT, "examples", "sveltekit");
/** Where end-to-end screenshots go; CI keeps the folder as the run's artifacts. */
export const SCREENSHOT_DIR = join(ROOT, "test-artifacts", "screenshots");

const VITE = join(ROOT, "node_modules", "vite", "bin", "vite.js");
const WRANGLER = join(ROOT, "node_modules", ".bin", "wrangler");
/** wrangler dev's first start compiles the app's Worker; a minute covers a loaded machine. */
const READY_TIMEOUT_MS = 60_000;

/** Why the browser tests cannot run here, or null when they can. */
export function browserMissing() {
  return existsSync(CHROMIUM) ? null : `no Chromium at ${CHROMIUM} (npm test installs Debian's chromium where apt-get is usable; CHROMIUM_PATH names another)`;
}

/** Builds the dashboard for production (adapter-cloudflare's output and the preview server's), and the client it imports. */
export function buildDashboard() {
  buildClient();
  const result = spawnSync(process.execPath, [VITE, "build", "--logLevel", "warn"], { cwd: DASHBOARD_DIR, encoding: "utf8" });
  if (result.status !== 0) throw new Error(`building the dashboard failed:\n${result.stdout}\n${result.stderr}`);
}

/**
 * Serves the built dashboard with `vite preview` (Node) on loopback, talking to switchyard at
 * `switchyardUrl`: the plain-URL way.
 */
export async function startDashboard({ switchyardUrl }) {
  const env = { ...QUIET_ENV, SWITCHYARD_URL: switchyardUrl };
  return serve(process.execPath, async (port) => [VITE, "preview", "--host", "127.0.0.1", "--port", String(port), "--strictPort"], env);
}

/**
 * Serves adapter-cloudflare's output with `wrangler dev` (workerd) on loopback, reaching
 * switchyard through the app's `SWITCHYARD` service binding: the Worker started with the same
 * `registryDir` (startWorker's option) answers it.
 */
export async function startDashboardOnWorkerd({ registryDir, stateDir }) {
  const envFile = emptyEnvFile(stateDir);
  const args = async (port) => [
    "dev",
    "--ip", "127.0.0.1",
    "--port", String(port),
    "--inspector-port", String(await freePort()),
    "--persist-to", stateDir,
    "--show-interactive-dev-session=false",
    // An empty env file, so a developer's .env (SWITCHYARD_URL) cannot take the binding's place.
    "--env-file", envFile,
  ];
  const env = { ...QUIET_ENV, WRANGLER_REGISTRY_PATH: registryDir };
  delete env.SWITCHYARD_URL;
  return serve(WRANGLER, args, env);
}

function emptyEnvFile(dir) {
  mkdirSync(dir, { recursive: true });
  const path = join(dir, "empty.env");
  writeFileSync(path, "");
  return path;
}

/**
 * Starts `command` with `argsFor(port)` on a free port, in its own process group, and waits until
 * the dashboard answers; tries fresh ports when the chosen one was taken meanwhile.
 */
function serve(command, argsFor, env) {
  return retryTakenPort(() => serveOn(command, argsFor, env));
}

async function serveOn(command, argsFor, env) {
  const port = await freePort();
  const { child, exited, output } = spawnGroup(command, await argsFor(port), { cwd: DASHBOARD_DIR, env });
  const url = `http://127.0.0.1:${port}`;
  const dashboard = { url, logs: output, stop: () => stopGroup(child, exited) };
  if (await answers(`${url}/signin`, child, READY_TIMEOUT_MS, 100)) return dashboard;
  await dashboard.stop();
  const error = new Error(`the dashboard did not start within ${READY_TIMEOUT_MS} ms:\n${output()}`);
  // wrangler: "Address already in use"; vite --strictPort: "Port 1234 is already in use".
  error.portTaken = /already in use/i.test(output());
  throw error;
}

/**
 * Chromium as these machines allow it: as root, without its sandbox; and with no background
 * traffic, since anything but loopback is refused here.
 */
export const CHROMIUM_FLAGS = [
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

/**
 * Launches of a browser that may crash before it is up: Chromium has been seen to die of SIGSEGV
 * while starting on a loaded machine, and launched again it starts. A browser that never starts
 * still fails the suite, with each try's error.
 */
const LAUNCH_TRIES = 3;

/** Headless Chromium driven by playwright-core. */
export async function launchBrowser() {
  const { chromium } = await import("playwright-core");
  const errors = [];
  for (let attempt = 1; attempt <= LAUNCH_TRIES; attempt++) {
    try {
      return await chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_FLAGS });
    } catch (error) {
      errors.push(error);
      console.error(`Chromium did not start (try ${attempt} of ${LAUNCH_TRIES}): ${String(error.message).split("\n")[0]}`);
    }
  }
  throw new AggregateError(errors, `Chromium did not start in ${LAUNCH_TRIES} tries`);
}

/** Saves a full-page screenshot as `name.png` in the artifacts folder. */
export async function screenshot(page, name) {
  mkdirSync(SCREENSHOT_DIR, { recursive: true });
  await page.screenshot({ path: join(SCREENSHOT_DIR, `${name}.png`), fullPage: true });
}
