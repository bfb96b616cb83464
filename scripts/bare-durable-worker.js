// The bench's bare durable orchestrator: the least a durable one does under the peers' driver.
//
// Like scripts/ceiling-worker.js it runs switchyard's default flow for a full-stack task
// (scripts/reference-flow.js), but every change is written before it is answered, in the layout
// docs/scaling.md argues for: each task's steps in a SQLite-backed Durable Object of its own,
// and each agent's leasable steps in one of the agent's. Nothing else:
// no auth, no events, attempts, reports, records or built-in steps, and no outbox between the two
// objects (a crash between a task's write and its agent's could lose a step), so it is an upper
// bound on any durable design of that shape. Never a part of switchyard.

import { DurableObject } from "cloudflare:workers";
import { answer, FLOW, leasableNow } from "./reference-flow.js";

/** One task's steps. Each method runs alone (the object's one-request-at-a-time rule). */
export class TaskSteps extends DurableObject {
  constructor(ctx, env) {
    super(ctx, env);
    ctx.storage.sql.exec("CREATE TABLE IF NOT EXISTS steps (key TEXT PRIMARY KEY, status TEXT NOT NULL)");
  }

  /** Makes leasable every waiting step whose steps before it all succeeded; returns those. */
  advance() {
    const status = {};
    for (const row of this.ctx.storage.sql.exec("SELECT key, status FROM steps")) status[row.key] = row.status;
    const leasable = leasableNow(status);
    for (const { key } of leasable) this.ctx.storage.sql.exec("UPDATE steps SET status = 'leasable' WHERE key = ?", key);
    return leasable;
  }

  create() {
    for (const { key } of FLOW) this.ctx.storage.sql.exec("INSERT OR IGNORE INTO steps VALUES (?, 'waiting')", key);
    return this.advance();
  }

  /** The steps made leasable by `key`'s success; null when `key` was not leasable or leased. */
  complete(key) {
    const written = this.ctx.storage.sql.exec("UPDATE steps SET status = 'succeeded' WHERE key = ? AND status = 'leasable'", key);
    return written.rowsWritten ? this.advance() : null;
  }

  status() {
    const [{ left }] = [...this.ctx.storage.sql.exec("SELECT COUNT(*) AS left FROM steps WHERE status != 'succeeded'")];
    return left === 0 ? "succeeded" : "running";
  }
}

/** One agent's leasable steps, oldest first. */
export class AgentSteps extends DurableObject {
  constructor(ctx, env) {
    super(ctx, env);
    ctx.storage.sql.exec("CREATE TABLE IF NOT EXISTS leasable (seq INTEGER PRIMARY KEY AUTOINCREMENT, step TEXT NOT NULL)");
  }

  add(step) {
    this.ctx.storage.sql.exec("INSERT INTO leasable (step) VALUES (?)", step);
  }

  take() {
    const [row] = [...this.ctx.storage.sql.exec("DELETE FROM leasable WHERE seq = (SELECT MIN(seq) FROM leasable) RETURNING step")];
    return row?.step ?? null;
  }
}

let created = 0;

export default {
  async fetch(request, env) {
    const [first, second, third] = new URL(request.url).pathname.split("/").filter(Boolean);
    const task = (id) => env.TASK_STEPS.get(env.TASK_STEPS.idFromName(id));
    const agent = (name) => env.AGENT_STEPS.get(env.AGENT_STEPS.idFromName(name));
    const hand = async (taskId, leasable) => {
      for (const step of leasable) await agent(step.agent).add(`${taskId}.${step.key}`);
    };
    if (request.method === "GET" && first === "health") return answer(200, { ok: true });
    if (request.method === "POST" && first === "tasks" && !second) {
      await request.text();
      created += 1;
      const id = `t${Date.now()}-${created}`;
      await hand(id, await task(id).create());
      return answer(201, { id, status: "running" });
    }
    if (request.method === "GET" && first === "tasks" && second) {
      return answer(200, { id: second, status: await task(second).status() });
    }
    if (request.method === "POST" && first === "agents" && third === "lease") {
      await request.text();
      const step = await agent(second).take();
      return step ? answer(200, { step: { id: step, lease_id: step } }) : new Response(null, { status: 204 });
    }
    if (request.method === "POST" && first === "steps" && third === "complete") {
      await request.text();
      const [taskId, key] = decodeURIComponent(second).split(".");
      const leasable = await task(taskId).complete(key);
      if (!leasable) return answer(409, { error: "the step is not leased" });
      await hand(taskId, leasable);
      return answer(200, { status: "succeeded" });
    }
    return answer(404, { error: "no such route" });
  },
};
