// The local runtime is stopped in the middle of a run and started again on the same state: the
// run completes. Leases held across the restart stay valid, and queue messages lost with the
// stopped runtime are sent again by the cron sweep.

import assert from "node:assert/strict";
import { after, describe, test } from "node:test";
import { agent, eventsOf, issueToken, leaseWithin, reportFor, submit, taskOf, workTask } from "./helpers/agents.mjs";
import { eventually, startWorker } from "./helpers/worker.mjs";

const AGENTS = ["context-fetcher", "cloudflare-specialist", "sveltekit-specialist", "project-manager", "test-runner"];
const VARS = { REDISPATCH_AFTER_SECONDS: "1" };

describe("a restart in the middle of a run", { timeout: 300_000 }, () => {
  let worker;
  after(async () => {
    await worker?.stop();
  });

  test("a task survives two restarts and completes with nothing done twice", async () => {
    worker = await startWorker({ vars: VARS });
    const tokens = {};
    for (const name of AGENTS) tokens[name] = await issueToken(worker, name);
    const clientsOf = (w) => AGENTS.map((name) => agent(w, name, tokens[name]));
    const task = (await submit(worker, { title: "Add a D1 comments API and a SvelteKit page for them" })).body.task;

    let [fetcher, backend] = clientsOf(worker);
    const first = await leaseWithin(fetcher);
    assert.equal((await fetcher.complete(first, { report: reportFor(first) })).status, 200);
    const held = await leaseWithin(backend);
    assert.equal(held.key, "2a");

    // First restart: 2a is leased by an agent that keeps working through it.
    const stateDir = worker.stateDir;
    await worker.stop({ keepState: true });
    worker = await startWorker({ vars: VARS, stateDir });
    [fetcher, backend] = clientsOf(worker);
    assert.equal((await backend.heartbeat(held)).status, 200, "the lease survived the restart");
    assert.equal((await backend.complete(held, { report: reportFor(held) })).status, 200);

    // Second restart straight after a completion: its queue messages may be lost with the runtime.
    const frontend = clientsOf(worker)[2];
    const second = await leaseWithin(frontend);
    assert.equal((await frontend.complete(second, { report: reportFor(second) })).status, 200);
    await worker.stop({ keepState: true });
    worker = await startWorker({ vars: VARS, stateDir });
    const ready = await eventually(async () => {
      await worker.fetch("/__scheduled?cron=*+*+*+*+*");
      const step = (await taskOf(worker, task.id)).steps.find((s) => s.key === "3");
      return step.ready_at !== null && step;
    });
    assert.ok(ready, "the fan-in step became ready after the restart");

    const done = await workTask(worker, task.id, clientsOf(worker));
    assert.equal(done.status, "succeeded");
    const events = await eventsOf(worker, task.id);
    const queued = events.filter((e) => e.kind === "step.queued");
    assert.equal(queued.length, 8, "every step, the post-flight one too, was queued once");
    assert.equal(events.filter((e) => e.kind === "step.succeeded").length, 8);
    assert.equal(new Set(events.map((e) => e.seq)).size, events.length);
  });
});
