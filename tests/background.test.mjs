// The queue consumer (STEPS and its dead-letter queue) and the cron handler, reached through
// the real local queue and scheduler, seen through the system events they record.

import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { errorOf, eventually, startWorker, systemEvents } from "./helpers/worker.mjs";

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
