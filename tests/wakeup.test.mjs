// Waiting lease requests and the per-agent Durable Object that holds them: a waiting lease
// looks in D1 once, is woken by a step made ready for its agent, and without the object falls
// back to looking in D1 every second. Counted through the Worker's own D1 round-trip counter,
// as are the reads a submission makes, the token lookups of a runner's requests, and the leases
// of a parallel group's steps taken at the same moment.

import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { postAs, submit } from "./helpers/agents.mjs";
import { ADMIN_TOKEN, armFault, eventually, startWorker } from "./helpers/worker.mjs";

const FULL_STACK = { title: "Add a D1-backed comments API and a SvelteKit page that lists the comments" };

/** The Worker's counters (GET /v1/system/counters). */
async function counters(worker) {
  return (await worker.admin("/v1/system/counters")).json();
}

/** D1 round trips the Worker made so far. */
async function roundTrips(worker) {
  return (await counters(worker)).d1_round_trips;
}

/** Completes a leased step as admin, reporting its key. */
function complete(worker, step) {
  return postAs(worker, ADMIN_TOKEN, `/v1/steps/${step.id}/complete`, { lease_id: step.lease_id, report: { notes: step.key } });
}

/** The fault points' state (GET /__test/faults). */
async function faults(worker) {
  return (await worker.admin("/__test/faults")).json();
}

/** Holds (or releases) the next batch that writes a change of a task; the points' state. */
async function holdChangeWrite(worker, hold) {
  const response = await worker.admin("/__test/faults", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ point: "change_write", hold }),
  });
  assert.equal(response.status, 200, await response.clone().text());
  return response.json();
}

/** A lease as admin (no token lookup, so every D1 round trip is the lease's own). */
async function lease(worker, agent, wait) {
  const response = await postAs(worker, ADMIN_TOKEN, `/v1/agents/${agent}/lease?wait=${wait}`);
  if (response.status === 204) return null;
  assert.equal(response.status, 200, await response.clone().text());
  return (await response.json()).step;
}

/** Registers `agents` (names, or names with more fields) and posts the workflow `name` of `steps`. */
async function flowOf(worker, name, steps, agents) {
  const post = (path, body) =>
    worker.admin(path, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
  for (const agent of agents) {
    const made = await post("/v1/agents", { capabilities: ["testing"], ...(typeof agent === "string" ? { name: agent } : agent) });
    assert.equal(made.status, 201, await made.text());
  }
  const flow = await post("/v1/workflows", { name, steps });
  assert.equal(flow.status, 201, await flow.text());
}

/** A flow of a first step, a parallel group of two (2a by `left`, 2b by `right`) and a step after it. */
function pairFlow(worker, name, left, right) {
  return flowOf(worker, name, [
    { key: "1", name: "first", agent: left },
    { key: "2a", name: "left", agent: left, group: "pair" },
    { key: "2b", name: "right", agent: right, group: "pair" },
    { key: "3", name: "after", agent: right },
  ], [left, right]);
}

describe("waiting lease requests", { timeout: 180_000 }, () => {
  let worker;
  let withoutObject;
  before(async () => {
    [worker, withoutObject] = await Promise.all([startWorker(), startWorker({ withoutBindings: ["AGENT_WAKE"] })]);
  });
  after(async () => {
    await Promise.all([worker?.stop(), withoutObject?.stop()]);
  });

  test("a lease that waits three seconds for nothing looks in D1 once", async () => {
    await lease(worker, "test-runner", 0);
    const before = await roundTrips(worker);
    assert.equal(await lease(worker, "test-runner", 3), null);
    assert.equal((await roundTrips(worker)) - before, 1);
  });

  test("submitting a task of the default workflow costs one D1 round trip once the isolate has read the workflow (the insert, guarded on what that read found) and the lease of its first step one, on the read the insert made", async () => {
    // The first submission reads the workflow, the agents and the rules files, and the isolate
    // keeps that read for the next ones.
    const before = await roundTrips(worker);
    const first = await submit(worker, { title: "Teach the isolate" });
    assert.equal(first.response.status, 201);
    assert.ok((await roundTrips(worker)) - before >= 2, "a first submission reads before it inserts");
    assert.equal((await worker.admin(`/v1/tasks/${first.body.task.id}/cancel`, { method: "POST" })).status, 200);
    const kept = await roundTrips(worker);
    const { response, body } = await submit(worker, { title: "Count my round trips" });
    assert.equal(response.status, 201);
    assert.equal((await roundTrips(worker)) - kept, 1);
    assert.deepEqual(body.task.steps.map((step) => step.key), first.body.task.steps.map((step) => step.key));
    const step = await lease(worker, "context-fetcher", 0);
    assert.equal(step?.task_id, body.task.id);
    assert.equal(step.key, "1");
    assert.equal((await roundTrips(worker)) - kept, 2);
    // Its first step would otherwise be held by context-fetcher, which leases one at a time.
    assert.equal((await worker.admin(`/v1/tasks/${body.task.id}/cancel`, { method: "POST" })).status, 200);
  });

  test("a submission on a kept read whose agents changed since loses its guard and is planned again on a fresh read: an agent deleted since refuses the task, one changed since costs the lost write and a fresh read", async () => {
    await flowOf(worker, "kept-read-flow", [{ key: "1", name: "only", agent: "kept-read-agent" }], ["kept-read-agent"]);
    const task = { title: "Planned on what the isolate read", workflow: "kept-read-flow" };
    const cancel = async (made) => assert.equal((await worker.admin(`/v1/tasks/${made.body.task.id}/cancel`, { method: "POST" })).status, 200);
    const fresh = await submit(worker, task);
    assert.equal(fresh.response.status, 201, JSON.stringify(fresh.body));
    await cancel(fresh);
    let before = await roundTrips(worker);
    const kept = await submit(worker, task);
    assert.equal(kept.response.status, 201);
    assert.equal((await roundTrips(worker)) - before, 1, "planned on the kept read");
    await cancel(kept);

    assert.equal((await worker.admin("/v1/agents/kept-read-agent", { method: "DELETE" })).status, 204);
    const refused = await submit(worker, task);
    assert.equal(refused.response.status, 422, JSON.stringify(refused.body));
    assert.match(JSON.stringify(refused.body.error.details), /kept-read-agent/);

    const put = (body) =>
      worker.admin("/v1/agents/kept-read-agent", { method: "PUT", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
    const made = await worker.admin("/v1/agents", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ name: "kept-read-agent", capabilities: ["testing"] }),
    });
    assert.equal(made.status, 201, await made.text());
    const again = await submit(worker, task);
    assert.equal(again.response.status, 201, JSON.stringify(again.body));
    await cancel(again);
    const changed = await put({ capabilities: ["testing", "reviews"] });
    assert.equal(changed.status, 200, await changed.text());
    before = await roundTrips(worker);
    const replanned = await submit(worker, task);
    assert.equal(replanned.response.status, 201);
    assert.equal((await roundTrips(worker)) - before, 3, "the write that lost its guard, a fresh read, the insert");
    await cancel(replanned);
  });

  test("completing the analysis step with a selection costs two D1 round trips: the task with the agents it names, and the write", async () => {
    const { body } = await submit(worker, FULL_STACK);
    const step = await lease(worker, "context-fetcher", 0);
    assert.equal(step?.task_id, body.task.id);
    // Its agent and the agents of the steps it makes ready, looked up now so that the
    // completion finds them cached.
    const agents = ["cloudflare-specialist", "sveltekit-specialist"];
    for (const name of ["context-fetcher", ...agents]) assert.equal((await worker.admin(`/v1/agents/${name}`)).status, 200);
    const before = await roundTrips(worker);
    const report = { notes: "both halves", selection: { agents, task_type: "full-stack", reason: "an API and a page" } };
    const done = await postAs(worker, ADMIN_TOKEN, `/v1/steps/${step.id}/complete`, { lease_id: step.lease_id, report });
    assert.equal(done.status, 200, await done.clone().text());
    assert.equal((await roundTrips(worker)) - before, 2);
    assert.equal((await worker.admin(`/v1/tasks/${body.task.id}/cancel`, { method: "POST" })).status, 200);
  });

  test("the three steps of a parallel group leased at the same moment by their agents are all leased at the first write: three D1 round trips in all", async () => {
    const sides = ["2a", "2b", "2c"];
    const agentOf = (key) => `side-${key}-agent`;
    await flowOf(worker, "sides-flow", [
      { key: "1", name: "first", agent: agentOf("2a") },
      ...sides.map((key) => ({ key, name: `side-${key}`, agent: agentOf(key), group: "sides" })),
    ], sides.map(agentOf));
    // Looked up now, so that the completion below finds them cached.
    for (const key of sides) assert.equal((await worker.admin(`/v1/agents/${agentOf(key)}`)).status, 200);
    const { body } = await submit(worker, { title: "All sides at once", workflow: "sides-flow" });
    const first = await lease(worker, agentOf("2a"), 5);
    assert.equal(first?.key, "1");
    const done = await postAs(worker, ADMIN_TOKEN, `/v1/steps/${first.id}/complete`, { lease_id: first.lease_id, report: { notes: "first" } });
    assert.equal(done.status, 200, await done.clone().text());
    const before = await roundTrips(worker);
    // Each takes the read the completion made ahead for its agent, all of the task at the same
    // version; no lease moves it, so none loses, and each costs its write alone.
    const leased = await Promise.all(sides.map((key) => lease(worker, agentOf(key), 0)));
    assert.deepEqual(leased.map((step) => step && `${step.task_id}:${step.key}`), sides.map((key) => `${body.task.id}:${key}`));
    assert.equal((await roundTrips(worker)) - before, sides.length);
    const { events } = await (await worker.admin(`/v1/tasks/${body.task.id}/events`)).json();
    const leasedEvents = events.filter((event) => event.kind === "step.leased").map((event) => event.data.key);
    assert.deepEqual(leasedEvents.sort(), ["1", ...sides]);
  });

  test("two steps of a parallel group completed at the same moment: the one whose write loses decides again on the state the other's write left, without a read, and the step after the group is queued once", async () => {
    await pairFlow(worker, "pair-flow", "pair-a", "pair-b");
    const { body } = await submit(worker, { title: "Both sides done at once", workflow: "pair-flow" });
    const first = await lease(worker, "pair-a", 5);
    assert.equal(first?.key, "1");
    const done = await complete(worker, first);
    assert.equal(done.status, 200, await done.clone().text());
    const [left, right] = await Promise.all([lease(worker, "pair-a", 5), lease(worker, "pair-b", 5)]);
    assert.deepEqual([left?.key, right?.key], ["2a", "2b"]);
    const before = await counters(worker);
    // 2b's completion is decided, then its write waits; 2a's is decided on the same state and
    // written meanwhile. Released, 2b's write finds the task moved on: the race, every time.
    assert.equal((await holdChangeWrite(worker, true)).change_write.held, 0);
    const rightDone = complete(worker, right);
    assert.ok(await eventually(async () => (await faults(worker)).change_write.held === 1), "2b's write is held");
    const leftDone = await complete(worker, left);
    assert.equal(leftDone.status, 200, await leftDone.clone().text());
    await holdChangeWrite(worker, false);
    const rightAnswer = await rightDone;
    assert.equal(rightAnswer.status, 200, await rightAnswer.clone().text());
    const after = await counters(worker);
    assert.equal(after.kept_state_stale - before.kept_state_stale, 1, "2b's first write lost to 2a's");
    // 2a's write, 2b's lost write and its write again: no read.
    assert.equal(after.d1_round_trips - before.d1_round_trips, 3);
    const { task } = await (await worker.admin(`/v1/tasks/${body.task.id}`)).json();
    assert.deepEqual(task.steps.map((step) => `${step.key}:${step.status}`), ["1:succeeded", "2a:succeeded", "2b:succeeded", "3:queued"]);
    const { events } = await (await worker.admin(`/v1/tasks/${body.task.id}/events`)).json();
    assert.equal(events.filter((event) => event.kind === "step.queued" && event.data.key === "3").length, 1);
    assert.equal(events.filter((event) => event.kind === "step.succeeded").length, 3);
  });

  test("the test route holds only a change's write, and takes a hold or a failure, not both", async () => {
    const arm = (body) =>
      worker.admin("/__test/faults", { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
    for (const body of [
      { point: "d1", hold: true },
      { point: "change_write", hold: true, fail: 1 },
      { point: "change_write", hold: true, skip: 2 },
      { point: "change_write" },
      { point: "change_write", hold: "yes" },
    ]) {
      const response = await arm(body);
      assert.equal(response.status, 422, `${JSON.stringify(body)}: ${await response.clone().text()}`);
    }
    const state = await faults(worker);
    assert.deepEqual([state.d1.held, state.change_write.held, state.change_write.fail], [0, 0, 0]);
  });

  test("completing a step this isolate leased is decided on the state the lease left: one D1 round trip, the write", async () => {
    await flowOf(worker, "kept-flow", [
      { key: "1", name: "first", agent: "kept-agent" },
      { key: "2", name: "second", agent: "kept-agent" },
    ], ["kept-agent"]);
    const { body } = await submit(worker, { title: "Kept between lease and completion", workflow: "kept-flow" });
    const first = await lease(worker, "kept-agent", 5);
    assert.equal(first?.key, "1");
    // Looked up now, so that the completion finds it cached.
    assert.equal((await worker.admin("/v1/agents/kept-agent")).status, 200);
    const before = await roundTrips(worker);
    const done = await postAs(worker, ADMIN_TOKEN, `/v1/steps/${first.id}/complete`, { lease_id: first.lease_id, report: { notes: "first" } });
    assert.equal(done.status, 200, await done.clone().text());
    assert.equal((await roundTrips(worker)) - before, 1);
    const { task } = await (await worker.admin(`/v1/tasks/${body.task.id}`)).json();
    assert.deepEqual(task.steps.map((step) => `${step.key}:${step.status}`), ["1:succeeded", "2:queued"]);
    const second = await lease(worker, "kept-agent", 0);
    assert.equal(second?.key, "2", "the step the completion made ready is leasable");
    assert.equal((await worker.admin(`/v1/tasks/${body.task.id}/cancel`, { method: "POST" })).status, 200);
  });

  test("a runner's lease right after its completion is answered from the read its completion's batch made ahead: one D1 round trip each", async () => {
    await flowOf(worker, "ahead-flow", [
      { key: "1", name: "first", agent: "ahead-agent" },
      { key: "2", name: "second", agent: "ahead-agent" },
    ], ["ahead-agent"]);
    const rotated = await worker.admin("/v1/agents/ahead-agent/token", { method: "POST" });
    assert.equal(rotated.status, 200, await rotated.clone().text());
    const { token } = await rotated.json();
    const { body } = await submit(worker, { title: "Read ahead", workflow: "ahead-flow" });
    const leaseAs = async () => {
      const response = await postAs(worker, token, "/v1/agents/ahead-agent/lease?wait=5");
      assert.equal(response.status, 200, await response.clone().text());
      return (await response.json()).step;
    };
    const first = await leaseAs();
    assert.equal(first.key, "1");
    // Looked up now, so that the completion finds it cached.
    assert.equal((await worker.admin("/v1/agents/ahead-agent")).status, 200);
    const before = await roundTrips(worker);
    const done = await postAs(worker, token, `/v1/steps/${first.id}/complete`, { lease_id: first.lease_id, report: { notes: "first done" } });
    assert.equal(done.status, 200, await done.clone().text());
    const second = await leaseAs();
    // The completion's write with the read ahead, and the lease's write.
    assert.equal((await roundTrips(worker)) - before, 2);
    assert.equal(second.task_id, body.task.id);
    assert.equal(second.key, "2");
    assert.equal(second.inputs["1"].report.notes, "first done", "read after the completion was written");
    const again = await postAs(worker, token, `/v1/steps/${second.id}/complete`, { lease_id: second.lease_id, report: { notes: "second" } });
    assert.equal(again.status, 200, await again.clone().text());
    // Nothing is left to read ahead: the next lease looks in D1 itself, and finds no work.
    const idle = await postAs(worker, token, "/v1/agents/ahead-agent/lease");
    assert.equal(idle.status, 204, await idle.text());
    const { task } = await (await worker.admin(`/v1/tasks/${body.task.id}`)).json();
    assert.equal(task.status, "succeeded");
  });

  test("a waiting lease woken by the change that made its step leasable takes the read that change's batch made: its one D1 round trip is the write", async () => {
    await flowOf(worker, "woken-flow", [
      { key: "1", name: "first", agent: "woken-first" },
      { key: "2", name: "next", agent: "woken-next" },
    ], ["woken-first", "woken-next"]);
    const { body } = await submit(worker, { title: "Woken with its read", workflow: "woken-flow" });
    const first = await lease(worker, "woken-first", 5);
    assert.equal(first?.key, "1");
    const waiting = lease(worker, "woken-next", 10);
    // Its first look has found nothing, and it waits on the agent's object.
    await new Promise((resolve) => setTimeout(resolve, 500));
    assert.equal((await worker.admin("/v1/agents/woken-next")).status, 200);
    const before = await counters(worker);
    const done = await postAs(worker, ADMIN_TOKEN, `/v1/steps/${first.id}/complete`, { lease_id: first.lease_id, report: { notes: "first done" } });
    assert.equal(done.status, 200, await done.clone().text());
    const next = await waiting;
    assert.equal(next?.task_id, body.task.id);
    assert.equal(next.key, "2");
    assert.equal(next.inputs["1"].report.notes, "first done");
    const after = await counters(worker);
    assert.deepEqual([after.leases - before.leases, after.lease_round_trips - before.lease_round_trips], [1, 1]);
  });

  test("a built-in step run by the completion that queued it summarises what that completion's batch read at its end: two D1 round trips for both", async () => {
    await flowOf(worker, "summed-flow", [
      { key: "1", name: "first", agent: "summed-agent" },
      { key: "2", name: "task_summary" },
    ], ["summed-agent"]);
    const { body } = await submit(worker, { title: "Summed up", workflow: "summed-flow" });
    const first = await lease(worker, "summed-agent", 5);
    assert.equal(first?.key, "1");
    assert.equal((await worker.admin("/v1/agents/summed-agent")).status, 200);
    const before = await roundTrips(worker);
    const report = { notes: "built it", files_created: ["a.ts"], lines_added: 7 };
    const done = await postAs(worker, ADMIN_TOKEN, `/v1/steps/${first.id}/complete`, { lease_id: first.lease_id, report });
    assert.equal(done.status, 200, await done.clone().text());
    // The completion's write (with the summary's read at its end) and the built-in step's write.
    assert.equal((await roundTrips(worker)) - before, 2);
    const { task } = await (await worker.admin(`/v1/tasks/${body.task.id}`)).json();
    assert.equal(task.status, "succeeded");
    const summary = await (await worker.admin(`/v1/tasks/${body.task.id}/summary`, { headers: { accept: "application/json" } })).json();
    const work = Object.fromEntries(summary.work.map((w) => [w.agent, w]));
    assert.equal(work["summed-agent"]?.lines_added, 7, "the summary was read after the completion was written");
  });

  test("a completion decided on a kept state that is behind the store loses its guard and is decided again on a fresh read", async () => {
    await pairFlow(worker, "behind-flow", "behind-left", "behind-right");
    const { body } = await submit(worker, { title: "Behind the store", workflow: "behind-flow" });
    const first = await lease(worker, "behind-left", 5);
    assert.equal((await complete(worker, first)).status, 200);
    const left = await lease(worker, "behind-left", 5);
    const right = await lease(worker, "behind-right", 5);
    assert.deepEqual([left?.key, right?.key], ["2a", "2b"]);
    // The isolate misses the left completion's write, as when another isolate makes it.
    assert.equal((await armFault(worker, "kept_state", 1)).status, 200);
    assert.equal((await complete(worker, left)).status, 200);
    for (const name of ["behind-left", "behind-right"]) assert.equal((await worker.admin(`/v1/agents/${name}`)).status, 200);
    const before = { trips: await roundTrips(worker), counters: await counters(worker) };
    const done = await complete(worker, right);
    assert.equal(done.status, 200, await done.clone().text());
    // The write decided on the kept state, the fresh read, the write decided on it.
    assert.equal((await roundTrips(worker)) - before.trips, 3);
    const after = await counters(worker);
    assert.equal(after.kept_state_stale - before.counters.kept_state_stale, 1);
    const { task } = await (await worker.admin(`/v1/tasks/${body.task.id}`)).json();
    assert.deepEqual(task.steps.map((step) => `${step.key}:${step.status}`), ["1:succeeded", "2a:succeeded", "2b:succeeded", "3:queued"]);
    const { events } = await (await worker.admin(`/v1/tasks/${body.task.id}/events`)).json();
    const once = (kind, key) => events.filter((event) => event.kind === kind && event.data.key === key).length;
    assert.deepEqual([once("step.succeeded", "2a"), once("step.succeeded", "2b"), once("step.queued", "3")], [1, 1, 1]);
    assert.equal((await worker.admin(`/v1/tasks/${body.task.id}/cancel`, { method: "POST" })).status, 200);
  });

  test("a runner's lease requests with its token cost only their own look in D1, from the first one on", async () => {
    const rotated = await worker.admin("/v1/agents/project-manager/token", { method: "POST" });
    assert.equal(rotated.status, 200, await rotated.clone().text());
    const { token } = await rotated.json();
    const before = await roundTrips(worker);
    for (let i = 0; i < 2; i += 1) {
      const response = await postAs(worker, token, "/v1/agents/project-manager/lease?wait=1");
      assert.equal(response.status, 204, await response.text());
    }
    // One look each: the token was cached as it was issued, so finding its agent read no D1.
    assert.equal((await roundTrips(worker)) - before, 2);
  });

  test("a step made ready while a lease waits wakes it with that step", async () => {
    const waiting = lease(worker, "context-fetcher", 20);
    await new Promise((resolve) => setTimeout(resolve, 500));
    const { body } = await submit(worker, FULL_STACK);
    const step = await waiting;
    assert.ok(step, "the waiting lease was answered with work, not 204");
    assert.equal(step.task_id, body.task.id);
    assert.equal(step.key, "1");
    // The agent may hold one lease at a time: end this one so that the next test has room.
    const done = await postAs(worker, ADMIN_TOKEN, `/v1/steps/${step.id}/complete`, { lease_id: step.lease_id, report: { notes: "read it" } });
    assert.equal(done.status, 200, await done.clone().text());
  });

  test("a completion that makes two steps of one agent ready wakes two of its waiting leases, one step each", async () => {
    await flowOf(worker, "pair-flow", [
      { key: "1", name: "first", agent: "pair-agent" },
      { key: "2a", name: "left", agent: "pair-agent", group: "pair" },
      { key: "2b", name: "right", agent: "pair-agent", group: "pair" },
    ], [{ name: "pair-agent", max_concurrency: 2 }]);
    const { body } = await submit(worker, { title: "Two at once", workflow: "pair-flow" });
    const first = await lease(worker, "pair-agent", 5);
    assert.equal(first?.key, "1");
    const waiting = [lease(worker, "pair-agent", 10), lease(worker, "pair-agent", 10)];
    await new Promise((resolve) => setTimeout(resolve, 500));
    const done = await postAs(worker, ADMIN_TOKEN, `/v1/steps/${first.id}/complete`, { lease_id: first.lease_id, report: { notes: "first" } });
    assert.equal(done.status, 200, await done.clone().text());
    const woken = await Promise.all(waiting);
    assert.deepEqual(woken.map((step) => step && `${step.task_id}:${step.key}`).sort(), [`${body.task.id}:2a`, `${body.task.id}:2b`]);
  });

  test("when the wake-up object fails, a waiting lease looks in D1 every second and still gets a step whose wake-up failed", async () => {
    const fault = (fail) => armFault(worker, "durable_object", fail);
    assert.equal((await fault(1_000)).status, 200);
    try {
      const before = await roundTrips(worker);
      assert.equal(await lease(worker, "test-runner", 3), null);
      const looks = (await roundTrips(worker)) - before;
      assert.ok(looks >= 3 && looks <= 5, `${looks} looks in three seconds`);
      assert.match(worker.logs(), /the wake-up object of test-runner is unavailable; polling D1: .*injected fault/);

      const waiting = lease(worker, "context-fetcher", 20);
      await new Promise((resolve) => setTimeout(resolve, 500));
      const { body } = await submit(worker, FULL_STACK);
      const step = await waiting;
      assert.equal(step?.task_id, body.task.id, "found by looking in D1 again");
      assert.match(worker.logs(), /waking the lease requests of context-fetcher failed: .*injected fault/);
    } finally {
      assert.equal((await fault(0)).status, 200);
    }
  });

  test("without the Durable Object binding a waiting lease looks in D1 every second instead", async () => {
    await lease(withoutObject, "test-runner", 0);
    const before = await roundTrips(withoutObject);
    assert.equal(await lease(withoutObject, "test-runner", 3), null);
    const looks = (await roundTrips(withoutObject)) - before;
    assert.ok(looks >= 3 && looks <= 5, `${looks} looks in three seconds`);
  });
});
