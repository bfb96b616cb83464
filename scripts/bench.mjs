// npm run bench: prints the figures switchyard is judged by. It measures, it does not assert:
// the machines are shared, so compare ratios within one run rather than absolute times.
//
// 1. Bundle size: the WebAssembly module and the JS glue, raw and gzip.
// 2. Cold start: a fresh runtime (workerd through Miniflare) answering its first request, and
//    `wrangler dev` from spawn to its first answer.
// 3. Latency and throughput on loopback: p50/p99 and requests/s for GET /health and the
//    authenticated GET /v1/whoami, at 1 and 16 concurrent clients, a bounded number of
//    requests each.
// 4. Workflows: parsing the default instruction file natively (cargo, release build), and posting
//    it to the local runtime (POST /v1/workflows, one client).
// 5. The engine: N full-stack tasks (N = 50 and 200) run through the default workflow by
//    simulated pull agents on loopback: tasks/s, step transitions/s, "step ready" to "leased"
//    p50/p99 (from the Worker's own step.leased events), "last dependency done" to "leased"
//    (the whole hand-over from one agent to the next), D1 round trips per transition and per
//    agent step (the Worker counts them; see GET /v1/system/counters), and D1 bytes per task.
// 6. Records: how long a built-in step takes to write a task's summary (read every report,
//    render, write R2) for a task of 7 and of 50 steps, and GET /v1/metrics/agents over 10,000
//    seeded step rows: latency, D1 queries per request and rows D1 read.
// 7. Abuse: with wrangler.jsonc's own rate limits, 200 requests/s of invalid tokens from one
//    address for as long as a full-stack task takes to run (bounded), while its agents work
//    from their own addresses: the share of the flood answered 429, and whether the task
//    finished.
// 8. switchyard-agent: the runner's overhead per step (lease to completion, from the Worker's
//    own events, with a no-op command in a git work tree), and steps/s for one runner and for
//    four runners of one agent working through a backlog of one-step tasks; the same for one
//    runner with each --tool adapter driving a no-op stand-in of its tool
//    (tests/helpers/standin-tool.mjs: parses its flags, reads the prompt, prints the tool's
//    format); and the bytes of a typical leased step (step 2a of a full-stack task) with the
//    brief the step carries and without it (the fields a step carried before).
// 10. Faults: completions and heartbeats answered 503 on a 16-step parallel group whose agents
//     heartbeat every second while they work, and how long the cron sweep (run back to back)
//     takes to recover 1,000 expired leases seeded over 1,000 tasks.
// 11. Analysis: the share of labelled tasks (tests/fixtures/analysis/) whose type POST
//     /v1/analyze gets right, per type, for the sets analysis is tuned on and for the held-back
//     sets it is never tuned on, and the p50 latency of the request.
// 12. Child runs: posting a file whose steps EXECUTE files three levels deep (each level looked
//     up, cycles and depth checked) against posting a file of as many steps without EXECUTE,
//     and submitting a task on it (its 13 steps planned from four pinned files) against a task
//     on the flat file, p50/p99 over a bounded number of requests, one client.
// 13. Against Cloudflare Workflows, when ../shared/peers is beside the repository (skipped
//     otherwise): the same flow written on Workflows (copied to a temporary folder, installed,
//     served by its own wrangler dev) and switchyard, each driven by the peers' own client
//     (drive.py: N tasks, the five agents played by one thread each) for N = 50 and 200, in
//     alternating runs, switchyard leasing both as the driver does by default (an empty lease
//     asked again 5 ms later) and long-polling (its --lease-query ?wait=5, as switchyard-agent
//     leases); agent steps/s, tasks/s and task p50, and switchyard's ratios to the peer. The
//     same driver also runs against scripts/ceiling-worker.js (the flow over memory, no work
//     done: what the harness itself carries, and each side's share of it) and against
//     scripts/bare-durable-worker.js (each change written to a Durable Object and nothing else).
//     Then one more drive of switchyard with the isolate's CPU profiler on: its busy time per
//     agent step and which switchyard functions (or the runtime's bindings) the time went to
//     (BENCH_PROFILE_FILE=x.cpuprofile also writes the whole profile there).
// 14. History: submit, lease, complete, task read and two task lists, p50 over a bounded number
//     of requests, on an empty database and on one seeded with 100,000 finished tasks (six
//     steps, six attempts and eight events each), and the ratio of the two.
// 15. Idle agents: one runner per default agent long-polling for a minute with no work, and the
//     D1 round trips that causes, per minute and per lease request.
// 16. Hand-over: tasks of the default workflow one at a time, one runner per agent waiting with
//     a long poll: ready→leased and last dependency done→leased, p50 and p99.
// 9. The example dashboard (examples/sveltekit): its client JavaScript, raw and gzip, and a
//    Lighthouse run (the system Chromium) of a finished task's detail page, signed in: the
//    performance and accessibility scores with Lighthouse's mobile and desktop settings.

import { spawn, spawnSync } from "node:child_process";
import { chmodSync, copyFileSync, cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import { convertV4MiniflareOptions, Miniflare } from "miniflare";
import { agent, eventsOf, issueToken, postAs, submit, taskOf, workTask } from "../tests/helpers/agents.mjs";
import { buildDashboard, CHROMIUM, CHROMIUM_FLAGS, DASHBOARD_DIR, startDashboard } from "../tests/helpers/dashboard.mjs";
import { ADMIN_TOKEN, answers, executeSql, freePort, QUIET_ENV, spawnGroup, startWorker, stopGroup } from "../tests/helpers/worker.mjs";
import { readWranglerConfig } from "./config.mjs";
import { AGENT_BINARY, ensureChromium, ROOT, setup } from "./setup.mjs";

/** Requests per latency configuration: enough for a stable p99 (≥ 20 samples above it),
 * few enough that the whole bench stays under a minute or two on two cores. */
const REQUESTS_PER_RUN = Number(process.env.BENCH_REQUESTS ?? 2000);
/** Fresh runtimes started for the cold-start figure; the median is reported. */
const COLD_STARTS = Number(process.env.BENCH_COLD_STARTS ?? 5);
/** Requests sent before measuring, so the isolate is warm and connections are open. */
const WARMUP_REQUESTS = 50;
/** Instruction files posted for the workflow figure; each one stores a new version in D1. */
const WORKFLOW_POSTS = Number(process.env.BENCH_WORKFLOW_POSTS ?? 200);
/** The instruction file parsed and posted: the project's own default workflow. */
const INSTRUCTIONS_PATH = join(ROOT, "workflows", "enhanced-multi-agent.md");
/** Task counts of the engine figure. */
const ENGINE_TASKS = (process.env.BENCH_ENGINE_TASKS ?? "50,200").split(",").map(Number);
/** Concurrent workers per agent in the engine figure, and the max_concurrency they get. */
const WORKERS_PER_AGENT = Number(process.env.BENCH_WORKERS ?? 8);
/** Tasks running at once in the engine figure (each has at most two steps ready at a time). */
const IN_FLIGHT = Number(process.env.BENCH_IN_FLIGHT ?? WORKERS_PER_AGENT);
/** The engine figure gives up on a run after this long (it is a bound, not an expectation). */
const ENGINE_RUN_LIMIT_MS = 15 * 60 * 1000;
/** Tasks run for each summary size; the median time per summary is reported. */
const SUMMARY_RUNS = Number(process.env.BENCH_SUMMARY_RUNS ?? 5);
/** Step sizes of the summary figure: the default workflow's size and a large workflow. */
const SUMMARY_SIZES = [7, 50];
/** The invalid-token flood of the abuse figure: requests per second, and its upper bound in time. */
const FLOOD_PER_SECOND = Number(process.env.BENCH_FLOOD_PER_SECOND ?? 200);
const FLOOD_LIMIT_MS = 120_000;
/** One-step tasks per runner figure, and the bound on one round. */
const RUNNER_TASKS = Number(process.env.BENCH_RUNNER_TASKS ?? 40);
const RUNNER_ROUND_LIMIT_MS = 3 * 60 * 1000;
/** Step rows seeded for the aggregate metrics figure, and requests timed against them. */
const METRIC_ROWS = Number(process.env.BENCH_METRIC_ROWS ?? 10_000);
const METRIC_REQUESTS = Number(process.env.BENCH_METRIC_REQUESTS ?? 50);
/** The heartbeat figure: tasks run, steps in the parallel group, and the heartbeat period. */
const FAN_TASKS = Number(process.env.BENCH_FAN_TASKS ?? 4);
const FAN_WIDTH = 16;
const FAN_HEARTBEAT_MS = 1000;
/** Expired leases seeded for the sweep figure, and the bound on sweeps run to recover them. */
const EXPIRED_LEASES = Number(process.env.BENCH_EXPIRED_LEASES ?? 1000);
const SWEEPS_MAX = 200;
const AGENTS = ["context-fetcher", "cloudflare-specialist", "sveltekit-specialist", "project-manager", "test-runner"];

function kib(bytes) {
  return `${(bytes / 1024).toFixed(1)} KiB`;
}

function percentile(sorted, p) {
  if (sorted.length === 0) return NaN;
  const index = Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1);
  return sorted[Math.max(0, index)];
}

function median(values) {
  return percentile([...values].sort((a, b) => a - b), 50);
}

function bundleSizes() {
  const files = [
    ["WebAssembly (build/index_bg.wasm)", join(ROOT, "build", "index_bg.wasm")],
    ["JS glue (build/index.js)", join(ROOT, "build", "index.js")],
    ["JS entry (js/entry.mjs)", join(ROOT, "js", "entry.mjs")],
  ];
  let rawTotal = 0;
  let gzipTotal = 0;
  console.log("\nBundle size");
  for (const [label, path] of files) {
    const raw = statSync(path).size;
    const gzip = gzipSync(readFileSync(path), { level: 9 }).length;
    rawTotal += raw;
    gzipTotal += gzip;
    console.log(`  ${label.padEnd(36)} ${kib(raw).padStart(11)} raw  ${kib(gzip).padStart(11)} gzip`);
  }
  console.log(`  ${"total".padEnd(36)} ${kib(rawTotal).padStart(11)} raw  ${kib(gzipTotal).padStart(11)} gzip`);
}

/** A runtime with the same bindings as wrangler.jsonc, migrated, started from nothing. */
async function miniflareColdStart() {
  const started = performance.now();
  // Miniflare 5 takes its options in a new shape; it converts the flat one used here.
  const mf = new Miniflare(
    convertV4MiniflareOptions({
      modulesRoot: ROOT,
      modules: [
        { type: "ESModule", path: join(ROOT, "js", "entry.mjs") },
        { type: "ESModule", path: join(ROOT, "build", "index.js") },
        { type: "CompiledWasm", path: join(ROOT, "build", "index_bg.wasm") },
      ],
      compatibilityDate: readWranglerConfig().compatibility_date,
      d1Databases: ["DB"],
      kvNamespaces: ["CACHE"],
      r2Buckets: ["ARTIFACTS"],
      queueProducers: { STEPS: { queueName: "switchyard-steps" }, STEPS_DLQ: { queueName: "switchyard-steps-dlq" } },
      bindings: { ADMIN_TOKEN: "bench-admin-token-0123456789" },
    }),
  );
  try {
    await mf.ready;
    const ready = performance.now();
    const db = await mf.getD1Database("DB");
    const migrations = readdirSync(join(ROOT, "migrations")).filter((f) => f.endsWith(".sql")).sort();
    const sql = migrations.map((f) => readFileSync(join(ROOT, "migrations", f), "utf8")).join(";\n");
    for (const statement of sql
      .replace(/--.*$/gm, "")
      .split(";")
      .map((s) => s.trim())
      .filter(Boolean)) {
      await db.prepare(statement).run();
    }
    const migrated = performance.now();
    const first = await mf.dispatchFetch("http://localhost/health");
    await first.arrayBuffer();
    const firstAnswered = performance.now();
    const second = await mf.dispatchFetch("http://localhost/health");
    await second.arrayBuffer();
    const secondAnswered = performance.now();
    if (first.status !== 200) throw new Error(`cold /health answered ${first.status}`);
    return {
      runtimeReadyMs: ready - started,
      firstRequestMs: firstAnswered - migrated,
      warmRequestMs: secondAnswered - firstAnswered,
    };
  } finally {
    await mf.dispose();
  }
}

async function coldStarts() {
  const runs = [];
  for (let i = 0; i < COLD_STARTS; i += 1) runs.push(await miniflareColdStart());
  console.log(`\nCold start (median of ${COLD_STARTS} fresh runtimes, Miniflare/workerd)`);
  console.log(`  runtime process ready                ${median(runs.map((r) => r.runtimeReadyMs)).toFixed(1).padStart(8)} ms`);
  console.log(`  first request (instantiate + answer) ${median(runs.map((r) => r.firstRequestMs)).toFixed(1).padStart(8)} ms`);
  console.log(`  second request (warm)                ${median(runs.map((r) => r.warmRequestMs)).toFixed(1).padStart(8)} ms`);
}

/** Sends `total` requests from `clients` concurrent loops; returns sorted latencies in ms. */
async function load(url, headers, clients, total) {
  const latencies = [];
  let issued = 0;
  let failures = 0;
  const client = async () => {
    while (issued < total) {
      issued += 1;
      const started = performance.now();
      const response = await fetch(url, { headers });
      await response.arrayBuffer();
      latencies.push(performance.now() - started);
      if (response.status !== 200) failures += 1;
    }
  };
  const started = performance.now();
  await Promise.all(Array.from({ length: clients }, client));
  const seconds = (performance.now() - started) / 1000;
  latencies.sort((a, b) => a - b);
  return { latencies, seconds, failures };
}

function nativeParse() {
  const result = spawnSync("cargo", ["run", "--quiet", "--release", "--example", "parse_seed", "--", INSTRUCTIONS_PATH], {
    cwd: ROOT,
    encoding: "utf8",
  });
  if (result.status !== 0) throw new Error(`parse_seed failed: ${result.stderr}`);
  const figures = Object.fromEntries(
    result.stdout
      .trim()
      .split(" ")
      .slice(1)
      .map((pair) => pair.split("=")),
  );
  console.log(
    `\nParse the default workflow natively (${figures.bytes} bytes, ${figures.iterations} runs)   p50 ${figures.p50_us} µs   p99 ${figures.p99_us} µs   mean ${figures.mean_us} µs`,
  );
}

async function postWorkflows(worker) {
  const instructions = readFileSync(INSTRUCTIONS_PATH);
  const latencies = [];
  for (let i = 0; i < WORKFLOW_POSTS; i += 1) {
    const started = performance.now();
    const response = await fetch(`${worker.url}/v1/workflows?name=bench-seed`, {
      method: "POST",
      headers: { authorization: `Bearer ${worker.adminToken}`, "content-type": "text/markdown" },
      body: instructions,
    });
    await response.arrayBuffer();
    if (response.status !== 201) throw new Error(`POST /v1/workflows answered ${response.status}`);
    latencies.push(performance.now() - started);
  }
  latencies.sort((a, b) => a - b);
  console.log(
    `\nPOST /v1/workflows with the default workflow (${WORKFLOW_POSTS} posts, 1 client)   p50 ${percentile(latencies, 50).toFixed(2)} ms   p99 ${percentile(latencies, 99).toFixed(2)} ms`,
  );
}

async function latency() {
  const spawned = performance.now();
  const worker = await startWorker({ pollMs: 10 });
  const answered = performance.now();
  try {
    console.log(`\nwrangler dev: spawn to first answer   ${(answered - spawned).toFixed(0).padStart(8)} ms (includes applying migrations)`);
    console.log(`\nLatency on loopback (${REQUESTS_PER_RUN} requests per row, wrangler dev)`);
    console.log(`  ${"route".padEnd(18)} ${"clients".padStart(7)} ${"p50 ms".padStart(8)} ${"p99 ms".padStart(8)} ${"req/s".padStart(8)} ${"non-200".padStart(8)}`);
    const routes = [
      ["GET /health", `${worker.url}/health`, {}],
      ["GET /v1/whoami", `${worker.url}/v1/whoami`, { authorization: `Bearer ${worker.adminToken}` }],
    ];
    for (const [label, url, headers] of routes) {
      await load(url, headers, 4, WARMUP_REQUESTS);
      for (const clients of [1, 16]) {
        const { latencies, seconds, failures } = await load(url, headers, clients, REQUESTS_PER_RUN);
        console.log(
          `  ${label.padEnd(18)} ${String(clients).padStart(7)} ${percentile(latencies, 50).toFixed(2).padStart(8)} ${percentile(latencies, 99).toFixed(2).padStart(8)} ${(latencies.length / seconds).toFixed(0).padStart(8)} ${String(failures).padStart(8)}`,
        );
      }
    }
    await postWorkflows(worker);
  } finally {
    await worker.stop();
  }
}

/** Runs `count` full-stack tasks to completion with simulated pull agents; returns figures. */
async function engineRun(worker, clients, count) {
  const counters = async () => (await worker.admin("/v1/system/counters")).json();
  const before = await counters();
  const started = performance.now();
  // Tasks are fed so that at most IN_FLIGHT run at once: with every task submitted up front,
  // "ready to leased" would measure how long steps queue behind the agents' capacity rather
  // than how quickly the engine hands a ready step to a waiting agent.
  const ids = [];
  const open = new Set();
  let submitted = 0;
  let restarts = 0;
  const deadline = Date.now() + ENGINE_RUN_LIMIT_MS;
  let stop = false;
  const feed = async () => {
    while (submitted < count && Date.now() < deadline) {
      if (open.size >= IN_FLIGHT) {
        await new Promise((resolve) => setTimeout(resolve, 20));
        continue;
      }
      const { response, body } = await submit(worker, { title: `Add a D1 comments API and a SvelteKit page, run ${submitted}` });
      if (response.status !== 201) throw new Error(`submit answered ${response.status}`);
      ids.push(body.task.id);
      open.add(body.task.id);
      submitted += 1;
    }
  };
  // `wrangler dev` now and then restarts its runtime under this load and answers 503 to the
  // requests in flight; an agent retries, as a real one would (a completion sent again with the
  // same body is answered as the first). The restarts are counted and printed.
  const work = async (client) => {
    while (!stop && Date.now() < deadline) {
      let step;
      try {
        step = await client.lease(1);
      } catch (error) {
        if (!/restarted/.test(error.message)) throw error;
        restarts += 1;
        continue;
      }
      if (!step) continue;
      for (let attempt = 0; ; attempt += 1) {
        const done = await client.complete(step, { report: { notes: "bench" } });
        if (done.status === 200) break;
        if (done.status !== 503 || attempt === 3) throw new Error(`complete answered ${done.status}: ${await done.text()}`);
        restarts += 1;
      }
    }
  };
  const watch = async () => {
    while ((submitted < count || open.size > 0) && Date.now() < deadline) {
      for (const id of [...open]) {
        const task = await taskOf(worker, id);
        if (task.status !== "running") open.delete(id);
      }
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
    stop = true;
  };
  const workers = clients.flatMap((client) => Array.from({ length: WORKERS_PER_AGENT }, () => work(client)));
  await Promise.all([feed(), watch(), ...workers]);
  const seconds = (performance.now() - started) / 1000;
  if (open.size > 0 || submitted < count) throw new Error(`${open.size} tasks did not finish within ${ENGINE_RUN_LIMIT_MS} ms`);
  const now = await counters();
  const trips = now.transition_round_trips - before.transition_round_trips;
  const counted = now.step_transitions - before.step_transitions;
  const allTrips = now.d1_round_trips - before.d1_round_trips;
  const messages = now.step_messages_sent - before.step_messages_sent;
  const leases = now.leases - before.leases;
  const leaseTrips = now.lease_round_trips - before.lease_round_trips;
  const kept = now.kept_state_decisions - before.kept_state_decisions;
  const keptStale = now.kept_state_stale - before.kept_state_stale;
  const byChange = {
    submissions: now.submission_round_trips - before.submission_round_trips,
    leases: leaseTrips,
    completions: now.completion_round_trips - before.completion_round_trips,
    "built-in steps": now.builtin_round_trips - before.builtin_round_trips,
  };
  byChange.other = trips - Object.values(byChange).reduce((sum, n) => sum + n, 0);
  const { waits, handOvers, transitions, agentSteps } = await handOverFigures(worker, ids);
  return { seconds, transitions, trips, counted, allTrips, messages, leases, leaseTrips, kept, keptStale, byChange, waits, handOvers, restarts, agentSteps };
}

/**
 * From the events of the tasks `ids`: each agent step's wait from ready to leased, each step's
 * hand-over from its last dependency settled to leased (the queue hop included), the step
 * events recorded and the agent steps leased (built-in steps are leased "via builtin").
 */
async function handOverFigures(worker, ids) {
  const waits = [];
  const handOvers = [];
  let transitions = 0;
  let agentSteps = 0;
  for (const id of ids) {
    const events = await eventsOf(worker, id);
    const { steps } = await taskOf(worker, id);
    const settled = new Map();
    for (const event of events) {
      if (event.kind.startsWith("step.")) transitions += 1;
      if (event.kind === "step.succeeded" || event.kind === "step.skipped") settled.set(event.step_id, Date.parse(event.created_at));
      if (event.kind === "step.leased" && event.data.via === "lease") {
        waits.push(event.data.ready_to_leased_ms);
        const step = steps.find((s) => s.id === event.step_id);
        const done = step.depends_on.map((key) => settled.get(steps.find((s) => s.key === key)?.id));
        if (done.length > 0 && done.every(Number.isFinite)) handOvers.push(Date.parse(event.created_at) - Math.max(...done));
      }
      if (event.kind === "step.leased" && event.data.via !== "builtin") agentSteps += 1;
    }
  }
  waits.sort((a, b) => a - b);
  handOvers.sort((a, b) => a - b);
  return { waits, handOvers, transitions, agentSteps };
}

async function engine() {
  console.log(
    "\nEngine (full-stack tasks through the default workflow, simulated pull agents on loopback, " +
      `${WORKERS_PER_AGENT} workers per agent, at most ${IN_FLIGHT} tasks in flight)`,
  );
  const worker = await startWorker({ pollMs: 50 });
  try {
    const clients = [];
    for (const name of AGENTS) {
      const current = (await (await worker.admin(`/v1/agents/${name}`)).json()).agent;
      const update = await worker.admin(`/v1/agents/${name}`, {
        method: "PUT",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({
          description: current.description,
          capabilities: current.capabilities,
          max_concurrency: WORKERS_PER_AGENT,
        }),
      });
      if (update.status !== 200) throw new Error(`configuring ${name} answered ${update.status}`);
      clients.push(agent(worker, name, await issueToken(worker, name)));
    }
    for (const count of ENGINE_TASKS) {
      const run = await engineRun(worker, clients, count).catch((error) => {
        console.error(worker.logs().split("\n").filter((l) => !/Request\.cf|ENOTFOUND|GetAddrInfo/.test(l)).slice(-40).join("\n"));
        throw error;
      });
      const { seconds, transitions, trips, counted, allTrips, messages, leases, leaseTrips, kept, keptStale, byChange, waits, handOvers, restarts, agentSteps } = run;
      console.log(
        `  N=${String(count).padEnd(4)} ${(count / seconds).toFixed(2).padStart(7)} tasks/s  ` +
          `${(transitions / seconds).toFixed(1).padStart(7)} step transitions/s  ` +
          `ready→leased p50 ${percentile(waits, 50)} ms p99 ${percentile(waits, 99)} ms`,
      );
      console.log(
        `          last dependency done→leased p50 ${percentile(handOvers, 50)} ms p99 ${percentile(handOvers, 99)} ms ` +
          `(${handOvers.length} steps with dependencies)`,
      );
      console.log(
        `          ${(trips / counted).toFixed(2)} D1 round trips per step transition (${trips} / ${counted}; ` +
          `${transitions} step events recorded); all D1 round trips incl. idle lease polls and reads: ${allTrips}`,
      );
      console.log(
        `          ${(trips / agentSteps).toFixed(2)} D1 round trips per agent step end to end (every transition's, ` +
          `built-in steps and fan-in included, over the ${agentSteps} steps agents leased)`,
      );
      const perTask = Object.entries(byChange).map(([change, n]) => `${change} ${(n / count).toFixed(2)}`);
      console.log(`          per task, by the change that made them: ${perTask.join(", ")} (lost races in each)`);
      console.log(`          ${(leaseTrips / leases).toFixed(2)} D1 round trips per lease written (${leaseTrips} / ${leases}; a read and a write, and lost races)`);
      console.log(
        `          ${kept} transitions decided on the isolate's kept state of their task instead of a read, ` +
          `${keptStale} of them behind the store (decided again, on the newer state the isolate kept or a fresh read)`,
      );
      console.log(`          ${(messages / count).toFixed(2)} step messages sent to the queue per task (${messages})`);
      if (restarts > 0) {
        console.log(
          `          ${restarts} requests answered 503 by a runtime restart and retried; ` +
            "the Worker's counters restart with it, so the round-trip figure of this row is not valid",
        );
      }
    }
    const bytes = d1Bytes(worker.stateDir);
    const tasks = ENGINE_TASKS.reduce((sum, n) => sum + n, 0);
    console.log(`  D1 after ${tasks} tasks: ${(bytes / 1024 / 1024).toFixed(1)} MiB, ${kib(bytes / tasks)} per task (the local SQLite files)`);
  } finally {
    await worker.stop();
  }
}

/** Bytes of the local D1 database files under a wrangler state directory. */
function d1Bytes(stateDir) {
  const dir = join(stateDir, "v3", "d1", "miniflare-D1DatabaseObject");
  if (!existsSync(dir)) return 0;
  return readdirSync(dir)
    .filter((name) => name !== "metadata.sqlite" && name.includes(".sqlite"))
    .reduce((sum, name) => sum + statSync(join(dir, name)).size, 0);
}

/** A report like a busy agent's: files, lines, records, the feedback the workflow asks for. */
function benchReport(i) {
  return {
    files_created: [`src/feature-${i}/index.ts`, `src/feature-${i}/view.svelte`],
    files_modified: ["wrangler.toml", `src/routes/${i}/+page.server.ts`],
    lines_added: 100 + i,
    lines_removed: i % 7,
    records: { "API endpoints created": [`GET /api/items/${i}`], "Components created": [`Item${i}`] },
    feedback: {
      "Services configured": [`D1 table items_${i}`],
      "Performance optimizations applied": ["cached list in KV"],
      "Security measures implemented": ["input validation"],
    },
    integration_points: [`GET /api/items/${i} feeds the page load`],
    tests: { unit: { passed: 10, failed: 0, skipped: 1 } },
    performance: { cold_start_ms: 10 + (i % 5) },
    notes: `Finished part ${i}.`,
  };
}

/** A workflow of `size` steps: size - 1 agent steps side by side, then the feedback aggregation. */
function summaryWorkflow(size) {
  const letters = (n) => (n < 26 ? String.fromCharCode(97 + n) : letters(Math.floor(n / 26) - 1) + letters(n % 26));
  const parts = Array.from({ length: size - 1 }, (_, i) => ({ key: `1${letters(i)}`, name: `part_${i}`, agent: "bench-writer", group: "parts" }));
  const aggregation = {
    key: "2",
    name: "feedback_aggregation",
    blocks: [
      {
        tag: "feedback_collection",
        children: [{ tag: "from_agent", attributes: { name: "bench-writer" }, items: ["Files created/modified", "Services configured", "Performance optimizations applied", "Security measures implemented"].map((text) => ({ text })) }],
      },
      {
        tag: "activity_log",
        directives: [{ keyword: "CONTENT", value: "", items: ["Task objectives", "Agents involved", "Work completed by each agent", "Integration points", "Performance metrics", "Outstanding issues"] }],
      },
    ],
  };
  return { name: `bench-summary-${size}`, steps: [...parts, aggregation] };
}

/** Runs one task of the workflow with `writers` pulling its steps; the Worker's own timing of
 * the summary it wrote. */
async function summaryRun(worker, writers, workflow) {
  const counters = async () => (await worker.admin("/v1/system/counters")).json();
  const before = await counters();
  const task = (await submit(worker, { title: "Benchmark the summary writer", workflow })).body.task;
  let done = 0;
  let busy = 0;
  await Promise.all(
    writers.map(async (writer) => {
      for (let round = 0; round < 500; round += 1) {
        const step = await writer.lease(1);
        if (!step) {
          if ((await taskOf(worker, task.id)).status !== "running") return;
          continue;
        }
        const report = benchReport(done++);
        let response = await writer.complete(step, { report });
        // 503 busy: the task's other completions won every race; the same completion is sent
        // again after Retry-After, as a real agent does (a completion is idempotent).
        for (let retry = 0; response.status === 503 && retry < 20; retry += 1) {
          busy += 1;
          await new Promise((resolve) => setTimeout(resolve, Number(response.headers.get("retry-after") ?? 1) * 1000));
          response = await writer.complete(step, { report });
        }
        if (response.status !== 200) throw new Error(`completing ${step.key} answered ${response.status}`);
      }
    }),
  );
  const after = await counters();
  const written = after.summaries_written - before.summaries_written;
  if (written !== 1) throw new Error(`expected one summary, the Worker wrote ${written}`);
  return { ms: after.summary_write_ms - before.summary_write_ms, busy, completions: done };
}

/** SQL that seeds `rows` finished steps over tasks of 50 steps, spread over the five agents. */
function seedSql(rows) {
  const lines = ["INSERT INTO workflows (id, name, version, definition, created_at) VALUES ('wfl_bench', 'bench-seeded', 1, '{}', 0);"];
  const tasks = Math.ceil(rows / 50);
  const start = Date.parse("2026-01-01T00:00:00Z");
  for (let t = 0; t < tasks; t += 1) {
    lines.push(`INSERT INTO tasks (id, workflow_id, title, status, created_at, updated_at) VALUES ('tsk_bench_${t}', 'wfl_bench', 'seeded', 'succeeded', ${start}, ${start});`);
  }
  for (let first = 0; first < rows; first += 500) {
    const values = [];
    for (let i = first; i < Math.min(rows, first + 500); i += 1) {
      const began = start + i * 60_000;
      const duration = 1_000 + ((i * 7919) % 600_000);
      const status = i % 10 === 0 ? "dead" : "succeeded";
      values.push(
        `('stp_bench_${i}', 'tsk_bench_${Math.floor(i / 50)}', '${(i % 50) + 1}', 'seeded', '${AGENTS[i % AGENTS.length]}', '${status}', ` +
          `${began}, ${began + duration}, ${i % 4}, ${i % 3}, ${i % 200}, ${i % 20})`,
      );
    }
    lines.push(
      "INSERT INTO steps (id, task_id, key, name, agent, status, started_at, finished_at, files_created, files_modified, lines_added, lines_removed) VALUES\n" +
        `${values.join(",\n")};`,
    );
  }
  return `${lines.join("\n")}\n`;
}

async function records() {
  console.log(`\nRecords (summary writing, median of ${SUMMARY_RUNS} tasks; agent metrics over ${METRIC_ROWS} seeded step rows)`);
  const worker = await startWorker();
  try {
    const created = await worker.admin("/v1/agents", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ name: "bench-writer", capabilities: ["writing"], max_concurrency: 64 }),
    });
    if (created.status !== 201) throw new Error(`creating the bench agent answered ${created.status}`);
    const { token } = await created.json();
    const writers = Array.from({ length: 8 }, () => agent(worker, "bench-writer", token));
    let busyAnswers = 0;
    let completions = 0;
    for (const size of SUMMARY_SIZES) {
      const posted = await worker.admin("/v1/workflows", {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(summaryWorkflow(size)),
      });
      if (posted.status !== 201) throw new Error(`posting the ${size}-step workflow answered ${posted.status}: ${await posted.text()}`);
      const times = [];
      for (let run = 0; run < SUMMARY_RUNS; run += 1) {
        const took = await summaryRun(worker, writers, `bench-summary-${size}`).catch((error) => {
          console.error(worker.logs().split("\n").filter((l) => !/Request\.cf|ENOTFOUND|GetAddrInfo/.test(l)).slice(-30).join("\n"));
          throw error;
        });
        times.push(took.ms);
        busyAnswers += took.busy;
        completions += took.completions;
      }
      console.log(`  summary of a ${String(size).padStart(2)}-step task: ${median(times)} ms (runs: ${times.join(", ")} ms)`);
    }
    console.log(
      `  ${busyAnswers} of ${completions} completions by 8 workers at once on one task were answered 503 busy ` +
        "(every retry lost to the task's other completions) and sent again",
    );
  } finally {
    await worker.stop();
  }

  const stateDir = mkdtempSync(join(tmpdir(), "switchyard-bench-"));
  const sqlFile = join(stateDir, "seed.sql");
  writeFileSync(sqlFile, seedSql(METRIC_ROWS));
  executeSql(stateDir, sqlFile);
  rmSync(sqlFile);
  const seeded = await startWorker({ stateDir });
  try {
    const counters = async () => (await seeded.admin("/v1/system/counters")).json();
    const path = "/v1/metrics/agents?since=2026-01-01T00%3A00%3A00Z";
    let answer;
    for (let i = 0; i < 5; i += 1) answer = await (await seeded.admin(path)).json();
    const steps = answer.agents.reduce((total, a) => total + a.steps, 0);
    const before = await counters();
    const times = [];
    for (let i = 0; i < METRIC_REQUESTS; i += 1) {
      const started = performance.now();
      const response = await seeded.admin(path);
      await response.arrayBuffer();
      times.push(performance.now() - started);
    }
    const after = await counters();
    times.sort((a, b) => a - b);
    console.log(
      `  GET /v1/metrics/agents over ${steps} step rows (${answer.agents.length} agents): ` +
        `p50 ${percentile(times, 50).toFixed(1)} ms p99 ${percentile(times, 99).toFixed(1)} ms, ` +
        `${((after.d1_round_trips - before.d1_round_trips) / METRIC_REQUESTS).toFixed(2)} D1 queries per request, ` +
        `${after.agent_metrics_rows_read} rows read by D1 per query`,
    );
  } finally {
    await seeded.stop();
  }
}

/** One simulated agent working from its own address: long-polls its steps and completes them
 * with a report until `done()` says to stop. */
async function agentFrom(worker, name, token, address, done) {
  const headers = { authorization: `Bearer ${token}`, "cf-connecting-ip": address, "content-type": "application/json" };
  let worked = 0;
  while (!done()) {
    const leased = await worker.fetch(`/v1/agents/${name}/lease?wait=1`, { method: "POST", headers });
    if (leased.status !== 200) {
      await leased.arrayBuffer();
      if (leased.status !== 204) throw new Error(`${name} lease answered ${leased.status}`);
      continue;
    }
    const { step } = await leased.json();
    const body = JSON.stringify({ lease_id: step.lease_id, outcome: "succeeded", report: benchReport(worked) });
    const completed = await worker.fetch(`/v1/steps/${step.id}/complete`, { method: "POST", headers, body });
    await completed.arrayBuffer();
    if (completed.status !== 200) throw new Error(`${name} complete answered ${completed.status}`);
    worked += 1;
  }
}

async function abuse() {
  console.log(`\nAbuse (wrangler.jsonc's rate limits; ${FLOOD_PER_SECOND} invalid-token requests/s from one address while a task runs)`);
  const worker = await startWorker({ rateLimits: null });
  try {
    const tokens = {};
    for (const name of AGENTS) tokens[name] = await issueToken(worker, name);
    const started = performance.now();
    const task = (await submit(worker, { title: "Add a D1-backed comments API and a SvelteKit page that lists the comments" })).body.task;
    let finished = null;
    const statuses = new Map();
    let sent = 0;
    const flood = (async () => {
      const interval = 1000 / FLOOD_PER_SECOND;
      const inFlight = new Set();
      while (finished === null && performance.now() - started < FLOOD_LIMIT_MS) {
        const due = started + sent * interval;
        const wait = due - performance.now();
        if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
        sent += 1;
        const request = fetch(`${worker.url}/v1/whoami`, {
          headers: { authorization: `Bearer sya_flood-${sent}`, "cf-connecting-ip": "203.0.113.66" },
        })
          .then(async (response) => {
            await response.arrayBuffer();
            statuses.set(response.status, (statuses.get(response.status) ?? 0) + 1);
          })
          .catch(() => statuses.set("error", (statuses.get("error") ?? 0) + 1))
          .finally(() => inFlight.delete(request));
        inFlight.add(request);
      }
      await Promise.all(inFlight);
    })();
    const watcher = (async () => {
      while (finished === null && performance.now() - started < FLOOD_LIMIT_MS) {
        const read = await taskOf(worker, task.id);
        if (read.status !== "running") finished = { status: read.status, seconds: (performance.now() - started) / 1000 };
        else await new Promise((resolve) => setTimeout(resolve, 500));
      }
    })();
    await Promise.all([
      watcher,
      flood,
      ...AGENTS.map((name, i) => agentFrom(worker, name, tokens[name], `198.51.100.${i + 1}`, () => finished !== null || performance.now() - started > FLOOD_LIMIT_MS)),
    ]);
    const limited = statuses.get(429) ?? 0;
    const share = sent > 0 ? ((100 * limited) / sent).toFixed(1) : "0";
    const others = [...statuses.entries()].filter(([status]) => status !== 429).map(([status, n]) => `${n} × ${status}`).join(", ");
    console.log(`  flood: ${sent} requests, ${limited} answered 429 (${share}%); the rest: ${others || "none"}`);
    console.log(
      finished
        ? `  the task ${finished.status} in ${finished.seconds.toFixed(1)} s under the flood`
        : `  the task did not finish within ${FLOOD_LIMIT_MS / 1000} s`,
    );
  } finally {
    await worker.stop();
  }
}

/**
 * Runs `runners` switchyard-agent processes of a new agent of their own (so no long poll left
 * over from an earlier round can take its steps) until `tasks` one-step tasks are done.
 */
let roundsRun = 0;

async function runnerRound(worker, workdir, runners, tasks, tool = "command", bin = null) {
  roundsRun += 1;
  const agentName = `runner-bench-${roundsRun}`;
  const created = await worker.admin("/v1/agents", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ name: agentName, capabilities: ["benching"], max_concurrency: runners }),
  });
  const { token } = await created.json();
  const flow = await worker.admin("/v1/workflows", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ name: `${agentName}-flow`, steps: [{ key: "1", name: "noop", agent: agentName }] }),
  });
  if (flow.status !== 201) throw new Error(`posting the runner workflow answered ${flow.status}`);
  const ids = [];
  for (let i = 0; i < tasks; i += 1) {
    ids.push((await submit(worker, { title: `Runner bench ${i}`, description: "Nothing to do.", workflow: `${agentName}-flow` })).body.task.id);
  }
  const started = performance.now();
  const how = tool === "command" ? ["--", "true"] : ["--tool", tool];
  const env = bin ? { ...process.env, PATH: `${bin}:${process.env.PATH}` } : process.env;
  const processes = Array.from({ length: runners }, () =>
    spawn(AGENT_BINARY, ["run", "--url", worker.url, "--agent", agentName, "--token", token, "--workdir", workdir, ...how], {
      stdio: ["ignore", "ignore", "pipe"],
      env,
    }),
  );
  let output = "";
  for (const child of processes) child.stderr.on("data", (chunk) => (output += chunk));
  try {
    const deadline = Date.now() + RUNNER_ROUND_LIMIT_MS;
    let remaining = [...ids];
    while (remaining.length > 0 && Date.now() < deadline) {
      const states = await Promise.all(remaining.map((id) => taskOf(worker, id)));
      remaining = remaining.filter((_, i) => states[i].status === "running");
      if (remaining.length > 0) await new Promise((resolve) => setTimeout(resolve, 100));
    }
    if (remaining.length > 0) {
      throw new Error(`${remaining.length} runner bench tasks did not finish; the runners said:\n${output.slice(-3000)}`);
    }
    const seconds = (performance.now() - started) / 1000;
    const overheads = [];
    for (const id of ids) {
      const events = await eventsOf(worker, id);
      const leased = events.find((e) => e.kind === "step.leased");
      const succeeded = events.find((e) => e.kind === "step.succeeded");
      if (leased && succeeded) overheads.push(Date.parse(succeeded.created_at) - Date.parse(leased.created_at));
    }
    overheads.sort((a, b) => a - b);
    return { seconds, overheads };
  } finally {
    for (const child of processes) child.kill("SIGKILL");
  }
}

/** The bytes of step 2a of a full-stack task as leased, with its brief and with only what a step carried before. */
async function payloadBytes(worker) {
  const task = (await submit(worker, { title: "Add a D1-backed comments API and a SvelteKit page that lists them", description: "Comments are stored in D1 and listed on a page.", requirements: ["pagination"], paths: ["src/routes/comments/+page.svelte"] })).body.task;
  const fetcher = agent(worker, "context-fetcher", await issueToken(worker, "context-fetcher"));
  const builder = agent(worker, "cloudflare-specialist", await issueToken(worker, "cloudflare-specialist"));
  for (let i = 0; i < 100; i += 1) {
    const first = await fetcher.lease(1);
    if (!first || first.task_id !== task.id) continue;
    await fetcher.complete(first, { outcome: "succeeded", report: { notes: "context gathered", files_modified: ["src/index.ts"] } });
    break;
  }
  for (let i = 0; i < 100; i += 1) {
    const step = await builder.lease(1);
    if (!step || step.task_id !== task.id) continue;
    const before = ["id", "task_id", "key", "name", "agent", "instructions", "inputs", "attempt", "attempts_max", "lease_id", "lease_expires_at", "messages", "timeout_ms"];
    const instructions = { ...step.instructions };
    const old = Object.fromEntries(before.map((k) => [k, k === "instructions" ? instructions : step[k]]));
    await builder.complete(step, { outcome: "succeeded" });
    return { before: JSON.stringify({ step: old }).length, after: JSON.stringify({ step }).length };
  }
  throw new Error("step 2a was never leased");
}

async function runnerBench() {
  console.log(`\nswitchyard-agent (no-op command in a git work tree, ${RUNNER_TASKS} one-step tasks per row)`);
  const worker = await startWorker();
  const workdir = mkdtempSync(join(tmpdir(), "switchyard-bench-runner-"));
  const bin = join(workdir, "..", `${workdir.split("/").pop()}-bin`);
  try {
    spawnSync("git", ["init", "-q", workdir]);
    writeFileSync(join(workdir, "README.md"), "bench\n");
    for (const runners of [1, 4]) {
      const { seconds, overheads } = await runnerRound(worker, workdir, runners, RUNNER_TASKS);
      console.log(
        `  ${runners} runner${runners > 1 ? "s" : " "}  ${(RUNNER_TASKS / seconds).toFixed(2).padStart(6)} steps/s   ` +
          `lease→complete p50 ${percentile(overheads, 50)} ms p99 ${percentile(overheads, 99)} ms`,
      );
    }
    mkdirSync(bin, { recursive: true });
    for (const tool of ["claude", "codex", "gemini", "aider"]) {
      copyFileSync(join(ROOT, "tests", "helpers", "standin-tool.mjs"), join(bin, tool));
      chmodSync(join(bin, tool), 0o755);
    }
    console.log(`  one runner per adapter, its tool a no-op stand-in (${RUNNER_TASKS} tasks each):`);
    for (const tool of ["command", "claude", "codex", "gemini", "aider"]) {
      const { seconds, overheads } = await runnerRound(worker, workdir, 1, RUNNER_TASKS, tool, bin);
      console.log(
        `    --tool ${tool.padEnd(8)} ${(RUNNER_TASKS / seconds).toFixed(2).padStart(6)} steps/s   ` +
          `lease→complete p50 ${percentile(overheads, 50)} ms p99 ${percentile(overheads, 99)} ms`,
      );
    }
    const bytes = await payloadBytes(worker);
    console.log(`  a leased step (2a of a full-stack task): ${bytes.after} bytes with its brief, ${bytes.before} bytes with what a step carried before (${(bytes.after / bytes.before).toFixed(2)}x)`);
  } finally {
    await worker.stop();
    rmSync(workdir, { recursive: true, force: true });
    rmSync(bin, { recursive: true, force: true });
  }
}

/** Every file under `dir`, recursively. */
function filesUnder(dir) {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) =>
    entry.isDirectory() ? filesUnder(join(dir, entry.name)) : [join(dir, entry.name)],
  );
}

/** A headless Chromium for Lighthouse, listening for DevTools on a loopback port. */
async function chromiumForLighthouse() {
  const port = await freePort();
  const profile = mkdtempSync(join(tmpdir(), "switchyard-bench-chromium-"));
  const child = spawn(
    CHROMIUM,
    [
      "--headless=new",
      `--remote-debugging-port=${port}`,
      "--remote-debugging-address=127.0.0.1",
      `--user-data-dir=${profile}`,
      ...CHROMIUM_FLAGS,
      "about:blank",
    ],
    { stdio: "ignore" },
  );
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    try {
      if ((await fetch(`http://127.0.0.1:${port}/json/version`)).ok) break;
    } catch {
      // Not listening yet.
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return {
    port,
    stop() {
      child.kill("SIGTERM");
      rmSync(profile, { recursive: true, force: true, maxRetries: 5 });
    },
  };
}

async function dashboardBench() {
  console.log("\nexample dashboard (examples/sveltekit, production build)");
  buildDashboard();
  const clientDir = join(DASHBOARD_DIR, ".svelte-kit", "output", "client");
  const scripts = filesUnder(clientDir).filter((file) => file.endsWith(".js"));
  const raw = scripts.reduce((sum, file) => sum + statSync(file).size, 0);
  const gzip = scripts.reduce((sum, file) => sum + gzipSync(readFileSync(file), { level: 9 }).length, 0);
  console.log(`  client JS, all routes: ${scripts.length} files, ${kib(raw)} raw, ${kib(gzip)} gzip`);

  const missing = ensureChromium();
  if (missing) return console.log(`  lighthouse: skipped, ${missing}`);
  const worker = await startWorker();
  const dashboard = await startDashboard({ switchyardUrl: worker.url });
  const chromium = await chromiumForLighthouse();
  try {
    const names = ["context-fetcher", "cloudflare-specialist", "sveltekit-specialist", "project-manager", "test-runner"];
    const clients = [];
    for (const name of names) clients.push(agent(worker, name, await issueToken(worker, name)));
    const { body } = await submit(worker, { title: "Add a D1-backed comments API and a SvelteKit page that lists the comments" });
    const done = await workTask(worker, body.task.id, clients);
    if (done.status !== "succeeded") throw new Error(`the dashboard's task ended ${done.status}`);
    const session = await (
      await worker.fetch("/v1/sessions", { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ token: ADMIN_TOKEN }) })
    ).json();
    const { default: lighthouse } = await import("lighthouse");
    const { default: desktopConfig } = await import("lighthouse/core/config/desktop-config.js");
    const url = `${dashboard.url}/tasks/${body.task.id}`;
    const flags = {
      port: chromium.port,
      output: "json",
      logLevel: "error",
      onlyCategories: ["performance", "accessibility"],
      extraHeaders: { Cookie: `switchyard_session=${session.session_id}` },
    };
    for (const [label, config] of [["mobile", undefined], ["desktop", desktopConfig]]) {
      const result = await lighthouse(url, flags, config);
      const { categories, audits } = result.lhr;
      const failing = Object.values(audits).filter((a) => a.scoreDisplayMode === "binary" && a.score === 0 && categories.accessibility.auditRefs.some((r) => r.id === a.id));
      console.log(
        `  lighthouse ${label.padEnd(7)} task detail: performance ${Math.round(categories.performance.score * 100)}, ` +
          `accessibility ${Math.round(categories.accessibility.score * 100)}` +
          `  (FCP ${audits["first-contentful-paint"].displayValue}, LCP ${audits["largest-contentful-paint"].displayValue}, ` +
          `TBT ${audits["total-blocking-time"].displayValue}, CLS ${audits["cumulative-layout-shift"].displayValue})` +
          (failing.length ? `  failing: ${failing.map((a) => a.id).join(", ")}` : ""),
      );
    }
  } finally {
    chromium.stop();
    await dashboard.stop();
    await worker.stop();
  }
}

try {
  setup({ quiet: true });
} catch (error) {
  console.error(`[setup] ${error.message}`);
  process.exit(1);
}
console.log(`switchyard bench — node ${process.versions.node}, ${new Date().toISOString()}`);
/** BENCH_ONLY=engine (or a comma list of bundle, cold, parse, latency, engine, records, abuse, runner, faults, analysis, childruns, peer, profile, history, idle, handover, archive, dashboard) runs a subset. */
/** One agent per worker of a 16-step group: lease, heartbeat every second for 2 to 6 s of
 * "work", complete. Answers 503 are counted and the request sent again after Retry-After. */
async function fanRun(worker, workers, workflow) {
  const task = (await submit(worker, { title: "Benchmark heartbeats on a wide group", workflow })).body.task;
  const counts = { heartbeats: 0, heartbeat503: 0, completions: 0, complete503: 0 };
  const retrying = async (send, total, busy) => {
    for (let retry = 0; retry < 30; retry += 1) {
      const response = await send();
      counts[total] += 1;
      if (response.status !== 503) return response;
      counts[busy] += 1;
      await new Promise((resolve) => setTimeout(resolve, Number(response.headers.get("retry-after") ?? 1) * 1000));
    }
    throw new Error("30 answers 503 in a row");
  };
  await Promise.all(
    workers.map(async (client, i) => {
      for (let round = 0; round < 200; round += 1) {
        const step = await client.lease(1);
        if (!step) {
          if ((await taskOf(worker, task.id)).status !== "running") return;
          continue;
        }
        const workMs = 2000 + ((i * 997 + round * 331) % 4000);
        for (let worked = 0; worked < workMs; worked += FAN_HEARTBEAT_MS) {
          await new Promise((resolve) => setTimeout(resolve, FAN_HEARTBEAT_MS));
          const beat = await retrying(() => client.heartbeat(step), "heartbeats", "heartbeat503");
          if (beat.status !== 200) throw new Error(`heartbeat of ${step.key} answered ${beat.status}: ${await beat.text()}`);
        }
        const done = await retrying(() => client.complete(step, { report: benchReport(i) }), "completions", "complete503");
        if (done.status !== 200) throw new Error(`completing ${step.key} answered ${done.status}`);
      }
    }),
  );
  return counts;
}

/** SQL that seeds `count` running tasks, each with one step leased by `agent` whose lease ran
 * out a minute ago. */
function expiredLeasesSql(count, agent) {
  const now = Date.now();
  // Ids of the shape the API accepts: a prefix and 26 Crockford base-32 characters.
  const id = (prefix, i) => `${prefix}_${"0".repeat(20)}SW${String(i).padStart(4, "0")}`;
  const lines = ["INSERT INTO workflows (id, name, version, definition, created_at) VALUES ('wfl_sweep', 'bench-sweep', 1, '{}', 0);"];
  for (let first = 0; first < count; first += 250) {
    const tasks = [];
    const steps = [];
    const attempts = [];
    for (let i = first; i < Math.min(count, first + 250); i += 1) {
      tasks.push(`('${id("tsk", i)}', 'wfl_sweep', 'seeded', 'running', ${now}, ${now})`);
      steps.push(`('${id("stp", i)}', '${id("tsk", i)}', '1', 'seeded', '${agent}', 'leased', 1, 3, '${id("lse", i)}', ${now - 60_000}, ${now - 120_000}, ${now - 120_000})`);
      attempts.push(`('${id("stp", i)}', 1, '${agent}', '${id("lse", i)}', 'running', ${now - 120_000})`);
    }
    lines.push(`INSERT INTO tasks (id, workflow_id, title, status, created_at, updated_at) VALUES ${tasks.join(", ")};`);
    lines.push(
      "INSERT INTO steps (id, task_id, key, name, agent, status, attempt, attempts_max, lease_id, lease_expires_at, ready_at, started_at) VALUES " +
        `${steps.join(", ")};`,
    );
    lines.push(`INSERT INTO attempts (step_id, attempt, agent, lease_id, status, started_at) VALUES ${attempts.join(", ")};`);
  }
  return `${lines.join("\n")}\n`;
}

async function faults() {
  console.log(`\nFaults (${FAN_TASKS} tasks of a ${FAN_WIDTH}-step parallel group, heartbeats every ${FAN_HEARTBEAT_MS} ms; the sweep over ${EXPIRED_LEASES} expired leases)`);
  const worker = await startWorker();
  try {
    const created = await worker.admin("/v1/agents", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ name: "bench-writer", capabilities: ["writing"], max_concurrency: FAN_WIDTH, lease_ms: 30_000 }),
    });
    if (created.status !== 201) throw new Error(`creating the bench agent answered ${created.status}: ${await created.text()}`);
    const { token } = await created.json();
    const workflow = summaryWorkflow(FAN_WIDTH + 1);
    const posted = await worker.admin("/v1/workflows", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(workflow),
    });
    if (posted.status !== 201) throw new Error(`posting the workflow answered ${posted.status}: ${await posted.text()}`);
    const workers = Array.from({ length: FAN_WIDTH }, () => agent(worker, "bench-writer", token));
    const total = { heartbeats: 0, heartbeat503: 0, completions: 0, complete503: 0 };
    const counters = async () => (await worker.admin("/v1/system/counters")).json();
    const before = await counters();
    for (let run = 0; run < FAN_TASKS; run += 1) {
      const counts = await fanRun(worker, workers, workflow.name);
      for (const key of Object.keys(total)) total[key] += counts[key];
    }
    console.log(
      `  ${total.complete503} of ${total.completions} completion requests and ${total.heartbeat503} of ${total.heartbeats} ` +
        "heartbeat requests were answered 503 busy (and sent again)",
    );
    const after = await counters();
    const leases = after.leases - before.leases;
    const leaseTrips = after.lease_round_trips - before.lease_round_trips;
    const requests = total.heartbeats + total.completions;
    console.log(
      `  ${((after.transition_round_trips - before.transition_round_trips - leaseTrips) / requests).toFixed(2)} D1 round trips per ` +
        "heartbeat or completion (reads, writes and lost races)",
    );
    console.log(`  ${(leaseTrips / leases).toFixed(2)} D1 round trips per lease of the group's steps (${leaseTrips} / ${leases}; reads, writes and lost races)`);
  } finally {
    await worker.stop();
  }

  const stateDir = mkdtempSync(join(tmpdir(), "switchyard-bench-"));
  const sqlFile = join(stateDir, "seed.sql");
  writeFileSync(sqlFile, expiredLeasesSql(EXPIRED_LEASES, "context-fetcher"));
  executeSql(stateDir, sqlFile);
  rmSync(sqlFile);
  const seeded = await startWorker({ stateDir });
  try {
    // A task still to recover is one whose seeded step is still leased; every task is looked at
    // once at the end, and a sample of them between sweeps.
    const stillLeased = async (indexes) => {
      let count = 0;
      for (const i of indexes) {
        const task = await taskOf(seeded, `tsk_${"0".repeat(20)}SW${String(i).padStart(4, "0")}`);
        if (task.steps.some((s) => s.status === "leased")) count += 1;
      }
      return count;
    };
    const sample = Array.from({ length: Math.ceil(EXPIRED_LEASES / 20) }, (_, k) => k * 20);
    let sweepMs = 0;
    let sweeps = 0;
    while (sweeps < SWEEPS_MAX) {
      const started = performance.now();
      const response = await seeded.fetch("/__scheduled?cron=*+*+*+*+*");
      await response.arrayBuffer();
      sweepMs += performance.now() - started;
      sweeps += 1;
      if ((await stillLeased(sample)) === 0 && (await stillLeased(Array.from({ length: EXPIRED_LEASES }, (_, i) => i))) === 0) break;
    }
    console.log(
      `  the sweep recovered ${EXPIRED_LEASES} expired leases in ${sweeps} cron runs taking ${(sweepMs / 1000).toFixed(1)} s in all ` +
        "(run back to back here; the cron runs once a minute)",
    );
  } finally {
    await seeded.stop();
  }
}

const ANALYSIS_SETS = [
  ["tuned on", ["tuning.json", "tuning-2.json", "tuning-3.json", "tuning-4.json", "tuning-5.json", "tuning-6.json", "tuning-7.json", "tuning-8.json",
    "tuning-9.json", "tuning-10.json", "tuning-11.json", "tuning-12.json"]],
  ["held back", ["held-back.json"]],
  ["held back 2", ["held-back-2.json"]],
  ["held back 3", ["held-back-3.json"]],
];
const TASK_TYPES = ["frontend", "backend", "full-stack", "infrastructure"];

async function analysisBench() {
  const worker = await startWorker();
  try {
    console.log("\nAnalysis: labelled tasks whose type POST /v1/analyze gets right (default workflow)");
    console.log(`  ${"set".padEnd(10)} ${TASK_TYPES.map((t) => t.padStart(16)).join("")} ${"all".padStart(14)}`);
    const latencies = [];
    for (const [label, files] of ANALYSIS_SETS) {
      const cases = files.flatMap((file) => JSON.parse(readFileSync(join(ROOT, "tests", "fixtures", "analysis", file), "utf8")));
      const tally = Object.fromEntries(TASK_TYPES.map((t) => [t, { right: 0, all: 0 }]));
      for (const { title, description, paths = [], type } of cases) {
        const started = performance.now();
        const response = await worker.admin("/v1/analyze", {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ title, description, paths }),
        });
        const body = await response.json();
        latencies.push(performance.now() - started);
        if (response.status !== 200) throw new Error(`POST /v1/analyze answered ${response.status}: ${JSON.stringify(body)}`);
        tally[type].all += 1;
        if (body.task_type === type) tally[type].right += 1;
      }
      const share = ({ right, all }) => `${right}/${all} ${all ? Math.round((100 * right) / all) : 0}%`.padStart(16);
      const total = Object.values(tally).reduce((a, t) => ({ right: a.right + t.right, all: a.all + t.all }), { right: 0, all: 0 });
      console.log(`  ${label.padEnd(10)} ${TASK_TYPES.map((t) => share(tally[t])).join("")} ${share(total).padStart(14)}`);
    }
    latencies.sort((a, b) => a - b);
    console.log(`  POST /v1/analyze p50 ${percentile(latencies, 50).toFixed(2)} ms, p99 ${percentile(latencies, 99).toFixed(2)} ms (${latencies.length} requests, 1 client)`);
  } finally {
    await worker.stop();
  }
}

/** Requests per row of the child-run figures. */
const CHILD_RUN_REQUESTS = Number(process.env.BENCH_CHILD_RUN_REQUESTS ?? 60);

/** An instruction file of `steps` default-agent steps, the last of which EXECUTEs `runs` if given. */
function benchFile(title, steps, runs) {
  const agents = ["context-fetcher", "test-runner", "project-manager"];
  const lines = [`# ${title}`, "", "<process_flow>"];
  for (let i = 1; i <= steps; i += 1) {
    lines.push(`<step number="${i}" subagent="${agents[i % agents.length]}" name="work_${i}">`, "", `Do part ${i}. Write \`docs/part-${i}.md\`.`, "", "</step>");
  }
  if (runs) lines.push(`<step number="${steps + 1}" name="run_${runs}">`, "", `EXECUTE: @.agent-os/instructions/core/${runs}.md`, "", "</step>");
  lines.push("</process_flow>", "");
  return lines.join("\n");
}

/** The latencies of `count` sequential runs of `request`, each of which must answer `status`, sorted. */
async function latenciesOf(count, status, request) {
  const latencies = [];
  for (let i = 0; i < count; i += 1) {
    const started = performance.now();
    const response = await request(i);
    const body = await response.text();
    latencies.push(performance.now() - started);
    if (response.status !== status) throw new Error(`answered ${response.status}: ${body}`);
  }
  return latencies.sort((a, b) => a - b);
}

/** p50 and p99 of `count` runs of `request`, which must answer `status`. */
async function timed(count, status, request) {
  const latencies = await latenciesOf(count, status, request);
  return `p50 ${percentile(latencies, 50).toFixed(2).padStart(7)} ms   p99 ${percentile(latencies, 99).toFixed(2).padStart(7)} ms`;
}

async function childRunBench() {
  const worker = await startWorker();
  const post = (name, text) =>
    worker.admin(`/v1/workflows?name=${name}`, { method: "POST", headers: { "content-type": "text/markdown" }, body: text });
  const task = (workflow, i) =>
    worker.admin("/v1/tasks", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ title: `Add export number ${i} to the reports page`, workflow }),
    });
  try {
    // bench-top → bench-l1 → bench-l2 → bench-leaf: three EXECUTE levels, 13 steps in a task.
    const files = [["bench-leaf", benchFile("Leaf", 4)], ["bench-l2", benchFile("Level 2", 2, "bench-leaf")], ["bench-l1", benchFile("Level 1", 2, "bench-l2")]];
    for (const [name, text] of files) {
      const response = await post(name, text);
      if (response.status !== 201) throw new Error(`posting ${name} answered ${response.status}: ${await response.text()}`);
    }
    const nested = benchFile("Top", 2, "bench-l1");
    const flat = benchFile("Flat", 13);
    console.log(`\nChild runs (${CHILD_RUN_REQUESTS} requests per row, 1 client)`);
    console.log(`  POST /v1/workflows, 3 EXECUTE levels     ${await timed(CHILD_RUN_REQUESTS, 201, () => post("bench-top", nested))}`);
    console.log(`  POST /v1/workflows, flat, 13 steps        ${await timed(CHILD_RUN_REQUESTS, 201, () => post("bench-flat", flat))}`);
    const submitted = [];
    const keep = (response) => {
      submitted.push(response.clone());
      return response;
    };
    console.log(`  POST /v1/tasks, child runs (13 steps)     ${await timed(CHILD_RUN_REQUESTS, 201, async (i) => keep(await task("bench-top", i)))}`);
    console.log(`  POST /v1/tasks, flat (13 steps)           ${await timed(CHILD_RUN_REQUESTS, 201, async (i) => keep(await task("bench-flat", i)))}`);
    for (const response of submitted) {
      const { task: made } = await response.json();
      await worker.admin(`/v1/tasks/${made.id}/cancel`, { method: "POST" });
    }
  } finally {
    await worker.stop();
  }
}

/** Where the peers are, when the repository sits beside them. */
const PEERS = join(ROOT, "..", "shared", "peers");
/** Task counts of the peer comparison, and runs of each side per count (alternating). */
const PEER_TASKS = [50, 200];
const PEER_ROUNDS = Number(process.env.BENCH_PEER_ROUNDS ?? 2);
/** The long poll of switchyard's second mode: the driver's own example value. */
const PEER_LEASE_WAIT_SECONDS = 5;
/** How long one drive may take; the driver stops by itself at its own limit too. */
const PEER_DRIVE_TIMEOUT_MS = 420_000;
/** The task both sides run: the default flow's full-stack case. */
const PEER_TASK = { title: "Comments", description: "A comments table in D1 with an endpoint, and a comment form component on the article page." };

/** The peers' driver's command line for one run against `url`. */
const driverArgs = (url, tasks, extra) => [join(PEERS, "drive.py"), url, "--tasks", String(tasks), "--limit-s", "400", ...extra];

/** One run of the peers' driver against `url`; its JSON figures. */
function drive(url, tasks, extra = []) {
  const result = spawnSync("python3", driverArgs(url, tasks, extra), { encoding: "utf8", timeout: PEER_DRIVE_TIMEOUT_MS });
  const line = (result.stdout ?? "").trim().split("\n").pop();
  if (result.status !== 0 || !line) throw new Error(`drive.py ${url} failed (${result.status}): ${result.stderr}`);
  return JSON.parse(line);
}

/** The Workflows peer, copied somewhere writable, installed and served by wrangler dev. */
async function startPeer() {
  const dir = mkdtempSync(join(tmpdir(), "switchyard-peer-"));
  cpSync(join(PEERS, "workflows"), dir, { recursive: true });
  spawnSync("chmod", ["-R", "u+w", dir]);
  const npm = spawnSync("npm", ["ci", "--no-audit", "--no-fund"], { cwd: dir, env: QUIET_ENV, encoding: "utf8" });
  if (npm.status !== 0) throw new Error(`installing the peer failed: ${npm.stderr}`);
  const wranglerBin = join(dir, "node_modules", ".bin", "wrangler");
  const state = join(dir, "state");
  const migrate = spawnSync(wranglerBin, ["d1", "migrations", "apply", "DB", "--local", "--persist-to", state], { cwd: dir, env: QUIET_ENV, encoding: "utf8" });
  if (migrate.status !== 0) throw new Error(`migrating the peer failed: ${migrate.stderr}`);
  return serve("the peer", wranglerBin, dir, ["--persist-to", state]);
}

/** `wrangler dev` of the Worker in `dir` on a free loopback port, until its /health answers;
 * stop() ends it and removes `dir`. */
async function serve(what, wranglerBin, dir, extra) {
  const port = await freePort();
  const args = ["dev", "--ip", "127.0.0.1", "--port", String(port), ...extra, "--show-interactive-dev-session=false"];
  const { child, exited, output } = spawnGroup(wranglerBin, args, { cwd: dir, env: QUIET_ENV });
  const url = `http://127.0.0.1:${port}`;
  const stop = async () => {
    await stopGroup(child, exited);
    rmSync(dir, { recursive: true, force: true });
  };
  if (!(await answers(`${url}/health`, child, 120_000, 200))) {
    await stop();
    throw new Error(`${what} did not start:\n${output()}`);
  }
  return { url, stop };
}

/** One of the bench's reference Workers in scripts/ (`name`-worker.js), served by this
 * project's wrangler from a directory of its own with `config` added to its configuration. */
async function startReference(name, config = {}) {
  const dir = mkdtempSync(join(tmpdir(), `switchyard-${name}-`));
  const main = join(ROOT, "scripts", `${name}-worker.js`);
  writeFileSync(join(dir, "wrangler.json"), JSON.stringify({ name, main, compatibility_date: readWranglerConfig().compatibility_date, ...config }));
  return serve(`the ${name} Worker`, join(ROOT, "node_modules", ".bin", "wrangler"), dir, ["--persist-to", join(dir, "state")]);
}

/** The driver's protocol over memory, no work done: what the harness carries at most. */
const startCeiling = () => startReference("ceiling");

/** The same flow with every change written to a Durable Object before it is answered. */
const startBareDurable = () =>
  startReference("bare-durable", {
    durable_objects: { bindings: [{ name: "TASK_STEPS", class_name: "TaskSteps" }, { name: "AGENT_STEPS", class_name: "AgentSteps" }] },
    migrations: [{ tag: "v1", new_sqlite_classes: ["TaskSteps", "AgentSteps"] }],
  });

async function peerBench() {
  if (!existsSync(join(PEERS, "drive.py")) || !existsSync(join(PEERS, "workflows"))) {
    console.log("\nAgainst Cloudflare Workflows: skipped (no ../shared/peers beside the repository)");
    return;
  }
  // Each runtime is stopped at the end, or when a later one fails to start.
  const started = [];
  const start = async (starting) => {
    const runtime = await starting;
    started.push(runtime);
    return runtime;
  };
  try {
    const peer = await start(startPeer());
    const ceiling = await start(startCeiling());
    const bareDurable = await start(startBareDurable());
    const worker = await start(startWorker({ pollMs: 50 }));
    const ours = ["--prefix", "/v1", "--token", ADMIN_TOKEN, "--json-body", JSON.stringify(PEER_TASK)];
    const longPoll = [...ours, "--lease-query", `?wait=${PEER_LEASE_WAIT_SECONDS}`];
    console.log(
      `\nAgainst Cloudflare Workflows (the peers' driver, five agents; ${PEER_ROUNDS} alternating runs per side; ` +
        `switchyard leasing as the driver does by default, an empty lease answered at once and asked again 5 ms later, ` +
        `and long-polling with its --lease-query ?wait=${PEER_LEASE_WAIT_SECONDS}, as switchyard-agent leases). ` +
        `"ceiling" is scripts/ceiling-worker.js under the same driver: switchyard's six agent steps kept in memory, ` +
        `nothing durable, no work; what this machine's harness carries at most. "bare durable" is scripts/bare-durable-worker.js: ` +
        `the same flow with each change written first to a SQLite-backed Durable Object per task and one per agent, and nothing else`,
    );
    console.log(`  ${"tasks".padStart(5)} ${"side".padEnd(20)} ${"steps/s".padStart(8)} ${"tasks/s".padStart(8)} ${"p50 s".padStart(7)} ${"ok".padStart(5)}`);
    for (const tasks of PEER_TASKS) {
      const runs = { workflows: [], switchyard: [], "switchyard ?wait": [], "bare durable": [], ceiling: [] };
      for (let round = 0; round < PEER_ROUNDS; round += 1) {
        runs.workflows.push(drive(peer.url, tasks));
        runs.ceiling.push(drive(ceiling.url, tasks));
        runs["bare durable"].push(drive(bareDurable.url, tasks));
        runs.switchyard.push(drive(worker.url, tasks, ours));
        runs["switchyard ?wait"].push(drive(worker.url, tasks, longPoll));
        // The driver exits with its lease requests still waiting, and the local runtime does
        // not tell the Worker they are gone: one woken now would take a step of the next run
        // and hold it until its lease expires. Their wait ends first.
        await new Promise((resolve) => setTimeout(resolve, (PEER_LEASE_WAIT_SECONDS + 1) * 1000));
      }
      for (const [side, figures] of Object.entries(runs)) {
        for (const f of figures) {
          console.log(
            `  ${String(tasks).padStart(5)} ${side.padEnd(20)} ${f.agent_steps_per_s.toFixed(2).padStart(8)} ${f.tasks_per_s.toFixed(2).padStart(8)} ${f.task_latency_p50_s.toFixed(2).padStart(7)} ${`${f.succeeded}/${f.tasks}`.padStart(5)}`,
          );
        }
      }
      const mean = (list, key) => list.reduce((sum, f) => sum + f[key], 0) / list.length;
      const ratio = (side, key) => (mean(runs[side], key) / mean(runs.workflows, key)).toFixed(2);
      for (const side of ["switchyard", "switchyard ?wait"]) {
        console.log(
          `  ${String(tasks).padStart(5)} ${side} ÷ workflows: agent steps/s ${ratio(side, "agent_steps_per_s")}×, ` +
            `tasks/s ${ratio(side, "tasks_per_s")}×, task p50 ${ratio(side, "task_latency_p50_s")}× (lower is faster)`,
        );
      }
      // Twice the peer, as a share of what the harness carries with no work done at all.
      const ofCeiling = (side) => (mean(runs[side], "agent_steps_per_s") / mean(runs.ceiling, "agent_steps_per_s")).toFixed(2);
      console.log(
        `  ${String(tasks).padStart(5)} of the ceiling's agent steps/s: workflows ${ofCeiling("workflows")}×, ` +
          `switchyard ${ofCeiling("switchyard")}×, switchyard ?wait ${ofCeiling("switchyard ?wait")}×, ` +
          `bare durable ${ofCeiling("bare durable")}× (${ratio("bare durable", "agent_steps_per_s")}× workflows); ` +
          `twice the peer would be ${(2 * Number(ofCeiling("workflows"))).toFixed(2)}×`,
      );
    }
  } finally {
    for (const runtime of started.reverse()) await runtime.stop();
  }
}

/** Tasks of the profiled drive; the driver's task, as in the peer comparison. */
const PROFILE_TASKS = 50;
/** The profiler's sampling interval: fine enough for per-request costs, coarse enough to stay cheap. */
const PROFILE_SAMPLING_US = 200;
/** Where to write the raw profile (a .cpuprofile), if anywhere. */
const PROFILE_FILE = process.env.BENCH_PROFILE_FILE;
/** Frames shown in the profile's breakdown. */
const PROFILE_FRAMES_SHOWN = 16;

/** A DevTools protocol session with the Worker's isolate through wrangler's inspector. */
async function inspect(port) {
  const targets = await (await fetch(`http://127.0.0.1:${port}/json`)).json();
  // The inspector refuses upgrades without an Origin it knows.
  const socket = new WebSocket(targets[0].webSocketDebuggerUrl, { headers: { Origin: "http://localhost" } });
  await new Promise((resolve, reject) => {
    socket.addEventListener("open", resolve);
    socket.addEventListener("error", () => reject(new Error("the inspector refused the connection")));
  });
  let id = 0;
  const pending = new Map();
  socket.addEventListener("message", (message) => {
    const reply = JSON.parse(message.data);
    pending.get(reply.id)?.(reply);
    pending.delete(reply.id);
  });
  const send = (method, params = {}) =>
    new Promise((resolve) => {
      id += 1;
      pending.set(id, resolve);
      socket.send(JSON.stringify({ id, method, params }));
    });
  return { send, close: () => socket.close() };
}

/** The peers' driver against `url`, without blocking this process (the inspector session must
 * keep reading); its JSON figures. */
function driveAsync(url, tasks, extra) {
  const child = spawn("python3", driverArgs(url, tasks, extra), { stdio: ["ignore", "pipe", "pipe"], timeout: PEER_DRIVE_TIMEOUT_MS });
  let out = "";
  child.stdout.on("data", (chunk) => (out += chunk));
  return new Promise((resolve, reject) =>
    child.once("exit", (code) => {
      const line = out.trim().split("\n").pop();
      if (code !== 0 || !line) reject(new Error(`drive.py exited with ${code}`));
      else resolve(JSON.parse(line));
    }),
  );
}

/**
 * Where the isolate's time goes under the peers' driver: one drive of PROFILE_TASKS tasks with
 * the CPU profiler on, then the isolate's busy time per agent step, and the self time of the
 * leading frames, each WebAssembly frame under the nearest switchyard function that called it
 * (named from build/index_bg.names.json) and each frame outside any as the runtime's.
 */
async function profileBench() {
  if (!existsSync(join(PEERS, "drive.py"))) {
    console.log("\nProfile under the peers' driver: skipped (no ../shared/peers beside the repository)");
    return;
  }
  const names = JSON.parse(readFileSync(join(ROOT, "build", "index_bg.names.json"), "utf8")).functions;
  const worker = await startWorker({ pollMs: 50 });
  try {
    const session = await inspect(worker.inspectorPort);
    await session.send("Profiler.enable");
    await session.send("Profiler.setSamplingInterval", { interval: PROFILE_SAMPLING_US });
    await session.send("Profiler.start");
    const figures = await driveAsync(worker.url, PROFILE_TASKS, ["--prefix", "/v1", "--token", ADMIN_TOKEN, "--json-body", JSON.stringify(PEER_TASK)]);
    const { profile } = (await session.send("Profiler.stop")).result;
    session.close();
    // The whole profile, for Chrome's DevTools (Performance → Load profile) or a script of one's own.
    if (PROFILE_FILE) writeFileSync(PROFILE_FILE, JSON.stringify(profile));
    const nodes = new Map(profile.nodes.map((node) => [node.id, node]));
    const parents = new Map();
    for (const node of profile.nodes) for (const child of node.children ?? []) parents.set(child, node.id);
    const frameName = (node) => {
      const wasm = /^wasm-function\[(\d+)\]$/.exec(node.callFrame.functionName);
      const name = wasm ? (names[wasm[1]] ?? node.callFrame.functionName) : node.callFrame.functionName;
      return name.replace(/::h[0-9a-f]{16}$/, "").replace(/::\{\{closure\}\}/g, "");
    };
    const byFrame = new Map();
    let idle = 0;
    let total = 0;
    profile.samples.forEach((sample, index) => {
      const us = profile.timeDeltas[index] ?? 0;
      total += us;
      const leaf = nodes.get(sample).callFrame.functionName;
      if (leaf === "(idle)") {
        idle += us;
        return;
      }
      let label = ["(program)", "(garbage collector)"].includes(leaf) ? leaf : null;
      for (let at = sample; at && !label; at = parents.get(at)) {
        const name = frameName(nodes.get(at));
        if (name.startsWith("switchyard::")) label = name;
      }
      // Outside switchyard's code: the runtime's JavaScript, named by the binding it serves.
      for (let at = sample; at && !label; at = parents.get(at)) {
        const url = nodes.get(at).callFrame.url;
        if (url.startsWith("cloudflare-internal:")) label = `runtime: ${url.slice("cloudflare-internal:".length).split(":")[0]}`;
      }
      label ??= `runtime: ${leaf || "(anonymous)"}${nodes.get(sample).callFrame.url.endsWith("entry.js") ? " (JS glue)" : ""}`;
      byFrame.set(label, (byFrame.get(label) ?? 0) + us);
    });
    const busy = total - idle;
    const steps = Math.round(figures.agent_steps_per_s * figures.wall_s);
    console.log(`\nProfile under the peers' driver (${PROFILE_TASKS} tasks, ${steps} agent steps, ${figures.agent_steps_per_s.toFixed(2)} agent steps/s with the profiler on)`);
    console.log(`  isolate busy ${(busy / 1000).toFixed(0)} ms of ${(total / 1000).toFixed(0)} ms (${((100 * busy) / total).toFixed(0)}%), ${(busy / 1000 / steps).toFixed(1)} ms per agent step`);
    for (const [label, us] of [...byFrame].sort((a, b) => b[1] - a[1]).slice(0, PROFILE_FRAMES_SHOWN)) {
      console.log(`  ${((100 * us) / busy).toFixed(1).padStart(5)}%  ${(us / 1000 / steps).toFixed(2).padStart(6)} ms/step  ${label}`);
    }
  } finally {
    await worker.stop();
  }
}

const HISTORY_TASKS = Number(process.env.BENCH_HISTORY_TASKS ?? 100_000);
const HISTORY_REQUESTS = Number(process.env.BENCH_HISTORY_REQUESTS ?? 40);

/** `tasks` finished tasks of six steps, six attempts and eight events each, made by SQLite
 * itself (a recursive count), so seeding 100,000 takes seconds rather than a file of inserts. */
function historySql(tasks) {
  const start = Date.parse("2026-01-01T00:00:00Z");
  const count = (n) => `WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < ${n - 1})`;
  const agents = `json_extract('${JSON.stringify(AGENTS)}', '$[' || ((i % 6) % ${AGENTS.length}) || ']')`;
  return `INSERT INTO workflows (id, name, version, definition, created_at) VALUES ('wfl_${"0".repeat(22)}HIST', 'bench-history-seeded', 1, '{}', 0);
${count(tasks)}
INSERT INTO tasks (id, workflow_id, workflow_name, workflow_version, title, description, input, analysis, status, version, created_at, updated_at, finished_at)
SELECT printf('tsk_%026d', i), 'wfl_${"0".repeat(22)}HIST', 'bench-history-seeded', 1, 'Seeded task ' || i, 'A finished task of the seeded history.',
       '{}', '{"task_type":"full-stack","agents":["context-fetcher"]}', 'succeeded', 20,
       ${start} + i * 1000, ${start} + i * 1000 + 60000, ${start} + i * 1000 + 60000 FROM n;
${count(tasks * 6)}
INSERT INTO steps (id, task_id, key, name, runner, agent, status, attempt, attempts_max, ready_at, started_at, finished_at, report)
SELECT printf('stp_%026d', i), printf('tsk_%026d', i / 6), CAST(i % 6 + 1 AS TEXT), 'seeded_step', 'agent', ${agents}, 'succeeded', 1, 3,
       ${start} + i * 160, ${start} + i * 160 + 10, ${start} + i * 160 + 9000, '{"notes":"done"}' FROM n;
${count(tasks * 6)}
INSERT INTO attempts (step_id, attempt, agent, lease_id, status, started_at, finished_at)
SELECT printf('stp_%026d', i), 1, ${agents}, printf('lse_%026d', i), 'succeeded', ${start} + i * 160 + 10, ${start} + i * 160 + 9000 FROM n;
${count(tasks * 8)}
INSERT INTO events (task_id, step_id, kind, data, created_at)
SELECT printf('tsk_%026d', i / 8), printf('stp_%026d', (i / 8) * 6 + (i % 8) % 6), 'step.succeeded', '{}', ${start} + i * 120 FROM n;
`;
}

/** p50 of `runs` sequential requests, each expected to answer `status`. */
async function p50Of(runs, status, request) {
  return percentile(await latenciesOf(runs, status, request), 50);
}

/** The request path's p50s on `worker`: submit, lease, complete, task read and task lists. */
async function historyRound(worker) {
  const created = await worker.admin("/v1/agents", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ name: "bench-history", capabilities: ["history"], max_concurrency: HISTORY_REQUESTS }),
  });
  if (created.status !== 201) throw new Error(`creating the bench agent answered ${created.status}: ${await created.text()}`);
  const client = agent(worker, "bench-history", (await created.json()).token);
  const posted = await worker.admin("/v1/workflows", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ name: "bench-history", steps: [{ key: "1", name: "only_step", agent: "bench-history" }] }),
  });
  if (posted.status !== 201) throw new Error(`posting the workflow answered ${posted.status}: ${await posted.text()}`);
  const ids = [];
  const figures = {};
  figures["POST /v1/tasks"] = await p50Of(HISTORY_REQUESTS, 201, async (i) => {
    const response = await worker.admin("/v1/tasks", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ title: `History bench ${i}`, description: "Nothing to do.", workflow: "bench-history" }),
    });
    if (response.status === 201) ids.push((await response.clone().json()).task.id);
    return response;
  });
  // Every step made ready by the queue consumer before a lease is timed.
  for (let round = 0; round < 600; round += 1) {
    const tasks = await Promise.all(ids.map((id) => taskOf(worker, id)));
    if (tasks.every((t) => t.steps.every((s) => s.ready_at !== null))) break;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  const leased = [];
  figures["POST /v1/agents/{name}/lease"] = await p50Of(HISTORY_REQUESTS, 200, async () => {
    const response = await postAs(worker, client.token, `/v1/agents/${client.name}/lease?wait=0`);
    if (response.status === 200) leased.push((await response.clone().json()).step);
    return response;
  });
  figures["POST /v1/steps/{id}/complete"] = await p50Of(leased.length, 200, (i) => client.complete(leased[i], { report: { notes: "done" } }));
  figures["GET /v1/tasks/{id}"] = await p50Of(HISTORY_REQUESTS, 200, (i) => worker.admin(`/v1/tasks/${ids[i % ids.length]}`));
  figures["GET /v1/tasks?limit=20"] = await p50Of(HISTORY_REQUESTS, 200, () => worker.admin("/v1/tasks?limit=20"));
  figures["GET /v1/tasks?status=running"] = await p50Of(HISTORY_REQUESTS, 200, () => worker.admin("/v1/tasks?status=running&limit=20"));
  return figures;
}

async function historyBench() {
  console.log(`\nHistory (p50 of ${HISTORY_REQUESTS} requests each, on an empty database and with ${HISTORY_TASKS} finished tasks seeded)`);
  const empty = await startWorker();
  let before;
  try {
    before = await historyRound(empty);
  } finally {
    await empty.stop();
  }
  const stateDir = mkdtempSync(join(tmpdir(), "switchyard-bench-"));
  const sqlFile = join(stateDir, "seed.sql");
  writeFileSync(sqlFile, historySql(HISTORY_TASKS));
  const seeding = performance.now();
  executeSql(stateDir, sqlFile);
  rmSync(sqlFile);
  console.log(`  seeded ${HISTORY_TASKS} tasks, ${HISTORY_TASKS * 6} steps and attempts, ${HISTORY_TASKS * 8} events in ${((performance.now() - seeding) / 1000).toFixed(1)} s`);
  const seeded = await startWorker({ stateDir });
  let after;
  try {
    after = await historyRound(seeded);
  } finally {
    await seeded.stop();
  }
  console.log(`  ${"request".padEnd(34)} ${"empty".padStart(9)} ${"seeded".padStart(9)}  ratio`);
  for (const [request, ms] of Object.entries(before)) {
    console.log(`  ${request.padEnd(34)} ${`${ms.toFixed(2)} ms`.padStart(9)} ${`${after[request].toFixed(2)} ms`.padStart(9)}  ${(after[request] / ms).toFixed(2)}×`);
  }
}

const IDLE_SECONDS = Number(process.env.BENCH_IDLE_SECONDS ?? 60);

async function idleBench() {
  console.log(`\nIdle agents (one runner per default agent long-polling with ?wait=20 for ${IDLE_SECONDS} s, no work)`);
  const worker = await startWorker();
  try {
    const clients = [];
    for (const name of AGENTS) clients.push(agent(worker, name, await issueToken(worker, name)));
    const counters = async () => (await worker.admin("/v1/system/counters")).json();
    const before = await counters();
    const deadline = Date.now() + IDLE_SECONDS * 1000;
    let leases = 0;
    await Promise.all(
      clients.map(async (client) => {
        while (Date.now() < deadline) {
          const wait = Math.min(20, Math.max(1, Math.ceil((deadline - Date.now()) / 1000)));
          if (await client.lease(wait)) throw new Error(`${client.name} was handed work in an idle bench`);
          leases += 1;
        }
      }),
    );
    const after = await counters();
    const trips = after.d1_round_trips - before.d1_round_trips;
    console.log(
      `  ${trips} D1 round trips for ${leases} lease requests of ${clients.length} idle runners: ` +
        `${(trips / clients.length / (IDLE_SECONDS / 60)).toFixed(1)} per runner per minute, ${(trips / leases).toFixed(1)} per lease request`,
    );
  } finally {
    await worker.stop();
  }
}

/** Tasks run one after another in the hand-over figure, and the bound on each. */
const HANDOVER_TASKS = Number(process.env.BENCH_HANDOVER_TASKS ?? 20);
const HANDOVER_TASK_LIMIT_MS = 60_000;
/** How long a hand-over runner's lease request waits; a stopped runner ends within it. */
const HANDOVER_WAIT_SECONDS = 5;

/**
 * Ready to leased with one waiting runner per agent and nothing else running: tasks of the
 * default workflow submitted one at a time, each agent's single runner long-polling and
 * completing what it is handed at once. The wake-up path alone, without the engine figure's
 * load of eight workers per agent and eight tasks in flight.
 */
async function handOverBench() {
  console.log(
    `\nHand-over (${HANDOVER_TASKS} tasks one at a time, one runner per default agent waiting with ?wait=${HANDOVER_WAIT_SECONDS})`,
  );
  const worker = await startWorker();
  try {
    const clients = [];
    for (const name of AGENTS) clients.push(agent(worker, name, await issueToken(worker, name)));
    let stop = false;
    const runners = clients.map(async (client) => {
      while (!stop) {
        const step = await client.lease(HANDOVER_WAIT_SECONDS);
        if (!step) continue;
        const done = await client.complete(step, { report: { notes: "bench" } });
        if (done.status !== 200) throw new Error(`${client.name} complete answered ${done.status}: ${await done.text()}`);
      }
    });
    const ids = [];
    const tasks = (async () => {
      try {
        for (let i = 0; i < HANDOVER_TASKS; i += 1) {
          const { response, body } = await submit(worker, { title: `Add a D1 comments API and a SvelteKit page, hand-over ${i}` });
          if (response.status !== 201) throw new Error(`submit answered ${response.status}`);
          ids.push(body.task.id);
          const deadline = Date.now() + HANDOVER_TASK_LIMIT_MS;
          while ((await taskOf(worker, body.task.id)).status === "running") {
            if (Date.now() > deadline) throw new Error(`task ${body.task.id} did not finish within ${HANDOVER_TASK_LIMIT_MS} ms`);
            await new Promise((resolve) => setTimeout(resolve, 100));
          }
        }
      } finally {
        stop = true;
      }
    })();
    await Promise.all([tasks, ...runners]);
    const { waits, handOvers } = await handOverFigures(worker, ids);
    console.log(
      `  ready→leased p50 ${percentile(waits, 50)} ms p99 ${percentile(waits, 99)} ms (${waits.length} agent steps); ` +
        `last dependency done→leased p50 ${percentile(handOvers, 50)} ms p99 ${percentile(handOvers, 99)} ms`,
    );
  } finally {
    await worker.stop();
  }
}

const ARCHIVE_TASKS = Number(process.env.BENCH_ARCHIVE_TASKS ?? 1_000);
/** Cron runs the archive section drives at most: enough for its tasks at 100 a run, twice over. */
const ARCHIVE_TICKS_MAX = Math.ceil(ARCHIVE_TASKS / 100) * 2;

/**
 * Retention: ARCHIVE_TASKS finished tasks (seeded months old) archived by cron runs, each run
 * timed and counted, then an archived task read against a task still in D1, and the agent
 * metrics' step count before and after.
 */
async function archiveBench() {
  console.log(`\nRetention (${ARCHIVE_TASKS} tasks finished long ago, archived to R2 by the cron)`);
  const stateDir = mkdtempSync(join(tmpdir(), "switchyard-bench-"));
  const sqlFile = join(stateDir, "seed.sql");
  writeFileSync(sqlFile, historySql(ARCHIVE_TASKS));
  executeSql(stateDir, sqlFile);
  rmSync(sqlFile);
  const worker = await startWorker({ stateDir, migrate: false });
  try {
    const counts = async () => (await worker.admin("/__test/row-counts")).json();
    const stepsCounted = async () =>
      (await (await worker.admin("/v1/metrics/agents")).json()).agents.reduce((sum, a) => sum + a.steps, 0);
    const id = (i) => `tsk_${String(i).padStart(26, "0")}`;
    const ids = Array.from({ length: HISTORY_REQUESTS }, (_, i) => id(ARCHIVE_TASKS - 1 - i));
    const liveRead = await p50Of(HISTORY_REQUESTS, 200, (i) => worker.admin(`/v1/tasks/${ids[i]}`));
    const countedBefore = await stepsCounted();
    const ticks = [];
    for (let tick = 0; tick < ARCHIVE_TICKS_MAX; tick += 1) {
      const before = (await counts()).archived_tasks;
      if (before >= ARCHIVE_TASKS) break;
      const started = performance.now();
      const response = await worker.fetch(`/__scheduled?cron=*+*+*+*+*&t=${tick}`);
      if (response.status !== 200) throw new Error(`a cron run answered ${response.status}`);
      ticks.push({ ms: performance.now() - started, archived: (await counts()).archived_tasks - before });
    }
    const after = await counts();
    const archivedRead = await p50Of(HISTORY_REQUESTS, 200, (i) => worker.admin(`/v1/tasks/${ids[i]}`));
    const countedAfter = await stepsCounted();
    const total = ticks.reduce((sum, t) => sum + t.archived, 0);
    const ms = ticks.reduce((sum, t) => sum + t.ms, 0);
    console.log(`  ${total} of ${ARCHIVE_TASKS} archived in ${ticks.length} cron runs (${ticks.map((t) => t.archived).join(", ")} a run)`);
    console.log(`  cron run p50 ${median(ticks.map((t) => t.ms)).toFixed(0)} ms, ${(total / (ms / 1000)).toFixed(0)} tasks/s while archiving`);
    console.log(`  left in D1: ${after.tasks} tasks, ${after.steps} steps, ${after.events} events; ${after.agent_days} per-day metric rows`);
    console.log(`  GET /v1/tasks/{id} p50: ${liveRead.toFixed(2)} ms in D1, ${archivedRead.toFixed(2)} ms archived (${(archivedRead / liveRead).toFixed(2)}×)`);
    console.log(`  steps counted by GET /v1/metrics/agents: ${countedBefore} before, ${countedAfter} after`);
  } finally {
    await worker.stop();
    rmSync(stateDir, { recursive: true, force: true });
  }
}

const only = process.env.BENCH_ONLY ? new Set(process.env.BENCH_ONLY.split(",")) : null;
const wanted = (name) => !only || only.has(name);
if (wanted("bundle")) bundleSizes();
if (wanted("cold")) await coldStarts();
// Before the runtime starts: the release build of the example can take a while, and
// keep-alive connections to wrangler dev would sit idle meanwhile.
if (wanted("parse")) nativeParse();
if (wanted("latency")) await latency();
if (wanted("engine")) await engine();
if (wanted("records")) await records();
if (wanted("abuse")) await abuse();
if (wanted("runner")) await runnerBench();
if (wanted("faults")) await faults();
if (wanted("analysis")) await analysisBench();
if (wanted("childruns")) await childRunBench();
if (wanted("peer")) await peerBench();
if (wanted("profile")) await profileBench();
if (wanted("history")) await historyBench();
if (wanted("idle")) await idleBench();
if (wanted("handover")) await handOverBench();
if (wanted("archive")) await archiveBench();
if (wanted("dashboard")) await dashboardBench();
