// A webhook receiver as a real agent would run one: a loopback HTTP server that records what
// switchyard POSTs and checks its signatures with its own HMAC code.

import { createHmac, timingSafeEqual } from "node:crypto";
import { createServer } from "node:http";

/** The receiver's check: `v1=` HMAC-SHA256 of `timestamp.body`, and a fresh timestamp. */
export function verify(secret, headers, body, nowSeconds = Math.floor(Date.now() / 1000)) {
  const timestamp = headers["x-switchyard-timestamp"] ?? "";
  const given = Buffer.from(String(headers["x-switchyard-signature"] ?? ""));
  const expected = Buffer.from(`v1=${createHmac("sha256", secret).update(`${timestamp}.${body}`).digest("hex")}`);
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) return false;
  return Math.abs(nowSeconds - Number(timestamp)) <= 300;
}

/** A loopback server that records deliveries and answers with `answer(delivery)`. */
export async function receiver(answer) {
  const deliveries = [];
  const server = createServer((req, res) => {
    let body = "";
    req.on("data", (chunk) => (body += chunk));
    req.on("end", () => {
      const delivery = { headers: req.headers, body };
      deliveries.push(delivery);
      const { status, json } = answer(delivery);
      res.writeHead(status, { "content-type": "application/json" });
      res.end(json === undefined ? "" : JSON.stringify(json));
    });
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  return { url: `http://127.0.0.1:${server.address().port}/hook`, deliveries, close: () => server.close() };
}
