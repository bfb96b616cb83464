// Every bad input a caller can send to the task and step routes gets a clear 4xx JSON error,
// and none of them changes any state.

import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { agent, eventsOf, issueToken, leaseWithin, postAs, submit, taskOf } from "./helpers/agents.mjs";
import { errorOf, startWorker } from "./helpers/worker.mjs";

describe("bad inputs to tasks and steps", { timeout: 300_000 }, () => {
  let worker;
  let task;
  let fetcher;
  let leased;
  before(async () => {
    worker = await startWorker();
    fetcher = agent(worker, "context-fetcher", await issueToken(worker, "context-fetcher"));
    task = (await submit(worker, { title: "Add a D1 table and a SvelteKit page" })).body.task;
    leased = await leaseWithin(fetcher);
  });
  after(async () => {
    await worker?.stop();
  });

  /** Everything a bad request could have changed. */
  async function snapshot() {
    const tasks = await (await worker.admin("/v1/tasks?limit=200")).json();
    return { tasks, task: await taskOf(worker, task.id), events: await eventsOf(worker, task.id) };
  }

  async function refused(response, status, code) {
    assert.equal(response.status, status, `${response.url}: expected ${status}`);
    const error = await errorOf(response);
    if (code) assert.equal(error.code, code);
    return error;
  }

  const send = (path, body, { type = "application/json", method = "POST", headers = {} } = {}) =>
    worker.admin(path, { method, headers: { "content-type": type, ...headers }, body });
  const sendJson = (path, value, options) => send(path, JSON.stringify(value), options);

  test("submissions that cannot become a task are refused", async () => {
    const before = await snapshot();
    await refused(await send("/v1/tasks", "title=x", { type: "application/x-www-form-urlencoded" }), 415, "unsupported_media_type");
    await refused(await send("/v1/tasks", "{\"title\": "), 400, "malformed_json");
    await refused(await sendJson("/v1/tasks", ["title"]), 422, "invalid_request");
    await refused(await sendJson("/v1/tasks", {}), 422, "invalid_request");
    const blank = await refused(await sendJson("/v1/tasks", { title: "  " }), 422, "invalid_request");
    assert.equal(blank.details[0].field, "title");
    await refused(await sendJson("/v1/tasks", { title: "x".repeat(1025) }), 422);
    await refused(await sendJson("/v1/tasks", { title: "x", priority: "high" }), 422);
    await refused(await sendJson("/v1/tasks", { title: "x", requirements: "d1" }), 422);
    await refused(await sendJson("/v1/tasks", { title: "x", paths: Array(257).fill("a") }), 422);
    for (const workflow of ["Bad Name", "enhanced-multi-agent@0", "enhanced-multi-agent@v1", "", "nope", "enhanced-multi-agent@99"]) {
      const error = await refused(await sendJson("/v1/tasks", { title: "x", workflow }), 422, "invalid_request");
      assert.equal(error.details[0].field, "workflow", workflow);
    }
    await refused(await send("/v1/tasks", JSON.stringify({ title: "x", description: "y".repeat(70_000) })), 413, "payload_too_large");
    const longKey = { headers: { "idempotency-key": "k".repeat(129) } };
    await refused(await sendJson("/v1/tasks", { title: "x" }, longKey), 400, "bad_request");
    await refused(await sendJson("/v1/tasks", { title: "x" }, { headers: { "idempotency-key": "two words" } }), 400);
    await refused(await worker.fetch("/v1/tasks", { method: "POST", body: "{}" }), 401, "unauthorized");
    await refused(await postAs(worker, "sya_not-a-real-token", "/v1/tasks", { title: "x" }), 401, "unauthorized");
    assert.deepEqual(await snapshot(), before);
  });

  test("a workflow that needs an unregistered agent is refused with the missing names", async () => {
    const workflow = await sendJson("/v1/workflows", {
      name: "ghostly",
      steps: [
        { key: "1", name: "haunt", agent: "ghost-agent" },
        { key: "2", name: "check", agent: "test-runner" },
        { key: "3", name: "rattle", agent: "ghost-agent" },
      ],
    });
    assert.equal(workflow.status, 201);
    const before = await snapshot();
    const error = await refused(await sendJson("/v1/tasks", { title: "Haunt the house", workflow: "ghostly" }), 422);
    assert.deepEqual(error.details, [{ field: "workflow", message: "agent ghost-agent (step 1, 3) is not registered" }]);
    const unnamed = await sendJson("/v1/workflows", { name: "unnamed", steps: [{ key: "1", name: "mystery" }] });
    assert.equal(unnamed.status, 201);
    const main = await refused(await sendJson("/v1/tasks", { title: "x", workflow: "unnamed", main_agent: "ghost-agent" }), 422);
    assert.deepEqual(main.details, [
      { field: "main_agent", message: "the main agent ghost-agent (the task's main_agent) does step 1, which names no subagent, and is not registered" },
    ]);
    assert.deepEqual((await snapshot()).tasks, before.tasks);
  });

  test("reading tasks with bad ids, filters or cursors is refused", async () => {
    await refused(await worker.admin("/v1/tasks/not-a-task"), 404, "not_found");
    await refused(await worker.admin("/v1/tasks/tsk_00000000000000000000000000"), 404, "not_found");
    await refused(await worker.admin("/v1/tasks/tsk_00000000000000000000000000/events"), 404, "not_found");
    await refused(await worker.admin("/v1/tasks?status=done"), 400, "bad_request");
    await refused(await worker.admin("/v1/tasks?limit=0"), 400, "bad_request");
    await refused(await worker.admin("/v1/tasks?cursor=%3Cscript%3E"), 400, "bad_request");
    await refused(await worker.admin(`/v1/tasks/${task.id}/events?after=abc`), 400, "bad_request");
    await refused(await worker.admin("/v1/tasks", { method: "DELETE" }), 405, "method_not_allowed");
  });

  test("bad leases, heartbeats, completions, cancels and retries change nothing", async () => {
    const before = await snapshot();
    const stepPath = (action) => `/v1/steps/${leased.id}/${action}`;
    await refused(await sendJson("/v1/agents/nobody-here/lease", {}), 404, "not_found");
    await refused(await sendJson("/v1/agents/Bad_Name/lease", {}), 404, "not_found");
    await refused(await sendJson("/v1/agents/context-fetcher/lease?wait=99", {}), 400, "bad_request");
    await refused(await sendJson("/v1/agents/context-fetcher/lease?wait=soon", {}), 400, "bad_request");
    await refused(await sendJson("/v1/agents/context-fetcher/lease?limit=1", {}), 400, "bad_request");
    await refused(await sendJson("/v1/agents/context-fetcher/lease", { agent: "x" }), 422, "invalid_request");

    await refused(await sendJson(stepPath("heartbeat"), {}), 422, "invalid_request");
    await refused(await sendJson(stepPath("heartbeat"), { lease_id: "lse_forged" }), 409, "stale_lease");
    await refused(await sendJson("/v1/steps/stp_00000000000000000000000000/heartbeat", { lease_id: "x" }), 404);
    await refused(await sendJson("/v1/steps/nonsense/heartbeat", { lease_id: "x" }), 404);

    await refused(await sendJson(stepPath("complete"), { report: {} }), 422, "invalid_request");
    await refused(await sendJson(stepPath("complete"), { lease_id: leased.lease_id, outcome: "maybe" }), 422);
    const report = await refused(
      await sendJson(stepPath("complete"), {
        lease_id: leased.lease_id,
        report: { lines_added: -1, tests: { smoke: {} }, checklist: [{ item: "x" }] },
      }),
      422,
      "invalid_request",
    );
    assert.deepEqual(
      report.details.map((d) => d.field).sort(),
      ["report.checklist[0].passed", "report.lines_added", "report.tests.smoke"],
    );
    await refused(await sendJson(stepPath("complete"), { lease_id: leased.lease_id, error: "but it worked" }), 422);
    await refused(await sendJson(stepPath("complete"), { lease_id: leased.lease_id, log: "x".repeat(600_000) }), 422);
    await refused(await send(stepPath("complete"), JSON.stringify({ lease_id: leased.lease_id, log: "x".repeat(1_100_000) })), 413);
    await refused(await sendJson(stepPath("complete"), { lease_id: "lse_forged", report: {} }), 409, "stale_lease");

    await refused(await sendJson(`/v1/tasks/${task.id}/cancel`, { reason: "x" }), 422);
    await refused(await sendJson("/v1/tasks/tsk_00000000000000000000000000/cancel", {}), 404);
    await refused(await sendJson(`/v1/steps/${leased.id}/retry`, {}), 409, "conflict");
    await refused(await sendJson("/v1/steps/stp_00000000000000000000000000/retry", {}), 404);
    await refused(await sendJson("/v1/agents/nobody-here/token", {}), 404);
    assert.deepEqual(await snapshot(), before);

    assert.equal((await fetcher.complete(leased, { report: {} })).status, 200, "the real lease still works");
  });
});
