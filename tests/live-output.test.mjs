// Live output: while a step's command runs, switchyard-agent sends its output with the
// heartbeats and GET /v1/steps/{id}/log (long poll) shows what arrived so far; a runner cut
// off from switchyard keeps the output and sends it later, and nothing is lost or doubled;
// chunks over their bound are 413 with nothing stored, and a runner refused one backs off.

import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer, request as httpRequest } from "node:http";
import { fakeSwitchyard } from "./helpers/fake-switchyard.mjs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { AGENT_BINARY } from "../scripts/setup.mjs";
import { agent, issueToken, leaseWithin, postAs, submit, taskOf } from "./helpers/agents.mjs";
import { errorOf, eventually, startWorker } from "./helpers/worker.mjs";

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const LINES = Array.from({ length: 6 }, (_, i) => `line ${i + 1} of the build`);
// Prints a line a second, then waits, so that live output has caught up before the command ends.
const SCRIPT = `for i in 1 2 3 4 5 6; do echo "line $i of the build"; sleep 1; done; sleep 3`;

/** A loopback proxy to `target` that can be told to drop every connection for a while. */
async function flakyProxy(target) {
  const state = { down: false, dropped: 0 };
  const server = createServer((req, res) => {
    if (state.down) {
      state.dropped += 1;
      req.socket.destroy();
      return;
    }
    const url = new URL(req.url, target);
    const upstream = httpRequest(url, { method: req.method, headers: req.headers }, (answer) => {
      res.writeHead(answer.statusCode, answer.headers);
      answer.pipe(res);
    });
    upstream.on("error", () => res.destroy());
    req.pipe(upstream);
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  return { url: `http://127.0.0.1:${server.address().port}`, state, close: () => server.close() };
}

describe("live output of a running step", { timeout: 300_000 }, () => {
  let worker;
  let scratch;
  let token;
  const children = [];
  const servers = [];
  const json = (method, path, body) =>
    worker.admin(path, { method, headers: { "content-type": "application/json" }, body: JSON.stringify(body) });

  before(async () => {
    worker = await startWorker();
    scratch = mkdtempSync(join(tmpdir(), "switchyard-live-"));
    token = await issueToken(worker, "test-runner");
    const flow = await json("POST", "/v1/workflows", { name: "live-flow", steps: [{ key: "1", name: "build", agent: "test-runner", attributes: { max_attempts: "1" } }] });
    assert.equal(flow.status, 201);
  });
  after(async () => {
    for (const child of children) if (child.exitCode === null) child.kill("SIGKILL");
    servers.forEach((s) => s.close());
    await worker?.stop();
    if (scratch) rmSync(scratch, { recursive: true, force: true });
  });

  function runner(url) {
    const child = spawn(AGENT_BINARY, ["run", "--url", url, "--agent", "test-runner", "--token", token, "--workdir", scratch, "--heartbeat-seconds", "1", "--steps", "1", "--", "sh", "-c", SCRIPT], { stdio: ["ignore", "pipe", "pipe"] });
    children.push(child);
    child.output = "";
    child.stderr.on("data", (c) => (child.output += c));
    return child;
  }

  /** Follows the step's log as a person would: long polls from the last offset until complete. */
  async function follow(stepId) {
    const pieces = [];
    let offset = 0;
    for (let i = 0; i < 200; i += 1) {
      const response = await worker.admin(`/v1/steps/${stepId}/log?after=${offset}&wait=5`);
      assert.equal(response.status, 200, await response.clone().text());
      const text = await response.text();
      const kind = response.headers.get("x-switchyard-log");
      if (kind === "final") return { pieces, final: text };
      if (text) pieces.push({ text, at: Date.now() });
      offset = Number(response.headers.get("x-switchyard-next-offset"));
      if (response.headers.get("x-switchyard-complete") === "true") return { pieces, final: null };
    }
    throw new Error("the log never completed");
  }

  async function stepOf(taskId) {
    return eventually(async () => {
      const read = await taskOf(worker, taskId);
      return read.steps[0].status === "leased" && read.steps[0];
    }, { timeoutMs: 30_000, intervalMs: 100 });
  }

  test("a follower sees the output while the command runs, each line once and in order", async () => {
    const task = (await submit(worker, { title: "Build it", workflow: "live-flow" })).body.task;
    const child = runner(worker.url);
    const step = await stepOf(task.id);
    const { pieces, final } = await follow(step.id);
    const live = pieces.map((p) => p.text).join("");
    assert.equal(live, LINES.map((l) => `${l}\n`).join(""), "every line once, in order");
    assert.ok(pieces.length >= 2, `the output arrived in several pieces while it ran (${pieces.length})`);
    const done = await eventually(async () => {
      const read = await taskOf(worker, task.id);
      return read.status !== "running" && read;
    });
    assert.equal(done.status, "succeeded", child.output);
    assert.ok(pieces[0].at < Date.parse(done.steps[0].attempts[0].finished_at), "the first piece came before the end");
    assert.equal(final, live, "the final log is the whole output");
  });

  test("a runner cut off from switchyard keeps its output and sends it later, nothing lost or doubled", async () => {
    const proxy = await flakyProxy(worker.url);
    servers.push(proxy);
    const task = (await submit(worker, { title: "Build it offline", workflow: "live-flow" })).body.task;
    const child = runner(proxy.url);
    const step = await stepOf(task.id);
    const following = follow(step.id);
    await sleep(1500);
    proxy.state.down = true;
    await sleep(2500);
    proxy.state.down = false;
    const { pieces } = await following;
    assert.ok(proxy.state.dropped > 0, "the proxy really dropped the runner's requests");
    assert.equal(pieces.map((p) => p.text).join(""), LINES.map((l) => `${l}\n`).join(""));
    const done = await eventually(async () => {
      const read = await taskOf(worker, task.id);
      return read.status !== "running" && read;
    });
    assert.equal(done.status, "succeeded", child.output);
  });

  test("chunks over their bound are 413 and store nothing; bad log reads and others' steps are refused", async () => {
    const task = (await submit(worker, { title: "By hand", workflow: "live-flow" })).body.task;
    const client = agent(worker, "test-runner", token);
    const step = await leaseWithin(client);
    assert.equal(step.task_id, task.id);
    const beat = (output) => postAs(worker, token, `/v1/steps/${step.id}/heartbeat`, { lease_id: step.lease_id, output });
    const ok = await beat({ offset: 0, text: "hello\n" });
    assert.equal(ok.status, 200);
    assert.equal((await ok.json()).output_offset, 6);
    for (const output of [{ offset: 6, text: "x".repeat(32 * 1024 + 1) }, { offset: 16 * 1024 * 1024, text: "x" }]) {
      const refused = await beat(output);
      assert.equal(refused.status, 413);
      assert.equal((await errorOf(refused)).code, "payload_too_large");
    }
    for (const output of [{ offset: -1, text: "x" }, { offset: "0", text: "x" }, { offset: 0 }, { offset: 0, text: "x", extra: 1 }]) {
      const bad = await beat(output);
      assert.ok([400, 422].includes(bad.status), `${JSON.stringify(output)}: ${bad.status}`);
    }
    const read = await worker.admin(`/v1/steps/${step.id}/log`);
    assert.equal(await read.text(), "hello\n", "nothing of the refused chunks was stored");
    assert.equal(read.headers.get("x-switchyard-next-offset"), "6");
    assert.equal(read.headers.get("x-switchyard-complete"), "false");
    // A follower that is up to date waits, then gets nothing new.
    const started = Date.now();
    const waited = await worker.admin(`/v1/steps/${step.id}/log?after=6&wait=1`);
    assert.equal(await waited.text(), "");
    assert.ok(Date.now() - started >= 900, "it long-polled");

    const other = await issueToken(worker, "context-fetcher");
    const foreign = await worker.fetch(`/v1/steps/${step.id}/log`, { headers: { authorization: `Bearer ${other}` } });
    assert.equal(foreign.status, 404);
    for (const query of ["?wait=21", "?attempt=0", "?after=x", "?follow=1"]) {
      assert.equal((await worker.admin(`/v1/steps/${step.id}/log${query}`)).status, 400, query);
    }
    assert.equal((await worker.admin(`/v1/steps/${step.id}/log?attempt=9`)).status, 404);
    const own = await worker.fetch(`/v1/steps/${step.id}/log`, { headers: { authorization: `Bearer ${token}` } });
    assert.equal(own.status, 200, "the step's own agent may read it");
    assert.equal((await client.complete(step, { outcome: "succeeded", log: "hello\n" })).status, 200);
  });

  test("a runner whose chunk is refused as too large sends smaller ones, after a pause", async () => {
    const step = { id: "stp_chatty", task_id: "tsk_chatty", key: "1", name: "chat", agent: "chatty", attempt: 1, attempts_max: 1, lease_id: "lse_chatty" };
    // Refuses every chunk of output as too large, and keeps the lease otherwise.
    const fake = await fakeSwitchyard("chatty", step, (req, body) => {
      if (!req.url.endsWith("/heartbeat")) return undefined;
      return body.output ? [413, { error: { code: "payload_too_large", message: "too large", details: [] } }] : [200, { step_id: "stp_chatty" }];
    });
    servers.push(fake);
    const child = spawn(AGENT_BINARY, ["run", "--url", fake.url, "--agent", "chatty", "--token", "sya_x", "--workdir", scratch, "--heartbeat-seconds", "1", "--steps", "1", "--", "sh", "-c", "head -c 100000 /dev/zero | tr '\\0' 'x'; sleep 6"], { stdio: ["ignore", "pipe", "pipe"] });
    children.push(child);
    const code = await new Promise((resolve) => child.on("close", resolve));
    assert.equal(code, 0);
    const beats = fake.state.requests.filter((r) => r.url.endsWith("/heartbeat")).map((r) => ({ at: r.at, bytes: r.body.output?.text.length ?? 0 }));
    const sized = beats.filter((b) => b.bytes > 0);
    assert.ok(sized.length >= 2, JSON.stringify(beats));
    for (let i = 1; i < sized.length; i += 1) {
      assert.ok(sized[i].bytes < sized[i - 1].bytes, "each try is smaller");
      assert.ok(sized[i].at - sized[i - 1].at >= 900, "and comes after a pause");
    }
    assert.ok(beats.some((b) => b.bytes === 0), "heartbeats without output kept the lease meanwhile");
  });
});
