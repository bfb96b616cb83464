import { renderMarkdown } from "$lib/server/markdown";
import { read, readOptional } from "$lib/server/switchyard";
import { collect, pages, type Schemas } from "@switchyard/client";
import type { PageServerLoad } from "./$types";

/** Events read per page view: far more than the default workflow makes, and a bound on a runaway task. */
const EVENT_PAGES_MAX = 10;
const EVENTS_PER_PAGE = 200;
/** Logs up to this size are shown in the page; a default-workflow step adds well under 1 KiB. */
const LOG_INLINE_BYTES_MAX = 32 * 1024;
/** Conversations shown per task; each is one more request. */
const CONVERSATIONS_MAX = 10;

/** Routes that also speak markdown or YAML are typed as either; asked for JSON, they answer JSON. */
function json<T>(body: T | string): T {
  if (typeof body === "string") throw new Error("switchyard answered text where JSON was asked for");
  return body;
}

export const load: PageServerLoad = async (event) => {
  // The page invalidates this while the task runs, to refresh without reloading.
  event.depends("switchyard:task");
  const sy = event.locals.switchyard;
  const path = { id: event.params.id };

  // All at once: this runs every two seconds while a task runs. An unknown task is a 404 from each.
  const [{ task }, events, logList, metrics, summary] = await Promise.all([
    read(event, sy.GET("/v1/tasks/{id}", { params: { path } })),
    collect(
      pages(
        (cursor) => read(event, sy.GET("/v1/tasks/{id}/events", { params: { path, query: { cursor, limit: EVENTS_PER_PAGE } } })),
        { maxPages: EVENT_PAGES_MAX },
      ),
      (page) => page.events,
    ),
    read(event, sy.GET("/v1/tasks/{id}/logs", { params: { path } })),
    read(event, sy.GET("/v1/tasks/{id}/metrics", { params: { path }, headers: { accept: "application/json" } })),
    readOptional(event, sy.GET("/v1/tasks/{id}/summary", { params: { path }, headers: { accept: "application/json" } })),
  ]);

  // Short logs are shown in the page; longer ones (a log may reach 4 MiB) get a link instead, so
  // refreshing a running task does not move megabytes every two seconds.
  const logs = await Promise.all(
    logList.logs.map(async (log) => {
      const agent = log.agent ?? "";
      const bytes = log.bytes ?? 0;
      const inline = bytes <= LOG_INLINE_BYTES_MAX;
      const text = inline
        ? await readOptional(event, sy.GET("/v1/tasks/{id}/logs/{agent}", { params: { path: { id: task.id, agent } }, parseAs: "text" }))
        : null;
      return { agent, bytes, text };
    }),
  );

  // Messages about the task appear in its events; their payloads are read by conversation.
  const conversations = [
    ...new Set(events.filter((e) => e.kind === "message.sent").map((e) => String((e.data as { correlation_id?: unknown }).correlation_id))),
  ].slice(0, CONVERSATIONS_MAX);
  const messages: Schemas["Message"][] = (
    await Promise.all(
      conversations.map((correlation_id) => read(event, sy.GET("/v1/messages", { params: { query: { correlation_id, limit: 50 } } }))),
    )
  )
    .flatMap((page) => page.messages)
    .filter((m) => m.task_id === task.id)
    .sort((a, b) => a.seq - b.seq);

  return {
    task,
    events,
    logs,
    metrics: json(metrics).agents,
    messages,
    summary: summary ? { kind: json(summary).kind, html: renderMarkdown(json(summary).markdown) } : null,
  };
};
