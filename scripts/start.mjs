// npm start: set everything up, apply the D1 migrations to the local state, and serve the
// Worker at http://localhost:8787 with local D1, KV, R2 and Queues that survive restarts
// (state in .wrangler/state). A ticker calls the scheduled handler every minute, because
// wrangler dev does not fire cron triggers by itself.

import { spawn, spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { ROOT, setup } from "./setup.mjs";

const PORT = Number(process.env.PORT ?? 8787);
const STATE_DIR = join(ROOT, ".wrangler", "state");
const DEV_VARS = join(ROOT, ".dev.vars");
const WRANGLER = join(ROOT, "node_modules", ".bin", "wrangler");
/** The cron trigger in wrangler.toml fires every minute; so does the local ticker. */
const TICK_MS = 60_000;
const ENV = { ...process.env, WRANGLER_SEND_METRICS: "false" };

try {
  setup();
} catch (error) {
  console.error(`[setup] ${error.message}`);
  process.exit(1);
}

// A local admin token, made once and kept in .dev.vars (ignored by git).
if (!existsSync(DEV_VARS)) {
  writeFileSync(DEV_VARS, `ADMIN_TOKEN=${randomBytes(32).toString("base64url")}\n`, { mode: 0o600 });
  console.log("[start] created .dev.vars with a new random ADMIN_TOKEN");
}
const token = /^ADMIN_TOKEN=(.*)$/m.exec(readFileSync(DEV_VARS, "utf8"))?.[1]?.trim();

console.log("[start] applying D1 migrations to the local database");
const migrate = spawnSync(WRANGLER, ["d1", "migrations", "apply", "DB", "--local", "--persist-to", STATE_DIR], {
  cwd: ROOT,
  env: ENV,
  stdio: "inherit",
});
if (migrate.status !== 0) process.exit(migrate.status ?? 1);

const dev = spawn(
  WRANGLER,
  ["dev", "--port", String(PORT), "--persist-to", STATE_DIR, "--test-scheduled", "--show-interactive-dev-session=false"],
  { cwd: ROOT, env: ENV, stdio: "inherit" },
);

const base = `http://localhost:${PORT}`;
let ready = false;
const waitForReady = setInterval(async () => {
  try {
    const response = await fetch(`${base}/health`);
    await response.arrayBuffer();
    if (!ready) {
      ready = true;
      clearInterval(waitForReady);
      console.log(`
[start] switchyard is serving at ${base}
[start]   curl ${base}/health
[start]   curl -H "Authorization: Bearer ${token ?? "<ADMIN_TOKEN from .dev.vars>"}" ${base}/v1/whoami
[start] The admin token is in .dev.vars. Cron runs every minute through ${base}/__scheduled.
`);
    }
  } catch {
    // Not listening yet.
  }
}, 500);

const ticker = setInterval(async () => {
  if (!ready) return;
  try {
    const response = await fetch(`${base}/__scheduled?cron=${encodeURIComponent("* * * * *")}`);
    await response.arrayBuffer();
  } catch (error) {
    console.error(`[start] cron tick failed: ${error.message}`);
  }
}, TICK_MS);

function shutDown(signal) {
  clearInterval(waitForReady);
  clearInterval(ticker);
  if (dev.exitCode === null) dev.kill(signal);
}
process.on("SIGINT", () => shutDown("SIGINT"));
process.on("SIGTERM", () => shutDown("SIGTERM"));
dev.on("exit", (code) => {
  clearInterval(waitForReady);
  clearInterval(ticker);
  process.exit(code ?? 0);
});
