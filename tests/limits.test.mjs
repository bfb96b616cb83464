// The limits on how much a client may start: messages per minute per agent and tasks running
// at once. Each is a 429 with Retry-After that stores nothing.

import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { postAs, submit } from "./helpers/agents.mjs";
import { errorOf, startWorker } from "./helpers/worker.mjs";

/** As src/core/limits.rs. */
const MESSAGES_PER_MINUTE_MAX = 60;
const TASKS_RUNNING_MAX = 1000;

describe("limits", { timeout: 600_000 }, () => {
  let worker;
  before(async () => {
    worker = await startWorker();
  });
  after(async () => {
    await worker?.stop();
  });

  const json = (method, path, body) =>
    worker.admin(path, { method, headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
  const rows = async () => (await worker.admin("/__test/row-counts")).json();

  test("an agent sends at most 60 messages a minute", async () => {
    const created = await json("POST", "/v1/agents", { name: "chatty-agent", capabilities: ["talking"] });
    const { token } = await created.json();
    const notice = (i) => ({ from: "chatty-agent", to: "test-runner", type: "notify", payload: { i }, correlation_id: `chat-${i}` });
    for (let i = 0; i < MESSAGES_PER_MINUTE_MAX; i += 1) {
      assert.equal((await postAs(worker, token, "/v1/messages", notice(i))).status, 201, `message ${i}`);
    }
    const before = await rows();
    const refused = await postAs(worker, token, "/v1/messages", notice(MESSAGES_PER_MINUTE_MAX));
    assert.equal(refused.status, 429);
    assert.equal(refused.headers.get("retry-after"), "60");
    assert.match((await errorOf(refused)).message, /chatty-agent sent 60 messages in the last minute/);
    assert.deepEqual(await rows(), before);
    const other = { ...notice(0), from: "test-runner", to: "chatty-agent" };
    assert.equal((await json("POST", "/v1/messages", other)).status, 201, "another sender is not limited");
  });

  test("at most 1,000 tasks run at once", async () => {
    const created = await json("POST", "/v1/workflows", { name: "parked", steps: [{ key: "1", name: "wait", agent: "test-runner" }] });
    assert.equal(created.status, 201);
    const pending = [];
    for (let i = 0; i < TASKS_RUNNING_MAX; i += 1) {
      pending.push(submit(worker, { title: `Parked task ${i}`, workflow: "parked" }).then(({ response }) => response.status));
      if (pending.length === 20) assert.deepEqual(await Promise.all(pending.splice(0)), Array(20).fill(201));
    }
    assert.deepEqual(await Promise.all(pending), Array(pending.length).fill(201));
    // The queue consumer is still making the parked steps leasable (events keep coming), so the
    // rows the refused submission would have written are compared.
    const written = ({ tasks, steps, idempotency_keys }) => ({ tasks, steps, idempotency_keys });
    const before = written(await rows());
    assert.equal(before.tasks, TASKS_RUNNING_MAX);
    const refused = await submit(worker, { title: "One too many", workflow: "parked" }, { "idempotency-key": "too-many" });
    assert.equal(refused.response.status, 429);
    assert.match(refused.body.error.message, /1000 tasks are running/);
    assert.deepEqual(written(await rows()), before);
    const first = (await (await worker.admin("/v1/tasks?limit=1")).json()).tasks[0];
    assert.equal((await worker.admin(`/v1/tasks/${first.id}/cancel`, { method: "POST" })).status, 200);
    assert.equal((await submit(worker, { title: "Room again", workflow: "parked" })).response.status, 201, "a finished task makes room");
  });
});
