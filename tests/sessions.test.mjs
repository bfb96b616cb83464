// Sessions in KV: a token traded for a session id that works as a bearer token until it
// expires or is ended, for admins and agents alike, and every way of asking for one wrongly.

import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { issueToken } from "./helpers/agents.mjs";
import { ADMIN_TOKEN, errorOf, startWorker } from "./helpers/worker.mjs";

/** Short enough for the expiry test to wait it out, long enough for the others to finish. */
const TTL_SECONDS = 5;

describe("sessions", { timeout: 120_000 }, () => {
  let worker;
  before(async () => {
    worker = await startWorker({ vars: { SESSION_TTL_SECONDS: String(TTL_SECONDS) } });
  });
  after(async () => {
    await worker?.stop();
  });

  const signIn = (body, headers = { "content-type": "application/json" }) =>
    worker.fetch("/v1/sessions", { method: "POST", headers, body: typeof body === "string" ? body : JSON.stringify(body) });
  const as = (session, path, init = {}) =>
    worker.fetch(path, { ...init, headers: { authorization: `Bearer ${session}`, ...(init.headers ?? {}) } });

  test("an admin token becomes a session that works until it is ended", async () => {
    const response = await signIn({ token: worker.adminToken });
    assert.equal(response.status, 201);
    const session = await response.json();
    assert.match(session.session_id, /^sys_[A-Za-z0-9_-]{43}$/);
    assert.deepEqual(session.principal, { principal: "admin" });
    const lifetime = Date.parse(session.expires_at) - Date.now();
    assert.ok(lifetime > 0 && lifetime <= TTL_SECONDS * 1000, `expires in ${lifetime} ms`);
    assert.deepEqual(await (await as(session.session_id, "/v1/whoami")).json(), { principal: "admin" });
    assert.equal((await as(session.session_id, "/v1/agents")).status, 200, "an admin session reaches admin routes");

    assert.equal((await as(session.session_id, "/v1/sessions/current", { method: "DELETE" })).status, 204);
    const after = await as(session.session_id, "/v1/whoami");
    assert.equal(after.status, 401, "an ended session is refused");
    assert.equal((await errorOf(after)).code, "unauthorized");
  });

  test("an agent's session is that agent: its own routes yes, admin routes 403", async () => {
    const token = await issueToken(worker, "test-runner");
    const session = await (await signIn({ token })).json();
    assert.deepEqual(session.principal, { principal: "agent", agent: "test-runner" });
    assert.deepEqual(await (await as(session.session_id, "/v1/whoami")).json(), { principal: "agent", agent: "test-runner" });
    assert.equal((await as(session.session_id, "/v1/agents/test-runner/lease", { method: "POST" })).status, 204);
    assert.equal((await as(session.session_id, "/v1/agents")).status, 403);
    assert.equal((await as(session.session_id, "/v1/agents/context-fetcher/inbox")).status, 403);
  });

  test("a session expires on time", async () => {
    const { session_id: id } = await (await signIn({ token: worker.adminToken })).json();
    assert.equal((await as(id, "/v1/whoami")).status, 200);
    await new Promise((resolve) => setTimeout(resolve, TTL_SECONDS * 1000 + 300));
    assert.equal((await as(id, "/v1/whoami")).status, 401);
  });

  test("asking for or ending a session wrongly is a clear 4xx", async () => {
    const cases = [
      ["a wrong token", { token: "not-a-token-anyone-issued" }, 401, "unauthorized"],
      ["an agent token nobody issued", { token: "sya_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA" }, 401, "unauthorized"],
      ["an empty token", { token: "" }, 401, "unauthorized"],
      ["no token", {}, 422, "invalid_request"],
      ["a token that is not a string", { token: 42 }, 422, "invalid_request"],
      ["an unknown field", { token: worker?.adminToken ?? "", remember: true }, 422, "invalid_request"],
      ["broken JSON", "{", 400, "malformed_json"],
    ];
    for (const [what, body, status, code] of cases) {
      const response = await signIn(body);
      assert.equal(response.status, status, what);
      assert.equal((await errorOf(response)).code, code, what);
    }
    const form = await signIn("token=x", { "content-type": "application/x-www-form-urlencoded" });
    assert.equal(form.status, 415);
    const { session_id: id } = await (await signIn({ token: worker.adminToken })).json();
    const chained = await signIn({ token: id });
    assert.equal(chained.status, 401, "a session cannot make another session");
    const withToken = await worker.admin("/v1/sessions/current", { method: "DELETE" });
    assert.equal(withToken.status, 400, "only a session can end itself");
    assert.equal((await worker.fetch("/v1/sessions/current", { method: "DELETE" })).status, 401);
    const forged = `sys_${"A".repeat(43)}`;
    assert.equal((await as(forged, "/v1/whoami")).status, 401, "an unknown session id is refused");
  });

  test("sessions outliving credentials: a rotated token's and a deleted agent's sessions end at once", async () => {
    const create = (body) => worker.admin("/v1/agents", { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
    assert.equal((await create({ name: "session-holder", capabilities: ["x"] })).status, 201);
    const first = await issueToken(worker, "session-holder");
    const { session_id: rotatedAway } = await (await signIn({ token: first })).json();
    assert.equal((await as(rotatedAway, "/v1/whoami")).status, 200);
    const second = await issueToken(worker, "session-holder");
    assert.equal((await as(rotatedAway, "/v1/whoami")).status, 401, "rotating the token ended its session");
    const { session_id: deletedAway } = await (await signIn({ token: second })).json();
    assert.equal((await as(deletedAway, "/v1/whoami")).status, 200);
    assert.equal((await worker.admin("/v1/agents/session-holder", { method: "DELETE" })).status, 204);
    assert.equal((await create({ name: "session-holder", capabilities: ["x"] })).status, 201);
    await issueToken(worker, "session-holder");
    const stale = await as(deletedAway, "/v1/whoami");
    assert.equal(stale.status, 401, "a deleted agent's session does not speak for the new agent of that name");
  });
});

describe("sessions of an admin token removed from ADMIN_TOKEN", { timeout: 180_000 }, () => {
  const SECOND = "second-admin-token-0123456789abcd";
  let worker;
  after(async () => {
    await worker?.stop();
  });

  test("end when the runtime restarts without that token, while the other admin's sessions go on", async () => {
    const vars = { SESSION_TTL_SECONDS: "3600" };
    worker = await startWorker({ vars: { ...vars, ADMIN_TOKEN: `${ADMIN_TOKEN},${SECOND}` } });
    const sessionOf = async (token) => {
      const response = await worker.fetch("/v1/sessions", { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ token }) });
      assert.equal(response.status, 201);
      return (await response.json()).session_id;
    };
    const whoami = (session) => worker.fetch("/v1/whoami", { headers: { authorization: `Bearer ${session}` } });
    const removed = await sessionOf(SECOND);
    const kept = await sessionOf(ADMIN_TOKEN);
    assert.equal((await whoami(removed)).status, 200);
    const stateDir = worker.stateDir;
    await worker.stop({ keepState: true });
    worker = await startWorker({ vars, stateDir });
    assert.equal((await whoami(removed)).status, 401, "the removed admin token's session is over");
    assert.equal((await whoami(kept)).status, 200, "the remaining admin token's session still works");
  });
});
