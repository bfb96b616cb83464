// The real coding CLIs (installed from the npm registry as dev dependencies) run by
// switchyard-agent --tool, each against a scripted model on loopback that speaks its vendor's
// API (tests/helpers/model-server.mjs). The model reads the task and the step's instructions
// from the prompt the CLI sent it and answers with a call of the CLI's own shell tool; the CLI
// really runs it in the work tree, and its real output is what the adapter parses. The flags
// the adapter passed are checked against the CLI's own --help, so a flag a tool dropped fails.

import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { AGENT_BINARY, AIDER, ROOT } from "../scripts/setup.mjs";
import { modelServer, USAGE } from "./helpers/model-server.mjs";
import { submit, taskOf } from "./helpers/agents.mjs";
import { workTree as gitWorkTree } from "./helpers/git.mjs";
import { eventually, startWorker } from "./helpers/worker.mjs";

const INSTRUCTIONS = "Write the notes the task asks for, one file per task, under notes/.";
const SYSTEM_PROMPT = "You keep project notes short and factual.";
const SUBAGENT = `---
name: real-notes
description: Writes project notes with a real coding CLI
tools: Read, Write, Bash
model: sonnet
---

${SYSTEM_PROMPT}
`;

/** The installed CLI, or why it cannot run here. */
function installed(tool) {
  // The npm CLIs are dev dependencies; Aider is installed from PyPI by npm test's set-up.
  const path = tool === "aider" ? AIDER : join(ROOT, "node_modules", ".bin", tool);
  if (!existsSync(path)) return { skip: `${tool} is not installed (${path.slice(ROOT.length + 1)})` };
  const version = spawnSync(path, ["--version"], { encoding: "utf8", env: { ...process.env, HOME: tmpdir() } });
  if (version.status !== 0) return { skip: `${tool} --version failed: ${version.stderr || version.error}` };
  return { path, version: version.stdout.trim() };
}

const TOOLS = {
  claude: { help: ["--help"], choices: ["--output-format", "--permission-mode"] },
  codex: { help: ["exec", "--help"], choices: ["--sandbox"] },
  gemini: { help: ["--help"], choices: ["--output-format"] },
  aider: { help: ["--help"], choices: [] },
};

/** Every flag of `args` is in `help`, and so is the value of each flag with a fixed set of choices. */
function unknownFlags(args, help, choices) {
  const missing = [];
  args.forEach((arg, i) => {
    if (!/^--?[a-zA-Z]/.test(arg)) return;
    const flag = arg.split("=")[0];
    if (!new RegExp(`(^|[\\s,])${flag.replace(/[-]/g, "\\-")}([\\s,<=]|$)`, "m").test(help)) missing.push(flag);
    if (choices.includes(flag) && !help.includes(args[i + 1])) missing.push(`${flag} ${args[i + 1]}`);
  });
  return missing;
}

describe("the real coding CLIs against a scripted model", { timeout: 900_000 }, () => {
  let worker;
  let model;
  let scratch;
  let token;
  const children = [];
  const prompts = [];

  before(async () => {
    assert.ok(existsSync(AGENT_BINARY), `${AGENT_BINARY} is built by the set-up`);
    worker = await startWorker();
    scratch = mkdtempSync(join(tmpdir(), "switchyard-real-tools-"));
    // The model acts only on a prompt that says what the task is and what the step asks.
    model = await modelServer((prompt) => {
      prompts.push(prompt);
      const title = prompt.match(/^## The task: (.+)$/m)?.[1];
      const description = title && prompt.split(`## The task: ${title}\n\n`)[1]?.split("\n")[0];
      if (!title || !description || !prompt.includes(INSTRUCTIONS)) return null;
      const slug = title.toLowerCase().replace(/[^a-z0-9]+/g, "-").replace(/^-|-$/g, "");
      const text = `# ${title}\n\n${description}\n`;
      const escaped = text.replace(/'/g, "").replace(/\n/g, "\\n");
      return {
        command: `mkdir -p notes && printf '${escaped}' > notes/${slug}.md`,
        files: { [`notes/${slug}.md`]: text },
        final: `Wrote notes/${slug}.md for "${title}".`,
      };
    });
    const imported = await worker.admin("/v1/agents/import", { method: "POST", headers: { "content-type": "text/markdown" }, body: SUBAGENT });
    assert.equal(imported.status, 201);
    token = (await imported.json()).token;
    const flow = await worker.admin("/v1/workflows", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ name: "real-notes-flow", steps: [{ key: "1", name: "write_notes", agent: "real-notes", text: INSTRUCTIONS, attributes: { max_attempts: "1" } }] }),
    });
    assert.equal(flow.status, 201);
  });
  after(async () => {
    for (const child of children) if (child.exitCode === null) child.kill("SIGKILL");
    model?.close();
    await worker?.stop();
    if (scratch) rmSync(scratch, { recursive: true, force: true });
  });

  /** A directory with `tool` on PATH: a shim that records its arguments and runs the real CLI. */
  function shimmed(tool, real) {
    const bin = join(scratch, `${tool}-bin`);
    mkdirSync(bin, { recursive: true });
    const log = join(scratch, `${tool}.argv.jsonl`);
    const shim = join(bin, tool);
    writeFileSync(
      shim,
      `#!/usr/bin/env node
import { appendFileSync } from "node:fs";
import { spawn } from "node:child_process";
appendFileSync(${JSON.stringify(log)}, JSON.stringify(process.argv.slice(2)) + "\\n");
const child = spawn(${JSON.stringify(real)}, process.argv.slice(2), { stdio: "inherit" });
child.on("exit", (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
`,
    );
    chmodSync(shim, 0o755);
    return { bin, log };
  }

  /** Each CLI's own configuration pointing it at the scripted model, in a home of its own. */
  function environment(tool) {
    const home = join(scratch, `${tool}-home`);
    mkdirSync(home, { recursive: true });
    const quiet = { DISABLE_AUTOUPDATER: "1", NO_COLOR: "1" };
    if (tool === "claude") {
      return { ...quiet, HOME: home, ANTHROPIC_BASE_URL: model.url, ANTHROPIC_API_KEY: "sk-scripted", CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC: "1" };
    }
    if (tool === "codex") {
      writeFileSync(join(home, "config.toml"), `model_provider = "scripted"\n[model_providers.scripted]\nname = "Scripted"\nbase_url = "${model.url}/v1"\nenv_key = "SCRIPTED_API_KEY"\nwire_api = "responses"\n`);
      return { ...quiet, HOME: home, CODEX_HOME: home, SCRIPTED_API_KEY: "sk-scripted" };
    }
    if (tool === "aider") return { ...quiet, HOME: home, OPENAI_API_BASE: `${model.url}/v1`, OPENAI_API_KEY: "sk-scripted" };
    mkdirSync(join(home, ".gemini"), { recursive: true });
    writeFileSync(join(home, ".gemini", "settings.json"), JSON.stringify({ security: { auth: { selectedType: "gemini-api-key" } }, privacy: { usageStatisticsEnabled: false }, general: { disableAutoUpdate: true } }));
    return { ...quiet, HOME: home, GEMINI_API_KEY: "scripted", GOOGLE_GEMINI_BASE_URL: model.url };
  }

  const workTree = (name) => gitWorkTree(join(scratch, name));

  for (const [tool, { help, choices }] of Object.entries(TOOLS)) {
    const found = installed(tool);
    test(`${tool} (real) edits the work tree from the task in its prompt, and its own figures reach the metrics`, { skip: found.skip }, async () => {
      const { bin, log } = shimmed(tool, found.path);
      const env = environment(tool);
      const dir = workTree(tool);
      const models = { codex: "scripted", gemini: "gemini-2.5-flash", aider: "openai/scripted" };
      const extra = tool === "claude" ? [] : ["--model", models[tool]];
      const child = spawn(AGENT_BINARY, ["run", "--url", worker.url, "--agent", "real-notes", "--token", token, "--workdir", dir, "--steps", "1", "--tool", tool, ...extra], {
        stdio: ["ignore", "pipe", "pipe"],
        env: { ...process.env, ...env, PATH: `${bin}:${process.env.PATH}` },
      });
      children.push(child);
      let output = "";
      child.stdout.on("data", (c) => (output += c));
      child.stderr.on("data", (c) => (output += c));
      const requestsBefore = model.state.requests.length;
      const title = `Notes for the real ${tool}`;
      const task = (await submit(worker, { title, description: `Record how ${tool} ${found.version} ran from switchyard.`, workflow: "real-notes-flow" })).body.task;
      const done = await eventually(async () => {
        const read = await taskOf(worker, task.id);
        return read.status !== "running" && read;
      }, { timeoutMs: 240_000, intervalMs: 500 });
      await new Promise((resolve) => (child.exitCode === null ? child.on("close", resolve) : resolve()));
      const logText = await (await worker.admin(`/v1/tasks/${task.id}/logs/real-notes`)).text();
      assert.equal(done.status, "succeeded", `${output}\n${logText}`);
      assert.deepEqual(model.state.refused, [], "every prompt the CLI sent carried the task and the step");
      const slug = title.toLowerCase().replace(/[^a-z0-9]+/g, "-");
      assert.equal(readFileSync(join(dir, "notes", `${slug}.md`), "utf8"), `# ${title}\n\nRecord how ${tool} ${found.version} ran from switchyard.\n`);

      // The subagent's system prompt reached the model: as the system prompt where the CLI takes one.
      const calls = model.state.requests.slice(requestsBefore).filter((r) => r.tools.length > 0 || r.vendor === "chat");
      assert.ok(calls.length >= (tool === "aider" ? 1 : 2), "a tool call and a final answer (Aider: one answer with the edit)");
      const mine = prompts.at(-1);
      if (tool === "claude") {
        assert.ok(calls.every((c) => c.system.includes(SYSTEM_PROMPT)), "--append-system-prompt reached the model");
        assert.ok(!mine.includes(SYSTEM_PROMPT));
      } else {
        assert.ok(mine.includes(SYSTEM_PROMPT), "the system prompt is in the prompt for a CLI without a flag for it");
      }

      // The figures in the metrics are the ones the CLI printed, which the log line repeats.
      const figures = Object.fromEntries([...logText.matchAll(/(\w+)=([\d.]+)/g)].map(([, k, v]) => [k, Number(v)]));
      const metrics = (await (await worker.admin(`/v1/tasks/${task.id}/metrics`)).json()).agents[0];
      assert.equal(metrics.files_created, 1, logText);
      assert.equal(metrics.input_tokens, figures.input_tokens ?? null, logText);
      assert.equal(metrics.output_tokens, figures.output_tokens ?? null);
      assert.equal(metrics.turns, figures.turns ?? null);
      assert.equal(metrics.cost_usd, figures.cost_usd ?? null);
      if (tool === "aider") {
        // Aider prints 1,000 as "1.0k", which is rounded, so it is not reported; 50 is exact.
        assert.equal(metrics.input_tokens, null);
        assert.equal(metrics.output_tokens, USAGE.output);
      } else {
        assert.equal(metrics.input_tokens, calls.length * USAGE.input, "the tokens the scripted model charged, as the CLI summed them");
      }
      if (tool === "claude") assert.ok(metrics.cost_usd > 0 && metrics.turns >= 2);
      if (tool === "codex") assert.equal(metrics.turns, 1);
      if (tool === "gemini") assert.equal(metrics.cost_usd, null, "Gemini CLI reports no cost, so none is shown");

      // Every flag the adapter passed is one the installed CLI documents in its --help.
      const argv = readFileSync(log, "utf8").trim().split("\n").map((l) => JSON.parse(l)).at(-1);
      const helpText = spawnSync(found.path, help, { encoding: "utf8", env: { ...process.env, ...env } });
      assert.equal(helpText.status, 0, helpText.stderr);
      assert.deepEqual(unknownFlags(argv, helpText.stdout + helpText.stderr, choices), [], `${tool} ${argv.join(" ")}`);
    });
  }
});
