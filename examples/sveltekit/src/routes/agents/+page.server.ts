import { fieldErrors, read } from "$lib/server/switchyard";
import { collect, markdown, ok, pages, SwitchyardError } from "@switchyard/client";
import { fail } from "@sveltejs/kit";
import type { Actions, PageServerLoad } from "./$types";

const AGENT_FIELDS = ["name", "description", "capabilities", "mode", "webhook_url"] as const;
const AGENT_NAME = /^[a-z0-9][a-z0-9-]{0,63}$/;
/** The API's limit on an imported subagent file (openapi.json). */
const SUBAGENT_FILE_BYTES_MAX = 65536;

export const load: PageServerLoad = async (event) => {
  const agents = await collect(
    pages((cursor) => read(event, event.locals.switchyard.GET("/v1/agents", { params: { query: { cursor, limit: 200 } } }))),
    (page) => page.agents,
  );
  return { agents };
};

/** A refusal other than a session problem or an outage becomes the form's errors. */
function refused(e: unknown, action: string, values: Record<string, string>) {
  if (!(e instanceof SwitchyardError) || e.status >= 500 || e.status === 401) throw e;
  return fail(e.status, { action, values, errors: fieldErrors(e, AGENT_FIELDS) });
}

export const actions: Actions = {
  create: async ({ request, locals }) => {
    const form = await request.formData();
    const values = Object.fromEntries(AGENT_FIELDS.map((f) => [f, String(form.get(f) ?? "").trim()]));
    const errors: Record<string, string> = {};
    if (!AGENT_NAME.test(values.name)) errors.name = "Use 1 to 64 lowercase letters, digits and dashes, starting with a letter or digit.";
    if (values.mode !== "pull" && values.mode !== "webhook") errors.mode = "Choose pull or webhook.";
    if (values.mode === "webhook" && !/^https?:\/\//.test(values.webhook_url)) errors.webhook_url = "A webhook agent needs an http(s) URL.";
    if (Object.keys(errors).length) return fail(400, { action: "create", values, errors });

    const capabilities = values.capabilities.split(",").map((c) => c.trim()).filter(Boolean);
    try {
      const created = await ok(
        locals.switchyard.POST("/v1/agents", {
          body: {
            name: values.name,
            description: values.description,
            capabilities,
            mode: values.mode as "pull" | "webhook",
            ...(values.mode === "webhook" ? { webhook_url: values.webhook_url } : {}),
          },
        }),
      );
      return { action: "create", agent: created.agent.name, token: created.token, webhookSecret: created.webhook_secret ?? null };
    } catch (e) {
      return refused(e, "create", values);
    }
  },

  import: async ({ request, locals }) => {
    const form = await request.formData();
    const upload = form.get("file");
    let text = String(form.get("text") ?? "");
    if (upload instanceof File && upload.size > 0) {
      if (upload.size > SUBAGENT_FILE_BYTES_MAX) return fail(400, { action: "import", values: {}, errors: { form: "The file is over 64 KiB." } });
      text = await upload.text();
    }
    if (!text.trim()) return fail(400, { action: "import", values: {}, errors: { form: "Choose a subagent file or paste one." } });
    try {
      const created = await ok(locals.switchyard.POST("/v1/agents/import", markdown(text)));
      return { action: "import", agent: created.agent.name, token: created.token, webhookSecret: null };
    } catch (e) {
      return refused(e, "import", { text });
    }
  },

  rotate: async ({ request, locals }) => {
    const form = await request.formData();
    const name = String(form.get("name") ?? "");
    if (!AGENT_NAME.test(name)) return fail(400, { action: "rotate", values: {}, errors: { form: "No such agent." } });
    try {
      const rotated = await ok(locals.switchyard.POST("/v1/agents/{name}/token", { params: { path: { name } } }));
      return { action: "rotate", agent: name, token: rotated.token ?? "", webhookSecret: null };
    } catch (e) {
      return refused(e, "rotate", {});
    }
  },
};
