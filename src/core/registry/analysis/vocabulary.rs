//! The words analysis reads: every term with its area and strength, the phrases that name each
//! term, and the small word lists that negate, break or continue a negation. Data only; the code
//! that reads it is in the parent module.

use super::Area;

/// Whether a term names work or only names the thing worked on. "worker", "server",
/// "cloudflare" and "svelte" appear in deployment tasks as often as in application work, so they
/// decide the type only when nothing more specific matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Strength {
    Strong,
    General,
}

pub(super) struct Term {
    pub(super) id: &'static str,
    pub(super) area: Area,
    pub(super) strength: Strength,
    /// How reasons name it: "mentions {label} in the title".
    pub(super) label: &'static str,
}

pub(super) const fn term(id: &'static str, area: Area, strength: Strength, label: &'static str) -> Term {
    Term { id, area, strength, label }
}

use Area::{Backend as B, Frontend as F, Infrastructure as I};
use Strength::{General, Strong};

/// The canonical terms. Backend terms are the Cloudflare services and server-side work the seed's
/// step 2A lists; frontend terms are step 2B's; infrastructure is deployment, configuration and CI.
pub(super) const TERMS: &[Term] = &[
    term("d1", B, Strong, "D1 (database)"),
    term("kv", B, Strong, "KV (key-value cache)"),
    term("r2", B, Strong, "R2 (object storage)"),
    term("queues", B, Strong, "Queues (background work)"),
    term("durable-objects", B, Strong, "Durable Objects"),
    term("api", B, Strong, "an API endpoint"),
    term("auth", B, Strong, "authentication"),
    term("rate-limiting", B, Strong, "rate limiting"),
    term("security-headers", B, Strong, "security headers"),
    term("cron", B, Strong, "a cron trigger"),
    term("analytics-engine", B, Strong, "Workers Analytics Engine"),
    term("email", B, Strong, "emails and notifications sent by the server"),
    term("payments", B, Strong, "payments"),
    term("ai", B, Strong, "AI models"),
    term("backend", B, Strong, "backend work"),
    term("server-code", B, Strong, "server-side code"),
    term("workers", B, General, "Workers"),
    term("server", B, General, "the server"),
    term("cloudflare", B, General, "Cloudflare"),
    term("table", B, General, "tables and columns"),
    term("component", F, Strong, "UI components"),
    term("page", F, Strong, "pages and layouts"),
    term("routing", F, Strong, "routing"),
    term("form", F, Strong, "forms"),
    term("styling", F, Strong, "styling"),
    term("accessibility", F, Strong, "accessibility"),
    term("load-function", F, Strong, "load functions"),
    term("state", F, Strong, "client state (stores, runes)"),
    term("pwa", F, Strong, "offline support (service worker)"),
    term("frontend", F, Strong, "frontend work"),
    term("svelte", F, General, "Svelte/SvelteKit"),
    term("app", F, General, "an app or a dashboard"),
    term("interaction", F, General, "clicks and keyboard shortcuts"),
    term("deployment", I, Strong, "deployment"),
    term("wrangler", I, Strong, "wrangler configuration"),
    term("ci", I, Strong, "a CI pipeline"),
    term("secrets", I, Strong, "secrets and environment variables"),
    term("dns", I, Strong, "DNS and domains"),
    term("environments", I, Strong, "deployment environments"),
    term("monitoring", I, Strong, "monitoring"),
    term("containers", I, Strong, "containers"),
    term("config", I, Strong, "build and tooling configuration"),
    term("cdn", I, Strong, "the CDN and its cache"),
    term("local-dev", I, Strong, "local development set-up"),
    term("edge-rules", I, Strong, "zone rules (WAF, redirects, transforms)"),
    term("operations", I, Strong, "operations (backups, alerts, billing, load tests)"),
    term("no-code", I, Strong, "no code changes"),
    term("access", I, Strong, "access to accounts and tools"),
];

/// Each term and the phrases that name it, which is where synonyms live ("bucket" is R2, "table"
/// is D1). Words are lowercase base forms separated by single spaces; each also matches its
/// plural and its -ing/-ed forms ("cache" matches "caching", "cached"), except words marked `=`,
/// which match only themselves and their plural because their verb forms mean something else
/// ("paging", "formed"). Where phrases overlap, the longest wins: "api key" is a secret, not an
/// API; "service worker" is the browser's, not a Cloudflare Worker; "data table" is a component.
#[rustfmt::skip] // One line per term reads as a table; rustfmt would put each phrase on its own line.
pub(super) const VOCABULARY: &[(&str, &[&str])] = &[
    // Cloudflare services and server-side work (the seed's step 2A)
    ("d1", &["d1", "database", "db", "sql", "sqlite", "database table", "schema", "query", "migration",
        "foreign key", "persist", "persistence", "page through", "primary key", "full text index", "full text search", "orm", "drizzle", "prisma",
        "postgres", "postgresql", "mysql", "data model"]),
    ("kv", &["kv", "kv namespace", "workers kv", "key value", "key value store", "cache", "cache invalidation"]),
    ("r2", &["r2", "bucket", "object storage", "object store", "file upload", "upload", "blob", "file storage",
        "storage", "attachment", "presigned url", "signed url", "file download"]),
    ("queues", &["queue", "message queue", "dead letter queue", "dlq", "background job", "background task",
        "async job"]),
    ("durable-objects", &["durable object", "websocket", "web socket"]),
    ("cron", &["cron", "cron job", "cron trigger", "scheduled job", "scheduled task", "scheduled handler",
        "scheduled event"]),
    ("api", &["api", "endpoint", "api endpoint", "api route", "rest api", "json api", "webhook", "route handler",
        "server route", "request handler", "fetch handler", "http handler", "graphql", "rpc", "openapi",
        "json schema", "json response", "service binding", "mutation", "pagination", "cursor pagination", "=handler",
        "mobile api", "mobile client", "etag", "if none match"]),
    ("auth", &["auth", "authentication", "authorization", "authenticate", "login", "log in", "sign in", "jwt", "oauth", "session", "password",
        "permission", "rbac", "access control", "captcha", "siteverify", "audit log", "csrf", "two factor", "2fa", "mfa", "magic link"]),
    ("analytics-engine", &["analytics engine", "workers analytics"]),
    ("email", &["email", "notify", "in app notification", "push notification", "send email", "email notification", "email alert", "mail provider", "transactional email",
        "welcome email", "reset email", "digest email", "invite link", "invitation"]),
    ("payments", &["payment", "payment provider", "credit card", "card payment", "stripe", "checkout session", "refund", "payout", "invoice pdf"]),
    ("ai", &["workers ai", "ai model", "llm", "language model", "classification model", "embedding", "vectorize",
        "vector index", "search index", "summarise", "summarize"]),
    ("rate-limiting", &["rate limit", "rate limiter", "ratelimit", "throttle"]),
    ("security-headers", &["security header", "csp", "content security policy", "hsts", "cors"]),
    ("backend", &["backend", "back end"]),
    ("server", &["server"]),
    // Saying where code runs is saying it is server work, not just naming the server.
    ("server-code", &["server side", "on the server", "render a pdf", "generate a pdf", "pdf generation"]),
    ("workers", &["worker", "cloudflare worker", "edge function", "serverless function"]),
    ("cloudflare", &["cloudflare"]),
    // "table" and "column" are as often a UI's as a database's: they decide nothing alone.
    ("table", &["=table", "column", "=row"]),
    // UI work (the seed's step 2B)
    ("component", &["component", "svelte component", "ui", "ux", "user interface", "user experience", "button",
        "modal", "dialog", "alert dialog", "alert banner", "dropdown", "navbar", "nav bar", "navigation bar", "menu",
        "sidebar", "footer", "header component", "hero section", "toast", "tooltip", "popover", "widget", "icon",
        "toggle", "checkbox", "carousel", "slider", "spinner", "date picker", "color picker", "accordion", "badge",
        "banner", "breadcrumb", "=card", "card component", "panel", "gallery", "chart", "progress bar", "search bar", "search box",
        "data table", "table view", "sortable table", "html table", "table component", "table of contents", "render",
        "rerender", "sortable", "filterable", "indicator", "text editor", "markdown editor", "rich text editor",
        "code editor", "editor component", "the editor", "profile editor", "post editor", "infinite scroll", "review queue", "overlay",
        "sticky header", "qr code", "bell icon"]),
    ("interaction", &["click", "keyboard shortcut", "shortcut", "hotkey", "cheatsheet", "arrow key"]),
    ("page", &["=page", "layout", "=screen", "homepage", "html", "markup", "seo", "meta tag",
        "open graph"]),
    ("routing", &["route", "routing", "client side router", "navigation", "nav", "redirect", "dynamic route",
        "nested route", "route parameter", "url parameter", "query string", "query parameter", "query param",
        "search param", "deep link", "nav link", "navigation link", "broken link"]),
    ("form", &["=form", "form action", "form validation", "validation schema", "form submission", "contact form",
        "text field", "input field", "text input", "form input", "inline validation", "client side validation",
        "validation error", "password field", "password length", "password strength", "email field", "email input", "email format", "textarea", "radio button", "select box",
        "submit button", "superforms", "server action", "progressive enhancement", "comment box", "text box",
        "input box", "placeholder"]),
    ("load-function", &["load function", "data loading", "page data", "server load", "universal load", "prefetch",
        "preload"]),
    ("styling", &["css", "style", "stylesheet", "restyle", "tailwind", "tailwindcss", "theme", "dark mode",
        "light mode", "color", "colour", "color scheme", "colour scheme", "font", "typography", "responsive",
        "responsive design", "mobile", "animation", "animate", "css transition", "page transition", "spacing",
        "padding", "margin", "media query", "visual design", "design system", "look and feel", "scss", "sass",
        "flexbox", "grid", "grid layout", "column layout", "misaligned", "alignment"]),
    ("accessibility", &["accessibility", "accessible", "a11y", "aria", "screen reader", "keyboard",
        "keyboard navigation", "focus state", "focus ring", "focus trap", "trap focus", "focus order",
        "focus management", "focus indicator", "contrast", "color contrast", "alt text", "wcag", "tab order",
        "skip link", "semantic html"]),
    ("state", &["svelte store", "writable store", "readable store", "derived store", "rune", "state management",
        "client state", "app state", "ui state", "loading state", "error state", "empty state", "local storage",
        "localstorage", "session storage", "persist across reloads", "reactivity", "reactive", "data binding", "two way binding"]),
    ("pwa", &["service worker", "pwa", "progressive web app", "offline", "web app manifest"]),
    ("frontend", &["frontend", "front end", "client side", "ssr", "server side rendering", "hydration", "prerender",
        "spa", "single page app", "single page application"]),
    ("svelte", &["svelte", "sveltekit", "svelte kit"]),
    // A dashboard is as often Cloudflare's or Grafana's as one of the app's pages.
    ("app", &["mobile app", "web app", "native app", "dashboard"]),
    // Deployment, configuration and CI
    ("deployment", &["deploy", "deployment", "redeploy", "release", "rollout", "roll out", "rollback", "roll back",
        "cloudflare pages", "pages project", "preview deployment", "gradual deployment", "hosting", "go live"]),
    ("wrangler", &["wrangler", "wrangler config", "wrangler toml", "compatibility date", "compatibility flag",
        "binding", "triggers block", "environment section", "env section"]),
    ("ci", &["ci", "cd", "ci cd", "ci pipeline", "pipeline", "github action", "github workflow", "gitlab ci",
        "workflow run", "upload step", "deploy job", "release job", "build cache", "cache the toolchain",
        "cargo registry", "between runs", "runner", "github runner",
        "pull request", "preview link", "preview url",
        "ci job", "e2e job", "matrix build", "release tag", "changelog",
        "continuous integration", "continuous deployment", "continuous delivery", "build pipeline", "build step",
        "circleci", "jenkins"]),
    ("secrets", &["secret", "env", "env var", "env variable", "environment variable", "api key", "api token",
        "credential", "dev vars", "dotenv"]),
    ("dns", &["dns", "dns record", "domain", "custom domain", "subdomain", "cname", "ssl", "tls", "certificate",
        "ssl certificate", "hostname", "custom hostname", "zone", "worker route", "tunnel", "cloudflare tunnel",
        "cloudflared", "firewall", "apex", "origin", "origin server", "load balancer", "failover", "email routing",
        "mailbox", "mx record", "r2 dev url", "public bucket"]),
    ("edge-rules", &["waf", "waf rule", "firewall rule", "managed rule", "skip rule", "custom rule",
        "redirect rule", "bulk redirect", "page rule", "transform rule", "cache rule", "configuration rule",
        "rate limiting rule", "rule id", "bot protection", "bot fight mode", "challenge", "turnstile widget",
        "edge ttl", "browser ttl", "ssl mode", "zero trust", "access policy", "cloudflare access", "301",
        "301 redirect", "at the edge", "smart placement", "read replica", "read replication", "cache policy",
        "static asset", "static file", "build file", "hashed file", "caching enabled", "enable caching", "in front of the app", "database location",
        "location hint"]),
    ("operations", &["backup", "restore", "dump", "d1 export", "time travel", "bookmark", "billing",
        "usage alert", "usage report", "usage notification", "spending cap", "spend cap", "budget", "paid plan", "quota", "cost", "load test", "k6", "grafana", "datadog", "pagerduty",
        "escalation", "rotation", "billing notification", "trace event", "retention", "cpu time", "subrequest",
        "status page", "runbook", "incident", "latency", "p95", "p99", "colo", "query duration", "queue backlog",
        "queue depth", "dead letter queue depth", "limit exceeded", "write limit", "daily limit", "ci log",
        "build log"]),
    ("access", &["sso", "single sign on", "okta", "saml", "scim", "account member", "break glass",
        "token permission", "2fa for the account", "audit log of the account"]),
    ("no-code", &["no code change", "without code change", "no app change", "no application change",
        "config only", "configuration only", "dashboard only"]),
    ("environments", &["environment", "staging", "prod", "production environment", "staging environment",
        "preview environment"]),
    ("monitoring", &["page view", "monitoring", "observability", "alert", "logpush", "uptime", "error tracking",
        "sentry", "tail worker", "health check", "on call", "error rate", "5xx rate", "log retention",
        "lifecycle rule", "sourcemap", "source map", "page whoever", "pages whoever", "pages when"]),
    ("containers", &["docker", "dockerfile", "docker compose", "container", "containerise", "containerize",
        "kubernetes"]),
    ("config", &["config", "configuration", "terraform", "pulumi", "infrastructure", "infra", "iac", "dependency",
        "npm script", "node version", "code style", "lint", "linter", "eslint", "prettier", "pnpm", "npm install",
        "install step", "vite config", "provision", "pulumi stack", "terraform state", "config drift", "drifted",
        "cors setting",
        "makefile", "make target", "devcontainer", "dev container", "renovate", "dependabot", "tsconfig",
        "git hook", "husky", "pre commit", "monorepo", "turborepo", "account id", "database id", "env block",
        "environment block"]),
    ("cdn", &["cdn", "cdn cache", "edge cache", "purge", "cache purge", "purge cache",
        "cache header", "cache control"]),
    ("local-dev", &["local dev", "local development", "dev script", "dev server", "wrangler dev", "vite server",
        "onboarding script", "setup script", "local d1", "seed script", "laptop", "developer onboarding", "new hire",
        "local database", "sample data", "seed data", "npm run dev", "run locally", "running locally",
        "local setup", "one command", "single command", "start dev"]),
];

/// Phrases that only name a Cloudflare resource, not work on it. A task whose backend evidence is
/// all of these, beside configuration or deployment work, sets resources up rather than writing
/// code for them ("an env.staging block with its own D1 database and KV namespace").
pub(super) const RESOURCE_NAMES: &[&str] = &[
    "d1",
    "database",
    "db",
    "kv",
    "kv namespace",
    "workers kv",
    "r2",
    "bucket",
    "queue",
    "message queue",
    "dead letter queue",
    "dlq",
    "durable object",
    "worker",
    "cloudflare worker",
    "cloudflare",
    "server",
];

/// The infrastructure terms that set resources up (as opposed to shipping code): beside them, a
/// task naming only [`RESOURCE_NAMES`] is configuring those resources.
pub(super) const CONFIGURATION_TERMS: &[&str] = &["wrangler", "config", "environments", "local-dev", "secrets"];

/// Words that negate what follows them (apostrophes are dropped, so "don't" is "dont").
/// Only a negator before a term counts: "the database is not involved" is not recognised, which
/// errs towards counting the term, as listing evidence that was there does.
pub(super) const NEGATORS: &[&str] = &[
    "no", "not", "without", "never", "avoid", "avoiding", "except", "neither", "nor", "dont", "doesnt", "didnt",
    "wont", "shouldnt", "mustnt", "cannot", "cant", "isnt", "arent", "neednt", "nothing",
];

/// Words after a term that say it is left as it is: "the endpoint response stays the same",
/// "server checks stay as they are", "the form already exists".
pub(super) const KEPT_AS_IS: &[&str] =
    &["already", "stays", "stay", "remains", "remain", "unchanged", "untouched", "unaffected"];

/// Two-word negators, matched on their second word, and how reasons quote them: "use KV
/// instead of D1", "no need to change the API".
pub(super) const NEGATOR_PAIRS: &[(&str, &str, &str)] = &[
    ("instead", "of", "instead of"),
    ("rather", "than", "rather than"),
    ("other", "than", "other than"),
    ("no", "need", "no need"),
];

/// Words that end a negation's reach: what follows is what should be done ("no API changes,
/// just the page"; "not the API but the page").
pub(super) const SCOPE_BREAKERS: &[&str] =
    &["but", "however", "instead", "just", "only", "then", "while", "though", "although", "yet"];

/// Words that carry a negation from one term to the next in a list ("without the database, KV
/// or R2" negates all three).
pub(super) const LIST_GLUE: &[&str] =
    &["or", "and", "nor", "the", "a", "an", "any", "its", "their", "our", "your", "other", "either", "new", "existing"];

/// Words that say nothing about a requirement or an agent, ignored when comparing words.
pub(super) const STOPWORDS: &[&str] = &[
    "a", "an", "the", "and", "or", "of", "for", "to", "in", "on", "with", "by", "at", "from", "as", "is", "are", "be",
    "it", "its", "that", "this", "into", "all", "any", "each", "via", "what", "one", "anyone", "before", "work",
    "works",
];
