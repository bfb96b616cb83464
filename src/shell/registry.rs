//! Handlers for the agent registry, workflows, task analysis and agent selection, and the
//! one-time loading of the defaults.
//!
//! Agent lookups by name go through a KV read-through cache (`agent:{name}`) that every write
//! to that agent deletes. A lookup may serve an agent up to [`AGENT_CACHE_TTL_SECONDS`] older
//! than the latest write: in another location (KV is eventually consistent), or when a lookup
//! that read D1 just before a write puts its copy back just after the write's delete. Every
//! copy expires by then. A token's agent (`token:{hash}`) is cached as it is issued and kept
//! for a day, because a lookup that races a revocation checks D1 again after its put (see
//! `cache_token`). In front of KV, each isolate remembers what it read, and the agents of
//! the tokens it read, for [`ISOLATE_MEMO_MS`] (a runner's requests come seconds apart): its own
//! writes forget an entry at once, another isolate's reach it within that time, which adds to
//! the bound above.
//!
//! A submission's read (the workflow, every agent, the files it executes) is kept per workflow
//! for `SUBMISSION_READ_KEPT_MS` too, but never trusted: a task planned on it is inserted only
//! if D1 still holds what it found ([`SubmissionRead::guard`]), and planned again on a fresh
//! read otherwise.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::LocalKey;

use serde_json::{json, Value};
use worker::{D1Database, Env};

use super::call::{Call, Failed, Handled};
use super::{platform, store};
use crate::core::base::bindings;
use crate::core::base::ids::IdKind;
use crate::core::base::limits::{
    EXECUTED_WORKFLOWS_MAX, EXECUTE_DEPTH_MAX, INSTRUCTION_FILE_BYTES_MAX, ISOLATE_MEMO_ENTRIES_MAX, ISOLATE_MEMO_MS,
    SELECT_REQUIREMENTS_MAX, SUBMISSION_READS_KEPT_MAX, SUBMISSION_READ_KEPT_MS, TASK_REQUIREMENT_BYTES_MAX,
};
use crate::core::base::memo::Memo;
use crate::core::base::time::Timestamp;
use crate::core::edge::auth::{hash_token, new_agent_token, AGENT_TOKEN_RANDOM_BYTES};
use crate::core::edge::error::{ApiError, Detail};
use crate::core::edge::http::{
    is_json_content_type, is_markdown_content_type, parse_json_body, parse_json_body_within, parse_no_fields,
};
use crate::core::edge::paging::Page;
use crate::core::edge::response::ApiResponse;
use crate::core::engine::task_api::{check_list, TaskRequest, WorkflowRef};
use crate::core::engine::{brief, webhook, AgentTimeouts};
use crate::core::registry::agents::{self, AgentInput, AgentSpec, Mode};
use crate::core::registry::analysis::{self, AgentProfile};
use crate::core::registry::child_runs::{self, Files, PostedFile};
use crate::core::registry::default_agents::DEFAULT_AGENTS;
use crate::core::registry::instructions;
use crate::core::registry::workflow::{
    self, Definition, FlightExecute, FlightRules, DEFAULT_RULES_FILES, DEFAULT_WORKFLOW_NAME, DEFAULT_WORKFLOW_SOURCE,
};

/// How long a cached agent lives in KV: KV's shortest TTL, which is also the longest another
/// location can serve an agent after it changed (plus [`ISOLATE_MEMO_MS`] in its isolates).
pub const AGENT_CACHE_TTL_SECONDS: u64 = 60;

/// How long a token's owner lives in KV. Every rotation and deletion deletes it (and a lookup
/// racing one takes its copy back, see [`cache_token`]), so this bounds only how long KV keeps a
/// token nobody uses, not how long a revoked one works. A day, not KV's minute: a runner's
/// token is then read from D1 once a day instead of once a minute, which an idle runner's
/// long-polling lease requests would otherwise pay for.
pub const TOKEN_CACHE_TTL_SECONDS: u64 = 24 * 3600;

thread_local! {
    /// Agents as [`cached_agent`] returns them, by their KV key.
    static AGENTS: RefCell<Memo<Value>> = const { RefCell::new(Memo::new(ISOLATE_MEMO_MS, ISOLATE_MEMO_ENTRIES_MAX)) };
    /// The agent a known token belongs to, by its KV key.
    static TOKENS: RefCell<Memo<String>> = const { RefCell::new(Memo::new(ISOLATE_MEMO_MS, ISOLATE_MEMO_ENTRIES_MAX)) };
}

/// Random bytes in a webhook secret: 256 bits, like the agent token.
const WEBHOOK_SECRET_RANDOM_BYTES: usize = 32;

/// Set once this isolate has made sure the defaults are loaded; the check is one D1 batch, and
/// it need not run on every request.
static DEFAULTS_CHECKED: AtomicBool = AtomicBool::new(false);

/// Loads the default agents, the default workflow and its rules files before an isolate answers its first
/// authenticated request (and on the first cron run).
/// The batch is idempotent (see `store::load_defaults`), so isolates racing here is harmless.
pub async fn ensure_defaults(env: &Env, now: Timestamp) -> worker::Result<()> {
    if DEFAULTS_CHECKED.load(Ordering::Relaxed) {
        return Ok(());
    }
    let db = env.d1(bindings::DB)?;
    let agents: Vec<AgentSpec> = DEFAULT_AGENTS
        .iter()
        .map(|a| AgentSpec {
            name: a.name.to_string(),
            description: a.description.to_string(),
            capabilities: a.capabilities.iter().map(|c| c.to_string()).collect(),
            mode: Mode::Pull,
            webhook_url: None,
            max_concurrency: 1,
            lease_ms: crate::core::registry::agents::LEASE_MS_DEFAULT,
            step_timeout_ms: crate::core::registry::agents::STEP_TIMEOUT_MS_DEFAULT,
            schedule_timeout_ms: crate::core::base::limits::SCHEDULE_TIMEOUT_MS_DEFAULT,
            metadata: json!({}),
            source: None,
        })
        .collect();
    let mut definitions = Vec::new();
    for (name, source) in DEFAULT_RULES_FILES {
        let parsed = instructions::parse(source);
        let rules = Definition::rules_file(name.to_string(), &parsed.file, instructions::body_of(source));
        definitions.push((name, rules, source));
    }
    let parsed = instructions::parse(DEFAULT_WORKFLOW_SOURCE);
    let definition = workflow::from_instructions(DEFAULT_WORKFLOW_NAME.to_string(), &parsed.file);
    definitions.push((DEFAULT_WORKFLOW_NAME, definition, DEFAULT_WORKFLOW_SOURCE));
    let mut workflows = Vec::new();
    for (name, definition, source) in definitions {
        let json = serde_json::to_string(&definition).map_err(|e| worker::Error::RustError(e.to_string()))?;
        workflows.push(store::DefaultWorkflow {
            id: platform::new_id(IdKind::Workflow, now)?,
            name,
            definition: json,
            source,
        });
    }
    store::load_defaults(&db, &agents, &workflows, now).await?;
    DEFAULTS_CHECKED.store(true, Ordering::Relaxed);
    Ok(())
}

fn millis(ms: i64) -> String {
    Timestamp::saturating_from_millis(ms).to_rfc3339()
}

fn agent_json(row: &store::AgentRow) -> Value {
    json!({
        "name": row.name,
        "description": row.description,
        "capabilities": serde_json::from_str::<Value>(&row.capabilities).unwrap_or(json!([])),
        "mode": row.mode,
        "webhook_url": row.webhook_url,
        "max_concurrency": row.max_concurrency,
        "lease_ms": row.lease_ms,
        "step_timeout_ms": row.step_timeout_ms,
        "schedule_timeout_ms": row.schedule_timeout_ms,
        "imported": row.imported != 0,
        "metadata": serde_json::from_str::<Value>(&row.metadata).unwrap_or(json!({})),
        "version": row.version,
        "created_at": millis(row.created_at),
        "updated_at": millis(row.updated_at),
    })
}

fn cache_key(name: &str) -> String {
    format!("agent:{name}")
}

/// An agent by name, through the KV cache. A KV failure is logged and treated as a miss: the
/// cache may make lookups faster, never make them fail.
async fn cached_agent(env: &Env, db: &D1Database, name: &str) -> worker::Result<Option<Value>> {
    let key = cache_key(name);
    let read_from = match recall(&AGENTS, &key) {
        Ok(value) => return Ok(Some(value)),
        Err(read_from) => read_from,
    };
    let kv = env.kv(bindings::CACHE)?;
    match kv.get(&key).text().await {
        Ok(Some(text)) => {
            if let Ok(value) = serde_json::from_str::<Value>(&text) {
                remember(&AGENTS, key, &value, read_from);
                return Ok(Some(value));
            }
        }
        Ok(None) => {}
        Err(err) => worker::console_warn!("agent cache read for {name} failed: {err}"),
    }
    let Some(row) = store::get_agent(db, name).await? else { return Ok(None) };
    let value = agent_json(&row);
    remember(&AGENTS, key.clone(), &value, read_from);
    // A JSON string, not the Value itself: the runtime would store a map as {}.
    let stored = match kv.put(&key, value.to_string()) {
        Ok(put) => put.expiration_ttl(AGENT_CACHE_TTL_SECONDS).execute().await.map_err(worker::Error::from),
        Err(err) => Err(worker::Error::from(err)),
    };
    if let Err(err) = stored {
        worker::console_warn!("agent cache write for {name} failed: {err}");
    }
    Ok(Some(value))
}

/// Deletes the cached copy after a write to D1. A failure is logged, not returned: the write has
/// happened, and a copy left behind expires within the documented staleness bound anyway.
async fn invalidate(env: &Env, name: &str) {
    delete_cached(env, &cache_key(name)).await;
}

/// What `memo` remembers for `key`, or where its writes stand for the read that replaces it.
fn recall<V: Clone>(memo: &'static LocalKey<RefCell<Memo<V>>>, key: &str) -> Result<V, u64> {
    memo.with(|memo| {
        let memo = memo.borrow();
        memo.get(key, platform::now()).ok_or(memo.writes())
    })
}

fn remember<V: Clone>(memo: &'static LocalKey<RefCell<Memo<V>>>, key: String, value: &V, read_from: u64) {
    memo.with(|memo| memo.borrow_mut().put(key, value.clone(), platform::now(), read_from));
}

fn forget(key: &str) {
    AGENTS.with(|memo| memo.borrow_mut().forget(key));
    TOKENS.with(|memo| memo.borrow_mut().forget(key));
}

async fn delete_cached(env: &Env, key: &str) {
    let deleted = match env.kv(bindings::CACHE) {
        Ok(kv) => kv.delete(key).await.map_err(worker::Error::from),
        Err(err) => Err(err),
    };
    // Once the KV copy is gone: what was remembered goes with it, and a lookup that read KV
    // before the delete finished puts nothing (its read began before this write).
    forget(key);
    if let Err(err) = deleted {
        worker::console_warn!("cache invalidation of {key} failed: {err}");
    }
}

fn token_cache_key(token_hash: &str) -> String {
    format!("token:{token_hash}")
}

/// Whether this isolate found the token with this hash valid within [`ISOLATE_MEMO_MS`]:
/// a look in memory only, never in KV or D1.
pub fn token_known_here(token_hash: &str) -> bool {
    recall(&TOKENS, &token_cache_key(token_hash)).is_ok()
}

/// The agent a token belongs to, by the token's SHA-256, through the KV cache. Only known
/// tokens are cached, so unknown ones cannot fill KV; every revocation deletes the entry (see
/// [`TOKEN_CACHE_TTL_SECONDS`]).
pub async fn agent_for_token(env: &Env, token_hash: &str) -> worker::Result<Option<String>> {
    let key = token_cache_key(token_hash);
    let read_from = match recall(&TOKENS, &key) {
        Ok(name) => return Ok(Some(name)),
        Err(read_from) => read_from,
    };
    let kv = env.kv(bindings::CACHE)?;
    match kv.get(&key).text().await {
        Ok(Some(name)) => {
            remember(&TOKENS, key, &name, read_from);
            return Ok(Some(name));
        }
        Ok(None) => {}
        Err(err) => worker::console_warn!("token cache read failed: {err}"),
    }
    let db = env.d1(bindings::DB)?;
    let Some(name) = store::agent_by_token_hash(&db, token_hash).await? else { return Ok(None) };
    remember(&TOKENS, key, &name, read_from);
    cache_token(env, &db, token_hash, &name).await;
    Ok(Some(name))
}

/// Puts `token:{hash}` → `name` in KV, then reads D1 once more and takes the copy back if the
/// token no longer belongs to `name`. A rotation or deletion deletes the entry after its D1
/// write; a caller that read D1 before that write and puts after that delete would otherwise
/// leave a revoked token cached for [`TOKEN_CACHE_TTL_SECONDS`]. Its second read comes after its
/// put, so after the delete and the write before it, and sees the revocation. A KV failure is
/// logged: the cache may make lookups faster, never make them fail.
async fn cache_token(env: &Env, db: &D1Database, token_hash: &str, name: &str) {
    let key = token_cache_key(token_hash);
    let stored = match env.kv(bindings::CACHE).and_then(|kv| Ok(kv.put(&key, name)?)) {
        Ok(put) => put.expiration_ttl(TOKEN_CACHE_TTL_SECONDS).execute().await.map_err(worker::Error::from),
        Err(err) => Err(err),
    };
    if let Err(err) = stored {
        worker::console_warn!("token cache write failed: {err}");
        return;
    }
    match store::agent_by_token_hash(db, token_hash).await {
        Ok(Some(owner)) if owner == name => {}
        Ok(_) => delete_cached(env, &key).await,
        Err(err) => {
            worker::console_warn!("token cache check failed, taking the copy back: {err}");
            delete_cached(env, &key).await;
        }
    }
}

/// What dispatching a step needs to know about its agent.
pub struct DispatchAgent {
    pub webhook: bool,
    pub max_concurrency: i64,
    pub timeouts: AgentTimeouts,
}

/// The timeouts of an agent that is not registered (any more): the defaults.
pub const DEFAULT_TIMEOUTS: AgentTimeouts = AgentTimeouts {
    schedule_ms: crate::core::base::limits::SCHEDULE_TIMEOUT_MS_DEFAULT,
    attempt_ms: crate::core::registry::agents::STEP_TIMEOUT_MS_DEFAULT,
    heartbeat_ms: crate::core::registry::agents::LEASE_MS_DEFAULT,
};

/// An agent's mode and timeouts, through the KV cache.
pub async fn agent_for_dispatch(env: &Env, db: &D1Database, name: &str) -> worker::Result<Option<DispatchAgent>> {
    Ok(cached_agent(env, db, name).await?.as_ref().map(dispatch_agent_of))
}

/// [`agent_for_dispatch`] for an agent already read from D1.
pub fn dispatch_agent(row: &store::AgentRow) -> DispatchAgent {
    dispatch_agent_of(&agent_json(row))
}

fn dispatch_agent_of(agent: &Value) -> DispatchAgent {
    let field = |key: &str, default: i64| agent[key].as_i64().unwrap_or(default);
    DispatchAgent {
        webhook: agent["mode"] == "webhook",
        max_concurrency: agent["max_concurrency"].as_i64().unwrap_or(1),
        timeouts: AgentTimeouts {
            schedule_ms: field("schedule_timeout_ms", DEFAULT_TIMEOUTS.schedule_ms),
            attempt_ms: field("step_timeout_ms", DEFAULT_TIMEOUTS.attempt_ms),
            heartbeat_ms: field("lease_ms", DEFAULT_TIMEOUTS.heartbeat_ms),
        },
    }
}

/// The agent part of a step's brief, through the KV cache; an agent that is not registered
/// (any more) is handed out by name only.
pub async fn agent_brief(env: &Env, db: &D1Database, name: &str) -> worker::Result<Value> {
    let agent = cached_agent(env, db, name).await?.unwrap_or(Value::Null);
    let field = |key: &str| agent.get(key).cloned().unwrap_or(Value::Null);
    Ok(brief::agent_part(name, agent["description"].as_str().unwrap_or(""), &field("capabilities"), &field("metadata")))
}

/// A path parameter that must be an agent name; anything else cannot name an agent: 404.
fn agent_name_param(call: &Call<'_>) -> Result<String, ApiError> {
    let name = call.matched.param("name");
    agents::check_name(name).map_err(|_| ApiError::NotFound { message: "no agent with this name".into() })?;
    Ok(name.to_string())
}

fn not_found_agent(name: &str) -> Failed {
    Failed::Client(ApiError::NotFound { message: format!("no agent named {name}") })
}

/// A new bearer token for an agent: shown once, stored as a hash.
fn new_token() -> worker::Result<String> {
    Ok(new_agent_token(platform::random_bytes::<AGENT_TOKEN_RANDOM_BYTES>()?))
}

fn new_webhook_secret() -> worker::Result<String> {
    Ok(webhook::secret_of(&platform::random_bytes::<WEBHOOK_SECRET_RANDOM_BYTES>()?))
}

/// Stores a new agent and answers 201 with it and its token (and webhook secret), shown once.
async fn create(call: &Call<'_>, spec: AgentSpec) -> Handled {
    let db = call.env.d1(bindings::DB)?;
    let token = new_token()?;
    let webhook_secret = if spec.mode == Mode::Webhook { Some(new_webhook_secret()?) } else { None };
    let token_hash = hash_token(&token);
    let secrets = store::AgentSecrets { token_hash: &token_hash, webhook_secret: webhook_secret.as_deref() };
    match store::insert_agent(&db, &spec, &secrets, call.now).await? {
        store::InsertAgent::Inserted => {}
        store::InsertAgent::NameTaken => {
            return Err(ApiError::Conflict { message: format!("an agent named {} already exists", spec.name) }.into())
        }
        store::InsertAgent::RegistryFull => {
            return Err(ApiError::Conflict {
                message: format!("the registry holds its maximum of {} agents", store::AGENTS_MAX),
            }
            .into())
        }
    }
    invalidate(call.env, &spec.name).await;
    // Cached as it is issued: its agent's first request then needs no D1 read to know it.
    cache_token(call.env, &db, &token_hash, &spec.name).await;
    let row = store::get_agent(&db, &spec.name).await?.ok_or_else(|| not_found_agent(&spec.name))?;
    let mut body = json!({"agent": agent_json(&row), "token": token});
    if let Some(secret) = webhook_secret {
        body["webhook_secret"] = Value::from(secret);
    }
    Ok(ApiResponse::json(201, &body))
}

/// `POST /v1/agents`.
pub async fn create_agent(call: &Call<'_>, body: &[u8]) -> Handled {
    let input: AgentInput = parse_json_body(call.content_type.as_deref(), body)?;
    let spec = agents::validate(input, None).map_err(|details| ApiError::Invalid { details })?;
    create(call, spec).await
}

/// `POST /v1/agents/import`: a Claude Code subagent file.
pub async fn import_agent(call: &Call<'_>, body: &[u8]) -> Handled {
    let text = markdown_body(call, body, "text/markdown")?;
    let spec = agents::from_subagent_file(&text).map_err(|details| ApiError::Invalid { details })?;
    create(call, spec).await
}

/// `GET /v1/agents`.
pub async fn list_agents(call: &Call<'_>) -> Handled {
    let page = Page::parse(&call.query)?;
    let db = call.env.d1(bindings::DB)?;
    let rows = store::list_agents(&db, page.cursor.as_deref(), page.limit).await?;
    let next_cursor = page.next_cursor(rows.len(), rows.last().map(|r| r.name.clone()));
    let agents: Vec<Value> = rows.iter().map(agent_json).collect();
    Ok(ApiResponse::json(200, &json!({"agents": agents, "next_cursor": next_cursor})))
}

/// `GET /v1/agents/{name}`, through the KV cache.
pub async fn get_agent(call: &Call<'_>) -> Handled {
    let name = agent_name_param(call)?;
    let db = call.env.d1(bindings::DB)?;
    let agent = cached_agent(call.env, &db, &name).await?.ok_or_else(|| not_found_agent(&name))?;
    Ok(ApiResponse::json(200, &json!({"agent": agent})))
}

/// `PUT /v1/agents/{name}`: replaces the editable fields. An agent that becomes a webhook agent
/// gets a webhook secret, shown in this response only.
pub async fn update_agent(call: &Call<'_>, body: &[u8]) -> Handled {
    let name = agent_name_param(call)?;
    let input: AgentInput = parse_json_body(call.content_type.as_deref(), body)?;
    let spec = agents::validate(input, Some(&name)).map_err(|details| ApiError::Invalid { details })?;
    let db = call.env.d1(bindings::DB)?;
    let new_secret = if spec.mode == Mode::Webhook && !store::has_webhook_secret(&db, &name).await? {
        Some(new_webhook_secret()?)
    } else {
        None
    };
    if !store::update_agent(&db, &spec, new_secret.as_deref(), call.now).await? {
        return Err(not_found_agent(&name));
    }
    invalidate(call.env, &name).await;
    let row = store::get_agent(&db, &name).await?.ok_or_else(|| not_found_agent(&name))?;
    let mut body = json!({"agent": agent_json(&row)});
    if let Some(secret) = new_secret {
        body["webhook_secret"] = Value::from(secret);
    }
    Ok(ApiResponse::json(200, &body))
}

/// `POST /v1/agents/{name}/token`: a new token for the agent, shown once; the old one stops
/// working at once in this isolate, within [`ISOLATE_MEMO_MS`] in the others, and in other
/// locations once KV's delete of its cached owner reaches them (about a minute).
pub async fn rotate_token(call: &Call<'_>, body: &[u8]) -> Handled {
    let name = agent_name_param(call)?;
    parse_no_fields(call.content_type.as_deref(), body)?;
    let db = call.env.d1(bindings::DB)?;
    let token = new_token()?;
    let token_hash = hash_token(&token);
    let Some(old) = store::replace_token_hash(&db, &name, &token_hash, call.now).await? else {
        return Err(not_found_agent(&name));
    };
    if let Some(hash) = old {
        delete_cached(call.env, &token_cache_key(&hash)).await;
    }
    invalidate(call.env, &name).await;
    cache_token(call.env, &db, &token_hash, &name).await;
    Ok(ApiResponse::json(200, &json!({"agent": name, "token": token})))
}

/// `POST /v1/agents/{name}/webhook-secret`: a new signing secret for a webhook agent, shown
/// once; deliveries are signed with it from now on and the old one stops verifying.
pub async fn rotate_webhook_secret(call: &Call<'_>, body: &[u8]) -> Handled {
    let name = agent_name_param(call)?;
    parse_no_fields(call.content_type.as_deref(), body)?;
    let db = call.env.d1(bindings::DB)?;
    let secret = new_webhook_secret()?;
    match store::replace_webhook_secret(&db, &name, &secret, call.now).await? {
        store::SecretReplaced::Done => {}
        store::SecretReplaced::NoSuchAgent => return Err(not_found_agent(&name)),
        store::SecretReplaced::NotWebhook => {
            return Err(ApiError::Conflict {
                message: format!("{name} is a pull agent; only webhook agents have a secret"),
            }
            .into())
        }
    }
    invalidate(call.env, &name).await;
    Ok(ApiResponse::json(200, &json!({"agent": name, "webhook_secret": secret})))
}

/// `DELETE /v1/agents/{name}`.
pub async fn delete_agent(call: &Call<'_>) -> Handled {
    let name = agent_name_param(call)?;
    let db = call.env.d1(bindings::DB)?;
    let Some(deleted) = store::delete_agent(&db, &name).await? else { return Err(not_found_agent(&name)) };
    invalidate(call.env, &name).await;
    if let Some(hash) = deleted.token_hash {
        delete_cached(call.env, &token_cache_key(&hash)).await;
    }
    Ok(ApiResponse::empty(204))
}

/// An instruction or subagent file: declared as markdown or plain text, valid UTF-8.
/// `expected` names the types the route takes, for the 415 message.
fn markdown_body(call: &Call<'_>, body: &[u8], expected: &'static str) -> Result<String, ApiError> {
    if !is_markdown_content_type(call.content_type.as_deref()) {
        return Err(ApiError::UnsupportedMediaType { expected });
    }
    String::from_utf8(body.to_vec()).map_err(|err| ApiError::BadRequest {
        message: format!("the body is not valid UTF-8 (invalid byte at offset {})", err.utf8_error().valid_up_to()),
        details: vec![],
    })
}

/// The workflow's view: id, name, version and time, then the definition's fields.
fn workflow_json(id: &str, version: i64, created_at: i64, definition: &Value) -> Value {
    let mut body = json!({"id": id, "version": version, "created_at": millis(created_at)});
    if let (Some(target), Some(fields)) = (body.as_object_mut(), definition.as_object()) {
        for (key, value) in fields {
            target.insert(key.clone(), value.clone());
        }
    }
    body
}

/// A stored workflow as served. Definitions are written by us as JSON; one that does not read
/// back is a fault to report, not an empty workflow to show.
fn stored_workflow(row: &store::WorkflowRow) -> Result<Value, Failed> {
    let definition = serde_json::from_str::<Value>(&row.definition)
        .map_err(|err| Failed::Fault(format!("stored workflow {} is not JSON: {err}", row.id)))?;
    Ok(workflow_json(&row.id, row.version, row.created_at, &definition))
}

/// The `name` query parameter of `POST /v1/workflows`, if any; other parameters are refused.
fn requested_name(query: &str) -> Result<Option<String>, ApiError> {
    let mut name = None;
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        match pair.split_once('=') {
            Some(("name", value)) => name = Some(value.to_string()),
            _ => return Err(ApiError::bad_query(pair, "unknown query parameter")),
        }
    }
    Ok(name)
}

/// `POST /v1/workflows`: an instruction file (`text/markdown`) or a definition (JSON). Every
/// problem is reported at once (422 `invalid_workflow`); agents that are not registered yet are
/// warnings, since agents are often imported after the workflow.
pub async fn create_workflow(call: &Call<'_>, body: &[u8]) -> Handled {
    let requested = requested_name(&call.query)?;
    let (definition, source, mut warnings) = if is_json_content_type(call.content_type.as_deref()) {
        let mut fields: serde_json::Map<String, Value> =
            parse_json_body_within(INSTRUCTION_FILE_BYTES_MAX, call.content_type.as_deref(), body)?;
        // What GET adds to a definition may come back with it: a workflow read can be posted
        // again as the next version.
        for served in ["id", "version", "created_at"] {
            fields.remove(served);
        }
        let mut definition: Definition = serde_json::from_value(Value::Object(fields))
            .map_err(|err| crate::core::edge::error::from_json_error(&err))?;
        if let Some(name) = requested {
            definition.name = name;
        }
        let details = workflow::validate(&mut definition);
        if !details.is_empty() {
            return Err(ApiError::InvalidWorkflow { details }.into());
        }
        (definition, None, Vec::new())
    } else {
        let text = markdown_body(call, body, "text/markdown or application/json")?;
        let parsed = instructions::parse(&text);
        let (mut errors, warnings) = workflow::split_problems(&parsed.problems);
        let name = workflow::choose_name(requested.as_deref(), &parsed.file);
        if let Err(detail) = &name {
            errors.insert(0, detail.clone());
        }
        let rules = instructions::is_rules_file(&parsed);
        match name {
            Ok(name) if rules => {
                (Definition::rules_file(name, &parsed.file, instructions::body_of(&text)), Some(text), warnings)
            }
            Ok(name) if errors.is_empty() => {
                let definition = workflow::from_instructions(name, &parsed.file);
                let problems = workflow::definition_problems(&definition);
                if !problems.is_empty() {
                    return Err(ApiError::InvalidWorkflow { details: problems }.into());
                }
                (definition, Some(text), warnings)
            }
            _ => return Err(ApiError::InvalidWorkflow { details: errors }.into()),
        }
    };
    warnings.extend(workflow::condition_warnings(&definition));
    let db = call.env.d1(bindings::DB)?;
    let mut problems = execute_problems(&db, &definition).await?;
    let (files, _) = child_files(&db, &definition).await?;
    problems.extend(child_runs::problems(&definition, &files));
    if !problems.is_empty() {
        return Err(ApiError::InvalidWorkflow { details: problems }.into());
    }
    let mut named = definition.agents();
    let main_agent =
        workflow::main_agent_of(&definition, None, platform::text(call.env, bindings::MAIN_AGENT).as_deref());
    let main_needed = definition.steps.iter().any(workflow::StepDefinition::is_main_agents);
    if main_needed && !named.contains(&main_agent.name.as_str()) {
        named.push(&main_agent.name);
    }
    let existing = store::existing_agents(&db, &named).await?;
    let registered: Vec<&str> = existing.iter().map(String::as_str).collect();
    for agent in workflow::missing_agents(&definition, &registered) {
        warnings.push(Detail::field(
            "agent",
            format!("agent {agent} is not registered yet; tasks using this workflow are refused until it is"),
        ));
    }
    if main_needed && !registered.contains(&main_agent.name.as_str()) {
        warnings.push(Detail::field(
            "main_agent",
            format!(
                "the main agent {} ({}) does the steps that name no subagent and is not registered yet; tasks \
                 using this workflow are refused until it is, or until they name a main_agent that is",
                main_agent.name,
                main_agent.chosen_by.describe()
            ),
        ));
    }
    let definition_json = serde_json::to_value(&definition).map_err(|e| Failed::Fault(e.to_string()))?;
    let id = platform::new_id(IdKind::Workflow, call.now)?;
    let version =
        store::insert_workflow(&db, &id, &definition.name, &definition_json.to_string(), source.as_deref(), call.now)
            .await?;
    let mut body = workflow_json(&id, version, call.now.as_millis(), &definition_json);
    body["warnings"] = serde_json::to_value(&warnings).unwrap_or(json!([]));
    Ok(ApiResponse::json(201, &body))
}

/// The stored workflow a task request names (its version, or the latest) and every registered
/// agent, in one round trip; or the 422 saying there is no such workflow. A submission asks
/// for the files it will run as well (`with_files`): the latest versions of those this isolate
/// last saw the workflow `EXECUTE` ([`EXECUTED`]) are read in the same round trip, and when its
/// version executes the same ones, [`executed_files`] reads nothing.
pub async fn requested_workflow(
    db: &D1Database,
    request: &TaskRequest,
    workflow_ref: &WorkflowRef,
    with_files: bool,
) -> Result<(store::WorkflowRow, Vec<store::AgentRow>, Found), Failed> {
    let names = match with_files {
        true => EXECUTED.with(|executed| executed.borrow().get(&workflow_ref.name).cloned()).unwrap_or_default(),
        false => Vec::new(),
    };
    let (row, agents, posted) =
        store::workflow_and_agents(db, &workflow_ref.name, workflow_ref.version, &names).await?;
    let found = found_among(names, &posted);
    let Some(row) = row else {
        let named = request.workflow.as_deref().unwrap_or(&workflow_ref.name);
        return Err(
            ApiError::Invalid { details: vec![Detail::field("workflow", format!("no workflow {named}"))] }.into()
        );
    };
    Ok((row, agents, found))
}

/// Everything a submission reads before it plans: the workflow's version (parsed), every
/// registered agent, the rules files its flight checks attach and the posted files its
/// `EXECUTE`s reach.
#[derive(Clone)]
pub struct SubmissionRead {
    pub workflow: store::WorkflowRow,
    pub definition: Definition,
    pub agents: Vec<store::AgentRow>,
    pub rules: Vec<FlightRules>,
    pub files: Files,
}

/// A submission's read: one this isolate kept, or one just made.
pub enum ReadMade {
    /// Kept from an earlier submission of the workflow: the insert must carry [`SubmissionRead::guard`].
    Kept(SubmissionRead),
    /// Read now, in `trips` D1 round trips; `read_from` is what [`keep_submission_read`] needs.
    Fresh { read: SubmissionRead, trips: u64, read_from: u64 },
}

thread_local! {
    /// By workflow reference (`name`, or `name@version`): the last submission read of it that
    /// planned a task.
    static SUBMISSION_READS: RefCell<Memo<SubmissionRead>> =
        const { RefCell::new(Memo::new(SUBMISSION_READ_KEPT_MS, SUBMISSION_READS_KEPT_MAX)) };
}

fn submission_read_key(workflow_ref: &WorkflowRef) -> String {
    match workflow_ref.version {
        Some(version) => format!("{}@{version}", workflow_ref.name),
        None => workflow_ref.name.clone(),
    }
}

/// What a submission of `workflow_ref` plans on: the read this isolate kept of it, when
/// `may_keep` and it has one, else a fresh one. A workflow that is a rules file, or whose
/// flight checks execute a file no longer posted, is refused here (422).
pub async fn submission_read(
    db: &D1Database,
    request: &TaskRequest,
    workflow_ref: &WorkflowRef,
    may_keep: bool,
) -> Result<ReadMade, Failed> {
    let read_from = match recall(&SUBMISSION_READS, &submission_read_key(workflow_ref)) {
        Ok(read) if may_keep => return Ok(ReadMade::Kept(read)),
        Ok(_) => SUBMISSION_READS.with(|memo| memo.borrow().writes()),
        Err(read_from) => read_from,
    };
    let (workflow, agents, executed) = requested_workflow(db, request, workflow_ref, true).await?;
    let definition = stored_definition(&workflow)?;
    if definition.rules.is_some() {
        let message = format!(
            "{} is a rules file: it has no steps to run; workflows EXECUTE it from their flight checks",
            workflow_ref.name
        );
        return Err(ApiError::Invalid { details: vec![Detail::field("workflow", message)] }.into());
    }
    let (rules, files, reads) = executed_files(db, &definition, executed).await?;
    let read = SubmissionRead { workflow, definition, agents, rules, files };
    Ok(ReadMade::Fresh { read, trips: 1 + reads, read_from })
}

/// Keeps a fresh read whose task was inserted, for the next submissions of the workflow.
pub fn keep_submission_read(workflow_ref: &WorkflowRef, read: &SubmissionRead, read_from: u64) {
    remember(&SUBMISSION_READS, submission_read_key(workflow_ref), read, read_from);
}

/// Forgets the kept read of a workflow, once an insert planned on it lost its guard.
pub fn forget_submission_read(workflow_ref: &WorkflowRef) {
    SUBMISSION_READS.with(|memo| memo.borrow_mut().forget(&submission_read_key(workflow_ref)));
}

impl SubmissionRead {
    /// What the insert of a task planned on this read must find unchanged when the read was
    /// kept rather than made: the workflow's latest version (unless a version was asked for:
    /// versions never change), every file looked up by name at the version found (or still
    /// unposted), and every agent at its version, none added or removed.
    pub fn guard(&self, workflow_ref: &WorkflowRef) -> store::ReadGuard {
        let mut workflows: Vec<(String, Option<i64>)> = Vec::new();
        if workflow_ref.version.is_none() {
            workflows.push((workflow_ref.name.clone(), Some(self.workflow.version)));
        }
        workflows.extend(self.rules.iter().map(|rules| (rules.name.clone(), Some(rules.version))));
        let reached = std::iter::once(&self.definition).chain(self.files.values().map(|file| &file.definition));
        for name in child_runs::executed_names(reached) {
            let version = self.files.get(&name).map(|file| file.version);
            workflows.push((name, version));
        }
        let agents = self.agents.iter().map(|agent| (agent.name.clone(), agent.version)).collect();
        store::ReadGuard { workflows, agents }
    }
}

/// Posted files by name as one read found them, `None` for a name nothing is posted under. A
/// few names at most: a list, not a map.
pub type Found = Vec<(String, Option<store::WorkflowRow>)>;

/// `names` as `posted` (the latest versions read of some of them) has them.
fn found_among(names: Vec<String>, posted: &[(String, store::WorkflowRow)]) -> Found {
    names
        .into_iter()
        .map(|name| {
            let row = posted.iter().find(|(named, _)| *named == name).map(|(_, row)| row.clone());
            (name, row)
        })
        .collect()
}

thread_local! {
    /// By workflow name: the names of the posted files the version this isolate last submitted
    /// a task of `EXECUTE`s. Only a guess of what to read with the workflow: the files are read
    /// with each task, and any the version asked for executes besides are read after it.
    static EXECUTED: RefCell<BTreeMap<String, Vec<String>>> = const { RefCell::new(BTreeMap::new()) };
}

/// What `found` says of `name`: `None` when the read did not look for it.
fn found_under<'a>(found: &'a Found, name: &str) -> Option<&'a Option<store::WorkflowRow>> {
    found.iter().find(|(looked_for, _)| looked_for == name).map(|(_, row)| row)
}

/// The posted files a definition's step `EXECUTE`s reach, at their latest versions: loaded level
/// by level, one D1 round trip per level, down to the deepest level child runs may nest. Returns
/// them and the round trips made.
pub async fn child_files(db: &D1Database, definition: &Definition) -> Result<(Files, u64), Failed> {
    child_files_after(db, definition, &Found::new()).await
}

/// [`child_files`], taking what `found` already holds from it instead of reading it again.
async fn child_files_after(db: &D1Database, definition: &Definition, found: &Found) -> Result<(Files, u64), Failed> {
    let mut files = Files::new();
    let mut next = child_runs::executed_names(std::iter::once(definition));
    let mut trips = 0;
    for _ in 0..EXECUTE_DEPTH_MAX {
        next.retain(|name| !files.contains_key(name));
        if next.is_empty() {
            break;
        }
        let mut rows = Vec::new();
        let mut unknown = Vec::new();
        for name in next {
            match found_under(found, &name) {
                Some(Some(row)) => rows.push((name, row.clone())),
                Some(None) => {}
                None => unknown.push(name),
            }
        }
        if !unknown.is_empty() {
            rows.extend(store::latest_workflows(db, &unknown).await?);
            trips += 1;
        }
        let mut level = Vec::new();
        for (name, row) in rows {
            let definition = stored_definition(&row)?;
            files.insert(name.clone(), PostedFile { version: row.version, definition });
            level.push(name);
        }
        next = child_runs::executed_names(level.iter().filter_map(|name| files.get(name)).map(|f| &f.definition));
    }
    Ok((files, trips))
}

/// What a submission runs besides its workflow: the rules files its flight checks `EXECUTE` (one
/// that is no longer posted refuses the task) and the posted files its steps' `EXECUTE`s reach,
/// at their latest versions, with the round trips made. The rules files are read in one round
/// trip with the first level of child runs, unless `read` (what [`requested_workflow`] read
/// with the workflow) has them all already; each deeper level takes one more.
pub async fn executed_files(
    db: &D1Database,
    definition: &Definition,
    read: Found,
) -> Result<(Vec<FlightRules>, Files, u64), Failed> {
    let executes = definition.flight_executes();
    let mut names: Vec<String> = executes.iter().filter_map(|execute| execute.name.clone()).collect();
    names.extend(child_runs::executed_names(std::iter::once(definition)));
    names.sort();
    names.dedup();
    let mut trips = 0;
    let found = match names.iter().all(|name| found_under(&read, name).is_some()) {
        true => read,
        false => {
            trips += 1;
            found_among(names.clone(), &store::latest_workflows(db, &names).await?)
        }
    };
    if EXECUTED.with(|executed| executed.borrow().len()) >= EXECUTED_WORKFLOWS_MAX {
        EXECUTED.with(|executed| executed.borrow_mut().clear());
    }
    EXECUTED.with(|executed| executed.borrow_mut().insert(definition.name.clone(), names));
    let mut rules = Vec::new();
    for execute in executes {
        let row = execute.name.as_ref().and_then(|name| found_under(&found, name)?.as_ref());
        match row.map(|row| (row, stored_definition(row))) {
            Some((row, Ok(Definition { rules: Some(text), .. }))) => rules.push(FlightRules {
                check: execute.check,
                name: execute.name.clone().unwrap_or_default(),
                version: row.version,
                text,
            }),
            Some((_, Err(fault))) => return Err(fault),
            _ => {
                let message = format!(
                    "the workflow's {} EXECUTEs @{}, which addresses no posted rules file",
                    execute.check.replace('_', "-"),
                    execute.path
                );
                return Err(ApiError::Invalid { details: vec![Detail::field("workflow", message)] }.into());
            }
        }
    }
    let (files, deeper) = child_files_after(db, definition, &found).await?;
    Ok((rules, files, trips + deeper))
}

/// What a flight check's `EXECUTE` finds posted under the name it addresses.
enum Executed {
    /// The path names no file switchyard can address.
    Unnamed,
    NotPosted(String),
    /// A workflow with steps, which a flight check cannot run.
    NotRules(String),
    Rules,
}

/// Looks up, at its latest version, the file one `EXECUTE` of a flight check addresses.
async fn executed(db: &D1Database, execute: &FlightExecute) -> Result<Executed, Failed> {
    let Some(name) = execute.name.clone() else { return Ok(Executed::Unnamed) };
    let Some(row) = store::latest_workflow(db, &name).await? else { return Ok(Executed::NotPosted(name)) };
    Ok(match stored_definition(&row)?.rules {
        Some(_) => Executed::Rules,
        None => Executed::NotRules(name),
    })
}

/// What is wrong with the files a definition's flight checks `EXECUTE`: each must address a
/// rules file that is posted.
async fn execute_problems(db: &D1Database, definition: &Definition) -> Result<Vec<Detail>, Failed> {
    let mut problems = Vec::new();
    for execute in definition.flight_executes() {
        let path = &execute.path;
        let message = match executed(db, &execute).await? {
            Executed::Rules => continue,
            Executed::Unnamed => format!("EXECUTE: @{path} does not address a file by a name switchyard can use"),
            Executed::NotPosted(name) => {
                format!("EXECUTE: @{path} addresses {name}, which is not posted; {}", workflow::post_first(&name))
            }
            Executed::NotRules(name) => {
                format!("EXECUTE: @{path} addresses {name}, a workflow with steps; a flight check runs rules files")
            }
        };
        problems.push(execute.problem(message));
    }
    Ok(problems)
}

/// A stored workflow's definition. Definitions are written by us; one that does not read back
/// is a fault.
pub fn stored_definition(row: &store::WorkflowRow) -> Result<Definition, Failed> {
    serde_json::from_str(&row.definition)
        .map_err(|err| Failed::Fault(format!("stored workflow {} is not readable: {err}", row.id)))
}

fn workflow_name_param(call: &Call<'_>) -> Result<String, ApiError> {
    let name = call.matched.param("name");
    if workflow::is_workflow_name(name) {
        Ok(name.to_string())
    } else {
        Err(ApiError::NotFound { message: "no workflow with this name".into() })
    }
}

/// `GET /v1/workflows`: the latest version of each workflow, summarised.
pub async fn list_workflows(call: &Call<'_>) -> Handled {
    let page = Page::parse(&call.query)?;
    let db = call.env.d1(bindings::DB)?;
    let rows = store::list_workflows(&db, page.cursor.as_deref(), page.limit).await?;
    let next_cursor = page.next_cursor(rows.len(), rows.last().map(|r| r.name.clone()));
    let workflows: Vec<Value> = rows
        .iter()
        .map(|r| {
            json!({
                "id": r.id, "name": r.name, "version": r.version, "title": r.title,
                "description": r.description, "steps": r.steps, "created_at": millis(r.created_at),
            })
        })
        .collect();
    Ok(ApiResponse::json(200, &json!({"workflows": workflows, "next_cursor": next_cursor})))
}

/// `GET /v1/workflows/{name}`: the latest version.
pub async fn get_workflow(call: &Call<'_>) -> Handled {
    let name = workflow_name_param(call)?;
    let db = call.env.d1(bindings::DB)?;
    let row = store::latest_workflow(&db, &name)
        .await?
        .ok_or_else(|| ApiError::NotFound { message: format!("no workflow named {name}") })?;
    Ok(ApiResponse::json(200, &stored_workflow(&row)?))
}

/// `GET /v1/workflows/{name}/versions/{version}`.
pub async fn get_workflow_version(call: &Call<'_>) -> Handled {
    let name = workflow_name_param(call)?;
    let version = call.matched.param("version");
    let missing = || ApiError::NotFound { message: format!("workflow {name} has no version {version}") };
    let number = version.parse::<i64>().ok().filter(|n| *n >= 1 && version.bytes().all(|b| b.is_ascii_digit()));
    let number = number.ok_or_else(missing)?;
    let db = call.env.d1(bindings::DB)?;
    let row = store::workflow_version(&db, &name, number).await?.ok_or_else(missing)?;
    Ok(ApiResponse::json(200, &stored_workflow(&row)?))
}

/// `POST /v1/analyze`: the task type, agents and evidence for a task, routed by the task's
/// workflow (the default one unless it names another), without creating the task.
pub async fn analyze(call: &Call<'_>, body: &[u8]) -> Handled {
    let request: TaskRequest = parse_json_body(call.content_type.as_deref(), body)?;
    let workflow_ref = request.validate()?;
    let db = call.env.d1(bindings::DB)?;
    let (row, agents, _) = requested_workflow(&db, &request, &workflow_ref, false).await?;
    let definition = stored_definition(&row)?;
    let capabilities = capabilities_of(&agents);
    let profiles = profiles(&agents, &capabilities);
    Ok(ApiResponse::json(200, &analysis::analyze(&request.task_input(), &definition.routing_input(&profiles))))
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct SelectRequest {
    requirements: Vec<String>,
}

/// `POST /v1/agents/select`: the best registered agent for a list of requirements.
pub async fn select_agent(call: &Call<'_>, body: &[u8]) -> Handled {
    let request: SelectRequest = parse_json_body(call.content_type.as_deref(), body)?;
    let mut details = Vec::new();
    if request.requirements.iter().all(|r| r.trim().is_empty()) {
        details.push(Detail::field("requirements", "list at least one requirement"));
    }
    check_list(
        "requirements",
        &request.requirements,
        SELECT_REQUIREMENTS_MAX,
        TASK_REQUIREMENT_BYTES_MAX,
        &mut details,
    );
    if !details.is_empty() {
        return Err(ApiError::Invalid { details }.into());
    }
    let db = call.env.d1(bindings::DB)?;
    let rows = store::all_agents(&db).await?;
    let capabilities = capabilities_of(&rows);
    Ok(ApiResponse::json(200, &analysis::select(&request.requirements, &profiles(&rows, &capabilities))))
}

/// Each agent's capabilities, parsed from their stored JSON (written by us; unreadable is none).
pub fn capabilities_of(rows: &[store::AgentRow]) -> Vec<Vec<String>> {
    rows.iter().map(|r| serde_json::from_str(&r.capabilities).unwrap_or_default()).collect()
}

/// The agents as selection and planning read them.
pub fn profiles<'a>(rows: &'a [store::AgentRow], capabilities: &'a [Vec<String>]) -> Vec<AgentProfile<'a>> {
    rows.iter()
        .zip(capabilities)
        .map(|(row, capabilities)| AgentProfile { name: &row.name, description: &row.description, capabilities })
        .collect()
}
