// The example SvelteKit dashboard end to end, in headless Chromium: sign in, a refused and then an
// accepted "new task" form, the task running to the end while simulated agents complete its steps
// (the page updates itself), its summary, a child run nested under its step, the agents and
// workflows pages, sign out. Screenshots of the main pages at desktop and phone sizes go to
// test-artifacts/screenshots/. The app runs
// under `vite preview` with SWITCHYARD_URL, and then as a Worker in workerd reaching switchyard
// through its service binding.

import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { agent, issueToken, workTask } from "./helpers/agents.mjs";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  browserMissing,
  buildDashboard,
  launchBrowser,
  screenshot,
  startDashboard,
  startDashboardOnWorkerd,
} from "./helpers/dashboard.mjs";
import { ADMIN_TOKEN, startWorker } from "./helpers/worker.mjs";

const DEFAULT_AGENTS = ["context-fetcher", "cloudflare-specialist", "sveltekit-specialist", "project-manager", "test-runner"];
const FULL_STACK_TITLE = "Add a D1-backed comments API and a SvelteKit page that lists the comments";
const DESKTOP = { width: 1280, height: 900 };
const PHONE = { width: 390, height: 844 };
/** How long the page may take to show what switchyard already says (it refreshes every 2 s). */
const UI_TIMEOUT_MS = 20_000;

const missing = browserMissing();

/**
 * Opens a page and waits until its scripts have loaded and hydrated it. Typing into a form
 * before hydration can be undone by it, and a click can go to a native submit meanwhile.
 */
async function open(page, url) {
  await page.goto(url, { waitUntil: "networkidle" });
}

describe("the SvelteKit dashboard in a browser", { timeout: 600_000, skip: missing ?? false }, () => {
  let worker;
  let dashboard;
  let browser;

  before(async () => {
    buildDashboard();
    worker = await startWorker();
    dashboard = await startDashboard({ switchyardUrl: worker.url });
    browser = await launchBrowser();
  });
  after(async () => {
    await browser?.close();
    await dashboard?.stop();
    await worker?.stop();
  });

  const taskCount = async () => (await (await worker.admin("/v1/tasks?limit=200")).json()).tasks.length;

  async function signIn(page) {
    await open(page, `${dashboard.url}/tasks`);
    await page.getByLabel("Admin token").fill(ADMIN_TOKEN);
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.waitForURL(`${dashboard.url}/tasks`);
  }

  test("signing in trades the admin token for a session kept in an httpOnly cookie; a wrong token is refused", async () => {
    const context = await browser.newContext({ viewport: DESKTOP });
    const page = await context.newPage();

    await open(page, `${dashboard.url}/tasks`);
    assert.equal(new URL(page.url()).pathname, "/signin", "an anonymous visitor is sent to sign in");
    await screenshot(page, "signin-desktop");

    await page.getByLabel("Admin token").fill("not-the-token");
    await page.getByRole("button", { name: "Sign in" }).click();
    const alert = page.getByRole("alert");
    await alert.waitFor({ timeout: UI_TIMEOUT_MS });
    assert.match(await alert.innerText(), /did not accept/);
    assert.equal(await page.evaluate(() => document.activeElement?.closest("[role=alert]") !== null), true, "focus moves to the error");
    assert.equal((await context.cookies()).length, 0);

    await page.getByLabel("Admin token").fill(ADMIN_TOKEN);
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.waitForURL(`${dashboard.url}/tasks`);
    const [cookie] = await context.cookies();
    assert.equal(cookie.name, "switchyard_session");
    assert.equal(cookie.httpOnly, true);
    assert.equal(cookie.sameSite, "Lax");
    assert.match(cookie.value, /^sys_/, "the cookie holds a session id, never the admin token");
    const whoami = await worker.fetch("/v1/whoami", { headers: { authorization: `Bearer ${cookie.value}` } });
    assert.equal((await whoami.json()).principal, "admin");
    await context.close();
  });

  test("a new task: an invalid form shows its errors and stores nothing, a valid one runs live to its summary", async () => {
    const context = await browser.newContext({ viewport: DESKTOP });
    const page = await context.newPage();
    await signIn(page);
    const tokens = {};
    for (const name of DEFAULT_AGENTS) tokens[name] = await issueToken(worker, name);
    const before = await taskCount();

    await page.getByRole("link", { name: "New task" }).first().click();
    await page.waitForURL(`${dashboard.url}/tasks/new`);
    // Spaces pass the browser's `required` check; the server's validation catches them.
    await page.getByLabel("Title").fill("   ");
    await page.getByLabel(/^Requirements/).fill("Use Svelte 5 runes\n" + "x".repeat(300));
    await page.getByRole("button", { name: "Submit task" }).click();
    const summary = page.getByRole("alert");
    await summary.waitFor({ timeout: UI_TIMEOUT_MS });
    const text = await summary.innerText();
    assert.match(text, /Title: Enter a title/);
    assert.match(text, /Requirements: Keep each requirement under 256 characters/);
    assert.equal(await page.getByLabel("Title").getAttribute("aria-invalid"), "true");
    assert.equal(await page.getByLabel(/^Requirements/).inputValue(), "Use Svelte 5 runes\n" + "x".repeat(300), "what was typed is kept");
    assert.equal(await taskCount(), before, "a refused form stores nothing");
    await screenshot(page, "new-task-errors-desktop");

    await page.getByLabel("Title").fill(FULL_STACK_TITLE);
    await page.getByLabel(/^Requirements/).fill("Use Svelte 5 runes\nStore comments in D1");
    await page.getByRole("button", { name: "Submit task" }).click();
    await page.waitForURL(/\/tasks\/tsk_[^/]+$/, { timeout: UI_TIMEOUT_MS });
    const taskId = decodeURIComponent(new URL(page.url()).pathname.split("/").pop());
    assert.equal(await taskCount(), before + 1);
    const status = page.getByTestId("task-status");
    assert.equal(await status.innerText(), "running");
    await screenshot(page, "task-running-desktop");

    // A marker on the window survives only if the page is never reloaded while it updates.
    await page.evaluate(() => {
      window.__sameDocument = true;
    });
    const clients = DEFAULT_AGENTS.map((name) => agent(worker, name, tokens[name]));
    await worker.admin("/v1/messages", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({
        from: "cloudflare-specialist",
        to: "sveltekit-specialist",
        type: "notify",
        correlation_id: "comments-api-shape",
        task_id: taskId,
        payload: { endpoint: "GET /api/comments" },
      }),
    });
    // Slow enough that the page sees steps between states.
    const done = await workTask(worker, taskId, clients, { onLease: () => sleep(300) });
    assert.equal(done.status, "succeeded");

    await page.waitForFunction(() => document.querySelector("[data-testid=task-status]")?.textContent === "succeeded", null, {
      timeout: UI_TIMEOUT_MS,
    });
    assert.equal(await page.evaluate(() => window.__sameDocument), true, "the page updated without a reload");
    assert.match(await page.getByTestId("step-2a").innerText(), /succeeded/);
    assert.match(await page.getByTestId("step-2b").innerText(), /succeeded/);
    assert.match(await page.locator("[aria-live=polite]").innerText(), /Task succeeded/);
    await page.getByTestId("summary").waitFor({ timeout: UI_TIMEOUT_MS });
    assert.match(await page.getByTestId("summary").innerText(), /cloudflare-specialist/);
    assert.match(await page.locator("main").innerText(), /GET \/api\/comments/, "the message about the task is shown");
    assert.match(await page.locator("main").innerText(), /step\.succeeded/, "the timeline lists the events");
    await screenshot(page, "task-succeeded-desktop");

    await page.locator("details summary", { hasText: "context-fetcher" }).click();
    assert.match(await page.locator("details[open] pre").innerText(), /step 1 \(task_analysis\) attempt 1 succeeded/, "the agent's log opens in place");
    const whole = await page.request.get(`${dashboard.url}/tasks/${taskId}/logs/context-fetcher`);
    assert.equal(whole.headers()["content-type"], "text/plain; charset=utf-8");
    assert.match(await whole.text(), /step 1 \(task_analysis\)/);

    await open(page, `${dashboard.url}/tasks`);
    const row = page.getByRole("row", { name: new RegExp(FULL_STACK_TITLE) });
    assert.match(await row.innerText(), /succeeded[\s\S]*full-stack[\s\S]*cloudflare-specialist/);
    await screenshot(page, "tasks-desktop");
    await context.close();
  });

  test("a step that runs another file shows the file it runs, with the child run's steps indented under it", async () => {
    const post = (name, text) =>
      worker.admin(`/v1/workflows?name=${name}`, { method: "POST", headers: { "content-type": "text/markdown" }, body: text });
    const child = `# Child\n\n<process_flow>\n<step number="1" subagent="test-runner" name="check">\nCheck it.\n</step>\n</process_flow>\n`;
    const parent = `# Parent\n\n<process_flow>\n<step number="1" subagent="context-fetcher" name="look">\nLook.\n</step>\n<step number="2" name="run_child">\nFOR each change listed in step 1:\n  EXECUTE: @.agent-os/instructions/core/dash-child.md\nEND FOR\n</step>\n</process_flow>\n`;
    assert.equal((await post("dash-child", child)).status, 201);
    assert.equal((await post("dash-parent", parent)).status, 201);
    const submitted = await worker.admin("/v1/tasks", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ title: "Check the nested view", workflow: "dash-parent" }),
    });
    assert.equal(submitted.status, 201, await submitted.clone().text());
    const taskId = (await submitted.json()).task.id;
    const context = await browser.newContext({ viewport: DESKTOP });
    const page = await context.newPage();
    await signIn(page);
    await open(page, `${dashboard.url}/tasks/${taskId}`);
    assert.match(await page.getByTestId("step-2").innerText(), /runs dash-child v1, for each change listed in step 1/);
    assert.match(await page.getByTestId("step-2.1").innerText(), /2\.1\. check[\s\S]*test-runner/);
    const indent = (key) => page.getByTestId(`step-${key}`).evaluate((el) => getComputedStyle(el).marginLeft);
    assert.equal(await indent("2"), "0px");
    assert.notEqual(await indent("2.1"), "0px", "the child run's step is indented under the step that runs it");
    await worker.admin(`/v1/tasks/${taskId}/cancel`, { method: "POST" });
    await context.close();
  });

  test("the agents page registers, imports and rotates, showing each token once", async () => {
    const context = await browser.newContext({ viewport: DESKTOP });
    const page = await context.newPage();
    await signIn(page);
    await open(page, `${dashboard.url}/agents`);

    await page.getByLabel("Name").fill("Not A Name");
    await page.getByRole("button", { name: "Register" }).click();
    await page.getByRole("alert").waitFor({ timeout: UI_TIMEOUT_MS });
    assert.match(await page.getByRole("alert").innerText(), /lowercase letters/);
    assert.equal((await worker.admin("/v1/agents/not-a-name")).status, 404);

    await page.getByLabel("Name").fill("docs-writer");
    await page.getByLabel("Capabilities").fill("docs, markdown");
    await page.getByRole("button", { name: "Register" }).click();
    const issued = page.getByTestId("issued-token");
    await issued.waitFor({ timeout: UI_TIMEOUT_MS });
    const token = await issued.innerText();
    assert.match(token, /^sya_/);
    const asAgent = await worker.fetch("/v1/whoami", { headers: { authorization: `Bearer ${token}` } });
    assert.equal((await asAgent.json()).agent, "docs-writer");

    await page.getByLabel("Or paste it").fill("---\nname: a11y-auditor\ndescription: Audits Svelte components\ntools: Read, Grep\n---\n\nYou audit.\n");
    await page.getByRole("button", { name: "Import" }).click();
    await page.getByRole("heading", { name: "Registered a11y-auditor" }).waitFor({ timeout: UI_TIMEOUT_MS });

    await page.getByRole("button", { name: "Rotate the token of docs-writer" }).click();
    await page.getByRole("heading", { name: "New token for docs-writer" }).waitFor({ timeout: UI_TIMEOUT_MS });
    const rotated = await page.getByTestId("issued-token").innerText();
    assert.notEqual(rotated, token);
    assert.equal((await worker.fetch("/v1/whoami", { headers: { authorization: `Bearer ${token}` } })).status, 401, "the old token is gone");
    assert.equal(await page.evaluate(() => document.activeElement?.getAttribute("role")), "status", "focus moves to the new token");
    await screenshot(page, "agents-desktop");
    await context.close();
  });

  test("the workflows page shows a file's problems with line numbers and a stored workflow's parallel steps", async () => {
    const context = await browser.newContext({ viewport: DESKTOP });
    const page = await context.newPage();
    await signIn(page);
    await open(page, `${dashboard.url}/workflows`);
    const before = (await (await worker.admin("/v1/workflows")).json()).workflows.length;

    await page.getByLabel("Or paste it").fill("---\nname: broken-flow\n---\n\n# Broken\n\n<process_flow>\n<step number=\"1\" subagent=\"context-fetcher\" name=\"look\">\nLook around.\n</process_flow>\n");
    await page.getByRole("button", { name: "Upload" }).click();
    await page.getByTestId("workflow-problems").waitFor({ timeout: UI_TIMEOUT_MS });
    assert.match(await page.getByTestId("workflow-problems").innerText(), /Line \d+/);
    assert.equal((await (await worker.admin("/v1/workflows")).json()).workflows.length, before, "nothing was stored");
    await screenshot(page, "workflows-errors-desktop");

    await open(page, `${dashboard.url}/workflows/enhanced-multi-agent`);
    const flow = await page.locator("main").innerText();
    assert.match(flow, /In parallel/);
    assert.match(flow, /cloudflare-specialist[\s\S]*sveltekit-specialist/);
    await screenshot(page, "workflow-desktop");
    await context.close();
  });

  test("a form sent twice makes one task; one from another site or without its key stores nothing", async () => {
    const session = await (
      await worker.fetch("/v1/sessions", { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ token: ADMIN_TOKEN }) })
    ).json();
    const post = (origin, fields) =>
      fetch(`${dashboard.url}/tasks/new`, {
        method: "POST",
        redirect: "manual",
        headers: {
          origin,
          cookie: `switchyard_session=${session.session_id}`,
          "content-type": "application/x-www-form-urlencoded",
          accept: "text/html",
        },
        body: new URLSearchParams(fields),
      });
    const before = await taskCount();

    const first = await post(dashboard.url, { title: "Submitted twice", idempotency_key: "form-key-1" });
    const again = await post(dashboard.url, { title: "Submitted twice", idempotency_key: "form-key-1" });
    assert.equal(first.status, 303);
    assert.match(first.headers.get("location"), /^\/tasks\/tsk_/);
    assert.equal(again.headers.get("location"), first.headers.get("location"), "the same key leads to the same task");

    const crossSite = await post("https://elsewhere.example", { title: "Forged", idempotency_key: "form-key-2" });
    assert.equal(crossSite.status, 403, "SvelteKit refuses a cross-site form post");
    const keyless = await post(dashboard.url, { title: "No key" });
    assert.equal(keyless.status, 400);
    assert.equal(await taskCount(), before + 1);
  });

  test("the tasks list pages with the API's cursor and filters by status", async () => {
    for (let i = 0; i < 21; i += 1) await worker.admin("/v1/tasks", { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ title: `Paging task ${i}` }) });
    const total = (await (await worker.admin("/v1/tasks?limit=200")).json()).tasks.length;
    const context = await browser.newContext({ viewport: DESKTOP });
    const page = await context.newPage();
    await signIn(page);

    const rows = () => page.locator("tbody tr").count();
    assert.equal(await rows(), 20, "a page holds 20 tasks");
    assert.match(await page.locator("tbody tr").first().innerText(), /Paging task 20/, "newest first");
    await page.getByRole("link", { name: "Next page" }).click();
    await page.waitForURL(/cursor=/);
    assert.equal(await rows(), total - 20);
    assert.equal(await page.getByRole("link", { name: "Next page" }).count(), 0, "the last page has no next page");
    await page.getByRole("link", { name: "First page" }).click();
    await page.waitForURL(`${dashboard.url}/tasks`);

    await page.getByLabel("Status").selectOption("succeeded");
    await page.getByRole("button", { name: "Filter" }).click();
    await page.waitForURL(/status=succeeded/);
    const statuses = await page.locator("tbody tr .badge").allInnerTexts();
    assert.ok(statuses.length >= 1 && statuses.every((s) => s === "succeeded"), `only succeeded tasks: ${statuses}`);
    await context.close();
  });

  test("works from the keyboard alone, and an error summary leads to its field", async () => {
    const context = await browser.newContext({ viewport: DESKTOP });
    const page = await context.newPage();
    await open(page, `${dashboard.url}/signin`);
    await page.keyboard.press("Tab");
    assert.equal(await page.evaluate(() => document.activeElement?.textContent), "Skip to content", "the first stop skips the navigation");
    await page.keyboard.press("Enter");
    await page.keyboard.press("Tab");
    assert.equal(await page.evaluate(() => document.activeElement?.id), "token");
    await page.keyboard.type(ADMIN_TOKEN);
    await page.keyboard.press("Enter");
    await page.waitForURL(`${dashboard.url}/tasks`);

    await open(page, `${dashboard.url}/tasks/new`);
    await page.getByLabel("Title").focus();
    await page.keyboard.type("   ");
    await page.keyboard.press("Enter");
    await page.getByRole("alert").waitFor({ timeout: UI_TIMEOUT_MS });
    assert.equal(await page.evaluate(() => document.activeElement?.getAttribute("role")), "alert", "focus moves to the summary");
    await page.keyboard.press("Tab");
    assert.match(await page.evaluate(() => document.activeElement?.textContent ?? ""), /^Title: /);
    await page.keyboard.press("Enter");
    assert.equal(await page.evaluate(() => document.activeElement?.id), "title", "the summary's link moves focus to the field");
    await context.close();
  });

  test("on a phone-sized screen every page fits the width", async () => {
    const context = await browser.newContext({ viewport: PHONE, isMobile: true, hasTouch: true });
    const page = await context.newPage();
    await signIn(page);
    const taskId = (await (await worker.admin("/v1/tasks?limit=1")).json()).tasks[0].id;
    for (const [name, path] of [
      ["tasks", "/tasks"],
      ["new-task", "/tasks/new"],
      ["task", `/tasks/${taskId}`],
      ["agents", "/agents"],
      ["workflows", "/workflows"],
      ["workflow", "/workflows/enhanced-multi-agent"],
    ]) {
      await open(page, `${dashboard.url}${path}`);
      const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
      assert.ok(overflow <= 0, `${path} is ${overflow}px wider than the screen`);
      await screenshot(page, `${name}-phone`);
    }
    await context.close();
  });

  test("signing out ends the session in switchyard and returns to sign in", async () => {
    const context = await browser.newContext({ viewport: DESKTOP });
    const page = await context.newPage();
    await signIn(page);
    const [cookie] = await context.cookies();

    await page.getByRole("button", { name: "Sign out" }).click();
    await page.waitForURL(`${dashboard.url}/signin`);
    assert.equal((await context.cookies()).length, 0);
    const old = await worker.fetch("/v1/whoami", { headers: { authorization: `Bearer ${cookie.value}` } });
    assert.equal(old.status, 401, "the session id no longer works");

    await open(page, `${dashboard.url}/agents`);
    assert.equal(new URL(page.url()).pathname, "/signin");
    await context.close();
  });
});

describe("the dashboard as a Worker, through its service binding", { timeout: 300_000, skip: missing ?? false }, () => {
  let registryDir;
  let worker;
  let dashboard;
  let browser;

  before(async () => {
    // Its own registry, so the binding finds this file's switchyard and no other.
    registryDir = mkdtempSync(join(tmpdir(), "switchyard-registry-"));
    buildDashboard();
    worker = await startWorker({ registryDir });
    dashboard = await startDashboardOnWorkerd({ registryDir, stateDir: join(registryDir, "dashboard-state") });
    browser = await launchBrowser();
  });
  after(async () => {
    await browser?.close();
    await dashboard?.stop();
    await worker?.stop();
    if (registryDir) rmSync(registryDir, { recursive: true, force: true });
  });

  test("signs in, submits a task and shows it with no URL configured, only the binding", async () => {
    const context = await browser.newContext({ viewport: DESKTOP });
    const page = await context.newPage();
    await open(page, `${dashboard.url}/tasks/new`);
    await page.getByLabel("Admin token").fill(ADMIN_TOKEN);
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.waitForURL(`${dashboard.url}/tasks/new`);

    await page.getByLabel("Title").fill("Add a Worker API endpoint for comments");
    await page.getByRole("button", { name: "Submit task" }).click();
    await page.waitForURL(/\/tasks\/tsk_[^/]+$/, { timeout: UI_TIMEOUT_MS });
    const taskId = decodeURIComponent(new URL(page.url()).pathname.split("/").pop());
    assert.equal(await page.getByTestId("task-status").innerText(), "running");
    assert.equal((await worker.admin(`/v1/tasks/${taskId}`)).status, 200, "the task is in this switchyard");

    await page.getByRole("button", { name: "Sign out" }).click();
    await page.waitForURL(`${dashboard.url}/signin`);
    await context.close();
  });
});

if (missing) console.log(`# skipped the browser tests: ${missing}`);
