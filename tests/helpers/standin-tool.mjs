#!/usr/bin/env node
// A stand-in for a coding CLI (claude, codex, gemini or aider: the name it is run under). It
// checks its arguments the way the real tool's documentation describes them and refuses
// anything else, reads the prompt where that tool reads it, decides what to write from the
// task's title and description in the prompt (and fails when they are missing), edits the work
// tree, and prints what the tool prints in its documented machine-readable format.
//
// The test sets:
//   STANDIN_EXPECT   text the prompt must contain besides the task (the step's instructions)
//   STANDIN_SYSTEM   the system prompt claude must be given with --append-system-prompt
//   STANDIN_TOOLS    the --allowedTools value claude must be given
//   STANDIN_MODEL    the model the tool must be given
//   STANDIN_MODE     "ok" (default), "error" (the tool's own failure), "garbage" (not its format)
//   STANDIN_MODE_FILE  a file holding the mode instead, so one runner can meet several
//   STANDIN_LOG      a file each run appends its arguments to, as JSON

import { appendFileSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { basename, join } from "node:path";

const tool = basename(process.argv[1]).replace(/\.m?js$/, "");
const args = process.argv.slice(2);
const env = process.env;
const mode = env.STANDIN_MODE_FILE ? readFileSync(env.STANDIN_MODE_FILE, "utf8").trim() : env.STANDIN_MODE ?? "ok";

function refuse(message, code = 2) {
  process.stderr.write(`${tool}: ${message}\n`);
  process.exit(code);
}

/** Parses `args` against `spec`: flag → "bool" or "value"; returns {flags, positional}. */
function parse(spec) {
  const flags = {};
  const positional = [];
  for (let i = 0; i < args.length; i += 1) {
    const arg = args[i];
    if (arg === "-" || !arg.startsWith("-")) {
      positional.push(arg);
      continue;
    }
    const kind = spec[arg];
    if (!kind) refuse(`error: unknown option '${arg}'`);
    if (kind === "bool") flags[arg] = true;
    else {
      if (i + 1 >= args.length) refuse(`error: option '${arg}' argument missing`);
      flags[arg] = args[++i];
    }
  }
  return { flags, positional };
}

function need(condition, message) {
  if (!condition) refuse(message);
}

async function stdin() {
  const chunks = [];
  for await (const chunk of process.stdin) chunks.push(chunk);
  return Buffer.concat(chunks).toString("utf8");
}

if (env.STANDIN_LOG) appendFileSync(env.STANDIN_LOG, `${JSON.stringify({ tool, args, cwd: process.cwd() })}\n`);

let prompt;
let cwd = process.cwd();
if (tool === "claude") {
  // https://code.claude.com/docs/en/cli-reference
  const { flags, positional } = parse({
    "-p": "bool", "--print": "bool", "--output-format": "value", "--verbose": "bool", "--permission-mode": "value",
    "--append-system-prompt": "value", "--allowedTools": "value", "--model": "value", "--max-turns": "value",
    "--max-budget-usd": "value", "--add-dir": "value",
  });
  need(flags["-p"] || flags["--print"], "this stand-in runs only in print mode (-p)");
  need(["text", "json", "stream-json"].includes(flags["--output-format"]), "--output-format must be text, json or stream-json");
  need(flags["--output-format"] !== "stream-json" || flags["--verbose"], "Error: When using --print, --output-format=stream-json requires --verbose");
  need(["acceptEdits", "bypassPermissions", "default", "dontAsk", "plan", "auto"].includes(flags["--permission-mode"] ?? "default"), "bad --permission-mode");
  need(positional.length === 0, "the prompt comes on stdin here");
  if (env.STANDIN_SYSTEM !== undefined) need(flags["--append-system-prompt"] === env.STANDIN_SYSTEM, `--append-system-prompt was ${JSON.stringify(flags["--append-system-prompt"])}`);
  if (env.STANDIN_TOOLS !== undefined) need(flags["--allowedTools"] === env.STANDIN_TOOLS, `--allowedTools was ${flags["--allowedTools"]}`);
  if (env.STANDIN_MODEL !== undefined) need(flags["--model"] === env.STANDIN_MODEL, `--model was ${flags["--model"]}`);
  prompt = await stdin();
} else if (tool === "codex") {
  // https://developers.openai.com/codex/noninteractive
  need(args[0] === "exec", "this stand-in runs only `codex exec`");
  args.shift();
  const { flags, positional } = parse({
    "--json": "bool", "--skip-git-repo-check": "bool", "--sandbox": "value", "-s": "value", "-C": "value", "--cd": "value",
    "-m": "value", "--model": "value", "--add-dir": "value",
  });
  need(flags["--json"], "--json is what makes events machine-readable");
  need(["read-only", "workspace-write", "danger-full-access"].includes(flags["--sandbox"] ?? flags["-s"]), "--sandbox must be read-only, workspace-write or danger-full-access");
  need(positional.length === 1 && positional[0] === "-", "the prompt is read from stdin with -");
  cwd = flags["-C"] ?? flags["--cd"] ?? cwd;
  if (env.STANDIN_MODEL !== undefined) need((flags["-m"] ?? flags["--model"]) === env.STANDIN_MODEL, "wrong -m");
  prompt = await stdin();
} else if (tool === "gemini") {
  // https://geminicli.com/docs/cli/headless
  const { flags, positional } = parse({
    "--prompt": "value", "-p": "value", "--output-format": "value", "-o": "value", "--yolo": "bool", "-y": "bool",
    "--skip-trust": "bool", "--model": "value", "-m": "value", "--include-directories": "value",
  });
  need(positional.length === 0, "headless mode takes the prompt with --prompt");
  need(["json", "stream-json", "text"].includes(flags["--output-format"] ?? flags["-o"]), "--output-format must be text, json or stream-json");
  need(flags["--skip-trust"], "Gemini CLI is not running in a trusted directory.");
  if (env.STANDIN_MODEL !== undefined) need((flags["--model"] ?? flags["-m"]) === env.STANDIN_MODEL, "wrong --model");
  // stdin comes first, then the --prompt text.
  prompt = `${await stdin()}\n\n${flags["--prompt"] ?? flags["-p"] ?? ""}`;
} else if (tool === "aider") {
  // https://aider.chat/docs/config/options.html
  const { flags } = parse({
    "--message-file": "value", "--yes-always": "bool", "--no-stream": "bool", "--no-pretty": "bool",
    "--no-auto-commits": "bool", "--no-check-update": "bool", "--no-analytics": "bool", "--no-show-model-warnings": "bool", "--no-gitignore": "bool",
    "--chat-history-file": "value", "--input-history-file": "value", "--model": "value",
  });
  need(flags["--message-file"], "scripting needs --message or --message-file");
  need(flags["--no-auto-commits"], "auto-commits would hide the change from the runner");
  prompt = readFileSync(flags["--message-file"], "utf8");
} else {
  refuse(`unknown stand-in ${tool}`);
}

// The task as the prompt states it: without it there is nothing to decide from.
const title = prompt.match(/^## The task: (.+)$/m)?.[1];
const description = title ? prompt.split(`## The task: ${title}\n\n`)[1]?.split("\n")[0] : undefined;
const missing = [];
if (!title) missing.push("the task's title");
if (!description) missing.push("the task's description");
if (env.STANDIN_EXPECT && !prompt.includes(env.STANDIN_EXPECT)) missing.push("the step's instructions");
const failing = mode === "error" || missing.length > 0;
const why = missing.length ? `the prompt lacks ${missing.join(", ")}` : "Reached maximum number of turns (1)";

if (!failing && mode !== "garbage") {
  const slug = title.toLowerCase().replace(/[^a-z0-9]+/g, "-").replace(/^-|-$/g, "");
  mkdirSync(join(cwd, "notes"), { recursive: true });
  writeFileSync(join(cwd, "notes", `${slug}.md`), `# ${title}\n\n${description}\n`);
}

const out = (value) => process.stdout.write(`${typeof value === "string" ? value : JSON.stringify(value)}\n`);
if (mode === "garbage") {
  out("Sure! Here is what I did:");
  out('{"type": "res');
  process.exit(0);
}
if (tool === "claude") {
  out({ type: "system", subtype: "init", cwd, session_id: "s-1", tools: ["Bash", "Edit", "Read"], model: "claude-sonnet-4-5" });
  out({ type: "assistant", message: { role: "assistant", content: [{ type: "tool_use", id: "t1", name: "Write", input: {} }], usage: { input_tokens: 100, output_tokens: 1 } } });
  out({ type: "user", message: { role: "user", content: [{ tool_use_id: "t1", type: "tool_result", content: "ok" }] } });
  if (failing) {
    out({ type: "result", subtype: "error_max_turns", is_error: true, num_turns: 2, errors: [why], duration_ms: 900, total_cost_usd: 0.004, usage: { input_tokens: 300, output_tokens: 20 } });
    process.exit(1);
  }
  out({ type: "assistant", message: { role: "assistant", content: [{ type: "text", text: `Wrote the notes for ${title}.` }] } });
  out({ type: "result", subtype: "success", is_error: false, num_turns: 3, result: `Wrote the notes for ${title}.`, duration_ms: 1200, duration_api_ms: 800, total_cost_usd: 0.0125, usage: { input_tokens: 1500, output_tokens: 120, cache_read_input_tokens: 0, cache_creation_input_tokens: 0 }, session_id: "s-1" });
} else if (tool === "codex") {
  out({ type: "thread.started", thread_id: "th-1" });
  out({ type: "turn.started" });
  if (failing) {
    out({ type: "error", message: why });
    out({ type: "turn.failed", error: { message: why } });
    process.exit(1);
  }
  out({ type: "item.completed", item: { id: "item_1", type: "file_change", changes: [{ path: "notes", kind: "add" }], status: "completed" } });
  out({ type: "item.completed", item: { id: "item_2", type: "agent_message", text: `Wrote the notes for ${title}.` } });
  out({ type: "turn.completed", usage: { input_tokens: 1400, cached_input_tokens: 0, output_tokens: 90 } });
} else if (tool === "gemini") {
  out({ type: "init", timestamp: new Date().toISOString(), session_id: "g-1", model: "gemini-2.5-flash" });
  if (failing) {
    out({ type: "result", timestamp: new Date().toISOString(), status: "error", error: { type: "unknown", message: why }, stats: { duration_ms: 0 } });
    process.exit(1);
  }
  out({ type: "tool_use", timestamp: new Date().toISOString(), tool_name: "write_file", tool_id: "w1", parameters: {} });
  out({ type: "tool_result", timestamp: new Date().toISOString(), tool_id: "w1", status: "success", output: "ok" });
  out({ type: "message", timestamp: new Date().toISOString(), role: "assistant", content: "Wrote the notes ", delta: true });
  out({ type: "message", timestamp: new Date().toISOString(), role: "assistant", content: `for ${title}.`, delta: true });
  out({ type: "result", timestamp: new Date().toISOString(), status: "success", stats: { total_tokens: 1300, input_tokens: 1200, output_tokens: 100, cached: 0, input: 1200, duration_ms: 700, tool_calls: 1 } });
} else if (tool === "aider") {
  out("Aider v0.86.2");
  out("Model: openai/stand-in with whole edit format");
  if (failing) {
    out(`litellm.BadRequestError: OpenAIException - ${why}`);
    process.exit(0);
  }
  out("Tokens: 950 sent, 80 received. Cost: $0.0031 message, $0.0031 session.");
  out("Applied edit to notes");
}
