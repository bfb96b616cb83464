// One realistic run end to end: the default workflow takes a full-stack task on a small real
// repository (a SvelteKit page and a Worker route) with five switchyard-agent runners, each in
// its own clone. The two specialists run the real Claude Code against the scripted model
// (tests/helpers/model-server.mjs); the other three run shell stand-ins. Every one of them
// decides what to write from the task's title and description in the prompt it was sent, and
// fails without them. The summary, the metrics and the per-agent YAML must then describe
// exactly the changes made (checked against git), and the task's cost and turns add up.

import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { parse as parseYaml } from "yaml";
import { AGENT_BINARY, ROOT } from "../scripts/setup.mjs";
import { modelServer } from "./helpers/model-server.mjs";
import { issueToken, submit, taskOf } from "./helpers/agents.mjs";
import { git, workTree } from "./helpers/git.mjs";
import { eventually, startWorker } from "./helpers/worker.mjs";

const CLAUDE = join(ROOT, "node_modules", ".bin", "claude");
const claudeMissing = existsSync(CLAUDE) && spawnSync(CLAUDE, ["--version"]).status === 0 ? false : "Claude Code is not installed (node_modules/.bin/claude)";

const TASK = {
  title: "Add a password reset flow by email",
  description: "A user who forgot the password opens a reset page, asks for a link by email and sets a new password in a form.",
};

/** Shell that reads the task from the prompt file, or fails: what every stand-in starts with. */
const READ_TASK = [
  `title=$(sed -n 's/^## The task: //p' "$SWITCHYARD_PROMPT_FILE")`,
  `[ -n "$title" ] || { echo "no task title in the prompt" >&2; exit 9; }`,
  `desc=$(awk '/^## The task: /{getline; getline; print; exit}' "$SWITCHYARD_PROMPT_FILE")`,
  `[ -n "$desc" ] || { echo "no task description in the prompt" >&2; exit 8; }`,
  `slug=$(printf '%s' "$title" | tr 'A-Z' 'a-z' | tr -cs 'a-z0-9' '-' | sed 's/-$//')`,
].join("\n");

const STANDINS = {
  "context-fetcher": `${READ_TASK}
mkdir -p notes && printf '# Context for %s\\n\\n%s\\n' "$title" "$desc" > notes/context.md
echo '{"records": {"Task type and the evidence for it": ["full-stack: an email API and a page"]}}' > "$SWITCHYARD_REPORT_FILE"`,
  "project-manager": `${READ_TASK}
if [ "$SWITCHYARD_STEP_NAME" = "documentation_update" ]; then
  mkdir -p docs && printf '# %s\\n\\n%s\\n\\nSee src/routes/%s and src/worker/%s.ts.\\n' "$title" "$desc" "$slug" "$slug" > docs/$slug.md
  echo '{"notes": "documented"}' > "$SWITCHYARD_REPORT_FILE"
else
  # The specialists' reports reach this step with the feedback their contract asked for.
  grep -q '"Services configured"' "$SWITCHYARD_PROMPT_FILE" || { echo "no backend feedback in the inputs" >&2; exit 7; }
  grep -q '"Components created"' "$SWITCHYARD_PROMPT_FILE" || { echo "no frontend feedback in the inputs" >&2; exit 7; }
  echo '{"checklist": [{"item": "SvelteKit reaches the new API routes", "passed": true}], "integration_points": ["the page posts to /api/reset"]}' > "$SWITCHYARD_REPORT_FILE"
fi`,
  "test-runner": `${READ_TASK}
mkdir -p tests && printf 'import { test } from "vitest";\\ntest("%s", () => {});\\n' "$title" > tests/$slug.test.ts
echo '{"tests": {"unit": {"passed": 1, "failed": 0, "skipped": 0}}}' > "$SWITCHYARD_REPORT_FILE"`,
};

/** The change in `dir` since its first commit, as switchyard counts it. */
function realDiff(dir) {
  git(dir, "add", "-A");
  const status = git(dir, "diff", "--cached", "--name-status").trim().split("\n").filter(Boolean);
  const numstat = git(dir, "diff", "--cached", "--numstat").trim().split("\n").filter(Boolean).map((l) => l.split("\t"));
  return {
    files_created: status.filter((l) => l.startsWith("A")).map((l) => l.split("\t")[1]).sort(),
    files_modified: status.filter((l) => l.startsWith("M")).map((l) => l.split("\t")[1]).sort(),
    lines_added: numstat.reduce((n, [a]) => n + Number(a), 0),
    lines_removed: numstat.reduce((n, [, r]) => n + Number(r), 0),
  };
}

describe("a realistic run of the default workflow", { timeout: 900_000 }, () => {
  let worker;
  let model;
  let scratch;
  const runners = [];

  before(async () => {
    worker = await startWorker();
    scratch = mkdtempSync(join(tmpdir(), "switchyard-realistic-"));
    workTree(join(scratch, "origin"), {
      "src/routes/+page.svelte": "<h1>Accounts</h1>\n<a href=\"/login\">Sign in</a>\n",
      "src/worker/index.ts": "export default {\n  async fetch(request: Request, env: Env) {\n    return new Response(\"ok\");\n  },\n};\n",
      "wrangler.jsonc": '{ "name": "accounts", "main": "src/worker/index.ts" }\n',
    });

    // The specialists' model: reads who it is and what the task is from the prompt, makes the
    // backend or the frontend half, and fills in the feedback the prompt's report skeleton asks for.
    model = await modelServer((prompt) => {
      const agent = prompt.match(/for agent `([^`]+)`/)?.[1];
      const title = prompt.match(/^## The task: (.+)$/m)?.[1];
      const description = title && prompt.split(`## The task: ${title}\n\n`)[1]?.split("\n")[0];
      const skeleton = prompt.split("The report, with every field switchyard reads for this step:")[1]?.match(/```json\n([\s\S]*?)\n```/)?.[1];
      // The report file by the path the prompt names (Claude Code will not expand a variable).
      const reportFile = prompt.match(/as one JSON object to the file `([^`]+)`/)?.[1];
      if (!agent || !title || !description || !skeleton || !reportFile) return null;
      const slug = title.toLowerCase().replace(/[^a-z0-9]+/g, "-").replace(/-$/, "");
      const categories = Object.keys(JSON.parse(skeleton).feedback ?? {});
      let command;
      let made;
      if (agent === "cloudflare-specialist") {
        made = `src/worker/${slug}.ts`;
        // Shell redirections only: Claude Code asks approval for in-place edits such as sed -i.
        command = `printf '// ${description}\\nexport async function reset(request: Request, env: Env) {\\n  await env.DB.prepare("INSERT INTO resets (email) VALUES (?)").bind("x").run();\\n  return new Response("sent");\\n}\\n' > ${made} && printf 'export { reset } from "./${slug}";\\n' >> src/worker/index.ts`;
      } else if (agent === "sveltekit-specialist") {
        made = `src/routes/${slug}/+page.svelte`;
        command = `mkdir -p src/routes/${slug} && printf '<h1>${title}</h1>\\n<p>${description}</p>\\n<form method="POST" action="/api/reset"><input name="email" type="email" /><button>Send</button></form>\\n' > ${made}`;
      } else {
        return null;
      }
      const feedback = Object.fromEntries(categories.map((c) => [c, [`${made} (${c.toLowerCase()})`]]));
      const report = JSON.stringify({ feedback, notes: `made ${made}` });
      return { command: `${command} && printf '%s' '${report}' > ${reportFile}`, final: `Made ${made} for "${title}".` };
    });
  });
  after(async () => {
    for (const runner of runners) if (runner.exitCode === null) runner.kill("SIGKILL");
    model?.close();
    await worker?.stop();
    if (scratch) rmSync(scratch, { recursive: true, force: true });
  });

  function startRunner(name, token, steps, how) {
    const clone = join(scratch, name);
    spawnSync("git", ["clone", "-q", join(scratch, "origin"), clone]);
    const home = join(scratch, `${name}-home`);
    mkdirSync(home, { recursive: true });
    const args = ["run", "--url", worker.url, "--agent", name, "--token", token, "--workdir", clone, "--steps", String(steps), "--heartbeat-seconds", "2"];
    const child = spawn(AGENT_BINARY, how.tool ? [...args, "--tool", how.tool] : [...args, "--", "sh", "-c", how.script], {
      stdio: ["ignore", "pipe", "pipe"],
      env: {
        ...process.env,
        PATH: `${join(ROOT, "node_modules", ".bin")}:${process.env.PATH}`,
        HOME: home,
        ANTHROPIC_BASE_URL: model.url,
        ANTHROPIC_API_KEY: "sk-scripted",
        CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC: "1",
        DISABLE_AUTOUPDATER: "1",
      },
    });
    child.output = "";
    child.stdout.on("data", (c) => (child.output += c));
    child.stderr.on("data", (c) => (child.output += c));
    runners.push(child);
    return clone;
  }

  test("five runners, two of them real Claude Code, take a full-stack task to success and the records are the real diff", { skip: claudeMissing }, async () => {
    const tokens = {};
    for (const name of ["context-fetcher", "cloudflare-specialist", "sveltekit-specialist", "project-manager", "test-runner"]) {
      tokens[name] = await issueToken(worker, name);
    }
    const clones = {
      "context-fetcher": startRunner("context-fetcher", tokens["context-fetcher"], 1, { script: STANDINS["context-fetcher"] }),
      "cloudflare-specialist": startRunner("cloudflare-specialist", tokens["cloudflare-specialist"], 1, { tool: "claude" }),
      "sveltekit-specialist": startRunner("sveltekit-specialist", tokens["sveltekit-specialist"], 1, { tool: "claude" }),
      "project-manager": startRunner("project-manager", tokens["project-manager"], 2, { script: STANDINS["project-manager"] }),
      "test-runner": startRunner("test-runner", tokens["test-runner"], 1, { script: STANDINS["test-runner"] }),
    };
    const task = (await submit(worker, TASK)).body.task;
    assert.equal(task.analysis.task_type, "full-stack");
    const done = await eventually(async () => {
      const read = await taskOf(worker, task.id);
      return read.status !== "running" && read;
    }, { timeoutMs: 300_000, intervalMs: 500 });
    assert.equal(done?.status, "succeeded", runners.map((r) => r.output).join("\n---\n"));
    assert.deepEqual(model.state.refused, [], "every specialist prompt carried its task, agent and report skeleton");
    assert.ok(done.steps.every((s) => s.attempts.length <= 1), "nothing had to be retried");

    const metrics = await (await worker.admin(`/v1/tasks/${task.id}/metrics`)).json();
    const byAgent = Object.fromEntries(metrics.agents.map((m) => [m.agent, m]));
    const diffs = Object.fromEntries(Object.entries(clones).map(([name, clone]) => [name, realDiff(clone)]));
    for (const [name, diff] of Object.entries(diffs)) {
      const m = byAgent[name];
      assert.deepEqual(
        { files_created: m.files_created, files_modified: m.files_modified, lines_added: m.lines_added, lines_removed: m.lines_removed },
        { files_created: diff.files_created.length, files_modified: diff.files_modified.length, lines_added: diff.lines_added, lines_removed: diff.lines_removed },
        name,
      );
    }
    assert.deepEqual(diffs["cloudflare-specialist"].files_created, ["src/worker/add-a-password-reset-flow-by-email.ts"]);
    assert.deepEqual(diffs["cloudflare-specialist"].files_modified, ["src/worker/index.ts"]);
    assert.deepEqual(diffs["sveltekit-specialist"].files_created, ["src/routes/add-a-password-reset-flow-by-email/+page.svelte"]);
    assert.match(readFileSync(join(clones["sveltekit-specialist"], "src/routes/add-a-password-reset-flow-by-email/+page.svelte"), "utf8"), new RegExp(TASK.description));

    // Cost and turns: only the Claude Code steps reported any, and the task's total is their sum.
    const specialists = ["cloudflare-specialist", "sveltekit-specialist"].map((n) => byAgent[n]);
    for (const m of specialists) assert.ok(m.cost_usd > 0 && m.turns >= 2, JSON.stringify(m));
    for (const name of ["context-fetcher", "project-manager", "test-runner"]) assert.equal(byAgent[name].cost_usd, null, name);
    const sum = (field) => specialists.reduce((n, m) => n + m[field], 0);
    assert.ok(Math.abs(metrics.total.cost_usd - sum("cost_usd")) < 1e-9);
    assert.equal(metrics.total.turns, sum("turns"));

    // The per-agent YAML says the same.
    const yaml = parseYaml(await (await worker.admin(`/v1/tasks/${task.id}/metrics`, { headers: { accept: "application/yaml" } })).text());
    for (const [name, diff] of Object.entries(diffs)) {
      assert.equal(yaml[task.id][name].lines_added, diff.lines_added, name);
      assert.equal(yaml[task.id][name].files_created, diff.files_created.length, name);
    }
    assert.equal(yaml[task.id]["cloudflare-specialist"].cost_usd, byAgent["cloudflare-specialist"].cost_usd);

    // The summary names each agent's files as git has them (the feedback the contract asked the
    // specialists for reached step 3, whose stand-in checks it in its prompt).
    const summary = await (await worker.admin(`/v1/tasks/${task.id}/summary`, { headers: { accept: "application/json" } })).json();
    const work = Object.fromEntries(summary.work.map((w) => [w.agent, w]));
    for (const [name, diff] of Object.entries(diffs)) {
      assert.deepEqual([...work[name].files_created].sort(), diff.files_created, name);
      assert.deepEqual([...work[name].files_modified].sort(), diff.files_modified, name);
    }
    const markdown = await (await worker.admin(`/v1/tasks/${task.id}/summary`)).text();
    assert.match(markdown, /src\/worker\/add-a-password-reset-flow-by-email\.ts/);
    assert.match(markdown, /src\/routes\/add-a-password-reset-flow-by-email\/\+page\.svelte/);
  });
});
