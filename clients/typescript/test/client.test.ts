import { describe, expect, it } from "vitest";
import { collect, createClient, idempotent, markdown, newIdempotencyKey, ok, pages, SwitchyardError } from "../src/index.ts";

/** A fetch that records each request and answers from a list of canned responses, in order. */
function fakeFetch(...answers: Array<() => Response>) {
  const requests: Request[] = [];
  const fetch = async (request: Request) => {
    requests.push(request);
    const answer = answers[requests.length - 1];
    if (!answer) throw new Error(`unexpected request ${request.method} ${request.url}`);
    return answer();
  };
  return { fetch, requests };
}

const json = (status: number, body: unknown, headers: Record<string, string> = {}) => () =>
  new Response(JSON.stringify(body), { status, headers: { "content-type": "application/json", ...headers } });

const envelope = (code: string, message: string, details: unknown = null) => ({ error: { code, message, details } });

describe("createClient", () => {
  it("sends the token as a bearer and builds the path from its parameters", async () => {
    const fake = fakeFetch(json(200, { task: { id: "t 1", status: "running", steps: [] } }));
    const client = createClient({ baseUrl: "https://sy.example/", token: "sys_abc", fetch: fake.fetch });

    const { task } = await ok(client.GET("/v1/tasks/{id}", { params: { path: { id: "t 1" } } }));

    expect(task.id).toBe("t 1");
    expect(fake.requests[0].url).toBe("https://sy.example/v1/tasks/t%201");
    expect(fake.requests[0].headers.get("authorization")).toBe("Bearer sys_abc");
  });

  it("sends no authorization header without a token", async () => {
    const fake = fakeFetch(json(201, { session_id: "sys_x", expires_at: "2026-01-01T00:00:00Z", principal: {} }));
    const client = createClient({ baseUrl: "https://sy.example", fetch: fake.fetch });

    const session = await ok(client.POST("/v1/sessions", { body: { token: "admin-token" } }));

    expect(session.session_id).toBe("sys_x");
    expect(fake.requests[0].headers.has("authorization")).toBe(false);
    expect(await fake.requests[0].json()).toEqual({ token: "admin-token" });
  });

  it("works through a service binding's fetch, which is called with a Request on the binding's own host", async () => {
    const binding = {
      seen: [] as string[],
      async fetch(this: { seen: string[] }, request: Request) {
        this.seen.push(request.url);
        return new Response(JSON.stringify({ status: "ok", checks: [] }), { headers: { "content-type": "application/json" } });
      },
    };
    const client = createClient({ token: "t", fetch: (request) => binding.fetch(request) });

    await ok(client.GET("/health"));

    expect(binding.seen).toEqual(["https://switchyard.internal/health"]);
  });

  it("encodes list queries, cursors included", async () => {
    const fake = fakeFetch(json(200, { tasks: [], next_cursor: null }));
    const client = createClient({ baseUrl: "https://sy.example", fetch: fake.fetch });

    await ok(client.GET("/v1/tasks", { params: { query: { status: "running", cursor: "a+b/c", limit: 5 } } }));

    const url = new URL(fake.requests[0].url);
    expect(url.searchParams.get("status")).toBe("running");
    expect(url.searchParams.get("cursor")).toBe("a+b/c");
    expect(url.searchParams.get("limit")).toBe("5");
  });
});

describe("ok", () => {
  it("throws a SwitchyardError carrying the envelope's code, message and details", async () => {
    const details = [{ field: "title", message: "must not be empty" }];
    const fake = fakeFetch(json(422, envelope("invalid_request", "the task is invalid", details)));
    const client = createClient({ baseUrl: "https://sy.example", fetch: fake.fetch });

    const error = await ok(client.POST("/v1/tasks", { body: { title: "" } })).catch((e: unknown) => e);

    expect(error).toBeInstanceOf(SwitchyardError);
    expect(error).toMatchObject({ status: 422, code: "invalid_request", message: "the task is invalid", details });
  });

  it("reads Retry-After on a 429", async () => {
    const fake = fakeFetch(json(429, envelope("rate_limited", "slow down"), { "retry-after": "7" }));
    const client = createClient({ baseUrl: "https://sy.example", fetch: fake.fetch });

    const error = (await ok(client.GET("/v1/agents")).catch((e: unknown) => e)) as SwitchyardError;

    expect(error.code).toBe("rate_limited");
    expect(error.retryAfterSeconds).toBe(7);
  });

  it("names a body that is not the envelope unexpected_response and quotes its start", async () => {
    const fake = fakeFetch(() => new Response("<html>Bad gateway</html>", { status: 502, headers: { "content-type": "text/html" } }));
    const client = createClient({ baseUrl: "https://sy.example", fetch: fake.fetch });

    const error = (await ok(client.GET("/health")).catch((e: unknown) => e)) as SwitchyardError;

    expect(error.status).toBe(502);
    expect(error.code).toBe("unexpected_response");
    expect(error.message).toContain("Bad gateway");
  });

  it("resolves a 204 to undefined", async () => {
    const fake = fakeFetch(() => new Response(null, { status: 204 }));
    const client = createClient({ baseUrl: "https://sy.example", token: "sys_x", fetch: fake.fetch });

    await expect(ok(client.DELETE("/v1/sessions/current"))).resolves.toBeUndefined();
    expect(fake.requests[0].method).toBe("DELETE");
  });
});

describe("idempotency keys", () => {
  it("sends the key as the Idempotency-Key header", async () => {
    const fake = fakeFetch(json(201, { task: { id: "t" } }));
    const client = createClient({ baseUrl: "https://sy.example", fetch: fake.fetch });
    const key = newIdempotencyKey();

    await ok(client.POST("/v1/tasks", { params: { header: idempotent(key) }, body: { title: "x" } }));

    expect(fake.requests[0].headers.get("idempotency-key")).toBe(key);
  });

  it("makes keys the API accepts and never the same twice", () => {
    const keys = new Set(Array.from({ length: 100 }, () => newIdempotencyKey()));
    expect(keys.size).toBe(100);
    for (const key of keys) expect(key).toMatch(/^[\x21-\x7e]{1,128}$/);
  });
});

describe("markdown", () => {
  it("sends the text unchanged as text/markdown", async () => {
    const fake = fakeFetch(json(201, { name: "w", version: 1, steps: [], warnings: [] }));
    const client = createClient({ baseUrl: "https://sy.example", fetch: fake.fetch });
    const text = '# Workflow\n\n<process_flow>\n<step number="1" name="a">"quoted"</step>\n</process_flow>\n';

    await ok(client.POST("/v1/workflows", markdown(text)));

    expect(fake.requests[0].headers.get("content-type")).toBe("text/markdown");
    expect(await fake.requests[0].text()).toBe(text);
  });
});

describe("pages", () => {
  it("follows next_cursor until it is null and passes each cursor back unchanged", async () => {
    const seen: Array<string | undefined> = [];
    const book: Record<string, { tasks: number[]; next_cursor: string | null }> = {
      start: { tasks: [1, 2], next_cursor: "c1" },
      c1: { tasks: [3], next_cursor: "c2" },
      c2: { tasks: [4], next_cursor: null },
    };

    const all = await collect(
      pages(async (cursor) => {
        seen.push(cursor);
        return book[cursor ?? "start"];
      }),
      (page) => page.tasks,
    );

    expect(all).toEqual([1, 2, 3, 4]);
    expect(seen).toEqual([undefined, "c1", "c2"]);
  });

  it("stops when a cursor comes back unchanged instead of looping", async () => {
    let calls = 0;
    const all = await collect(
      pages(async () => {
        calls += 1;
        return { items: [calls], next_cursor: "same" };
      }),
      (page) => page.items,
    );
    expect(all).toEqual([1, 2]);
  });

  it("stops after maxPages", async () => {
    let calls = 0;
    for await (const _ of pages(async () => ({ next_cursor: `c${(calls += 1)}` }), { maxPages: 3 })) void _;
    expect(calls).toBe(3);
  });

  it("stops at the first error and lets it through", async () => {
    const fake = fakeFetch(json(200, { tasks: [{ id: "a" }], next_cursor: "c1" }), json(400, envelope("bad_request", "bad cursor")));
    const client = createClient({ baseUrl: "https://sy.example", fetch: fake.fetch });

    const run = collect(
      pages((cursor) => ok(client.GET("/v1/tasks", { params: { query: { cursor } } }))),
      (page) => page.tasks,
    );

    await expect(run).rejects.toMatchObject({ code: "bad_request" });
    expect(fake.requests).toHaveLength(2);
  });
});
