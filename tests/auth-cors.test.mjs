// Admin bearer tokens on every /v1/ route (with rotation), public routes without, and CORS only
// for the origins in CORS_ORIGINS.

import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { errorOf, eventually, startWorker } from "./helpers/worker.mjs";

const OLD_TOKEN = "rotating-out-token-0123456789";
const NEW_TOKEN = "rotating-in-token-9876543210";
const APP = "http://localhost:5173";

describe("authentication and CORS", { timeout: 120_000 }, () => {
  let worker;
  before(async () => {
    worker = await startWorker({
      vars: { ADMIN_TOKEN: `${OLD_TOKEN},${NEW_TOKEN},short`, CORS_ORIGINS: `${APP}, https://app.example.com` },
    });
  });
  after(async () => {
    await worker?.stop();
  });

  const whoami = (headers) => worker.fetch("/v1/whoami", { headers });

  test("an admin token is accepted on /v1/ routes", async () => {
    const response = await whoami({ authorization: `Bearer ${OLD_TOKEN}` });
    assert.equal(response.status, 200);
    assert.deepEqual(await response.json(), { principal: "admin" });
  });

  test("every token listed in ADMIN_TOKEN works, so keys can rotate", async () => {
    assert.equal((await whoami({ authorization: `Bearer ${NEW_TOKEN}` })).status, 200);
    assert.equal((await whoami({ authorization: `bearer ${NEW_TOKEN}` })).status, 200, "the scheme is case-insensitive");
  });

  test("a too-short entry in ADMIN_TOKEN is ignored rather than trusted", async () => {
    const response = await whoami({ authorization: "Bearer short" });
    assert.equal(response.status, 401);
    const warned = await eventually(() => /ADMIN_TOKEN entry 3 is shorter than 16 characters and is ignored/.test(worker.logs()));
    assert.ok(warned, "the ignored entry is logged");
    assert.doesNotMatch(worker.logs(), new RegExp(OLD_TOKEN), "tokens never reach the log");
  });

  test("missing, malformed and unknown credentials are 401 with WWW-Authenticate", async () => {
    const cases = [
      [{}, "missing authorization header"],
      [{ authorization: "" }, "missing authorization header"],
      [{ authorization: "Bearer" }, "malformed authorization header"],
      [{ authorization: `Basic ${Buffer.from("admin:admin").toString("base64")}` }, "unsupported authorization scheme"],
      [{ authorization: `Bearer ${OLD_TOKEN}x` }, "unknown bearer token"],
      [{ authorization: `Bearer ${OLD_TOKEN.slice(0, -1)}` }, "unknown bearer token"],
      [{ authorization: "Bearer <script>" }, "malformed bearer token"],
      [{ authorization: `Bearer ${"a".repeat(1000)}` }, "authorization header is too long"],
    ];
    for (const [headers, message] of cases) {
      const response = await whoami(headers);
      assert.equal(response.status, 401, JSON.stringify(headers).slice(0, 80));
      assert.equal(response.headers.get("www-authenticate"), 'Bearer realm="switchyard"');
      const error = await errorOf(response);
      assert.equal(error.code, "unauthorized");
      assert.match(error.message, new RegExp(message));
    }
  });

  test("credentials are checked before the body is read", async () => {
    const response = await worker.fetch("/v1/system/probes", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: "{ not even json",
    });
    assert.equal(response.status, 401);
  });

  test("public routes need no credentials", async () => {
    assert.equal((await worker.fetch("/health")).status, 200);
    assert.equal((await worker.fetch("/openapi.json")).status, 200);
  });

  test("a preflight from a listed origin is answered with the CORS headers", async () => {
    const response = await worker.fetch("/v1/system/probes", {
      method: "OPTIONS",
      headers: { origin: APP, "access-control-request-method": "POST", "access-control-request-headers": "authorization, content-type" },
    });
    assert.equal(response.status, 204);
    assert.equal(response.headers.get("access-control-allow-origin"), APP);
    assert.equal(response.headers.get("access-control-allow-methods"), "POST");
    assert.equal(response.headers.get("access-control-allow-headers"), "authorization, content-type, idempotency-key");
    assert.equal(response.headers.get("access-control-max-age"), "600");
    assert.match(response.headers.get("vary"), /Origin/);
  });

  test("a preflight from an unlisted origin is 403 origin_not_allowed", async () => {
    const response = await worker.fetch("/v1/whoami", {
      method: "OPTIONS",
      headers: { origin: "https://evil.example", "access-control-request-method": "GET" },
    });
    assert.equal(response.status, 403);
    assert.equal(response.headers.get("access-control-allow-origin"), null);
    assert.equal((await errorOf(response)).code, "origin_not_allowed");
  });

  test("a preflight for a method the path does not have is 405", async () => {
    const response = await worker.fetch("/v1/whoami", {
      method: "OPTIONS",
      headers: { origin: APP, "access-control-request-method": "DELETE" },
    });
    assert.equal(response.status, 405);
    assert.equal(response.headers.get("allow"), "GET, HEAD");
  });

  test("a plain OPTIONS lists the path's methods; on an unknown path it is 404", async () => {
    const known = await worker.fetch("/health", { method: "OPTIONS" });
    assert.equal(known.status, 204);
    assert.equal(known.headers.get("allow"), "GET, HEAD");
    assert.equal((await worker.fetch("/nowhere", { method: "OPTIONS" })).status, 404);
  });

  test("responses carry CORS headers for listed origins only", async () => {
    const listed = await worker.fetch("/v1/whoami", { headers: { origin: "https://app.example.com", authorization: `Bearer ${NEW_TOKEN}` } });
    assert.equal(listed.headers.get("access-control-allow-origin"), "https://app.example.com");
    assert.equal(listed.headers.get("access-control-expose-headers"), "retry-after, x-request-id");
    const unlisted = await worker.fetch("/v1/whoami", { headers: { origin: "https://evil.example", authorization: `Bearer ${NEW_TOKEN}` } });
    assert.equal(unlisted.status, 200, "served: the browser, not the server, enforces CORS");
    assert.equal(unlisted.headers.get("access-control-allow-origin"), null);
    const rejected = await worker.fetch("/v1/whoami", { headers: { origin: APP } });
    assert.equal(rejected.status, 401);
    assert.equal(rejected.headers.get("access-control-allow-origin"), APP, "errors are readable by the app too");
  });
});
