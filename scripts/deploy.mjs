// npm run deploy [-- --env staging|production] [-- --config FILE]
//
// Takes a Cloudflare account to a running switchyard: builds the Worker, creates its queues when
// they are missing, deploys (wrangler provisions D1, KV and R2 on the first deploy and finds them
// again on the next), applies the D1 migrations remotely, sets ADMIN_TOKEN when the secret is
// not set (asking for it on a terminal, generating one otherwise and printing it once), and
// prints the URL and the next step. Every step skips what is already done, so after a failure or
// an interruption the same command finishes the job without creating anything twice.
//
// wrangler is taken from PATH first (a wrapper of your own, or a stand-in in tests), then from
// node_modules/.bin.

import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { createInterface } from "node:readline/promises";
import { delimiter, isAbsolute, join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { readWranglerConfig, WRANGLER_CONFIG } from "./config.mjs";
import { ROOT, setup } from "./setup.mjs";

/** The environments wrangler.jsonc defines; none means the top-level Worker. */
const ENVIRONMENTS = ["staging", "production"];
/** Random bytes in a generated ADMIN_TOKEN: 256 bits, like every other switchyard credential. */
const ADMIN_TOKEN_RANDOM_BYTES = 32;
/** The secret holding the admin tokens (src/core/base/bindings.rs). */
const ADMIN_TOKEN = "ADMIN_TOKEN";

class DeployError extends Error {}

function usage() {
  return "usage: npm run deploy [-- --env staging|production] [-- --config FILE]";
}

function parseArgs(argv) {
  const options = { env: null, config: WRANGLER_CONFIG };
  for (let i = 0; i < argv.length; i += 1) {
    const arg = argv[i];
    const value = () => {
      if (i + 1 >= argv.length) throw new DeployError(`${arg} needs a value\n${usage()}`);
      i += 1;
      return argv[i];
    };
    if (arg === "--env" || arg === "-e") options.env = value();
    else if (arg.startsWith("--env=")) options.env = arg.slice("--env=".length);
    else if (arg === "--config" || arg === "-c") options.config = value();
    else if (arg === "--help" || arg === "-h") options.help = true;
    else throw new DeployError(`unknown argument ${arg}\n${usage()}`);
  }
  if (options.env !== null && !ENVIRONMENTS.includes(options.env)) {
    throw new DeployError(`--env must be one of ${ENVIRONMENTS.join(", ")}, not ${JSON.stringify(options.env)}`);
  }
  if (!isAbsolute(options.config)) options.config = join(process.cwd(), options.config);
  return options;
}

/**
 * The deployed Worker's name and the parts of its configuration the plan needs, for the chosen
 * environment. Bindings are not inherited by environments (wrangler's rule), so an environment
 * must declare its own; a missing one is named with the file and the environment.
 */
export function readDeployConfig(path, env) {
  const shown = relative(process.cwd(), path) || path;
  if (!existsSync(path)) throw new DeployError(`${shown} does not exist`);
  let config;
  try {
    config = readWranglerConfig(path);
  } catch (error) {
    throw new DeployError(error.message);
  }
  if (typeof config?.name !== "string") throw new DeployError(`${shown} has no "name"`);
  const scope = env ? config.env?.[env] : config;
  const where = env ? `${shown}, env.${env}` : shown;
  if (!scope) throw new DeployError(`${shown} has no env.${env} section`);
  const missing = [];
  const d1 = (scope.d1_databases ?? []).find((d) => d.binding === "DB");
  if (!d1) missing.push('the D1 binding "DB" (d1_databases)');
  if (!(scope.kv_namespaces ?? []).some((k) => k.binding === "CACHE")) missing.push('the KV binding "CACHE" (kv_namespaces)');
  if (!(scope.r2_buckets ?? []).some((r) => r.binding === "ARTIFACTS")) missing.push('the R2 binding "ARTIFACTS" (r2_buckets)');
  const producers = scope.queues?.producers ?? [];
  for (const binding of ["STEPS", "STEPS_DLQ"]) {
    if (!producers.some((p) => p.binding === binding)) missing.push(`the queue producer "${binding}" (queues.producers)`);
  }
  const consumers = scope.queues?.consumers ?? [];
  for (const producer of producers.filter((p) => ["STEPS", "STEPS_DLQ"].includes(p.binding))) {
    if (!consumers.some((c) => c.queue === producer.queue)) missing.push(`a consumer of the queue "${producer.queue}" (queues.consumers)`);
  }
  if (missing.length) throw new DeployError(`${where} is missing ${missing.join(", ")}`);
  const queues = [...new Set([...producers.map((p) => p.queue), ...consumers.map((c) => c.queue)])];
  return { worker: env ? scope.name ?? `${config.name}-${env}` : config.name, queues };
}

/** Runs wrangler, showing its output as it comes; resolves to its status and what it printed. */
function wrangler(args, { input, quiet = false } = {}) {
  const env = { ...process.env, PATH: `${process.env.PATH ?? ""}${delimiter}${join(ROOT, "node_modules", ".bin")}` };
  return new Promise((resolve) => {
    const child = spawn("wrangler", args, { cwd: ROOT, env, stdio: ["pipe", "pipe", "pipe"] });
    let output = "";
    const take = (stream) => (chunk) => {
      output += chunk;
      if (!quiet) stream.write(chunk);
    };
    child.stdout.on("data", take(process.stdout));
    child.stderr.on("data", take(process.stderr));
    child.on("error", (error) => resolve({ status: null, output: `wrangler could not be started: ${error.message}` }));
    child.on("close", (status) => resolve({ status, output }));
    child.stdin.end(input ?? "");
  });
}

function failed(step, result, hint) {
  const tail = result.output.trim().split("\n").slice(-5).join("\n");
  return new DeployError(`${step} failed (wrangler exited with ${result.status}).\n${tail}\n${hint}`);
}

const AGAIN = "Fix that, then run `npm run deploy` again: the steps already done are skipped.";

async function askForToken(worker) {
  if (!process.stdin.isTTY) return null;
  const prompt = createInterface({ input: process.stdin, output: process.stdout });
  try {
    const answer = await prompt.question(`[deploy] ${ADMIN_TOKEN} for ${worker} (press Enter to generate one): `);
    return answer.trim() || null;
  } finally {
    prompt.close();
  }
}

export async function deploy(options) {
  const config = readDeployConfig(options.config, options.env);
  const common = ["--config", options.config, ...(options.env ? ["--env", options.env] : [])];
  const steps = [
    "build the Worker (the set-up, skipping what is done)",
    "check the Cloudflare login (wrangler whoami)",
    `create the queues that are missing: ${config.queues.join(", ")}`,
    `deploy ${config.worker} (wrangler provisions D1, KV and R2 on the first deploy)`,
    "apply the D1 migrations to the remote database",
    `set the ${ADMIN_TOKEN} secret if it is not set`,
  ];
  const say = (message) => console.log(`[deploy] ${message}`);
  say(`plan for ${config.worker}: ${steps.map((s, i) => `${i + 1}. ${s}`).join("; ")}`);
  let step = 0;
  const next = () => say(`${++step}/${steps.length} ${steps[step - 1]}`);

  next();
  try {
    setup();
  } catch (error) {
    throw new DeployError(`the set-up failed: ${error.message}\n${AGAIN}`);
  }

  next();
  const whoami = await wrangler(["whoami"], { quiet: true });
  if (whoami.status !== 0 || /not authenticated|not logged in/i.test(whoami.output)) {
    throw new DeployError(
      "not logged in to Cloudflare: run `npx wrangler login` (or set CLOUDFLARE_API_TOKEN and CLOUDFLARE_ACCOUNT_ID), then `npm run deploy` again",
    );
  }

  next();
  for (const queue of config.queues) {
    const info = await wrangler(["queues", "info", queue], { quiet: true });
    if (info.status === 0) {
      say(`  queue ${queue}: exists`);
      continue;
    }
    const created = await wrangler(["queues", "create", queue]);
    if (created.status !== 0) throw failed(`creating the queue ${queue}`, created, AGAIN);
  }

  next();
  const deployed = await wrangler(["deploy", ...common]);
  if (deployed.status !== 0) throw failed("wrangler deploy", deployed, AGAIN);
  const url = deployed.output.match(/https:\/\/[^\s]+\.workers\.dev/)?.[0] ?? null;

  next();
  // No terminal to confirm on: wrangler applies the pending migrations without asking.
  const migrated = await wrangler(["d1", "migrations", "apply", "DB", "--remote", ...common]);
  if (migrated.status !== 0) throw failed("applying the D1 migrations", migrated, AGAIN);

  next();
  const listed = await wrangler(["secret", "list", "--format", "json", ...common], { quiet: true });
  if (listed.status !== 0) throw failed("listing the Worker's secrets", listed, AGAIN);
  let secrets;
  try {
    secrets = JSON.parse(listed.output.slice(listed.output.indexOf("[")));
  } catch {
    throw new DeployError(`wrangler secret list printed no JSON list:\n${listed.output.trim()}\n${AGAIN}`);
  }
  let generated = null;
  if (secrets.some((s) => s.name === ADMIN_TOKEN)) {
    say(`  ${ADMIN_TOKEN}: set already (rotate it with \`npx wrangler secret put ${ADMIN_TOKEN}${options.env ? ` --env ${options.env}` : ""}\`)`);
  } else {
    let token = await askForToken(config.worker);
    if (!token) {
      token = randomBytes(ADMIN_TOKEN_RANDOM_BYTES).toString("base64url");
      generated = token;
    }
    const put = await wrangler(["secret", "put", ADMIN_TOKEN, ...common], { input: `${token}\n`, quiet: true });
    if (put.status !== 0) throw failed(`setting ${ADMIN_TOKEN}`, put, AGAIN);
  }

  const base = url ?? "<the URL wrangler printed above>";
  say(`done: ${config.worker} is deployed at ${base}`);
  if (generated) say(`${ADMIN_TOKEN} (shown once, keep it somewhere safe): ${generated}`);
  say(`next: curl ${base}/health`);
  say(`      curl -H "Authorization: Bearer $ADMIN_TOKEN" ${base}/v1/agents`);
  say(`      then connect an agent: switchyard-agent run --url ${base} --agent context-fetcher --token $ADMIN_TOKEN -- <your coding agent>`);
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  try {
    const options = parseArgs(process.argv.slice(2));
    if (options.help) console.log(usage());
    else await deploy(options);
  } catch (error) {
    console.error(`[deploy] ${error instanceof DeployError ? error.message : error.stack}`);
    process.exit(1);
  }
}
