// switchyard-agent --tool claude|codex|gemini|aider against stand-ins named like the tools on
// PATH (tests/helpers/standin-tool.mjs). Each stand-in checks its flags as the tool documents
// them, reads the task and the step's instructions from the prompt it was given (and fails
// without them), edits the work tree and prints the tool's own output format. The runner's
// measured diff and the tool's reported cost and turns must arrive in the task's metrics; the
// tool's own error, and output that is not its format, fail the attempt with a clear line, and
// the runner goes on leasing.

import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { after, before, describe, test } from "node:test";
import { AGENT_BINARY } from "../scripts/setup.mjs";
import { submit, taskOf } from "./helpers/agents.mjs";
import { workTree as gitWorkTree } from "./helpers/git.mjs";
import { eventually, startWorker } from "./helpers/worker.mjs";

const HERE = dirname(fileURLToPath(import.meta.url));
const INSTRUCTIONS = "Write the notes the task asks for, one file per task, under notes/.";
const SYSTEM_PROMPT = "You keep project notes short and factual.";

const SUBAGENT = `---
name: notes-writer
description: Writes project notes
tools: Read, Write, Bash
model: sonnet
---

${SYSTEM_PROMPT}
`;

/** What each stand-in reports, as the adapters must read it into metrics. */
const REPORTED = {
  claude: { cost_usd: 0.0125, turns: 3, input_tokens: 1500, output_tokens: 120 },
  codex: { cost_usd: null, turns: 1, input_tokens: 1400, output_tokens: 90 },
  gemini: { cost_usd: null, turns: null, input_tokens: 1200, output_tokens: 100 },
  aider: { cost_usd: 0.0031, turns: null, input_tokens: 950, output_tokens: 80 },
};

describe("coding CLIs plugged in with --tool", { timeout: 600_000 }, () => {
  let worker;
  let scratch;
  let bin;
  let token;
  const runners = [];

  before(async () => {
    assert.ok(existsSync(AGENT_BINARY), `${AGENT_BINARY} is built by the set-up`);
    worker = await startWorker();
    scratch = mkdtempSync(join(tmpdir(), "switchyard-tools-"));
    bin = join(scratch, "bin");
    mkdirSync(bin);
    for (const tool of Object.keys(REPORTED)) {
      copyFileSync(join(HERE, "helpers", "standin-tool.mjs"), join(bin, tool));
      chmodSync(join(bin, tool), 0o755);
    }
    const imported = await worker.admin("/v1/agents/import", { method: "POST", headers: { "content-type": "text/markdown" }, body: SUBAGENT });
    assert.equal(imported.status, 201);
    token = (await imported.json()).token;
    const flow = await worker.admin("/v1/workflows", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ name: "notes-flow", steps: [{ key: "1", name: "write_notes", agent: "notes-writer", text: INSTRUCTIONS, attributes: { max_attempts: "1" } }] }),
    });
    assert.equal(flow.status, 201, await flow.clone().text());
  });
  after(async () => {
    for (const runner of runners) if (runner.exitCode === null) runner.kill("SIGKILL");
    await worker?.stop();
    if (scratch) rmSync(scratch, { recursive: true, force: true });
  });

  const workTree = (name) => gitWorkTree(join(scratch, name));

  /** Starts `switchyard-agent run --tool tool` for `steps` steps; resolves with its output when it exits. */
  function runner(tool, dir, steps, env, extra = []) {
    const args = ["run", "--url", worker.url, "--agent", "notes-writer", "--token", token, "--workdir", dir, "--steps", String(steps), "--tool", tool, ...extra];
    const child = spawn(AGENT_BINARY, args, {
      stdio: ["ignore", "pipe", "pipe"],
      env: { ...process.env, PATH: `${bin}:${process.env.PATH}`, STANDIN_EXPECT: INSTRUCTIONS, ...env },
    });
    runners.push(child);
    let output = "";
    child.stdout.on("data", (c) => (output += c));
    child.stderr.on("data", (c) => (output += c));
    return new Promise((resolve) => child.on("close", (code) => resolve({ code, output: () => output })));
  }

  async function finished(id) {
    return eventually(async () => {
      const read = await taskOf(worker, id);
      return read.status !== "running" && read;
    }, { timeoutMs: 60_000, intervalMs: 200 });
  }

  for (const tool of Object.keys(REPORTED)) {
    test(`${tool}: the prompt carries the task, the tool edits the tree, its figures reach the metrics`, async () => {
      const dir = workTree(`${tool}-ok`);
      const log = join(scratch, `${tool}.args.jsonl`);
      const env = { STANDIN_LOG: log, STANDIN_MODEL: tool === "claude" ? "sonnet" : `${tool}-model` };
      if (tool === "claude") Object.assign(env, { STANDIN_SYSTEM: SYSTEM_PROMPT, STANDIN_TOOLS: "Read,Write,Bash" });
      const done = runner(tool, dir, 1, env, tool === "claude" ? [] : ["--model", `${tool}-model`]);
      const task = (await submit(worker, { title: `Notes for ${tool}`, description: `Record how ${tool} was run from switchyard.`, workflow: "notes-flow" })).body.task;
      const read = await finished(task.id);
      const { code, output } = await done;
      assert.equal(read.status, "succeeded", output());
      assert.equal(code, 0);
      assert.equal(readFileSync(join(dir, "notes", `notes-for-${tool}.md`), "utf8"), `# Notes for ${tool}\n\nRecord how ${tool} was run from switchyard.\n`);
      const ran = readFileSync(log, "utf8").trim().split("\n").map((l) => JSON.parse(l));
      assert.equal(ran.length, 1);

      const metrics = await (await worker.admin(`/v1/tasks/${task.id}/metrics`)).json();
      const mine = metrics.agents.find((m) => m.agent === "notes-writer");
      assert.deepEqual(
        { files_created: mine.files_created, lines_added: mine.lines_added },
        { files_created: 1, lines_added: 3 },
        "the diff measured from git",
      );
      const reported = REPORTED[tool];
      assert.deepEqual(
        { cost_usd: mine.cost_usd, turns: mine.turns, input_tokens: mine.input_tokens, output_tokens: mine.output_tokens },
        reported,
        "what the tool reported, and nothing it did not",
      );
      assert.equal(metrics.total.cost_usd, reported.cost_usd);
      const text = await (await worker.admin(`/v1/tasks/${task.id}/logs/notes-writer`)).text();
      assert.match(text, new RegExp(`\\[switchyard-agent\\] ${tool}: succeeded`));
      assert.match(text, new RegExp(`(Wrote the notes for Notes for ${tool}|Applied edits to notes)`));
    });
  }

  for (const tool of Object.keys(REPORTED)) {
    test(`${tool}: the tool's own error and output not in its format fail the attempt, and the runner goes on`, async () => {
      const dir = workTree(`${tool}-bad`);
      const modeFile = join(scratch, `${tool}.mode`);
      writeFileSync(modeFile, "error");
      const done = runner(tool, dir, 3, { STANDIN_MODE_FILE: modeFile }, tool === "claude" ? ["--max-turns", "1"] : []);
      const failed = await finished((await submit(worker, { title: `Fail ${tool}`, description: "The tool will refuse.", workflow: "notes-flow" })).body.task.id);
      assert.equal(failed.status, "failed");
      const error = failed.steps[0].attempts[0].error;
      const expected = { claude: "Reached maximum number of turns (1)", codex: "Reached maximum number of turns (1)", gemini: "Reached maximum number of turns (1)", aider: "the model's API failed" }[tool];
      assert.ok(error.includes(expected), error);

      writeFileSync(modeFile, "garbage");
      const garbled = await finished((await submit(worker, { title: `Garble ${tool}`, description: "The tool will babble.", workflow: "notes-flow" })).body.task.id);
      assert.equal(garbled.status, "failed");
      const said = garbled.steps[0].attempts[0].error;
      assert.ok(/not the documented|without a model call/.test(said), said);

      writeFileSync(modeFile, "ok");
      const fine = await finished((await submit(worker, { title: `Recover ${tool}`, description: "The tool works again.", workflow: "notes-flow" })).body.task.id);
      assert.equal(fine.status, "succeeded", "the runner went on leasing after two failures");
      const { code } = await done;
      assert.equal(code, 0);
      if (tool === "claude") {
        const metrics = await (await worker.admin(`/v1/tasks/${failed.id}/metrics`)).json();
        assert.equal(metrics.agents[0].cost_usd, 0.004, "a failed attempt's spending is counted");
      }
    });
  }

  test("a tool that is not installed fails the attempt saying so, and flags a tool cannot honour are refused", async () => {
    const dir = workTree("missing");
    const done = runner("codex", dir, 1, { PATH: "/usr/bin:/bin" });
    const read = await finished((await submit(worker, { title: "No codex", description: "It is not installed.", workflow: "notes-flow" })).body.task.id);
    await done;
    assert.equal(read.status, "failed");
    assert.match(read.steps[0].attempts[0].error, /codex is not installed/);

    const refused = spawnSync(AGENT_BINARY, ["run", "--url", worker.url, "--agent", "notes-writer", "--token", token, "--tool", "gemini", "--max-budget-usd", "1"], { encoding: "utf8" });
    assert.notEqual(refused.status, 0);
    assert.match(refused.stderr, /--max-budget-usd is not supported/);
    const both = spawnSync(AGENT_BINARY, ["run", "--url", worker.url, "--agent", "notes-writer", "--token", token, "--tool", "claude", "--", "sh"], { encoding: "utf8" });
    assert.notEqual(both.status, 0);
    assert.match(both.stderr, /only for --tool command/);
  });
});
