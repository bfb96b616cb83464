// The queue consumer (STEPS and its dead-letter queue) and the cron handler, reached through
// the real local queue and scheduler, seen through the system events they record and the rows
// the cron forgets.

import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { submit } from "./helpers/agents.mjs";
import { errorOf, eventually, executeSql, startWorker, systemEvents } from "./helpers/worker.mjs";

describe("background work", { timeout: 180_000 }, () => {
  let worker;
  before(async () => {
    worker = await startWorker();
  });
  after(async () => {
    await worker?.stop();
  });

  const probe = async (body) => {
    const response = await worker.admin("/v1/system/probes", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(body),
    });
    assert.equal(response.status, 202);
    return response.json();
  };

  const eventsOf = async (probeId) => (await systemEvents(worker)).filter((e) => e.data.probe_id === probeId);

  test("a probe sent through the STEPS queue is consumed and recorded once", async () => {
    const { probe_id, outcome } = await probe({});
    assert.equal(outcome, "ack");
    assert.match(probe_id, /^prb_[0-9A-Z]{26}$/);
    const events = await eventually(async () => {
      const found = await eventsOf(probe_id);
      return found.length > 0 ? found : null;
    });
    assert.ok(events, "the consumer recorded the probe");
    assert.deepEqual(events.map((e) => e.kind), ["queue.probe_consumed"]);
    assert.match(events[0].created_at, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
  });

  test("a dead_letter probe is retried until the queue dead-letters it, and the DLQ consumer records it", async () => {
    const { probe_id } = await probe({ outcome: "dead_letter" });
    const events = await eventually(async () => {
      const found = await eventsOf(probe_id);
      return found.some((e) => e.kind === "queue.dead_lettered") ? found : null;
    }, { timeoutMs: 60_000 });
    assert.ok(events, "the dead-letter consumer recorded the probe");
    assert.deepEqual(events.map((e) => e.kind), ["queue.probe_retried", "queue.dead_lettered"], "each recorded once, in order");
    assert.equal(events[1].data.reason, "retries exhausted");
  });

  test("the cron handler records its tick when the scheduler fires it", async () => {
    const before = (await systemEvents(worker)).filter((e) => e.kind === "cron.tick").length;
    const fired = await worker.fetch("/__scheduled?cron=*+*+*+*+*");
    assert.equal(fired.status, 200);
    const ticks = await eventually(async () => {
      const found = (await systemEvents(worker)).filter((e) => e.kind === "cron.tick");
      return found.length > before ? found : null;
    });
    assert.ok(ticks, "a cron.tick event was recorded");
    const tick = ticks.at(-1);
    assert.equal(tick.data.cron, "* * * * *");
    assert.match(tick.data.scheduled_time, /Z$/);
  });

  test("system events page with an opaque cursor, oldest first", async () => {
    for (let i = 0; i < 3; i += 1) await probe({});
    const all = await eventually(async () => {
      const found = await systemEvents(worker);
      return found.filter((e) => e.kind === "queue.probe_consumed").length >= 4 ? found : null;
    });
    assert.ok(all);
    const seen = [];
    let cursor = null;
    for (let page = 0; page < 100; page += 1) {
      const response = await worker.admin(`/v1/system/events?limit=2${cursor ? `&cursor=${cursor}` : ""}`);
      assert.equal(response.status, 200);
      const body = await response.json();
      assert.ok(body.events.length <= 2);
      seen.push(...body.events);
      cursor = body.next_cursor;
      if (!cursor) break;
    }
    assert.deepEqual(seen.map((e) => e.seq).slice(0, all.length), all.map((e) => e.seq));
    const seqs = seen.map((e) => e.seq);
    assert.deepEqual(seqs, [...seqs].sort((a, b) => a - b));
  });

  test("bad list parameters are 400 with every problem named", async () => {
    const cases = [
      ["limit=0", ["limit"]],
      ["limit=201", ["limit"]],
      ["limit=abc", ["limit"]],
      ["cursor=abc", ["cursor"]],
      ["cursor=1%3B%20DROP%20TABLE%20events", ["cursor"]],
      ["cursor=-1", ["cursor"]],
      ["cursor=a%21&limit=-1", ["cursor", "limit"]],
      ["order=desc", ["order"]],
    ];
    for (const [query, fields] of cases) {
      const response = await worker.admin(`/v1/system/events?${query}`);
      assert.equal(response.status, 400, query);
      const error = await errorOf(response);
      assert.equal(error.code, "bad_request");
      assert.deepEqual(error.details.map((d) => d.field), fields, query);
    }
    assert.equal((await worker.fetch("/health")).status, 200, "the events table is still there");
  });
});

describe("idempotency keys are forgotten by the cron after a day", { timeout: 180_000 }, () => {
  let worker;
  let stateDir;
  after(async () => {
    await worker?.stop();
    if (stateDir) rmSync(stateDir, { recursive: true, force: true });
  });

  test("a key older than a day makes a new task after a cron run, and a newer key still answers 409 to another body", async () => {
    stateDir = mkdtempSync(join(tmpdir(), "switchyard-keys-"));
    const first = await startWorker({ stateDir });
    const old = await submit(first, { title: "Add a D1 comments table" }, { "idempotency-key": "old-key" });
    assert.equal(old.response.status, 201);
    await first.stop({ keepState: true });
    // The key's row, made 25 hours older than it is, as a day of waiting would leave it.
    const sqlFile = join(stateDir, "age.sql");
    writeFileSync(sqlFile, `UPDATE idempotency_keys SET created_at = created_at - ${25 * 3_600_000};\n`);
    executeSql(stateDir, sqlFile);
    rmSync(sqlFile);

    worker = await startWorker({ stateDir, migrate: false });
    const fresh = await submit(worker, { title: "Add a login form" }, { "idempotency-key": "fresh-key" });
    assert.equal(fresh.response.status, 201);
    const keys = async () => (await (await worker.admin("/__test/row-counts")).json()).idempotency_keys;
    assert.equal(await keys(), 2);
    assert.equal((await worker.fetch("/__scheduled?cron=*+*+*+*+*")).status, 200);
    assert.ok(await eventually(async () => (await keys()) === 1), "the cron forgot the old key and kept the fresh one");

    const again = await submit(worker, { title: "Something else entirely" }, { "idempotency-key": "old-key" });
    assert.equal(again.response.status, 201, "the forgotten key makes a new task");
    assert.notEqual(again.body.task.id, old.body.task.id);
    const conflict = await submit(worker, { title: "Something else entirely" }, { "idempotency-key": "fresh-key" });
    assert.equal(conflict.response.status, 409, "a key younger than a day is still remembered");
    const replay = await submit(worker, { title: "Add a login form" }, { "idempotency-key": "fresh-key" });
    assert.equal(replay.response.status, 201);
    assert.equal(replay.body.task.id, fresh.body.task.id, "and replays its first response");
  });
});
