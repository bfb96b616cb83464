/**
 * The "new task" form: reading it and checking it on the server before anything is sent, with
 * the limits of the API's TaskRequest so that a user sees every problem at once, by field.
 */
import { lines } from "$lib/format";
import type { Schemas } from "@switchyard/client";

export const TASK_FIELDS = ["title", "description", "requirements", "paths", "workflow"] as const;

// The API's limits (openapi.json, TaskRequest); switchyard checks them again.
const TITLE_CHARS_MAX = 1024;
const DESCRIPTION_CHARS_MAX = 8192;
const REQUIREMENTS_MAX = 64;
const REQUIREMENT_CHARS_MAX = 256;
const PATHS_MAX = 256;
const PATH_CHARS_MAX = 512;
const WORKFLOW = /^[a-z0-9][a-z0-9-]{0,63}(@[1-9][0-9]{0,8})?$/;

export interface TaskFormValues {
  title: string;
  description: string;
  requirements: string;
  paths: string;
  workflow: string;
}

/** What `POST /v1/tasks` takes, as the client's generated types say. */
export type TaskRequestBody = Schemas["TaskRequest"];

export function readTaskForm(form: FormData): TaskFormValues {
  const text = (name: string) => String(form.get(name) ?? "");
  return {
    title: text("title"),
    description: text("description"),
    requirements: text("requirements"),
    paths: text("paths"),
    workflow: text("workflow"),
  };
}

/** The request body, or the problems by field. */
export function checkTaskForm(values: TaskFormValues): { body: TaskRequestBody } | { errors: Record<string, string> } {
  const errors: Record<string, string> = {};
  const title = values.title.trim();
  const description = values.description.trim();
  const requirements = lines(values.requirements);
  const paths = lines(values.paths);
  const workflow = values.workflow.trim();

  if (!title) errors.title = "Enter a title: what the task should achieve.";
  else if (title.length > TITLE_CHARS_MAX) errors.title = `Keep the title under ${TITLE_CHARS_MAX} characters (it has ${title.length}).`;
  if (description.length > DESCRIPTION_CHARS_MAX)
    errors.description = `Keep the description under ${DESCRIPTION_CHARS_MAX} characters (it has ${description.length}).`;
  if (requirements.length > REQUIREMENTS_MAX) errors.requirements = `List at most ${REQUIREMENTS_MAX} requirements (there are ${requirements.length}).`;
  else if (requirements.some((r) => r.length > REQUIREMENT_CHARS_MAX))
    errors.requirements = `Keep each requirement under ${REQUIREMENT_CHARS_MAX} characters.`;
  if (paths.length > PATHS_MAX) errors.paths = `List at most ${PATHS_MAX} paths (there are ${paths.length}).`;
  else if (paths.some((p) => p.length > PATH_CHARS_MAX)) errors.paths = `Keep each path under ${PATH_CHARS_MAX} characters.`;
  if (workflow && !WORKFLOW.test(workflow)) errors.workflow = "Choose a workflow from the list.";

  if (Object.keys(errors).length > 0) return { errors };
  const body: TaskRequestBody = { title };
  if (description) body.description = description;
  if (requirements.length) body.requirements = requirements;
  if (paths.length) body.paths = paths;
  if (workflow) body.workflow = workflow;
  return { body };
}
