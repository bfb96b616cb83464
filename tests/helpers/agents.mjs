// Simulated agents for the integration tests and the benchmark: they lease, heartbeat and
// complete over the real HTTP API, as a real pull agent would, in bounded loops.

import { eventually } from "./worker.mjs";

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** JSON POST with a bearer token. */
export function postAs(worker, token, path, body) {
  return worker.fetch(path, {
    method: "POST",
    headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
}

/** A new token for an agent (the default agents have none until one is issued). */
export async function issueToken(worker, name) {
  const response = await worker.admin(`/v1/agents/${name}/token`, { method: "POST" });
  if (response.status !== 200) throw new Error(`issuing a token for ${name} answered ${response.status}`);
  return (await response.json()).token;
}

/** A pull agent's client: lease, heartbeat and complete with its own token. */
export function agent(worker, name, token) {
  return {
    name,
    token,
    async lease(wait = 0) {
      const response = await postAs(worker, token, `/v1/agents/${name}/lease?wait=${wait}`);
      if (response.status === 204) return null;
      if (response.status !== 200) throw new Error(`${name} lease answered ${response.status}: ${await response.text()}`);
      return (await response.json()).step;
    },
    heartbeat: (step) => postAs(worker, token, `/v1/steps/${step.id}/heartbeat`, { lease_id: step.lease_id }),
    complete: (step, body) => postAs(worker, token, `/v1/steps/${step.id}/complete`, { lease_id: step.lease_id, ...body }),
  };
}

/** A report like a real agent's for `step`. */
export function reportFor(step) {
  return {
    files_created: [`src/${step.key}/new.ts`],
    files_modified: ["wrangler.toml"],
    lines_added: 10,
    lines_removed: 2,
    feedback: { "Files created": [`src/${step.key}/new.ts`] },
    tests: { unit: { passed: 3, failed: 0, skipped: 0 } },
    notes: `did ${step.name}`,
  };
}

/** Leases one step for `client`, waiting up to `timeoutMs` for it to become ready. */
export async function leaseWithin(client, timeoutMs = 15_000) {
  return eventually(() => client.lease(1), { timeoutMs, intervalMs: 0 });
}

/** The task as `GET /v1/tasks/{id}` shows it. */
export async function taskOf(worker, id) {
  const response = await worker.admin(`/v1/tasks/${id}`);
  if (response.status !== 200) throw new Error(`reading task ${id} answered ${response.status}`);
  return (await response.json()).task;
}

/** All of a task's events, oldest first (bounded to 50 pages). */
export async function eventsOf(worker, id) {
  const events = [];
  let cursor = null;
  for (let page = 0; page < 50; page += 1) {
    const query = cursor ? `?cursor=${cursor}&limit=200` : "?limit=200";
    const body = await (await worker.admin(`/v1/tasks/${id}/events${query}`)).json();
    events.push(...body.events);
    cursor = body.next_cursor;
    if (!cursor) break;
  }
  return events;
}

/** Submits a task as admin; returns the response and its body. */
export async function submit(worker, body, headers = {}) {
  const response = await worker.admin("/v1/tasks", {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body: JSON.stringify(body),
  });
  return { response, body: await response.json() };
}

/**
 * Works a task's steps with the given clients until the task is no longer running: every round,
 * each client takes what is ready for it and completes it with a report. Bounded by `rounds`.
 */
export async function workTask(worker, taskId, clients, { rounds = 200, onLease } = {}) {
  for (let round = 0; round < rounds; round += 1) {
    const task = await taskOf(worker, taskId);
    if (task.status !== "running") return task;
    let worked = false;
    for (const client of clients) {
      const step = await client.lease(0);
      if (!step) continue;
      worked = true;
      if (onLease) await onLease(client, step);
      const response = await client.complete(step, { outcome: "succeeded", report: reportFor(step) });
      if (response.status !== 200) throw new Error(`completing ${step.key} answered ${response.status}`);
    }
    if (!worked) await sleep(100);
  }
  throw new Error(`task ${taskId} did not finish within ${rounds} rounds`);
}
