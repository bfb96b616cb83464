// switchyard-agent against the real Worker: runners for the five default agents, each running
// a small shell script that edits its own clone of a git repository, take a full-stack task to
// success; the task's metrics equal the real diff; a failing command is retried; a hung one is
// stopped at its limit; cancelling the task stops the running command.

import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { AGENT_BINARY } from "../scripts/setup.mjs";
import { issueToken, submit, taskOf } from "./helpers/agents.mjs";
import { signed } from "./helpers/webhook.mjs";
import { git, workTree } from "./helpers/git.mjs";
import { eventually, freePort, startWorker } from "./helpers/worker.mjs";

const AGENTS = ["context-fetcher", "cloudflare-specialist", "sveltekit-specialist", "project-manager", "test-runner"];

/** What each agent's command does in its clone. The report claims figures the runner must
 * replace with what git measures. */
const SCRIPTS = {
  "context-fetcher": `echo "read the routes"; echo '{"notes": "context gathered"}' > "$SWITCHYARD_REPORT_FILE"`,
  "cloudflare-specialist": [
    "mkdir -p migrations src",
    "printf 'CREATE TABLE comments (id INTEGER PRIMARY KEY, body TEXT);\\n' > migrations/0001_comments.sql",
    "printf 'export async function list(env) {\\n  return env.DB.prepare(\"SELECT * FROM comments\").all();\\n}\\n' > src/comments.ts",
    "printf 'd1 = \"switchyard\"\\n' >> wrangler.toml",
    `echo '{"lines_added": 9999, "feedback": {"Services configured": ["D1 comments table"]}}' > "$SWITCHYARD_REPORT_FILE"`,
  ].join(" && "),
  "sveltekit-specialist": [
    "mkdir -p src/routes/comments",
    "printf '<script>\\n  let { data } = $props();\\n</script>\\n<ul>{#each data.comments as c}<li>{c.body}</li>{/each}</ul>\\n' > src/routes/comments/+page.svelte",
    "sed -i 's/old title/new title/' README.md",
  ].join(" && "),
  "project-manager": `echo "checked the integration"; echo '{"integration_points": ["the page loads GET /api/comments"]}' > "$SWITCHYARD_REPORT_FILE"`,
  // Fails its first attempt, as a flaky test suite would.
  "test-runner": `if [ "$SWITCHYARD_ATTEMPT" = "1" ]; then echo "flaky failure" >&2; exit 3; fi; echo '{"tests": {"unit": {"passed": 12}}}' > "$SWITCHYARD_REPORT_FILE"`,
};

describe("switchyard-agent runners", { timeout: 300_000 }, () => {
  let worker;
  let scratch;
  const runners = [];
  const tokens = {};
  before(async () => {
    assert.ok(existsSync(AGENT_BINARY), `${AGENT_BINARY} is built by the set-up`);
    worker = await startWorker();
    scratch = mkdtempSync(join(tmpdir(), "switchyard-runners-"));
    workTree(join(scratch, "origin"), { "README.md": "# old title\n\nComments app.\n", "wrangler.toml": 'name = "app"\n' });
    for (const name of AGENTS) tokens[name] = await issueToken(worker, name);
  });
  after(async () => {
    for (const runner of runners) if (runner.exitCode === null) runner.kill("SIGKILL");
    await worker?.stop();
    if (scratch) rmSync(scratch, { recursive: true, force: true });
  });

  /** Starts a runner for `name` in its own clone; returns the process and the clone. */
  function startRunner(name, token, script, extra = []) {
    const clone = join(scratch, `${name}-${runners.length}`);
    spawnSync("git", ["clone", "-q", join(scratch, "origin"), clone]);
    const args = ["run", "--url", worker.url, "--agent", name, "--token", token, "--workdir", clone, "--heartbeat-seconds", "1", ...extra, "--", "sh", "-c", script];
    const runner = spawn(AGENT_BINARY, args, { stdio: ["ignore", "pipe", "pipe"] });
    runner.output = "";
    runner.stdout.on("data", (chunk) => (runner.output += chunk));
    runner.stderr.on("data", (chunk) => (runner.output += chunk));
    runners.push(runner);
    return { runner, clone };
  }

  test("five runners take a full-stack task to success and its metrics are the real diff", async () => {
    const clones = {};
    for (const name of AGENTS) clones[name] = startRunner(name, tokens[name], SCRIPTS[name]).clone;
    const task = (await submit(worker, { title: "Add a D1-backed comments API and a SvelteKit page that lists the comments" })).body.task;
    const done = await eventually(async () => {
      const read = await taskOf(worker, task.id);
      return read.status !== "running" && read;
    }, { timeoutMs: 120_000, intervalMs: 250 });
    assert.equal(done?.status, "succeeded", runners.map((r) => r.output).join("\n"));
    const testing = done.steps.find((s) => s.agent === "test-runner");
    assert.deepEqual(testing.attempts.map((a) => a.status), ["failed", "succeeded"], "the failed command was retried");

    const metrics = Object.fromEntries((await (await worker.admin(`/v1/tasks/${task.id}/metrics`)).json()).agents.map((m) => [m.agent, m]));
    for (const name of ["cloudflare-specialist", "sveltekit-specialist"]) {
      // The real diff of the clone against where it started.
      git(clones[name], "add", "-A");
      const status = git(clones[name], "diff", "--cached", "--name-status").trim().split("\n");
      const numstat = git(clones[name], "diff", "--cached", "--numstat").trim().split("\n").map((l) => l.split("\t"));
      const real = {
        files_created: status.filter((l) => l.startsWith("A")).length,
        files_modified: status.filter((l) => l.startsWith("M")).length,
        lines_added: numstat.reduce((n, [a]) => n + Number(a), 0),
        lines_removed: numstat.reduce((n, [, r]) => n + Number(r), 0),
      };
      const m = metrics[name];
      assert.deepEqual(
        { files_created: m.files_created, files_modified: m.files_modified, lines_added: m.lines_added, lines_removed: m.lines_removed },
        real,
        name,
      );
    }
    assert.deepEqual(
      [metrics["cloudflare-specialist"].files_created, metrics["cloudflare-specialist"].lines_added],
      [2, 5],
      "the measured figures replaced the claimed 9999 lines",
    );
    const log = await (await worker.admin(`/v1/tasks/${task.id}/logs/test-runner`)).text();
    assert.match(log, /flaky failure/, "the command's output is the step's log");
    const summary = await (await worker.admin(`/v1/tasks/${task.id}/summary`)).text();
    assert.match(summary, /- Unit: 12\n/);
    for (const runner of runners) runner.kill("SIGTERM");
  });

  async function soloAgent(name, attempts = 1) {
    const created = await worker.admin("/v1/agents", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ name, capabilities: ["waiting"] }),
    });
    const { token } = await created.json();
    const flow = await worker.admin("/v1/workflows", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ name: `${name}-flow`, steps: [{ key: "1", name: "wait", agent: name, attributes: { max_attempts: String(attempts) } }] }),
    });
    assert.equal(flow.status, 201);
    return token;
  }

  test("a hung command is stopped at its time limit and the attempt fails", async () => {
    const token = await soloAgent("sleepy-agent");
    const { runner } = startRunner("sleepy-agent", token, "echo going to sleep; sleep 60", ["--timeout-seconds", "2", "--steps", "1"]);
    const task = (await submit(worker, { title: "Sleep", workflow: "sleepy-agent-flow" })).body.task;
    const dead = await eventually(async () => {
      const read = await taskOf(worker, task.id);
      return read.status === "failed" && read;
    }, { timeoutMs: 30_000, intervalMs: 250 });
    assert.ok(dead, runner.output);
    assert.match(dead.steps[0].attempts[0].error, /ran past its 2 s limit/);
    assert.ok(await eventually(() => runner.exitCode !== null, { timeoutMs: 15_000 }), "the runner finished its one step");
  });

  test("a report switchyard refuses (loop items that are not a list) fails the attempt with the reason", async () => {
    const token = await soloAgent("listing-agent", 2);
    const post = (name, text) =>
      worker.admin(`/v1/workflows?name=${name}`, { method: "POST", headers: { "content-type": "text/markdown" }, body: text });
    const child = `# Part\n\n<process_flow>\n<step number="1" subagent="listing-agent" name="build">Build it.</step>\n</process_flow>\n`;
    assert.equal((await post("listed-part", child)).status, 201);
    const flow = `# Listed\n\n<process_flow>\n<step number="1" subagent="listing-agent" name="list">List the parts.</step>
<step number="2" name="each_part">\nFOR each part listed in Step 1:\n  EXECUTE instructions from listed-part.md\nEND FOR\nLOAD @listed-part.md\n</step>\n</process_flow>\n`;
    assert.equal((await post("listed-flow", flow)).status, 201);
    const script = `echo '{"notes": "two parts", "items": "the header and the footer"}' > "$SWITCHYARD_REPORT_FILE"`;
    const { runner } = startRunner("listing-agent", token, script, ["--steps", "1"]);
    const task = (await submit(worker, { title: "Build the parts", workflow: "listed-flow" })).body.task;
    const failed = await eventually(async () => {
      const read = await taskOf(worker, task.id);
      return read.steps[0].attempts[0]?.status === "failed" && read;
    }, { timeoutMs: 30_000, intervalMs: 250 });
    assert.ok(failed, runner.output);
    assert.match(failed.steps[0].attempts[0].error, /switchyard refused the report: 422 .*report\.items must be a list/);
    assert.equal(failed.steps.length, 3, "no copies were made");
    assert.ok(await eventually(() => runner.exitCode !== null, { timeoutMs: 15_000 }), runner.output);
    assert.equal(runner.exitCode, 0, runner.output);
    await worker.admin(`/v1/tasks/${task.id}/cancel`, { method: "POST" });
  });

  test("cancelling the task stops the running command", async () => {
    const token = await soloAgent("stoppable-agent", 3);
    const marker = join(scratch, "marker.txt");
    const script = `echo started > ${marker}; sleep 20; echo finished >> ${marker}`;
    const { runner } = startRunner("stoppable-agent", token, script, ["--steps", "1"]);
    const task = (await submit(worker, { title: "Stop me", workflow: "stoppable-agent-flow" })).body.task;
    assert.ok(await eventually(() => existsSync(marker), { timeoutMs: 30_000 }), runner.output);
    assert.equal((await worker.admin(`/v1/tasks/${task.id}/cancel`, { method: "POST" })).status, 200);
    assert.ok(await eventually(() => runner.exitCode !== null, { timeoutMs: 20_000 }), `the runner left the step: ${runner.output}`);
    assert.match(runner.output, /heartbeat was refused/);
    await new Promise((resolve) => setTimeout(resolve, 500));
    assert.equal(readFileSync(marker, "utf8"), "started\n", "the command was stopped before it finished");
  });

  test("Ctrl-C hands the running step back for another attempt and the runner exits", async () => {
    const token = await soloAgent("interrupted-agent", 3);
    const marker = join(scratch, "interrupt-marker.txt");
    const { runner } = startRunner("interrupted-agent", token, `echo started > ${marker}; sleep 20`);
    const task = (await submit(worker, { title: "Interrupt me", workflow: "interrupted-agent-flow" })).body.task;
    assert.ok(await eventually(() => existsSync(marker), { timeoutMs: 30_000 }), runner.output);
    runner.kill("SIGINT");
    assert.ok(await eventually(() => runner.exitCode !== null, { timeoutMs: 20_000 }), runner.output);
    const step = (await taskOf(worker, task.id)).steps[0];
    assert.equal(step.attempts[0].status, "failed");
    assert.match(step.attempts[0].error, /handed back for another attempt/);
    assert.ok(["failed", "queued"].includes(step.status), `the step waits for its next attempt, not a lease: ${step.status}`);
  });

  /** Starts `switchyard-agent serve` for a webhook agent and waits until it listens; its stderr is kept in `output`. */
  async function startServe(agentName, { token, secret, port, workdir }, rest) {
    const server = spawn(
      AGENT_BINARY,
      ["serve", "--url", worker.url, "--agent", agentName, "--token", token, "--secret", secret, "--listen", `127.0.0.1:${port}`, "--workdir", workdir, ...rest],
      { stdio: ["ignore", "ignore", "pipe"] },
    );
    server.output = "";
    server.stderr.on("data", (chunk) => (server.output += chunk));
    runners.push(server);
    assert.ok(await eventually(() => server.output.includes("serving webhook deliveries"), { timeoutMs: 10_000 }), server.output);
    return server;
  }

  test("a webhook agent served by `serve` completes its step, forged deliveries are refused and a resent one is acted on once", async () => {
    const port = await freePort();
    const created = await worker.admin("/v1/agents", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ name: "served-agent", mode: "webhook", webhook_url: `http://127.0.0.1:${port}/hook`, capabilities: ["serving"] }),
    });
    assert.equal(created.status, 201);
    const { token, webhook_secret: secret } = await created.json();
    const flow = await worker.admin("/v1/workflows", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ name: "served-flow", steps: [{ key: "1", name: "serve_it", agent: "served-agent" }] }),
    });
    assert.equal(flow.status, 201);
    const clone = join(scratch, "served");
    spawnSync("git", ["clone", "-q", join(scratch, "origin"), clone]);
    const script = "printf 'served\\n' > served.txt; echo handled the delivery";
    const server = await startServe("served-agent", { token, secret, port, workdir: clone }, ["--", "sh", "-c", script]);

    const task = (await submit(worker, { title: "Serve it", workflow: "served-flow" })).body.task;
    const done = await eventually(async () => {
      const read = await taskOf(worker, task.id);
      return read.status !== "running" && read;
    }, { timeoutMs: 60_000, intervalMs: 250 });
    assert.equal(done?.status, "succeeded", server.output);
    const metrics = (await (await worker.admin(`/v1/tasks/${task.id}/metrics`)).json()).agents[0];
    assert.deepEqual([metrics.files_created, metrics.lines_added], [1, 1], "the served step's change was measured");

    const body = JSON.stringify({ message: { id: "msg_test", type: "notify", from: "test-runner", payload: {} } });
    const deliver = (headers) => fetch(`http://127.0.0.1:${port}/hook`, { method: "POST", headers: { "content-type": "application/json", ...headers }, body });
    // Signed with the standardwebhooks package, as switchyard signs deliveries.
    const good = signed(secret, "dlv-1", body);
    assert.equal((await deliver(good)).status, 200);
    const again = await deliver(good);
    assert.equal(again.status, 202, "the same delivery again (switchyard resends under the same id) is acknowledged");
    assert.deepEqual(await again.json(), { duplicate: "dlv-1" }, "and not acted on twice");
    assert.equal((await deliver({ ...good, "webhook-id": "dlv-new" })).status, 401, "a delivery replayed under a new id is refused: the id is signed");
    assert.equal((await deliver(signed("whsec_Zm9yZ2VkIGJ5IHNvbWVvbmUgZWxzZQ==", "dlv-2", body))).status, 401);
    assert.equal((await deliver(signed(secret, "dlv-3", body, new Date(Date.now() - 3600_000)))).status, 401);
    server.kill("SIGTERM");
  });

  test("`serve` heartbeats the steps waiting for their turn, so none expires while an earlier one runs", async () => {
    const port = await freePort();
    const created = await worker.admin("/v1/agents", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ name: "queued-agent", mode: "webhook", webhook_url: `http://127.0.0.1:${port}/hook`, capabilities: ["serving"], max_concurrency: 2, lease_ms: 2000 }),
    });
    assert.equal(created.status, 201);
    const { token, webhook_secret: secret } = await created.json();
    const flow = await worker.admin("/v1/workflows", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ name: "queued-flow", steps: ["a", "b"].map((l) => ({ key: `1${l}`, name: `part_${l}`, agent: "queued-agent", group: "g" })) }),
    });
    assert.equal(flow.status, 201);
    const workdir = mkdtempSync(join(scratch, "queued-"));
    const command = ["--heartbeat-seconds", "1", "--", "sh", "-c", "if [ ! -f first ]; then touch first; sleep 23; fi; echo done"];
    const server = await startServe("queued-agent", { token, secret, port, workdir }, command);
    const task = (await submit(worker, { title: "Two parts, one work directory", workflow: "queued-flow" })).body.task;
    // While the first part runs (23 s), the second waits past its delivery's lease (20 s); sweeps
    // run meanwhile and would expire it without the waiting heartbeats.
    for (let i = 0; i < 16; i += 1) {
      await new Promise((resolve) => setTimeout(resolve, 1500));
      assert.equal((await worker.fetch("/__scheduled?cron=*+*+*+*+*")).status, 200);
    }
    const done = await eventually(async () => {
      const read = await taskOf(worker, task.id);
      return read.status !== "running" && read;
    }, { timeoutMs: 30_000, intervalMs: 250 });
    assert.equal(done?.status, "succeeded", server.output);
    assert.deepEqual(done.steps.map((s) => s.attempts.map((a) => a.status)), [["succeeded"], ["succeeded"]], server.output);
    server.kill("SIGTERM");
  });

  test("send --wait prints the answer to a query, and inbox lists what arrived", async () => {
    const env = { ...process.env, SWITCHYARD_URL: worker.url };
    const asking = spawn(
      AGENT_BINARY,
      ["send", "--token", tokens["sveltekit-specialist"], "--from", "sveltekit-specialist", "--to", "cloudflare-specialist",
        "--correlation-id", "cli-question", "--payload", '{"question":"Which KV key?"}', "--wait", "30"],
      { env, stdio: ["ignore", "pipe", "pipe"] },
    );
    let printed = "";
    asking.stdout.on("data", (chunk) => (printed += chunk));
    asking.stderr.on("data", (chunk) => (printed += chunk));
    // "close", not "exit": only then has all of its output been read.
    const exited = new Promise((resolve) => asking.once("close", resolve));
    runners.push(asking);
    const listed = await eventually(() => {
      const result = spawnSync(AGENT_BINARY, ["inbox", "--token", tokens["cloudflare-specialist"], "--agent", "cloudflare-specialist", "--wait", "1"], {
        env,
        encoding: "utf8",
      });
      const messages = JSON.parse(result.stdout || "{}").messages ?? [];
      return messages.some((m) => m.correlation_id === "cli-question") && messages;
    }, { timeoutMs: 20_000 });
    assert.ok(listed, "the query reached the inbox");
    const reply = await worker.fetch("/v1/messages", {
      method: "POST",
      headers: { authorization: `Bearer ${tokens["cloudflare-specialist"]}`, "content-type": "application/json" },
      body: JSON.stringify({ from: "cloudflare-specialist", to: "sveltekit-specialist", type: "response", payload: { answer: "session:{id}" }, correlation_id: "cli-question" }),
    });
    assert.equal(reply.status, 201);
    assert.equal(await exited, 0, printed);
    assert.equal(JSON.parse(printed).payload.answer, "session:{id}");
  });

  test("a wrong token, an unknown agent and a missing work directory are explained", () => {
    const cases = [
      [["--token", "sya_not-a-real-token-not-a-real-token-abcdef", "--agent", "test-runner"], /token was refused \(401\)/],
      [["--token", tokens["test-runner"], "--agent", "context-fetcher"], /this token is test-runner's, not context-fetcher's/],
      [["--token", worker.adminToken, "--agent", "no-such-agent"], /no agent named no-such-agent is registered \(404\)/],
      [["--token", tokens["test-runner"], "--agent", "test-runner", "--workdir", join(scratch, "missing")], /work directory .* does not exist/],
    ];
    for (const [flags, expected] of cases) {
      const workdir = flags.includes("--workdir") ? [] : ["--workdir", scratch];
      const args = ["run", "--url", worker.url, ...workdir, "--steps", "1", ...flags, "--", "true"];
      const result = spawnSync(AGENT_BINARY, args, { encoding: "utf8", timeout: 60_000 });
      assert.notEqual(result.status, 0, flags.join(" "));
      assert.match(result.stderr, expected, result.stderr);
    }
    const unreachable = spawnSync(AGENT_BINARY, ["run", "--url", "http://127.0.0.1:9", "--agent", "x", "--token", "t", "--", "true"], {
      encoding: "utf8",
      timeout: 60_000,
    });
    assert.match(unreachable.stderr, /cannot reach http:\/\/127\.0\.0\.1:9/);
  });
});
