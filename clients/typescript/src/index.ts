/**
 * A typed client for the switchyard HTTP API.
 *
 * Every route, parameter and body is typed from `schema.ts`, which `npm run generate` writes
 * from the repository's `openapi.json`; a test fails when the two differ, so the types cannot
 * drift from what the Worker serves. Requests go through `openapi-fetch` (`GET`, `POST`, `PUT`,
 * `DELETE` on the path as the document spells it); this module adds what every caller needs on
 * top: the bearer token, errors that carry the envelope's `code`, an `Idempotency-Key` helper,
 * markdown bodies and cursor paging.
 *
 * It must never read the environment or hold state beyond the options it was given: a SvelteKit
 * server creates one per request with that request's session.
 */
import createFetchClient, { type Client } from "openapi-fetch";
import type { components, operations, paths } from "./schema.js";

export type { components, operations, paths };

/** The document's schemas by name: `Schemas["Task"]`, `Schemas["Agent"]`, ... */
export type Schemas = components["schemas"];

/** Every `error.code` the API documents, plus the one this client uses for a body that is not the envelope. */
export type ErrorCode = Schemas["ErrorBody"]["code"] | "unexpected_response";

/** A request the API answered with a status of 400 or above. */
export class SwitchyardError extends Error {
  readonly status: number;
  readonly code: ErrorCode;
  /** The envelope's `details`: for `invalid_request`, one entry per problem with its `field`. */
  readonly details: unknown;
  /** From `Retry-After` on 429 and 503 answers. */
  readonly retryAfterSeconds: number | undefined;

  constructor(status: number, code: ErrorCode, message: string, details: unknown, retryAfterSeconds?: number) {
    super(message);
    this.name = "SwitchyardError";
    this.status = status;
    this.code = code;
    this.details = details;
    this.retryAfterSeconds = retryAfterSeconds;
  }

  /** Reads an error response: the envelope when it is one, a plain description when it is not. */
  static fromResponse(response: Response, body: unknown): SwitchyardError {
    const retryAfter = Number(response.headers.get("retry-after"));
    const retryAfterSeconds = Number.isFinite(retryAfter) && retryAfter > 0 ? retryAfter : undefined;
    const envelope = (body as { error?: { code?: unknown; message?: unknown; details?: unknown } } | null)?.error;
    if (envelope && typeof envelope.code === "string" && typeof envelope.message === "string") {
      return new SwitchyardError(response.status, envelope.code as ErrorCode, envelope.message, envelope.details ?? null, retryAfterSeconds);
    }
    const text = typeof body === "string" ? body.slice(0, 200) : "";
    const message = `switchyard answered ${response.status} without an error envelope${text ? `: ${text}` : ""}`;
    return new SwitchyardError(response.status, "unexpected_response", message, null, retryAfterSeconds);
  }
}

/** How requests leave: plain HTTPS, or a service binding's `fetch`. */
export type FetchLike = (request: Request) => Promise<Response>;

export interface ClientOptions {
  /**
   * Where switchyard answers, e.g. `https://switchyard.example.workers.dev`. With a service binding the
   * host is not used for routing; the default names no real host.
   */
  baseUrl?: string;
  /** Sent as `Authorization: Bearer …`: an admin token, an agent's `sya_` token or a `sys_` session id. */
  token?: string;
  /** `platform.env.SWITCHYARD.fetch` for a service binding; `globalThis.fetch` when absent. */
  fetch?: FetchLike;
}

export type SwitchyardClient = Client<paths>;

/** The host used with service bindings, where the binding, not the URL, picks the Worker. */
export const SERVICE_BINDING_BASE_URL = "https://switchyard.internal";

export function createClient(options: ClientOptions = {}): SwitchyardClient {
  const send: FetchLike = options.fetch ?? ((request) => globalThis.fetch(request));
  const client = createFetchClient<paths>({
    baseUrl: (options.baseUrl ?? SERVICE_BINDING_BASE_URL).replace(/\/+$/, ""),
    // A wrapper, not the binding's method itself: a service binding's fetch must be called on its binding.
    fetch: (request: Request) => send(request),
  });
  const token = options.token;
  if (token) {
    client.use({
      onRequest({ request }) {
        if (!request.headers.has("authorization")) request.headers.set("authorization", `Bearer ${token}`);
        return request;
      },
    });
  }
  return client;
}

/** What every `client.GET(...)`-style call resolves to. */
interface FetchResult<T> {
  data?: T;
  error?: unknown;
  response: Response;
}

/**
 * The data of a successful call, or a thrown `SwitchyardError` carrying the envelope's `code`:
 * `const { task } = await ok(client.GET("/v1/tasks/{id}", { params: { path: { id } } }))`.
 */
export async function ok<T>(call: Promise<FetchResult<T>>): Promise<T> {
  const { data, error, response } = await call;
  if (!response.ok) throw SwitchyardError.fromResponse(response, error);
  return data as T;
}

/** A fresh key for `POST /v1/tasks`: create it once per form or job, and send it again on every retry. */
export function newIdempotencyKey(): string {
  return crypto.randomUUID();
}

/** The header parameters that make a task submission idempotent. */
export function idempotent(key: string): { "Idempotency-Key": string } {
  return { "Idempotency-Key": key };
}

/**
 * Request options that send `text` as markdown, for `POST /v1/workflows` and `POST /v1/agents/import`:
 * `client.POST("/v1/workflows", markdown(file))`.
 */
export function markdown(text: string) {
  return {
    body: text,
    // Typed for every body a route takes, since a route may also take JSON; only the string is ever passed.
    bodySerializer: (body: unknown) => body as string,
    headers: { "content-type": "text/markdown" },
  } as const;
}

/** A page of any list route: its items under one name, and the cursor of the next page or null at the end. */
export interface Page {
  next_cursor?: string | null;
}

/** Refuses to loop forever on a server that keeps answering with cursors. */
export const PAGES_MAX = 1000;

/**
 * Every page of a cursor-paged list, first to last:
 * `for await (const page of pages((cursor) => ok(client.GET("/v1/tasks", { params: { query: { cursor } } })))) …`.
 * Stops at a null cursor, or when a cursor comes back unchanged.
 */
export async function* pages<P extends Page>(
  fetchPage: (cursor: string | undefined) => Promise<P>,
  { maxPages = PAGES_MAX }: { maxPages?: number } = {},
): AsyncGenerator<P> {
  let cursor: string | undefined;
  for (let n = 0; n < maxPages; n += 1) {
    const page = await fetchPage(cursor);
    yield page;
    const next = page.next_cursor ?? undefined;
    if (next === undefined || next === cursor) return;
    cursor = next;
  }
}

/** Every item of a cursor-paged list, e.g. `await collect(pages(...), (page) => page.tasks)`. */
export async function collect<P extends Page, T>(source: AsyncIterable<P>, items: (page: P) => T[]): Promise<T[]> {
  const all: T[] = [];
  for await (const page of source) all.push(...items(page));
  return all;
}
