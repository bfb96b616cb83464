// Webhook agents: switchyard POSTs each step to the agent's URL, signed with the agent's secret;
// the receiver here is a plain HTTP server on loopback that checks the signature with its own
// HMAC code, as a real agent would.

import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { eventsOf, submit, taskOf } from "./helpers/agents.mjs";
import { receiver, signed, verify } from "./helpers/webhook.mjs";
import { eventually, startWorker } from "./helpers/worker.mjs";

describe("webhook agents", { timeout: 300_000 }, () => {
  let worker;
  const servers = [];
  before(async () => {
    worker = await startWorker();
  });
  after(async () => {
    servers.forEach((s) => s.close());
    await worker?.stop();
  });

  const json = (method, path, body) =>
    worker.admin(path, { method, headers: { "content-type": "application/json" }, body: JSON.stringify(body) });

  async function webhookAgent(name, url, attempts, fields = {}) {
    const created = await json("POST", "/v1/agents", { name, mode: "webhook", webhook_url: url, capabilities: ["hooks"], ...fields });
    assert.equal(created.status, 201);
    const { webhook_secret: secret } = await created.json();
    const workflow = await json("POST", "/v1/workflows", {
      name: `${name}-flow`,
      steps: [{ key: "1", name: "hooked", agent: name, attributes: { max_attempts: String(attempts) } }],
    });
    assert.equal(workflow.status, 201);
    return secret;
  }

  test("a webhook agent receives a correctly signed step and completes it with its answer", async () => {
    let secret;
    const server = await receiver((delivery) => {
      if (!verify(secret, delivery.headers, delivery.body)) return { status: 401, json: { error: "bad signature" } };
      const step = JSON.parse(delivery.body).step;
      return { status: 200, json: { outcome: "succeeded", report: { notes: `handled ${step.name}`, lines_added: 5 } } };
    });
    servers.push(server);
    secret = await webhookAgent("hook-agent", server.url, 3);
    const task = (await submit(worker, { title: "Ping the hook", workflow: "hook-agent-flow" })).body.task;
    const done = await eventually(async () => {
      const read = await taskOf(worker, task.id);
      return read.status === "succeeded" && read;
    });
    assert.ok(done, "the task succeeded from the webhook's answer");
    assert.equal(server.deliveries.length, 1);
    const delivery = server.deliveries[0];
    assert.ok(delivery.headers["webhook-id"].startsWith("lse_"));
    assert.match(delivery.headers["webhook-signature"], /^v1,[A-Za-z0-9+/]+=*$/);
    assert.match(secret, /^whsec_[A-Za-z0-9+/]+=*$/, "the secret is whsec_ and standard base64");
    const payload = JSON.parse(delivery.body).step;
    assert.equal(payload.id, task.steps[0].id);
    assert.equal(payload.lease_id, delivery.headers["webhook-id"]);

    // What the receiver's check protects against: a changed body, another secret, an old request.
    assert.equal(verify(secret, delivery.headers, delivery.body.replace("hooked", "hijack")), false);
    assert.equal(verify("whsec_c29tZW9uZSBlbHNlIGVudGlyZWx5", delivery.headers, delivery.body), false);
    assert.equal(verify(secret, { ...delivery.headers, "webhook-id": "lse_replayed_under_a_new_id" }, delivery.body), false, "the id is signed");
    const hourOld = signed(secret, delivery.headers["webhook-id"], delivery.body, new Date(Date.now() - 3600_000));
    assert.equal(verify(secret, hourOld, delivery.body), false, "an old timestamp is refused");
  });

  test("a webhook that answers 500 is retried, then the step is dead and the task failed", async () => {
    const server = await receiver(() => ({ status: 500, json: { error: "down" } }));
    servers.push(server);
    await webhookAgent("broken-hook", server.url, 2);
    const task = (await submit(worker, { title: "Ping the broken hook", workflow: "broken-hook-flow" })).body.task;
    const failed = await eventually(
      async () => {
        const read = await taskOf(worker, task.id);
        return read.status === "failed" && read;
      },
      { timeoutMs: 30_000 },
    );
    assert.ok(failed, "the task failed after its attempts");
    assert.equal(failed.steps[0].status, "dead");
    assert.equal(server.deliveries.length, 2);
    assert.deepEqual(failed.steps[0].attempts.map((a) => a.status), ["failed", "failed"]);
    assert.match(failed.steps[0].attempts[0].error, /answered 500/);
    const events = await eventsOf(worker, task.id);
    assert.equal(events.filter((e) => e.kind === "step.dead").length, 1);
  });

  test("a slow webhook that answers after the agent's lease_ms still completes its step, once", async () => {
    const server = await receiver(async () => {
      await new Promise((resolve) => setTimeout(resolve, 2500));
      return { status: 200, json: { outcome: "succeeded", report: { notes: "slow but done" } } };
    });
    servers.push(server);
    await webhookAgent("slow-hook", server.url, 3, { lease_ms: 1000 });
    const task = (await submit(worker, { title: "Ping the slow hook", workflow: "slow-hook-flow" })).body.task;
    const done = await eventually(async () => {
      const read = await taskOf(worker, task.id);
      return read.status !== "running" && read;
    }, { timeoutMs: 30_000 });
    assert.equal(done?.status, "succeeded");
    assert.deepEqual(done.steps[0].attempts.map((a) => a.status), ["succeeded"]);
    assert.equal(server.deliveries.length, 1);
  });

  test("a webhook's answer that a D1 failure kept from being written is delivered again under the same id and counted once", async () => {
    let armed = false;
    const server = await receiver(async () => {
      if (!armed) {
        armed = true;
        // The Worker's next D1 round trips fail: the ones that would write this answer.
        const fault = await json("POST", "/__test/faults", { point: "d1", fail: 2 });
        assert.equal(fault.status, 200);
      }
      return { status: 200, json: { outcome: "succeeded", report: { notes: "answered" } } };
    });
    servers.push(server);
    await webhookAgent("blip-hook", server.url, 3);
    const task = (await submit(worker, { title: "Ping the hook during a D1 blip", workflow: "blip-hook-flow" })).body.task;
    // Nothing else may use D1 while the faults are armed: wait on the receiver alone.
    await eventually(() => server.deliveries.length >= 2, { timeoutMs: 30_000, intervalMs: 100 });
    const done = await eventually(async () => {
      const read = await taskOf(worker, task.id);
      return read.status !== "running" && read;
    }, { timeoutMs: 30_000, intervalMs: 500 });
    assert.equal(done?.status, "succeeded");
    assert.deepEqual(done.steps[0].attempts.map((a) => a.status), ["succeeded"], "the Worker's fault spent no attempt");
    assert.equal(server.deliveries.length, 2);
    assert.equal(server.deliveries[0].headers["webhook-id"], server.deliveries[1].headers["webhook-id"], "the same delivery id");
    const faults = await (await worker.admin("/__test/faults")).json();
    assert.equal(faults.d1.failed, 2, "the injected faults happened");
    const events = await eventsOf(worker, task.id);
    assert.equal(events.filter((e) => e.kind === "step.redelivered").length, 1);
    assert.equal(events.filter((e) => e.kind === "step.succeeded").length, 1);
  });

  test("a webhook that answers 202 completes the step later over the API", async () => {
    const server = await receiver(() => ({ status: 202 }));
    servers.push(server);
    await webhookAgent("later-hook", server.url, 3);
    const task = (await submit(worker, { title: "Later", workflow: "later-hook-flow" })).body.task;
    await eventually(() => server.deliveries.length === 1);
    const leased = await eventually(async () => (await taskOf(worker, task.id)).steps[0].status === "leased");
    assert.ok(leased);
    const leaseId = server.deliveries[0].headers["webhook-id"];
    const completed = await json("POST", `/v1/steps/${task.steps[0].id}/complete`, { lease_id: leaseId, report: {} });
    assert.equal(completed.status, 200);
    assert.equal((await taskOf(worker, task.id)).status, "succeeded");
  });
  test("a webhook agent holds at most max_concurrency deliveries; the others wait and are delivered as each ends", async () => {
    const server = await receiver(() => ({ status: 202 }));
    servers.push(server);
    const created = await json("POST", "/v1/agents", { name: "narrow-hook", mode: "webhook", webhook_url: server.url, capabilities: ["hooks"], max_concurrency: 1 });
    assert.equal(created.status, 201);
    const workflow = await json("POST", "/v1/workflows", {
      name: "narrow-flow",
      steps: ["a", "b", "c"].map((letter) => ({ key: `1${letter}`, name: `part_${letter}`, agent: "narrow-hook", group: "parts" })),
    });
    assert.equal(workflow.status, 201, await workflow.text());
    const task = (await submit(worker, { title: "Three parts, one at a time", workflow: "narrow-flow" })).body.task;
    for (let delivered = 1; delivered <= 3; delivered += 1) {
      assert.ok(await eventually(() => server.deliveries.length === delivered), `delivery ${delivered} arrived`);
      await new Promise((resolve) => setTimeout(resolve, 1000));
      assert.equal(server.deliveries.length, delivered, "no second delivery while one is held");
      const read = await taskOf(worker, task.id);
      assert.equal(read.steps.filter((s) => s.status === "leased").length, 1);
      const step = JSON.parse(server.deliveries[delivered - 1].body).step;
      const completed = await json("POST", `/v1/steps/${step.id}/complete`, { lease_id: step.lease_id, report: {} });
      assert.equal(completed.status, 200);
    }
    const done = await eventually(async () => (await taskOf(worker, task.id)).status === "succeeded");
    assert.ok(done);
    const ids = server.deliveries.map((d) => JSON.parse(d.body).step.id);
    assert.equal(new Set(ids).size, 3, "each step was delivered once");
  });

  test("a webhook's loop items of the wrong shape fail its attempt, and the retry's list runs the loop once per item", async () => {
    const answers = [];
    const server = await receiver((delivery) => {
      const step = JSON.parse(delivery.body).step;
      const asked = step.report_contract.items;
      const loop = step.instructions.loop;
      answers.push([step.key, asked?.for_step ?? null, loop?.item ?? null]);
      if (asked && step.attempt === 1) return { status: 200, json: { outcome: "succeeded", report: { notes: "listed", items: "a and b" } } };
      if (asked) return { status: 200, json: { outcome: "succeeded", report: { notes: "listed", items: ["a", "b"] } } };
      return { status: 200, json: { outcome: "succeeded", report: { notes: `did ${loop?.item}` } } };
    });
    servers.push(server);
    await webhookAgent("loop-hook", server.url, 2);
    const post = (name, text) =>
      worker.admin(`/v1/workflows?name=${name}`, { method: "POST", headers: { "content-type": "text/markdown" }, body: text });
    const child = `# Hook child\n\n<process_flow>\n<step number="1" subagent="loop-hook" name="build">Build it.</step>\n</process_flow>\n`;
    assert.equal((await post("hook-child", child)).status, 201);
    const parent = `# Hook loop

<process_flow>
<step number="1" subagent="loop-hook" name="list">List the parts.</step>
<step number="2" name="each_part">
FOR each part listed in Step 1:
  EXECUTE instructions from hook-child.md
END FOR
LOAD @.agent-os/instructions/core/hook-child.md
</step>
</process_flow>
`;
    assert.equal((await post("hook-loop", parent)).status, 201);
    const task = (await submit(worker, { title: "Build the parts", workflow: "hook-loop" })).body.task;
    const done = await eventually(async () => {
      const read = await taskOf(worker, task.id);
      return read.status !== "running" && read;
    }, { timeoutMs: 30_000 });
    assert.equal(done?.status, "succeeded", JSON.stringify(done?.steps.map((s) => [s.key, s.status])));
    assert.deepEqual(done.steps[0].attempts.map((a) => a.status), ["failed", "succeeded"]);
    assert.match(done.steps[0].attempts[0].error, /not a valid completion: report\.items must be a list/);
    assert.deepEqual(done.steps.map((s) => [s.key, s.status]), [["1", "succeeded"], ["2", "succeeded"], ["2.1", "succeeded"], ["2#2.1", "succeeded"]]);
    assert.deepEqual(answers, [["1", "2", null], ["1", "2", null], ["2.1", null, "a"], ["2#2.1", null, "b"]]);
  });

  test("a rotated webhook secret signs the next delivery and the old one no longer verifies", async () => {
    const server = await receiver(() => ({ status: 200, json: { outcome: "succeeded", report: {} } }));
    servers.push(server);
    const first = await webhookAgent("rotating-hook", server.url, 3);
    const rotated = await json("POST", "/v1/agents/rotating-hook/webhook-secret", {});
    assert.equal(rotated.status, 200);
    const { webhook_secret: second } = await rotated.json();
    assert.match(second, /^whsec_/);
    assert.notEqual(second, first);
    const agentBody = await (await worker.admin("/v1/agents/rotating-hook")).text();
    assert.ok(!agentBody.includes(second) && !agentBody.includes(first), "a secret is never shown again");
    const task = (await submit(worker, { title: "Ping the rotated hook", workflow: "rotating-hook-flow" })).body.task;
    assert.ok(await eventually(async () => (await taskOf(worker, task.id)).status === "succeeded"));
    const delivery = server.deliveries.at(-1);
    assert.equal(verify(second, delivery.headers, delivery.body), true);
    assert.equal(verify(first, delivery.headers, delivery.body), false);
    assert.equal((await json("POST", "/v1/agents/test-runner/webhook-secret", {})).status, 409, "a pull agent has no secret");
    assert.equal((await json("POST", "/v1/agents/no-such-agent/webhook-secret", {})).status, 404);
  });
});
