// The bench's ceiling: a Worker that speaks the peers' driver's protocol and does no work.
//
// It keeps tasks in the isolate's memory (nothing durable, no auth, no records) and runs
// switchyard's default flow for a full-stack task (scripts/reference-flow.js). Driven by the
// same client on the same machine, it shows how many agent steps per second the harness itself
// (the driver, wrangler dev's two runtimes, loopback HTTP) can carry, and so how far any durable
// orchestrator can get on it. Never a part of switchyard.

import { allSucceeded, answer, FLOW, leasableNow } from "./reference-flow.js";

const tasks = new Map();
/** Leasable steps by agent, oldest first. */
const leasable = new Map();
let created = 0;

/** Makes leasable every waiting step whose steps before it all succeeded; finishes the task. */
function advance(task) {
  const status = Object.fromEntries(Object.entries(task.steps).map(([key, step]) => [key, step.status]));
  for (const { key, agent } of leasableNow(status)) {
    task.steps[key].status = "leasable";
    if (!leasable.has(agent)) leasable.set(agent, []);
    leasable.get(agent).push(task.steps[key]);
  }
  if (allSucceeded(status)) task.status = "succeeded";
}

export default {
  async fetch(request) {
    const [first, second, third] = new URL(request.url).pathname.split("/").filter(Boolean);
    if (request.method === "GET" && first === "health") return answer(200, { ok: true });
    if (request.method === "POST" && first === "tasks" && !second) {
      await request.text();
      created += 1;
      const task = { id: `t${created}`, status: "running", steps: {} };
      for (const { key } of FLOW) task.steps[key] = { id: `${task.id}.${key}`, status: "waiting" };
      tasks.set(task.id, task);
      advance(task);
      return answer(201, { id: task.id, status: task.status });
    }
    if (request.method === "GET" && first === "tasks" && second) {
      const task = tasks.get(second);
      return task ? answer(200, { id: task.id, status: task.status }) : answer(404, { error: "no such task" });
    }
    if (request.method === "POST" && first === "agents" && third === "lease") {
      await request.text();
      const step = leasable.get(second)?.shift();
      if (!step) return new Response(null, { status: 204 });
      step.status = "leased";
      return answer(200, { step: { id: step.id, lease_id: step.id } });
    }
    if (request.method === "POST" && first === "steps" && third === "complete") {
      await request.text();
      const [taskId, key] = decodeURIComponent(second).split(".");
      const task = tasks.get(taskId);
      const step = task?.steps[key];
      if (!step) return answer(404, { error: "no such step" });
      if (step.status !== "leased") return answer(409, { error: "the step is not leased" });
      step.status = "succeeded";
      advance(task);
      return answer(200, { status: step.status });
    }
    return answer(404, { error: "no such route" });
  },
};
