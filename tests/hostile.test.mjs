// The hostile-input corpus (tests/hostile-inputs.mjs) against the real Worker: every case must
// be answered with a 4xx JSON error envelope, within a bound, and leave every table's row count
// as it was.

import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { hostileCases } from "./hostile-inputs.mjs";
import { startWorker } from "./helpers/worker.mjs";

/** A case that takes longer than this is a hang. */
const CASE_TIMEOUT_MS = 15_000;

describe("hostile inputs", { timeout: 600_000 }, () => {
  let worker;
  before(async () => {
    worker = await startWorker();
  });
  after(async () => {
    await worker?.stop();
  });

  // A digest of every table: a case that changed any row, not only the count of rows, is caught.
  const rowDigests = async () => (await worker.admin("/__test/row-digests")).json();

  test("every hostile request is a 4xx JSON error and changes nothing", async () => {
    const cases = hostileCases();
    assert.ok(cases.length >= 150, `the corpus has ${cases.length} cases`);
    // Load the defaults first, so that the first case does not count their rows as its own.
    assert.equal((await worker.admin("/v1/agents")).status, 200);
    const failures = [];
    let digests = await rowDigests();
    for (const hostile of cases) {
      const headers = { authorization: `Bearer ${worker.adminToken}`, ...(hostile.headers ?? {}) };
      if (headers.authorization === "") delete headers.authorization;
      let body;
      if (hostile.body !== undefined) {
        body = typeof hostile.body === "string" || Buffer.isBuffer(hostile.body) ? hostile.body : JSON.stringify(hostile.body);
        if (hostile.contentType !== null) headers["content-type"] = hostile.contentType ?? "application/json";
      }
      let response;
      try {
        response = await fetch(`${worker.url}${hostile.path}`, {
          method: hostile.method,
          headers,
          body,
          signal: AbortSignal.timeout(CASE_TIMEOUT_MS),
        });
      } catch (error) {
        failures.push(`${hostile.name}: no answer (${error.name})`);
        continue;
      }
      const text = await response.text();
      let envelope = null;
      try {
        envelope = JSON.parse(text).error;
      } catch {
        // Checked below.
      }
      if (response.status < 400 || response.status >= 500) failures.push(`${hostile.name}: ${response.status} ${text.slice(0, 200)}`);
      else if (!/^application\/json/.test(response.headers.get("content-type") ?? "") || typeof envelope?.code !== "string") {
        failures.push(`${hostile.name}: ${response.status} without a JSON error envelope`);
      }
      const now = await rowDigests();
      if (JSON.stringify(now) !== JSON.stringify(digests)) {
        failures.push(`${hostile.name}: rows changed from ${JSON.stringify(digests)} to ${JSON.stringify(now)}`);
        digests = now;
      }
    }
    assert.deepEqual(failures, [], `${failures.length} of ${cases.length} cases failed`);
  });
});
