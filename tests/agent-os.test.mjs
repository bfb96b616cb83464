// Instruction files in the shapes Agent OS itself uses, run to completion with simulated agents
// that read their step's instructions: steps without a subagent done by the main agent, a team
// whose `<agent_selection>` names specialists other than the seed's, and the refusals of each.

import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { agent, eventsOf, issueToken, leaseWithin, submit, taskOf } from "./helpers/agents.mjs";
import { startWorker } from "./helpers/worker.mjs";

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

/** Step agents for the tests: each reads its step's instructions and writes the file they name. */
function reader(worker, name, token) {
  const client = agent(worker, name, token);
  return {
    ...client,
    async work(timeoutMs = 15_000) {
      const step = await leaseWithin(client, timeoutMs);
      const named = /`([^`]+\.md)`/.exec(step.instructions.text);
      assert.ok(named, `step ${step.key}'s instructions name no file to write: ${step.instructions.text}`);
      const report = { files_created: [named[1]], notes: `${name} did "${step.instructions.title}"` };
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
});
