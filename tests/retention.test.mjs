// Retention: the cron archives tasks that finished longer ago than TASK_RETENTION_DAYS to R2 and
// removes them from D1; an archived task still reads as before, its steps still count in the
// agent metrics, a failed archive write leaves the task in D1, and a missing archive is a 500.
// Tasks are aged by SQL between two runtimes on one state, as a month of waiting would leave them.

import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { agent, eventsOf, issueToken, postAs, submit, taskOf, workTask } from "./helpers/agents.mjs";
import { armFault, deleteObject, errorOf, eventually, executeSql, startWorker } from "./helpers/worker.mjs";

const AGENTS = ["context-fetcher", "cloudflare-specialist", "sveltekit-specialist", "project-manager", "test-runner"];
const FULL_STACK = { title: "Add a D1-backed comments API and a SvelteKit page that lists the comments" };
const DAY_MS = 24 * 3_600_000;
/** How far back a task is moved: past the default retention of 30 days. */
const AGE_MS = 31 * DAY_MS;

describe("retention of finished tasks", { timeout: 600_000 }, () => {
  const stateDir = mkdtempSync(join(tmpdir(), "switchyard-retention-"));
  let worker;
  const tokens = {};
  let clients = [];
  before(async () => {
    worker = await startWorker({ stateDir });
    for (const name of [...AGENTS, "main-agent"]) tokens[name] = await issueToken(worker, name);
    clients = AGENTS.map((name) => agent(worker, name, tokens[name]));
  });
  after(async () => {
    await worker?.stop();
    rmSync(stateDir, { recursive: true, force: true });
  });

  /** Stops the Worker, runs `sql` against its state (or `change` on it), and starts another on it. */
  async function restart({ sql, change } = {}) {
    await worker.stop({ keepState: true });
    if (sql) {
      const file = join(stateDir, "change.sql");
      writeFileSync(file, sql);
      executeSql(stateDir, file);
      rmSync(file);
    }
    change?.();
    worker = await startWorker({ stateDir, migrate: false });
    clients = AGENTS.map((name) => agent(worker, name, tokens[name]));
  }

  const ageTask = (id) => `
    UPDATE tasks SET finished_at = finished_at - ${AGE_MS} WHERE id = '${id}';
    UPDATE steps SET started_at = started_at - ${AGE_MS}, finished_at = finished_at - ${AGE_MS} WHERE task_id = '${id}';
  `;
  const counts = async () => (await (await worker.admin("/__test/row-counts")).json());
  /** The rows archival changes; others (a running task's events, say) move with the sweep. */
  const archivalCounts = async () => {
    const { tasks, steps, attempts, messages, summaries, archived_tasks, agent_days } = await counts();
    return { tasks, steps, attempts, messages, summaries, archived_tasks, agent_days };
  };
  const cron = async () => assert.equal((await worker.fetch("/__scheduled?cron=*+*+*+*+*")).status, 200);
  const agentMetrics = async (query = "") => {
    const response = await worker.admin(`/v1/metrics/agents${query}`);
    assert.equal(response.status, 200);
    return Object.fromEntries((await response.json()).agents.map((a) => [a.agent, a]));
  };
  const asAgent = (name, path) => worker.fetch(path, { headers: { authorization: `Bearer ${tokens[name]}` } });

  let old;
  let recent;
  let running;

  test("a task finished more than 30 days ago is archived by the cron and reads as before, marked archived", async () => {
    old = (await submit(worker, FULL_STACK)).body.task;
    assert.equal((await workTask(worker, old.id, clients)).status, "succeeded");
    const message = await postAs(worker, tokens["sveltekit-specialist"], "/v1/messages", {
      from: "sveltekit-specialist",
      to: "cloudflare-specialist",
      type: "query",
      payload: { question: "Which binding holds the comments?" },
      correlation_id: "comments-1",
      task_id: old.id,
    });
    assert.equal(message.status, 201, await message.clone().text());
    recent = (await submit(worker, FULL_STACK)).body.task;
    assert.equal((await workTask(worker, recent.id, clients)).status, "succeeded");
    running = (await submit(worker, { title: "Add a login form to the SvelteKit app" })).body.task;

    await restart({ sql: ageTask(old.id) });
    const live = await taskOf(worker, old.id);
    assert.equal(live.archived_at, null);
    const liveEvents = await eventsOf(worker, old.id);
    const liveMetrics = await agentMetrics();
    const before = await counts();
    assert.equal(before.archived_tasks, 0);

    await cron();
    await eventually(async () => (await counts()).archived_tasks === 1, { timeoutMs: 30_000 });
    const afterCounts = await counts();
    const afterArchival = await archivalCounts();
    assert.equal(afterCounts.tasks, before.tasks - 1, "the archived task left D1");
    assert.equal(afterCounts.steps, before.steps - live.steps.length, "and so did its steps");
    assert.equal(afterCounts.messages, before.messages - 1, "and its message");
    assert.ok(afterCounts.summaries < before.summaries, "and its summaries' rows");
    assert.ok(afterCounts.agent_days > 0, "its steps' figures are kept per day");

    const archived = await taskOf(worker, old.id);
    assert.match(archived.archived_at, /^\d{4}-\d\d-\d\dT/);
    assert.deepEqual({ ...archived, archived_at: null }, live, "the same task, read from R2");
    assert.deepEqual(await eventsOf(worker, old.id), liveEvents, "with the same events");
    const page = await (await worker.admin(`/v1/tasks/${old.id}/events?after=${liveEvents[2].seq}&limit=3`)).json();
    assert.deepEqual(page.events, liveEvents.slice(3, 6), "paged as before");
    assert.equal(page.next_cursor, String(liveEvents[5].seq));

    const listed = (await (await worker.admin("/v1/tasks?limit=200")).json()).tasks.map((t) => t.id);
    assert.ok(!listed.includes(old.id), "the task list shows only tasks in D1");
    assert.ok(listed.includes(recent.id) && listed.includes(running.id), "the recent and the running task stay");
    assert.equal((await taskOf(worker, recent.id)).archived_at, null);
    assert.equal((await taskOf(worker, running.id)).status, "running");

    const byAgent = await asAgent("cloudflare-specialist", `/v1/tasks/${old.id}`);
    assert.equal(byAgent.status, 200, "an agent that worked on the task still reads it");
    assert.equal((await byAgent.json()).task.id, old.id);
    const byOther = await asAgent("main-agent", `/v1/tasks/${old.id}`);
    assert.equal(byOther.status, 404, "an agent that did not cannot");
    const unknown = "tsk_00000000000000000000000000";
    const [hidden, missing] = [await errorOf(byOther), await errorOf(await asAgent("main-agent", `/v1/tasks/${unknown}`))];
    assert.deepEqual({ ...hidden, message: hidden.message.replace(old.id, unknown) }, missing, "the same 404 as no task at all");
    assert.equal((await asAgent("main-agent", `/v1/tasks/${old.id}/events`)).status, 404);

    await cron();
    await new Promise((resolve) => setTimeout(resolve, 500));
    assert.deepEqual(await archivalCounts(), afterArchival, "a second run changes nothing");
    assert.deepEqual(await taskOf(worker, old.id), archived);

    // Every figure but the percentiles still counts the archived steps.
    const metrics = await agentMetrics();
    for (const [name, figures] of Object.entries(liveMetrics)) {
      const now = metrics[name];
      const archivedSteps = live.steps.filter((s) => s.agent === name && ["succeeded", "dead"].includes(s.status)).length;
      assert.equal(now.archived_steps, archivedSteps, name);
      for (const field of ["steps", "succeeded", "success_rate", "files_created", "files_modified", "lines_added", "lines_removed", "cost_usd", "turns"]) {
        assert.equal(now[field], figures[field], `${name} ${field}`);
      }
    }
    const lastOldDay = new Date(Math.floor(Date.parse(live.finished_at) / DAY_MS) * DAY_MS + DAY_MS).toISOString();
    const sinceThen = await agentMetrics(`?since=${lastOldDay}`);
    for (const figures of Object.values(sinceThen)) assert.equal(figures.archived_steps, 0, "a window after the archived days leaves them out");
    assert.equal(sinceThen["test-runner"].steps, liveMetrics["test-runner"].steps - metrics["test-runner"].archived_steps);
  });

  test("an archive that fails to write leaves the task in D1, and the next cron run archives it", async () => {
    await restart({ sql: ageTask(recent.id) });
    const fault = (fail) => armFault(worker, "r2_write", fail);
    assert.equal((await fault(1_000)).status, 200);
    const before = await archivalCounts();
    await cron();
    await eventually(() => /archiving task \S+ failed \(it stays in D1\): .*injected fault/.test(worker.logs()), { timeoutMs: 30_000 });
    assert.deepEqual(await archivalCounts(), before, "nothing was removed");
    assert.equal((await taskOf(worker, recent.id)).archived_at, null);

    assert.equal((await fault(0)).status, 200);
    await cron();
    await eventually(async () => (await counts()).archived_tasks === 2, { timeoutMs: 30_000 });
    assert.match((await taskOf(worker, recent.id)).archived_at, /^\d{4}-/);
    assert.equal((await taskOf(worker, running.id)).status, "running", "a running task is never archived");
  });

  test("an archived task whose document is missing answers 500 with the request id, and the log says why", async () => {
    await restart({ change: () => deleteObject(stateDir, `tasks/${old.id}/archive.json`) });
    const response = await worker.admin(`/v1/tasks/${old.id}`);
    assert.equal(response.status, 500);
    const error = await errorOf(response);
    assert.equal(error.code, "internal");
    const requestId = response.headers.get("x-request-id");
    assert.ok(error.message.includes(requestId), error.message);
    const logged = await eventually(() =>
      new RegExp(`request ${requestId} GET .* failed: .*task ${old.id} was archived .* missing from R2`).test(worker.logs()),
    );
    assert.ok(logged);
    assert.equal((await taskOf(worker, recent.id)).id, recent.id, "other archived tasks still read");
  });
});
