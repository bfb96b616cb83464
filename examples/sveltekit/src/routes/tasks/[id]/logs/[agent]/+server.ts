import { read } from "$lib/server/switchyard";
import type { RequestHandler } from "./$types";

/** One agent's whole log for a task, as plain text: the link the task page gives for long logs. */
export const GET: RequestHandler = async (event) => {
  const text = await read(
    event,
    event.locals.switchyard.GET("/v1/tasks/{id}/logs/{agent}", { params: { path: { id: event.params.id, agent: event.params.agent } }, parseAs: "text" }),
  );
  return new Response(text, { headers: { "content-type": "text/plain; charset=utf-8", "cache-control": "no-store" } });
};
