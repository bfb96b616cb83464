import { read } from "$lib/server/switchyard";
import { collect, markdown, ok, pages, SwitchyardError } from "@switchyard/client";
import { fail } from "@sveltejs/kit";
import type { Actions, PageServerLoad } from "./$types";

/** The API's limit on an instruction file (openapi.json). */
const INSTRUCTION_FILE_BYTES_MAX = 262144;

/** One problem of an instruction file, where the file has it. */
export interface FileProblem {
  line: number | null;
  column: number | null;
  message: string;
}

export const load: PageServerLoad = async (event) => {
  const workflows = await collect(
    pages((cursor) => read(event, event.locals.switchyard.GET("/v1/workflows", { params: { query: { cursor, limit: 200 } } }))),
    (page) => page.workflows,
  );
  return { workflows };
};

function problemsOf(e: SwitchyardError): FileProblem[] {
  const details = Array.isArray(e.details) ? (e.details as Array<{ line?: unknown; column?: unknown; field?: unknown; message?: unknown }>) : [];
  const problems = details.map((d) => ({
    line: typeof d.line === "number" ? d.line : null,
    column: typeof d.column === "number" ? d.column : null,
    message: `${typeof d.field === "string" ? `${d.field}: ` : ""}${typeof d.message === "string" ? d.message : ""}`,
  }));
  return problems.length ? problems : [{ line: null, column: null, message: e.message }];
}

export const actions: Actions = {
  upload: async ({ request, locals }) => {
    const form = await request.formData();
    const upload = form.get("file");
    let text = String(form.get("text") ?? "");
    if (upload instanceof File && upload.size > 0) {
      if (upload.size > INSTRUCTION_FILE_BYTES_MAX) return fail(400, { text: "", problems: [{ line: null, column: null, message: "The file is over 256 KiB." }] });
      text = await upload.text();
    }
    if (!text.trim()) return fail(400, { text, problems: [{ line: null, column: null, message: "Choose an instruction file or paste one." }] });
    try {
      const created = await ok(locals.switchyard.POST("/v1/workflows", markdown(text)));
      return { created: { name: created.name, version: created.version, steps: created.steps.length, warnings: created.warnings } };
    } catch (e) {
      if (!(e instanceof SwitchyardError) || e.status >= 500 || e.status === 401) throw e;
      return fail(e.status, { text, problems: problemsOf(e) });
    }
  },
};
