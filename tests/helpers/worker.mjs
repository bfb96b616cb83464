// Starts the real Worker in the real local runtime (wrangler dev → workerd) for one test file:
// its own state directory, its own ports on 127.0.0.1, and a stop() that ends exactly the
// processes it started. The Worker must already be built (npm test builds it first).

import { spawn, spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { readWranglerConfig } from "../../scripts/config.mjs";
import { ROOT } from "../../scripts/setup.mjs";

const WRANGLER = join(ROOT, "node_modules", ".bin", "wrangler");

/** How long wrangler dev may take to answer its first request: a cold workerd start plus
 * compiling the module takes a few seconds here; a minute covers a loaded CI machine. */
const READY_TIMEOUT_MS = 60_000;

/** Starts tried when wrangler finds a port taken: another program may bind a port between
 * freePort() choosing it and wrangler using it. */
const PORT_ATTEMPTS = 3;

/** How long a stopped runtime may take to exit before it is killed. */
const STOP_TIMEOUT_MS = 10_000;

export const ADMIN_TOKEN = "test-admin-token-0123456789abcdef";

export const QUIET_ENV = {
  ...process.env,
  WRANGLER_SEND_METRICS: "false",
  WRANGLER_LOG: "info",
  FORCE_COLOR: "0",
  NO_COLOR: "1",
  CI: "true",
  // Local runs must not reach out: without this, wrangler dev fetches a sample `request.cf`
  // from workers.cloudflare.com whenever its cache folder has none.
  CLOUDFLARE_CF_FETCH_ENABLED: "false",
};

/** Ports this process has handed out: the system may offer a just-closed port again at once. */
const handedOut = new Set();

/** A TCP port that was free a moment ago on 127.0.0.1 and that this process has not handed out before. */
export async function freePort() {
  for (;;) {
    const port = await new Promise((resolve, reject) => {
      const server = createServer();
      server.once("error", reject);
      server.listen(0, "127.0.0.1", () => {
        const { port } = server.address();
        server.close(() => resolve(port));
      });
    });
    if (!handedOut.has(port)) {
      handedOut.add(port);
      return port;
    }
  }
}

/** Rate limits for tests that are not about rate limiting: every test file sends all of its
 * requests from loopback, far more per window than one client address should. */
const TEST_RATE_LIMITS = { RATE_LIMIT_ADDRESS: 1_000_000, RATE_LIMIT_CREDENTIAL: 1_000_000 };

/**
 * Writes a copy of wrangler.jsonc into `dir` (as plain JSON) with `main` and `migrations_dir`
 * made absolute, no build step (the Worker is already built), no deploy environments, the rate
 * limits set, and the named bindings left out.
 */
function writeConfig(dir, withoutBindings, rateLimits = TEST_RATE_LIMITS) {
  const config = readWranglerConfig();
  delete config.$schema;
  delete config.build;
  delete config.env;
  config.main = join(ROOT, "js", "entry.mjs");
  for (const database of config.d1_databases) database.migrations_dir = join(ROOT, "migrations");
  for (const [name, limit] of Object.entries(rateLimits ?? {})) {
    const block = config.ratelimits.find((r) => r.name === name);
    if (!block) throw new Error(`wrangler.jsonc has no rate limit ${name}`);
    block.simple.limit = limit;
  }
  for (const binding of withoutBindings) {
    const lists = [config.d1_databases, config.kv_namespaces, config.r2_buckets, config.queues.producers, config.durable_objects.bindings];
    const named = (entry) => (entry.binding ?? entry.name) === binding;
    const list = lists.find((entries) => entries.some(named));
    if (!list) throw new Error(`wrangler.jsonc has no binding ${binding}`);
    list.splice(list.findIndex(named), 1);
  }
  const path = join(dir, "wrangler.json");
  writeFileSync(path, JSON.stringify(config, null, 2));
  return path;
}

function wrangler(args, cwd) {
  const result = spawnSync(WRANGLER, args, { cwd, env: QUIET_ENV, encoding: "utf8" });
  if (result.status !== 0) {
    throw new Error(`wrangler ${args.join(" ")} failed:\n${result.stdout}\n${result.stderr}`);
  }
  return result.stdout;
}

/**
 * Applies the migrations to the local D1 in `stateDir`, then runs the SQL file `file` against
 * it, before any Worker uses that state (the bench seeds large tables this way).
 */
export function executeSql(stateDir, file) {
  const configDir = mkdtempSync(join(tmpdir(), "switchyard-config-"));
  try {
    const config = writeConfig(configDir, []);
    wrangler(["d1", "migrations", "apply", "DB", "--local", "--persist-to", stateDir, "-c", config], ROOT);
    wrangler(["d1", "execute", "DB", "--local", "--persist-to", stateDir, "-c", config, "--file", file, "--yes"], ROOT);
  } finally {
    rmSync(configDir, { recursive: true, force: true });
  }
}

/** Deletes the object `key` from the local R2 bucket in `stateDir`, while no Worker uses that state. */
export function deleteObject(stateDir, key) {
  const configDir = mkdtempSync(join(tmpdir(), "switchyard-config-"));
  try {
    const config = writeConfig(configDir, []);
    const bucket = readWranglerConfig().r2_buckets[0].bucket_name;
    wrangler(["r2", "object", "delete", `${bucket}/${key}`, "--local", "--persist-to", stateDir, "-c", config], ROOT);
  } finally {
    rmSync(configDir, { recursive: true, force: true });
  }
}

/**
 * Starts a Worker. Options:
 * - `vars`: extra vars, e.g. `{ CORS_ORIGINS: "..." }`; ADMIN_TOKEN and TEST_FAULTS are set.
 * - `withoutBindings`: binding names to leave out of the configuration.
 * - `migrate`: apply the D1 migrations first (default true).
 * - `stateDir`: reuse the state of an earlier Worker (to test restarts).
 * - `pollMs`: how often readiness is polled (the bench polls finely to time start-up).
 * - `rateLimits`: limits per rate-limiting binding, e.g. `{ RATE_LIMIT_ADDRESS: 5 }`; `null`
 *   keeps wrangler.jsonc's. By default both are far above anything a test sends.
 * - `registryDir`: the wrangler dev registry to join (WRANGLER_REGISTRY_PATH), so that another
 *   `wrangler dev` using the same folder reaches this Worker through a service binding.
 */
export async function startWorker(options = {}) {
  const { vars = {}, withoutBindings = [], migrate = true, pollMs = 200, rateLimits = TEST_RATE_LIMITS, registryDir } = options;
  const stateDir = options.stateDir ?? mkdtempSync(join(tmpdir(), "switchyard-test-"));
  const configDir = mkdtempSync(join(tmpdir(), "switchyard-config-"));
  const config = writeConfig(configDir, withoutBindings, rateLimits);
  if (migrate) wrangler(["d1", "migrations", "apply", "DB", "--local", "--persist-to", stateDir, "-c", config], ROOT);

  const allVars = { ADMIN_TOKEN, TEST_FAULTS: "enabled", ...vars };
  const removeState = () => {
    rmSync(configDir, { recursive: true, force: true });
    if (!options.stateDir) rmSync(stateDir, { recursive: true, force: true });
  };
  try {
    // Only a Worker with the test routes, its D1 binding and an admin token can list what it ran.
    const listsStatements = allVars.TEST_FAULTS === "enabled" && allVars.ADMIN_TOKEN && !withoutBindings.includes("DB");
    const statementsToken = listsStatements ? allVars.ADMIN_TOKEN.split(",")[0] : null;
    return await retryTakenPort(() => launch({ config, stateDir, configDir, allVars, registryDir, pollMs, statementsToken }));
  } catch (error) {
    removeState();
    throw error;
  }
}

/** How long a stopping Worker may take to list the statements it prepared. */
const STATEMENTS_TIMEOUT_MS = 10_000;

/**
 * With STATEMENTS_DIR set (npm test sets it), saves every statement the Worker prepared, with
 * its query plan, for tests/checks/query-plans.mjs, which runs after every test file. A Worker
 * that cannot list them (one started without a schema, say) saves why instead; the check shows
 * these when it finds statements no test reached.
 */
async function saveStatements(url, token) {
  const dir = process.env.STATEMENTS_DIR;
  if (!dir) return;
  try {
    const response = await fetch(`${url}/__test/statements`, {
      headers: { authorization: `Bearer ${token}` },
      signal: AbortSignal.timeout(STATEMENTS_TIMEOUT_MS),
    });
    const file = join(dir, `${basename(process.argv[1] ?? "worker")}-${process.pid}-${randomBytes(4).toString("hex")}.json`);
    mkdirSync(dir, { recursive: true });
    if (response.status !== 200) {
      writeFileSync(file, JSON.stringify({ error: `GET /__test/statements answered ${response.status}: ${await response.text()}` }));
      return;
    }
    writeFileSync(file, JSON.stringify((await response.json()).statements));
  } catch {
    // Stopped or crashed by the test itself: nothing to save.
  }
}

/**
 * Calls `start` again, up to PORT_ATTEMPTS times in all, while it fails with `error.portTaken`:
 * a server that found the port freePort() chose already taken.
 */
export async function retryTakenPort(start) {
  for (let attempt = 1; ; attempt += 1) {
    try {
      return await start();
    } catch (error) {
      if (!error.portTaken || attempt === PORT_ATTEMPTS) throw error;
    }
  }
}

/** One `wrangler dev` start on fresh ports; throws (with `portTaken` when that was why) unless it becomes ready. */
async function launch({ config, stateDir, configDir, allVars, registryDir, pollMs, statementsToken }) {
  const port = await freePort();
  const inspectorPort = await freePort();
  const args = [
    "dev",
    "-c", config,
    "--ip", "127.0.0.1",
    "--port", String(port),
    "--inspector-port", String(inspectorPort),
    "--persist-to", stateDir,
    "--test-scheduled",
    "--show-interactive-dev-session=false",
    ...Object.entries(allVars).flatMap(([name, value]) => ["--var", `${name}:${value}`]),
  ];
  const env = registryDir ? { ...QUIET_ENV, WRANGLER_REGISTRY_PATH: registryDir } : QUIET_ENV;
  const { child, exited, output } = spawnGroup(WRANGLER, args, { cwd: ROOT, env });

  const url = `http://127.0.0.1:${port}`;
  const worker = {
    url,
    port,
    /** The runtime's DevTools port, for profiling a run (scripts/bench.mjs, BENCH_ONLY=profile). */
    inspectorPort,
    stateDir,
    adminToken: ADMIN_TOKEN,
    /** Everything wrangler and the Worker printed so far. */
    logs: output,
    /** fetch relative to the Worker's URL. */
    fetch: (path, init) => fetch(`${url}${path}`, init),
    /** fetch with the admin token. */
    admin: (path, init = {}) =>
      fetch(`${url}${path}`, { ...init, headers: { authorization: `Bearer ${ADMIN_TOKEN}`, ...(init.headers ?? {}) } }),
    async stop({ keepState = false } = {}) {
      if (statementsToken) await saveStatements(url, statementsToken);
      await stopGroup(child, exited);
      rmSync(configDir, { recursive: true, force: true });
      if (!keepState) rmSync(stateDir, { recursive: true, force: true });
    },
  };

  if (await answers(`${url}/openapi.json`, child, READY_TIMEOUT_MS, pollMs)) return worker;
  await stopGroup(child, exited);
  const error = new Error(`wrangler dev did not become ready within ${READY_TIMEOUT_MS} ms:\n${output()}`);
  error.portTaken = /Address already in use/.test(output());
  throw error;
}

/**
 * Starts `command` in a process group of its own (`detached`), so that stopGroup() ends it and
 * whatever it started (wrangler's workerd, say) together, and nothing else. `output()` is
 * everything it printed so far.
 */
export function spawnGroup(command, args, { cwd, env }) {
  const child = spawn(command, args, { cwd, env, detached: true, stdio: ["ignore", "pipe", "pipe"] });
  let printed = "";
  child.stdout.on("data", (chunk) => (printed += chunk));
  child.stderr.on("data", (chunk) => (printed += chunk));
  const exited = new Promise((resolve) => child.once("exit", resolve));
  return { child, exited, output: () => printed };
}

/** Whether `url` answers 2xx within `timeoutMs`, asking every `pollMs`; false at once if `child` exits. */
export async function answers(url, child, timeoutMs, pollMs) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline && child.exitCode === null) {
    try {
      const response = await fetch(url);
      await response.arrayBuffer();
      if (response.ok) return true;
    } catch {
      // Not listening yet.
    }
    await sleep(pollMs);
  }
  return false;
}

/**
 * Ends a child started with `detached: true` and all of its process group (wrangler and its
 * workerd, say): SIGTERM, then SIGKILL if it has not exited within `timeoutMs`.
 */
export async function stopGroup(child, exited, timeoutMs = STOP_TIMEOUT_MS) {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const signal = (name) => {
    try {
      process.kill(-child.pid, name);
    } catch {
      // Already gone.
    }
  };
  signal("SIGTERM");
  const timedOut = await Promise.race([exited.then(() => false), sleep(timeoutMs).then(() => true)]);
  if (timedOut) {
    signal("SIGKILL");
    await exited;
  }
}

/** Calls `probe` until it returns a truthy value or `timeoutMs` passes; returns the last value. */
export async function eventually(probe, { timeoutMs = 15_000, intervalMs = 100 } = {}) {
  const deadline = Date.now() + timeoutMs;
  let value;
  while (Date.now() < deadline) {
    value = await probe();
    if (value) return value;
    await sleep(intervalMs);
  }
  return value;
}

/** All system events, following cursors (bounded to 50 pages). */
export async function systemEvents(worker) {
  const events = [];
  let cursor = null;
  for (let page = 0; page < 50; page += 1) {
    const query = cursor ? `?cursor=${cursor}&limit=200` : "?limit=200";
    const response = await worker.admin(`/v1/system/events${query}`);
    if (response.status !== 200) throw new Error(`listing system events answered ${response.status}`);
    const body = await response.json();
    events.push(...body.events);
    cursor = body.next_cursor;
    if (!cursor) break;
  }
  return events;
}

/** Arms the fault point `point` of a Worker started with the test routes: the next `fail` operations there fail (0 disarms it). */
export function armFault(worker, point, fail) {
  return worker.admin("/__test/faults", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ point, fail }),
  });
}

/** Asserts the API's error envelope and returns its `error` object. */
export async function errorOf(response) {
  const type = response.headers.get("content-type") ?? "";
  if (!type.startsWith("application/json")) {
    throw new Error(`expected a JSON error, got ${response.status} ${type}: ${await response.text()}`);
  }
  const body = await response.json();
  if (!body.error || typeof body.error.code !== "string" || typeof body.error.message !== "string" || !Array.isArray(body.error.details)) {
    throw new Error(`not an error envelope: ${JSON.stringify(body)}`);
  }
  return body.error;
}

export function randomToken() {
  return randomBytes(32).toString("base64url");
}
