// Tasks run through workflows with simulated pull agents on the real local runtime: the full
// default workflow end to end, skips chosen by analysis, and each way the platform or an agent
// can misbehave (duplicates, races, double completions, expired leases, cancellation, failures),
// counted in the task's events so that nothing happens twice.

import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import {
  agent,
  eventsOf,
  issueToken,
  leaseWithin,
  postAs,
  reportFor,
  submit,
  taskOf,
  workTask,
} from "./helpers/agents.mjs";
import { armFault, errorOf, eventually, startWorker } from "./helpers/worker.mjs";

const DEFAULT_AGENTS = ["context-fetcher", "cloudflare-specialist", "sveltekit-specialist", "project-manager", "test-runner"];
const FULL_STACK = { title: "Add a D1-backed comments API and a SvelteKit page that lists the comments" };
const BACKEND = { title: "Add a D1 migration and a Worker API endpoint for comments" };
const FRONTEND = { title: "Restyle the SvelteKit settings page and its form components" };

describe("the execution engine with pull agents", { timeout: 600_000 }, () => {
  let worker;
  const clients = {};
  before(async () => {
    worker = await startWorker({ vars: { REDISPATCH_AFTER_SECONDS: "1" } });
    for (const name of DEFAULT_AGENTS) clients[name] = agent(worker, name, await issueToken(worker, name));
  });
  after(async () => {
    await worker?.stop();
  });

  const all = () => DEFAULT_AGENTS.map((name) => clients[name]);
  const json = (method, path, body) =>
    worker.admin(path, { method, headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
  const count = (events, kind, stepId) => events.filter((e) => e.kind === kind && (!stepId || e.step_id === stepId)).length;
  const cancel = (id) => worker.admin(`/v1/tasks/${id}/cancel`, { method: "POST" });

  /** A one-step workflow run by a new agent of its own, so tests do not share work. */
  async function soloWorkflow(name, { attempts = 3, agentFields = {} } = {}) {
    const created = await json("POST", "/v1/agents", { name, capabilities: ["testing"], ...agentFields });
    assert.equal(created.status, 201);
    const { token } = await created.json();
    const workflow = await json("POST", "/v1/workflows", {
      name: `${name}-flow`,
      steps: [{ key: "1", name: "only_step", agent: name, attributes: { max_attempts: String(attempts) } }],
    });
    assert.equal(workflow.status, 201, await workflow.text());
    return agent(worker, name, token);
  }

  /** A new agent and `{name}-flow`: one step of it per key, one after another, then a built-in summary. */
  async function summarisedWorkflow(name, keys) {
    const created = await json("POST", "/v1/agents", { name, capabilities: ["testing"] });
    assert.equal(created.status, 201);
    const { token } = await created.json();
    const steps = keys.map((key) => ({ key, name: `step_${key}`, agent: name }));
    steps.push({ key: String(keys.length + 1), name: "task_summary" });
    const workflow = await json("POST", "/v1/workflows", { name: `${name}-flow`, steps });
    assert.equal(workflow.status, 201, await workflow.text());
    return agent(worker, name, token);
  }

  test("a full-stack task runs every step to success, 2a and 2b at the same time, and fans in once", async () => {
    const { response, body } = await submit(worker, FULL_STACK);
    assert.equal(response.status, 201);
    const task = body.task;
    assert.equal(task.task_type, "full-stack");
    assert.deepEqual(
      task.steps.map((s) => [s.key, s.agent, s.status]),
      [
        ["1", "context-fetcher", "queued"],
        ["2a", "cloudflare-specialist", "pending"],
        ["2b", "sveltekit-specialist", "pending"],
        ["3", "project-manager", "pending"],
        ["4", null, "pending"],
        ["5", "test-runner", "pending"],
        ["6", "project-manager", "pending"],
        ["7", null, "pending"],
      ],
      "the workflow's post-flight summary template adds a last built-in step",
    );
    const read = await taskOf(worker, task.id);
    assert.deepEqual(
      read.steps.map((s) => [s.id, s.key, s.agent]),
      task.steps.map((s) => [s.id, s.key, s.agent]),
      "GET shows the task submission answered with",
    );

    const first = await leaseWithin(clients["context-fetcher"]);
    assert.equal(first.key, "1");
    assert.ok(first.instructions.blocks.length > 0, "the step's structured blocks come with it");
    assert.equal((await clients["context-fetcher"].complete(first, { report: reportFor(first) })).status, 200);

    // Both parallel steps are leased before either completes.
    const [backend, frontend] = await Promise.all([
      leaseWithin(clients["cloudflare-specialist"]),
      leaseWithin(clients["sveltekit-specialist"]),
    ]);
    assert.deepEqual([backend.key, frontend.key], ["2a", "2b"]);
    assert.deepEqual(Object.keys(backend.inputs), ["1"], "a step receives the reports of the steps it depends on");
    assert.equal(backend.inputs["1"].report.notes, "did task_analysis");
    const midway = await taskOf(worker, task.id);
    assert.deepEqual(midway.steps.filter((s) => s.status === "leased").map((s) => s.key), ["2a", "2b"]);

    // A report over the inline limit goes to R2 and still reaches the steps that depend on it.
    const bigNotes = "n".repeat(20_000);
    await Promise.all([
      clients["cloudflare-specialist"].complete(backend, { report: { ...reportFor(backend), notes: bigNotes } }),
      clients["sveltekit-specialist"].complete(frontend, { report: reportFor(frontend) }),
    ]);
    const integration = await leaseWithin(clients["project-manager"]);
    assert.equal(integration.key, "3");
    assert.deepEqual(Object.keys(integration.inputs).sort(), ["2a", "2b"]);
    assert.equal(integration.inputs["2a"].report.notes, bigNotes);
    await clients["project-manager"].complete(integration, { report: reportFor(integration) });

    const done = await workTask(worker, task.id, all());
    assert.equal(done.status, "succeeded");
    assert.ok(done.steps.every((s) => s.status === "succeeded"));
    for (const key of ["4", "7"]) {
      const builtin = done.steps.find((s) => s.key === key);
      assert.equal(builtin.runner, "builtin");
      assert.equal(builtin.attempts.length, 1);
    }
    assert.equal(done.steps.find((s) => s.key === "7").name, "post_flight_summary");

    const events = await eventsOf(worker, task.id);
    const step3 = task.steps.find((s) => s.key === "3").id;
    assert.equal(count(events, "step.queued", step3), 1, "the fan-in step is queued exactly once");
    assert.equal(count(events, "step.queued"), 8);
    assert.equal(count(events, "step.succeeded"), 8);
    assert.equal(count(events, "task.succeeded"), 1);
    const seqs = events.map((e) => e.seq);
    assert.deepEqual(seqs, [...seqs].sort((a, b) => a - b), "events come in order");
    const later = await (await worker.admin(`/v1/tasks/${task.id}/events?after=${seqs[4]}`)).json();
    assert.deepEqual(later.events.map((e) => e.seq), seqs.slice(5), "after= continues from a seq");
  });

  test("a backend-only task skips the frontend step and a frontend-only task the backend step, once step 1 is done", async () => {
    const backend = (await submit(worker, BACKEND)).body.task;
    assert.equal(backend.task_type, "backend");
    assert.equal(backend.steps.find((s) => s.key === "2b").status, "pending", "decided when the group is ready");

    const frontend = (await submit(worker, FRONTEND)).body.task;
    assert.equal(frontend.task_type, "frontend");

    // The list shows each task's type and chosen agents, as the task itself does.
    const listed = (await (await worker.admin("/v1/tasks?limit=200")).json()).tasks;
    for (const task of [backend, frontend]) {
      const row = listed.find((t) => t.id === task.id);
      assert.deepEqual([row.task_type, row.agents], [task.task_type, task.agents]);
    }

    const done = await workTask(worker, backend.id, all());
    assert.equal(done.status, "succeeded");
    const skipped = done.steps.find((s) => s.key === "2b");
    assert.equal(skipped.status, "skipped");
    assert.match(skipped.skip_reason, /backend task.*sveltekit-specialist/);
    assert.equal(done.steps.find((s) => s.key === "2a").status, "succeeded");
    const fanIn = await eventsOf(worker, backend.id);
    assert.equal(count(fanIn, "step.queued", backend.steps.find((s) => s.key === "3").id), 1);
    const routed = fanIn.filter((e) => e.kind === "step.routed").map((e) => [e.data.key, e.data.kept, e.data.decided_by]);
    assert.deepEqual(routed, [["2a", true, "submission"], ["2b", false, "submission"]]);
    const frontendDone = await workTask(worker, frontend.id, all());
    assert.equal(frontendDone.status, "succeeded");
    assert.equal(frontendDone.steps.find((s) => s.key === "2a").status, "skipped");
  });

  test("with every queue send failing, a pull agent's steps are leasable as soon as the task is created and their dependency completes, and a built-in step runs as soon as its dependency completes", async () => {
    const solo = await summarisedWorkflow("no-queue-agent", ["1", "2"]);
    assert.equal((await armFault(worker, "queue_send", 1000)).status, 200);
    try {
      const { body } = await submit(worker, { title: "Run without the queue", workflow: "no-queue-agent-flow" });
      for (const key of ["1", "2"]) {
        const step = await solo.lease(2);
        assert.equal(step?.key, key, `step ${key} was leasable without a queue message`);
        assert.equal((await solo.complete(step, { report: { notes: `did ${key}` } })).status, 200);
      }
      const done = await taskOf(worker, body.task.id);
      assert.equal(done.steps.find((s) => s.key === "3").status, "succeeded", "the built-in step ran without a queue message");
      assert.equal(done.status, "succeeded");
      const events = await eventsOf(worker, body.task.id);
      for (const key of ["1", "2"]) {
        const id = body.task.steps.find((s) => s.key === key).id;
        assert.equal(count(events, "step.ready", id), 1, `step ${key} was made ready once`);
      }
    } finally {
      await armFault(worker, "queue_send", 0);
    }
  });

  test("a built-in step that fails to run when its dependency completes stays queued, and the sweep sends its message, which runs it", async () => {
    const solo = await summarisedWorkflow("summary-fault-agent", ["1"]);
    const { body } = await submit(worker, { title: "Summarise after a failed write", workflow: "summary-fault-agent-flow" });
    const step = await leaseWithin(solo);
    // The summary's write to R2 is the first after the completion (which sends no log).
    assert.equal((await armFault(worker, "r2_write", 1)).status, 200);
    assert.equal((await solo.complete(step, { report: { notes: "done" } })).status, 200, "the completion stands");
    let task = await taskOf(worker, body.task.id);
    assert.equal(task.steps.find((s) => s.key === "2").status, "queued");
    assert.equal(task.status, "running");
    // REDISPATCH_AFTER_SECONDS is 1 here: then the sweep takes the message for lost.
    await new Promise((resolve) => setTimeout(resolve, 1500));
    assert.equal((await worker.fetch("/__scheduled?cron=*+*+*+*+*")).status, 200);
    assert.ok(await eventually(async () => (await taskOf(worker, body.task.id)).status === "succeeded"), "the sweep's message ran it");
    task = await taskOf(worker, body.task.id);
    assert.equal(task.steps.find((s) => s.key === "2").attempts.length, 1, "the failed run spent no attempt");
  });

  test("a duplicated queue message dispatches nothing twice", async () => {
    const solo = await soloWorkflow("dup-agent");
    const task = (await submit(worker, { title: "Check the fixtures", workflow: "dup-agent-flow" })).body.task;
    const step = task.steps[0];
    await eventually(async () => (await taskOf(worker, task.id)).steps[0].ready_at);
    const before = await eventsOf(worker, task.id);
    for (let i = 0; i < 3; i += 1) {
      const sent = await json("POST", "/__test/step-messages", { task_id: task.id, step_id: step.id, attempt: 1 });
      assert.equal(sent.status, 202);
    }
    await new Promise((resolve) => setTimeout(resolve, 1500));
    assert.deepEqual(await eventsOf(worker, task.id), before, "redelivered messages recorded nothing");
    const leased = await leaseWithin(solo);
    assert.equal((await solo.complete(leased, { report: {} })).status, 200);
    assert.equal((await taskOf(worker, task.id)).status, "succeeded");
  });

  test("a step whose message the queue gave up on spends no attempt: it is noted and the sweep sends it again", async () => {
    const dlqAgent = await soloWorkflow("dlq-agent", { attempts: 4 });
    const task = (await submit(worker, { title: "Doomed", workflow: "dlq-agent-flow" })).body.task;
    // Letters for an attempt already dispatched, or not yet sent, are stale: nothing changes.
    await eventually(async () => (await taskOf(worker, task.id)).steps[0].ready_at);
    const step = task.steps[0];
    const stale = await json("POST", "/__test/step-messages", { task_id: task.id, step_id: step.id, attempt: 1, dead_letter: true });
    assert.equal(stale.status, 202);
    const early = await json("POST", "/__test/step-messages", { task_id: task.id, step_id: step.id, attempt: 2, dead_letter: true });
    assert.equal(early.status, 202);
    await new Promise((resolve) => setTimeout(resolve, 1000));
    assert.equal(count(await eventsOf(worker, task.id), "step.message_dead_lettered"), 0, "letters for other attempts change nothing");
    await cancel(task.id);

    const other = (await submit(worker, { title: "Doomed again", workflow: "dlq-agent-flow" })).body.task;
    // A step waiting out its retry backoff whose retry message is dead-lettered stays alive.
    let leased;
    for (let attempt = 1; attempt <= 3; attempt += 1) {
      leased = await leaseWithin(dlqAgent);
      assert.equal(leased.task_id, other.id);
      const failed = await dlqAgent.complete(leased, { outcome: "failed", error: `broke ${attempt}` });
      assert.equal(failed.status, 200);
    }
    const letter = await json("POST", "/__test/step-messages", { task_id: other.id, step_id: leased.id, attempt: 4, dead_letter: true });
    assert.equal(letter.status, 202);
    assert.ok(await eventually(async () => count(await eventsOf(worker, other.id), "step.message_dead_lettered") === 1), "the letter is noted");
    assert.equal((await taskOf(worker, other.id)).status, "running", "a lost message is not the agent's failure");
    assert.equal((await worker.fetch("/__scheduled?cron=*+*+*+*+*")).status, 200);
    const fourth = await leaseWithin(dlqAgent);
    assert.equal(fourth.attempt, 4, "the step is still on its fourth and last attempt");
    assert.equal((await dlqAgent.complete(fourth, { report: {} })).status, 200);
    const events = await eventsOf(worker, other.id);
    assert.equal(count(events, "step.dead"), 0);
    assert.equal((await taskOf(worker, other.id)).status, "succeeded");
  });

  test("agents racing for one step: exactly one lease is granted", async () => {
    const solo = await soloWorkflow("race-agent", { agentFields: { max_concurrency: 4 } });
    const task = (await submit(worker, { title: "Race", workflow: "race-agent-flow" })).body.task;
    await eventually(async () => (await taskOf(worker, task.id)).steps[0].ready_at);
    const racers = await Promise.all([
      solo.lease(0),
      solo.lease(0),
      solo.lease(0),
      postAs(worker, worker.adminToken, "/v1/agents/race-agent/lease").then(async (r) => (r.status === 200 ? (await r.json()).step : null)),
    ]);
    const winners = racers.filter(Boolean);
    assert.equal(winners.length, 1);
    const events = await eventsOf(worker, task.id);
    assert.equal(count(events, "step.leased"), 1);
    assert.equal((await solo.complete(winners[0], { report: {} })).status, 200);
  });

  test("an agent holds at most max_concurrency leases at once", async () => {
    const solo = await soloWorkflow("single-agent", { agentFields: { max_concurrency: 1 } });
    const first = (await submit(worker, { title: "One", workflow: "single-agent-flow" })).body.task;
    const second = (await submit(worker, { title: "Two", workflow: "single-agent-flow" })).body.task;
    await eventually(async () => (await taskOf(worker, second.id)).steps[0].ready_at);
    const held = await leaseWithin(solo);
    assert.equal(await solo.lease(0), null, "a second lease waits while the first is held");
    assert.equal((await solo.complete(held, { report: {} })).status, 200);
    const next = await leaseWithin(solo);
    assert.ok(next, "the second step is leased once the first is done");
    assert.deepEqual([held.task_id, next.task_id].sort(), [first.id, second.id].sort());
    assert.equal((await solo.complete(next, { report: {} })).status, 200);
  });

  test("completing twice with the same body is answered as the first time; another body is refused", async () => {
    const solo = await soloWorkflow("twice-agent");
    const task = (await submit(worker, { title: "Twice", workflow: "twice-agent-flow" })).body.task;
    const step = await leaseWithin(solo);
    const body = { outcome: "succeeded", report: { notes: "first" }, log: "line one\nline two\n" };
    const first = await solo.complete(step, body);
    assert.equal(first.status, 200);
    const firstBody = await first.text();
    const again = await solo.complete(step, body);
    assert.equal(again.status, 200);
    assert.equal(await again.text(), firstBody);
    const other = await solo.complete(step, { ...body, report: { notes: "second" } });
    assert.equal(other.status, 409);
    assert.equal((await errorOf(other)).code, "stale_lease");
    const events = await eventsOf(worker, task.id);
    assert.equal(count(events, "step.succeeded"), 1);
    assert.equal(JSON.parse(firstBody).status, "succeeded");
  });

  test("a lease past its expiry holds until the sweep ends it, then is refused, and the sweep retries the step", async () => {
    const solo = await soloWorkflow("slow-agent", { agentFields: { lease_ms: 1000 } });
    const task = (await submit(worker, { title: "Slow", workflow: "slow-agent-flow" })).body.task;
    const step = await leaseWithin(solo);
    await new Promise((resolve) => setTimeout(resolve, 1300));
    assert.equal((await solo.heartbeat(step)).status, 200, "nobody else has the step: the lease still holds");
    await new Promise((resolve) => setTimeout(resolve, 1300));
    assert.equal((await worker.fetch("/__scheduled?cron=*+*+*+*+*")).status, 200);
    const retried = await eventually(async () => (await taskOf(worker, task.id)).steps[0].attempts[0]?.status === "expired");
    assert.ok(retried, "the sweep expired the attempt");
    const late = await solo.heartbeat(step);
    assert.equal(late.status, 409);
    assert.deepEqual([(await errorOf(late)).code], ["stale_lease"]);
    const second = await leaseWithin(solo);
    assert.equal(second.attempt, 2);
    assert.equal((await solo.heartbeat(second)).status, 200);
    const refused = await solo.complete(step, { report: {} });
    assert.equal(refused.status, 409, "the first lease stays stale once the step is given to a newer attempt");
    assert.match((await errorOf(refused)).message, /newer attempt/);
    assert.equal((await solo.complete(second, { report: {} })).status, 200);
    const events = await eventsOf(worker, task.id);
    assert.equal(count(events, "step.lease_expired"), 1);
    assert.equal(count(events, "step.succeeded"), 1);
  });

  test("an answer after the lease expired and the sweep ended it counts while nobody else has the step", async () => {
    const solo = await soloWorkflow("late-agent", { agentFields: { lease_ms: 1000 } });
    const task = (await submit(worker, { title: "Late", workflow: "late-agent-flow" })).body.task;
    const step = await leaseWithin(solo);
    await new Promise((resolve) => setTimeout(resolve, 1300));
    assert.equal((await worker.fetch("/__scheduled?cron=*+*+*+*+*")).status, 200);
    assert.ok(await eventually(async () => (await taskOf(worker, task.id)).steps[0].attempts[0]?.status === "expired"));
    const late = await solo.complete(step, { report: { notes: "late but done" } });
    assert.equal(late.status, 200, await late.clone().text());
    const answer = await late.json();
    assert.deepEqual([answer.late, answer.outcome, answer.attempt], [true, "succeeded", 1]);
    const done = await taskOf(worker, task.id);
    assert.equal(done.status, "succeeded");
    assert.deepEqual(done.steps[0].attempts.map((a) => a.status), ["succeeded"]);
    const events = await eventsOf(worker, task.id);
    assert.equal(count(events, "step.late_answer"), 1);
    assert.equal(count(events, "step.succeeded"), 1);
    // The retry that was waiting out its backoff finds the step done.
    await new Promise((resolve) => setTimeout(resolve, 2500));
    assert.equal(await solo.lease(0), null);
  });

  test("a lease whose hand-out fails to be stored leaves no lease behind and spends no attempt", async () => {
    const solo = await soloWorkflow("handout-agent");
    // 200 paths of 300 bytes, over the task part's bound: the lease stores that part in R2.
    const paths = Array.from({ length: 200 }, (_, i) => `src/generated/${String(i).padStart(3, "0")}/${"x".repeat(280)}.ts`);
    const task = (await submit(worker, { title: "Big brief", paths, workflow: "handout-agent-flow" })).body.task;
    await eventually(async () => (await taskOf(worker, task.id)).steps[0].ready_at);
    assert.equal((await json("POST", "/__test/faults", { point: "r2_write", fail: 1 })).status, 200);
    const failed = await postAs(worker, solo.token, `/v1/agents/${solo.name}/lease?wait=0`);
    assert.equal(failed.status, 500);
    const step = await leaseWithin(solo);
    assert.equal(step.attempt, 1, "the failed lease was never written");
    assert.ok(step.task.offloaded, "the task part was offloaded");
    assert.equal((await solo.complete(step, { report: {} })).status, 200);
  });

  test("an attempt that runs past its step's timeout= is ended by the sweep with the reason, and retried", async () => {
    const created = await json("POST", "/v1/agents", { name: "timed-agent", capabilities: ["testing"] });
    assert.equal(created.status, 201);
    const timed = agent(worker, "timed-agent", (await created.json()).token);
    const flow = "# Timed\n<process_flow>\n<step number=\"1\" subagent=\"timed-agent\" name=\"quick\" timeout=\"2s\">Be quick.</step>\n</process_flow>\n";
    const posted = await worker.admin("/v1/workflows?name=timed-flow", { method: "POST", headers: { "content-type": "text/markdown" }, body: flow });
    assert.equal(posted.status, 201, await posted.text());
    const task = (await submit(worker, { title: "Quick", workflow: "timed-flow" })).body.task;
    const step = await leaseWithin(timed);
    assert.equal(step.timeout_ms, 2000, "the runner is told the step's own timeout");
    // Heartbeats keep the lease, not the attempt: it still ends at its timeout.
    for (let i = 0; i < 3; i += 1) {
      await new Promise((resolve) => setTimeout(resolve, 800));
      assert.equal((await timed.heartbeat(step)).status, 200);
    }
    assert.equal((await worker.fetch("/__scheduled?cron=*+*+*+*+*")).status, 200);
    const ended = await eventually(async () => {
      const read = await taskOf(worker, task.id);
      return read.steps[0].attempts[0]?.status === "timed_out" && read;
    });
    assert.ok(ended, "the sweep ended the attempt");
    assert.match(ended.steps[0].attempts[0].error, /longer than its timeout of 2 s/);
    const refused = await timed.complete(step, { report: {} });
    assert.equal(refused.status, 409);
    assert.match((await errorOf(refused)).message, /past its timeout/);
    const events = await eventsOf(worker, task.id);
    assert.deepEqual(events.filter((e) => e.kind === "step.timed_out").map((e) => e.data.timeout), ["attempt"]);
    const second = await leaseWithin(timed);
    assert.equal(second.attempt, 2);
    assert.equal((await timed.complete(second, { report: {} })).status, 200);
  });

  test("a step whose agent never comes fails after its schedule timeout, and an optional one is skipped", async () => {
    for (const name of ["absent-agent", "present-agent"]) {
      const created = await json("POST", "/v1/agents", { name, capabilities: ["testing"], schedule_timeout_ms: 1000 });
      assert.equal(created.status, 201, await created.clone().text());
      assert.equal((await created.json()).agent.schedule_timeout_ms, 1000);
    }
    const workflow = await json("POST", "/v1/workflows", {
      name: "absent-flow",
      steps: [
        { key: "1", name: "maybe", agent: "absent-agent", optional: true },
        { key: "2", name: "surely", agent: "absent-agent" },
      ],
    });
    assert.equal(workflow.status, 201, await workflow.text());
    const task = (await submit(worker, { title: "Nobody comes", workflow: "absent-flow" })).body.task;
    await eventually(async () => (await taskOf(worker, task.id)).steps[0].ready_at);
    await new Promise((resolve) => setTimeout(resolve, 1200));
    assert.equal((await worker.fetch("/__scheduled?cron=*+*+*+*+*")).status, 200);
    const skipped = await eventually(async () => {
      const read = await taskOf(worker, task.id);
      return read.steps[0].status === "skipped" && read.steps[1].ready_at && read;
    });
    assert.ok(skipped, "the optional step was skipped and the next one dispatched");
    assert.match(skipped.steps[0].skip_reason, /schedule timeout/);
    await new Promise((resolve) => setTimeout(resolve, 1200));
    assert.equal((await worker.fetch("/__scheduled?cron=*+*+*+*+*")).status, 200);
    const failed = await eventually(async () => {
      const read = await taskOf(worker, task.id);
      return read.status === "failed" && read;
    });
    assert.ok(failed, "the task failed");
    assert.equal(failed.steps[1].status, "dead");
    assert.match(failed.steps[1].error, /no agent leased it within its schedule timeout/);
    assert.deepEqual(failed.steps[1].attempts, [], "no attempt was spent");
    const events = await eventsOf(worker, task.id);
    assert.deepEqual(events.filter((e) => e.kind === "step.timed_out").map((e) => e.data.timeout), ["schedule", "schedule"]);
  });

  test("a cancelled task stops its agents at their next heartbeat and completion", async () => {
    const solo = await soloWorkflow("cancel-agent");
    const task = (await submit(worker, { title: "Cancel me", workflow: "cancel-agent-flow" })).body.task;
    const step = await leaseWithin(solo);
    const cancelled = await cancel(task.id);
    assert.equal(cancelled.status, 200);
    assert.equal((await cancelled.json()).task.status, "cancelled");
    const heartbeat = await solo.heartbeat(step);
    assert.equal(heartbeat.status, 409);
    assert.equal((await errorOf(heartbeat)).code, "cancelled");
    const complete = await solo.complete(step, { report: {} });
    assert.equal((await errorOf(complete)).code, "cancelled");
    assert.equal((await cancel(task.id)).status, 200, "cancelling again changes nothing");
    const events = await eventsOf(worker, task.id);
    assert.equal(count(events, "task.cancelled"), 1);
    assert.equal(count(events, "step.cancelled"), 1);
  });

  test("failed attempts are retried with backoff until the step is dead; a retry by hand resumes the task", async () => {
    const solo = await soloWorkflow("flaky-agent", { attempts: 2 });
    const task = (await submit(worker, { title: "Flaky", workflow: "flaky-agent-flow" })).body.task;
    for (let attempt = 1; attempt <= 2; attempt += 1) {
      const step = await leaseWithin(solo);
      assert.equal(step.attempt, attempt);
      const failed = await solo.complete(step, { outcome: "failed", error: `broke ${attempt}` });
      assert.equal(failed.status, 200);
    }
    const dead = await taskOf(worker, task.id);
    assert.equal(dead.status, "failed");
    assert.equal(dead.steps[0].status, "dead");
    assert.match(dead.steps[0].error, /broke 2/);
    assert.equal((await solo.lease(0)), null, "a dead step is not leasable");

    const retried = await worker.admin(`/v1/steps/${dead.steps[0].id}/retry`, { method: "POST" });
    assert.equal(retried.status, 200);
    assert.equal((await retried.json()).task.status, "running");
    const step = await leaseWithin(solo);
    assert.equal(step.attempt, 3);
    await solo.complete(step, { report: {} });
    assert.equal((await taskOf(worker, task.id)).status, "succeeded");
    const again = await worker.admin(`/v1/steps/${dead.steps[0].id}/retry`, { method: "POST" });
    assert.equal(again.status, 409, "only a dead step can be retried");
    const events = await eventsOf(worker, task.id);
    assert.equal(count(events, "step.failed"), 2);
    assert.equal(count(events, "step.dead"), 1);
    assert.equal(count(events, "task.resumed"), 1);
  });

  test("the same Idempotency-Key and body give the same task; another body is a conflict", async () => {
    const key = `key-${Date.now()}`;
    const first = await submit(worker, BACKEND, { "idempotency-key": key });
    assert.equal(first.response.status, 201);
    const again = await submit(worker, BACKEND, { "idempotency-key": key });
    assert.equal(again.response.status, 201);
    assert.equal(again.response.headers.get("idempotent-replayed"), "true");
    assert.deepEqual(again.body, first.body);
    const other = await submit(worker, FRONTEND, { "idempotency-key": key });
    assert.equal(other.response.status, 409);
    const listed = await (await worker.admin("/v1/tasks?limit=200")).json();
    assert.equal(listed.tasks.filter((t) => t.id === first.body.task.id).length, 1);
    assert.equal((await cancel(first.body.task.id)).status, 200);
  });

  test("heartbeats and completions with wrong, expired or foreign lease ids are 4xx JSON errors that change no row", async () => {
    const owner = await soloWorkflow("lease-owner", { agentFields: { lease_ms: 1000 } });
    const other = await soloWorkflow("lease-other");
    const task = (await submit(worker, { title: "Leases", workflow: "lease-owner-flow" })).body.task;
    const step = await leaseWithin(owner);
    await new Promise((resolve) => setTimeout(resolve, 1300));
    assert.equal((await worker.fetch("/__scheduled?cron=*+*+*+*+*")).status, 200);
    const second = await leaseWithin(owner);
    assert.equal(second.attempt, 2);
    const digests = async () => (await worker.admin("/__test/row-digests")).json();
    const before = await digests();
    const cases = [
      ["a wrong lease id", owner, { lease_id: "lse_00000000000000000000000000" }, 409],
      ["the expired lease of a step given to a newer attempt", owner, { lease_id: step.lease_id }, 409],
      ["a foreign agent with the current lease", other, { lease_id: second.lease_id }, 403],
      ["no lease id", owner, {}, 422],
      ["a lease id that is a number", owner, { lease_id: 7 }, 422],
    ];
    for (const [what, client, body, status] of cases) {
      for (const route of ["heartbeat", "complete"]) {
        const answer = await postAs(worker, client.token, `/v1/steps/${second.id}/${route}`, body);
        assert.equal(answer.status, status, `${route} with ${what}`);
        assert.match(answer.headers.get("content-type") ?? "", /application\/json/, `${route} with ${what}`);
        assert.ok((await errorOf(answer)).code, `${route} with ${what} names its error`);
      }
    }
    assert.deepEqual(await digests(), before, "nothing changed");
    // Answered twice with different bodies: the second is refused, and the first stands.
    assert.equal((await owner.complete(second, { report: { notes: "first" } })).status, 200);
    const after = await digests();
    const twice = await owner.complete(second, { report: { notes: "second" } });
    assert.equal(twice.status, 409);
    assert.deepEqual(await digests(), after, "the second answer changed nothing");
    assert.equal((await taskOf(worker, task.id)).status, "succeeded");
  });

  test("an agent may lease and complete only its own steps", async () => {
    const owner = await soloWorkflow("owner-agent");
    const intruder = await soloWorkflow("intruder-agent");
    const task = (await submit(worker, { title: "Mine", workflow: "owner-agent-flow" })).body.task;
    const leaseOther = await postAs(worker, intruder.token, "/v1/agents/owner-agent/lease");
    assert.equal(leaseOther.status, 403);
    assert.equal((await errorOf(leaseOther)).code, "forbidden");
    const step = await leaseWithin(owner);
    const foreign = await postAs(worker, intruder.token, `/v1/steps/${step.id}/complete`, { lease_id: step.lease_id });
    assert.equal(foreign.status, 403);
    const heartbeat = await postAs(worker, intruder.token, `/v1/steps/${step.id}/heartbeat`, { lease_id: step.lease_id });
    assert.equal(heartbeat.status, 403);
    const adminOnly = await postAs(worker, owner.token, "/v1/tasks", FULL_STACK);
    assert.equal(adminOnly.status, 403, "an agent token does not open admin routes");
    const whoami = await worker.fetch("/v1/whoami", { headers: { authorization: `Bearer ${owner.token}` } });
    assert.deepEqual(await whoami.json(), { principal: "agent", agent: "owner-agent" });
    assert.equal((await owner.complete(step, { report: {} })).status, 200);
    assert.equal((await taskOf(worker, task.id)).status, "succeeded");
  });
});
