// The Worker's entry module: the Rust Worker (build/index.js, made by worker-build) behind a
// guard for the one failure Rust cannot answer itself.
//
// A Rust panic aborts the WebAssembly instance. worker-build's shim marks the instance for
// re-initialisation, but a request whose handler was running when it aborted would never get a
// response: its promise is left pending until the runtime gives up. The guard settles every
// such request with the API's JSON error envelope (500 `internal`) as soon as the instance
// aborts. Everything else, including every other error, is answered by the Rust code.

import { WorkerEntrypoint } from "cloudflare:workers";
import RustWorker from "../build/index.js";

// The per-agent Durable Object that holds waiting lease requests (src/shell/wakeup.rs).
export { AgentWake } from "../build/index.js";

// Kept equal to SECURITY_HEADERS in src/core/http.rs; a test compares the two responses.
const SECURITY_HEADERS = {
  "x-content-type-options": "nosniff",
  "referrer-policy": "no-referrer",
  "cache-control": "no-store",
  "strict-transport-security": "max-age=63072000; includeSubDomains",
  "content-security-policy": "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
  "x-frame-options": "DENY",
};

/** Callbacks of the invocations in flight, each failing its invocation when the instance aborts. */
const inFlight = new Set();

addEventListener("error", (event) => {
  if (event.error instanceof WebAssembly.RuntimeError) {
    for (const abort of inFlight) abort(event.error);
  }
});

/** Runs `work` and settles with `onAbort()` instead if the instance aborts first. */
async function guarded(work, onAbort) {
  let abort;
  const aborted = new Promise((resolve) => {
    abort = resolve;
  });
  inFlight.add(abort);
  try {
    return await Promise.race([work(), aborted.then(onAbort)]);
  } catch (error) {
    if (error instanceof WebAssembly.RuntimeError) return onAbort(error);
    throw error;
  } finally {
    inFlight.delete(abort);
  }
}

function crashResponse() {
  const body = JSON.stringify({
    error: {
      code: "internal",
      message: "internal error; the worker failed while handling this request",
      details: [],
    },
  });
  return new Response(body, {
    status: 500,
    headers: { "content-type": "application/json; charset=utf-8", vary: "Origin", ...SECURITY_HEADERS },
  });
}

export default class Switchyard extends WorkerEntrypoint {
  rust() {
    return new RustWorker(this.ctx, this.env);
  }

  fetch(request) {
    return guarded(() => this.rust().fetch(request), crashResponse);
  }

  // For queue batches and cron runs, an abort is rethrown: the batch is then retried by the
  // queue (and dead-lettered after max_retries), and the next cron tick runs again.
  queue(batch) {
    return guarded(() => this.rust().queue(batch), (error) => Promise.reject(error));
  }

  scheduled(controller) {
    return guarded(() => this.rust().scheduled(controller), (error) => Promise.reject(error));
  }
}
