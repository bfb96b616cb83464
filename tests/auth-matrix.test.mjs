// The authorization matrix, generated from the OpenAPI document: every operation is called with
// every kind of credential, and the answer must be the one its rule says. An operation without
// a rule fails the test, so a new route cannot ship without deciding who may call it.

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { ROOT } from "../scripts/setup.mjs";
import { agent, issueToken, leaseWithin, submit } from "./helpers/agents.mjs";
import { startWorker } from "./helpers/worker.mjs";

/**
 * Who may call each operation:
 * - `public`: anyone, with or without credentials;
 * - `admin`: admin tokens (and admin sessions) only; any agent is 403;
 * - `agent`: any agent or an admin;
 * - `own`: an admin, or the agent the request is about (the `{name}` in the path, the agent a
 *   step is leased to, the sender of a message); another agent is 403.
 * - `held`: an admin, or an agent that holds or held a step of the task; another agent gets the
 *   404 a task that does not exist gets, and so learns nothing about it.
 * - `mine`: an admin, or the agent of the step; another agent gets 404, as for no such step.
 */
const RULES = {
  getHealth: "public",
  getOpenApi: "public",
  createSession: "public",
  whoami: "agent",
  listMessages: "agent",
  deleteSession: "agent",
  leaseStep: "own",
  inbox: "own",
  heartbeatStep: "own",
  completeStep: "own",
  sendMessage: "own",
  listSystemEvents: "admin",
  getCounters: "admin",
  createProbe: "admin",
  listAgents: "admin",
  createAgent: "admin",
  importAgent: "admin",
  selectAgent: "admin",
  getAgent: "admin",
  updateAgent: "admin",
  deleteAgent: "admin",
  rotateAgentToken: "admin",
  rotateWebhookSecret: "admin",
  listWorkflows: "admin",
  createWorkflow: "admin",
  getWorkflow: "admin",
  getWorkflowVersion: "admin",
  analyzeTask: "admin",
  listTasks: "admin",
  submitTask: "admin",
  getTask: "held",
  listTaskEvents: "held",
  listTaskLogs: "held",
  getTaskLog: "held",
  getTaskSummary: "held",
  getTaskMetrics: "held",
  cancelTask: "admin",
  retryStep: "admin",
  getStepPart: "mine",
  getStepLog: "mine",
  agentMetrics: "admin",
};

const CREDENTIALS = ["none", "malformed", "wrong", "expired session", "other agent", "own agent", "admin"];

/** The class of answer a credential must get on an operation with `rule`. */
function expected(rule, credential) {
  if (rule === "public") return "allowed";
  if (["none", "malformed", "wrong", "expired session"].includes(credential)) return 401;
  if (credential === "admin") return "allowed";
  if (rule === "admin") return 403;
  if (rule === "own" && credential === "other agent") return 403;
  if ((rule === "held" || rule === "mine") && credential === "other agent") return 404;
  return "allowed";
}

describe("the authorization matrix", { timeout: 300_000 }, () => {
  let worker;
  const context = {};
  before(async () => {
    worker = await startWorker({ vars: { SESSION_TTL_SECONDS: "1" } });
    const json = (method, path, body) =>
      worker.admin(path, { method, headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
    const created = await json("POST", "/v1/agents", { name: "matrix-own", capabilities: ["matrix"] });
    context.own = (await created.json()).token;
    context.other = await issueToken(worker, "test-runner");
    const flow = await json("POST", "/v1/workflows", { name: "matrix-flow", steps: [{ key: "1", name: "only", agent: "matrix-own" }] });
    assert.equal(flow.status, 201);
    context.task = (await submit(worker, { title: "Matrix", workflow: "matrix-flow" })).body.task.id;
    context.step = (await leaseWithin(agent(worker, "matrix-own", context.own))).id;
    const session = await worker.fetch("/v1/sessions", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ token: worker.adminToken }),
    });
    context.expired = (await session.json()).session_id;
    await new Promise((resolve) => setTimeout(resolve, 1200));
  });
  after(async () => {
    await worker?.stop();
  });

  function authorization(credential) {
    switch (credential) {
      case "none":
        return undefined;
      case "malformed":
        return "Basic dXNlcjpwYXNz";
      case "wrong":
        return "Bearer sya_not-a-token-anyone-issued-not-a-token-anyone";
      case "expired session":
        return `Bearer ${context.expired}`;
      case "other agent":
        return `Bearer ${context.other}`;
      case "own agent":
        return `Bearer ${context.own}`;
      default:
        return `Bearer ${worker.adminToken}`;
    }
  }

  /** A request for the operation that changes nothing when it is let through: names and ids
   * of nothing (404) for admin routes, bodies that fail validation, a wrong lease for steps. */
  function request(path, method, operationId) {
    const rule = RULES[operationId];
    const own = ["own", "agent", "mine"].includes(rule);
    const held = rule === "held";
    const url = path
      .replace("/v1/steps/{id}", `/v1/steps/${own ? context.step : "stp_00000000000000000000000000"}`)
      .replace("{id}", held ? context.task : "tsk_00000000000000000000000000")
      .replace("{name}", own ? "matrix-own" : "no-such-agent")
      .replace("{version}", "1")
      .replace("{attempt}", "1")
      .replace("{part}", "task")
      .replace("{agent}", held ? "matrix-own" : "no-such-agent");
    const bodies = {
      heartbeatStep: { lease_id: "lse_00000000000000000000000000" },
      completeStep: { lease_id: "lse_00000000000000000000000000", outcome: "succeeded" },
      sendMessage: { from: "matrix-own", to: "no-such-agent", type: "notify", payload: {}, correlation_id: "matrix" },
      createSession: {},
      leaseStep: undefined,
    };
    const body = operationId in bodies ? bodies[operationId] : method === "get" || method === "delete" ? undefined : {};
    const query = operationId === "listMessages" ? "?correlation_id=matrix" : "";
    return { url: `${url}${query}`, body };
  }

  test("every operation in the OpenAPI document has a rule, and every credential gets the answer it says", async () => {
    const document = JSON.parse(readFileSync(join(ROOT, "openapi.json"), "utf8"));
    const failures = [];
    let checked = 0;
    for (const [path, item] of Object.entries(document.paths)) {
      for (const [method, operation] of Object.entries(item)) {
        if (!["get", "post", "put", "delete", "patch"].includes(method)) continue;
        const rule = RULES[operation.operationId];
        if (!rule) {
          failures.push(`${method.toUpperCase()} ${path} (${operation.operationId}) has no rule in this test`);
          continue;
        }
        const { url, body } = request(path, method, operation.operationId);
        for (const credential of CREDENTIALS) {
          const headers = {};
          const auth = authorization(credential);
          if (auth) headers.authorization = auth;
          if (body !== undefined) headers["content-type"] = "application/json";
          const response = await worker.fetch(url, {
            method: method.toUpperCase(),
            headers,
            body: body === undefined ? undefined : JSON.stringify(body),
          });
          await response.arrayBuffer();
          checked += 1;
          const want = expected(rule, credential);
          const ok = want === "allowed" ? ![401, 403].includes(response.status) && response.status < 500 : response.status === want;
          if (!ok) failures.push(`${method.toUpperCase()} ${url} as ${credential}: ${response.status}, expected ${want}`);
        }
      }
    }
    assert.deepEqual(failures, [], `${failures.length} of ${checked} cases failed`);
    assert.ok(checked >= Object.keys(RULES).length * CREDENTIALS.length);
    const documented = new Set(Object.values(document.paths).flatMap((item) => Object.values(item).map((o) => o.operationId)));
    assert.deepEqual(Object.keys(RULES).filter((id) => !documented.has(id)), [], "every rule is for a documented operation");
  });
});
