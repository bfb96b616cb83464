// The generated types against the document the real Worker serves: a route, parameter or schema
// changed in openapi.json without `npm run generate` (or the reverse) fails here.
import { readFileSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
// @ts-expect-error: a plain JavaScript module without declarations.
import { DOCUMENT, generate, SCHEMA } from "../generate.mjs";
// @ts-expect-error: the integration test helpers are plain JavaScript without declarations.
import { startWorker } from "../../../tests/helpers/worker.mjs";
import { createClient, ok } from "../src/index.ts";

// Longer than startWorker's own readiness limit, so its error (with wrangler's output) is the one seen.
const WORKER_START_MS = 90_000;

describe("the generated types", () => {
  let worker: { url: string; stop: () => Promise<void> };
  let served: Record<string, unknown>;

  beforeAll(async () => {
    worker = await startWorker();
    const response = await fetch(`${worker.url}/openapi.json`);
    served = await response.json();
  }, WORKER_START_MS);

  afterAll(async () => {
    await worker?.stop();
  });

  it("come from the document the Worker serves", () => {
    const committed = JSON.parse(readFileSync(DOCUMENT, "utf8"));
    expect(served).toEqual(committed);
  });

  it("are what openapi-typescript makes of that document today", async () => {
    const generated = await generate(served);
    const committed = readFileSync(SCHEMA, "utf8");
    expect(committed, "src/schema.ts is stale: run `npm run generate -w @switchyard/client`").toBe(generated);
  });

  it("reach the real Worker through the client, its error codes included", async () => {
    const client = createClient({ baseUrl: worker.url });
    const health = await ok(client.GET("/health"));
    expect(health.status).toBe("ok");

    const error = await ok(client.GET("/v1/tasks")).catch((e: unknown) => e);
    expect(error).toMatchObject({ status: 401, code: "unauthorized" });
  });
});
