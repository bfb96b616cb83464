import { read } from "$lib/server/switchyard";
import type { PageServerLoad } from "./$types";

export const load: PageServerLoad = async (event) => {
  const workflow = await read(event, event.locals.switchyard.GET("/v1/workflows/{name}", { params: { path: { name: event.params.name } } }));
  return { workflow };
};
