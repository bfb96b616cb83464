// The HTTP contract every route shares: the error envelope for every rejection, 404/405,
// body limits and content types, panics, and the OpenAPI document.

import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { ROOT } from "../scripts/setup.mjs";
import { errorOf, eventually, startWorker, systemEvents } from "./helpers/worker.mjs";

/** JSON_BODY_BYTES_MAX in src/core/limits.rs. */
const JSON_BODY_BYTES_MAX = 64 * 1024;

describe("the HTTP contract", { timeout: 180_000 }, () => {
  let worker;
  before(async () => {
    worker = await startWorker();
  });
  after(async () => {
    await worker?.stop();
  });

  const postProbe = (body, headers = { "content-type": "application/json" }) =>
    worker.admin("/v1/system/probes", { method: "POST", headers, body });

  test("an unknown path is 404 not_found in the error envelope", async () => {
    for (const path of ["/", "/nope", "/health/", "/v1", "/v1/", "/v1/nope", "/V1/WHOAMI", "/..%2f..%2fetc/passwd"]) {
      const response = await worker.admin(path);
      assert.equal(response.status, 404, path);
      assert.equal((await errorOf(response)).code, "not_found", path);
    }
  });

  test("a known path with the wrong method is 405 with Allow", async () => {
    const cases = [
      ["DELETE", "/health", "GET, HEAD"],
      ["POST", "/openapi.json", "GET, HEAD"],
      ["GET", "/v1/system/probes", "POST"],
      ["PUT", "/v1/whoami", "GET, HEAD"],
      ["PATCH", "/v1/system/events", "GET, HEAD"],
      ["PROPFIND", "/health", "GET, HEAD"],
    ];
    for (const [method, path, allow] of cases) {
      const response = await worker.admin(path, { method });
      assert.equal(response.status, 405, `${method} ${path}`);
      assert.equal(response.headers.get("allow"), allow, `${method} ${path}`);
      assert.equal((await errorOf(response)).code, "method_not_allowed");
    }
  });

  test("malformed JSON is 400 malformed_json with where it broke, and queues nothing", async () => {
    const before = (await systemEvents(worker)).length;
    for (const body of ["{", "{\"outcome\": }", "not json", "{\"outcome\":\"ack\"} trailing", "", "\u0000"]) {
      const response = await postProbe(body);
      assert.equal(response.status, 400, JSON.stringify(body));
      const error = await errorOf(response);
      assert.equal(error.code, "malformed_json");
      assert.match(error.message, /line \d+ column \d+/);
    }
    await new Promise((resolve) => setTimeout(resolve, 1000));
    assert.equal((await systemEvents(worker)).length, before, "no probe reached the queue");
  });

  test("well-formed JSON of the wrong shape is 422 invalid_request with the problem in details", async () => {
    const cases = [
      ['{"outcome":"explode"}', /unknown variant/],
      ['{"outcome":1}', /expected value|invalid type/],
      ['{"outcome":"ack","extra":true}', /unknown field/],
      ['{"outcome":"ack","outcome":"dead_letter"}', /duplicate field/],
      ["[]", /must be a JSON object/],
      ['["ack"]', /must be a JSON object/],
      ['"ack"', /must be a JSON object/],
      ["null", /must be a JSON object/],
      ["42", /must be a JSON object/],
    ];
    for (const [body, pattern] of cases) {
      const response = await postProbe(body);
      assert.equal(response.status, 422, body);
      const error = await errorOf(response);
      assert.equal(error.code, "invalid_request");
      assert.match(error.details[0].message, pattern, body);
    }
  });

  test("a body that is not declared as JSON is 415", async () => {
    for (const headers of [{}, { "content-type": "text/plain" }, { "content-type": "application/x-www-form-urlencoded" }]) {
      const response = await postProbe('{"outcome":"ack"}', headers);
      assert.equal(response.status, 415, JSON.stringify(headers));
      assert.equal((await errorOf(response)).code, "unsupported_media_type");
    }
  });

  test("a body over the limit is 413, whether its length is declared or streamed", async () => {
    const big = JSON.stringify({ outcome: "ack", pad: "x".repeat(JSON_BODY_BYTES_MAX) });
    const declared = await postProbe(big);
    assert.equal(declared.status, 413);
    assert.equal((await errorOf(declared)).code, "payload_too_large");

    const chunks = [new TextEncoder().encode(big.slice(0, 1000)), new TextEncoder().encode(big.slice(1000))];
    const stream = new ReadableStream({
      pull(controller) {
        const next = chunks.shift();
        if (next) controller.enqueue(next);
        else controller.close();
      },
    });
    const streamed = await worker.admin("/v1/system/probes", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: stream,
      duplex: "half",
    });
    assert.equal(streamed.status, 413);
    assert.equal((await errorOf(streamed)).code, "payload_too_large");
  });

  test("a body at exactly the limit is read (and judged on its content)", async () => {
    const prefix = '{"outcome":"ack","pad":"';
    const body = prefix + "x".repeat(JSON_BODY_BYTES_MAX - prefix.length - 2) + '"}';
    assert.equal(body.length, JSON_BODY_BYTES_MAX);
    const response = await postProbe(body);
    assert.equal(response.status, 422, "read in full, then refused for its unknown field");
  });

  test("a panic answers a JSON 500 with the security headers, logs the detail, and the next request works", async () => {
    const normal = await worker.fetch("/health");
    const response = await worker.fetch("/__test/panic", { method: "POST" });
    assert.equal(response.status, 500);
    const error = await errorOf(response);
    assert.equal(error.code, "internal");
    assert.doesNotMatch(error.message, /deliberate/);
    for (const name of ["x-content-type-options", "referrer-policy", "cache-control", "strict-transport-security", "content-security-policy", "x-frame-options"]) {
      assert.equal(response.headers.get(name), normal.headers.get(name), name);
    }
    assert.ok(await eventually(() => /deliberate panic from the test-only fault route/.test(worker.logs())), "the panic is logged");
    const next = await worker.fetch("/health");
    assert.equal(next.status, 200);
  });

  test("a panic's log names its source line, and npm run symbolize names its WebAssembly frames", async () => {
    await worker.fetch("/__test/panic", { method: "POST" });
    assert.ok(await eventually(() => /deliberate panic/.test(worker.logs())));
    const log = worker.logs();
    assert.match(log, /panicked at src\/shell\/api\.rs:\d+:\d+/, "the location is in the message, not in the names section");
    assert.match(log, /wasm-function\[\d+\]/, "the stack has WebAssembly frames");
    assert.doesNotMatch(log, /install_panic_hook/, "the module the Worker runs has no names section");
    const symbolized = spawnSync(process.execPath, [join(ROOT, "scripts", "symbolize.mjs")], { input: log, encoding: "utf8" });
    assert.equal(symbolized.status, 0, symbolized.stderr);
    assert.match(symbolized.stdout, /wasm-function\[\d+\] switchyard::shell::platform::install_panic_hook/);
  });

  test("the OpenAPI document is served as the file in the repository", async () => {
    const response = await worker.fetch("/openapi.json");
    assert.equal(response.status, 200);
    assert.match(response.headers.get("content-type"), /^application\/json/);
    const served = await response.text();
    assert.equal(served, readFileSync(join(ROOT, "openapi.json"), "utf8"));
    const document = JSON.parse(served);
    assert.match(document.openapi, /^3\.1\./);
  });

  test("every documented operation is routed: none of them answers 405 or a no-route 404", async () => {
    const document = JSON.parse(readFileSync(join(ROOT, "openapi.json"), "utf8"));
    for (const [template, item] of Object.entries(document.paths)) {
      // Path parameters get a value that names nothing: a 404 then says so, not "no route".
      const path = template.replace(/\{[a-z_]+\}/g, "sample-1");
      for (const method of Object.keys(item).filter((k) => ["get", "post", "put", "patch", "delete"].includes(k))) {
        const init = { method: method.toUpperCase() };
        if (method !== "get") Object.assign(init, { headers: { "content-type": "application/json" }, body: "{}" });
        const response = await worker.admin(path, init);
        const body = await response.text();
        assert.notEqual(response.status, 405, `${method} ${path}`);
        assert.doesNotMatch(body, /no route matches this path/, `${method} ${path}`);
      }
    }
  });
});

describe("a worker without TEST_FAULTS", { timeout: 120_000 }, () => {
  let worker;
  before(async () => {
    worker = await startWorker({ vars: { TEST_FAULTS: "off" } });
  });
  after(async () => {
    await worker?.stop();
  });

  test("has no test-only routes", async () => {
    const response = await worker.fetch("/__test/panic", { method: "POST" });
    assert.equal(response.status, 404);
    assert.equal((await errorOf(response)).code, "not_found");
  });
});
