//! The names of the Worker's bindings, exactly as wrangler.jsonc declares them. Every use of a
//! binding goes through these constants so that a rename is one edit here and one in
//! wrangler.jsonc.

/// D1: the source of truth (agents, workflows, tasks, steps, events, ...).
pub const DB: &str = "DB";
/// KV: read-through caches and sessions.
pub const CACHE: &str = "CACHE";
/// R2: logs, summaries and large reports.
pub const ARTIFACTS: &str = "ARTIFACTS";
/// Queue producer for step dispatch; its consumer is this Worker.
pub const STEPS: &str = "STEPS";
/// Queue producer for messages that can never be processed; also consumed by this Worker.
pub const STEPS_DLQ: &str = "STEPS_DLQ";

/// Durable Object namespace: one `AgentWake` per agent, holding its waiting lease requests.
pub const AGENT_WAKE: &str = "AGENT_WAKE";

/// Rate-limiting bindings: requests per client address, and per bearer token.
pub const RATE_LIMIT_ADDRESS: &str = "RATE_LIMIT_ADDRESS";
pub const RATE_LIMIT_CREDENTIAL: &str = "RATE_LIMIT_CREDENTIAL";

/// Vars (plain text, from wrangler.jsonc `vars`) and secrets (`wrangler secret put`).
pub const ADMIN_TOKEN: &str = "ADMIN_TOKEN";
pub const CORS_ORIGINS: &str = "CORS_ORIGINS";
/// Var: the agent that does workflow steps naming no subagent, unless the workflow or the task
/// names another (default `main-agent`, one of the default agents).
pub const MAIN_AGENT: &str = "MAIN_AGENT";
pub const TEST_FAULTS: &str = "TEST_FAULTS";
/// Seconds a queued step's message may be overdue before the cron sweep re-sends it (default
/// 60; the tests set it low to prove recovery without waiting a minute).
pub const REDISPATCH_AFTER_SECONDS: &str = "REDISPATCH_AFTER_SECONDS";
/// Var: how many days a finished task stays in D1 before the cron archives it to R2 (default
/// 30; see `core::records::archive`).
pub const TASK_RETENTION_DAYS: &str = "TASK_RETENTION_DAYS";
/// Var: how long a session lasts, in seconds (default 8 hours).
pub const SESSION_TTL_SECONDS: &str = "SESSION_TTL_SECONDS";
