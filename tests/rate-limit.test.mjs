// Rate limiting with wrangler.toml's own bindings at small limits: each client address and
// each bearer token has its own budget per window, over it is 429 with Retry-After, and one
// client's flood does not take another's requests.

import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { errorOf, startWorker } from "./helpers/worker.mjs";

const ADDRESS_LIMIT = 8;
const CREDENTIAL_LIMIT = 5;

describe("rate limiting", { timeout: 120_000 }, () => {
  let worker;
  before(async () => {
    worker = await startWorker({ rateLimits: { RATE_LIMIT_ADDRESS: ADDRESS_LIMIT, RATE_LIMIT_CREDENTIAL: CREDENTIAL_LIMIT } });
  });
  after(async () => {
    await worker?.stop();
  });

  const from = (address, path, headers = {}) => worker.fetch(path, { headers: { "cf-connecting-ip": address, ...headers } });
  /**
   * Runs `burst(attempt)` (statuses of a burst of requests) until it matches `expected`, at most
   * twice: the binding counts in fixed 10 s windows, and a burst that straddles the end of one
   * starts counting again; two bursts in a row cannot both straddle one.
   */
  async function inOneWindow(burst, expected) {
    let statuses = await burst(0);
    if (JSON.stringify(statuses) !== JSON.stringify(expected)) statuses = await burst(1);
    return statuses;
  }

  test("a client address gets its budget per window, then 429 with Retry-After", async () => {
    const expected = [...Array(ADDRESS_LIMIT).fill(200), 429, 429];
    let address;
    const statuses = await inOneWindow(async (attempt) => {
      address = `203.0.113.${10 + attempt}`;
      const seen = [];
      for (let i = 0; i < ADDRESS_LIMIT + 2; i += 1) seen.push((await from(address, "/health")).status);
      return seen;
    }, expected);
    assert.deepEqual(statuses, expected);
    const refused = await from(address, "/health");
    assert.equal(refused.status, 429);
    assert.equal(refused.headers.get("retry-after"), "10");
    assert.equal((await errorOf(refused)).code, "rate_limited");
    assert.equal((await from("203.0.113.12", "/health")).status, 200, "another address is not affected");
  });

  test("guessed tokens are limited per token before any lookup, and a flood of them from one address per address", async () => {
    const oneToken = [...Array(CREDENTIAL_LIMIT).fill(401), 429, 429];
    const statuses = await inOneWindow(async (attempt) => {
      const guess = { authorization: `Bearer sya_guessed-token-${attempt}` };
      const seen = [];
      for (let i = 0; i < CREDENTIAL_LIMIT + 2; i += 1) seen.push((await from(`198.51.${attempt}.${i}`, "/v1/whoami", guess)).status);
      return seen;
    }, oneToken);
    assert.deepEqual(statuses, oneToken, "one token, many addresses");
    const oneAddress = [...Array(ADDRESS_LIMIT).fill(401), 429, 429];
    const rotating = await inOneWindow(async (attempt) => {
      const seen = [];
      for (let i = 0; i < ADDRESS_LIMIT + 2; i += 1) {
        seen.push((await from(`192.0.2.${50 + attempt}`, "/v1/whoami", { authorization: `Bearer sya_guess-${attempt}-${i}` })).status);
      }
      return seen;
    }, oneAddress);
    assert.deepEqual(rotating, oneAddress, "many tokens, one address");
    // An address neither burst used: the second burst, if run, floods 192.0.2.51.
    const admin = await from("192.0.2.99", "/v1/whoami", { authorization: `Bearer ${worker.adminToken}` });
    assert.equal(admin.status, 200, "the admin's own budget is untouched");
  });

  test("a token found valid moments ago is charged to itself only, not to its address as well", async () => {
    // The agent's first request is looked up, so it is charged to both; the next ones (within
    // the isolate's 2 s memory of the token) only to the token. The address's budget is then
    // still there, all but one, for requests without a token.
    const agentRequests = CREDENTIAL_LIMIT - 1;
    const expected = [...Array(agentRequests).fill(200), ...Array(ADDRESS_LIMIT - 1).fill(200), 429];
    const statuses = await inOneWindow(async (attempt) => {
      const made = await worker.admin("/v1/agents", {
        method: "POST",
        headers: { "content-type": "application/json", "cf-connecting-ip": `192.0.2.${210 + attempt}` },
        body: JSON.stringify({ name: `rate-known-${attempt}` }),
      });
      assert.equal(made.status, 201);
      const { token } = await made.json();
      const address = `203.0.113.${100 + attempt}`;
      const seen = [];
      for (let i = 0; i < agentRequests; i += 1) seen.push((await from(address, "/v1/whoami", { authorization: `Bearer ${token}` })).status);
      for (let i = 0; i < ADDRESS_LIMIT; i += 1) seen.push((await from(address, "/health")).status);
      return seen;
    }, expected);
    assert.deepEqual(statuses, expected);
  });
});
