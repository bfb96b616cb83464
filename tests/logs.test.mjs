// Per-agent logs: every attempt an agent completed is an entry of its log for the task, with its
// log text and RECORD items, assembled on read from the attempts and their own logs in R2, so
// concurrent completions by one agent lose nothing.

import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { agent, issueToken, leaseWithin, submit, taskOf } from "./helpers/agents.mjs";
import { errorOf, startWorker } from "./helpers/worker.mjs";

describe("per-agent logs", { timeout: 300_000 }, () => {
  let worker;
  before(async () => {
    worker = await startWorker();
  });
  after(async () => {
    await worker?.stop();
  });

  const json = (method, path, body) =>
    worker.admin(path, { method, headers: { "content-type": "application/json" }, body: JSON.stringify(body) });

  test("each attempt an agent completed is an entry of its log, with records from reports in D1 or R2, and parallel completions lose nothing", async () => {
    const created = await json("POST", "/v1/agents", { name: "scribe", capabilities: ["writing"], max_concurrency: 4 });
    const scribe = agent(worker, "scribe", (await created.json()).token);
    const checker = agent(worker, "test-runner", await issueToken(worker, "test-runner"));
    const workflow = await json("POST", "/v1/workflows", {
      name: "scribbles",
      steps: [
        { key: "1a", name: "first", agent: "scribe", group: "g" },
        { key: "1b", name: "second", agent: "scribe", group: "g" },
        { key: "1c", name: "third", agent: "scribe", group: "g" },
        { key: "2", name: "check", agent: "test-runner", attributes: { max_attempts: "2" } },
      ],
    });
    assert.equal(workflow.status, 201);
    const task = (await submit(worker, { title: "Write three notes", workflow: "scribbles" })).body.task;

    const steps = [];
    for (let i = 0; i < 3; i += 1) steps.push(await leaseWithin(scribe));
    const completions = await Promise.all(
      steps.map((step) =>
        scribe.complete(step, {
          report: { records: { "Notes written": [`note ${step.key}`] } },
          log: `wrote ${step.key}\nchecked ${step.key}`,
        }),
      ),
    );
    assert.deepEqual(completions.map((r) => r.status), [200, 200, 200]);

    const check = await leaseWithin(checker);
    // Larger than a report kept in D1, so it is stored in R2; its records are in the log all the same.
    const padding = "p".repeat(10 * 1024);
    const large = { records: { "Checks run": ["lint"] }, notes: padding };
    assert.equal((await checker.complete(check, { outcome: "failed", error: "flaky", log: "first try", report: large })).status, 200);
    const again = await leaseWithin(checker);
    assert.equal((await checker.complete(again, { log: "second try" })).status, 200);
    assert.equal((await taskOf(worker, task.id)).status, "succeeded");

    const scribeLog = await worker.admin(`/v1/tasks/${task.id}/logs/scribe`);
    assert.equal(scribeLog.status, 200);
    assert.match(scribeLog.headers.get("content-type"), /^text\/plain/);
    const text = await scribeLog.text();
    for (const key of ["1a", "1b", "1c"]) {
      assert.match(text, new RegExp(`^== \\S+ step ${key} \\(\\w+\\) attempt 1 succeeded$`, "m"));
      assert.match(text, new RegExp(`^  wrote ${key}$`, "m"));
      assert.match(text, new RegExp(`^  - note ${key}$`, "m"));
    }
    assert.equal(text.match(/^== /gm).length, 3, "every concurrent append was kept, once");

    const checkerLog = await (await worker.admin(`/v1/tasks/${task.id}/logs/test-runner`)).text();
    assert.match(checkerLog, /step 2 \(check\) attempt 1 failed\n {2}first try\nRECORD Checks run:\n {2}- lint\n/);
    assert.match(checkerLog, /step 2 \(check\) attempt 2 succeeded\n {2}second try\n/);

    const listed = await (await worker.admin(`/v1/tasks/${task.id}/logs`)).json();
    assert.deepEqual(listed.logs.map((l) => l.agent).sort(), ["scribe", "test-runner"]);
    assert.ok(listed.logs.every((l) => l.url.startsWith(`/v1/tasks/${task.id}/logs/`)));
    const bytes = Object.fromEntries(listed.logs.map((l) => [l.agent, l.bytes]));
    assert.deepEqual(bytes, { scribe: Buffer.byteLength(text), "test-runner": Buffer.byteLength(checkerLog) }, "the listing sizes the logs it serves");
    const lastEnded = Math.max(...(await taskOf(worker, task.id)).steps.filter((s) => s.agent === "scribe").map((s) => Date.parse(s.finished_at)));
    assert.equal(Date.parse(listed.logs.find((l) => l.agent === "scribe").updated_at), lastEnded, "a log was last updated when its last attempt ended");
  });

  test("logs of unknown tasks or agents are 404", async () => {
    const task = (await submit(worker, { title: "Nothing done yet" })).body.task;
    assert.equal((await errorOf(await worker.admin(`/v1/tasks/${task.id}/logs/context-fetcher`))).code, "not_found");
    assert.equal((await worker.admin(`/v1/tasks/${task.id}/logs/..%2Fsecrets`)).status, 404);
    assert.deepEqual(await (await worker.admin(`/v1/tasks/${task.id}/logs`)).json(), { logs: [] });
    assert.equal((await worker.admin("/v1/tasks/tsk_00000000000000000000000000/logs")).status, 404);
    assert.equal((await worker.fetch(`/v1/tasks/${task.id}/logs`)).status, 401);
  });
});
