// Every statement the store prepares, checked against the migrated schema with SQLite's own
// planner. npm test runs this after all the integration test files: while they run, each
// Worker records the statements it prepares and, as it stops, saves them with their
// `EXPLAIN QUERY PLAN` (tests/helpers/worker.mjs). So the statements checked are exactly the
// ones the API, the queue consumer and the cron ran, on D1 itself.
//
// Run on its own it finds nothing saved and says to run npm test.

import assert from "node:assert/strict";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { ROOT } from "../../scripts/setup.mjs";

const DIR = process.env.STATEMENTS_DIR ?? join(ROOT, "test-artifacts", "statements");
const STORE = join(ROOT, "src", "shell", "store");

/** Tables that grow with use: a scan of one costs more with every task ever run. */
const GROWING = new Set(["tasks", "steps", "attempts", "events", "messages", "summaries", "idempotency_keys", "workflows", "archived_tasks", "agent_days"]);

/**
 * Plans that scan a growing table and are bounded anyway, each with why: `sql` matches the
 * statement, `detail` is the line of its plan.
 */
const BOUNDED = [
  {
    sql: /FROM tasks\s+ORDER BY id DESC LIMIT/,
    detail: "SCAN tasks USING INDEX sqlite_autoindex_tasks_1",
    why: "the task list without filters reads newest first along the primary key and stops after its LIMIT",
  },
];

/** Every `file:line` in the store that prepares a statement. */
function storeSites() {
  const sites = [];
  for (const name of readdirSync(STORE).filter((n) => n.endsWith(".rs")).sort()) {
    readFileSync(join(STORE, name), "utf8")
      .split("\n")
      .forEach((line, index) => {
        if (/\.statement\(/.test(line) && !/fn statement\(/.test(line)) sites.push(`src/shell/store/${name}:${index + 1}`);
      });
  }
  return sites;
}

/** The statements the test Workers saved, one entry per place and distinct text, and the
 * errors of Workers that could not list theirs. */
function recorded() {
  const seen = new Map();
  const errors = [];
  if (!existsSync(DIR)) return { seen, errors };
  for (const file of readdirSync(DIR).filter((n) => n.endsWith(".json"))) {
    const saved = JSON.parse(readFileSync(join(DIR, file), "utf8"));
    if (!Array.isArray(saved)) {
      errors.push(`${file}: ${saved.error}`);
      continue;
    }
    for (const statement of saved) seen.set(`${statement.site} ${statement.sql}`, statement);
  }
  return { seen, errors };
}

const { seen, errors } = recorded();
const statements = [...seen.values()];

/** Why a plan line is a cost that grows with history, or null. */
function growth(detail) {
  const scan = /^SCAN (\w+)/.exec(detail);
  if (scan && GROWING.has(scan[1])) return `scans ${scan[1]}`;
  return null;
}

test("the integration tests saved the statements they ran (npm test runs them first)", () => {
  assert.ok(statements.length > 0, `nothing saved in ${DIR}: run npm test, which runs the integration tests first`);
});

test("every statement in the store was prepared by some integration test", () => {
  const reached = new Set(statements.map((s) => s.site));
  const missing = storeSites().filter((site) => !reached.has(site));
  const unlisted = errors.length ? `\nWorkers that could not list their statements:\n${errors.join("\n")}` : "";
  assert.deepEqual(missing, [], `no test reached these statements, so their plans are unchecked:\n${missing.join("\n")}${unlisted}`);
});

test("no statement scans a growing table", () => {
  const found = [];
  for (const { site, sql, plan } of statements) {
    for (const detail of plan) {
      const why = growth(detail);
      if (!why) continue;
      if (BOUNDED.some((b) => b.sql.test(sql) && b.detail === detail)) continue;
      found.push(`${site}: ${why} (${detail})\n  ${sql.replace(/\s+/g, " ").slice(0, 200)}`);
    }
  }
  assert.deepEqual(found, [], found.join("\n"));
});
