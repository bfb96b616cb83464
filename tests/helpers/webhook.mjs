// A webhook receiver as a real agent would run one: a loopback HTTP server that records what
// switchyard POSTs, checked with the `standardwebhooks` package (the Standard Webhooks
// reference library), not with switchyard's own code.

import { createServer } from "node:http";
import { Webhook } from "standardwebhooks";

/** The receiver's check: Standard Webhooks' verify (signature over id.timestamp.body, and a fresh timestamp). */
export function verify(secret, headers, body) {
  try {
    const picked = { "webhook-id": headers["webhook-id"], "webhook-timestamp": headers["webhook-timestamp"], "webhook-signature": headers["webhook-signature"] };
    new Webhook(secret).verify(body, picked);
    return true;
  } catch {
    return false;
  }
}

/** Headers for `body` signed with `secret` the Standard Webhooks way, as a sender (or a forger) would. */
export function signed(secret, id, body, at = new Date()) {
  return {
    "webhook-id": id,
    "webhook-timestamp": String(Math.floor(at.getTime() / 1000)),
    "webhook-signature": new Webhook(secret).sign(id, at, body),
  };
}

/** A loopback server that records deliveries and answers with `answer(delivery)` (or what its promise gives). */
export async function receiver(answer) {
  const deliveries = [];
  const server = createServer((req, res) => {
    let body = "";
    req.on("data", (chunk) => (body += chunk));
    req.on("end", () => {
      const delivery = { headers: req.headers, body };
      deliveries.push(delivery);
      Promise.resolve(answer(delivery)).then(({ status, json }) => {
        res.writeHead(status, { "content-type": "application/json" });
        res.end(json === undefined ? "" : JSON.stringify(json));
      });
    });
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  return { url: `http://127.0.0.1:${server.address().port}/hook`, deliveries, close: () => server.close() };
}
