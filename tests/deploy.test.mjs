// npm run deploy, proven offline: the real configuration passes `wrangler deploy --dry-run` for
// every environment, and the deploy script's plan runs against a stand-in `wrangler` on PATH
// that records each call and keeps a pretend account (queues, secrets, provisioned resources),
// so that a re-run, a run that is not logged in, a broken configuration and an interrupted run
// can each be checked for what they do and what they leave.

import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { delimiter, join } from "node:path";
import { after, before, describe, test } from "node:test";
import { parse as parseJsonc } from "jsonc-parser";
import { ROOT } from "../scripts/setup.mjs";
import { QUIET_ENV } from "./helpers/worker.mjs";

const DEPLOY = join(ROOT, "scripts", "deploy.mjs");
const WRANGLER = join(ROOT, "node_modules", ".bin", "wrangler");
/** A deploy runs the set-up first (up to date here) and a dozen stand-in calls. */
const DEPLOY_TIMEOUT_MS = 120_000;

/** The stand-in: one call per line in the log, the account's state in a JSON file. */
const FAKE_WRANGLER = `#!/usr/bin/env node
const { appendFileSync, readFileSync, writeFileSync } = require("node:fs");
const args = process.argv.slice(2);
const stdin = process.stdin.isTTY ? "" : readFileSync(0, "utf8");
appendFileSync(process.env.FAKE_WRANGLER_LOG, JSON.stringify({ args, stdin }) + "\\n");
const statePath = process.env.FAKE_WRANGLER_STATE;
const state = JSON.parse(readFileSync(statePath, "utf8"));
const save = () => writeFileSync(statePath, JSON.stringify(state));
const envName = args.includes("--env") ? args[args.indexOf("--env") + 1] : null;
const worker = envName ? "switchyard-" + envName : "switchyard";
const [command, sub, name] = args;
if (command === "whoami") {
  console.log(state.loggedIn ? "You are logged in with an API Token, associated with the email dev@example.com." : "You are not authenticated. Please run \`wrangler login\`.");
} else if (command === "queues" && sub === "info") {
  if (!state.queues.includes(name)) { console.error("Queue " + name + " does not exist"); process.exit(1); }
  console.log("Queue Name: " + name);
} else if (command === "queues" && sub === "create") {
  if (state.queues.includes(name)) { console.error("A queue with this name already exists [code: 11009]"); process.exit(1); }
  state.queues.push(name); save();
  console.log("Created queue " + name);
} else if (command === "deploy") {
  if (state.failDeploy) { state.failDeploy = false; save(); console.error("✘ [ERROR] The connection was reset"); process.exit(1); }
  if (!state.provisioned.includes(worker)) { state.provisioned.push(worker); state.created += 3; save(); }
  console.log("Deployed " + worker + " triggers\\n  https://" + worker + ".example.workers.dev\\n  schedule: * * * * *");
} else if (command === "d1" && sub === "migrations") {
  state.migrated.push(worker); save();
  console.log("No migrations to apply!");
} else if (command === "secret" && sub === "list") {
  console.log(JSON.stringify((state.secrets[worker] ?? []).map((n) => ({ name: n, type: "secret_text" }))));
} else if (command === "secret" && sub === "put") {
  state.secrets[worker] = [...(state.secrets[worker] ?? []), name];
  state.values[worker + "/" + name] = stdin.trim(); save();
  console.log("✨ Success! Uploaded secret " + name);
} else {
  console.error("the stand-in does not know: " + args.join(" ")); process.exit(2);
}
`;

describe("npm run deploy", { timeout: 10 * DEPLOY_TIMEOUT_MS }, () => {
  let dir;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), "switchyard-deploy-"));
    writeFileSync(join(dir, "wrangler"), FAKE_WRANGLER);
    chmodSync(join(dir, "wrangler"), 0o755);
  });
  after(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  /** A pretend account; `deploy()` runs the script against it and returns what happened. */
  function account(initial = {}) {
    const id = Math.random().toString(36).slice(2);
    const statePath = join(dir, `state-${id}.json`);
    const logPath = join(dir, `log-${id}.jsonl`);
    const state = { loggedIn: true, queues: [], secrets: {}, values: {}, provisioned: [], created: 0, migrated: [], failDeploy: false, ...initial };
    writeFileSync(statePath, JSON.stringify(state));
    writeFileSync(logPath, "");
    let calls = 0;
    return {
      state: () => JSON.parse(readFileSync(statePath, "utf8")),
      deploy(args = []) {
        const result = spawnSync(process.execPath, [DEPLOY, ...args], {
          cwd: ROOT,
          encoding: "utf8",
          timeout: DEPLOY_TIMEOUT_MS,
          input: "",
          env: { ...process.env, PATH: `${dir}${delimiter}${process.env.PATH}`, FAKE_WRANGLER_STATE: statePath, FAKE_WRANGLER_LOG: logPath },
        });
        const lines = readFileSync(logPath, "utf8").split("\n").filter(Boolean).map((line) => JSON.parse(line));
        const these = lines.slice(calls);
        calls = lines.length;
        return { status: result.status, stdout: result.stdout, stderr: result.stderr, calls: these.map((c) => c.args.join(" ")), raw: these };
      },
    };
  }

  const config = join(ROOT, "wrangler.jsonc");
  const withConfig = (extra) => `--config ${config}${extra}`;

  test("a fresh account gets its queues, the Worker, the migrations and a generated admin token shown once", () => {
    const cf = account();
    const run = cf.deploy();
    assert.equal(run.status, 0, run.stderr + run.stdout);
    assert.deepEqual(run.calls, [
      "whoami",
      "queues info switchyard-steps",
      "queues create switchyard-steps",
      "queues info switchyard-steps-dlq",
      "queues create switchyard-steps-dlq",
      `deploy ${withConfig("")}`,
      `d1 migrations apply DB --remote ${withConfig("")}`,
      `secret list --format json ${withConfig("")}`,
      `secret put ADMIN_TOKEN ${withConfig("")}`,
    ]);
    const state = cf.state();
    assert.equal(state.created, 3, "D1, KV and R2 provisioned once by the deploy");
    const token = state.values["switchyard/ADMIN_TOKEN"];
    assert.match(token, /^[A-Za-z0-9_-]{43}$/);
    assert.equal(run.stdout.split(token).length - 1, 1, "the generated token is printed exactly once");
    assert.match(run.stdout, /deployed at https:\/\/switchyard\.example\.workers\.dev/);
    assert.match(run.stdout, /next: curl https:\/\/switchyard\.example\.workers\.dev\/health/);
  });

  test("running it again creates nothing twice and keeps the admin token", () => {
    const cf = account();
    assert.equal(cf.deploy().status, 0);
    const before = cf.state();
    const again = cf.deploy();
    assert.equal(again.status, 0, again.stderr);
    assert.ok(!again.calls.some((c) => c.startsWith("queues create") || c.startsWith("secret put")), again.calls.join("\n"));
    const after = cf.state();
    assert.deepEqual(after.queues, before.queues);
    assert.equal(after.created, 3);
    assert.equal(after.values["switchyard/ADMIN_TOKEN"], before.values["switchyard/ADMIN_TOKEN"]);
    assert.match(again.stdout, /ADMIN_TOKEN: set already/);
  });

  test("without a Cloudflare login it says how to log in and touches nothing", () => {
    const cf = account({ loggedIn: false });
    const run = cf.deploy();
    assert.equal(run.status, 1);
    assert.match(run.stderr, /not logged in to Cloudflare: run `npx wrangler login`/);
    assert.deepEqual(run.calls, ["whoami"]);
    assert.deepEqual(cf.state().queues, []);
  });

  test("a configuration missing a binding is named, and nothing is run", () => {
    const broken = parseJsonc(readFileSync(config, "utf8"));
    broken.kv_namespaces = [];
    broken.env.staging.queues.consumers = [];
    const path = join(dir, "broken.jsonc");
    writeFileSync(path, JSON.stringify(broken));
    const cf = account();
    const top = cf.deploy(["--config", path]);
    assert.equal(top.status, 1);
    assert.match(top.stderr, /broken\.jsonc is missing the KV binding "CACHE" \(kv_namespaces\)/);
    const staging = cf.deploy(["--config", path, "--env", "staging"]);
    assert.equal(staging.status, 1);
    assert.match(staging.stderr, /env\.staging is missing a consumer of the queue "switchyard-staging-steps"/);
    assert.deepEqual([...top.calls, ...staging.calls], []);
  });

  test("bad arguments are refused before anything runs", () => {
    const cf = account();
    for (const args of [["--env", "qa"], ["--env"], ["--flag"]]) {
      const run = cf.deploy(args);
      assert.equal(run.status, 1, args.join(" "));
      assert.match(run.stderr, /--env must be one of staging, production|needs a value|unknown argument/);
      assert.deepEqual(run.calls, []);
    }
  });

  test("a deploy interrupted halfway says to run it again, and the second run finishes without duplicates", () => {
    const cf = account({ failDeploy: true });
    const first = cf.deploy();
    assert.equal(first.status, 1);
    assert.match(first.stderr, /wrangler deploy failed .*\n[\s\S]*run `npm run deploy` again/);
    assert.deepEqual(cf.state().queues, ["switchyard-steps", "switchyard-steps-dlq"]);
    assert.deepEqual(cf.state().secrets, {});
    const second = cf.deploy();
    assert.equal(second.status, 0, second.stderr);
    assert.ok(!second.calls.some((c) => c.startsWith("queues create")));
    const state = cf.state();
    assert.equal(state.created, 3);
    assert.deepEqual(state.migrated, ["switchyard"]);
    assert.deepEqual(state.secrets, { switchyard: ["ADMIN_TOKEN"] });
  });

  test("--env staging deploys the staging Worker with its own queues", () => {
    const cf = account();
    const run = cf.deploy(["--env", "staging"]);
    assert.equal(run.status, 0, run.stderr);
    assert.ok(run.calls.includes(`deploy ${withConfig(" --env staging")}`), run.calls.join("\n"));
    assert.ok(run.calls.includes(`d1 migrations apply DB --remote ${withConfig(" --env staging")}`));
    assert.deepEqual(cf.state().queues, ["switchyard-staging-steps", "switchyard-staging-steps-dlq"]);
    assert.deepEqual(Object.keys(cf.state().secrets), ["switchyard-staging"]);
  });

  for (const target of [null, "staging", "production"]) {
    test(`wrangler deploy --dry-run accepts the real configuration${target ? ` for --env ${target}` : ""}`, () => {
      const out = join(dir, `dry-run-${target ?? "top"}`);
      const args = ["deploy", "--dry-run", "--outdir", out, "--config", config, ...(target ? ["--env", target] : [])];
      // WRANGLER_LOG at its default: the quieter "info" of the test runtimes hides the binding table.
      const env = { ...QUIET_ENV, WRANGLER_LOG: "log" };
      const result = spawnSync(WRANGLER, args, { cwd: ROOT, encoding: "utf8", env, timeout: DEPLOY_TIMEOUT_MS });
      const output = `${result.stdout}\n${result.stderr}`;
      assert.equal(result.status, 0, output);
      assert.match(output, /--dry-run: exiting now/);
      const prefix = target ? `switchyard-${target}` : "switchyard";
      for (const binding of ["env.CACHE", `env.DB (${prefix})`, `env.ARTIFACTS (${prefix}-artifacts)`, `env.STEPS (${prefix}-steps)`, `env.STEPS_DLQ (${prefix}-steps-dlq)`]) {
        assert.ok(output.includes(binding), `${binding} in:\n${output}`);
      }
    });
  }
});
