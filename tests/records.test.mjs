// What a task leaves behind: a full-stack task run by simulated agents that send realistic
// reports and talk to each other, then every record is checked against what they sent: the
// messages and their order, each agent's log, the activity-log and post-flight summaries, the
// metrics (JSON and YAML) and the cross-task aggregates.

import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { parse as parseYaml } from "yaml";
import { agent, eventsOf, issueToken, leaseWithin, postAs, submit, taskOf } from "./helpers/agents.mjs";
import { errorOf, eventually, startWorker } from "./helpers/worker.mjs";

const AGENTS = ["context-fetcher", "cloudflare-specialist", "sveltekit-specialist", "project-manager", "test-runner"];

/** What each step's agent reports, by step key. */
const REPORTS = {
  1: { notes: "Read the routes and the schema", records: { "Context gathered": ["src/routes", "migrations"] } },
  "2a": {
    files_created: ["migrations/0003_comments.sql", "src/api/comments.ts"],
    files_modified: ["wrangler.toml", "src/index.ts", "src/db.ts"],
    lines_added: 245,
    lines_removed: 32,
    records: { "Database schemas created": ["comments"], "API endpoints created": ["POST /api/comments", "GET /api/comments"] },
    feedback: {
      "Services configured": ["D1 comments table", "KV cache for comment counts"],
      "Security measures implemented": ["input validation", "rate limit on POST"],
    },
    integration_points: ["GET /api/comments returns {comments: [...]} for the page load"],
    performance: { cold_start_ms: 12 },
  },
  "2b": {
    files_created: ["src/routes/comments/+page.svelte", "src/routes/comments/+page.server.ts", "src/lib/CommentForm.svelte"],
    files_modified: ["src/lib/api.ts", "wrangler.toml"],
    lines_added: 389,
    lines_removed: 18,
    records: { "Routes created": ["/comments"] },
    feedback: {
      "Components created": ["CommentForm"],
      "Routes implemented": ["/comments"],
      "State management patterns used": ["$state rune for the draft"],
      "Accessibility features added": ["labelled textarea", "aria-live status"],
    },
  },
  3: { notes: "Types line up", integration_points: ["The page's load function calls GET /api/comments"] },
  5: {
    tests: { unit: { passed: 40, failed: 1, skipped: 2 }, integration: { passed: 6 } },
    performance: { bundle_size_kb: 42.5, cold_start_ms: 11 },
    outstanding_issues: ["One flaky unit test in CommentForm"],
  },
  6: { files_modified: ["README.md"], lines_added: 20, lines_removed: 0, next_steps: ["Paginate comments", "Add moderation"] },
};

const sum = (keys, field) => keys.reduce((total, key) => total + (REPORTS[key][field]?.length ?? REPORTS[key][field] ?? 0), 0);

describe("records of a task", { timeout: 600_000 }, () => {
  let worker;
  const clients = {};
  before(async () => {
    worker = await startWorker();
    for (const name of AGENTS) clients[name] = agent(worker, name, await issueToken(worker, name));
  });
  after(async () => {
    await worker?.stop();
  });

  const get = async (path, headers = {}) => {
    const response = await worker.admin(path, { headers });
    assert.equal(response.status, 200, `${path}: ${response.status}`);
    return response;
  };
  const send = (from, body) => postAs(worker, clients[from].token, "/v1/messages", { from, ...body });
  const inbox = async (name, query = "") => {
    const response = await worker.fetch(`/v1/agents/${name}/inbox${query}`, {
      headers: { authorization: `Bearer ${clients[name].token}` },
    });
    assert.equal(response.status, 200);
    return response.json();
  };
  async function run(name, key, { before: during } = {}) {
    const step = await leaseWithin(clients[name]);
    assert.equal(step.key, String(key));
    if (during) await during(step);
    const log = `${name} worked on ${step.name}\nall done`;
    const done = await clients[name].complete(step, { report: REPORTS[key], log });
    assert.equal(done.status, 200, await done.text());
    return step;
  }

  test("a full-stack run leaves messages, logs, summaries and metrics equal to what the agents sent", async () => {
    const started = new Date(Date.now() - 1000).toISOString();
    const { body } = await submit(worker, {
      title: "Add a D1-backed comments API and a SvelteKit page that lists the comments",
      description: "Readers can leave a comment under each post.",
      requirements: ["comments are stored in D1", "the page works without JavaScript"],
    });
    const task = body.task;
    assert.equal(task.task_type, "full-stack");
    await run("context-fetcher", 1);

    const correlation = `${task.id}-sessions`;
    let queryId;
    const [backend, frontend] = await Promise.all([
      leaseWithin(clients["cloudflare-specialist"]),
      leaseWithin(clients["sveltekit-specialist"]),
    ]);
    // The seed's example conversation, about this task.
    const asked = await send("sveltekit-specialist", {
      to: "cloudflare-specialist",
      type: "query",
      payload: { question: "What is the KV namespace key for user sessions?", context: "Implementing logout" },
      timestamp: "2024-01-15T10:30:00Z",
      correlation_id: correlation,
      task_id: task.id,
    });
    assert.equal(asked.status, 201, await asked.clone().text());
    queryId = (await asked.json()).message.id;
    const received = await inbox("cloudflare-specialist", "?wait=5");
    assert.deepEqual(received.messages.map((m) => [m.id, m.type, m.timestamp]), [[queryId, "query", "2024-01-15T10:30:00.000Z"]]);
    const answered = await send("cloudflare-specialist", {
      to: "sveltekit-specialist",
      type: "response",
      payload: { answer: "Use 'session:{sessionId}' as the key pattern" },
      correlation_id: correlation,
      task_id: task.id,
    });
    assert.equal(answered.status, 201);
    const reply = await inbox("sveltekit-specialist", "?wait=5");
    assert.equal(reply.messages.length, 1);
    assert.equal(reply.messages[0].payload.answer, "Use 'session:{sessionId}' as the key pattern");
    assert.equal((await inbox("cloudflare-specialist", `?after=${received.next_cursor}`)).messages.length, 0);
    const notified = await send("sveltekit-specialist", {
      to: "project-manager",
      type: "notify",
      payload: { news: "The comments page is ready for integration" },
      correlation_id: `${task.id}-ready`,
      task_id: task.id,
    });
    assert.equal(notified.status, 201);

    for (const [name, step] of [["cloudflare-specialist", backend], ["sveltekit-specialist", frontend]]) {
      const done = await clients[name].complete(step, { report: REPORTS[step.key], log: `${name} worked on ${step.name}` });
      assert.equal(done.status, 200);
    }
    await run("project-manager", 3, {
      before: async (step) => {
        assert.deepEqual(
          step.messages.map((m) => [m.from, m.type, m.payload.news]),
          [["sveltekit-specialist", "notify", "The comments page is ready for integration"]],
          "the lease of the agent's next step carries the message",
        );
      },
    });

    // Step 4 (feedback aggregation) writes the activity-log summary.
    await eventually(async () => (await taskOf(worker, task.id)).steps.find((s) => s.key === "4").status === "succeeded");
    const activity = await (await get(`/v1/tasks/${task.id}/summary`)).text();
    for (const section of ["Task objectives", "Agents involved", "Work completed by each agent", "Integration points", "Performance metrics", "Outstanding issues"]) {
      assert.match(activity, new RegExp(`^## ${section}$`, "m"));
    }
    assert.match(activity, /^- comments are stored in D1$/m);
    assert.match(activity, /^- Services configured:\n {2}- D1 comments table\n {2}- KV cache for comment counts$/m);
    assert.match(activity, /^- Performance optimizations applied: not reported$/m);
    assert.match(activity, /^- Accessibility features added:\n {2}- labelled textarea$/m);
    assert.match(activity, /^- Files: 2 created, 3 modified; lines \+245 -32$/m);
    assert.match(activity, /^- GET \/api\/comments returns \{comments: \[\.\.\.\]\} for the page load \(cloudflare-specialist, step 2a\)$/m);

    await run("test-runner", 5);
    await run("project-manager", 6);
    const done = await eventually(async () => {
      const read = await taskOf(worker, task.id);
      return read.status === "succeeded" && read;
    });
    assert.ok(done, "the task succeeded after its post-flight step");

    // The post-flight summary is now the latest, filled from the reports.
    const markdown = await get(`/v1/tasks/${task.id}/summary`, { accept: "text/markdown" });
    assert.match(markdown.headers.get("content-type"), /^text\/markdown/);
    const post = await markdown.text();
    const files = [...new Set(["2a", "2b", "6"].flatMap((k) => [...(REPORTS[k].files_created ?? []), ...REPORTS[k].files_modified]))].sort();
    assert.ok(post.includes(`Files Modified:\n${files.map((f) => `- ${f}`).join("\n")}\n`), post);
    assert.ok(post.includes(`Agents Used:\n${AGENTS.map((a) => `- ${a}`).join("\n")}\n`), post);
    assert.ok(post.includes("- Unit: 40 (1 failed, 2 skipped)\n- Integration: 6\n- E2E: not reported\n"), post);
    assert.ok(post.includes("- PageSpeed Score: not reported\n- Bundle Size: 42.5 KB\n- Cold Start: 11 ms\n"), post);
    assert.ok(post.includes("Next Steps:\n- Paginate comments\n- Add moderation\n"), post);
    assert.ok(!post.includes("{"), "no placeholder is left");

    const structured = await (await get(`/v1/tasks/${task.id}/summary`, { accept: "application/json" })).json();
    assert.equal(structured.kind, "post_flight");
    assert.equal(structured.markdown, post);
    const work = Object.fromEntries(structured.work.map((w) => [w.agent, w]));
    assert.equal(work["cloudflare-specialist"].lines_added, REPORTS["2a"].lines_added);
    assert.deepEqual(structured.tests.unit, { passed: 40, failed: 1, skipped: 2 });
    assert.deepEqual(structured.outstanding_issues.map((i) => i.text), ["One flaky unit test in CommentForm"]);

    // Metrics equal the sums of each agent's reports, and the YAML reads back the same.
    const metrics = (await (await get(`/v1/tasks/${task.id}/metrics`)).json()).agents;
    const byAgent = Object.fromEntries(metrics.map((m) => [m.agent, m]));
    const keysOf = { "cloudflare-specialist": ["2a"], "sveltekit-specialist": ["2b"], "project-manager": [3, 6], "test-runner": [5], "context-fetcher": [1] };
    for (const [name, keys] of Object.entries(keysOf)) {
      const m = byAgent[name];
      assert.deepEqual(
        [m.files_created, m.files_modified, m.lines_added, m.lines_removed, m.steps, m.outcome],
        [sum(keys, "files_created"), sum(keys, "files_modified"), sum(keys, "lines_added"), sum(keys, "lines_removed"), keys.length, "succeeded"],
        name,
      );
      assert.equal(Date.parse(m.end_time) - Date.parse(m.start_time), m.duration_ms);
    }
    const yamlResponse = await get(`/v1/tasks/${task.id}/metrics`, { accept: "application/yaml" });
    assert.match(yamlResponse.headers.get("content-type"), /^application\/yaml/);
    const yaml = parseYaml(await yamlResponse.text());
    assert.deepEqual(Object.keys(yaml), [task.id]);
    for (const m of metrics) {
      const fromYaml = yaml[task.id][m.agent];
      for (const field of ["start_time", "end_time", "duration", "duration_ms", "files_created", "files_modified", "lines_added", "lines_removed", "attempts", "outcome"]) {
        assert.equal(fromYaml[field], m[field], `${m.agent}.${field}`);
      }
    }

    // Aggregates across tasks (this file's worker has run only this task).
    const aggregates = (await (await get(`/v1/metrics/agents?since=${encodeURIComponent(started)}`)).json()).agents;
    const pm = aggregates.find((a) => a.agent === "project-manager");
    assert.deepEqual(
      [pm.steps, pm.succeeded, pm.success_rate, pm.lines_added, pm.files_modified],
      [2, 2, 1, sum([3, 6], "lines_added"), sum([3, 6], "files_modified")],
    );
    assert.ok(pm.duration_p50_ms <= pm.duration_p95_ms);
    assert.deepEqual(aggregates.map((a) => a.agent), [...AGENTS].sort());
    const future = new Date(Date.now() + 3_600_000).toISOString();
    assert.deepEqual((await (await get(`/v1/metrics/agents?since=${encodeURIComponent(future)}`)).json()).agents, []);

    // Both talking agents' logs hold their step and its RECORD items.
    const listed = (await (await get(`/v1/tasks/${task.id}/logs`)).json()).logs.map((l) => l.agent).sort();
    assert.deepEqual(listed, [...AGENTS].sort());
    const backendLog = await (await get(`/v1/tasks/${task.id}/logs/cloudflare-specialist`)).text();
    assert.match(backendLog, /step 2a \(backend_implementation\) attempt 1 succeeded/);
    assert.match(backendLog, /^ {2}cloudflare-specialist worked on backend_implementation$/m);
    assert.match(backendLog, /^RECORD API endpoints created:\n {2}- POST \/api\/comments$/m);
    const frontendLog = await (await get(`/v1/tasks/${task.id}/logs/sveltekit-specialist`)).text();
    assert.match(frontendLog, /^RECORD Routes created:\n {2}- \/comments$/m);

    // The conversation in order, and the task's history has each message once.
    const conversation = (await (await get(`/v1/messages?correlation_id=${correlation}`)).json()).messages;
    assert.deepEqual(conversation.map((m) => [m.type, m.from, m.to]), [
      ["query", "sveltekit-specialist", "cloudflare-specialist"],
      ["response", "cloudflare-specialist", "sveltekit-specialist"],
    ]);
    const sent = (await eventsOf(worker, task.id)).filter((e) => e.kind === "message.sent");
    assert.deepEqual(sent.map((e) => e.data.type), ["query", "response", "notify"]);
  });

  test("reading records of what does not exist is a 404 or 406, never a 500", async () => {
    const missing = "tsk_00000000000000000000000000";
    for (const path of [`/v1/tasks/${missing}/summary`, `/v1/tasks/${missing}/metrics`, `/v1/tasks/${missing}/logs`, `/v1/tasks/${missing}/logs/test-runner`, "/v1/tasks/nope/summary"]) {
      const response = await worker.admin(path);
      assert.equal(response.status, 404, path);
      assert.equal((await errorOf(response)).code, "not_found");
    }
    const { body } = await submit(worker, { title: "Restyle the SvelteKit settings page and its form components" });
    const early = await worker.admin(`/v1/tasks/${body.task.id}/summary`);
    assert.equal(early.status, 404);
    assert.match((await errorOf(early)).message, /no summary yet/);
    const refused = await worker.admin(`/v1/tasks/${body.task.id}/metrics`, { headers: { accept: "image/png" } });
    assert.equal(refused.status, 406);
    assert.equal((await errorOf(refused)).code, "not_acceptable");
    for (const query of ["since=yesterday", "since=2026-13-01T00:00:00Z", "since=%zz", "until=2026-01-01T00:00:00Z"]) {
      const response = await worker.admin(`/v1/metrics/agents?${query}`);
      assert.equal(response.status, 400, query);
    }
  });

  test("a failed attempt's report stays with that attempt: a later success without one records no files", async () => {
    const created = await worker.admin("/v1/agents", { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ name: "two-tries", capabilities: ["x"] }) });
    const { token } = await created.json();
    const flow = await worker.admin("/v1/workflows", { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ name: "two-tries-flow", steps: [{ key: "1", name: "try", agent: "two-tries" }] }) });
    assert.equal(flow.status, 201);
    const task = (await submit(worker, { title: "Try twice", workflow: "two-tries-flow" })).body.task;
    const client = agent(worker, "two-tries", token);
    const first = await leaseWithin(client);
    const failed = { files_created: ["half-done.ts", "scratch.ts"], lines_added: 50, performance: { cost_usd: 0.5 } };
    assert.equal((await client.complete(first, { outcome: "failed", error: "tests failed", report: failed })).status, 200);
    const second = await leaseWithin(client, 30_000);
    assert.equal(second.attempt, 2);
    assert.equal((await client.complete(second, { outcome: "succeeded", log: "done without a report" })).status, 200);
    assert.equal((await taskOf(worker, task.id)).status, "succeeded");
    const metrics = (await (await worker.admin(`/v1/tasks/${task.id}/metrics`)).json()).agents[0];
    assert.deepEqual([metrics.files_created, metrics.lines_added], [0, 0], "the failed attempt's files are not the step's");
    assert.equal(metrics.cost_usd, 0.5, "what the failed attempt cost still counts");
  });
});
