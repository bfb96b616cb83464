import { checkTaskForm, readTaskForm, TASK_FIELDS } from "$lib/server/task-form";
import { fieldErrors, read } from "$lib/server/switchyard";
import { collect, idempotent, newIdempotencyKey, ok, pages, SwitchyardError } from "@switchyard/client";
import { fail, redirect } from "@sveltejs/kit";
import type { Actions, PageServerLoad } from "./$types";

/** An Idempotency-Key is 1 to 128 printable ASCII characters (openapi.json). */
const IDEMPOTENCY_KEY = /^[\x21-\x7e]{1,128}$/;

export const load: PageServerLoad = async (event) => {
  const workflows = await collect(
    pages((cursor) => read(event, event.locals.switchyard.GET("/v1/workflows", { params: { query: { cursor, limit: 200 } } }))),
    (page) => page.workflows,
  );
  // The key is made with the form, so submitting the same form twice (a double click, a retried
  // request) gives the one task rather than two.
  return { idempotencyKey: newIdempotencyKey(), workflows: [...new Set(workflows.map((w) => w.name))] };
};

export const actions: Actions = {
  default: async (event) => {
    const form = await event.request.formData();
    const values = readTaskForm(form);
    const key = String(form.get("idempotency_key") ?? "");
    const checked = checkTaskForm(values);
    if ("errors" in checked) return fail(400, { values, errors: checked.errors, idempotencyKey: key });
    if (!IDEMPOTENCY_KEY.test(key)) return fail(400, { values, errors: { form: "The form is out of date; submit it again." }, idempotencyKey: newIdempotencyKey() });

    let created;
    try {
      created = await ok(event.locals.switchyard.POST("/v1/tasks", { params: { header: idempotent(key) }, body: checked.body }));
    } catch (e) {
      if (!(e instanceof SwitchyardError) || e.status >= 500 || e.status === 401) throw e;
      // A refused submission takes a new key: the corrected form is another request.
      return fail(e.status, { values, errors: fieldErrors(e, TASK_FIELDS), idempotencyKey: newIdempotencyKey() });
    }
    redirect(303, `/tasks/${encodeURIComponent(created.task.id)}`);
  },
};
