// What an agent is handed with a step: the task, the workflow and the step's place in it, the
// agent itself and the report contract, in a lease and a webhook delivery alike; parts over their
// bound fetched whole from R2; and an agent reading the tasks it worked on, and no others.

import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { AGENT_BINARY, ROOT } from "../scripts/setup.mjs";
import { agent, issueToken, leaseWithin, reportFor, submit, taskOf } from "./helpers/agents.mjs";
import { fakeSwitchyard } from "./helpers/fake-switchyard.mjs";
import { receiver } from "./helpers/webhook.mjs";
import { errorOf, eventually, startWorker } from "./helpers/worker.mjs";

const TASK = {
  title: "Add a password reset flow by email",
  description: "A user who forgot their password asks for a link by email and sets a new password from it.",
  requirements: ["links expire after one hour", "one use per link"],
  paths: ["src/routes/reset/+page.svelte", "src/api/reset.rs"],
};

const SUBAGENT = `---
name: reset-reviewer
description: Reviews password reset flows for token leaks and expiry bugs
tools: Read, Grep, Bash
model: sonnet
---

You review authentication code. Look for reset tokens that never expire.
`;

describe("the brief an agent is handed", { timeout: 300_000 }, () => {
  let worker;
  let scratch;
  const tokens = {};
  const children = [];
  const servers = [];
  const json = (method, path, body) =>
    worker.admin(path, { method, headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
  const as = (token, path) => worker.fetch(path, { headers: { authorization: `Bearer ${token}` } });

  before(async () => {
    worker = await startWorker();
    scratch = mkdtempSync(join(tmpdir(), "switchyard-brief-"));
    for (const name of ["context-fetcher", "cloudflare-specialist", "test-runner"]) tokens[name] = await issueToken(worker, name);
  });
  after(async () => {
    if (process.env.DEBUG_LOGS) console.log(worker?.logs());
    for (const child of children) if (child.exitCode === null) child.kill("SIGKILL");
    servers.forEach((s) => s.close());
    await worker?.stop();
    if (scratch) rmSync(scratch, { recursive: true, force: true });
  });

  test("a leased step carries the task, the workflow and its place, the agent and the report contract", async () => {
    const task = (await submit(worker, TASK)).body.task;
    const fetcher = agent(worker, "context-fetcher", tokens["context-fetcher"]);
    const first = await leaseWithin(fetcher);
    assert.equal(first.task_id, task.id);
    assert.deepEqual(
      { ...first.task, confidence: undefined, reasons: undefined, evidence: undefined },
      { id: task.id, ...TASK, task_type: task.analysis.task_type, agents: task.analysis.agents, confidence: undefined, reasons: undefined, evidence: undefined },
    );
    assert.deepEqual(first.task.reasons, task.analysis.reasons);
    assert.equal(first.workflow.name, "enhanced-multi-agent");
    assert.equal(first.workflow.version, 1);
    assert.match(first.workflow.overview, /\S/);
    assert.deepEqual(first.workflow.step.key, "1");
    assert.deepEqual(first.workflow.before, []);
    assert.deepEqual(first.workflow.after.map((s) => s.key).slice(0, 6), ["2a", "2b", "3", "4", "5", "6"]);
    assert.equal(first.workflow.step.of, first.workflow.after.length + 1);
    assert.equal(first.agent, "context-fetcher");
    assert.equal(first.agent_profile.name, "context-fetcher");
    assert.match(first.agent_profile.description, /\S/);
    const source = readFileSync(join(ROOT, "workflows", "enhanced-multi-agent.md"), "utf8");
    for (const record of first.report_contract.records) assert.ok(source.includes(`RECORD: ${record}`), record);
    assert.ok(first.report_contract.records.length >= 2);
    assert.ok(first.report_contract.always.includes("files_created"));
    assert.equal((await fetcher.complete(first, { outcome: "succeeded", report: { notes: "read" } })).status, 200);

    // The backend step is told what the fan-in step will ask the specialist for.
    const builder = agent(worker, "cloudflare-specialist", tokens["cloudflare-specialist"]);
    const backend = await leaseWithin(builder);
    assert.equal(backend.workflow.step.key, "2a");
    assert.equal(backend.report_contract.feedback_for, "4");
    assert.ok(backend.report_contract.feedback.includes("Services configured"), JSON.stringify(backend.report_contract));
    assert.ok(backend.report_contract.records.includes("API endpoints implemented"));
    assert.equal(backend.inputs["1"].report.notes, "read");
    assert.equal((await builder.complete(backend, { outcome: "succeeded", report: reportFor(backend) })).status, 200);
  });

  test("an imported subagent file's system prompt, tools and model reach the agent", async () => {
    const imported = await worker.admin("/v1/agents/import", { method: "POST", headers: { "content-type": "text/markdown" }, body: SUBAGENT });
    assert.equal(imported.status, 201, await imported.clone().text());
    const token = (await imported.json()).token;
    const flow = await json("POST", "/v1/workflows", { name: "review-flow", steps: [{ key: "1", name: "review", agent: "reset-reviewer" }] });
    assert.equal(flow.status, 201);
    await submit(worker, { ...TASK, workflow: "review-flow" });
    const step = await leaseWithin(agent(worker, "reset-reviewer", token));
    assert.equal(step.agent_profile.system_prompt, "You review authentication code. Look for reset tokens that never expire.");
    assert.deepEqual(step.agent_profile.tools, ["Read", "Grep", "Bash"]);
    assert.equal(step.agent_profile.model, "sonnet");
    assert.equal(step.workflow.name, "review-flow");
    assert.equal(step.task.title, TASK.title);
  });

  test("a webhook delivery carries the same brief as a lease", async () => {
    const server = await receiver(() => ({ status: 200, json: { outcome: "succeeded", report: { notes: "ok" } } }));
    servers.push(server);
    const created = await json("POST", "/v1/agents", { name: "brief-hook", mode: "webhook", webhook_url: server.url, description: "Answers by webhook" });
    assert.equal(created.status, 201);
    assert.equal((await json("POST", "/v1/workflows", { name: "brief-hook-flow", steps: [{ key: "1", name: "hooked", agent: "brief-hook" }] })).status, 201);
    const task = (await submit(worker, { ...TASK, workflow: "brief-hook-flow" })).body.task;
    await eventually(async () => (await taskOf(worker, task.id)).status === "succeeded");
    const step = JSON.parse(server.deliveries[0].body).step;
    assert.equal(step.task.title, TASK.title);
    assert.equal(step.task.description, TASK.description);
    assert.equal(step.workflow.name, "brief-hook-flow");
    assert.equal(step.agent_profile.description, "Answers by webhook");
    assert.deepEqual(step.report_contract.records, []);
  });

  test("a part over its bound is fetched whole by the step's agent and by no other", async () => {
    // 200 paths of 300 bytes: about 60 KB of task, over the task part's bound.
    const paths = Array.from({ length: 200 }, (_, i) => `src/generated/${String(i).padStart(3, "0")}/${"x".repeat(280)}.ts`);
    assert.equal((await json("POST", "/v1/workflows", { name: "wide-flow", steps: [{ key: "1", name: "wide", agent: "test-runner" }] })).status, 201);
    const task = (await submit(worker, { ...TASK, paths, workflow: "wide-flow" })).body.task;
    const runner = agent(worker, "test-runner", tokens["test-runner"]);
    const step = await leaseWithin(runner);
    assert.equal(step.task_id, task.id);
    assert.ok(step.task.offloaded.bytes > step.task.offloaded.bound, JSON.stringify(step.task));
    assert.equal(step.task.offloaded.href, `/v1/steps/${step.id}/attempts/1/parts/task`);
    const fetched = await as(tokens["test-runner"], step.task.offloaded.href);
    assert.equal(fetched.status, 200);
    const whole = await fetched.json();
    assert.deepEqual(whole.paths, paths, "every path, none cut");
    assert.equal(whole.title, TASK.title);

    const foreign = await as(tokens["context-fetcher"], step.task.offloaded.href);
    assert.equal(foreign.status, 404);
    assert.equal((await errorOf(foreign)).code, "not_found");
    assert.equal((await as(tokens["test-runner"], `/v1/steps/${step.id}/attempts/1/parts/inputs`)).status, 404, "a part kept inline is not stored");
    assert.equal((await as(tokens["test-runner"], `/v1/steps/${step.id}/attempts/1/parts/secrets`)).status, 404);
    assert.equal((await as(tokens["test-runner"], `/v1/steps/${step.id}/attempts/x/parts/task`)).status, 404);
    assert.equal((await runner.complete(step, { outcome: "succeeded" })).status, 200);
  });

  test("an agent reads the tasks it worked on and gets the answer of a missing task for any other", async () => {
    assert.equal((await json("POST", "/v1/workflows", { name: "solo-flow", steps: [{ key: "1", name: "solo", agent: "context-fetcher" }] })).status, 201);
    const task = (await submit(worker, { ...TASK, workflow: "solo-flow" })).body.task;
    const own = tokens["context-fetcher"];
    const other = tokens["test-runner"];
    // Before its step is leased, the task is not yet the agent's work.
    assert.equal((await as(own, `/v1/tasks/${task.id}`)).status, 404);
    const step = await leaseWithin(agent(worker, "context-fetcher", own));
    assert.equal(step.task_id, task.id);
    const read = await as(own, `/v1/tasks/${task.id}`);
    assert.equal(read.status, 200);
    assert.equal((await read.json()).task.title, TASK.title);
    assert.equal((await as(own, `/v1/tasks/${task.id}/events`)).status, 200);
    await agent(worker, "context-fetcher", own).complete(step, { outcome: "succeeded", log: "looked around" });
    await eventually(async () => (await taskOf(worker, task.id)).status === "succeeded");
    assert.equal((await as(own, `/v1/tasks/${task.id}/logs`)).status, 200);
    const log = await as(own, `/v1/tasks/${task.id}/logs/context-fetcher`);
    assert.equal(log.status, 200);
    assert.match(await log.text(), /looked around/);
    assert.equal((await as(own, `/v1/tasks/${task.id}/metrics`)).status, 200);

    const missing = "tsk_00000000000000000000000000";
    for (const suffix of ["", "/events", "/logs", "/logs/context-fetcher", "/summary", "/metrics"]) {
      const foreign = await as(other, `/v1/tasks/${task.id}${suffix}`);
      const absent = await as(other, `/v1/tasks/${missing}${suffix}`);
      assert.equal(foreign.status, 404, suffix);
      const [a, b] = [await errorOf(foreign), await errorOf(absent)];
      assert.equal(a.code, b.code, suffix);
      assert.equal(a.message.replace(task.id, missing), b.message, `${suffix}: the same answer as a task that does not exist`);
    }
    assert.equal((await as(other, "/v1/tasks")).status, 403, "listing every task stays an admin's");
  });

  test("switchyard-agent fetches offloaded parts and its command reads the task from the prompt", async () => {
    assert.ok(existsSync(AGENT_BINARY), `${AGENT_BINARY} is built by the set-up`);
    const workdir = join(scratch, "work");
    spawnSync("git", ["init", "-q", workdir]);
    spawnSync("git", ["-C", workdir, "commit", "-q", "--allow-empty", "-m", "start"], {
      env: { ...process.env, GIT_AUTHOR_NAME: "d", GIT_AUTHOR_EMAIL: "d@x", GIT_COMMITTER_NAME: "d", GIT_COMMITTER_EMAIL: "d@x" },
    });
    const paths = Array.from({ length: 200 }, (_, i) => `docs/${String(i).padStart(3, "0")}-${"y".repeat(280)}.md`);
    assert.equal((await json("POST", "/v1/workflows", { name: "prompt-flow", steps: [{ key: "1", name: "write_notes", agent: "test-runner" }] })).status, 201);
    const task = (await submit(worker, { ...TASK, paths, workflow: "prompt-flow" })).body.task;
    // The command decides what to write from the prompt alone, and fails when the task is not in it.
    const script = [
      `grep -q "## The task: ${TASK.title}" "$SWITCHYARD_PROMPT_FILE" || { echo "no task title in the prompt"; exit 7; }`,
      `grep -q "${TASK.description}" "$SWITCHYARD_PROMPT_FILE" || { echo "no description in the prompt"; exit 8; }`,
      `grep -q "${paths[199]}" "$SWITCHYARD_PROMPT_FILE" || { echo "the offloaded paths are missing"; exit 9; }`,
      `sed -n 's/^## The task: //p' "$SWITCHYARD_PROMPT_FILE" > NOTES.md`,
    ].join(" && ");
    const child = spawn(AGENT_BINARY, ["run", "--url", worker.url, "--agent", "test-runner", "--token", tokens["test-runner"], "--workdir", workdir, "--steps", "1", "--", "sh", "-c", script], { stdio: ["ignore", "pipe", "pipe"] });
    children.push(child);
    let output = "";
    child.stdout.on("data", (c) => (output += c));
    child.stderr.on("data", (c) => (output += c));
    const done = await eventually(async () => {
      const read = await taskOf(worker, task.id);
      return read.status !== "running" && read;
    }, { timeoutMs: 60_000, intervalMs: 250 });
    assert.equal(done.status, "succeeded", output);
    assert.equal(readFileSync(join(workdir, "NOTES.md"), "utf8"), `${TASK.title}\n`);
    const metrics = (await (await worker.admin(`/v1/tasks/${task.id}/metrics`)).json()).agents[0];
    assert.deepEqual([metrics.files_created, metrics.lines_added], [1, 1]);
  });

  test("a step whose offloaded part cannot be fetched fails its attempt without running the command", async () => {
    // A stand-in switchyard that hands out one step whose task part points nowhere.
    const step = { id: "stp_ghost", task_id: "tsk_ghost", key: "1", name: "ghost", agent: "ghost", attempt: 1, attempts_max: 1, lease_id: "lse_ghost", task: { offloaded: { bytes: 99999, bound: 1, href: "/v1/steps/stp_ghost/attempts/1/parts/task" } } };
    const fake = await fakeSwitchyard("ghost", step, (req) => (req.url.includes("/parts/") ? [404, { error: { code: "not_found", message: "gone", details: [] } }] : undefined));
    servers.push(fake);
    const completions = fake.state.completions;
    const marker = join(scratch, "ran");
    const child = spawn(AGENT_BINARY, ["run", "--url", fake.url, "--agent", "ghost", "--token", "sya_x", "--workdir", scratch, "--steps", "1", "--", "sh", "-c", `touch ${marker}`], { stdio: ["ignore", "pipe", "pipe"] });
    children.push(child);
    const code = await new Promise((resolve) => child.on("close", resolve));
    assert.equal(code, 0);
    assert.equal(completions.length, 1);
    assert.equal(completions[0].outcome, "failed");
    assert.match(completions[0].log, /task could not be fetched/);
    assert.equal(existsSync(marker), false, "the command never ran");
  });
});
