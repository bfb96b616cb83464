import { clientFor, SESSION_COOKIE, signInUrl } from "$lib/server/switchyard";
import { redirect, type Handle, type HandleServerError } from "@sveltejs/kit";

/** Pages anyone may open; every other page needs a session. */
const PUBLIC_PATHS = new Set(["/signin"]);

export const handle: Handle = async ({ event, resolve }) => {
  const sessionId = event.cookies.get(SESSION_COOKIE);
  event.locals.signedIn = Boolean(sessionId);
  event.locals.switchyard = clientFor(event, sessionId);
  if (!sessionId && !PUBLIC_PATHS.has(event.url.pathname)) redirect(303, signInUrl(event));

  const response = await resolve(event);
  response.headers.set("referrer-policy", "same-origin");
  response.headers.set("x-content-type-options", "nosniff");
  return response;
};

export const handleError: HandleServerError = ({ error, status }) => {
  // The message of an unexpected error may hold internals; log it here and show a plain one.
  if (status >= 500) console.error(error);
  return { message: status === 404 ? "Not found" : "Something went wrong talking to switchyard." };
};
