// npm run bench: prints the figures switchyard is judged by. It measures, it does not assert:
// the machines are shared, so compare ratios within one run rather than absolute times.
//
// 1. Bundle size: the WebAssembly module and the JS glue, raw and gzip.
// 2. Cold start: a fresh runtime (workerd through Miniflare) answering its first request, and
//    `wrangler dev` from spawn to its first answer.
// 3. Latency and throughput on loopback: p50/p99 and requests/s for GET /health and the
//    authenticated GET /v1/whoami, at 1 and 16 concurrent clients, a bounded number of
//    requests each.
// 4. Workflows: parsing the seed instruction file natively (cargo, release build), and posting
//    it to the local runtime (POST /v1/workflows, one client).

import { spawnSync } from "node:child_process";
import { readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import { Miniflare } from "miniflare";
import { startWorker } from "../tests/helpers/worker.mjs";
import { ROOT, setup } from "./setup.mjs";

/** Requests per latency configuration: enough for a stable p99 (≥ 20 samples above it),
 * few enough that the whole bench stays under a minute or two on two cores. */
const REQUESTS_PER_RUN = Number(process.env.BENCH_REQUESTS ?? 2000);
/** Fresh runtimes started for the cold-start figure; the median is reported. */
const COLD_STARTS = Number(process.env.BENCH_COLD_STARTS ?? 5);
/** Requests sent before measuring, so the isolate is warm and connections are open. */
const WARMUP_REQUESTS = 50;
/** Instruction files posted for the workflow figure; each one stores a new version in D1. */
const WORKFLOW_POSTS = Number(process.env.BENCH_WORKFLOW_POSTS ?? 200);
const SEED_PATH = join(ROOT, "..", "shared", "seed", "000_e91aae71b815acb6.txt");

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

/** A runtime with the same bindings as wrangler.toml, migrated, started from nothing. */
async function miniflareColdStart() {
  const started = performance.now();
  const mf = new Miniflare({
    scriptPath: join(ROOT, "js", "entry.mjs"),
    modules: true,
    modulesRules: [
      { type: "CompiledWasm", include: ["**/*.wasm"], fallthrough: true },
      { type: "ESModule", include: ["**/*.js", "**/*.mjs"] },
    ],
    compatibilityDate: /^compatibility_date = "(.+)"$/m.exec(readFileSync(join(ROOT, "wrangler.toml"), "utf8"))[1],
    d1Databases: ["DB"],
    kvNamespaces: ["CACHE"],
    r2Buckets: ["ARTIFACTS"],
    queueProducers: { STEPS: { queueName: "switchyard-steps" }, STEPS_DLQ: { queueName: "switchyard-steps-dlq" } },
    bindings: { ADMIN_TOKEN: "bench-admin-token-0123456789" },
  });
  try {
    await mf.ready;
    const ready = performance.now();
    const db = await mf.getD1Database("DB");
    for (const statement of readFileSync(join(ROOT, "migrations", "0001_initial.sql"), "utf8")
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
  const result = spawnSync("cargo", ["run", "--quiet", "--release", "--example", "parse_seed", "--", SEED_PATH], {
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
    `\nParse the seed natively (${figures.bytes} bytes, ${figures.iterations} runs)   p50 ${figures.p50_us} µs   p99 ${figures.p99_us} µs   mean ${figures.mean_us} µs`,
  );
}

async function postWorkflows(worker) {
  const seed = readFileSync(SEED_PATH);
  const latencies = [];
  for (let i = 0; i < WORKFLOW_POSTS; i += 1) {
    const started = performance.now();
    const response = await fetch(`${worker.url}/v1/workflows?name=bench-seed`, {
      method: "POST",
      headers: { authorization: `Bearer ${worker.adminToken}`, "content-type": "text/markdown" },
      body: seed,
    });
    await response.arrayBuffer();
    if (response.status !== 201) throw new Error(`POST /v1/workflows answered ${response.status}`);
    latencies.push(performance.now() - started);
  }
  latencies.sort((a, b) => a - b);
  console.log(
    `\nPOST /v1/workflows with the seed (${WORKFLOW_POSTS} posts, 1 client)   p50 ${percentile(latencies, 50).toFixed(2)} ms   p99 ${percentile(latencies, 99).toFixed(2)} ms`,
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

try {
  setup({ quiet: true });
} catch (error) {
  console.error(`[setup] ${error.message}`);
  process.exit(1);
}
console.log(`switchyard bench — node ${process.versions.node}, ${new Date().toISOString()}`);
bundleSizes();
await coldStarts();
// Before the runtime starts: the release build of the example can take a while, and
// keep-alive connections to wrangler dev would sit idle meanwhile.
nativeParse();
await latency();
