// What the bench's two reference Workers (ceiling-worker.js, bare-durable-worker.js) share:
// switchyard's default flow for a full-stack task (six agent steps, 1 → 2a ∥ 2b → 3 → 5 → 6, the
// same agents), the rule that makes its steps leasable, and the answer the peers' driver reads.
// Never a part of switchyard.

export const FLOW = [
  { key: "1", agent: "context-fetcher", after: [] },
  { key: "2a", agent: "cloudflare-specialist", after: ["1"] },
  { key: "2b", agent: "sveltekit-specialist", after: ["1"] },
  { key: "3", agent: "project-manager", after: ["2a", "2b"] },
  { key: "5", agent: "test-runner", after: ["3"] },
  { key: "6", agent: "project-manager", after: ["5"] },
];

/** The steps of FLOW to make leasable, given each step's status by key: the waiting ones whose
 * steps before them all succeeded. */
export function leasableNow(status) {
  return FLOW.filter(({ key, after }) => status[key] === "waiting" && after.every((before) => status[before] === "succeeded"));
}

/** Whether every step of FLOW succeeded, given each step's status by key. */
export function allSucceeded(status) {
  return FLOW.every(({ key }) => status[key] === "succeeded");
}

/** A JSON answer with `status`. */
export function answer(status, body) {
  return new Response(JSON.stringify(body), { status, headers: { "content-type": "application/json" } });
}
