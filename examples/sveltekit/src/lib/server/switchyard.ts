/**
 * How the dashboard talks to switchyard: which transport (the plain URL in `SWITCHYARD_URL`, or
 * the `SWITCHYARD` service binding), the session cookie, and what a refused call turns into.
 *
 * Server-only (`$lib/server`): the session id and the switchyard URL never reach the browser.
 */
import { env } from "$env/dynamic/private";
import { createClient, ok, SwitchyardError, type SwitchyardClient } from "@switchyard/client";
import { error, redirect, type RequestEvent } from "@sveltejs/kit";

/** The httpOnly cookie that holds the switchyard session id (`sys_…`), never the admin token. */
export const SESSION_COOKIE = "switchyard_session";

/** A client for this request: as `sessionId` when given, anonymous otherwise. */
export function clientFor(event: Pick<RequestEvent, "platform">, sessionId?: string): SwitchyardClient {
  const url = env.SWITCHYARD_URL;
  if (url) return createClient({ baseUrl: url, token: sessionId });
  const binding = event.platform?.env?.SWITCHYARD;
  if (binding) return createClient({ token: sessionId, fetch: (request) => binding.fetch(request) });
  error(500, { message: "switchyard is not configured: set SWITCHYARD_URL or add the SWITCHYARD service binding" });
}

/** Where to go after signing in: a path on this site, never another origin. */
export function safeNext(next: string | null): string {
  return next && next.startsWith("/") && !next.startsWith("//") && !next.startsWith("/\\") ? next : "/tasks";
}

export function signInUrl(event: Pick<RequestEvent, "url">): string {
  return `/signin?next=${encodeURIComponent(event.url.pathname + event.url.search)}`;
}

/**
 * The data of a call made while loading a page. An expired or ended session (401) signs the
 * user out and sends them to sign in; any other refusal becomes the page's error with
 * switchyard's message and code.
 */
export async function read<T>(event: RequestEvent, call: Promise<{ data?: T; error?: unknown; response: Response }>): Promise<T> {
  try {
    return await ok(call);
  } catch (e) {
    if (!(e instanceof SwitchyardError)) throw e;
    if (e.status === 401) {
      event.cookies.delete(SESSION_COOKIE, { path: "/" });
      redirect(303, signInUrl(event));
    }
    error(e.status >= 500 ? 502 : e.status, { message: e.message, code: e.code });
  }
}

/** Like `read`, but a 404 (a summary not written yet, say) is `null` rather than an error page. */
export async function readOptional<T>(
  event: RequestEvent,
  call: Promise<{ data?: T; error?: unknown; response: Response }>,
): Promise<T | null> {
  const result = await call;
  if (result.response.status === 404) return null;
  return read(event, Promise.resolve(result));
}

/**
 * The problems of a refused form submission by field, from the envelope's `details`
 * (`[{ field, message }]`); problems of no known field go under `form`.
 */
export function fieldErrors(e: SwitchyardError, fields: readonly string[]): Record<string, string> {
  const errors: Record<string, string> = {};
  const details = Array.isArray(e.details) ? (e.details as Array<{ field?: unknown; message?: unknown }>) : [];
  for (const detail of details) {
    const field = typeof detail.field === "string" ? detail.field.replace(/[.[].*$/, "") : "";
    const key = fields.includes(field) ? field : "form";
    const message = typeof detail.message === "string" ? detail.message : e.message;
    errors[key] = errors[key] ? `${errors[key]} ${message}` : message;
  }
  if (Object.keys(errors).length === 0) errors.form = e.message;
  return errors;
}
