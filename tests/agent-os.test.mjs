// Instruction files in the shapes Agent OS itself uses, run to completion with simulated agents
// that read their step's instructions: steps without a subagent done by the main agent, a team
// whose `<agent_selection>` names specialists other than the seed's, and the refusals of each.

import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { agent, eventsOf, issueToken, leaseWithin, submit, taskOf } from "./helpers/agents.mjs";
import { eventually, startWorker } from "./helpers/worker.mjs";

/** Steps without `subagent=`, as in Agent OS's create-spec.md; each tells its agent which file to write. */
const SPEC_FLOW = `---
description: Write a spec for a feature
---

# Spec Creation Rules

<process_flow>

<step number="1" subagent="context-fetcher" name="context_gathering">

### Step 1: Context Gathering

Read the product mission and roadmap. Write \`.agent-os/context.md\`.

</step>

<step number="2" name="spec_folder_creation">

### Step 2: Spec Folder Creation

Create the spec folder and write \`.agent-os/specs/spec.md\`.

</step>

<step number="3" name="user_review">

### Step 3: User Review

Ask the user to review the spec and write \`.agent-os/specs/review.md\`.

</step>

</process_flow>
`;

/**
 * A team whose specialists are not the seed's, with its own `<agent_selection>`; step 1 is the
 * main agent's, as in Agent OS.
 */
const TEAM_FLOW = `# Team Task Execution

<process_flow>

<step number="1" name="task_analysis">

### Step 1: Analyse the task

Decide which engineers the task needs. Write \`docs/analysis.md\`.

<analysis>
  <agent_selection>
    IF task involves API endpoints or the database:
      ASSIGN: api-engineer
    IF task changes the UI (pages, components):
      ASSIGN: ui-engineer
    IF task involves both:
      ASSIGN: both specialists in parallel
  </agent_selection>
</analysis>

</step>

<parallel_execution optional="true">

<step number="2a" subagent="api-engineer" name="api_work">

### Step 2a: Build the API

Write the endpoint and its tests. Write \`docs/api.md\`.

</step>

<step number="2b" subagent="ui-engineer" name="ui_work">

### Step 2b: Build the UI

Write the page and its components. Write \`docs/ui.md\`.

</step>

</parallel_execution>

<step number="3" subagent="team-reviewer" name="review">

### Step 3: Review

Review what the engineers did. Write \`docs/review.md\`.

</step>

</process_flow>
`;

/** A rules file of the team's own, as Agent OS's meta/pre-flight.md is; `v` marks its version. */
const teamRules = (v) => `---
description: Rules for every step
---

# Team Rules

- Work only on your own step.
- Sign the notes of every report with: signed-${v}
`;

/** A flow whose flight checks EXECUTE rules files, as every Agent OS core file does. */
const RULED_FLOW = `# Ruled Flow

<pre_flight_check>
  EXECUTE: @.agent-os/instructions/meta/team-rules.md
</pre_flight_check>

<process_flow>

<step number="1" subagent="context-fetcher" name="look">

### Step 1: Look around

Read the code. Write \`docs/look.md\`.

</step>

<step number="2" name="build">

### Step 2: Build it

Build the change. Write \`docs/build.md\`.

</step>

</process_flow>

<post_flight_check>
  EXECUTE: @.agent-os/instructions/meta/team-closing.md
</post_flight_check>
`;

/**
 * Conditional steps in Agent OS's shapes: a decision tree on step 1's report, a condition on
 * step 2's outcome, and a prose condition only an agent can judge.
 */
const GATED_FLOW = `# Gated Flow

<process_flow>

<step number="1" subagent="context-fetcher" name="look">

### Step 1: Look

Read the code. Report \`database_changes\`: the tables the task adds. Write \`docs/look.md\`.

</step>

<step number="2" subagent="file-creator" name="schema">

### Step 2: Database Schema (Conditional)

Write the schema. Write \`docs/schema.md\`.

<decision_tree>
  IF step 1 reported database_changes:
    CREATE docs/schema.md
  ELSE:
    SKIP this step
</decision_tree>

</step>

<step number="3" subagent="file-creator" name="migration" condition="step 2 succeeded">

### Step 3: Migration

Write the migration. Write \`docs/migration.md\`.

</step>

<step number="4" subagent="file-creator" name="notes">

### Step 4: Notes

Write the notes. Write \`docs/notes.md\`.

<conditional_logic>
  IF the notes already exist in the current context:
    SKIP this entire step
</conditional_logic>

</step>

</process_flow>
`;

/**
 * A flow that runs a sibling file for each task step 1 lists, as Agent OS's execute-tasks.md
 * runs execute-task.md, and ends with the built-in summary.
 */
const FEATURE_FLOW = `# Feature Execution

<process_flow>

<step number="1" subagent="context-fetcher" name="task_assignment">

### Step 1: Task Assignment

List the parent tasks to build. Write \`docs/tasks.md\`.

</step>

<step number="2" name="task_execution_loop">

### Step 2: Task Execution Loop

Build every task step 1 listed, using @.agent-os/instructions/core/build-task.md.

<execution_flow>
  LOAD @.agent-os/instructions/core/build-task.md ONCE

  FOR each parent_task listed in Step 1:
    EXECUTE instructions from build-task.md with:
      - parent_task_number
    WAIT for task completion
  END FOR
</execution_flow>

</step>

<step number="3" subagent="project-manager" name="recap">

### Step 3: Recap

Say what was built. Write \`docs/recap.md\`.

</step>

<step number="4" name="task_summary">

### Step 4: Summary

Sum up.

</step>

</process_flow>
`;

/** The sibling file FEATURE_FLOW runs: a main-agent step and a test step; `v` marks its version. */
const buildTask = (v, extra = "") => `# Build Task ${v}

<process_flow>

<step number="1" name="task_understanding">

### Step 1: Understand the task

Read the parent task. Write \`docs/understanding-${v}.md\`.

</step>

<step number="2" subagent="test-runner" name="task_test_verification" max_attempts="1">

### Step 2: Verify

Run the task's tests. Write \`docs/tests-${v}.md\`.

</step>
${extra}
</process_flow>
`;

/**
 * Step agents for the tests: each reads its step's instructions, writes the file they name and
 * follows the rules the step carries (a rule "Sign the notes ... with: X" signs its notes). When
 * its report contract asks for the `items` a later loop runs for, it lists `found` (the tasks
 * it "finds"), if it was given any; a step of one item's run names its item in its notes.
 */
function reader(worker, name, token, { found } = {}) {
  const client = agent(worker, name, token);
  return {
    ...client,
    async work(timeoutMs = 15_000) {
      const step = await leaseWithin(client, timeoutMs);
      const named = /`([^`]+\.md)`/.exec(step.instructions.text);
      assert.ok(named, `step ${step.key}'s instructions name no file to write: ${step.instructions.text}`);
      const signatures = (step.instructions.rules ?? []).map((r) => /Sign the notes of every report with: (\S+)/.exec(r.text)?.[1]).filter(Boolean);
      // A step of a child run says which step runs it and what that step loops over.
      const run = step.instructions.child_run;
      const within = run ? [`within step ${run.step.key} (${run.workflow} v${run.version}) for each ${run.each}`] : [];
      const item = step.instructions.loop;
      const forItem = item ? [`for item ${item.number} of ${item.of}: ${JSON.stringify(item.item)}`] : [];
      const notes = [`${name} did "${step.instructions.title}"`, ...within, ...forItem, ...signatures].join(" ");
      const report = { files_created: [named[1]], notes };
      if (step.report_contract.items && found) report.items = found;
      const response = await client.complete(step, { outcome: "succeeded", report });
      assert.equal(response.status, 200, await response.text());
      return step;
    },
  };
}

describe("Agent OS instruction files as written", { timeout: 300_000 }, () => {
  let worker;
  const json = (method, path, body) =>
    worker.admin(path, { method, headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
  const postFile = (text, name) =>
    worker.admin(`/v1/workflows?name=${name}`, { method: "POST", headers: { "content-type": "text/markdown" }, body: text });
  const newAgent = async (name, capabilities = ["specs"]) => {
    const created = await json("POST", "/v1/agents", { name, capabilities });
    assert.equal(created.status, 201, await created.clone().text());
    return reader(worker, name, (await created.json()).token);
  };

  before(async () => {
    worker = await startWorker();
  });
  after(async () => {
    await worker?.stop();
  });

  test("steps without a subagent are done by the configured main agent, and the task says who chose it", async () => {
    const posted = await postFile(SPEC_FLOW, "spec-flow");
    assert.equal(posted.status, 201, await posted.clone().text());
    assert.deepEqual((await posted.json()).warnings, []);
    const { response, body } = await submit(worker, { title: "Write the spec for password reset", workflow: "spec-flow" });
    assert.equal(response.status, 201, JSON.stringify(body));
    assert.deepEqual(body.task.main_agent, { name: "main-agent", chosen_by: "configuration" });
    assert.deepEqual(
      body.task.steps.map((s) => [s.key, s.agent, s.runner]),
      [["1", "context-fetcher", "agent"], ["2", "main-agent", "agent"], ["3", "main-agent", "agent"]],
    );
    const fetcher = reader(worker, "context-fetcher", await issueToken(worker, "context-fetcher"));
    const main = reader(worker, "main-agent", await issueToken(worker, "main-agent"));
    assert.equal((await fetcher.work()).key, "1");
    const second = await main.work();
    assert.equal(second.agent, "main-agent");
    assert.equal(second.instructions.title, "Step 2: Spec Folder Creation");
    assert.equal((await main.work()).key, "3");
    const task = await taskOf(worker, body.task.id);
    assert.equal(task.status, "succeeded");
    const completions = (await eventsOf(worker, task.id)).filter((e) => e.kind === "step.succeeded");
    assert.equal(new Set(completions.map((e) => e.step_id)).size, 3, "each step succeeded once");
    assert.equal(completions.length, 3);
  });

  test("a workflow's front matter names its main agent, and a task can name another", async () => {
    const planner = await newAgent("spec-planner");
    const closer = await newAgent("spec-closer");
    const flow = SPEC_FLOW.replace("description: Write a spec for a feature", "main_agent: spec-planner");
    assert.equal((await postFile(flow, "planned-spec-flow")).status, 201);
    const byWorkflow = await submit(worker, { title: "Spec the export feature", workflow: "planned-spec-flow" });
    assert.deepEqual(byWorkflow.body.task.main_agent, { name: "spec-planner", chosen_by: "workflow" });
    const byTask = await submit(worker, { title: "Spec the import feature", workflow: "planned-spec-flow", main_agent: "spec-closer" });
    assert.deepEqual(byTask.body.task.main_agent, { name: "spec-closer", chosen_by: "task" });
    assert.deepEqual(byTask.body.task.steps.map((s) => s.agent), ["context-fetcher", "spec-closer", "spec-closer"]);
    const fetcher = reader(worker, "context-fetcher", await issueToken(worker, "context-fetcher"));
    for (let i = 0; i < 2; i += 1) await fetcher.work();
    for (const client of [planner, planner, closer, closer]) {
      const step = await client.work();
      assert.equal(step.agent, client.name);
    }
    for (const { body } of [byWorkflow, byTask]) assert.equal((await taskOf(worker, body.task.id)).status, "succeeded");
  });

  test("a team's own agent_selection routes each task to its specialists, and the skipped step names the rules", async () => {
    const team = {};
    for (const [name, capabilities] of [["api-engineer", ["api", "endpoints", "sql"]], ["ui-engineer", ["components", "pages", "css"]], ["team-reviewer", ["review"]]]) {
      team[name] = await newAgent(name, capabilities);
    }
    const posted = await postFile(TEAM_FLOW, "team-flow");
    assert.equal(posted.status, 201, await posted.clone().text());
    const workflow = await posted.json();
    assert.deepEqual(
      workflow.routing.map((r) => [r.line, r.agents, r.others]),
      [[13, ["api-engineer"], false], [15, ["ui-engineer"], false], [17, [], true]],
    );

    const backendOnly = await submit(worker, { title: "Add an endpoint that lists unpaid invoices", workflow: "team-flow" });
    assert.equal(backendOnly.response.status, 201, JSON.stringify(backendOnly.body));
    const task = backendOnly.body.task;
    assert.deepEqual(task.agents, ["api-engineer"]);
    assert.equal(task.analysis.routing.by, "agent_selection");
    const fired = task.analysis.routing.rules.filter((r) => r.fired);
    assert.deepEqual(fired.map((r) => [r.line, r.on]), [[13, "evidence"]]);
    assert.match(fired[0].evidence[0], /endpoint in the title is an API endpoint, which the condition names/);
    assert.equal(task.steps.find((s) => s.key === "2b").status, "pending", "decided when its group is ready");
    assert.deepEqual(task.steps.map((s) => s.agent), ["main-agent", "api-engineer", "ui-engineer", "team-reviewer"]);

    const main = reader(worker, "main-agent", await issueToken(worker, "main-agent"));
    const analysisStep = await main.work();
    assert.equal(analysisStep.task.agents[0], "api-engineer", "the brief carries the routing");
    const ui = (await taskOf(worker, task.id)).steps.find((s) => s.key === "2b");
    assert.equal(ui.status, "skipped");
    assert.equal(ui.skip_reason, "analysis found a backend task, and no routing rule that fired assigns ui-engineer");
    await team["api-engineer"].work();
    await team["team-reviewer"].work();
    const done = await taskOf(worker, task.id);
    assert.equal(done.status, "succeeded");
    assert.deepEqual(done.steps.map((s) => [s.key, s.status]), [["1", "succeeded"], ["2a", "succeeded"], ["2b", "skipped"], ["3", "succeeded"]]);

    const both = await submit(worker, { title: "An endpoint for invoices and a page that lists them", workflow: "team-flow" });
    assert.deepEqual(both.body.task.agents, ["api-engineer", "ui-engineer"]);
    assert.deepEqual(both.body.task.analysis.routing.rules.filter((r) => r.fired).map((r) => r.line), [13, 15, 17]);
    assert.ok(both.body.task.steps.every((s) => s.status !== "skipped"));
    await worker.admin(`/v1/tasks/${both.body.task.id}/cancel`, { method: "POST" });
  });

  test("the analysis step's report.selection decides which optional steps run, and the history says who decided", async () => {
    const main = agent(worker, "main-agent", await issueToken(worker, "main-agent"));
    const { body } = await submit(worker, { title: "Add an endpoint that lists unpaid invoices", workflow: "team-flow" });
    assert.deepEqual(body.task.agents, ["api-engineer"], "submission's analysis sees only the API");
    const step = await leaseWithin(main);
    assert.equal(step.task_id, body.task.id);
    // The analysis agent reads the rules it was given and the code: the invoices page does not
    // exist yet, so the rule about pages applies as well as the one about endpoints.
    const selection = step.instructions.blocks.flatMap((b) => b.children ?? []).find((b) => b.tag === "agent_selection");
    const found = ["endpoints", "pages"];
    const agents = [];
    for (let i = 0; i + 1 < selection.directives.length; i += 2) {
      const [condition, assign] = [selection.directives[i].value, selection.directives[i + 1].value];
      if (found.some((word) => condition.includes(word)) && /^[a-z-]+$/.test(assign)) agents.push(assign);
    }
    assert.deepEqual(agents, ["api-engineer", "ui-engineer"]);
    const report = { notes: "read the routes", selection: { agents, task_type: "full-stack", reason: "the invoices page does not exist yet" } };
    assert.equal((await main.complete(step, { outcome: "succeeded", report })).status, 200);

    const task = await taskOf(worker, body.task.id);
    assert.deepEqual(task.steps.map((s) => [s.key, s.status]).slice(1, 3), [["2a", "queued"], ["2b", "queued"]]);
    assert.deepEqual(task.selection, { step: "1", agents, task_type: "full-stack", reason: "the invoices page does not exist yet" });
    const events = await eventsOf(worker, task.id);
    assert.equal(events.filter((e) => e.kind === "task.selection_reported").length, 1);
    assert.deepEqual(
      events.filter((e) => e.kind === "step.routed").map((e) => [e.data.key, e.data.kept, e.data.decided_by, e.data.reason]),
      [
        ["2a", true, "analysis_step", "the analysis step (step 1) selected api-engineer, ui-engineer: the invoices page does not exist yet"],
        ["2b", true, "analysis_step", "the analysis step (step 1) selected api-engineer, ui-engineer: the invoices page does not exist yet"],
      ],
    );
    await worker.admin(`/v1/tasks/${task.id}/cancel`, { method: "POST" });
  });

  test("a selection naming an unknown agent, of the wrong shape or from another step is a 422 that changes nothing", async () => {
    const main = agent(worker, "main-agent", await issueToken(worker, "main-agent"));
    const { body } = await submit(worker, { title: "An endpoint for invoices and a page that lists them", workflow: "team-flow" });
    const step = await leaseWithin(main);
    assert.equal(step.task_id, body.task.id);
    const before = await taskOf(worker, body.task.id);
    const eventsBefore = (await eventsOf(worker, body.task.id)).length;
    const cases = [
      [{ agents: ["ghost-engineer"] }, "report.selection.agents[0]", /ghost-engineer is not an agent this workflow routes \(api-engineer, ui-engineer\)/],
      [{ agents: ["team-reviewer"] }, "report.selection.agents[0]", /team-reviewer is not an agent this workflow routes/],
      [{ agents: "api-engineer" }, "report.selection.agents", /a list of agent names/],
      [["api-engineer"], "report.selection", /must be an object/],
      [{ agents: [], who: "me" }, "report.selection.who", /not a selection field/],
    ];
    for (const [selection, field, message] of cases) {
      const response = await main.complete(step, { outcome: "succeeded", report: { selection } });
      assert.equal(response.status, 422, JSON.stringify(selection));
      const error = (await response.json()).error;
      assert.equal(error.details[0].field, field, JSON.stringify(error));
      assert.match(error.details[0].message, message);
    }
    assert.deepEqual(await taskOf(worker, body.task.id), before);
    assert.equal((await eventsOf(worker, body.task.id)).length, eventsBefore);
    assert.equal((await main.complete(step, { outcome: "succeeded", report: { selection: { agents: ["api-engineer"] } } })).status, 200);
    const engineer = agent(worker, "api-engineer", await issueToken(worker, "api-engineer"));
    const api = await leaseWithin(engineer);
    assert.equal(api.task_id, body.task.id);
    const other = await engineer.complete(api, { outcome: "succeeded", report: { selection: { agents: [] } } });
    assert.equal(other.status, 422);
    assert.deepEqual((await other.json()).error.details, [
      { field: "report.selection", message: "only the analysis step may report a selection (step 1)" },
    ]);
    await worker.admin(`/v1/tasks/${body.task.id}/cancel`, { method: "POST" });
  });

  test("POST /v1/analyze routes by the workflow the request names, the default one otherwise", async () => {
    const ask = async (body) => {
      const response = await json("POST", "/v1/analyze", body);
      assert.equal(response.status, 200, await response.clone().text());
      return response.json();
    };
    const title = "Add an endpoint that lists unpaid invoices";
    assert.deepEqual((await ask({ title, workflow: "team-flow" })).agents, ["api-engineer"]);
    const seed = await ask({ title });
    assert.deepEqual(seed.agents, ["cloudflare-specialist"]);
    assert.deepEqual(seed.routing.rules.map((r) => r.line), [39, 41, 43]);
    const missing = await json("POST", "/v1/analyze", { title, workflow: "no-such-flow" });
    assert.equal(missing.status, 422);
    assert.deepEqual((await missing.json()).error.details, [{ field: "workflow", message: "no workflow no-such-flow" }]);
  });

  test("a rule without an ASSIGN, or assigning an agent no step names, is refused at its line and nothing is stored", async () => {
    const cases = [
      [TEAM_FLOW.replace("ASSIGN: ui-engineer", "ASSIGN: python-specialist"), 15, "ASSIGN: python-specialist is an agent no step of this workflow names"],
      [TEAM_FLOW.replace("      ASSIGN: api-engineer\n", ""), 13, "IF task involves API endpoints or the database: is followed by no ASSIGN"],
      [TEAM_FLOW.replace("ASSIGN: api-engineer", "ASSIGN: whoever is free"), 13, "ASSIGN: whoever is free names no agent; write agent names, or \"both specialists\" for the agents of the other rules"],
    ];
    for (const [text, line, message] of cases) {
      const response = await postFile(text, "broken-team-flow");
      assert.equal(response.status, 422);
      const error = (await response.json()).error;
      assert.equal(error.code, "invalid_workflow");
      assert.deepEqual(error.details, [{ field: "routing", line, message }]);
    }
    assert.equal((await worker.admin("/v1/workflows/broken-team-flow")).status, 404);
    const posted = await json("POST", "/v1/workflows", {
      name: "json-team-flow",
      steps: [{ key: "1", name: "api", agent: "api-engineer", optional: true }],
      routing: [{ condition: "task involves APIs", assign: "ghost-engineer" }],
    });
    assert.equal(posted.status, 422);
    assert.deepEqual((await posted.json()).error.details, [
      { field: "routing[0]", message: "ASSIGN: ghost-engineer is an agent no step of this workflow names" },
    ]);
    assert.equal((await worker.admin("/v1/workflows/json-team-flow")).status, 404);
  });

  test("rules files are posted and versioned, and a flight check attaches them to the steps, pinned at submission", async () => {
    const first = await postFile(teamRules("v1"), "team-rules");
    assert.equal(first.status, 201, await first.clone().text());
    const stored = await first.json();
    assert.deepEqual([stored.version, stored.steps, stored.title], [1, [], "Team Rules"]);
    assert.match(stored.rules, /^# Team Rules\n\n- Work only on your own step\./);
    assert.equal((await (await postFile(teamRules("v2"), "team-rules")).json()).version, 2);
    const closing = await postFile("# Closing\n\n- Say which steps did what they were asked.\n", "team-closing");
    assert.equal(closing.status, 201);
    assert.equal((await postFile(RULED_FLOW, "ruled-flow")).status, 201);

    const { body } = await submit(worker, { title: "Add an audit log", workflow: "ruled-flow" });
    assert.equal(body.task.status, "running", JSON.stringify(body));
    assert.equal((await postFile(teamRules("v3"), "team-rules")).status, 201, "a newer version after submission");
    const fetcher = reader(worker, "context-fetcher", await issueToken(worker, "context-fetcher"));
    const main = reader(worker, "main-agent", await issueToken(worker, "main-agent"));
    const look = await fetcher.work();
    assert.deepEqual(look.instructions.rules.map((r) => [r.check, r.name, r.version]), [["pre_flight", "team-rules", 2]]);
    const build = await main.work();
    assert.deepEqual(
      build.instructions.rules.map((r) => [r.check, r.name, r.version]),
      [["pre_flight", "team-rules", 2], ["post_flight", "team-closing", 1]],
    );
    assert.match(build.inputs["1"].report.notes, / signed-v2$/, "step 1's agent followed the pinned rules");
    assert.equal((await taskOf(worker, body.task.id)).status, "succeeded");
    const created = (await eventsOf(worker, body.task.id)).find((e) => e.kind === "task.created");
    assert.deepEqual(created.data.rules, [
      { check: "pre_flight", name: "team-rules", version: 2 },
      { check: "post_flight", name: "team-closing", version: 1 },
    ]);

    const seed = await submit(worker, { title: "Add a D1 table" });
    const seedStep = await leaseWithin(fetcher);
    assert.equal(seedStep.task_id, seed.body.task.id);
    assert.deepEqual(seedStep.instructions.rules.map((r) => r.name), ["pre-flight"], "the defaults ship their own rules files");
    await worker.admin(`/v1/tasks/${seed.body.task.id}/cancel`, { method: "POST" });
  });

  test("each submission takes the rules files its workflow version executes at their latest versions, though the isolate knew an older version's", async () => {
    const rulesOf = async (workflow) => {
      const { body } = await submit(worker, { title: "Which rules", workflow });
      assert.equal(body.task?.status, "running", JSON.stringify(body));
      const created = (await eventsOf(worker, body.task.id)).find((e) => e.kind === "task.created");
      assert.equal((await worker.admin(`/v1/tasks/${body.task.id}/cancel`, { method: "POST" })).status, 200);
      return created.data.rules.map((r) => `${r.check} ${r.name} v${r.version}`);
    };
    assert.equal((await postFile(RULED_FLOW, "swap-flow")).status, 201);
    const closing = async () => (await worker.admin("/v1/workflows/team-closing")).json();
    const closingAt = (await closing()).version;
    const teamAt = (await (await worker.admin("/v1/workflows/team-rules")).json()).version;
    assert.deepEqual(await rulesOf("swap-flow"), [`pre_flight team-rules v${teamAt}`, `post_flight team-closing v${closingAt}`]);
    // A new version executing another file: the names the isolate learned are of the old one.
    const swapped = RULED_FLOW.replace("meta/team-rules.md", "meta/team-closing.md");
    assert.equal((await postFile(swapped, "swap-flow")).status, 201);
    assert.deepEqual(await rulesOf("swap-flow"), [`pre_flight team-closing v${closingAt}`, `post_flight team-closing v${closingAt}`]);
    // A newer rules file under the same version of the workflow is read with the next task.
    assert.equal((await postFile("# Closing\n\n- Say what is left to do.\n", "team-closing")).status, 201);
    assert.deepEqual(await rulesOf("swap-flow"), [`pre_flight team-closing v${closingAt + 1}`, `post_flight team-closing v${closingAt + 1}`]);
  });

  test("an EXECUTE of a file not posted or not a rules file, or a task on a rules file, is refused and stores nothing", async () => {
    const missing = await postFile(RULED_FLOW.replace("team-closing.md", "nobody-wrote-this.md"), "unruled-flow");
    assert.equal(missing.status, 422);
    assert.deepEqual((await missing.json()).error.details, [
      {
        field: "post_flight",
        line: 28,
        message:
          "EXECUTE: @.agent-os/instructions/meta/nobody-wrote-this.md addresses nobody-wrote-this, which is not posted; post that file first, as nobody-wrote-this (POST /v1/workflows?name=nobody-wrote-this)",
      },
    ]);
    const steps = await postFile(RULED_FLOW.replace("team-rules.md", "spec-flow.md"), "unruled-flow");
    assert.equal(steps.status, 422);
    assert.match((await steps.json()).error.details[0].message, /addresses spec-flow, a workflow with steps; a flight check runs rules files/);
    assert.equal((await worker.admin("/v1/workflows/unruled-flow")).status, 404);
    const onRules = await submit(worker, { title: "Run the rules", workflow: "team-rules" });
    assert.equal(onRules.response.status, 422);
    assert.match(onRules.body.error.details[0].message, /team-rules is a rules file: it has no steps to run/);
  });

  test("conditions on earlier steps' reports and outcomes skip or keep steps with their evidence; prose ones go to the agent", async () => {
    const creator = await newAgent("file-creator", ["files"]);
    const posted = await postFile(GATED_FLOW, "gated-flow");
    assert.equal(posted.status, 201, await posted.clone().text());
    const { warnings, steps } = await posted.json();
    assert.deepEqual(warnings.map((w) => [w.field, w.line]), [["steps[3].conditions", 36]]);
    assert.match(warnings[0].message, /does not evaluate the condition "the notes already exist in the current context"/);
    assert.deepEqual(steps[1].conditions[0].check, { step: "1", is: "reported", field: "database_changes" });

    const fetcherClient = agent(worker, "context-fetcher", await issueToken(worker, "context-fetcher"));
    // Step 1's agent does what its instructions ask: it reports the tables the task adds.
    const look = async () => {
      const step = await leaseWithin(fetcherClient);
      const field = /Report `([a-z_]+)`/.exec(step.instructions.text)[1];
      const tables = /\btable\b/i.test(step.task.title) ? ["comments"] : [];
      assert.equal((await fetcherClient.complete(step, { outcome: "succeeded", report: { [field]: tables } })).status, 200);
      return step.task_id;
    };
    const withTable = (await submit(worker, { title: "Add a comments table", workflow: "gated-flow" })).body.task;
    assert.equal(await look(), withTable.id);
    const schema = await creator.work();
    assert.equal(schema.key, "2");
    assert.equal((await creator.work()).key, "3");
    const notes = await creator.work();
    assert.deepEqual(notes.instructions.conditions, [
      { text: "the notes already exist in the current context", when: "skip_if", evaluated_by: "agent" },
    ]);
    assert.equal((await taskOf(worker, withTable.id)).status, "succeeded");

    const without = (await submit(worker, { title: "Rename the settings button", workflow: "gated-flow" })).body.task;
    assert.equal(await look(), without.id);
    assert.equal((await creator.work()).key, "4", "steps 2 and 3 were skipped");
    const done = await taskOf(worker, without.id);
    assert.equal(done.status, "succeeded");
    assert.deepEqual(done.steps.map((s) => [s.key, s.status]), [["1", "succeeded"], ["2", "skipped"], ["3", "skipped"], ["4", "succeeded"]]);
    assert.equal(done.steps[1].skip_reason, 'the condition "step 1 reported database_changes" does not hold: step 1\'s report has no database_changes');
    assert.equal(done.steps[2].skip_reason, 'the condition "step 2 succeeded" does not hold: step 2 is skipped');
    const evaluated = (await eventsOf(worker, without.id)).filter((e) => e.kind === "step.condition");
    assert.deepEqual(evaluated.map((e) => [e.data.key, e.data.holds, e.data.evidence]), [
      ["2", false, "step 1's report has no database_changes"],
      ["3", false, "step 2 is skipped"],
    ]);
  });

  test("a condition on a step that does not come before is refused at its line and nothing is stored", async () => {
    const response = await postFile(GATED_FLOW.replace('condition="step 2 succeeded"', 'condition="step 4 succeeded"'), "misgated-flow");
    assert.equal(response.status, 422);
    assert.deepEqual((await response.json()).error.details, [
      { field: "steps[2].conditions", line: 28, message: 'step 3: the condition "step 4 succeeded" refers to step 4, which does not come before it' },
    ]);
    assert.equal((await worker.admin("/v1/workflows/misgated-flow")).status, 404);
  });

  test("a main agent that does not exist is refused at submission and warned of at posting, changing nothing", async () => {
    const flow = SPEC_FLOW.replace("description: Write a spec for a feature", "main_agent: nobody-yet");
    const posted = await postFile(flow, "orphan-spec-flow");
    assert.equal(posted.status, 201);
    const warnings = (await posted.json()).warnings;
    assert.deepEqual(warnings.map((w) => w.field), ["main_agent"]);
    assert.match(warnings[0].message, /nobody-yet \(the workflow's main_agent\).*not registered yet/);
    const tasksBefore = (await (await worker.admin("/v1/tasks?limit=100")).json()).tasks.length;
    const refused = await submit(worker, { title: "Spec it", workflow: "orphan-spec-flow" });
    assert.equal(refused.response.status, 422);
    assert.deepEqual(refused.body.error.details, [
      {
        field: "workflow",
        message: "the main agent nobody-yet (the workflow's main_agent) does steps 2, 3, which name no subagent, and is not registered",
      },
    ]);
    const byTask = await submit(worker, { title: "Spec it", workflow: "spec-flow", main_agent: "ghost-writer" });
    assert.equal(byTask.response.status, 422);
    assert.equal(byTask.body.error.details[0].field, "main_agent");
    const badName = await submit(worker, { title: "Spec it", workflow: "spec-flow", main_agent: "Ghost Writer" });
    assert.equal(badName.response.status, 422);
    assert.equal(badName.body.error.details[0].field, "main_agent");
    const badFile = await postFile(SPEC_FLOW.replace("description: Write a spec for a feature", "main_agent: Not An Agent"), "bad-main");
    assert.equal(badFile.status, 422);
    assert.equal((await badFile.json()).error.details[0].field, "main_agent");
    assert.equal((await worker.admin("/v1/workflows/bad-main")).status, 404);
    assert.equal((await (await worker.admin("/v1/tasks?limit=100")).json()).tasks.length, tasksBefore);
  });

  test("a step that EXECUTEs a posted file runs it as a child run nested under it, pinned, and done when its steps are", async () => {
    const early = await postFile(FEATURE_FLOW, "feature-flow");
    assert.equal(early.status, 422);
    assert.deepEqual((await early.json()).error.details, [
      {
        field: "steps[1].execute",
        line: 23,
        message:
          "EXECUTE: @.agent-os/instructions/core/build-task.md: build-task is not posted; post that file first, as build-task (POST /v1/workflows?name=build-task)",
      },
    ]);
    assert.equal((await worker.admin("/v1/workflows/feature-flow")).status, 404, "nothing is stored");
    assert.equal((await postFile(buildTask("v1"), "build-task")).status, 201);
    const posted = await postFile(FEATURE_FLOW, "feature-flow");
    assert.equal(posted.status, 201, await posted.clone().text());
    assert.deepEqual((await posted.json()).steps[1].execute, {
      path: ".agent-os/instructions/core/build-task.md",
      line: 23,
      each: "parent_task listed in Step 1",
    });

    const { body } = await submit(worker, { title: "Add CSV export to the reports page", workflow: "feature-flow" });
    assert.equal(body.task.status, "running", JSON.stringify(body));
    assert.deepEqual(
      body.task.steps.map((s) => [s.key, s.runner, s.agent, s.parent]),
      [
        ["1", "agent", "context-fetcher", null],
        ["2", "child_run", null, null],
        ["2.1", "agent", "main-agent", "2"],
        ["2.2", "agent", "test-runner", "2"],
        ["3", "agent", "project-manager", null],
        ["4", "builtin", null, null],
      ],
    );
    assert.deepEqual(body.task.steps[1].child_run, {
      workflow: "build-task",
      version: 1,
      each: "parent_task listed in Step 1",
      items_from: "1",
      items: null,
      steps: ["2.1", "2.2"],
    });
    assert.equal((await postFile(buildTask("v2"), "build-task")).status, 201, "a newer version after submission");

    const fetcher = reader(worker, "context-fetcher", await issueToken(worker, "context-fetcher"));
    const main = reader(worker, "main-agent", await issueToken(worker, "main-agent"));
    const tester = reader(worker, "test-runner", await issueToken(worker, "test-runner"));
    const manager = reader(worker, "project-manager", await issueToken(worker, "project-manager"));
    assert.equal((await fetcher.work()).key, "1");
    assert.equal((await taskOf(worker, body.task.id)).steps[1].status, "running");
    const understand = await main.work();
    assert.equal(understand.key, "2.1");
    assert.deepEqual(
      [understand.workflow.name, understand.workflow.version, understand.instructions.text],
      ["build-task", 1, "Read the parent task. Write `docs/understanding-v1.md`."],
      "the child run is pinned at the version of the submission",
    );
    assert.deepEqual(understand.instructions.child_run.step.name, "task_execution_loop");
    const verify = await tester.work();
    assert.equal(verify.key, "2.2");
    assert.match(verify.inputs["2.1"].report.notes, /within step 2 \(build-task v1\) for each parent_task listed in Step 1/);
    const recap = await manager.work();
    assert.equal(recap.key, "3");
    assert.deepEqual(Object.keys(recap.inputs["2"].child_run), ["2.1", "2.2"], "the child run's reports are the parent step's");
    assert.match(recap.inputs["2"].child_run["2.2"].report.notes, /test-runner did "Step 2: Verify"/);

    const task = await eventually(async () => {
      const now = await taskOf(worker, body.task.id);
      return now.status === "succeeded" ? now : null;
    });
    assert.deepEqual(task.steps.map((s) => s.status), ["succeeded", "succeeded", "succeeded", "succeeded", "succeeded", "succeeded"]);
    const events = await eventsOf(worker, task.id);
    const started = events.find((e) => e.kind === "step.child_run_started");
    assert.deepEqual([started.data.key, started.data.child_run.workflow, started.data.steps], ["2", "build-task", 2]);
    const queued = events.filter((e) => e.kind === "step.queued").map((e) => [e.data.key, e.data.parent ?? null]);
    assert.deepEqual(queued, [["1", null], ["2.1", "2"], ["2.2", "2"], ["3", null], ["4", null]]);
    const summary = await (await worker.admin(`/v1/tasks/${task.id}/summary`)).text();
    assert.match(
      summary,
      /Child runs:\n- step 2 \(task_execution_loop\) ran build-task v1, succeeded:\n  - step 2\.1 \(task_understanding\) succeeded, by main-agent\n  - step 2\.2 \(task_test_verification\) succeeded, by test-runner\n/,
    );
  });

  test("a FOR each loop runs its child run once per item the step it names listed, one item after the other", async () => {
    const found = ["1. CSV endpoint", { number: 2, title: "Export button" }];
    const { body } = await submit(worker, { title: "Add CSV export to the invoices page", workflow: "feature-flow" });
    assert.equal(body.task.status, "running", JSON.stringify(body));
    const fetcher = reader(worker, "context-fetcher", await issueToken(worker, "context-fetcher"), { found });
    const main = reader(worker, "main-agent", await issueToken(worker, "main-agent"));
    const tester = reader(worker, "test-runner", await issueToken(worker, "test-runner"));
    const manager = reader(worker, "project-manager", await issueToken(worker, "project-manager"));
    const listing = await fetcher.work();
    assert.deepEqual(listing.report_contract.items, { for_step: "2", each: "parent_task listed in Step 1", workflow: "build-task" });
    let task = await taskOf(worker, body.task.id);
    assert.deepEqual(
      task.steps.map((s) => [s.key, s.parent, s.status, s.depends_on]),
      [
        ["1", null, "succeeded", []],
        ["2", null, "running", ["1"]],
        ["2.1", "2", "queued", []],
        ["2.2", "2", "pending", ["2.1"]],
        ["3", null, "pending", ["2"]],
        ["4", null, "pending", ["3"]],
        ["2#2.1", "2", "pending", ["2.1", "2.2"]],
        ["2#2.2", "2", "pending", ["2#2.1", "2.1", "2.2"]],
      ],
    );
    assert.deepEqual([task.steps[1].child_run.items, task.steps[1].child_run.steps], [2, ["2.1", "2.2", "2#2.1", "2#2.2"]]);
    const seen = [];
    for (const who of [main, tester, main, tester]) {
      const step = await who.work();
      seen.push([step.key, step.instructions.loop.number, step.instructions.loop.item, step.workflow.step.key]);
    }
    assert.deepEqual(seen, [
      ["2.1", 1, found[0], "2.1"],
      ["2.2", 1, found[0], "2.2"],
      ["2#2.1", 2, found[1], "2#2.1"],
      ["2#2.2", 2, found[1], "2#2.2"],
    ]);
    const recap = await manager.work();
    // Inputs are keyed by step key, in key order.
    assert.deepEqual(Object.keys(recap.inputs["2"].child_run), ["2#2.1", "2#2.2", "2.1", "2.2"]);
    assert.match(recap.inputs["2"].child_run["2#2.2"].report.notes, /for item 2 of 2: \{"number":2,"title":"Export button"\}/);
    task = await eventually(async () => {
      const now = await taskOf(worker, body.task.id);
      return now.status === "succeeded" ? now : null;
    });
    const events = await eventsOf(worker, task.id);
    const listed = events.find((e) => e.kind === "step.loop_items");
    assert.deepEqual([listed.data.key, listed.data.from, listed.data.items], ["2", "1", 2]);
    const summary = await (await worker.admin(`/v1/tasks/${task.id}/summary`)).text();
    assert.match(summary, /- step 2#2\.2 \(task_test_verification\) succeeded, by test-runner\n/);
  });

  test("loop items of the wrong shape are a 422 that changes nothing, and an empty list skips the loop", async () => {
    const { body } = await submit(worker, { title: "Add CSV export to the orders page", workflow: "feature-flow" });
    const fetcher = agent(worker, "context-fetcher", await issueToken(worker, "context-fetcher"));
    const step = await leaseWithin(fetcher);
    assert.equal(step.key, "1");
    const before = await taskOf(worker, body.task.id);
    for (const [items, message] of [
      ["1, 2 and 3", /must be a list/],
      [Array.from({ length: 17 }, (_, i) => `task ${i}`), /at most 16 items/],
      [["x".repeat(3000)], /item 0 is larger than 2048 bytes/],
    ]) {
      const refused = await fetcher.complete(step, { outcome: "succeeded", report: { notes: "listed", items } });
      assert.equal(refused.status, 422);
      const error = (await refused.json()).error;
      assert.equal(error.details[0].field, "report.items");
      assert.match(error.details[0].message, message);
    }
    assert.deepEqual(await taskOf(worker, body.task.id), before, "nothing changed");
    const empty = await fetcher.complete(step, { outcome: "succeeded", report: { notes: "nothing left", items: [] } });
    assert.equal(empty.status, 200, await empty.clone().text());
    const task = await taskOf(worker, body.task.id);
    assert.deepEqual(task.steps.slice(1, 5).map((s) => [s.key, s.status]), [["2", "skipped"], ["2.1", "skipped"], ["2.2", "skipped"], ["3", "queued"]]);
    assert.equal(task.steps[1].skip_reason, "step 1 reported no items for this step's loop");
    await worker.admin(`/v1/tasks/${body.task.id}/cancel`, { method: "POST" });
  });

  test("a dead step of a child run fails the step that runs it, and retrying that step retries the child run", async () => {
    const { body } = await submit(worker, { title: "Add PDF export to the reports page", workflow: "feature-flow" });
    const fetcher = reader(worker, "context-fetcher", await issueToken(worker, "context-fetcher"));
    const main = reader(worker, "main-agent", await issueToken(worker, "main-agent"));
    const tester = agent(worker, "test-runner", await issueToken(worker, "test-runner"));
    await fetcher.work();
    assert.equal((await main.work()).key, "2.1");
    const failing = await leaseWithin(tester);
    assert.equal(failing.key, "2.2");
    assert.equal((await tester.complete(failing, { outcome: "failed", error: "3 tests fail" })).status, 200);
    let task = await taskOf(worker, body.task.id);
    assert.equal(task.status, "failed");
    assert.deepEqual(task.steps.slice(1, 4).map((s) => [s.key, s.status]), [["2", "dead"], ["2.1", "succeeded"], ["2.2", "dead"]]);
    assert.match(task.steps[1].error, /step 2\.2 of its child run is dead/);
    const retried = await worker.admin(`/v1/steps/${task.steps[1].id}/retry`, { method: "POST" });
    assert.equal(retried.status, 200, await retried.clone().text());
    task = await taskOf(worker, body.task.id);
    assert.deepEqual([task.status, task.steps[1].status, task.steps[3].status], ["running", "running", "queued"]);
    const again = await leaseWithin(tester);
    assert.equal(again.key, "2.2");
    assert.equal((await tester.complete(again, { outcome: "succeeded", report: { notes: "fixed" } })).status, 200);
    const after = await taskOf(worker, body.task.id);
    assert.equal(after.steps[1].status, "succeeded", JSON.stringify(after.steps.map((s) => [s.key, s.status])));
    await worker.admin(`/v1/tasks/${body.task.id}/cancel`, { method: "POST" });
  });

  test("an EXECUTE that makes a cycle, runs a rules file or names a subagent is refused at its line and stores nothing", async () => {
    const before = await (await worker.admin("/v1/workflows/build-task")).json();
    const cycle = await postFile(buildTask("v3", '<step number="3" name="again">\nEXECUTE: @.agent-os/instructions/core/feature-flow.md\n</step>\n'), "build-task");
    assert.equal(cycle.status, 422);
    assert.deepEqual((await cycle.json()).error.details, [
      {
        field: "steps[2].execute",
        line: 21,
        message: "EXECUTE: @.agent-os/instructions/core/feature-flow.md: this makes a cycle: build-task → feature-flow → build-task",
      },
    ]);
    assert.equal((await (await worker.admin("/v1/workflows/build-task")).json()).version, before.version, "no version was stored");
    const rules = await postFile(buildTask("v3", '<step number="3" name="rules">\nEXECUTE: @.agent-os/instructions/meta/pre-flight.md\n</step>\n'), "rules-runner");
    assert.equal(rules.status, 422);
    assert.match((await rules.json()).error.details[0].message, /pre-flight is a rules file, with no steps to run/);
    const named = await postFile(buildTask("v3", '<step number="3" subagent="test-runner" name="both">\nEXECUTE: @feature-flow.md\n</step>\n'), "both-runner");
    assert.equal(named.status, 422);
    assert.match((await named.json()).error.details[0].message, /EXECUTEs @feature-flow\.md and names a subagent/);
    for (const name of ["rules-runner", "both-runner"]) assert.equal((await worker.admin(`/v1/workflows/${name}`)).status, 404);
  });
});
