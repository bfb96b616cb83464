// A stand-in switchyard on loopback for runner tests that need an answer the real Worker never
// gives (a part that is gone, a heartbeat refused as too large): it hands out one step to one
// agent, records what the runner sends, and answers the rest as `answer` says.

import { createServer } from "node:http";

/**
 * `step` is leased once to `agent`; `answer(req, body)` may return [status, json] for any other
 * request (return nothing for the defaults: 200 {} to completions, 404 otherwise).
 */
export async function fakeSwitchyard(agent, step, answer = () => undefined) {
  const state = { completions: [], requests: [] };
  let leased = false;
  const server = createServer((req, res) => {
    let raw = "";
    req.on("data", (c) => (raw += c));
    req.on("end", () => {
      const send = (status, value) => {
        res.writeHead(status, { "content-type": "application/json" });
        res.end(value === undefined ? "" : JSON.stringify(value));
      };
      const body = raw ? JSON.parse(raw) : undefined;
      state.requests.push({ url: req.url, body, at: Date.now() });
      if (req.url === "/v1/whoami") return send(200, { principal: "agent", agent });
      if (req.url.startsWith(`/v1/agents/${agent}/lease`)) {
        if (leased) return send(204);
        leased = true;
        return send(200, { step });
      }
      const custom = answer(req, body);
      if (custom) return send(...custom);
      if (req.url.endsWith("/complete")) {
        state.completions.push(body);
        return send(200, {});
      }
      return send(404, { error: { code: "not_found", message: "no route", details: [] } });
    });
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  return { url: `http://127.0.0.1:${server.address().port}`, state, close: () => server.close() };
}
