// Compiled by `tsc --noEmit` (npm test runs it), never executed: each line is a call a user writes,
// and the build fails when the generated types stop accepting it or stop typing its answer.
import { collect, createClient, idempotent, markdown, ok, pages, type Schemas } from "../src/index.ts";

const client = createClient({ baseUrl: "https://switchyard.example", token: "sys_example" });

export async function usage() {
  const { task } = await ok(client.GET("/v1/tasks/{id}", { params: { path: { id: "t" } } }));
  const status: Schemas["Task"]["status"] = task.status;
  const stepStatuses: string[] = task.steps.map((step) => step.status);
  const created = await ok(
    client.POST("/v1/tasks", { params: { header: idempotent("key-1") }, body: { title: "Add a login page", requirements: ["Use Svelte 5"] } }),
  );
  const workflow = await ok(client.POST("/v1/workflows", markdown("# Workflow")));
  const imported = await ok(client.POST("/v1/agents/import", markdown("---\nname: x\n---")));
  const tasks = await collect(
    pages((cursor) => ok(client.GET("/v1/tasks", { params: { query: { cursor, status: "running" } } }))),
    (page) => page.tasks,
  );
  const summary = await ok(
    client.GET("/v1/tasks/{id}/summary", { params: { path: { id: "t" } }, parseAs: "text", headers: { accept: "text/markdown" } }),
  );
  const session = await ok(client.POST("/v1/sessions", { body: { token: "admin" } }));
  await ok(client.DELETE("/v1/sessions/current"));
  // @ts-expect-error: a task has no `colour`
  task.colour;
  // @ts-expect-error: `title` is required
  await client.POST("/v1/tasks", { body: { description: "no title" } });
  // @ts-expect-error: not a route
  await client.GET("/v1/nothing-here");
  return { status, stepStatuses, created: created.task.id, workflow: workflow.version, imported: imported.agent, tasks, summary, session: session.session_id };
}
