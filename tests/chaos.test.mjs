// Chaos: 30 tasks through a workflow with a parallel group (pull and webhook agents), a fan-in
// step and a built-in summary, while the shell's fault points fail D1 round trips, R2 reads and
// writes, queue sends and webhook calls, agents fail some attempts on purpose, and the runtime
// is killed and started again on the same state mid-run. Then, from what the Worker recorded:
// every task finished, no attempt started unless the one before it failed, expired or timed
// out, every report, log entry and metric is the attempt's that produced it, and the fan-in
// step ran once per task.

import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { receiver } from "./helpers/webhook.mjs";
import { ADMIN_TOKEN, startWorker } from "./helpers/worker.mjs";

/** Tasks run; the floor. */
const TASKS = 30;
/** Share of attempts an agent fails on purpose (per mille), so that retries happen. */
const FAIL_PER_MILLE = 120;
/** How long faults are injected, and the bound on the whole run once they stop. */
const CHAOS_MS = 40_000;
const CALM_LIMIT_MS = 240_000;
const POINTS = ["d1", "r2_write", "r2_read", "queue_send", "webhook"];
const VARS = { REDISPATCH_AFTER_SECONDS: "2" };
const PULL_AGENTS = ["chaos-first", "chaos-second"];

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** A deterministic pseudo-random source, so that a failing run can be read again. */
function random(seed) {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** The report an attempt sends: it names the attempt, so that what the Worker keeps can be traced back. */
function reportOf(step, outcome) {
  const mark = `${step.key}-attempt-${step.attempt}-${outcome}`;
  return { files_created: [`src/${mark}.ts`], lines_added: step.attempt, notes: mark, records: { "Attempt": [mark] } };
}

describe("chaos: faults at every point and a killed runtime", { timeout: 600_000 }, () => {
  let worker;
  let hook;
  const rand = random(Number(process.env.CHAOS_SEED ?? 20261201));
  /** Every answer an agent got for a completion it sent, by step id: [{attempt, outcome, status}]. */
  const answered = new Map();
  /** Set while the runtime is being restarted: requests then fail, and agents wait. */
  let restarting = false;

  /** A request that is tried again on a network error or a 5xx (injected faults, the restart), boundedly. */
  async function call(path, { token = ADMIN_TOKEN, method = "GET", body, accept = "application/json" } = {}) {
    for (let attempt = 0; attempt < 200; attempt += 1) {
      if (restarting) {
        await sleep(200);
        continue;
      }
      try {
        const response = await fetch(`${worker.url}${path}`, {
          method,
          headers: { authorization: `Bearer ${token}`, accept, ...(body === undefined ? {} : { "content-type": "application/json" }) },
          body: body === undefined ? undefined : JSON.stringify(body),
        });
        // Read whole here: a runtime killed mid-answer cuts the body, and that is retried too.
        const text = await response.text();
        if (response.status < 500) return new Response(response.status === 204 ? null : text, { status: response.status, headers: response.headers });
      } catch {
        // The runtime is down or restarting.
      }
      await sleep(100 + Math.floor(rand() * 200));
    }
    throw new Error(`${method} ${path} kept failing`);
  }
  const json = async (path, options) => (await call(path, options)).json();

  before(async () => {
    worker = await startWorker({ vars: VARS });
    hook = await receiver((delivery) => {
      const step = JSON.parse(delivery.body).step;
      if (rand() * 1000 < FAIL_PER_MILLE) return { status: 500, json: { error: "failed on purpose" } };
      return { status: 200, json: { outcome: "succeeded", report: reportOf(step, "succeeded"), log: `ran ${step.key} attempt ${step.attempt}` } };
    });
  });
  after(async () => {
    hook?.close();
    await worker?.stop();
  });

  test("30 tasks finish, and every attempt, report, log entry and metric is the one that happened", async (t) => {
    const tokens = {};
    for (const name of PULL_AGENTS) {
      const created = await call("/v1/agents", { method: "POST", body: { name, capabilities: ["chaos"], max_concurrency: 4, lease_ms: 3000 } });
      assert.equal(created.status, 201);
      tokens[name] = (await created.json()).token;
    }
    const created = await call("/v1/agents", {
      method: "POST",
      body: { name: "chaos-hook", mode: "webhook", webhook_url: hook.url, capabilities: ["chaos"], max_concurrency: 2, lease_ms: 3000 },
    });
    assert.equal(created.status, 201);
    const attempts = { max_attempts: "6" };
    const flow = await call("/v1/workflows", {
      method: "POST",
      body: {
        name: "chaos-flow",
        steps: [
          { key: "1", name: "look", agent: "chaos-first", attributes: attempts },
          { key: "2a", name: "left", agent: "chaos-first", group: "work", attributes: attempts },
          { key: "2b", name: "right", agent: "chaos-second", group: "work", attributes: attempts },
          { key: "2c", name: "hooked", agent: "chaos-hook", group: "work", attributes: attempts },
          { key: "3", name: "join", agent: "chaos-second", attributes: attempts },
          { key: "4", name: "task_summary" },
        ],
      },
    });
    assert.equal(flow.status, 201, await flow.text());

    const ids = [];
    for (let i = 0; i < TASKS; i += 1) {
      const submitted = await call("/v1/tasks", { method: "POST", body: { title: `Chaos run ${i}`, workflow: "chaos-flow" } });
      assert.equal(submitted.status, 201, await submitted.clone().text());
      ids.push((await submitted.json()).task.id);
    }

    let stop = false;
    const pull = async (name) => {
      while (!stop) {
        const leased = await call(`/v1/agents/${name}/lease?wait=1`, { token: tokens[name], method: "POST" });
        if (leased.status !== 200) continue;
        const step = (await leased.json()).step;
        await sleep(Math.floor(rand() * 300));
        const beat = await call(`/v1/steps/${step.id}/heartbeat`, { token: tokens[name], method: "POST", body: { lease_id: step.lease_id } });
        if (beat.status !== 200) continue;
        const failing = rand() * 1000 < FAIL_PER_MILLE;
        const outcome = failing ? "failed" : "succeeded";
        const body = { lease_id: step.lease_id, outcome, report: reportOf(step, outcome), log: `ran ${step.key} attempt ${step.attempt}` };
        if (failing) body.error = "failed on purpose";
        const done = await call(`/v1/steps/${step.id}/complete`, { token: tokens[name], method: "POST", body });
        const list = answered.get(step.id) ?? [];
        list.push({ attempt: step.attempt, outcome, status: done.status });
        answered.set(step.id, list);
      }
    };
    const armFaults = async () => {
      const until = Date.now() + CHAOS_MS;
      let armed = 0;
      while (Date.now() < until && !stop) {
        const point = POINTS[Math.floor(rand() * POINTS.length)];
        // A webhook fault is the agent unreachable, which spends its attempt: one at a time.
        const fail = point === "webhook" ? 1 : 1 + Math.floor(rand() * 2);
        const response = await call("/__test/faults", { method: "POST", body: { point, skip: Math.floor(rand() * 6), fail } });
        if (response.status === 200) armed += 1;
        await sleep(150 + Math.floor(rand() * 250));
      }
      for (const point of POINTS) await call("/__test/faults", { method: "POST", body: { point, fail: 0 } });
      return armed;
    };
    const sweeps = async () => {
      while (!stop) {
        await call("/__scheduled?cron=*+*+*+*+*");
        await sleep(1000);
      }
    };
    let finishedCount = 0;
    let finishedAtRestart = null;
    let answeredAtRestart = 0;
    // Killed once the agents have answered a quarter of the pull steps (or halfway through the
    // faults), so mid-run.
    const completions = () => [...answered.values()].reduce((total, list) => total + list.length, 0);
    const restart = async () => {
      const latest = Date.now() + CHAOS_MS / 2;
      while (completions() < TASKS && Date.now() < latest) await sleep(100);
      finishedAtRestart = finishedCount;
      answeredAtRestart = completions();
      restarting = true;
      const stateDir = worker.stateDir;
      await worker.stop({ keepState: true });
      worker = await startWorker({ vars: VARS, stateDir });
      restarting = false;
    };
    const finished = async () => {
      const deadline = Date.now() + CHAOS_MS + CALM_LIMIT_MS;
      while (Date.now() < deadline && !stop) {
        let running = 0;
        for (const id of ids) if ((await json(`/v1/tasks/${id}`)).task.status === "running") running += 1;
        finishedCount = TASKS - running;
        if (running === 0 && finishedAtRestart !== null) break;
        await sleep(1000);
      }
      stop = true;
    };
    const workers = PULL_AGENTS.flatMap((name) => Array.from({ length: 4 }, () => pull(name)));
    // Any part failing stops the others, so that nothing keeps running after the test.
    const part = (promise) => promise.catch((error) => {
      stop = true;
      throw error;
    });
    const [armed] = await Promise.all([armFaults(), restart(), sweeps(), finished(), ...workers].map(part));
    assert.ok(armed > 20, `faults were armed ${armed} times`);
    assert.ok(finishedAtRestart < TASKS && answeredAtRestart < completions(), "the runtime was killed mid-run");

    const failures = [];
    const seen = { attempts: 0, retried: 0, logEntries: 0, faultsFailed: 0 };
    for (const id of ids) {
      const task = (await json(`/v1/tasks/${id}`)).task;
      const where = (what) => failures.push(`${id}: ${what}`);
      if (task.status !== "succeeded") where(`finished ${task.status}`);
      const events = (await json(`/v1/tasks/${id}/events?limit=200`)).events;
      const metrics = await json(`/v1/tasks/${id}/metrics`);
      const summary = await json(`/v1/tasks/${id}/summary`);
      const summaryText = JSON.stringify(summary);
      for (const step of task.steps) {
        const statuses = step.attempts.map((a) => a.status);
        seen.attempts += statuses.length;
        seen.retried += statuses.length > 1 ? 1 : 0;
        // Every attempt but the last ended in a failure of some kind; the last succeeded.
        statuses.slice(0, -1).forEach((status, i) => {
          if (!["failed", "expired", "timed_out"].includes(status)) where(`step ${step.key} attempt ${i + 1} ${status} before a newer one`);
        });
        if (statuses.at(-1) !== "succeeded") where(`step ${step.key} ended with ${statuses.at(-1)}`);
        const kept = step.attempts.filter((a) => a.status === "succeeded");
        if (kept.length !== 1) where(`step ${step.key} has ${kept.length} succeeded attempts`);
        if (step.runner === "builtin") continue;
        // The Worker's answer to each completion matches what it kept.
        for (const answer of answered.get(step.id) ?? []) {
          const attempt = step.attempts.find((a) => a.attempt === answer.attempt);
          if (answer.status === 200 && answer.outcome === "succeeded" && attempt?.status !== "succeeded") {
            where(`step ${step.key} attempt ${answer.attempt} was answered 200 but is ${attempt?.status}`);
          }
        }
        // The step's report is its succeeded attempt's: the summary quotes that attempt's notes
        // and no other attempt's success.
        const mark = `${step.key}-attempt-${kept[0]?.attempt}-succeeded`;
        if (!summaryText.includes(mark)) where(`the summary lacks ${mark}`);
        for (const other of step.attempts.filter((a) => a !== kept[0])) {
          if (summaryText.includes(`${step.key}-attempt-${other.attempt}-succeeded`)) where(`the summary quotes attempt ${other.attempt} of ${step.key}`);
        }
      }
      // Metrics count the succeeded attempts' files only: one per step of each agent.
      for (const row of metrics.agents) {
        const steps = task.steps.filter((s) => s.agent === row.agent).length;
        if (row.files_created !== steps) where(`${row.agent} is credited ${row.files_created} files for ${steps} steps`);
      }
      // Every log entry names an attempt that ended with the outcome it says.
      for (const agent of [...PULL_AGENTS, "chaos-hook"]) {
        const log = await call(`/v1/tasks/${id}/logs/${agent}`);
        if (log.status === 404) continue;
        const text = await log.text();
        for (const [, key, attempt, outcome] of text.matchAll(/^== \S+ step (\S+) \(\S+\) attempt (\d+) (\w+)$/gm)) {
          const step = task.steps.find((s) => s.key === key);
          const recorded = step?.attempts.find((a) => a.attempt === Number(attempt));
          seen.logEntries += 1;
          const matches = outcome === "succeeded" ? recorded?.status === "succeeded" : ["failed", "expired", "timed_out"].includes(recorded?.status);
          if (!matches) where(`${agent}'s log says step ${key} attempt ${attempt} ${outcome}, the attempt is ${recorded?.status}`);
        }
      }
      const join = task.steps.find((s) => s.key === "3");
      const queued = events.filter((e) => e.kind === "step.queued" && e.step_id === join.id).length;
      const succeeded = events.filter((e) => e.kind === "step.succeeded" && e.step_id === join.id).length;
      if (queued !== 1 || succeeded !== 1) where(`the fan-in step was queued ${queued} and succeeded ${succeeded} times`);
    }
    assert.deepEqual(failures, [], failures.slice(0, 20).join("\n"));
    t.diagnostic(`${armed} faults armed; killed after ${answeredAtRestart} of ${completions()} completions; ${seen.attempts} attempts, ${seen.retried} steps retried, ${seen.logEntries} log entries checked, ${hook.deliveries.length} webhook deliveries`);
    // The checks above looked at something: retries happened and the logs were read.
    assert.ok(seen.retried >= 5, `only ${seen.retried} steps were retried`);
    assert.ok(seen.logEntries >= TASKS * 4, `only ${seen.logEntries} log entries were checked`);
    assert.ok(hook.deliveries.length >= TASKS, "the webhook agent was delivered to");
  });
});
