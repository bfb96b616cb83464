import { SESSION_COOKIE } from "$lib/server/switchyard";
import { redirect } from "@sveltejs/kit";
import type { Actions, PageServerLoad } from "./$types";

export const load: PageServerLoad = () => redirect(303, "/tasks");

export const actions: Actions = {
  default: async ({ locals, cookies }) => {
    // Ends the session in switchyard too, so a copied cookie stops working. An already expired
    // session (401) is as good as ended.
    if (locals.signedIn) await locals.switchyard.DELETE("/v1/sessions/current");
    cookies.delete(SESSION_COOKIE, { path: "/" });
    redirect(303, "/signin");
  },
};
