// The agent registry, workflows, task analysis and agent selection over HTTP, with the
// defaults loaded on first start, and every bad input refused without a change.

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { ROOT } from "../scripts/setup.mjs";
import { errorOf, startWorker } from "./helpers/worker.mjs";

/** The project's own default instruction file: a full file, and it ships with the repository. */
const INSTRUCTIONS = readFileSync(join(ROOT, "workflows", "enhanced-multi-agent.md"), "utf8");
const DEFAULT_AGENTS = ["cloudflare-specialist", "context-fetcher", "main-agent", "project-manager", "sveltekit-specialist", "test-runner"];

describe("the registry", { timeout: 240_000 }, () => {
  let worker;
  before(async () => {
    worker = await startWorker();
  });
  after(async () => {
    await worker?.stop();
  });

  const json = (method, path, body) =>
    worker.admin(path, { method, headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
  const markdown = (path, body, type = "text/markdown") =>
    worker.admin(path, { method: "POST", headers: { "content-type": type }, body });
  const agentNames = async () => {
    const body = await (await worker.admin("/v1/agents?limit=200")).json();
    return body.agents.map((a) => a.name);
  };
  const workflowCount = async () => (await (await worker.admin("/v1/workflows?limit=200")).json()).workflows.length;

  test("the default agents and workflow are there on first start", async () => {
    assert.deepEqual(await agentNames(), DEFAULT_AGENTS);
    const response = await worker.admin("/v1/workflows/enhanced-multi-agent");
    assert.equal(response.status, 200);
    const workflow = await response.json();
    assert.equal(workflow.version, 1);
    assert.deepEqual(
      workflow.steps.map((s) => [s.key, s.agent, s.group, s.depends_on]),
      [
        ["1", "context-fetcher", null, []],
        ["2a", "cloudflare-specialist", "parallel-1", ["1"]],
        ["2b", "sveltekit-specialist", "parallel-1", ["1"]],
        ["3", "project-manager", null, ["2a", "2b"]],
        ["4", null, null, ["3"]],
        ["5", "test-runner", null, ["4"]],
        ["6", "project-manager", null, ["5"]],
      ],
    );
  });

  test("an agent is created with a token shown once, then read, listed, updated and deleted", async () => {
    const created = await json("POST", "/v1/agents", {
      name: "db-reviewer",
      description: "Reviews D1 migrations",
      capabilities: ["D1", "Migrations"],
      max_concurrency: 2,
    });
    assert.equal(created.status, 201);
    const body = await created.json();
    assert.match(body.token, /^sya_[A-Za-z0-9_-]{43}$/);
    assert.equal(body.agent.name, "db-reviewer");
    assert.deepEqual(body.agent.capabilities, ["d1", "migrations"]);
    assert.equal(body.agent.mode, "pull");
    assert.equal(body.webhook_secret, undefined);

    const fetched = await (await worker.admin("/v1/agents/db-reviewer")).json();
    assert.deepEqual(fetched.agent, body.agent);
    assert.equal(JSON.stringify(fetched).includes(body.token), false, "the token is never shown again");

    const updated = await json("PUT", "/v1/agents/db-reviewer", { description: "Reviews SQL", capabilities: ["sql"] });
    assert.equal(updated.status, 200);
    assert.equal((await updated.json()).agent.version, 2);
    const reread = await (await worker.admin("/v1/agents/db-reviewer")).json();
    assert.equal(reread.agent.description, "Reviews SQL", "the cached copy was invalidated");

    const deleted = await worker.admin("/v1/agents/db-reviewer", { method: "DELETE" });
    assert.equal(deleted.status, 204);
    assert.equal((await worker.admin("/v1/agents/db-reviewer")).status, 404);
  });

  test("a token just used is refused at once when it is rotated, and its agent's new one when the agent is deleted", async () => {
    const whoami = (token) => worker.fetch("/v1/whoami", { headers: { authorization: `Bearer ${token}` } });
    const created = await (await json("POST", "/v1/agents", { name: "token-keeper" })).json();
    // Used twice first, so that the worker has it remembered, not only stored.
    for (let i = 0; i < 2; i += 1) {
      assert.deepEqual(await (await whoami(created.token)).json(), { principal: "agent", agent: "token-keeper" });
    }
    const rotated = await (await worker.admin("/v1/agents/token-keeper/token", { method: "POST" })).json();
    assert.equal((await whoami(created.token)).status, 401, "the old token stops working at once");
    for (let i = 0; i < 2; i += 1) assert.equal((await whoami(rotated.token)).status, 200);
    assert.equal((await worker.admin("/v1/agents/token-keeper", { method: "DELETE" })).status, 204);
    assert.equal((await whoami(rotated.token)).status, 401, "a deleted agent's token stops working at once");
  });

  test("a webhook agent gets a webhook secret once", async () => {
    const created = await json("POST", "/v1/agents", { name: "ci-hook", mode: "webhook", webhook_url: "http://127.0.0.1:9/hook" });
    assert.equal(created.status, 201);
    const body = await created.json();
    assert.match(body.webhook_secret, /^whsec_/);
    const fetched = await (await worker.admin("/v1/agents/ci-hook")).json();
    assert.equal(JSON.stringify(fetched).includes("whsec_"), false);
  });

  test("a pull agent switched to webhook mode gets a webhook secret once, and keeps it when updated again", async () => {
    assert.equal((await json("POST", "/v1/agents", { name: "ci-switch", capabilities: ["switching"] })).status, 201);
    const spec = { mode: "webhook", webhook_url: "http://127.0.0.1:9/hook", capabilities: ["switching"] };
    const switched = await json("PUT", "/v1/agents/ci-switch", spec);
    assert.equal(switched.status, 200);
    assert.match((await switched.json()).webhook_secret, /^whsec_/);
    const again = await json("PUT", "/v1/agents/ci-switch", { ...spec, description: "still a webhook agent" });
    assert.equal(again.status, 200);
    const body = await again.json();
    assert.equal(body.webhook_secret, undefined, "the secret is shown once");
    assert.equal(body.agent.description, "still a webhook agent");
  });

  test("a Claude Code subagent file is imported", async () => {
    const file = "---\nname: a11y-auditor\ndescription: Audits Svelte components for accessibility\ntools: Read, Grep\ncolor: purple\n---\n\nYou audit components.\n";
    const response = await markdown("/v1/agents/import", file);
    assert.equal(response.status, 201);
    const { agent, token } = await response.json();
    assert.ok(token);
    assert.equal(agent.imported, true);
    assert.deepEqual(agent.metadata, { tools: ["Read", "Grep"], color: "purple", prompt: "You audit components." });
    assert.ok(agent.capabilities.includes("accessibility"));
    // Removed again so that it does not compete with the defaults in the selection test.
    assert.equal((await worker.admin("/v1/agents/a11y-auditor", { method: "DELETE" })).status, 204);
  });

  test("bad agent inputs are refused with every problem and change nothing", async () => {
    const before = await agentNames();
    const cases = [
      [await json("POST", "/v1/agents", { name: "Bad Name" }), 422, "invalid_request"],
      [await json("POST", "/v1/agents", { name: "import" }), 422, "invalid_request"],
      [await json("POST", "/v1/agents", { name: "x", mode: "webhook" }), 422, "invalid_request"],
      [await json("POST", "/v1/agents", { name: "x", mode: "carrier-pigeon" }), 422, "invalid_request"],
      [await json("POST", "/v1/agents", { name: "x", max_concurrency: 0 }), 422, "invalid_request"],
      [await json("POST", "/v1/agents", { name: "x", surprise: true }), 422, "invalid_request"],
      [await json("POST", "/v1/agents", { name: "cloudflare-specialist" }), 409, "conflict"],
      [await worker.admin("/v1/agents", { method: "POST", headers: { "content-type": "text/plain" }, body: "{}" }), 415, "unsupported_media_type"],
      [await worker.admin("/v1/agents", { method: "POST", headers: { "content-type": "application/json" }, body: "{" }), 400, "malformed_json"],
      [await markdown("/v1/agents/import", "no front matter"), 422, "invalid_request"],
      [await markdown("/v1/agents/import", "---\nname: ../../etc\n---\n"), 422, "invalid_request"],
      [await markdown("/v1/agents/import", "---\nname: fine\n---\n", "application/json"), 415, "unsupported_media_type"],
      [await json("PUT", "/v1/agents/cloudflare-specialist", { name: "renamed" }), 422, "invalid_request"],
      [await json("PUT", "/v1/agents/nobody", {}), 404, "not_found"],
      [await worker.admin("/v1/agents/nobody", { method: "DELETE" }), 404, "not_found"],
      [await worker.admin("/v1/agents/..%2F..%2Fetc"), 404, "not_found"],
      [await worker.admin("/v1/agents/a%2Fb"), 404, "not_found"],
      [await worker.admin("/v1/agents/NOPE"), 404, "not_found"],
    ];
    for (const [response, status, code] of cases) {
      assert.equal(response.status, status, `${response.url}`);
      assert.equal((await errorOf(response)).code, code);
    }
    assert.deepEqual(await agentNames(), before);
  });

  test("a full instruction file becomes a workflow, and posting the same name again makes version 2", async () => {
    const first = await markdown("/v1/workflows?name=seed-flow", INSTRUCTIONS);
    assert.equal(first.status, 201);
    const created = await first.json();
    assert.equal(created.name, "seed-flow");
    assert.equal(created.version, 1);
    assert.deepEqual(created.warnings, []);
    assert.equal(created.steps.length, 7);
    assert.deepEqual(created.steps.find((s) => s.key === "3").depends_on, ["2a", "2b"]);
    assert.equal(created.post_flight.executes[0], ".agent-os/instructions/meta/post-flight.md");

    const second = await (await markdown("/v1/workflows?name=seed-flow", INSTRUCTIONS)).json();
    assert.equal(second.version, 2);
    assert.equal((await (await worker.admin("/v1/workflows/seed-flow")).json()).version, 2);
    const v1 = await (await worker.admin("/v1/workflows/seed-flow/versions/1")).json();
    assert.equal(v1.id, created.id);
    assert.deepEqual(v1.steps, created.steps);
  });

  test("a workflow is named from its title when neither the query nor the front matter names it", async () => {
    const response = await markdown("/v1/workflows", INSTRUCTIONS.replace(/^name: .*\n/m, ""));
    assert.equal(response.status, 201);
    assert.equal((await response.json()).name, "enhanced-multi-agent-task-execution");
  });

  test("a JSON definition is accepted, and unregistered agents are warnings", async () => {
    const response = await json("POST", "/v1/workflows", {
      name: "json-flow",
      steps: [
        { key: "1", name: "plan", agent: "context-fetcher" },
        { key: "2", name: "build", agent: "not-yet-imported" },
        { key: "3", name: "pick", auto_select: { requirements: ["d1"] } },
      ],
    });
    assert.equal(response.status, 201);
    const body = await response.json();
    assert.deepEqual(body.steps.map((s) => s.depends_on), [[], ["1"], ["2"]]);
    assert.equal(body.warnings.length, 1);
    assert.match(body.warnings[0].message, /not-yet-imported is not registered yet/);
  });

  test("a workflow read back can be posted again as its next version", async () => {
    const read = await (await worker.admin("/v1/workflows/enhanced-multi-agent")).json();
    const posted = await json("POST", "/v1/workflows", read);
    assert.equal(posted.status, 201, await posted.clone().text());
    const body = await posted.json();
    assert.equal(body.name, "enhanced-multi-agent");
    assert.equal(body.version, read.version + 1);
    assert.notEqual(body.id, read.id);
    assert.deepEqual(body.steps, read.steps);
  });

  test("an invalid instruction file lists every problem with its line and column", async () => {
    const before = await workflowCount();
    const file = "# Broken\n<process_flow>\n<step number=\"1\">a</step>\n<step number=\"1\">b</step>\n<step>c\n</process_flow>\n";
    const response = await markdown("/v1/workflows", file);
    assert.equal(response.status, 422);
    const error = await errorOf(response);
    assert.equal(error.code, "invalid_workflow");
    assert.deepEqual(
      error.details.map((d) => [d.line, d.column, d.message]),
      [
        [4, 1, "step number 1 is used twice (first on line 3)"],
        [5, 1, "<step> is never closed"],
      ],
    );
    assert.equal(await workflowCount(), before);
  });

  test("bad workflow inputs are refused and change nothing", async () => {
    const before = await workflowCount();
    const invalidUtf8 = Buffer.concat([Buffer.from("# T\n<process_flow><step number=\"1\">"), Buffer.from([0xff, 0xfe]), Buffer.from("</step></process_flow>")]);
    const cases = [
      [await markdown("/v1/workflows", INSTRUCTIONS, "application/xml"), 415, "unsupported_media_type"],
      [await markdown("/v1/workflows", invalidUtf8), 400, "bad_request"],
      [await markdown("/v1/workflows", "x".repeat(300 * 1024)), 413, "payload_too_large"],
      [await markdown("/v1/workflows?name=..%2Fetc", INSTRUCTIONS), 422, "invalid_workflow"],
      [await markdown("/v1/workflows?name=a/b", INSTRUCTIONS), 422, "invalid_workflow"],
      [await markdown("/v1/workflows?colour=red", INSTRUCTIONS), 400, "bad_request"],
      [await markdown("/v1/workflows", ""), 422, "invalid_workflow"],
      [await markdown("/v1/workflows", "<process_flow></process_flow>"), 422, "invalid_workflow"],
      [await json("POST", "/v1/workflows", { name: "x", steps: [] }), 422, "invalid_workflow"],
      [await json("POST", "/v1/workflows", { name: "x", steps: [{ key: "1", name: "a", depends_on: ["9"] }] }), 422, "invalid_workflow"],
      [await json("POST", "/v1/workflows", { name: "x", steps: [{ key: "1" }] }), 422, "invalid_request"],
      [await json("POST", "/v1/workflows", { name: "x", steps: [], extra: 1 }), 422, "invalid_request"],
      [await worker.admin("/v1/workflows/nope"), 404, "not_found"],
      [await worker.admin("/v1/workflows/enhanced-multi-agent/versions/0"), 404, "not_found"],
      [await worker.admin("/v1/workflows/enhanced-multi-agent/versions/99"), 404, "not_found"],
      [await worker.admin("/v1/workflows/enhanced-multi-agent/versions/1e1"), 404, "not_found"],
      [await worker.admin("/v1/workflows/..%2F..%2Fetc"), 404, "not_found"],
    ];
    for (const [response, status, code] of cases) {
      assert.equal(response.status, status, response.url);
      assert.equal((await errorOf(response)).code, code, response.url);
    }
    assert.equal(await workflowCount(), before);
  });

  test("workflows and agents page with a cursor", async () => {
    const first = await (await worker.admin("/v1/agents?limit=2")).json();
    assert.equal(first.agents.length, 2);
    assert.ok(first.next_cursor);
    const second = await (await worker.admin(`/v1/agents?limit=2&cursor=${first.next_cursor}`)).json();
    assert.ok(second.agents[0].name > first.agents[1].name);
    const workflows = await (await worker.admin("/v1/workflows?limit=1")).json();
    assert.equal(workflows.workflows.length, 1);
    assert.ok(workflows.next_cursor);
  });

  test("every route refuses bodies of the wrong type or size, and bad list parameters", async () => {
    const before = await agentNames();
    const post = (path, type, body, method = "POST") => worker.admin(path, { method, headers: { "content-type": type }, body });
    const cases = [
      [await post("/v1/analyze", "text/plain", '{"title":"x"}'), 415, "unsupported_media_type"],
      [await post("/v1/agents/select", "text/plain", '{"requirements":["d1"]}'), 415, "unsupported_media_type"],
      [await post("/v1/agents/cloudflare-specialist", "text/plain", "{}", "PUT"), 415, "unsupported_media_type"],
      [await post("/v1/agents", "application/json", Buffer.from([0x7b, 0x22, 0xff, 0x22, 0x3a, 0x31, 0x7d])), 400, "malformed_json"],
      [await post("/v1/agents/import", "text/markdown", Buffer.from([0x2d, 0x2d, 0x2d, 0x0a, 0xc3, 0x28])), 400, "bad_request"],
      [await post("/v1/agents/import", "text/markdown", "x".repeat(65 * 1024)), 413, "payload_too_large"],
      [await post("/v1/analyze", "application/json", JSON.stringify({ title: "x".repeat(70 * 1024) })), 413, "payload_too_large"],
      [await post("/v1/agents", "application/json", JSON.stringify({ name: "../x" })), 422, "invalid_request"],
      [await post("/v1/agents", "application/json", JSON.stringify({ name: "a/b" })), 422, "invalid_request"],
      [await worker.admin("/v1/agents?cursor=a%2Fb"), 400, "bad_request"],
      [await worker.admin(`/v1/agents?cursor=${"a".repeat(65)}`), 400, "bad_request"],
      [await worker.admin("/v1/agents?limit=0"), 400, "bad_request"],
      [await worker.admin("/v1/workflows?limit=1000"), 400, "bad_request"],
      [await worker.admin("/v1/workflows?sort=name"), 400, "bad_request"],
    ];
    for (const [response, status, code] of cases) {
      assert.equal(response.status, status, response.url);
      assert.equal((await errorOf(response)).code, code, response.url);
    }
    const longest = await worker.admin(`/v1/agents?cursor=${"a".repeat(64)}`);
    assert.equal(longest.status, 200, "a cursor as long as the longest name is accepted");
    assert.deepEqual(await agentNames(), before);
  });

  test("a JSON definition whose dependencies disagree with its order, even in a cycle, is refused", async () => {
    const response = await json("POST", "/v1/workflows", {
      name: "cyclic",
      steps: [
        { key: "1", name: "a", depends_on: ["2"] },
        { key: "2", name: "b", depends_on: ["1"] },
      ],
    });
    assert.equal(response.status, 422);
    const error = await errorOf(response);
    assert.equal(error.code, "invalid_workflow");
    assert.deepEqual(error.details.map((d) => d.field), ["steps[0].depends_on"], "step 2 does follow step 1");
    assert.equal((await worker.admin("/v1/workflows/cyclic")).status, 404);
  });

  test("analysis classifies a task and names its agents with evidence", async () => {
    const response = await json("POST", "/v1/analyze", {
      title: "Upload avatars to R2 and show them on the profile page",
      description: "Store the image in a bucket and render it in a Svelte component.",
    });
    assert.equal(response.status, 200);
    const analysis = await response.json();
    assert.equal(analysis.task_type, "full-stack");
    assert.deepEqual(analysis.agents, ["cloudflare-specialist", "sveltekit-specialist"]);
    assert.ok(analysis.evidence.length > 0);
    assert.ok(analysis.confidence > 0 && analysis.confidence <= 1);
  });

  test("bad analysis inputs are refused", async () => {
    const cases = [
      [await json("POST", "/v1/analyze", {}), 422],
      [await json("POST", "/v1/analyze", { title: "" }), 422],
      [await json("POST", "/v1/analyze", { title: "x", requirements: "d1" }), 422],
      [await json("POST", "/v1/analyze", { title: "x", paths: Array(257).fill("a") }), 422],
      [await json("POST", "/v1/analyze", { title: "x", requirements: ["r".repeat(300)] }), 422],
      [await json("POST", "/v1/analyze", { title: "x".repeat(2000) }), 422],
    ];
    for (const [response, status] of cases) {
      assert.equal(response.status, status);
      assert.equal((await errorOf(response)).code, "invalid_request");
    }
  });

  test("auto-select picks the default specialists for the requirements the seed names", async () => {
    const database = await (await json("POST", "/v1/agents/select", { requirements: ["database", "d1", "migrations"] })).json();
    assert.equal(database.agent, "cloudflare-specialist");
    assert.ok(database.candidates[0].matched.length > 0);
    const ui = await (await json("POST", "/v1/agents/select", { requirements: ["component", "svelte", "accessibility"] })).json();
    assert.equal(ui.agent, "sveltekit-specialist");
    const none = await (await json("POST", "/v1/agents/select", { requirements: ["quantum-entanglement"] })).json();
    assert.deepEqual(none, { agent: null, candidates: [] });
    const empty = await json("POST", "/v1/agents/select", { requirements: [] });
    assert.equal(empty.status, 422);
    const many = await json("POST", "/v1/agents/select", { requirements: Array(17).fill("d1") });
    assert.equal(many.status, 422);
  });
});

describe("a fresh installation", { timeout: 120_000 }, () => {
  let worker;
  before(async () => {
    worker = await startWorker();
  });
  after(async () => {
    await worker?.stop();
  });

  test("a runner's first request, a lease as a default agent with the admin token, finds that agent", async () => {
    // The readiness poll only asked /health; this lease is the first authenticated request.
    const lease = await worker.admin("/v1/agents/context-fetcher/lease?wait=0", {
      method: "POST",
      body: "{}",
      headers: { "content-type": "application/json" },
    });
    assert.equal(lease.status, 204, await lease.clone().text());
    const agents = await (await worker.admin("/v1/agents")).json();
    assert.deepEqual(agents.agents.map((a) => a.name).sort(), DEFAULT_AGENTS);
  });
});
