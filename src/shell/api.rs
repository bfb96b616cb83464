//! The HTTP shell: turns a `worker::Request` into a core route, runs its handler against the
//! bindings, and turns the result into a `worker::Response` with the security and CORS headers.
//!
//! Handlers parse with the core, touch bindings, and return an [`ApiResponse`]. Client mistakes
//! are `ApiError`s; binding faults become a 500 whose detail goes to the log only.

use std::future::Future;
use std::pin::Pin;

use futures_util::StreamExt;
use serde::Deserialize;
use serde_json::{json, Value};
use worker::{Env, Request, Response};

use super::call::{event_json, Call, Failed, Handled};
use super::sessions::{resolve_token, Credential};
use super::{messages, platform, records, registry, sessions, store, tasks};
use crate::core::base::bindings;
use crate::core::base::ids::IdKind;
use crate::core::base::limits::{
    COMPLETE_BODY_BYTES_MAX, HEARTBEAT_BODY_BYTES_MAX, INSTRUCTION_FILE_BYTES_MAX, JSON_BODY_BYTES_MAX,
    RATE_LIMIT_RETRY_AFTER_SECONDS,
};
use crate::core::base::time::Timestamp;
use crate::core::edge::auth::{self, Principal};
use crate::core::edge::cors::CorsPolicy;
use crate::core::edge::error::ApiError;
use crate::core::edge::health::{self, Check, Failure};
use crate::core::edge::http::{parse_json_body, query_of};
use crate::core::edge::openapi;
use crate::core::edge::paging::Page;
use crate::core::edge::rate_limit;
use crate::core::edge::response::{ApiResponse, Method};
use crate::core::edge::routes::{self, Access, Resolution, RouteId};
use crate::core::engine::queue::{ProbeOutcome, QueueMessage};
use crate::core::registry::agents::SUBAGENT_FILE_BYTES_MAX;

const VERSION: &str = env!("CARGO_PKG_VERSION");

pub async fn handle(mut req: Request, env: &Env) -> worker::Result<Response> {
    let now = platform::now();
    let request_id = platform::new_id(IdKind::Request, now).unwrap_or_else(|_| "req_unavailable".into());
    let raw_method = req.inner().method();
    let method = Method::parse(&raw_method);
    let origin = header(&req, "origin");
    let cors = platform::cors_policy(env);

    let outcome = route_and_run(&mut req, env, &cors, now, method).await;
    let response = match outcome {
        Ok(response) => response,
        Err(Failed::Client(err)) => err.to_response(),
        Err(Failed::Fault(detail)) => {
            worker::console_error!("request {request_id} {raw_method} {} failed: {detail}", req.path());
            ApiError::Internal { request_id: request_id.clone() }.to_response()
        }
    };
    let mut response = cors.decorate(origin.as_deref(), response).with_security_headers();
    response.set_header("x-request-id", &request_id);
    if method == Some(Method::Head) {
        response.body.clear();
    }
    to_worker_response(response)
}

async fn route_and_run(
    req: &mut Request,
    env: &Env,
    cors: &CorsPolicy,
    now: Timestamp,
    method: Option<Method>,
) -> Handled {
    let authorization = header(req, "authorization");
    check_rate(env, req, authorization.as_deref()).await?;
    let path = req.path();
    let matched = match routes::resolve(method, &path, platform::test_faults_enabled(env))? {
        Resolution::Route(matched) => matched,
        Resolution::Options { allow } => {
            let requested = header(req, "access-control-request-method");
            return Ok(cors.answer_options(header(req, "origin").as_deref(), requested.as_deref(), &allow)?);
        }
    };
    let credential = match matched.route.access {
        Access::Public => None,
        access => Some(authenticate(env, authorization.as_deref(), access, now).await?),
    };
    // Every route behind credentials may need a default agent or the default workflow (a
    // runner's first lease on a fresh installation, say), so none answers before they exist.
    // Once per isolate; the public routes (health, the API description) never need them.
    if credential.is_some() {
        registry::ensure_defaults(env, now).await?;
    }
    let (principal, session_id) = match credential {
        Some(Credential { principal, session_id }) => (Some(principal), session_id),
        None => (None, None),
    };
    let call = Call {
        env,
        now,
        query: query_of(&req.inner().url()).to_string(),
        content_type: header(req, "content-type"),
        accept: header(req, "accept"),
        matched,
        principal,
        session_id,
        idempotency_key: header(req, "idempotency-key"),
    };
    let id = call.matched.route.id;
    let body = match body_limit(id) {
        Some(limit) => read_body(req, limit).await?,
        None => Vec::new(),
    };
    // Each handler's future is boxed: inlined into one state machine, their code made this
    // function the largest in the module.
    let handler: Pin<Box<dyn Future<Output = Handled> + '_>> = match id {
        RouteId::Health => Box::pin(async { Ok(health(env).await) }),
        RouteId::OpenApi => {
            return Ok(ApiResponse::raw(200, "application/json; charset=utf-8", openapi::DOCUMENT));
        }
        RouteId::Whoami => {
            let body = match &call.principal {
                Some(Principal::Agent(name)) => json!({"principal": "agent", "agent": name}),
                _ => json!({"principal": "admin"}),
            };
            return Ok(ApiResponse::json(200, &body));
        }
        RouteId::Counters => return Ok(tasks::counters()),
        RouteId::ListSystemEvents => Box::pin(list_system_events(&call)),
        RouteId::CreateProbe => Box::pin(create_probe(&call, &body)),
        RouteId::ListAgents => Box::pin(registry::list_agents(&call)),
        RouteId::CreateAgent => Box::pin(registry::create_agent(&call, &body)),
        RouteId::ImportAgent => Box::pin(registry::import_agent(&call, &body)),
        RouteId::SelectAgent => Box::pin(registry::select_agent(&call, &body)),
        RouteId::GetAgent => Box::pin(registry::get_agent(&call)),
        RouteId::UpdateAgent => Box::pin(registry::update_agent(&call, &body)),
        RouteId::DeleteAgent => Box::pin(registry::delete_agent(&call)),
        RouteId::RotateAgentToken => Box::pin(registry::rotate_token(&call, &body)),
        RouteId::RotateWebhookSecret => Box::pin(registry::rotate_webhook_secret(&call, &body)),
        RouteId::ListWorkflows => Box::pin(registry::list_workflows(&call)),
        RouteId::CreateWorkflow => Box::pin(registry::create_workflow(&call, &body)),
        RouteId::GetWorkflow => Box::pin(registry::get_workflow(&call)),
        RouteId::GetWorkflowVersion => Box::pin(registry::get_workflow_version(&call)),
        RouteId::Analyze => Box::pin(registry::analyze(&call, &body)),
        RouteId::SubmitTask => Box::pin(tasks::submit(&call, &body)),
        RouteId::ListTasks => Box::pin(tasks::list(&call)),
        RouteId::GetTask => Box::pin(tasks::get(&call)),
        RouteId::ListTaskEvents => Box::pin(tasks::events(&call)),
        RouteId::ListTaskLogs => Box::pin(records::logs(&call)),
        RouteId::GetTaskLog => Box::pin(records::agent_log(&call)),
        RouteId::GetTaskSummary => Box::pin(records::summary(&call)),
        RouteId::SendMessage => Box::pin(messages::send(&call, &body)),
        RouteId::CreateSession => Box::pin(sessions::create(&call, &body)),
        RouteId::DeleteSession => Box::pin(sessions::delete_current(&call)),
        RouteId::ListMessages => Box::pin(messages::conversation(&call)),
        RouteId::Inbox => Box::pin(messages::inbox(&call)),
        RouteId::GetTaskMetrics => Box::pin(records::task_metrics(&call)),
        RouteId::AgentMetrics => Box::pin(records::agent_metrics(&call)),
        RouteId::CancelTask => Box::pin(tasks::cancel(&call, &body)),
        RouteId::LeaseStep => Box::pin(tasks::lease(&call, &body)),
        RouteId::HeartbeatStep => Box::pin(tasks::heartbeat(&call, &body)),
        RouteId::CompleteStep => Box::pin(tasks::complete(&call, &body)),
        RouteId::RetryStep => Box::pin(tasks::retry(&call, &body)),
        RouteId::GetStepPart => Box::pin(tasks::step_part(&call)),
        RouteId::GetStepLog => Box::pin(records::step_log(&call)),
        RouteId::TestStepMessage => Box::pin(tasks::test_step_message(&call, &body)),
        RouteId::TestRowCounts => Box::pin(async {
            let counts = store::row_counts(&call.env.d1(bindings::DB)?).await?;
            Ok(ApiResponse::json(200, &counts))
        }),
        RouteId::TestRowDigests => Box::pin(async {
            let digests = store::row_digests(&call.env.d1(bindings::DB)?).await?;
            Ok(ApiResponse::json(200, &digests))
        }),
        RouteId::TestArmFault => Box::pin(tasks::test_arm_fault(&call, &body)),
        RouteId::TestFaults => Box::pin(async { Ok(ApiResponse::json(200, &super::faults::status())) }),
        RouteId::TestStatements => Box::pin(async {
            let plans = store::statement_plans(&call.env.d1(bindings::DB)?).await?;
            Ok(ApiResponse::json(200, &serde_json::json!({ "statements": plans })))
        }),
        RouteId::TestPanic => panic!("deliberate panic from the test-only fault route"),
    };
    handler.await
}

/// How much body a route reads; `None` for routes that read none.
fn body_limit(id: RouteId) -> Option<usize> {
    match id {
        RouteId::ImportAgent => Some(SUBAGENT_FILE_BYTES_MAX),
        RouteId::CreateWorkflow => Some(INSTRUCTION_FILE_BYTES_MAX),
        RouteId::CompleteStep => Some(COMPLETE_BODY_BYTES_MAX),
        RouteId::HeartbeatStep => Some(HEARTBEAT_BODY_BYTES_MAX),
        RouteId::CreateProbe
        | RouteId::CreateAgent
        | RouteId::SelectAgent
        | RouteId::UpdateAgent
        | RouteId::RotateAgentToken
        | RouteId::RotateWebhookSecret
        | RouteId::Analyze
        | RouteId::SubmitTask
        | RouteId::CancelTask
        | RouteId::LeaseStep
        | RouteId::RetryStep
        | RouteId::SendMessage
        | RouteId::CreateSession
        | RouteId::TestStepMessage
        | RouteId::TestArmFault => Some(JSON_BODY_BYTES_MAX),
        RouteId::Health
        | RouteId::OpenApi
        | RouteId::Whoami
        | RouteId::Counters
        | RouteId::ListSystemEvents
        | RouteId::ListAgents
        | RouteId::GetAgent
        | RouteId::DeleteAgent
        | RouteId::ListWorkflows
        | RouteId::GetWorkflow
        | RouteId::GetWorkflowVersion
        | RouteId::ListTasks
        | RouteId::GetTask
        | RouteId::ListTaskEvents
        | RouteId::ListTaskLogs
        | RouteId::GetTaskLog
        | RouteId::GetStepPart
        | RouteId::GetStepLog
        | RouteId::GetTaskSummary
        | RouteId::ListMessages
        | RouteId::DeleteSession
        | RouteId::Inbox
        | RouteId::GetTaskMetrics
        | RouteId::AgentMetrics
        | RouteId::TestRowCounts
        | RouteId::TestRowDigests
        | RouteId::TestFaults
        | RouteId::TestStatements
        | RouteId::TestPanic => None,
    }
}

/// Charges the request to its rate limits before anything is looked up in KV or D1, so that
/// a flood of guessed tokens costs no reads once it is over a limit. A request with a bearer
/// token is charged to that token, and also to its client address unless the token is known
/// without a lookup (an admin token, or an agent token this isolate found valid moments ago):
/// a known caller is bounded by its token's own limit, and a runner's steady requests then
/// cost one binding call instead of two. A deployment without the bindings is not limited; a
/// warning says so once, as does a binding that fails (the request is then let through).
async fn check_rate(env: &Env, req: &Request, authorization: Option<&str>) -> Result<(), Failed> {
    static WARNED: std::sync::Once = std::sync::Once::new();
    let token = auth::bearer_token(authorization).ok();
    let mut charges = Vec::with_capacity(2);
    if !token.is_some_and(|token| sessions::known_without_lookup(env, token)) {
        charges
            .push((bindings::RATE_LIMIT_ADDRESS, rate_limit::address_key(header(req, "cf-connecting-ip").as_deref())));
    }
    if let Some(token) = token {
        charges.push((bindings::RATE_LIMIT_CREDENTIAL, rate_limit::credential_key(token)));
    }
    for (binding, key) in charges {
        let outcome = match env.rate_limiter(binding) {
            Ok(limiter) => limiter.limit(key).await,
            Err(err) => Err(err),
        };
        match outcome {
            Ok(outcome) if !outcome.success => {
                return Err(ApiError::TooManyRequests {
                    message: "too many requests from this address or with this token".into(),
                    retry_after_seconds: RATE_LIMIT_RETRY_AFTER_SECONDS,
                }
                .into());
            }
            Ok(_) => {}
            Err(err) => WARNED.call_once(|| worker::console_warn!("rate limiting is off: {binding}: {err}")),
        }
    }
    Ok(())
}

/// The caller of a route that needs credentials. An agent (by token or session) on an admin
/// route is 403: the caller is known, the route is not theirs.
async fn authenticate(
    env: &Env,
    authorization: Option<&str>,
    access: Access,
    now: Timestamp,
) -> Result<Credential, Failed> {
    let token = auth::bearer_token(authorization)?;
    let Some(credential) = resolve_token(env, token, now).await? else {
        return Err(ApiError::Unauthorized { message: auth::UNKNOWN_TOKEN.into() }.into());
    };
    if access == Access::Admin && credential.principal != Principal::Admin {
        return Err(ApiError::Forbidden { message: "this route needs an admin token".into() }.into());
    }
    Ok(credential)
}

fn header(req: &Request, name: &str) -> Option<String> {
    req.headers().get(name).ok().flatten()
}

/// Reads the body, refusing it with 413 as soon as it is known to exceed `limit_bytes`: from
/// `Content-Length` before reading anything, or while streaming a body sent without one.
async fn read_body(req: &mut Request, limit_bytes: usize) -> Result<Vec<u8>, Failed> {
    let too_large = ApiError::PayloadTooLarge { limit_bytes };
    let declared = match header(req, "content-length") {
        Some(length) => match length.trim().parse::<u64>() {
            Ok(length) if length > limit_bytes as u64 => return Err(too_large.into()),
            Ok(length) => Some(length),
            Err(_) => {
                return Err(
                    ApiError::BadRequest { message: "content-length is not a number".into(), details: vec![] }.into()
                )
            }
        },
        None => None,
    };
    if req.inner().body().is_none() {
        return Ok(Vec::new());
    }
    // With a length within the limit the body cannot exceed it (the runtime holds a request to
    // its Content-Length), so it is read whole: one call instead of a stream's several per chunk.
    if declared.is_some() {
        let body = req.bytes().await?;
        return if body.len() > limit_bytes { Err(too_large.into()) } else { Ok(body) };
    }
    let mut stream = req.stream()?;
    let mut body = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk?;
        if body.len() + chunk.len() > limit_bytes {
            return Err(too_large.into());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

fn to_worker_response(response: ApiResponse) -> worker::Result<Response> {
    let headers = worker::Headers::new();
    for (name, value) in &response.headers {
        headers.set(name, value)?;
    }
    let body = if response.body.is_empty() { None } else { Some(response.body) };
    let built = match body {
        Some(bytes) => Response::from_bytes(bytes)?,
        None => Response::empty()?,
    };
    Ok(built.with_status(response.status).with_headers(headers))
}

/// `GET /health`: touches every binding for real, at the same time.
async fn health(env: &Env) -> ApiResponse {
    let (d1, kv, r2, queue) = futures_util::join!(check_d1(env), check_kv(env), check_r2(env), check_queue(env));
    health::report(VERSION, &[(Check::D1, d1), (Check::Kv, kv), (Check::R2, r2), (Check::Queue, queue)])
}

fn failed(check: Check, err: impl std::fmt::Display) -> Failure {
    worker::console_error!("health: {} ({}) failed: {err}", check.name(), check.binding());
    Failure::Failed
}

async fn check_d1(env: &Env) -> Result<(), Failure> {
    let db = env.d1(bindings::DB).map_err(|_| Failure::Missing)?;
    match store::check_schema(&db).await {
        Ok(()) => Ok(()),
        Err(err) if err.to_string().contains("no such table") => Err(Failure::NotMigrated),
        Err(err) => Err(failed(Check::D1, err)),
    }
}

async fn check_kv(env: &Env) -> Result<(), Failure> {
    let kv = env.kv(bindings::CACHE).map_err(|_| Failure::Missing)?;
    kv.get("health:probe").text().await.map(|_| ()).map_err(|err| failed(Check::Kv, err))
}

async fn check_r2(env: &Env) -> Result<(), Failure> {
    let bucket = env.bucket(bindings::ARTIFACTS).map_err(|_| Failure::Missing)?;
    bucket.head("health/probe").await.map(|_| ()).map_err(|err| failed(Check::R2, err))
}

async fn check_queue(env: &Env) -> Result<(), Failure> {
    let queue = env.queue(bindings::STEPS).map_err(|_| Failure::Missing)?;
    queue.send(QueueMessage::Ping {}.to_json()).await.map_err(|err| failed(Check::Queue, err))
}

/// `GET /v1/system/events`.
async fn list_system_events(call: &Call<'_>) -> Handled {
    let page = Page::parse_history(&call.query)?;
    let db = call.env.d1(bindings::DB)?;
    let rows = store::list_system_events(&db, page.after_seq()?, page.limit).await?;
    let next_cursor = page.next_cursor(rows.len(), rows.last().map(|r| r.seq.to_string()));
    let events: Vec<Value> =
        rows.into_iter().map(|row| event_json(row.seq, row.kind, row.data, row.created_at)).collect();
    Ok(ApiResponse::json(200, &json!({"events": events, "next_cursor": next_cursor})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProbeRequest {
    #[serde(default = "default_outcome")]
    outcome: ProbeOutcome,
}

fn default_outcome() -> ProbeOutcome {
    ProbeOutcome::Ack
}

/// `POST /v1/system/probes`.
async fn create_probe(call: &Call<'_>, body: &[u8]) -> Handled {
    let request: ProbeRequest = parse_json_body(call.content_type.as_deref(), body)?;
    let probe_id = platform::new_id(IdKind::Probe, call.now)?;
    let message = QueueMessage::Probe { probe_id: probe_id.clone(), outcome: request.outcome };
    call.env.queue(bindings::STEPS)?.send(message.to_json()).await?;
    Ok(ApiResponse::json(202, &json!({"probe_id": probe_id, "outcome": request.outcome})))
}
