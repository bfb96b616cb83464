//! Task analysis (step 1 of the seed workflow) and dynamic agent selection
//! (`subagent="auto-select" requirements="..."`).
//!
//! [`analyze`] reads a task's title, description, requirements and the paths it touches, finds
//! evidence of backend, frontend and infrastructure work, both in plain English (word forms,
//! phrases, synonyms, negations) and in file paths, and from that evidence decides the task type
//! and the specialists, with every piece of evidence and a reason for each shown. [`select`]
//! scores registered agents' capabilities against a step's requirements.
//!
//! Both are pure and deterministic: no clock, no randomness, no I/O, no hash-map order in the
//! output, and every input is read only up to a named bound. Neither ever guesses: when nothing
//! matches, the answer says so (confidence 0.0 with both specialists and a reason, or no agent).

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::core::base::limits::{
    AGENT_CAPABILITIES_MAX, AGENT_CAPABILITY_BYTES_MAX, ANALYSIS_TEXT_BYTES_MAX, EVIDENCE_MAX, SELECT_AGENTS_MAX,
    SELECT_DESCRIPTION_BYTES_MAX, SELECT_REQUIREMENTS_MAX, TASK_PATHS_MAX, TASK_PATH_BYTES_MAX, TASK_REQUIREMENTS_MAX,
    TASK_REQUIREMENT_BYTES_MAX,
};

/// Characters of matched text quoted in a piece of evidence: enough for a phrase or a path.
const MATCHED_CHARS_MAX: usize = 80;

/// How many words after a negator it still governs. "without touching the database" needs
/// three; past four a sentence has usually moved on to what should be done instead.
const NEGATION_REACH_WORDS: usize = 4;

/// Scores of [`select`], per requirement and agent; the best kind of match counts, once.
/// A requirement equal to a capability (after case, separators and plural: "Components" =
/// "component"):
const SCORE_EXACT: u32 = 10;
/// The same words in another form ("caching" ~ "cache") or a synonym (the capability names only
/// a term of the analysis vocabulary that the requirement names too: "bucket" ~ "r2", "table" ~
/// "database"):
const SCORE_RELATED: u32 = 5;
/// A word shared with a longer capability ("unit" ~ "unit tests"):
const SCORE_PARTIAL: u32 = 3;
/// A word of the agent's description:
const SCORE_DESCRIPTION: u32 = 1;

const CLOUDFLARE_SPECIALIST: &str = "cloudflare-specialist";
const SVELTEKIT_SPECIALIST: &str = "sveltekit-specialist";

/// The specialists analysis chooses between. An optional workflow step assigned to one of these
/// runs only when analysis chose it; steps of other agents are not analysis's to skip.
pub const SPECIALISTS: [&str; 2] = [CLOUDFLARE_SPECIALIST, SVELTEKIT_SPECIALIST];

/// What analysis reads: the task as submitted.
#[derive(Debug, Clone, Copy)]
pub struct TaskInput<'a> {
    pub title: &'a str,
    pub description: &'a str,
    pub requirements: &'a [String],
    /// Repository paths the task touches (`src/routes/+page.svelte`, `migrations/0002.sql`).
    pub paths: &'a [String],
}

/// The seed's four task types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TaskType {
    Frontend,
    Backend,
    FullStack,
    Infrastructure,
}

impl TaskType {
    /// The specialists the seed assigns: Cloudflare work (backend and the deployment side of
    /// infrastructure) to cloudflare-specialist, UI work to sveltekit-specialist, both for both.
    fn agents(self) -> Vec<String> {
        let names: &[&str] = match self {
            TaskType::Backend | TaskType::Infrastructure => &[CLOUDFLARE_SPECIALIST],
            TaskType::Frontend => &[SVELTEKIT_SPECIALIST],
            TaskType::FullStack => &[CLOUDFLARE_SPECIALIST, SVELTEKIT_SPECIALIST],
        };
        names.iter().map(|n| n.to_string()).collect()
    }

    pub fn name(self) -> &'static str {
        match self {
            TaskType::Frontend => "frontend",
            TaskType::Backend => "backend",
            TaskType::FullStack => "full-stack",
            TaskType::Infrastructure => "infrastructure",
        }
    }
}

/// The kind of work a piece of evidence points to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Area {
    Backend,
    Frontend,
    Infrastructure,
}

/// Where a piece of evidence was found; evidence is listed in this order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    Title,
    Description,
    Requirement,
    Path,
}

/// One match: a word, phrase or path that points to an area.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Evidence {
    pub area: Area,
    /// The canonical term (`d1`, `form`, `deployment`): "databases" and "SQL" both give `d1`.
    pub term: String,
    /// The text as it appeared (for paths, the path).
    pub matched: String,
    pub source: Source,
    /// Preceded by a negation ("without touching the database"): listed, but not counted.
    pub negated: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Analysis {
    pub task_type: TaskType,
    /// How one-sided and how strong the evidence is, from 0.0 (nothing matched) to 1.0, rounded
    /// to two decimals. See [`confidence`].
    pub confidence: f64,
    pub agents: Vec<String>,
    pub evidence: Vec<Evidence>,
    pub reasons: Vec<String>,
}

/// Whether a term names work or only names the thing worked on. "worker", "server",
/// "cloudflare" and "svelte" appear in deployment tasks as often as in application work, so they
/// decide the type only when nothing more specific matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Strength {
    Strong,
    General,
}

struct Term {
    id: &'static str,
    area: Area,
    strength: Strength,
    /// How reasons name it: "mentions {label} in the title".
    label: &'static str,
}

const fn term(id: &'static str, area: Area, strength: Strength, label: &'static str) -> Term {
    Term { id, area, strength, label }
}

use Area::{Backend as B, Frontend as F, Infrastructure as I};
use Strength::{General, Strong};

/// The canonical terms. Backend terms are the Cloudflare services and server-side work the seed's
/// step 2A lists; frontend terms are step 2B's; infrastructure is deployment, configuration and CI.
const TERMS: &[Term] = &[
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
    term("backend", B, Strong, "backend work"),
    term("server-code", B, Strong, "server-side code"),
    term("workers", B, General, "Workers"),
    term("server", B, General, "the server"),
    term("cloudflare", B, General, "Cloudflare"),
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
    term("deployment", I, Strong, "deployment"),
    term("wrangler", I, Strong, "wrangler configuration"),
    term("ci", I, Strong, "a CI pipeline"),
    term("secrets", I, Strong, "secrets and environment variables"),
    term("dns", I, Strong, "DNS and domains"),
    term("environments", I, Strong, "deployment environments"),
    term("monitoring", I, Strong, "monitoring"),
    term("containers", I, Strong, "containers"),
    term("config", I, Strong, "build and tooling configuration"),
];

/// Each term and the phrases that name it, which is where synonyms live ("bucket" is R2, "table"
/// is D1). Words are lowercase base forms separated by single spaces; each also matches its
/// plural and its -ing/-ed forms ("cache" matches "caching", "cached"), except words marked `=`,
/// which match only themselves and their plural because their verb forms mean something else
/// ("paging", "formed"). Where phrases overlap, the longest wins: "api key" is a secret, not an
/// API; "service worker" is the browser's, not a Cloudflare Worker; "data table" is a component.
#[rustfmt::skip] // One line per term reads as a table; rustfmt would put each phrase on its own line.
const VOCABULARY: &[(&str, &[&str])] = &[
    // Cloudflare services and server-side work (the seed's step 2A)
    ("d1", &["d1", "database", "db", "sql", "sqlite", "=table", "database table", "schema", "query", "migration",
        "column", "foreign key", "primary key", "full text index", "full text search", "orm", "drizzle", "prisma",
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
        "json schema", "json response", "service binding", "health check"]),
    ("auth", &["auth", "authentication", "authorization", "authenticate", "jwt", "oauth", "session", "password",
        "permission", "rbac", "access control", "csrf", "two factor", "2fa", "mfa", "magic link"]),
    ("analytics-engine", &["analytics engine", "workers analytics"]),
    ("rate-limiting", &["rate limit", "rate limiter", "ratelimit", "throttle"]),
    ("security-headers", &["security header", "csp", "content security policy", "hsts", "cors"]),
    ("backend", &["backend", "back end"]),
    ("server", &["server", "server side"]),
    ("workers", &["worker", "cloudflare worker", "edge function", "serverless function"]),
    ("cloudflare", &["cloudflare"]),
    // UI work (the seed's step 2B)
    ("component", &["component", "svelte component", "ui", "ux", "user interface", "user experience", "button",
        "modal", "dialog", "alert dialog", "alert banner", "dropdown", "navbar", "nav bar", "navigation bar", "menu",
        "sidebar", "footer", "header component", "hero section", "toast", "tooltip", "popover", "widget", "icon",
        "toggle", "checkbox", "carousel", "slider", "spinner", "date picker", "color picker", "accordion", "badge",
        "banner", "breadcrumb", "card component", "panel", "gallery", "chart", "progress bar", "search bar",
        "data table", "table view", "sortable table", "html table", "table component", "table of contents"]),
    ("page", &["=page", "layout", "=screen", "dashboard", "homepage", "html", "markup", "seo", "meta tag",
        "open graph"]),
    ("routing", &["route", "routing", "router", "navigation", "nav", "redirect", "slug", "dynamic route",
        "nested route", "route parameter", "url parameter", "query string", "query parameter", "query param",
        "search param", "deep link", "nav link", "navigation link", "broken link"]),
    ("form", &["=form", "form action", "form validation", "validation schema", "form submission", "contact form",
        "text field", "input field", "text input", "form input", "textarea", "radio button", "select box",
        "submit button", "superforms", "server action", "progressive enhancement"]),
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
        "localstorage", "session storage", "reactivity", "reactive", "data binding", "two way binding"]),
    ("pwa", &["service worker", "pwa", "progressive web app", "offline", "web app manifest"]),
    ("frontend", &["frontend", "front end", "client side", "ssr", "server side rendering", "hydration", "prerender",
        "spa", "single page app", "single page application"]),
    ("svelte", &["svelte", "sveltekit", "svelte kit"]),
    // Deployment, configuration and CI
    ("deployment", &["deploy", "deployment", "redeploy", "release", "rollout", "roll out", "rollback", "roll back",
        "cloudflare pages", "preview deployment", "gradual deployment", "publish", "hosting", "go live"]),
    ("wrangler", &["wrangler", "wrangler config", "wrangler toml", "compatibility date", "compatibility flag",
        "binding"]),
    ("ci", &["ci", "cd", "ci cd", "ci pipeline", "pipeline", "github action", "github workflow", "gitlab ci",
        "continuous integration", "continuous deployment", "continuous delivery", "build pipeline", "build step",
        "circleci", "jenkins"]),
    ("secrets", &["secret", "env", "env var", "env variable", "environment variable", "api key", "api token",
        "credential", "dev vars", "dotenv"]),
    ("dns", &["dns", "dns record", "domain", "custom domain", "subdomain", "cname", "ssl", "tls", "certificate",
        "ssl certificate"]),
    ("environments", &["environment", "staging", "production environment", "staging environment",
        "preview environment"]),
    ("monitoring", &["page view", "monitoring", "observability", "alert", "logpush", "uptime", "error tracking",
        "sentry", "tail worker"]),
    ("containers", &["docker", "dockerfile", "docker compose", "container", "containerise", "containerize",
        "kubernetes"]),
    ("config", &["config", "configuration", "terraform", "pulumi", "infrastructure", "infra", "iac", "dependency",
        "npm script", "node version", "code style", "lint", "linter", "eslint", "prettier"]),
];

/// Words that negate what follows them (apostrophes are dropped, so "don't" is "dont").
/// Only a negator before a term counts: "the database is not involved" is not recognised, which
/// errs towards counting the term, as listing evidence that was there does.
const NEGATORS: &[&str] = &[
    "no", "not", "without", "never", "avoid", "avoiding", "except", "neither", "nor", "dont", "doesnt", "didnt",
    "wont", "shouldnt", "mustnt", "cannot", "cant", "isnt", "arent", "neednt",
];

/// Two-word negators, matched on their second word: "use KV instead of D1".
const NEGATOR_PAIRS: &[(&str, &str)] = &[("instead", "of"), ("rather", "than"), ("other", "than")];

/// Words that end a negation's reach: what follows is what should be done ("no API changes,
/// just the page"; "not the API but the page").
const SCOPE_BREAKERS: &[&str] =
    &["but", "however", "instead", "just", "only", "then", "while", "though", "although", "yet"];

/// Words that carry a negation from one term to the next in a list ("without the database, KV
/// or R2" negates all three).
const LIST_GLUE: &[&str] =
    &["or", "and", "nor", "the", "a", "an", "any", "its", "their", "our", "your", "other", "either", "new", "existing"];

/// Words that say nothing about a requirement or an agent, ignored when comparing words.
const STOPWORDS: &[&str] = &[
    "a", "an", "the", "and", "or", "of", "for", "to", "in", "on", "with", "by", "at", "from", "as", "is", "are", "be",
    "it", "its", "that", "this", "into", "all", "any", "each", "via", "what", "one", "anyone", "before", "work",
    "works",
];

/// Reads a task and decides its type, its specialists and why.
///
/// The type, following the seed's `<agent_selection>`: backend evidence (Cloudflare services, API
/// endpoints...) and frontend evidence (UI components, routing, forms...) together make
/// full-stack, either alone makes its own type. Infrastructure (deployment, configuration, CI)
/// decides only when there is no backend or frontend work, and general terms ("the worker",
/// "SvelteKit") only when nothing else matched. With no evidence at all the answer is full-stack
/// with both specialists and confidence 0.0, and the reasons say that nothing matched.
pub fn analyze(input: &TaskInput) -> Analysis {
    let lexicon = Lexicon::new();
    let mut found = Vec::new();
    scan_text(&lexicon, head(input.title, ANALYSIS_TEXT_BYTES_MAX), Source::Title, &mut found);
    scan_text(&lexicon, head(input.description, ANALYSIS_TEXT_BYTES_MAX), Source::Description, &mut found);
    for requirement in input.requirements.iter().take(TASK_REQUIREMENTS_MAX) {
        scan_text(&lexicon, head(requirement, TASK_REQUIREMENT_BYTES_MAX), Source::Requirement, &mut found);
    }
    let mut paths_seen = BTreeSet::new();
    for path in input.paths.iter().take(TASK_PATHS_MAX) {
        let path = head(path.trim(), TASK_PATH_BYTES_MAX);
        let Some((class, term)) = classify_path(path).and_then(|c| Some((c, find_term(c.term)?))) else { continue };
        if paths_seen.insert(path) {
            found.push(Found {
                term,
                source: Source::Path,
                matched: quote(path),
                key: path.to_lowercase(),
                negator: None,
                what: Some(class.what),
            });
        }
    }
    decide(&found)
}

/// One piece of evidence, with what the decision and the reasons need besides what is shown.
struct Found {
    term: &'static Term,
    source: Source,
    matched: String,
    /// What makes two pieces of evidence the same one: the phrase, or the path.
    key: String,
    /// The negator that governs it, if any.
    negator: Option<&'static str>,
    /// For paths: what kind of file it is.
    what: Option<&'static str>,
}

/// Distinct counted evidence per area. Repeating a word does not make a task more backend; naming
/// D1, a table and a migration does.
#[derive(Debug, Default, Clone, Copy)]
struct Side {
    strong: u32,
    general: u32,
}

impl Side {
    /// Weight in half units: a strong term counts 2, a general one 1.
    fn halves(self) -> u32 {
        self.strong.saturating_mul(2).saturating_add(self.general)
    }
}

#[derive(Debug, Default)]
struct Tally {
    backend: Side,
    frontend: Side,
    infrastructure: Side,
}

impl Tally {
    fn side(&mut self, area: Area) -> &mut Side {
        match area {
            Area::Backend => &mut self.backend,
            Area::Frontend => &mut self.frontend,
            Area::Infrastructure => &mut self.infrastructure,
        }
    }
}

/// Why the type is what it is, which changes how the reasons read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Basis {
    Application,
    Infrastructure,
    GeneralTerms,
}

fn decide(found: &[Found]) -> Analysis {
    let mut tally = Tally::default();
    let mut counted = BTreeSet::new();
    for f in found.iter().filter(|f| f.negator.is_none()) {
        if counted.insert((f.term.id, f.key.as_str())) {
            let side = tally.side(f.term.area);
            match f.term.strength {
                Strength::Strong => side.strong = side.strong.saturating_add(1),
                Strength::General => side.general = side.general.saturating_add(1),
            }
        }
    }
    let (b, f, i) = (tally.backend, tally.frontend, tally.infrastructure);
    let verdict = if b.strong > 0 || f.strong > 0 {
        Some((app_type(b.strong > 0, f.strong > 0), Basis::Application))
    } else if i.halves() > 0 {
        Some((TaskType::Infrastructure, Basis::Infrastructure))
    } else if b.general > 0 || f.general > 0 {
        Some((app_type(b.general > 0, f.general > 0), Basis::GeneralTerms))
    } else {
        None
    };
    let task_type = verdict.map_or(TaskType::FullStack, |(t, _)| t);
    let mut reasons = Vec::new();
    let mut said = BTreeSet::new();
    for f in found {
        if said.insert((f.term.id, f.negator.is_some())) {
            reasons.push(reason(f, verdict.map(|(t, _)| t)));
        }
    }
    match verdict {
        None if found.is_empty() => reasons.push(
            "nothing in the title, description, requirements or paths matched a known backend, frontend or \
             infrastructure term, so the task is treated as full-stack and both specialists are assigned"
                .into(),
        ),
        None => reasons.push(
            "every term that matched was negated, so nothing points to a type: the task is treated as \
             full-stack and both specialists are assigned"
                .into(),
        ),
        Some((task_type, basis)) => {
            if basis == Basis::GeneralTerms {
                reasons.push("only general terms matched, so the type rests on weak evidence".into());
            }
            if basis == Basis::Application && i.halves() > 0 {
                reasons.push(
                    "infrastructure terms matched too; when a task also has backend or frontend work, that work \
                     decides the type"
                        .into(),
                );
            }
            let summary = match task_type {
                TaskType::FullStack => "backend and frontend work both matched",
                TaskType::Backend => "backend work matched and frontend work did not",
                TaskType::Frontend => "frontend work matched and backend work did not",
                TaskType::Infrastructure => "only deployment and configuration work matched",
            };
            reasons.push(format!("{summary} → {}: {}", task_type.name(), task_type.agents().join(" and ")));
        }
    }
    if found.len() > EVIDENCE_MAX {
        reasons.push(format!("{} pieces of evidence matched; the first {EVIDENCE_MAX} are listed", found.len()));
    }
    Analysis {
        task_type,
        confidence: verdict.map_or(0.0, |(t, _)| confidence(t, &tally)),
        agents: task_type.agents(),
        evidence: found
            .iter()
            .take(EVIDENCE_MAX)
            .map(|f| Evidence {
                area: f.term.area,
                term: f.term.id.to_string(),
                matched: f.matched.clone(),
                source: f.source,
                negated: f.negator.is_some(),
            })
            .collect(),
        reasons,
    }
}

fn app_type(backend: bool, frontend: bool) -> TaskType {
    match (backend, frontend) {
        (true, true) => TaskType::FullStack,
        (true, false) => TaskType::Backend,
        _ => TaskType::Frontend,
    }
}

/// `confidence = dominance × strength`, rounded to two decimals, where, in weights of counted
/// distinct evidence (a strong term 1, a general term ½, negated evidence 0):
///
/// - `dominance = support / (support + against)`: how one-sided the evidence is. `support` is the
///   weight of the areas that decided the type; `against` is the weight of the other areas, with
///   infrastructure counting only half against backend, frontend and full-stack work because
///   application work routinely comes with some deployment or configuration;
/// - `strength = 1 − 0.5^n`: how much evidence there is, where `n` is the support's weight (for
///   full-stack, the weaker of the two sides, since both must be real). One term gives 0.5, two
///   0.75, three 0.88.
///
/// No evidence gives 0.0.
fn confidence(task_type: TaskType, tally: &Tally) -> f64 {
    let (b, f, i) = (tally.backend.halves(), tally.frontend.halves(), tally.infrastructure.halves());
    // In half units: `against` is doubled so that halving infrastructure stays whole.
    let (support, n, against_halves_x2) = match task_type {
        TaskType::Backend => (b, b, f.saturating_mul(2).saturating_add(i)),
        TaskType::Frontend => (f, f, b.saturating_mul(2).saturating_add(i)),
        TaskType::FullStack => (b.saturating_add(f), b.min(f), i),
        TaskType::Infrastructure => (i, i, b.saturating_add(f).saturating_mul(2)),
    };
    if support == 0 {
        return 0.0;
    }
    let support = f64::from(support);
    let dominance = support / (support + f64::from(against_halves_x2) / 2.0);
    // 0.5^(n halves) = 0.5^(n/2) × (1/√2 for an odd half): exact powers of two for whole terms,
    // so that three terms give exactly 0.875 and round to 0.88 on every target.
    let whole = i32::try_from(n / 2).unwrap_or(i32::MAX);
    let odd_half = if n % 2 == 1 { std::f64::consts::FRAC_1_SQRT_2 } else { 1.0 };
    let strength = 1.0 - 0.5f64.powi(whole) * odd_half;
    let value = (dominance * strength).clamp(0.0, 1.0);
    (value * 100.0).round() / 100.0
}

fn agent_for(area: Area) -> &'static str {
    match area {
        Area::Backend | Area::Infrastructure => CLOUDFLARE_SPECIALIST,
        Area::Frontend => SVELTEKIT_SPECIALIST,
    }
}

fn reason(f: &Found, task_type: Option<TaskType>) -> String {
    let subject = match (f.source, f.what) {
        (Source::Path, what) => format!("lists the path {} ({})", f.matched, what.unwrap_or(f.term.label)),
        (Source::Title, _) => format!("mentions {} in the title", f.term.label),
        (Source::Description, _) => format!("mentions {} in the description", f.term.label),
        (Source::Requirement, _) => format!("mentions {} in the requirements", f.term.label),
    };
    if let Some(negator) = f.negator {
        return format!("{subject} after \"{negator}\", so it does not count");
    }
    let decides = matches!(
        (task_type, f.term.area),
        (Some(TaskType::FullStack), Area::Backend | Area::Frontend)
            | (Some(TaskType::Backend), Area::Backend)
            | (Some(TaskType::Frontend), Area::Frontend)
            | (Some(TaskType::Infrastructure), Area::Infrastructure)
    );
    if decides {
        format!("{subject} → {}", agent_for(f.term.area))
    } else if f.term.area == Area::Infrastructure {
        format!("{subject}, which is infrastructure and outweighed by the application work")
    } else {
        format!("{subject}, which is too general to decide the type on its own")
    }
}

// ---------------------------------------------------------------------------------------------
// Reading text: tokens, phrases, negations.

/// What separates a token from the one before it. A soft break (a comma, a dash) ends a
/// negation's first reach but not a list; a hard break (end of sentence, semicolon, colon, new
/// line) ends both. No phrase spans either: "database, table" is two pieces of evidence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Break {
    None,
    Soft,
    Hard,
}

#[derive(Debug)]
enum Kind {
    /// Lowercase letters and digits, apostrophes dropped ("don't" is "dont").
    Word(String),
    /// A file name or path written in the text (`wrangler.toml`, `src/routes/+page.svelte`).
    File(PathClass, String),
}

#[derive(Debug)]
struct Token {
    kind: Kind,
    /// Byte range in the text, for quoting what matched.
    start: usize,
    end: usize,
    before: Break,
}

impl Token {
    fn word(&self) -> Option<&str> {
        match &self.kind {
            Kind::Word(w) => Some(w),
            Kind::File(..) => None,
        }
    }
}

/// Splits text into words and file names. A whitespace-separated chunk that looks like a path and
/// is one [`classify_path`] knows becomes one token, so that `+page.svelte` is a SvelteKit page
/// rather than the words "page" and "svelte"; everything else is split into runs of letters and
/// digits, so "rate-limiting" is two words and "D1/KV" is "d1", "kv".
fn tokenize(text: &str) -> Vec<Token> {
    let mut tokens = Vec::new();
    let mut pending = Break::None;
    let mut chunk_start = None;
    for (at, c) in text.char_indices() {
        if c.is_whitespace() {
            if let Some(start) = chunk_start.take() {
                pending = chunk(text, start, at, pending, &mut tokens);
            }
            if c == '\n' {
                pending = Break::Hard;
            }
        } else if chunk_start.is_none() {
            chunk_start = Some(at);
        }
    }
    if let Some(start) = chunk_start {
        chunk(text, start, text.len(), pending, &mut tokens);
    }
    tokens
}

/// Punctuation around a file name that is not part of it: quotes, brackets, markdown emphasis.
fn is_wrapping(c: char) -> bool {
    matches!(c, '"' | '\'' | '`' | '(' | ')' | '[' | ']' | '{' | '}' | '<' | '>' | '*' | '“' | '”' | '‘' | '’')
}

/// What may follow a file name in a sentence: wrapping and sentence punctuation. A leading dot is
/// part of the name (`.github/`, `.dev.vars`); a trailing one ends the sentence.
fn is_wrapping_or_sentence_end(c: char) -> bool {
    is_wrapping(c) || matches!(c, '.' | ',' | ';' | ':' | '!' | '?')
}

/// Tokenises one whitespace-free chunk; returns the break that follows it.
fn chunk(text: &str, start: usize, end: usize, mut pending: Break, tokens: &mut Vec<Token>) -> Break {
    let raw = text.get(start..end).unwrap_or("");
    let core = raw.trim_start_matches(is_wrapping);
    let core_start = start + (raw.len() - core.len());
    let core = core.trim_end_matches(is_wrapping_or_sentence_end);
    let core_end = core_start + core.len();
    let looks_like_path = core.contains('/') || core.contains('.') || core.starts_with('+');
    if looks_like_path && core.len() <= TASK_PATH_BYTES_MAX {
        if let Some(class) = classify_path(core) {
            tokens.push(Token {
                kind: Kind::File(class, core.to_lowercase()),
                start: core_start,
                end: core_end,
                before: pending,
            });
            let trailing = text.get(core_end..end).unwrap_or("");
            return trailing.chars().fold(Break::None, |b, c| b.max(punctuation_break(c, false)));
        }
    }
    let mut word = String::new();
    let mut word_start = None;
    let mut word_end = start;
    let mut chars = raw.char_indices().peekable();
    while let Some((offset, c)) = chars.next() {
        let next_is_alphanumeric = chars.peek().is_some_and(|&(_, n)| n.is_alphanumeric());
        if c.is_alphanumeric() {
            word_start.get_or_insert(start + offset);
            word.extend(c.to_lowercase());
            word_end = start + offset + c.len_utf8();
        } else if matches!(c, '\'' | '’') && word_start.is_some() && next_is_alphanumeric {
            // "don't" reads as "dont": one word, so that it can be a negator.
        } else {
            if let Some(word_start) = word_start.take() {
                tokens.push(Token {
                    kind: Kind::Word(std::mem::take(&mut word)),
                    start: word_start,
                    end: word_end,
                    before: pending,
                });
                pending = Break::None;
            }
            pending = pending.max(punctuation_break(c, next_is_alphanumeric));
        }
    }
    if let Some(word_start) = word_start {
        tokens.push(Token { kind: Kind::Word(word), start: word_start, end: word_end, before: pending });
        pending = Break::None;
    }
    pending
}

fn punctuation_break(c: char, next_is_alphanumeric: bool) -> Break {
    match c {
        ',' | '—' | '–' => Break::Soft,
        ';' | ':' | '!' | '?' | '\n' => Break::Hard,
        // A dot inside a word ("node.js", "e.g") is not the end of a sentence.
        '.' if !next_is_alphanumeric => Break::Hard,
        _ => Break::None,
    }
}

/// [`VOCABULARY`] split into words and indexed by their first byte, built once per call.
struct Lexicon {
    phrases: Vec<(&'static str, Vec<&'static str>, &'static Term)>,
    by_first_byte: Vec<Vec<usize>>,
}

impl Lexicon {
    fn new() -> Lexicon {
        let mut phrases = Vec::new();
        let mut by_first_byte = vec![Vec::new(); 256];
        let all = VOCABULARY.iter().flat_map(|&(id, phrases)| phrases.iter().map(move |&phrase| (phrase, id)));
        for (phrase, id) in all {
            let Some(term) = find_term(id) else { continue };
            let words: Vec<&'static str> = phrase.split(' ').collect();
            let first = words.first().map(|w| w.trim_start_matches('=')).and_then(|w| w.bytes().next());
            if let Some(bucket) = first.and_then(|b| by_first_byte.get_mut(usize::from(b))) {
                bucket.push(phrases.len());
                phrases.push((phrase, words, term));
            }
        }
        Lexicon { phrases, by_first_byte }
    }

    /// The longest phrase starting at token `at`, as (words, phrase index). Among phrases of the
    /// same length the one whose words match exactly wins, then the earlier in [`VOCABULARY`].
    fn longest_at(&self, tokens: &[Token], at: usize) -> Option<(usize, usize)> {
        let first = tokens.get(at)?.word()?;
        let bucket = self.by_first_byte.get(usize::from(*first.as_bytes().first()?))?;
        let mut best: Option<(usize, usize, usize)> = None;
        for &index in bucket {
            let Some((_, words, _)) = self.phrases.get(index) else { continue };
            let mut exact = 0;
            let matches = words.iter().enumerate().all(|(k, pattern)| {
                let Some(token) = tokens.get(at + k) else { return false };
                if k > 0 && token.before != Break::None {
                    return false;
                }
                let Some(word) = token.word() else { return false };
                if word == pattern.trim_start_matches('=') {
                    exact += 1;
                }
                word_matches(word, pattern)
            });
            if matches && best.is_none_or(|(n, e, _)| (words.len(), exact) > (n, e)) {
                best = Some((words.len(), exact, index));
            }
        }
        best.map(|(n, _, index)| (n, index))
    }
}

fn find_term(id: &str) -> Option<&'static Term> {
    TERMS.iter().find(|t| t.id == id)
}

/// A phrase or file name found in a text, by token range.
struct Hit {
    first: usize,
    last: usize,
    term: &'static Term,
    key: String,
    what: Option<&'static str>,
}

fn find_hits(lexicon: &Lexicon, tokens: &[Token]) -> Vec<Hit> {
    let mut hits = Vec::new();
    let mut at = 0;
    while let Some(token) = tokens.get(at) {
        let mut width = 1;
        match &token.kind {
            Kind::File(class, key) => {
                if let Some(term) = find_term(class.term) {
                    hits.push(Hit { first: at, last: at, term, key: key.clone(), what: Some(class.what) });
                }
            }
            Kind::Word(_) => {
                if let Some((n, index)) = lexicon.longest_at(tokens, at) {
                    if let Some((phrase, _, term)) = lexicon.phrases.get(index) {
                        let last = at + n.saturating_sub(1);
                        hits.push(Hit { first: at, last, term, key: phrase.to_string(), what: None });
                        width = n.max(1);
                    }
                }
            }
        }
        at += width;
    }
    hits
}

/// For each token, the negator that ends there. A negator inside a recognised phrase ("skip
/// link") is part of that phrase, not a negation.
fn negator_ends(tokens: &[Token], hits: &[Hit]) -> Vec<Option<&'static str>> {
    let mut ends: Vec<Option<&'static str>> = tokens
        .iter()
        .enumerate()
        .map(|(at, token)| {
            let word = token.word()?;
            if let Some(&negator) = NEGATORS.iter().find(|&&n| n == word) {
                return Some(negator);
            }
            let previous = at.checked_sub(1).and_then(|p| tokens.get(p)).and_then(Token::word)?;
            NEGATOR_PAIRS.iter().find(|&&(a, b)| a == previous && b == word).map(|&(a, _)| match a {
                "instead" => "instead of",
                "rather" => "rather than",
                _ => "other than",
            })
        })
        .collect();
    for hit in hits {
        for at in hit.first..=hit.last {
            if let Some(end) = ends.get_mut(at) {
                *end = None;
            }
        }
    }
    ends
}

/// The negator within [`NEGATION_REACH_WORDS`] words before token `first`, in the same clause
/// (no comma, sentence end or "but" in between).
fn negated_by(tokens: &[Token], negators: &[Option<&'static str>], first: usize) -> Option<&'static str> {
    let mut at = first;
    for _ in 0..NEGATION_REACH_WORDS {
        if tokens.get(at)?.before != Break::None {
            return None;
        }
        at = at.checked_sub(1)?;
        if let Some(negator) = negators.get(at).copied().flatten() {
            return Some(negator);
        }
        if tokens.get(at)?.word().is_some_and(|w| SCOPE_BREAKERS.contains(&w)) {
            return None;
        }
    }
    None
}

/// Whether the tokens between a negated term ending at `last` and the term starting at `first`
/// only continue a list: list words and commas, no sentence end.
fn continues_list(tokens: &[Token], last: usize, first: usize) -> bool {
    (last + 1..=first).all(|at| {
        tokens.get(at).is_some_and(|t| {
            t.before != Break::Hard && (at == first || t.word().is_some_and(|w| LIST_GLUE.contains(&w)))
        })
    })
}

/// Finds the evidence in one text and appends it to `found`, each phrase once per text (and once
/// more if it occurs both negated and not).
fn scan_text(lexicon: &Lexicon, text: &str, source: Source, found: &mut Vec<Found>) {
    let tokens = tokenize(text);
    let hits = find_hits(lexicon, &tokens);
    let negators = negator_ends(&tokens, &hits);
    let mut seen = BTreeSet::new();
    let mut previous_negated: Option<(usize, &'static str)> = None;
    for hit in &hits {
        let negator = negated_by(&tokens, &negators, hit.first)
            .or_else(|| previous_negated.filter(|&(last, _)| continues_list(&tokens, last, hit.first)).map(|(_, n)| n));
        previous_negated = negator.map(|n| (hit.last, n));
        if !seen.insert((hit.key.clone(), negator.is_some())) {
            continue;
        }
        let start = tokens.get(hit.first).map_or(0, |t| t.start);
        let end = tokens.get(hit.last).map_or(start, |t| t.end);
        found.push(Found {
            term: hit.term,
            source,
            matched: quote(text.get(start..end).unwrap_or("")),
            key: hit.key.clone(),
            negator,
            what: hit.what,
        });
    }
}

/// Whether `word` is `pattern` or one of its forms; a pattern word marked `=` allows only its
/// plural.
fn word_matches(word: &str, pattern: &str) -> bool {
    match pattern.strip_prefix('=') {
        Some(base) => is_plural_of(word, base),
        None => is_form_of(word, pattern),
    }
}

/// `word` is `base` or its plural: "tables", "addresses", "queries".
fn is_plural_of(word: &str, base: &str) -> bool {
    if word == base {
        return true;
    }
    if base.len() < 2 {
        return false;
    }
    if word.strip_prefix(base).is_some_and(|rest| rest == "s" || rest == "es") {
        return true;
    }
    base.strip_suffix('y').is_some_and(|stem| word.strip_prefix(stem) == Some("ies"))
}

/// `word` is `base`, its plural, or its -ing/-ed form: "caching" and "cached" (cache), "deploying"
/// (deploy), "mapping" (map), "queried" (query). A simple rule, not a stemmer: it only has to
/// agree with itself, because the vocabulary is written in base forms.
fn is_form_of(word: &str, base: &str) -> bool {
    if is_plural_of(word, base) {
        return true;
    }
    if base.len() < 2 {
        return false;
    }
    if let Some(rest) = word.strip_prefix(base) {
        if rest == "ing" || rest == "ed" || (rest == "d" && base.ends_with('e')) {
            return true;
        }
        // A doubled final consonant: "map" → "mapping", "mapped".
        let mut rest_chars = rest.chars();
        let doubled = base.chars().last().filter(|c| c.is_ascii_alphabetic() && !"aeiouy".contains(*c));
        if doubled.is_some() && rest_chars.next() == doubled && matches!(rest_chars.as_str(), "ing" | "ed") {
            return true;
        }
    }
    if let Some(stem) = base.strip_suffix('e') {
        if word.strip_prefix(stem) == Some("ing") {
            return true;
        }
    }
    base.strip_suffix('y').is_some_and(|stem| word.strip_prefix(stem) == Some("ied"))
}

// ---------------------------------------------------------------------------------------------
// Paths.

/// What a path says about a task: its term and what kind of file it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct PathClass {
    term: &'static str,
    what: &'static str,
}

const fn class(term: &'static str, what: &'static str) -> Option<PathClass> {
    Some(PathClass { term, what })
}

/// Classifies a repository path (or a file name written in text). The first rule that applies
/// wins, so the order matters: configuration and CI files first (a YAML file under `.github/` is
/// CI, not a page); then backend (`src/routes/api/**` and `+server.ts` are API routes although
/// they sit under `src/routes`, SQL and `migrations/` are D1, `src/lib/server/**`, `hooks.server.*`,
/// `src/worker*` and Rust are Worker code, since in a Cloudflare + SvelteKit repository Rust only
/// runs in a Worker); then frontend (`+page.*`, `+layout.*`, `+error.*` including
/// `+page.server.ts`, whose load functions the seed gives to the SvelteKit specialist; `*.svelte`;
/// stylesheets; the rest of `src/routes/**`; `components/`; HTML). `package.json` counts as
/// build configuration: a change to it is a dependency or a script. Anything else (`README.md`,
/// `src/lib/util.ts`) says nothing and gives no evidence.
fn classify_path(path: &str) -> Option<PathClass> {
    let lower = path.to_lowercase().replace('\\', "/");
    let segments: Vec<&str> = lower.split('/').filter(|s| !s.is_empty() && *s != ".").collect();
    let (&name, _) = segments.split_last()?;
    let ext = name.rsplit_once('.').map_or("", |(_, e)| e);
    let has = |segment: &str| segments.contains(&segment);
    if name.starts_with("wrangler.") && matches!(ext, "toml" | "json" | "jsonc") {
        return class("wrangler", "wrangler configuration");
    }
    if has(".github") || has(".circleci") || name == ".gitlab-ci.yml" || name == "jenkinsfile" {
        return class("ci", "CI configuration");
    }
    if name == "dockerfile" || name.starts_with("dockerfile.") || name.starts_with("docker-compose") {
        return class("containers", "container configuration");
    }
    if name == ".dev.vars" || name == ".env" || name.starts_with(".env.") {
        return class("secrets", "local secrets");
    }
    if name == "package.json" || ext == "tf" || ext == "yml" || ext == "yaml" {
        return class("config", "build and tooling configuration");
    }
    if ext == "sql" || has("migrations") {
        return class("d1", "a D1 migration or SQL file");
    }
    if name.starts_with("+server.") || has("api") {
        return class("api", "an API route");
    }
    if name.starts_with("hooks.server.")
        || has("server")
        || has("worker")
        || has("workers")
        || name.starts_with("worker.")
        || ext == "rs"
    {
        return class("server-code", "Worker code");
    }
    if name.starts_with("+page.") || name.starts_with("+layout.") || name.starts_with("+error.") {
        return class("page", "a SvelteKit page or layout");
    }
    if ext == "svelte" {
        return class("component", "a Svelte component");
    }
    if matches!(ext, "css" | "scss" | "sass" | "less" | "pcss" | "postcss") || name.starts_with("tailwind.config.") {
        return class("styling", "a stylesheet");
    }
    if has("routes") {
        return class("routing", "a SvelteKit route");
    }
    if has("components") {
        return class("component", "a component module");
    }
    if ext == "html" {
        return class("page", "an HTML page");
    }
    None
}

// ---------------------------------------------------------------------------------------------
// Dynamic agent selection.

/// An agent as selection sees it.
#[derive(Debug, Clone, Copy)]
pub struct AgentProfile<'a> {
    pub name: &'a str,
    pub description: &'a str,
    pub capabilities: &'a [String],
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Candidate {
    pub agent: String,
    pub score: u32,
    /// The requirements (trimmed) that contributed, in the order given.
    pub matched: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Selection {
    /// The best candidate, or `None` when no agent matched any requirement.
    pub agent: Option<String>,
    /// Agents that matched, best first; equal scores in name order.
    pub candidates: Vec<Candidate>,
}

/// Picks the agent for an `auto-select` step. Every requirement is scored against every agent
/// (the weights are on [`SCORE_EXACT`] and the constants after it); an agent's score is the sum
/// over requirements of its best match for each. Requirements are trimmed; empty ones and repeats
/// are ignored. Ties go to the name that sorts first, so the answer never depends on the order
/// agents were registered in.
pub fn select(requirements: &[String], agents: &[AgentProfile]) -> Selection {
    let lexicon = Lexicon::new();
    let mut seen = BTreeSet::new();
    let requirements: Vec<Phrase> = requirements
        .iter()
        .take(SELECT_REQUIREMENTS_MAX)
        .map(|r| head(r.trim(), TASK_REQUIREMENT_BYTES_MAX))
        .filter(|r| !r.is_empty())
        .map(|r| Phrase::new(&lexicon, r))
        .filter(|p| !p.words.is_empty() && seen.insert(p.words.clone()))
        .collect();
    let mut candidates = Vec::new();
    for agent in agents.iter().take(SELECT_AGENTS_MAX) {
        let capabilities: Vec<Phrase> = agent
            .capabilities
            .iter()
            .take(AGENT_CAPABILITIES_MAX)
            .map(|c| Phrase::new(&lexicon, head(c.trim(), AGENT_CAPABILITY_BYTES_MAX)))
            .collect();
        let description: BTreeSet<String> =
            content_words(&words(head(agent.description, SELECT_DESCRIPTION_BYTES_MAX))).into_iter().collect();
        let mut score = 0u32;
        let mut matched = Vec::new();
        for requirement in &requirements {
            let mut best = 0;
            for capability in &capabilities {
                best = best.max(requirement.score_against(capability));
                if best == SCORE_EXACT {
                    break;
                }
            }
            let in_description = requirement.content.iter().any(|r| description.iter().any(|d| related(r, d)));
            let points = best.max(if in_description { SCORE_DESCRIPTION } else { 0 });
            if points > 0 {
                score = score.saturating_add(points);
                matched.push(requirement.given.clone());
            }
        }
        if score > 0 {
            candidates.push(Candidate { agent: agent.name.to_string(), score, matched });
        }
    }
    candidates.sort_by(|a, b| b.score.cmp(&a.score).then_with(|| a.agent.cmp(&b.agent)));
    Selection { agent: candidates.first().map(|c| c.agent.clone()), candidates }
}

/// A requirement or capability, normalised for comparison.
struct Phrase {
    given: String,
    /// Lowercase words: "Form-Actions" is ["form", "actions"].
    words: Vec<String>,
    /// `words` without stopwords and single letters, for partial and description matches.
    content: Vec<String>,
    /// The analysis terms it names, for synonyms: "bucket" and "R2" both name `r2`. Requirements
    /// are keywords, so negations are not looked for here.
    terms: BTreeSet<&'static str>,
    /// Whether those terms are all it says. A capability is a synonym of a requirement only then:
    /// "component tests" mentions components but is about tests.
    only_terms: bool,
}

impl Phrase {
    fn new(lexicon: &Lexicon, text: &str) -> Phrase {
        let tokens = tokenize(text);
        let hits = find_hits(lexicon, &tokens);
        let mut covered = vec![false; tokens.len()];
        for hit in &hits {
            for at in hit.first..=hit.last {
                if let Some(c) = covered.get_mut(at) {
                    *c = true;
                }
            }
        }
        let only_terms = !hits.is_empty()
            && tokens.iter().zip(&covered).all(|(t, &c)| c || t.word().is_some_and(|w| STOPWORDS.contains(&w)));
        let words = words(text);
        Phrase {
            given: text.to_string(),
            content: content_words(&words),
            words,
            terms: hits.iter().map(|h| h.term.id).collect(),
            only_terms,
        }
    }

    fn score_against(&self, capability: &Phrase) -> u32 {
        let pairs = || self.words.iter().zip(&capability.words);
        let same_length = !self.words.is_empty() && self.words.len() == capability.words.len();
        let synonym = capability.only_terms && !self.terms.is_disjoint(&capability.terms);
        if same_length && pairs().all(|(a, b)| is_plural_of(a, b) || is_plural_of(b, a)) {
            SCORE_EXACT
        } else if synonym || (same_length && pairs().all(|(a, b)| related(a, b))) {
            SCORE_RELATED
        } else if self.content.iter().any(|a| capability.content.iter().any(|b| related(a, b))) {
            SCORE_PARTIAL
        } else {
            0
        }
    }
}

fn related(a: &str, b: &str) -> bool {
    is_form_of(a, b) || is_form_of(b, a)
}

/// Lowercase runs of letters and digits.
fn words(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()).map(str::to_lowercase).collect()
}

fn content_words(words: &[String]) -> Vec<String> {
    words.iter().filter(|w| w.len() >= 2 && !STOPWORDS.contains(&w.as_str())).cloned().collect()
}

// ---------------------------------------------------------------------------------------------
// Bounds.

/// The first `max` bytes of `text`, cut at a character boundary.
fn head(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.get(..end).unwrap_or("")
}

/// Matched text as shown in evidence, at most [`MATCHED_CHARS_MAX`] characters.
fn quote(text: &str) -> String {
    text.chars().take(MATCHED_CHARS_MAX).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::registry::default_agents::DEFAULT_AGENTS;

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    fn run(title: &str, description: &str, requirements: &[&str], paths: &[&str]) -> Analysis {
        let (requirements, paths) = (strings(requirements), strings(paths));
        analyze(&TaskInput { title, description, requirements: &requirements, paths: &paths })
    }

    /// Analyses a labelled task and checks its type, and what holds for every analysis: agents
    /// that follow from the type, a confidence in range and rounded, at least one reason.
    fn check(title: &str, description: &str, requirements: &[&str], paths: &[&str], expected: TaskType) {
        let got = run(title, description, requirements, paths);
        assert_eq!(got.task_type, expected, "{title:?} / {description:?}: {:#?}", got);
        assert_eq!(got.agents, expected.agents(), "{title:?}");
        assert!((0.0..=1.0).contains(&got.confidence), "{title:?}: {}", got.confidence);
        assert_eq!((got.confidence * 100.0).round() / 100.0, got.confidence, "{title:?}");
        assert!(!got.reasons.is_empty(), "{title:?}");
    }

    #[test]
    fn backend_tasks_go_to_the_cloudflare_specialist() {
        use TaskType::Backend;
        check("Add a comments table to D1 and an endpoint to list comments", "", &[], &[], Backend);
        check("Cache the product list in KV", "Reads are slow; cache them for five minutes.", &[], &[], Backend);
        check("Store uploaded invoices in an R2 bucket", "", &[], &[], Backend);
        check("Process webhooks in the background", "Stripe webhooks should be queued and retried.", &[], &[], Backend);
        check("Add rate limiting to the login API", "", &[], &[], Backend);
        check("Write a migration that adds an index on users.email", "", &[], &[], Backend);
        check("Fix slow database queries", "The orders query scans every row.", &[], &[], Backend);
        check("Harden responses", "Add security headers and a CSP to every response.", &[], &[], Backend);
        check("Nightly cleanup", "Add a cron trigger that deletes expired sessions.", &[], &[], Backend);
        check("Use a Durable Object to count live visitors", "", &[], &[], Backend);
        check("Export orders as CSV", "Add an endpoint for it. No UI changes are needed.", &[], &[], Backend);
        check("Caching for the databases", "Cached responses are invalidated when rows change.", &[], &[], Backend);
        check("Password reset", "Hash passwords with a per-user salt and expire reset tokens.", &[], &[], Backend);
        check("Sessions", "", &["d1", "migrations"], &[], Backend);
        check("Comments", "", &[], &["migrations/0002_comments.sql", "src/lib/server/comments.ts"], Backend);
        check("Bump the API version", "Keep the old endpoint alive; deploy after review.", &[], &[], Backend);
        check("The worker crashes on empty bodies", "", &[], &[], Backend);
    }

    #[test]
    fn frontend_tasks_go_to_the_sveltekit_specialist() {
        use TaskType::Frontend;
        check("Make the settings page keyboard accessible", "", &[], &[], Frontend);
        check("Add a dark mode toggle", "Respect the user's preferred colour scheme.", &[], &[], Frontend);
        check("Restyle the dashboard without touching the database", "", &[], &[], Frontend);
        check("Build a signup form", "Validate it client-side before it is submitted.", &[], &[], Frontend);
        check("Convert the header components to Svelte 5 runes", "", &[], &[], Frontend);
        check("Add breadcrumbs to the docs layout", "", &[], &[], Frontend);
        check("About page", "", &[], &["src/routes/about/+page.svelte", "src/app.css"], Frontend);
        check("Fix the broken link in the navbar", "", &[], &[], Frontend);
        check("Show a spinner while the page data loads", "", &[], &[], Frontend);
        check("Screen reader support for modals", "Add aria labels; trap focus in dialogs.", &[], &[], Frontend);
        check("Nested routing for admin", "Each tab gets its own route and a shared layout.", &[], &[], Frontend);
        check("Make the pricing page responsive on mobile", "", &[], &[], Frontend);
        check("Tweak the styling of buttons", "They look misaligned on Safari; fix the CSS.", &[], &[], Frontend);
        check("Confirm deletes", "Do not change the API or the endpoint, only add a modal.", &[], &[], Frontend);
        check("Polish", "", &["components", "accessibility"], &[], Frontend);
        check("Upgrade to Svelte 5", "", &[], &[], Frontend);
    }

    #[test]
    fn tasks_with_backend_and_frontend_work_are_full_stack() {
        use TaskType::FullStack;
        check("Upload avatars to R2 and show them on the profile page", "", &[], &[], FullStack);
        check("Add a contact form that saves messages to D1", "", &[], &[], FullStack);
        check("Comments", "A comments table, an API route to post them and a Svelte component.", &[], &[], FullStack);
        check("User sessions", "Keep sessions in KV and add a logout button to the header.", &[], &[], FullStack);
        check("Search page backed by a D1 full-text index", "", &[], &[], FullStack);
        check("Image gallery", "Let users upload images and browse them in a grid layout.", &[], &[], FullStack);
        check("Both", "", &["database", "components"], &[], FullStack);
        check("Todos", "", &[], &["src/routes/api/todos/+server.ts", "src/routes/todos/+page.svelte"], FullStack);
        check("Live counters", "Cache the counts in KV and render them on the dashboard.", &[], &[], FullStack);
        check("Add pagination", "A cursor for the list endpoint and next/previous buttons.", &[], &[], FullStack);
        check("Newsletter signup", "A form posts to a webhook that queues a welcome email.", &[], &[], FullStack);
        check("Add a feature flag kept in KV that hides the beta banner", "", &[], &[], FullStack);
        check("Rate-limited feedback form", "", &[], &[], FullStack);
    }

    #[test]
    fn deployment_configuration_and_ci_without_app_work_is_infrastructure() {
        use TaskType::Infrastructure;
        check("Set up GitHub Actions to deploy with wrangler on every push to main", "", &[], &[], Infrastructure);
        check("Point the docs subdomain at Cloudflare", "Add the DNS records.", &[], &[], Infrastructure);
        check("Rotate the Stripe key", "Move the API key to a secret; update CI env vars.", &[], &[], Infrastructure);
        check("Deploying to staging fails", "The pipeline times out on the build step.", &[], &[], Infrastructure);
        check("Add a preview environment for pull requests", "", &[], &[], Infrastructure);
        check("CI", "", &[], &[".github/workflows/deploy.yml", "wrangler.toml"], Infrastructure);
        check("Bump the compatibility date in wrangler.toml", "", &[], &[], Infrastructure);
        check("Containerise the e2e runner", "Write a Dockerfile and a docker compose file.", &[], &[], Infrastructure);
        check("Deploy the worker", "Run wrangler deploy from CI after the tests pass.", &[], &[], Infrastructure);
        check("Set up monitoring and alerts", "Send logs to our stack with Logpush.", &[], &[], Infrastructure);
        check("Move the SvelteKit app to Cloudflare Pages", "", &[], &[], Infrastructure);
        check("Roll back yesterday's release", "", &[], &[], Infrastructure);
        check("Configure SSL certificates for the custom domain", "", &[], &[], Infrastructure);
        check("Upgrade dependencies", "Update package.json and re-run the pipeline.", &[], &[], Infrastructure);
    }

    #[test]
    fn with_nothing_recognisable_both_specialists_are_assigned_with_zero_confidence() {
        for (title, description) in [
            ("Fix the typo in the README", ""),
            ("Tidy up", "Misc chores from the retro."),
            ("", ""),
            ("🚀🚀🚀", "¿qué?"),
            ("Don't touch the database", ""),
        ] {
            check(title, description, &[], &[], TaskType::FullStack);
            let got = run(title, description, &[], &[]);
            assert_eq!(got.confidence, 0.0, "{title:?}");
            let last = got.reasons.last().map(String::as_str).unwrap_or("");
            assert!(last.contains("both specialists are assigned"), "{title:?}: {last}");
        }
        let negated = run("Don't touch the database", "", &[], &[]);
        assert!(negated.reasons.iter().any(|r| r.contains("every term that matched was negated")));
        let nothing = run("Tidy up", "", &[], &[]);
        assert!(nothing.reasons.iter().any(|r| r.starts_with("nothing in the title")));
        assert!(nothing.evidence.is_empty());
    }

    #[test]
    fn analysing_the_same_task_twice_gives_the_same_answer() {
        let requirements = strings(&["d1", "form actions"]);
        let paths = strings(&["src/routes/+page.svelte", "wrangler.toml"]);
        let input = TaskInput {
            title: "Comments with KV caching",
            description: "Without touching R2, add a table and a modal; deploy to staging.",
            requirements: &requirements,
            paths: &paths,
        };
        let (first, second) = (analyze(&input), analyze(&input));
        assert_eq!(first, second);
        assert_eq!(serde_json::to_string(&first).ok(), serde_json::to_string(&second).ok());
    }

    #[test]
    fn evidence_is_listed_by_source_then_position() {
        let got = run(
            "Add a modal",
            "Store the file in R2, then cache it in KV.",
            &["svelte"],
            &["migrations/0001.sql", "README.md"],
        );
        let listed: Vec<(Source, &str, &str)> =
            got.evidence.iter().map(|e| (e.source, e.term.as_str(), e.matched.as_str())).collect();
        assert_eq!(
            listed,
            [
                (Source::Title, "component", "modal"),
                (Source::Description, "r2", "R2"),
                (Source::Description, "kv", "cache"),
                (Source::Description, "kv", "KV"),
                (Source::Requirement, "svelte", "svelte"),
                (Source::Path, "d1", "migrations/0001.sql"),
            ]
        );
    }

    #[test]
    fn word_forms_phrases_and_synonyms_name_their_canonical_terms() {
        fn terms(text: &str) -> Vec<(String, String)> {
            run(text, "", &[], &[]).evidence.into_iter().map(|e| (e.term, e.matched)).collect()
        }
        let pair = |t: &str, m: &str| (t.to_string(), m.to_string());
        assert_eq!(terms("Databases"), [pair("d1", "Databases")]);
        assert_eq!(terms("caching"), [pair("kv", "caching")]);
        assert_eq!(terms("cached"), [pair("kv", "cached")]);
        assert_eq!(terms("migrations"), [pair("d1", "migrations")]);
        assert_eq!(terms("queries"), [pair("d1", "queries")]);
        assert_eq!(terms("deploying"), [pair("deployment", "deploying")]);
        assert_eq!(terms("forms"), [pair("form", "forms")]);
        assert_eq!(terms("forming"), []);
        assert_eq!(terms("paging"), []);
        assert_eq!(terms("rate-limiting"), [pair("rate-limiting", "rate-limiting")]);
        assert_eq!(terms("Form Actions"), [pair("form", "Form Actions")]);
        assert_eq!(terms("load functions"), [pair("load-function", "load functions")]);
        assert_eq!(terms("an API key"), [pair("secrets", "API key")]);
        assert_eq!(terms("a service worker"), [pair("pwa", "service worker")]);
        assert_eq!(terms("object storage"), [pair("r2", "object storage")]);
        assert_eq!(terms("the data table"), [pair("component", "data table")]);
        assert_eq!(terms("edit `wrangler.toml`."), [pair("wrangler", "wrangler.toml")]);
        assert_eq!(terms("(src/routes/+page.svelte)"), [pair("page", "src/routes/+page.svelte")]);
        assert_eq!(terms("D1/KV"), [pair("d1", "D1"), pair("kv", "KV")]);
        assert_eq!(terms("database. Table"), [pair("d1", "database"), pair("d1", "Table")]);
        assert_eq!(terms("CI/CD pipeline"), [pair("ci", "CI/CD"), pair("ci", "pipeline")]);
        assert_eq!(terms("edit .github/workflows/ci.yml, then"), [pair("ci", ".github/workflows/ci.yml")]);
        assert_eq!(terms("\"./.dev.vars\"!"), [pair("secrets", "./.dev.vars")]);
    }

    #[test]
    fn negated_terms_are_listed_but_do_not_count() {
        fn negations(text: &str) -> Vec<(String, bool)> {
            run(text, "", &[], &[]).evidence.into_iter().map(|e| (e.matched, e.negated)).collect()
        }
        let n = |m: &str, negated: bool| (m.to_string(), negated);
        assert_eq!(negations("Restyle it without touching the database"), [n("Restyle", false), n("database", true)]);
        assert_eq!(
            negations("no database changes, restyle the page"),
            [n("database", true), n("restyle", false), n("page", false)]
        );
        assert_eq!(negations("without the database, KV or R2"), [n("database", true), n("KV", true), n("R2", true)]);
        assert_eq!(negations("don't touch the API but add a modal"), [n("API", true), n("modal", false)]);
        assert_eq!(negations("use KV instead of D1"), [n("KV", false), n("D1", true)]);
        assert_eq!(negations("do not change the database and add a page"), [n("database", true), n("page", false)]);
        assert_eq!(negations("not. database"), [n("database", false)]);
        assert_eq!(negations("not one two three four database"), [n("database", false)]);
        assert_eq!(negations("add a skip link to the page"), [n("skip link", false), n("page", false)]);
        assert_eq!(negations("the database is not involved"), [n("database", false)]);
        let got = run("Restyle the dashboard without touching the database", "", &[], &[]);
        let reason = got.reasons.iter().find(|r| r.contains("D1")).cloned().unwrap_or_default();
        assert_eq!(reason, "mentions D1 (database) in the title after \"without\", so it does not count");
    }

    #[test]
    fn paths_are_classified_by_the_first_rule_that_applies() {
        fn check_path(path: &str, expected: Option<&str>) {
            assert_eq!(classify_path(path).map(|c| c.term), expected, "{path}");
        }
        check_path("src/routes/+page.svelte", Some("page"));
        check_path("src/routes/blog/[slug]/+page.server.ts", Some("page"));
        check_path("src/routes/+layout.svelte", Some("page"));
        check_path("src/lib/components/Button.svelte", Some("component"));
        check_path("src/app.css", Some("styling"));
        check_path("tailwind.config.js", Some("styling"));
        check_path("src/routes/blog/utils.ts", Some("routing"));
        check_path("src/app.html", Some("page"));
        check_path("src/routes/api/users/+server.ts", Some("api"));
        check_path("src/routes/feed.xml/+server.ts", Some("api"));
        check_path("migrations/0001_init.sql", Some("d1"));
        check_path("db/schema.sql", Some("d1"));
        check_path("src/lib/server/db.ts", Some("server-code"));
        check_path("src/hooks.server.ts", Some("server-code"));
        check_path("src/worker.ts", Some("server-code"));
        check_path("src/core/analysis.rs", Some("server-code"));
        check_path("wrangler.toml", Some("wrangler"));
        check_path("./wrangler.jsonc", Some("wrangler"));
        check_path(".github/workflows/deploy.yml", Some("ci"));
        check_path(".gitlab-ci.yml", Some("ci"));
        check_path("Dockerfile", Some("containers"));
        check_path("docker-compose.yaml", Some("containers"));
        check_path(".dev.vars", Some("secrets"));
        check_path(".env.production", Some("secrets"));
        check_path("package.json", Some("config"));
        check_path("infra/main.tf", Some("config"));
        check_path("SRC\\ROUTES\\+PAGE.SVELTE", Some("page"));
        check_path("README.md", None);
        check_path("src/lib/util.ts", None);
        check_path("static/favicon.png", None);
        check_path("", None);
        check_path("///", None);
    }

    #[test]
    fn each_type_gets_the_seed_specialists() {
        let agents = |t: TaskType| t.agents();
        assert_eq!(agents(TaskType::Backend), [CLOUDFLARE_SPECIALIST]);
        assert_eq!(agents(TaskType::Infrastructure), [CLOUDFLARE_SPECIALIST]);
        assert_eq!(agents(TaskType::Frontend), [SVELTEKIT_SPECIALIST]);
        assert_eq!(agents(TaskType::FullStack), [CLOUDFLARE_SPECIALIST, SVELTEKIT_SPECIALIST]);
        for name in [CLOUDFLARE_SPECIALIST, SVELTEKIT_SPECIALIST] {
            assert!(DEFAULT_AGENTS.iter().any(|a| a.name == name), "{name} is not a default agent");
        }
    }

    #[test]
    fn confidence_grows_with_evidence_and_falls_with_mixed_signals() {
        let confidence = |title: &str| run(title, "", &[], &[]).confidence;
        assert_eq!(confidence("a D1 table"), 0.75);
        assert_eq!(confidence("D1"), 0.5);
        assert_eq!(confidence("D1 KV R2"), 0.88);
        assert_eq!(confidence("D1 D1 D1"), 0.5);
        assert_eq!(confidence("D1 and deploy"), 0.33);
        assert_eq!(confidence("D1 and a modal"), 0.5);
        assert_eq!(confidence("fix the worker"), 0.29);
        assert_eq!(confidence("deploy the worker with wrangler"), 0.6);
        assert_eq!(confidence("nothing here"), 0.0);
        assert!(confidence("D1 KV R2 queues cron") > confidence("D1 KV R2"));
    }

    #[test]
    fn reasons_name_the_evidence_and_the_specialist() {
        let got = run("Deploy", "Add a D1 (database) table", &[], &["src/routes/+page.svelte"]);
        assert_eq!(
            got.reasons,
            [
                "mentions deployment in the title, which is infrastructure and outweighed by the application work",
                "mentions D1 (database) in the description → cloudflare-specialist",
                "lists the path src/routes/+page.svelte (a SvelteKit page or layout) → sveltekit-specialist",
                "infrastructure terms matched too; when a task also has backend or frontend work, that work decides \
                 the type",
                "backend and frontend work both matched → full-stack: cloudflare-specialist and sveltekit-specialist",
            ]
        );
        let general = run("Fix the worker", "", &[], &[]);
        assert!(general.reasons.iter().any(|r| r.contains("only general terms matched")), "{:?}", general.reasons);
    }

    #[test]
    fn analysis_serialises_with_the_documented_names() {
        let got = run("Deploy", "", &[], &[]);
        let json = serde_json::to_value(&got).unwrap_or_default();
        assert_eq!(json["task_type"], "infrastructure");
        assert_eq!(json["evidence"][0]["area"], "infrastructure");
        assert_eq!(json["evidence"][0]["source"], "title");
        assert_eq!(json["evidence"][0]["negated"], false);
        for (task_type, name) in [
            (TaskType::Frontend, "\"frontend\""),
            (TaskType::Backend, "\"backend\""),
            (TaskType::FullStack, "\"full-stack\""),
            (TaskType::Infrastructure, "\"infrastructure\""),
        ] {
            assert_eq!(serde_json::to_string(&task_type).ok().as_deref(), Some(name));
            assert_eq!(serde_json::from_str::<TaskType>(name).ok(), Some(task_type));
        }
    }

    #[test]
    fn every_phrase_names_a_known_term_and_is_written_in_base_form_words() {
        let mut seen = BTreeSet::new();
        let mut count = 0;
        for (phrase, id) in VOCABULARY.iter().flat_map(|&(id, phrases)| phrases.iter().map(move |&p| (p, id))) {
            count += 1;
            assert!(find_term(id).is_some(), "{phrase}: unknown term {id}");
            assert!(seen.insert(phrase), "{phrase} is listed twice");
            for word in phrase.split(' ') {
                let word = word.strip_prefix('=').unwrap_or(word);
                assert!(
                    !word.is_empty() && word.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()),
                    "{phrase:?}"
                );
            }
        }
        let mut ids = BTreeSet::new();
        for term in TERMS {
            assert!(ids.insert(term.id), "{} is listed twice", term.id);
            assert!(
                VOCABULARY.iter().any(|&(id, _)| id == term.id) || term.id == "server-code",
                "{} is unused",
                term.id
            );
        }
        assert_eq!(Lexicon::new().phrases.len(), count);
    }

    #[test]
    fn word_forms_are_recognised_without_a_stemmer() {
        let forms = [
            ("cache", "caches", true),
            ("cache", "caching", true),
            ("cache", "cached", true),
            ("deploy", "deploys", true),
            ("deploy", "deployed", true),
            ("query", "queries", true),
            ("query", "queried", true),
            ("map", "mapping", true),
            ("map", "mapped", true),
            ("address", "addresses", true),
            ("style", "styling", true),
            ("d1", "d1", true),
            ("cache", "cachet", false),
            ("page", "pages", true),
            ("api", "apis", true),
            ("kv", "kvx", false),
            ("a", "as", false),
            ("", "s", false),
        ];
        for (base, word, expected) in forms {
            assert_eq!(is_form_of(word, base), expected, "{word} of {base}");
        }
        assert!(is_plural_of("tables", "table") && !is_plural_of("tabled", "table"));
    }

    #[test]
    fn huge_and_strange_inputs_stay_bounded_and_never_panic() {
        let megabyte = "Add a D1 table, a KV cache and a modal without R2. ".repeat(20_000);
        let got = run("Big", &megabyte, &[], &[]);
        assert_eq!(got.task_type, TaskType::FullStack);
        assert!(got.evidence.len() <= EVIDENCE_MAX);
        assert!(got.reasons.len() < 100);

        let one_word = "d".repeat(1 << 20);
        let got = run(&one_word, &one_word, &[one_word.as_str()], &[one_word.as_str()]);
        assert_eq!(got.confidence, 0.0);

        let many: Vec<String> = (0..10_000).map(|i| format!("d1 requirement {i}")).collect();
        let paths: Vec<String> = (0..10_000).map(|i| format!("src/routes/p{i}/+page.svelte")).collect();
        let got = analyze(&TaskInput { title: "", description: "", requirements: &many, paths: &paths });
        assert_eq!(got.task_type, TaskType::FullStack);
        assert_eq!(got.evidence.len(), EVIDENCE_MAX);
        assert!(got.reasons.iter().any(|r| r.contains("the first 64 are listed")));

        let words = "d1 ".repeat(400_000);
        let got = run(&words, &words, &[], &[]);
        assert_eq!(got.evidence.len(), 2);

        for text in ["İİİİ d1", "don'", "'''", "...", "+", "+.", "a/b/c/d/", "\u{0301}d1", "no", "not not not"] {
            let got = run(text, text, &[text], &[text]);
            assert!((0.0..=1.0).contains(&got.confidence), "{text:?}");
        }
        let multibyte = "é".repeat(ANALYSIS_TEXT_BYTES_MAX);
        assert!(head(&multibyte, ANALYSIS_TEXT_BYTES_MAX - 1).len() < ANALYSIS_TEXT_BYTES_MAX);
    }

    // Selection.

    fn default_profiles() -> (Vec<Vec<String>>, Vec<(&'static str, &'static str)>) {
        let capabilities = DEFAULT_AGENTS.iter().map(|a| strings(a.capabilities)).collect();
        let names = DEFAULT_AGENTS.iter().map(|a| (a.name, a.description)).collect();
        (capabilities, names)
    }

    fn select_defaults(requirements: &[&str]) -> Selection {
        let (capabilities, names) = default_profiles();
        let profiles: Vec<AgentProfile> = names
            .iter()
            .zip(&capabilities)
            .map(|(&(name, description), capabilities)| AgentProfile { name, description, capabilities })
            .collect();
        select(&strings(requirements), &profiles)
    }

    fn check_select(requirements: &[&str], expected: Option<&str>) {
        let got = select_defaults(requirements);
        assert_eq!(got.agent.as_deref(), expected, "{requirements:?}: {:#?}", got.candidates);
    }

    #[test]
    fn auto_select_picks_the_agent_whose_capabilities_fit_best() {
        check_select(&["database", "d1", "migrations"], Some("cloudflare-specialist"));
        check_select(&["component", "svelte", "accessibility"], Some("sveltekit-specialist"));
        check_select(&["Database", " D1 ", "MIGRATIONS"], Some("cloudflare-specialist"));
        check_select(&["bucket"], Some("cloudflare-specialist"));
        check_select(&["table"], Some("cloudflare-specialist"));
        check_select(&["form-actions", "runes"], Some("sveltekit-specialist"));
        check_select(&["vitest", "e2e"], Some("test-runner"));
        check_select(&["unit tests", "coverage"], Some("test-runner"));
        check_select(&["checklist", "integration"], Some("project-manager"));
        check_select(&["codebase", "documentation lookup"], Some("context-fetcher"));
        check_select(&["caching"], Some("cloudflare-specialist"));
        check_select(&["cache"], Some("cloudflare-specialist"));
        check_select(&["quantum entanglement"], None);
        check_select(&[], None);
        check_select(&["", "   ", "\t\n"], None);
    }

    #[test]
    fn the_seed_examples_score_every_requirement_as_an_exact_match() {
        let got = select_defaults(&["database", "d1", "migrations"]);
        assert_eq!(
            got.candidates.first().map(|c| (c.score, c.matched.clone())),
            Some((30, strings(&["database", "d1", "migrations"])))
        );
        let got = select_defaults(&["component", "svelte", "accessibility"]);
        assert_eq!(got.candidates.first().map(|c| c.score), Some(30));
    }

    #[test]
    fn matched_lists_the_contributing_requirements_in_order_once() {
        let got = select_defaults(&["d1", "svelte", "  kv  ", "d1", "quantum"]);
        let listed: Vec<(&str, Vec<String>)> =
            got.candidates.iter().map(|c| (c.agent.as_str(), c.matched.clone())).collect();
        assert_eq!(
            listed,
            [("cloudflare-specialist", strings(&["d1", "kv"])), ("sveltekit-specialist", strings(&["svelte"]))]
        );
    }

    #[test]
    fn match_kinds_score_exact_then_related_then_partial_then_description() {
        fn score(requirement: &str, capability: &str, description: &str) -> u32 {
            let capabilities = strings(&[capability]);
            let agents = [AgentProfile { name: "a", description, capabilities: &capabilities }];
            select(&strings(&[requirement]), &agents).candidates.first().map_or(0, |c| c.score)
        }
        assert_eq!(score("components", "component", ""), SCORE_EXACT);
        assert_eq!(score("Form Actions", "form-actions", ""), SCORE_EXACT);
        assert_eq!(score("queries", "query", ""), SCORE_EXACT);
        assert_eq!(score("caching", "cache", ""), SCORE_RELATED);
        assert_eq!(score("bucket", "r2", ""), SCORE_RELATED);
        assert_eq!(score("table", "database", ""), SCORE_RELATED);
        assert_eq!(score("unit", "unit tests", ""), SCORE_PARTIAL);
        assert_eq!(score("component", "component tests", ""), SCORE_PARTIAL);
        assert_eq!(score("dark mode", "mobile responsiveness", ""), 0);
        assert_eq!(score("emails", "sms", "Sends email and text messages."), SCORE_DESCRIPTION);
        assert_eq!(score("the", "sms", "the one"), 0);
        assert_eq!(score("emails", "sms", ""), 0);
    }

    #[test]
    fn ties_go_to_the_name_that_sorts_first() {
        let capabilities = strings(&["x-ray"]);
        let agents = [
            AgentProfile { name: "zeta", description: "", capabilities: &capabilities },
            AgentProfile { name: "alpha", description: "", capabilities: &capabilities },
            AgentProfile { name: "mid", description: "", capabilities: &[] },
        ];
        let got = select(&strings(&["X-Ray"]), &agents);
        assert_eq!(got.agent.as_deref(), Some("alpha"));
        let order: Vec<&str> = got.candidates.iter().map(|c| c.agent.as_str()).collect();
        assert_eq!(order, ["alpha", "zeta"]);
    }

    #[test]
    fn selection_stays_bounded_on_huge_input() {
        let capabilities: Vec<String> = (0..1_000).map(|i| format!("capability {i}")).collect();
        let names: Vec<String> = (0..1_000).map(|i| format!("agent-{i:04}")).collect();
        let description = "word ".repeat(200_000);
        let agents: Vec<AgentProfile> = names
            .iter()
            .map(|name| AgentProfile { name, description: &description, capabilities: &capabilities })
            .collect();
        let requirements: Vec<String> = (0..10_000).map(|i| format!("capability {i}")).collect();
        let got = select(&requirements, &agents);
        assert_eq!(got.candidates.len(), SELECT_AGENTS_MAX);
        assert_eq!(got.agent.as_deref(), Some("agent-0000"));
        let huge = "x".repeat(1 << 20);
        let got = select(
            std::slice::from_ref(&huge),
            &[AgentProfile { name: "a", description: &huge, capabilities: std::slice::from_ref(&huge) }],
        );
        assert_eq!(
            got.agent, None,
            "a requirement is read up to {TASK_REQUIREMENT_BYTES_MAX} bytes, a capability to {AGENT_CAPABILITY_BYTES_MAX}"
        );
    }
}
