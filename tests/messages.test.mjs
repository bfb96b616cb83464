// Agent messages: who may send and read what, every bad message refused with nothing stored,
// an inbox read that waits for the next message, and delivery to a webhook agent through the
// queue (signed, and retried when the receiver fails).

import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { eventsOf, issueToken, postAs, submit } from "./helpers/agents.mjs";
import { receiver, verify } from "./helpers/webhook.mjs";
import { errorOf, eventually, startWorker } from "./helpers/worker.mjs";

describe("agent messages", { timeout: 300_000 }, () => {
  let worker;
  const tokens = {};
  const servers = [];
  before(async () => {
    worker = await startWorker();
    for (const name of ["cloudflare-specialist", "sveltekit-specialist", "test-runner"]) {
      tokens[name] = await issueToken(worker, name);
    }
  });
  after(async () => {
    servers.forEach((s) => s.close());
    await worker?.stop();
  });

  const query = (overrides = {}) => ({
    from: "sveltekit-specialist",
    to: "cloudflare-specialist",
    type: "query",
    payload: { question: "Which binding holds sessions?" },
    correlation_id: "conv-1",
    ...overrides,
  });
  const asAgent = (name, path) => worker.fetch(path, { headers: { authorization: `Bearer ${tokens[name]}` } });
  /** Every stored message, as the admin sees the inboxes of the agents in these tests. */
  async function allMessages() {
    const lists = await Promise.all(
      ["cloudflare-specialist", "sveltekit-specialist", "test-runner", "hook-listener"].map(async (name) => {
        const response = await worker.admin(`/v1/agents/${name}/inbox?limit=200`);
        return response.status === 200 ? (await response.json()).messages : [];
      }),
    );
    return lists.flat().map((m) => m.id).sort();
  }

  test("every bad message is refused with a clear error and nothing is stored", async () => {
    const before = await allMessages();
    const sveltekit = (body) => postAs(worker, tokens["sveltekit-specialist"], "/v1/messages", body);
    const cases = [
      ["an unknown recipient", query({ to: "nobody-here" }), 422, "invalid_request", "to"],
      ["an unknown sender (as admin)", query({ from: "ghost-agent" }), 422, "invalid_request", "from", "admin"],
      ["a response with no query", query({ type: "response", correlation_id: "never-asked" }), 422, "invalid_request", "correlation_id"],
      ["a payload over the limit", query({ payload: { text: "x".repeat(20_000) } }), 422, "invalid_request", "payload"],
      ["a message as another agent", query({ from: "test-runner" }), 403, "forbidden"],
      ["an unknown type", query({ type: "shout" }), 422, "invalid_request", "type"],
      ["a payload that is not an object", query({ payload: "hi" }), 422, "invalid_request", "payload"],
      ["a bad timestamp", query({ timestamp: "yesterday" }), 422, "invalid_request", "timestamp"],
      ["a bad correlation id", query({ correlation_id: "has spaces" }), 422, "invalid_request", "correlation_id"],
      ["a task that does not exist", query({ task_id: "tsk_00000000000000000000000000" }), 422, "invalid_request", "task_id"],
      ["a message to oneself", query({ to: "sveltekit-specialist" }), 422, "invalid_request", "to"],
      ["an unknown field", { ...query(), priority: "high" }, 422, "invalid_request"],
      ["a missing field", { from: "sveltekit-specialist", to: "cloudflare-specialist", type: "query" }, 422, "invalid_request"],
    ];
    for (const [what, body, status, code, field, as] of cases) {
      const response = as === "admin"
        ? await worker.admin("/v1/messages", { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) })
        : await sveltekit(body);
      assert.equal(response.status, status, what);
      const error = await errorOf(response);
      assert.equal(error.code, code, what);
      if (field) assert.ok(error.details.some((d) => d.field === field), `${what}: ${JSON.stringify(error.details)}`);
    }
    const raw = [
      ["a broken JSON body", "{", "application/json", 400],
      ["a body that is not JSON", "from=a", "application/x-www-form-urlencoded", 415],
    ];
    for (const [what, body, type, status] of raw) {
      const response = await worker.fetch("/v1/messages", {
        method: "POST",
        headers: { authorization: `Bearer ${tokens["sveltekit-specialist"]}`, "content-type": type },
        body,
      });
      assert.equal(response.status, status, what);
    }
    assert.deepEqual(await allMessages(), before, "no message was stored");
  });

  test("an agent reads only its own inbox and its own side of conversations", async () => {
    const sent = await postAs(worker, tokens["sveltekit-specialist"], "/v1/messages", query({ correlation_id: "private-1" }));
    assert.equal(sent.status, 201);
    const other = await asAgent("test-runner", "/v1/agents/cloudflare-specialist/inbox");
    assert.equal(other.status, 403);
    const own = await asAgent("cloudflare-specialist", "/v1/agents/cloudflare-specialist/inbox");
    assert.equal(own.status, 200);
    assert.ok((await own.json()).messages.some((m) => m.correlation_id === "private-1"));
    const outsider = await (await asAgent("test-runner", "/v1/messages?correlation_id=private-1")).json();
    assert.deepEqual(outsider.messages, [], "a third agent sees nothing of the conversation");
    const party = await (await asAgent("cloudflare-specialist", "/v1/messages?correlation_id=private-1")).json();
    assert.equal(party.messages.length, 1);
    for (const [path, status] of [
      ["/v1/messages", 400],
      ["/v1/messages?correlation_id=", 400],
      ["/v1/agents/cloudflare-specialist/inbox?wait=99", 400],
      ["/v1/agents/cloudflare-specialist/inbox?after=-1", 400],
      ["/v1/agents/not-registered/inbox", 404],
      ["/v1/agents/Bad%20Name/inbox", 404],
    ]) {
      assert.equal((await worker.admin(path)).status, status, path);
    }
  });

  test("an inbox read with wait returns as soon as a message arrives", async () => {
    const start = await (await asAgent("test-runner", "/v1/agents/test-runner/inbox")).json();
    const waiting = asAgent("test-runner", `/v1/agents/test-runner/inbox?after=${start.next_cursor}&wait=10`);
    await new Promise((resolve) => setTimeout(resolve, 300));
    const notice = query({ from: "cloudflare-specialist", to: "test-runner", type: "notify", correlation_id: "wake-1" });
    assert.equal((await postAs(worker, tokens["cloudflare-specialist"], "/v1/messages", notice)).status, 201);
    const woken = await (await waiting).json();
    assert.deepEqual(woken.messages.map((m) => m.correlation_id), ["wake-1"]);
    const empty = await (await asAgent("test-runner", `/v1/agents/test-runner/inbox?after=${woken.next_cursor}&wait=1`)).json();
    assert.deepEqual(empty.messages, []);
    assert.equal(empty.next_cursor, woken.next_cursor, "an empty read keeps the cursor");
  });

  /** A webhook agent `name` whose receiver answers `firstStatus` to the first delivery and 200 after. */
  async function webhookListener(name, firstStatus) {
    const listener = { calls: 0 };
    listener.server = await receiver(() => {
      listener.calls += 1;
      return listener.calls === 1 ? { status: firstStatus } : { status: 200, json: {} };
    });
    servers.push(listener.server);
    const created = await worker.admin("/v1/agents", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ name, mode: "webhook", webhook_url: listener.server.url, capabilities: ["listening"] }),
    });
    assert.equal(created.status, 201);
    listener.secret = (await created.json()).webhook_secret;
    return listener;
  }

  test("a message to a webhook agent is POSTed to it, signed, and retried when the receiver fails", async () => {
    const { server, secret } = await webhookListener("hook-listener", 503);
    const sent = await postAs(
      worker,
      tokens["cloudflare-specialist"],
      "/v1/messages",
      query({ from: "cloudflare-specialist", to: "hook-listener", type: "notify", correlation_id: "hook-1" }),
    );
    assert.equal(sent.status, 201);
    const { message } = await sent.json();
    const delivered = await eventually(() => server.deliveries.length >= 2, { timeoutMs: 60_000, intervalMs: 200 });
    assert.ok(delivered, "the failed delivery was retried");
    const last = server.deliveries.at(-1);
    assert.ok(verify(secret, last.headers, last.body), "the delivery is signed with the agent's secret");
    assert.equal(last.headers["webhook-id"], message.id);
    assert.deepEqual(JSON.parse(last.body).message, message);
  });

  test("a message about a task, delivered to a webhook agent, is in the task's history once", async () => {
    const listener = await webhookListener("task-listener", 500);
    const { response, body } = await submit(worker, { title: "Add a comments API in D1" });
    assert.equal(response.status, 201);
    const taskId = body.task.id;
    const sent = await postAs(
      worker,
      tokens["cloudflare-specialist"],
      "/v1/messages",
      query({ from: "cloudflare-specialist", to: "task-listener", type: "notify", correlation_id: "task-1", task_id: taskId }),
    );
    assert.equal(sent.status, 201);
    const { message } = await sent.json();
    const delivered = async () => (await eventsOf(worker, taskId)).filter((e) => e.kind === "message.delivered");
    assert.ok(await eventually(async () => (await delivered()).length > 0, { timeoutMs: 60_000, intervalMs: 200 }));
    assert.ok(listener.calls >= 2, "the first delivery failed and was retried");
    const events = await delivered();
    assert.equal(events.length, 1, "one event for the message, not one per delivery attempt");
    assert.deepEqual(events[0].data, { message_id: message.id, to: "task-listener" });
  });
});
