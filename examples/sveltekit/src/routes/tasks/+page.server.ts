import { read } from "$lib/server/switchyard";
import type { PageServerLoad } from "./$types";

/** Tasks per page: a screenful on a desktop, and few enough for one quick D1 read. */
const PAGE_SIZE = 20;
const STATUSES = ["running", "succeeded", "failed", "cancelled"] as const;
type Status = (typeof STATUSES)[number];

export const load: PageServerLoad = async (event) => {
  const asked = event.url.searchParams.get("status");
  const status = STATUSES.find((s) => s === asked) as Status | undefined;
  const cursor = event.url.searchParams.get("cursor") || undefined;
  const page = await read(event, event.locals.switchyard.GET("/v1/tasks", { params: { query: { status, cursor, limit: PAGE_SIZE } } }));
  return { tasks: page.tasks, nextCursor: page.next_cursor, status: status ?? "", statuses: STATUSES, paged: Boolean(cursor) };
};
