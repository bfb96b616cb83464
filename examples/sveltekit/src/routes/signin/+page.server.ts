import { clientFor, safeNext, SESSION_COOKIE } from "$lib/server/switchyard";
import { ok, SwitchyardError } from "@switchyard/client";
import { fail, redirect } from "@sveltejs/kit";
import type { Actions, PageServerLoad } from "./$types";

export const load: PageServerLoad = ({ locals, url }) => {
  if (locals.signedIn) redirect(303, safeNext(url.searchParams.get("next")));
};

export const actions: Actions = {
  default: async (event) => {
    const form = await event.request.formData();
    const token = String(form.get("token") ?? "").trim();
    if (!token) return fail(400, { error: "Enter the admin token." });

    // The token is traded for a session at once and never stored: the cookie holds only the session id.
    const anonymous = clientFor(event);
    let session;
    try {
      session = await ok(anonymous.POST("/v1/sessions", { body: { token } }));
    } catch (e) {
      if (!(e instanceof SwitchyardError)) throw e;
      if (e.code === "rate_limited") return fail(429, { error: `Too many attempts. Try again in ${e.retryAfterSeconds ?? 10} seconds.` });
      if (e.status < 500) return fail(400, { error: "switchyard did not accept that token." });
      throw e;
    }
    if (session.principal.principal !== "admin") {
      // An agent's token makes a valid session, but this dashboard manages the whole system.
      await clientFor(event, session.session_id).DELETE("/v1/sessions/current");
      return fail(403, { error: "That is an agent's token. Sign in with the admin token." });
    }

    event.cookies.set(SESSION_COOKIE, session.session_id, {
      path: "/",
      httpOnly: true,
      sameSite: "lax",
      secure: event.url.protocol === "https:",
      expires: new Date(session.expires_at),
    });
    redirect(303, safeNext(event.url.searchParams.get("next")));
  },
};
