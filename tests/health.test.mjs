// GET /health touches every binding for real and names the ones that fail; state survives a
// restart of the runtime.

import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { startWorker, systemEvents, eventually } from "./helpers/worker.mjs";

const SECURITY_HEADERS = {
  "x-content-type-options": "nosniff",
  "referrer-policy": "no-referrer",
  "cache-control": "no-store",
  "strict-transport-security": "max-age=63072000; includeSubDomains",
  "content-security-policy": "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
  "x-frame-options": "DENY",
};

describe("a worker with every binding", { timeout: 120_000 }, () => {
  let worker;
  before(async () => {
    worker = await startWorker();
  });
  after(async () => {
    await worker?.stop();
  });

  test("health answers 200 with every check ok and the crate version", async () => {
    const response = await worker.fetch("/health");
    assert.equal(response.status, 200);
    assert.deepEqual(await response.json(), {
      status: "ok",
      version: "0.1.0",
      checks: { d1: "ok", kv: "ok", r2: "ok", queue: "ok" },
    });
  });

  test("health needs no credentials and carries every security header", async () => {
    const response = await worker.fetch("/health");
    for (const [name, value] of Object.entries(SECURITY_HEADERS)) {
      assert.equal(response.headers.get(name), value, name);
    }
    assert.match(response.headers.get("x-request-id"), /^req_[0-9A-Z]{26}$/);
  });

  test("HEAD /health answers like GET without a body", async () => {
    const response = await worker.fetch("/health", { method: "HEAD" });
    assert.equal(response.status, 200);
    assert.equal((await response.arrayBuffer()).byteLength, 0);
  });

  test("the health check's queue ping is dropped by the consumer without a trace", async () => {
    const before = (await systemEvents(worker)).length;
    await worker.fetch("/health");
    await worker.fetch("/health");
    // Give the consumer time to see both pings; they must not become events.
    await new Promise((resolve) => setTimeout(resolve, 1500));
    assert.equal((await systemEvents(worker)).length, before);
  });
});

describe("a worker whose KV binding is missing", { timeout: 120_000 }, () => {
  let worker;
  before(async () => {
    worker = await startWorker({ withoutBindings: ["CACHE"] });
  });
  after(async () => {
    await worker?.stop();
  });

  test("health answers 503 and names the CACHE binding", async () => {
    const response = await worker.fetch("/health");
    assert.equal(response.status, 503);
    const body = await response.json();
    assert.equal(body.status, "unavailable");
    assert.deepEqual(body.checks, { d1: "ok", kv: "failed", r2: "ok", queue: "ok" });
    assert.equal(body.error.code, "binding_unavailable");
    assert.equal(body.error.message, "failing bindings: CACHE");
    assert.deepEqual(body.error.details, [{ field: "CACHE", message: "kv binding CACHE is not configured" }]);
  });
});

describe("a worker whose D1 database was never migrated", { timeout: 120_000 }, () => {
  let worker;
  before(async () => {
    worker = await startWorker({ migrate: false });
  });
  after(async () => {
    await worker?.stop();
  });

  test("health answers 503 and says to apply the migrations", async () => {
    const response = await worker.fetch("/health");
    assert.equal(response.status, 503);
    const body = await response.json();
    assert.equal(body.checks.d1, "failed");
    assert.equal(body.error.details[0].message, "d1 binding DB has no switchyard schema; apply the migrations");
  });

  test("an admin route that needs D1 answers a generic 500 and keeps the detail in the log", async () => {
    const response = await worker.admin("/v1/system/events");
    assert.equal(response.status, 500);
    const body = await response.json();
    assert.equal(body.error.code, "internal");
    const requestId = response.headers.get("x-request-id");
    assert.equal(body.error.message, `internal error; quote request id ${requestId} when reporting it`);
    assert.doesNotMatch(JSON.stringify(body), /no such table/);
    const logged = await eventually(() => worker.logs().includes(requestId) && worker.logs().includes("no such table"));
    assert.ok(logged, "the log names the request id and the real cause");
  });
});

describe("a worker restarted on the same state", { timeout: 180_000 }, () => {
  test("keeps what it recorded before the restart", async () => {
    const first = await startWorker();
    let second;
    try {
      const created = await first.admin("/v1/system/probes", {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ outcome: "ack" }),
      });
      assert.equal(created.status, 202);
      const { probe_id } = await created.json();
      const consumed = await eventually(async () =>
        (await systemEvents(first)).some((e) => e.kind === "queue.probe_consumed" && e.data.probe_id === probe_id),
      );
      assert.ok(consumed);
      await first.stop({ keepState: true });
      second = await startWorker({ stateDir: first.stateDir, migrate: false });
      const events = await systemEvents(second);
      assert.ok(events.some((e) => e.kind === "queue.probe_consumed" && e.data.probe_id === probe_id));
      assert.equal((await second.fetch("/health")).status, 200);
    } finally {
      await first.stop();
      await second?.stop();
    }
  });
});
