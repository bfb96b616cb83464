//! What a task leaves behind, written and served: the summaries its built-in steps write to R2,
//! each agent's log, and the per-agent metrics (one task's, and aggregates across tasks).
//!
//! Summaries and metrics are built by `core::summary` and `core::metrics` from the steps' rows
//! and reports; this module only reads those, stores the renderings and serves them. It never
//! changes a step: a built-in step's result is committed by the engine like any completion.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::{json, Map, Value};
use worker::{D1Database, Env, HttpMetadata};

use super::access::readable_task;
use super::call::{Call, Handled};
use super::{artifacts, platform, store};
use crate::core::base::bindings;
use crate::core::base::encoding::query_value;
use crate::core::base::limits::LOG_POLL_INTERVAL_MS;
use crate::core::base::time::Timestamp;
use crate::core::edge::auth::Principal;
use crate::core::edge::error::ApiError;
use crate::core::edge::http::negotiate;
use crate::core::edge::response::ApiResponse;
use crate::core::engine as core_engine;
use crate::core::records::metrics::{self, AgentAggregate, StepFigures};
use crate::core::records::summary::{self, Kind, StepFacts, TaskFacts, Template};
use crate::core::records::{agent_log, live};
use crate::core::registry::workflow::Definition;

/// The template a post-flight step fills when its workflow has none: the seed's.
const DEFAULT_POST_FLIGHT_TEMPLATE: &str = "## Task Completion Summary

Agents Used:
- {list of agents involved}

Work Completed:
- {summary of changes}

Files Modified:
- {list of files}

Tests Passed:
- Unit: {count}
- Integration: {count}
- E2E: {count}

Performance Metrics:
- PageSpeed Score: {score}
- Bundle Size: {size}
- Cold Start: {time}

Next Steps:
- {recommended follow-up tasks}
";

/// Summaries this isolate has written and the milliseconds they took (reading the task and its
/// reports, rendering, writing R2), for the benchmark.
static SUMMARIES_WRITTEN: AtomicU64 = AtomicU64::new(0);
static SUMMARY_WRITE_MS: AtomicU64 = AtomicU64::new(0);

pub fn summary_counts() -> (u64, u64) {
    (SUMMARIES_WRITTEN.load(Ordering::Relaxed), SUMMARY_WRITE_MS.load(Ordering::Relaxed))
}

fn fault(message: String) -> worker::Error {
    worker::Error::RustError(message)
}

/// The change figures of a step row, for the metrics.
fn figures_of(row: &store::RecordRow) -> Option<StepFigures> {
    let count = |n: i64| u64::try_from(n).unwrap_or(0);
    Some(StepFigures {
        agent: row.agent.clone()?,
        status: row.status.clone(),
        started_at: row.started_at.map(Timestamp::saturating_from_millis),
        finished_at: row.finished_at.map(Timestamp::saturating_from_millis),
        attempts: u32::try_from(row.attempt).unwrap_or(0),
        files_created: count(row.files_created),
        files_modified: count(row.files_modified),
        lines_added: count(row.lines_added),
        lines_removed: count(row.lines_removed),
        usage: row.usage(),
    })
}

/// Runs a built-in step: builds its summary from every step's report, writes it (markdown and
/// JSON) and the task's metrics (YAML) to R2, and returns the step's report and the row that
/// records where the summary is. The engine commits both with the step's success. `read`: what
/// the step summarises, when the batch that queued it read it already.
pub async fn run_builtin(
    env: &Env,
    db: &D1Database,
    task_id: &str,
    step: &core_engine::Step,
    read: Option<store::SummaryInputs>,
) -> worker::Result<(Value, store::SummaryRow)> {
    let now = platform::now();
    let read = match read {
        Some(read) => Some(read),
        None => store::summary_inputs(db, task_id).await?,
    };
    let (task, rows) = read.ok_or_else(|| fault(format!("task {task_id} is gone")))?;
    let definition: Definition = serde_json::from_str(&task.definition)
        .map_err(|err| fault(format!("the workflow of task {task_id} is not readable: {err}")))?;
    let mut reports: Vec<Option<Map<String, Value>>> = Vec::with_capacity(rows.len());
    for row in &rows {
        let report = if row.status == "succeeded" && row.agent.is_some() {
            match artifacts::load_report(env, row.report.as_deref(), row.report_key.as_deref()).await? {
                Value::Object(map) => Some(map),
                _ => None,
            }
        } else {
            None
        };
        reports.push(report);
    }
    let kind = Kind::of_step(&step.name);
    let post_flight = definition.post_flight.as_ref().and_then(|p| p.summary_template());
    let blocks = definition.steps.iter().find(|s| s.key == step.key).map(|s| s.blocks.as_slice()).unwrap_or(&[]);
    let template = Template::from_blocks(blocks, post_flight);
    let child_runs: Vec<Option<String>> = rows
        .iter()
        .map(|row| {
            let run: core_engine::ChildRun = serde_json::from_str(row.child_run.as_deref()?).ok()?;
            Some(format!("{} v{}", run.workflow, run.version))
        })
        .collect();
    let facts: Vec<StepFacts> = rows
        .iter()
        .zip(&reports)
        .zip(&child_runs)
        .map(|((row, report), child_run)| StepFacts {
            key: &row.key,
            name: &row.name,
            agent: row.agent.as_deref(),
            status: &row.status,
            skip_reason: row.skip_reason.as_deref(),
            error: row.error.as_deref(),
            report: report.as_ref(),
            child_run: child_run.as_deref(),
        })
        .collect();
    let input: Value = serde_json::from_str(&task.input).unwrap_or(Value::Null);
    let requirements = input["requirements"].as_array().into_iter().flatten().filter_map(Value::as_str);
    let task_facts = TaskFacts {
        id: task_id,
        title: &task.title,
        description: &task.description,
        status: &task.status,
        task_type: task.task_type.as_deref().unwrap_or("general"),
        requirements: requirements.map(String::from).collect(),
    };
    let figures: Vec<StepFigures> = rows.iter().filter_map(figures_of).collect();
    let metrics = metrics::per_agent(&figures);
    let written_at = now.to_rfc3339();
    let built = summary::build(kind, &task_facts, &facts, metrics.clone(), &template, &written_at);
    let markdown = match kind {
        Kind::TaskSummary => built.task_summary_markdown(),
        Kind::PostFlight => built.post_flight_markdown(post_flight.unwrap_or(DEFAULT_POST_FLIGHT_TEMPLATE)),
    };
    let stamp = written_at.replace(['-', ':', '.'], "");
    let stem = format!("tasks/{task_id}/{}-{stamp}", kind.file_stem());
    let row = store::SummaryRow {
        task_id: task_id.to_string(),
        step_id: step.id.clone(),
        kind: serde_json::to_value(kind).ok().and_then(|k| k.as_str().map(String::from)).unwrap_or_default(),
        written_at: now.as_millis(),
        markdown_key: format!("{stem}.md"),
        json_key: format!("{stem}.json"),
        metrics_key: format!("tasks/{task_id}/agent-performance-{stamp}.yml"),
    };
    let mut structured = serde_json::to_value(&built).map_err(|e| fault(e.to_string()))?;
    structured["markdown"] = Value::from(markdown.clone());
    super::faults::check(super::faults::Point::R2Write)?;
    let bucket = env.bucket(bindings::ARTIFACTS)?;
    // The three objects are independent: written at once, the step waits for one round trip
    // to R2 instead of three. Each key is new, so a partial write leaves only unreferenced objects.
    let puts = [
        (&row.markdown_key, markdown, "text/markdown; charset=utf-8"),
        (&row.json_key, structured.to_string(), "application/json; charset=utf-8"),
        (&row.metrics_key, metrics::to_yaml(task_id, &metrics), "application/yaml; charset=utf-8"),
    ]
    .map(|(key, body, content_type)| {
        bucket
            .put(key, body)
            .http_metadata(HttpMetadata { content_type: Some(content_type.into()), ..HttpMetadata::default() })
            .execute()
    });
    futures_util::future::try_join_all(puts).await?;
    let feedback: Map<String, Value> = built
        .work
        .iter()
        .filter(|w| !w.feedback.is_empty())
        .map(|w| {
            let answers: Map<String, Value> = w.feedback.iter().map(|f| (f.category.clone(), json!(f.items))).collect();
            (w.agent.clone(), Value::Object(answers))
        })
        .collect();
    let report = json!({
        "builtin": step.name,
        "summary": {
            "kind": row.kind,
            "written_at": written_at,
            "markdown_key": row.markdown_key,
            "json_key": row.json_key,
            "metrics_key": row.metrics_key,
        },
        "agents": built.agents,
        "feedback": feedback,
    });
    SUMMARIES_WRITTEN.fetch_add(1, Ordering::Relaxed);
    let took = platform::now().as_millis() - now.as_millis();
    SUMMARY_WRITE_MS.fetch_add(u64::try_from(took).unwrap_or(0), Ordering::Relaxed);
    Ok((report, row))
}

fn no_task(task_id: &str) -> ApiError {
    ApiError::NotFound { message: format!("no task {task_id}") }
}

/// Attempt logs read from R2 at once while an agent's log is assembled: enough to overlap R2's
/// latency, few enough that one log read does not flood the bucket.
const ATTEMPT_LOG_READS_AT_ONCE: usize = 8;

/// The task's completed attempts by agent, agents in name order; 404 for a task that does not
/// exist.
async fn completed_by_agent(
    call: &Call<'_>,
    task_id: &str,
) -> Result<BTreeMap<String, Vec<store::CompletedAttemptRow>>, super::call::Failed> {
    let db = call.env.d1(bindings::DB)?;
    let Some(attempts) = store::completed_attempts(&db, task_id).await? else {
        return Err(no_task(task_id).into());
    };
    let mut by_agent: BTreeMap<String, Vec<store::CompletedAttemptRow>> = BTreeMap::new();
    for attempt in attempts {
        by_agent.entry(attempt.agent.clone()).or_default().push(attempt);
    }
    Ok(by_agent)
}

/// An agent's log of the task: one entry per attempt it completed, in the order they ended,
/// each with the attempt's own log from R2 and the `RECORD:` items of its report.
async fn assemble_log(env: &Env, attempts: &[store::CompletedAttemptRow]) -> worker::Result<String> {
    let mut log = agent_log::Log::default();
    for chunk in attempts.chunks(ATTEMPT_LOG_READS_AT_ONCE) {
        if log.is_full() {
            break;
        }
        let read = futures_util::future::try_join_all(chunk.iter().map(|row| attempt_texts(env, row))).await?;
        for (row, (text, report)) in chunk.iter().zip(read) {
            log.push(&agent_log::format(&agent_log::Entry {
                at: Timestamp::saturating_from_millis(row.finished_at),
                step_key: &row.key,
                step_name: &row.name,
                attempt: u32::try_from(row.attempt).unwrap_or(0),
                outcome: &row.status,
                log: text.as_deref(),
                records: report.get("records").and_then(Value::as_object),
            }));
        }
    }
    Ok(log.into_text())
}

/// An attempt's own log (when it sent one) and its report (`null` when it sent none).
async fn attempt_texts(env: &Env, row: &store::CompletedAttemptRow) -> worker::Result<(Option<String>, Value)> {
    let text = match &row.log_key {
        Some(key) => artifacts::read_artifact(env, key).await?,
        None => None,
    };
    let report = artifacts::load_report(env, row.report.as_deref(), row.report_key.as_deref()).await?;
    Ok((text, report))
}

/// `GET /v1/tasks/{id}/logs`: each agent's log of the task, with its size and last entry's time.
pub async fn logs(call: &Call<'_>) -> Handled {
    let task_id = readable_task(call).await?;
    let mut logs = Vec::new();
    for (agent, attempts) in completed_by_agent(call, &task_id).await? {
        let text = assemble_log(call.env, &attempts).await?;
        let updated = attempts.iter().map(|a| a.finished_at).max().unwrap_or(0);
        logs.push(json!({
            "agent": agent,
            "bytes": text.len(),
            "updated_at": Timestamp::saturating_from_millis(updated).to_rfc3339(),
            "url": format!("/v1/tasks/{task_id}/logs/{agent}"),
        }));
    }
    Ok(ApiResponse::json(200, &json!({"logs": logs})))
}

/// `GET /v1/tasks/{id}/logs/{agent}`: the agent's log of the task, as text; 404 while the agent
/// has completed nothing of it.
pub async fn agent_log(call: &Call<'_>) -> Handled {
    let task_id = readable_task(call).await?;
    let agent = call.matched.param("agent").to_string();
    let missing = || ApiError::NotFound { message: format!("no log of agent {agent} for task {task_id}") };
    // A name no agent can have has no log: no need to read the task for it.
    if crate::core::registry::agents::check_name(&agent).is_err() {
        return Err(missing().into());
    }
    let mut by_agent = completed_by_agent(call, &task_id).await?;
    let Some(attempts) = by_agent.remove(&agent) else { return Err(missing().into()) };
    let text = assemble_log(call.env, &attempts).await?;
    Ok(ApiResponse::raw(200, "text/plain; charset=utf-8", text))
}

/// `GET /v1/steps/{id}/log?attempt=&after=&wait=`: an attempt's output. While it runs, the live
/// output that arrived with its heartbeats from byte `after` on (long-polling up to `wait`
/// seconds when there is nothing new); once it ended, its final log. Headers say which
/// (`x-switchyard-log: live|final`), where to continue (`x-switchyard-next-offset`) and whether
/// more can come (`x-switchyard-complete`). The step's agent and admins only; anyone else gets
/// the 404 of a step that does not exist.
pub async fn step_log(call: &Call<'_>) -> Handled {
    let step_id = super::call::step_id_param(call)?;
    let query = live::LogQuery::parse(&call.query)?;
    let missing = || ApiError::NotFound { message: format!("no step {step_id}") };
    let db = call.env.d1(bindings::DB)?;
    let deadline = call.now.plus_millis(i64::from(query.wait_seconds) * 1000);
    loop {
        let read = store::read_task_of_step(&db, &step_id).await?.ok_or_else(missing)?;
        let step = read.steps.iter().find(|s| s.id == step_id).ok_or_else(missing)?;
        if let Some(Principal::Agent(own)) = &call.principal {
            if step.agent.as_deref() != Some(own.as_str()) {
                return Err(missing().into());
            }
        }
        let attempt = query.attempt.unwrap_or(u32::try_from(step.attempt).unwrap_or(0));
        let row = read.attempts.iter().find(|a| a.step_id == step_id && a.attempt == i64::from(attempt));
        let Some(row) = row else {
            return Err(ApiError::NotFound { message: format!("step {step_id} has no attempt {attempt}") }.into());
        };
        let running = row.finished_at.is_none();
        let task_id = &read.task.id;
        if !running {
            if let Some(text) =
                artifacts::read_artifact(call.env, &agent_log::attempt_key(task_id, &step_id, attempt)).await?
            {
                return Ok(log_response(text, "final", None, true));
            }
        }
        let listed = call
            .env
            .bucket(bindings::ARTIFACTS)?
            .list()
            .prefix(live::prefix(task_id, &step_id, attempt))
            .execute()
            .await?;
        let mut texts = Vec::new();
        for object in listed.objects() {
            let Some(offset) = live::offset_of(&object.key()) else { continue };
            if offset + object.size() <= query.after {
                continue;
            }
            if let Some(text) = artifacts::read_artifact(call.env, &object.key()).await? {
                texts.push((offset, text));
            }
        }
        let (text, next) = live::assemble(texts.iter().map(|(o, t)| (*o, t.as_str())).collect(), query.after);
        if !text.is_empty() || !running || platform::now() >= deadline {
            return Ok(log_response(text, "live", Some(next), !running));
        }
        worker::Delay::from(std::time::Duration::from_millis(u64::from(LOG_POLL_INTERVAL_MS))).await;
    }
}

fn log_response(text: String, kind: &str, next: Option<u64>, complete: bool) -> ApiResponse {
    let next = next.unwrap_or(text.len() as u64);
    let mut response = ApiResponse::raw(200, "text/plain; charset=utf-8", text);
    response.set_header("x-switchyard-log", kind);
    response.set_header("x-switchyard-next-offset", &next.to_string());
    response.set_header("x-switchyard-complete", if complete { "true" } else { "false" });
    response
}

/// `GET /v1/tasks/{id}/summary`: the summary written last (markdown, or JSON on request).
pub async fn summary(call: &Call<'_>) -> Handled {
    let task_id = readable_task(call).await?;
    let offered = ["text/markdown", "application/json"];
    let media =
        negotiate(call.accept.as_deref(), &offered).ok_or(ApiError::NotAcceptable { offered: offered.to_vec() })?;
    let db = call.env.d1(bindings::DB)?;
    let Some(row) = store::latest_summary(&db, &task_id).await? else {
        if !store::task_exists(&db, &task_id).await? {
            return Err(no_task(&task_id).into());
        }
        return Err(ApiError::NotFound { message: format!("task {task_id} has no summary yet") }.into());
    };
    let key = if media == "application/json" { &row.json_key } else { &row.markdown_key };
    let text = artifacts::read_artifact(call.env, key)
        .await?
        .ok_or_else(|| super::call::Failed::Fault(format!("summary {key} is missing from R2")))?;
    let mut response = ApiResponse::raw(200, &format!("{media}; charset=utf-8"), text);
    response.set_header("vary", "accept");
    Ok(response)
}

/// `GET /v1/tasks/{id}/metrics`: each agent's figures for the task (JSON, or the seed's YAML).
pub async fn task_metrics(call: &Call<'_>) -> Handled {
    let task_id = readable_task(call).await?;
    let offered = ["application/json", "application/yaml"];
    let media =
        negotiate(call.accept.as_deref(), &offered).ok_or(ApiError::NotAcceptable { offered: offered.to_vec() })?;
    let db = call.env.d1(bindings::DB)?;
    let rows = store::task_records(&db, &task_id).await?;
    if rows.is_empty() && !store::task_exists(&db, &task_id).await? {
        return Err(no_task(&task_id).into());
    }
    let metrics = metrics::per_agent(&rows.iter().filter_map(figures_of).collect::<Vec<_>>());
    let mut response = if media == "application/yaml" {
        ApiResponse::raw(200, "application/yaml; charset=utf-8", metrics::to_yaml(&task_id, &metrics))
    } else {
        ApiResponse::json(200, &json!({"task_id": task_id, "agents": metrics, "total": metrics::total_usage(&metrics)}))
    };
    response.set_header("vary", "accept");
    Ok(response)
}

/// `GET /v1/metrics/agents?since=`: per agent, across tasks, the steps that ended since a time.
/// Steps of archived tasks count by the UTC day they ended, from the day `since` falls in.
pub async fn agent_metrics(call: &Call<'_>) -> Handled {
    let mut since = Timestamp::saturating_from_millis(0);
    for pair in call.query.split('&').filter(|p| !p.is_empty()) {
        let (name, raw) = pair.split_once('=').unwrap_or((pair, ""));
        match name {
            "since" => {
                since = query_value(raw).as_deref().and_then(Timestamp::parse_rfc3339).ok_or_else(|| {
                    ApiError::bad_query("since", "must be an RFC 3339 time, e.g. 2026-11-24T00:00:00Z")
                })?;
            }
            other => {
                return Err(ApiError::bad_query(other, "unknown query parameter; this route reads only since").into())
            }
        }
    }
    let db = call.env.d1(bindings::DB)?;
    let (live, archived) = store::agent_aggregates(&db, since).await?;
    let count = |n: i64| u64::try_from(n).unwrap_or(0);
    let aggregates = |rows: Vec<store::AggregateRow>| -> Vec<AgentAggregate> {
        rows.into_iter()
            .map(|r| AgentAggregate {
                success_rate: metrics::success_rate(count(r.succeeded), count(r.steps)),
                usage: r.usage(),
                agent: r.agent,
                steps: count(r.steps),
                succeeded: count(r.succeeded),
                duration_p50_ms: r.p50_ms,
                duration_p95_ms: r.p95_ms,
                files_created: count(r.files_created),
                files_modified: count(r.files_modified),
                lines_added: count(r.lines_added),
                lines_removed: count(r.lines_removed),
                archived_steps: 0,
            })
            .collect()
    };
    let agents = metrics::with_archived(aggregates(live), aggregates(archived));
    Ok(ApiResponse::json(200, &json!({"since": since.to_rfc3339(), "agents": agents})))
}
