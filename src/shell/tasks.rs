//! Handlers for tasks and steps: submission (with `Idempotency-Key`), reading tasks and their
//! history, cancelling, and the pull protocol (lease, heartbeat, complete) plus manual retry.
//!
//! Every state change goes through `shell::engine::drive` (or, for a lease, the same read-decide-
//! write cycle with the agent's concurrency in the guard); nothing here writes steps itself.

use std::time::Duration;

use serde_json::{json, Value};

use super::access::readable_task;
use super::call::{event_json, step_id_param, task_id_param, Call, Failed, Handled};
use super::engine::{self, Driven, TaskKey};
use super::{archive, platform, registry, store, wakeup};
use crate::core::base::bindings;
use crate::core::base::encoding::sha256_hex;
use crate::core::base::ids::IdKind;
use crate::core::base::limits::{
    COMPLETE_BODY_BYTES_MAX, HEARTBEAT_BODY_BYTES_MAX, LEASE_POLL_INTERVAL_MS, LEASE_SPREAD, LEASE_WAIT_SECONDS_MAX,
    TASKS_RUNNING_MAX, TRANSITION_RETRIES_MAX,
};
use crate::core::base::time::Timestamp;
use crate::core::edge::auth::Principal;
use crate::core::edge::error::{ApiError, Detail};
use crate::core::edge::http::{parse_json_body, parse_json_body_within, parse_no_fields};
use crate::core::edge::paging::Page;
use crate::core::edge::response::ApiResponse;
use crate::core::engine::plan::{self, PlanInput};
use crate::core::engine::task_api::{
    CompletionRequest, HeartbeatRequest, Outcome as Reported, TaskRequest, WorkflowRef,
};
use crate::core::engine::wakeup::Waited;
use crate::core::engine::{self as core_engine, brief, Caller, Command, Completion, Outcome, ReportRef, Task};
use crate::core::records::archive::Document;
use crate::core::records::live;
use crate::core::records::report;
use crate::core::registry::analysis;
use crate::core::registry::workflow;

/// Longest `Idempotency-Key`: a UUID is 36 characters; 128 leaves room for keys that embed a
/// client name, while a key cannot become a way to store data.
const IDEMPOTENCY_KEY_BYTES_MAX: usize = 128;

fn millis(time: Option<Timestamp>) -> Value {
    time.map_or(Value::Null, |t| Value::from(t.to_rfc3339()))
}

fn caller_of(call: &Call<'_>) -> Caller {
    match &call.principal {
        Some(Principal::Agent(name)) => Caller::Agent(name.clone()),
        _ => Caller::Admin,
    }
}

/// The task as the API shows it: the same body from submission, `GET` and the idempotent replay.
fn task_json(row: &store::TaskRow, task: &Task) -> Value {
    let analysis = serde_json::from_str::<Value>(&row.analysis).unwrap_or(Value::Null);
    let input = serde_json::from_str::<Value>(&row.input).unwrap_or(Value::Null);
    let steps: Vec<Value> = task
        .steps
        .iter()
        .map(|s| {
            let attempts: Vec<Value> = s
                .attempts
                .iter()
                .map(|a| {
                    json!({
                        "attempt": a.number, "agent": a.agent, "status": a.status,
                        "started_at": a.started_at.to_rfc3339(), "finished_at": millis(a.finished_at),
                        "error": a.error,
                    })
                })
                .collect();
            // A step that runs a child run lists its child run's steps, nested under it.
            let child_run = s.child_run.as_ref().map(|run| {
                let keys: Vec<&str> = task.children(&s.key).into_iter().map(|i| task.steps[i].key.as_str()).collect();
                json!({
                    "workflow": run.workflow, "version": run.version, "each": run.each,
                    "items_from": run.items_from, "items": run.items, "steps": keys,
                })
            });
            json!({
                "id": s.id, "key": s.key, "name": s.name, "agent": s.agent, "runner": s.runner,
                "parent": s.parent, "child_run": child_run,
                "status": s.status, "depends_on": s.depends_on, "attempt": s.attempt,
                "attempts_max": s.attempts_max, "skip_reason": s.skip_reason, "error": s.error,
                "queued_at": millis(s.queued_at), "ready_at": millis(s.ready_at),
                "lease_expires_at": millis(s.lease_expires_at),
                "schedule_deadline_at": millis(s.schedule_deadline_at),
                "attempt_deadline_at": millis(s.attempt_deadline_at), "started_at": millis(s.started_at),
                "finished_at": millis(s.finished_at), "attempts": attempts,
            })
        })
        .collect();
    json!({
        "id": task.id,
        "title": row.title,
        "description": row.description,
        "requirements": input["requirements"],
        "paths": input["paths"],
        "main_agent": input["main_agent"],
        "selection": row.selection.as_deref().and_then(|s| serde_json::from_str::<Value>(s).ok()),
        "status": task.status,
        "task_type": analysis["task_type"],
        "agents": analysis["agents"],
        "analysis": analysis,
        "workflow": {"id": row.workflow_id, "name": row.workflow_name, "version": row.workflow_version},
        "version": task.version,
        "created_at": Timestamp::saturating_from_millis(row.created_at).to_rfc3339(),
        "updated_at": Timestamp::saturating_from_millis(row.updated_at).to_rfc3339(),
        "finished_at": millis(task.finished_at),
        "archived_at": Value::Null,
        "steps": steps,
    })
}

/// An archived task as the API shows it: the same body as before it was archived, from the rows
/// its document holds, with the time it was archived.
fn archived_task_json(document: &Document) -> Result<Value, Failed> {
    fn rows<T: serde::de::DeserializeOwned>(values: &[Value], what: &str) -> Result<Vec<T>, Failed> {
        values
            .iter()
            .map(|v| serde_json::from_value(v.clone()))
            .collect::<Result<_, _>>()
            .map_err(|err| Failed::Fault(format!("an archived task's {what} are not readable: {err}")))
    }
    let task: store::TaskRow = serde_json::from_value(document.task.clone())
        .map_err(|err| Failed::Fault(format!("an archived task is not readable: {err}")))?;
    let steps: Vec<store::StepRow> = rows(&document.steps, "steps")?;
    let attempts: Vec<store::AttemptRow> = rows(&document.attempts, "attempts")?;
    let mut json = task_json(&task, &store::task_state(&task, &steps, &attempts)?);
    json["archived_at"] = Value::from(document.archived_at.clone());
    Ok(json)
}

/// The document of an archived task the caller may read: an agent reads one in which it held a
/// step, as for a task in D1. `None` when there is no such archived task.
async fn readable_archive(call: &Call<'_>, db: &worker::D1Database, task_id: &str) -> Result<Option<Document>, Failed> {
    let Some(document) = archive::read(call.env, db, task_id).await? else { return Ok(None) };
    match &call.principal {
        Some(Principal::Agent(agent)) if !document.agent_worked_on(agent) => Ok(None),
        _ => Ok(Some(document)),
    }
}

fn idempotency_key(call: &Call<'_>) -> Result<Option<String>, ApiError> {
    let Some(key) = call.idempotency_key.as_deref() else { return Ok(None) };
    let printable = key.bytes().all(|b| (0x21..=0x7e).contains(&b));
    if key.is_empty() || key.len() > IDEMPOTENCY_KEY_BYTES_MAX || !printable {
        return Err(ApiError::BadRequest {
            message: format!("Idempotency-Key must be 1 to {IDEMPOTENCY_KEY_BYTES_MAX} printable ASCII characters"),
            details: vec![],
        });
    }
    Ok(Some(key.to_string()))
}

/// The answer to a key seen before: the first response for the same body, 409 for another.
fn replay(row: store::IdempotencyRow, hash: &str) -> Handled {
    if row.request_hash != hash {
        return Err(ApiError::Conflict {
            message: "this Idempotency-Key was already used with a different request body".into(),
        }
        .into());
    }
    let status = u16::try_from(row.status).unwrap_or(201);
    let mut response = ApiResponse::raw(status, "application/json; charset=utf-8", row.response);
    response.set_header("idempotent-replayed", "true");
    Ok(response)
}

/// `POST /v1/tasks`.
pub async fn submit(call: &Call<'_>, body: &[u8]) -> Handled {
    let key = idempotency_key(call)?;
    let request: TaskRequest = parse_json_body(call.content_type.as_deref(), body)?;
    let workflow_ref = request.validate()?;
    let db = call.env.d1(bindings::DB)?;
    // Round trips of this submission, counted as they are made (requests interleave).
    let mut trips = 0;
    let hash = sha256_hex(body);
    if let Some(key) = &key {
        trips += 1;
        if let Some(row) = store::submission_by_key(&db, key).await? {
            return replay(row, &hash);
        }
    }
    // A read this isolate kept is tried first; if the registry moved since, its insert loses its
    // guard and the task is planned again on a fresh read.
    for may_keep in [true, false] {
        let (read, read_guard, read_from) =
            match registry::submission_read(&db, &request, &workflow_ref, may_keep).await? {
                registry::ReadMade::Kept(read) => {
                    let guard = read.guard(&workflow_ref);
                    (read, Some(guard), None)
                }
                registry::ReadMade::Fresh { read, trips: reads, read_from } => {
                    trips += reads;
                    (read, None, Some(read_from))
                }
            };
        // The insert below.
        trips += 1;
        let Some(submitted) =
            plan_and_insert(call, &db, &request, &workflow_ref, &read, read_guard.as_ref(), &key, &hash).await?
        else {
            registry::forget_submission_read(&workflow_ref);
            continue;
        };
        if let Some(read_from) = read_from {
            registry::keep_submission_read(&workflow_ref, &read, read_from);
        }
        let Submitted { planned, leasable, task_id, response } = match submitted {
            Inserted::Task(submitted) => submitted,
            Inserted::Answer(answer) => return answer,
        };
        engine::count_submission(&planned.events, trips);
        engine::wake_for(call.env, &planned.task, &leasable).await;
        engine::send(call.env, &task_id, &planned.sends).await;
        return Ok(ApiResponse::raw(201, "application/json; charset=utf-8", response));
    }
    // Unreachable: only a kept read (the first try) can ask for another.
    Err(Failed::Fault("a submission planned on a fresh read asked for another read".into()))
}

/// A task planned and inserted, with what the submission does after its insert.
struct Submitted {
    planned: plan::Plan,
    leasable: Vec<String>,
    task_id: String,
    response: String,
}

/// What [`plan_and_insert`] came to: the task inserted, or the answer given instead (a replay
/// of the same idempotency key, or the running limit).
enum Inserted {
    Task(Submitted),
    Answer(Handled),
}

/// Plans a task on `read` and inserts it; `None` when the read was kept (`read_guard`) and
/// either refuses the task or no longer holds: nothing was written, and a fresh read decides.
#[allow(clippy::too_many_arguments)]
async fn plan_and_insert(
    call: &Call<'_>,
    db: &worker::D1Database,
    request: &TaskRequest,
    workflow_ref: &WorkflowRef,
    read: &registry::SubmissionRead,
    read_guard: Option<&store::ReadGuard>,
    key: &Option<String>,
    hash: &str,
) -> Result<Option<Inserted>, Failed> {
    let registry::SubmissionRead { workflow, definition, agents, rules: flight_rules, files } = read;
    let mut definition = definition.clone();
    definition.steps = workflow::steps_to_run(&definition);
    let capabilities = registry::capabilities_of(agents);
    let profiles = registry::profiles(agents, &capabilities);
    let analysis = analysis::analyze(&request.task_input(), &definition.routing_input(&profiles));
    let task_id = platform::new_id(IdKind::Task, call.now)?;
    let step_ids = (0..plan::step_count(&definition, files))
        .map(|_| platform::new_id(IdKind::Step, call.now))
        .collect::<worker::Result<Vec<_>>>()?;
    let main_agent = workflow::main_agent_of(
        &definition,
        request.main_agent.as_deref(),
        platform::text(call.env, bindings::MAIN_AGENT).as_deref(),
    );
    let planned = plan::plan(&PlanInput {
        task_id: &task_id,
        step_ids: &step_ids,
        definition: &definition,
        files,
        workflow_version: workflow.version,
        analysis: &analysis,
        agents: &profiles,
        main_agent: &main_agent,
        flight_rules,
        now: call.now,
    });
    let planned = match planned {
        Ok(planned) => planned,
        // A kept read never answers a client: the files it refuses may have been fixed since.
        Err(_) if read_guard.is_some() => return Ok(None),
        Err(details) => return Err(ApiError::Invalid { details }.into()),
    };
    let pull = engine::pull_steps_among(agents, &planned.task, &planned.sends);
    let (planned, leasable) = planned.with_leasable_at_once(platform::now(), &pull);
    let mut analysis_json = serde_json::to_value(&analysis).map_err(|e| Failed::Fault(e.to_string()))?;
    analysis_json["selections"] =
        serde_json::to_value(&planned.selections).map_err(|e| Failed::Fault(e.to_string()))?;
    analysis_json["analysis_step"] = definition.analysis_step().map_or(Value::Null, Value::from);
    let row = store::TaskRow {
        id: task_id.clone(),
        workflow_id: workflow.id.clone(),
        workflow_name: workflow_ref.name.clone(),
        workflow_version: workflow.version,
        title: request.title.clone(),
        description: request.description.clone(),
        input: json!({
            "requirements": request.requirements,
            "paths": request.paths,
            "main_agent": {"name": main_agent.name, "chosen_by": main_agent.chosen_by.as_str()},
        })
        .to_string(),
        analysis: analysis_json.to_string(),
        status: planned.task.status.as_str().to_string(),
        version: planned.task.version,
        created_at: call.now.as_millis(),
        updated_at: call.now.as_millis(),
        finished_at: planned.task.finished_at.map(Timestamp::as_millis),
        selection: None,
    };
    let response = json!({"task": task_json(&row, &planned.task)}).to_string();
    let instructions: Vec<String> = planned.instructions.iter().map(Value::to_string).collect();
    let new = store::NewTask {
        task: &planned.task,
        workflow_id: &row.workflow_id,
        workflow_name: &row.workflow_name,
        workflow_version: row.workflow_version,
        title: &row.title,
        description: &row.description,
        input: &row.input,
        analysis: &row.analysis,
        instructions: &instructions,
        events: &planned.events,
        idempotency: key.as_deref().map(|k| (k, hash, response.as_str())),
        read_guard,
    };
    // The lease of its first step then takes the read its insert made.
    let (ahead, read_after) = engine::ReadsAhead::plan(db, None, &planned.task, &leasable, false)?;
    let (written, read) = store::insert_task(db, &new, call.now, read_after).await?;
    match written {
        store::Write::Done => {
            ahead.keep(&read, &task_id);
        }
        // A kept read may be what lost: plan again on a fresh read, which answers a key taken
        // or the running limit if either was the cause.
        store::Write::Stale if read_guard.is_some() => return Ok(None),
        // Another request with the same key got there first: answer as it was answered.
        store::Write::Stale => {
            let row = match key.as_deref() {
                Some(key) => store::submission_by_key(db, key).await?,
                None => None,
            };
            let answer = match row {
                Some(row) => replay(row, hash),
                None => Err(ApiError::TooManyRequests {
                    message: format!("{TASKS_RUNNING_MAX} tasks are running, the limit; submit again when some finish"),
                    retry_after_seconds: 60,
                }
                .into()),
            };
            return Ok(Some(Inserted::Answer(answer)));
        }
    }
    Ok(Some(Inserted::Task(Submitted { planned, leasable, task_id, response })))
}

async fn task_view(call: &Call<'_>, task_id: &str) -> Handled {
    let db = call.env.d1(bindings::DB)?;
    let read = store::read_task(&db, task_id)
        .await?
        .ok_or_else(|| ApiError::NotFound { message: format!("no task {task_id}") })?;
    let task = store::task_state(&read.task, &read.steps, &read.attempts)?;
    Ok(ApiResponse::json(200, &json!({"task": task_json(&read.task, &task)})))
}

/// `GET /v1/tasks/{id}`: from D1, or from R2 once the task is archived.
pub async fn get(call: &Call<'_>) -> Handled {
    let task_id = task_id_param(call)?;
    match readable_task(call).await {
        Ok(_) => match task_view(call, &task_id).await {
            Err(Failed::Client(ApiError::NotFound { .. })) => {}
            other => return other,
        },
        Err(Failed::Client(ApiError::NotFound { .. })) => {}
        Err(other) => return Err(other),
    }
    let db = call.env.d1(bindings::DB)?;
    match readable_archive(call, &db, &task_id).await? {
        Some(document) => Ok(ApiResponse::json(200, &json!({"task": archived_task_json(&document)?}))),
        None => Err(no_task(&task_id)),
    }
}

fn no_task(task_id: &str) -> Failed {
    Failed::Client(ApiError::NotFound { message: format!("no task {task_id}") })
}

/// `GET /v1/tasks?status=&cursor=&limit=`.
pub async fn list(call: &Call<'_>) -> Handled {
    let mut status = None;
    let mut rest = Vec::new();
    for pair in call.query.split('&').filter(|p| !p.is_empty()) {
        match pair.split_once('=') {
            Some(("status", value)) => status = Some(value.to_string()),
            _ => rest.push(pair),
        }
    }
    if let Some(value) = &status {
        if core_engine::TaskStatus::parse(value).is_none() {
            return Err(ApiError::bad_query("status", "must be running, succeeded, failed or cancelled").into());
        }
    }
    let page = Page::parse(&rest.join("&"))?;
    let db = call.env.d1(bindings::DB)?;
    let rows = store::list_tasks(&db, status.as_deref(), page.cursor.as_deref(), page.limit).await?;
    let next_cursor = page.next_cursor(rows.len(), rows.last().map(|r| r.id.clone()));
    let tasks: Vec<Value> = rows
        .iter()
        .map(|r| {
            let agents: Value =
                r.agents.as_deref().and_then(|a| serde_json::from_str(a).ok()).unwrap_or_else(|| json!([]));
            json!({
                "id": r.id, "title": r.title, "status": r.status, "task_type": r.task_type, "agents": agents,
                "workflow": {"name": r.workflow_name, "version": r.workflow_version},
                "created_at": Timestamp::saturating_from_millis(r.created_at).to_rfc3339(),
                "updated_at": Timestamp::saturating_from_millis(r.updated_at).to_rfc3339(),
                "finished_at": millis(r.finished_at.map(Timestamp::saturating_from_millis)),
            })
        })
        .collect();
    Ok(ApiResponse::json(200, &json!({"tasks": tasks, "next_cursor": next_cursor})))
}

/// `GET /v1/tasks/{id}/events?after=`: from D1, or from the task's document once archived.
pub async fn events(call: &Call<'_>) -> Handled {
    let task_id = task_id_param(call)?;
    let page = Page::parse_history(&call.query)?;
    let after = page.after_seq()?;
    let db = call.env.d1(bindings::DB)?;
    let mut rows: Vec<store::TaskEventRow> = Vec::new();
    let in_d1 = match readable_task(call).await {
        Ok(_) => {
            rows = store::list_task_events(&db, &task_id, after, page.limit).await?;
            // No events (none at all, or none after the cursor): the task may have left D1.
            !rows.is_empty() || store::task_exists(&db, &task_id).await?
        }
        Err(Failed::Client(ApiError::NotFound { .. })) => false,
        Err(other) => return Err(other),
    };
    if !in_d1 {
        let document = readable_archive(call, &db, &task_id).await?.ok_or_else(|| no_task(&task_id))?;
        rows = document
            .events_after(after, page.limit as usize)
            .into_iter()
            .map(|row| serde_json::from_value(row.clone()))
            .collect::<Result<_, _>>()
            .map_err(|err| Failed::Fault(format!("an archived task's events are not readable: {err}")))?;
    }
    let events: Vec<Value> = rows
        .into_iter()
        .map(|row| {
            let mut event = event_json(row.seq, row.kind, row.data, row.created_at);
            event["step_id"] = row.step_id.map_or(Value::Null, Value::from);
            event
        })
        .collect();
    let next_cursor = page.next_cursor(events.len(), events.last().map(|e| e["seq"].to_string()));
    Ok(ApiResponse::json(200, &json!({"events": events, "next_cursor": next_cursor})))
}

/// Routes whose body is optional and, when sent, must be an empty JSON object.
fn no_fields(call: &Call<'_>, body: &[u8]) -> Result<(), ApiError> {
    parse_no_fields(call.content_type.as_deref(), body)
}

fn refused_or_missing(driven: Driven, missing: &str) -> Failed {
    match driven {
        Driven::Refused(refusal) => Failed::Client(refusal.into()),
        Driven::Busy => Failed::Client(ApiError::Busy { retry_after_seconds: 1 }),
        _ => Failed::Client(ApiError::NotFound { message: missing.into() }),
    }
}

/// `POST /v1/tasks/{id}/cancel`: every step still moving is cancelled; agents learn it at their
/// next heartbeat or completion. Cancelling a cancelled task again changes nothing.
pub async fn cancel(call: &Call<'_>, body: &[u8]) -> Handled {
    let task_id = task_id_param(call)?;
    no_fields(call, body)?;
    let db = call.env.d1(bindings::DB)?;
    match engine::drive(call.env, &db, TaskKey::Id(&task_id), &Command::Cancel, None).await? {
        Driven::Applied(_) | Driven::Unchanged(_) => task_view(call, &task_id).await,
        other => Err(refused_or_missing(other, &format!("no task {task_id}"))),
    }
}

/// `POST /v1/steps/{id}/retry`: re-drives a dead step with a fresh budget of attempts.
pub async fn retry(call: &Call<'_>, body: &[u8]) -> Handled {
    let step_id = step_id_param(call)?;
    no_fields(call, body)?;
    let db = call.env.d1(bindings::DB)?;
    match engine::drive(call.env, &db, TaskKey::OfStep(&step_id), &Command::Retry { step_id: step_id.clone() }, None)
        .await?
    {
        Driven::Applied(transition) => task_view(call, &transition.task.id).await,
        other => Err(refused_or_missing(other, &format!("no step {step_id}"))),
    }
}

/// The `wait` query parameter of a lease: seconds to wait for work, 0 by default.
fn wait_seconds(query: &str) -> Result<u32, ApiError> {
    let mut wait = 0;
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let parsed = match pair.split_once('=') {
            Some(("wait", value)) => value.parse::<u32>().ok().filter(|w| *w <= LEASE_WAIT_SECONDS_MAX),
            _ => None,
        };
        match parsed {
            Some(value) => wait = value,
            None => {
                return Err(ApiError::bad_query(
                    "wait",
                    format!("the only parameter is wait, whole seconds from 0 to {LEASE_WAIT_SECONDS_MAX}"),
                ))
            }
        }
    }
    Ok(wait)
}

/// `POST /v1/agents/{name}/lease?wait=`: one of the agent's oldest leasable steps (see
/// [`try_lease`]), or 204 when there is none (after waiting up to `wait` seconds for one).
pub async fn lease(call: &Call<'_>, body: &[u8]) -> Handled {
    let name = call.matched.param("name").to_string();
    if crate::core::registry::agents::check_name(&name).is_err() {
        return Err(ApiError::NotFound { message: "no agent with this name".into() }.into());
    }
    let caller = caller_of(call);
    if matches!(&caller, Caller::Agent(own) if *own != name) {
        return Err(ApiError::Forbidden { message: "an agent may lease only its own steps".into() }.into());
    }
    let wait = wait_seconds(&call.query)?;
    no_fields(call, body)?;
    let db = call.env.d1(bindings::DB)?;
    let deadline = call.now.plus_millis(i64::from(wait) * 1000);
    // A waiting request waits on its agent's wake-up object instead of looking in D1 again.
    let mut door = if wait > 0 { wakeup::Door::of(call.env, &name) } else { None };
    loop {
        if let Some(response) = try_lease(call, &db, &name, &caller).await? {
            return Ok(response);
        }
        let left_ms = deadline.as_millis() - platform::now().as_millis();
        if left_ms <= 0 {
            return Ok(ApiResponse::empty(204));
        }
        match &door {
            Some(object) => match object.wait(left_ms as u64).await {
                Ok(Waited::Woken) => {}
                // Nothing was made ready for the agent in all that time: no need to look again.
                Ok(Waited::TimedOut) => return Ok(ApiResponse::empty(204)),
                Err(err) => {
                    worker::console_error!("the wake-up object of {name} is unavailable; polling D1: {err}");
                    door = None;
                }
            },
            // Without the object, look in D1 again after a pause.
            None => {
                let pause = i64::from(LEASE_POLL_INTERVAL_MS).min(left_ms);
                worker::Delay::from(Duration::from_millis(pause as u64)).await;
            }
        }
    }
}

/// How many steps of one read a lease tries before it reads again: the read goes stale as other
/// workers take the steps it shows, and a fresh read costs one round trip like a write.
const LEASE_WRITES_PER_READ: u32 = 2;

/// One look for work: read the task of one of the agent's oldest leasable steps (the first
/// look may instead be a read made ahead for it, by the change that made one of its steps
/// leasable or by its last completion), decide the
/// lease of one of its steps ([`core_engine::lease_candidate`]), write it guarded by the step as
/// read (not the task's version: see `Scope::Step`) and the agent's lease count. A lease that
/// lost its step to another worker tries another step of the same read (while the read left
/// room for more than one lease), up to [`LEASE_WRITES_PER_READ`], before it reads again.
async fn try_lease(
    call: &Call<'_>,
    db: &worker::D1Database,
    name: &str,
    caller: &Caller,
) -> Result<Option<ApiResponse>, Failed> {
    // Round trips of this lease, counted as they are made (requests interleave).
    let mut trips = 0;
    let mut writes = 0;
    // The first look may be one made ahead for this agent (see `engine::ReadsAhead`).
    let mut ahead = engine::take_read_ahead(name);
    while writes < TRANSITION_RETRIES_MAX {
        let from_ahead = ahead.is_some();
        let read = match ahead.take() {
            Some(read) => read,
            None => {
                trips += 1;
                let spread = engine::random_u32()? % LEASE_SPREAD;
                store::read_for_lease(db, name, spread)
                    .await?
                    .ok_or_else(|| ApiError::NotFound { message: format!("no agent named {name}") })?
            }
        };
        let Some(task_read) = &read.task else { return Ok(None) };
        // "No room" from a read ahead may be out of date: only a look of its own says so.
        if read.leased >= read.max_concurrency {
            if from_ahead {
                continue;
            }
            return Ok(None);
        }
        let before = store::task_state(&task_read.task, &task_read.steps, &task_read.attempts)?;
        let mut tried: Vec<String> = Vec::new();
        while writes < TRANSITION_RETRIES_MAX && (tried.len() as u32) < LEASE_WRITES_PER_READ {
            let Some(candidate) = core_engine::lease_candidate(&before, name, &tried, engine::random_u32()?) else {
                // Every step of this read was tried and lost; none at all means no work here
                // (or, in a read ahead, none left: look again).
                if tried.is_empty() && !from_ahead {
                    return Ok(None);
                }
                break;
            };
            tried.push(candidate.id.clone());
            let now = platform::now();
            let lease_id = platform::new_id(IdKind::Lease, now)?;
            let command = Command::Lease {
                step_id: candidate.id.clone(),
                caller: caller.clone(),
                lease_id,
                agent: read.timeouts(),
                at_capacity: false,
            };
            let transition = match core_engine::apply(&before, &command, now, engine::random_u32()?) {
                Ok(Outcome::Changed(transition)) => transition,
                // The task moved on in a way this read cannot lease from: look again (a
                // look counts as a try, so that a refusal cannot make this loop forever).
                Ok(_) | Err(_) => {
                    writes += 1;
                    break;
                }
            };
            // The step's hand-out is made before the lease is written: if reading its inputs or
            // storing an offloaded part fails, no lease exists that nobody holds.
            let Some(step) = transition.task.step(&candidate.id) else { return Ok(None) };
            let payload = leased_step(call, name, &read, step).await?;
            let guard = store::Guard::AgentBelow { agent: name, max_concurrency: read.max_concurrency };
            trips += 1;
            writes += 1;
            match store::write_transition(db, &before, &transition, &guard, &[], now, Vec::new()).await?.0 {
                store::Write::Done => {
                    engine::count_transition(&transition, trips);
                    engine::count_lease(trips);
                    // Its completion is then decided on the state the lease left, without a read.
                    engine::keep_written(&before, &transition);
                    return Ok(Some(ApiResponse::json(200, &json!({"step": payload}))));
                }
                // Another worker took the step, or the agent's last free lease. Only in the
                // first case is another step of this read worth a write.
                store::Write::Stale if read.max_concurrency - read.leased >= 2 => continue,
                store::Write::Stale => break,
            }
        }
    }
    Ok(None)
}

/// What a lease answers with: `step` (as the lease left it) with its instructions, task,
/// agent, inputs and the newest messages to its agent, all from the lease's read.
async fn leased_step(
    call: &Call<'_>,
    name: &str,
    read: &store::LeaseRead,
    step: &core_engine::Step,
) -> Result<Value, Failed> {
    let Some(task_read) = &read.task else { return Err(Failed::Fault("a lease's read has no task".into())) };
    let instructions = read.instructions.iter().find(|(id, _)| *id == step.id).map_or("{}", |(_, text)| text.as_str());
    let stored = serde_json::from_str::<Value>(instructions).unwrap_or(Value::Null);
    let parse = |text: &str| serde_json::from_str::<Value>(text).unwrap_or(Value::Null);
    let handout = brief::Handout {
        task_id: &task_read.task.id,
        step,
        stored: &stored,
        task: engine::task_brief(&task_read.task),
        agent: brief::agent_part(name, &read.description, &parse(&read.capabilities), &parse(&read.metadata)),
        inputs: engine::inputs_of(call.env, &step.depends_on, &read.reports).await?,
    };
    let mut payload = engine::hand_out(call.env, handout).await?;
    payload["messages"] = read.messages.iter().map(super::messages::message_json).collect();
    payload["timeout_ms"] = Value::from(read.timeouts().for_step(step).attempt_ms);
    Ok(payload)
}

/// `POST /v1/steps/{id}/heartbeat`.
pub async fn heartbeat(call: &Call<'_>, body: &[u8]) -> Handled {
    let step_id = step_id_param(call)?;
    let request: HeartbeatRequest =
        parse_json_body_within(HEARTBEAT_BODY_BYTES_MAX, call.content_type.as_deref(), body)?;
    let db = call.env.d1(bindings::DB)?;
    // An agent heartbeats its own steps, so its name comes with the call; an admin's needs a read.
    let agent = match caller_of(call) {
        Caller::Agent(name) => Some(name),
        Caller::Admin => store::read_task_of_step(&db, &step_id)
            .await?
            .and_then(|read| read.steps.into_iter().find(|s| s.id == step_id))
            .and_then(|s| s.agent),
    };
    let timeouts = match agent {
        Some(agent) => registry::agent_for_dispatch(call.env, &db, &agent).await?.map(|a| a.timeouts),
        None => None,
    }
    .unwrap_or(registry::DEFAULT_TIMEOUTS);
    if let Some(chunk) = &request.output {
        live::check_chunk(chunk.offset, &chunk.text)?;
    }
    let command = Command::Heartbeat {
        step_id: step_id.clone(),
        caller: caller_of(call),
        lease_id: request.lease_id,
        agent: timeouts,
    };
    match engine::drive(call.env, &db, TaskKey::OfStep(&step_id), &command, None).await? {
        Driven::Extended(extension) => {
            let mut body = json!({"step_id": step_id, "lease_expires_at": millis(Some(extension.expires_at))});
            // Stored only once the lease is known to be the caller's; a failed write is a 5xx
            // the runner retries, resending the same chunk.
            if let Some(chunk) = &request.output {
                if !chunk.text.is_empty() {
                    let key = live::chunk_key(&extension.task_id, &step_id, extension.attempt, chunk.offset);
                    super::faults::check(super::faults::Point::R2Write)?;
                    call.env.bucket(bindings::ARTIFACTS)?.put(&key, chunk.text.clone()).execute().await?;
                }
                body["output_offset"] = Value::from(chunk.offset + chunk.text.len() as u64);
            }
            Ok(ApiResponse::json(200, &body))
        }
        other => Err(refused_or_missing(other, &format!("no step {step_id}"))),
    }
}

/// `POST /v1/steps/{id}/complete`.
pub async fn complete(call: &Call<'_>, body: &[u8]) -> Handled {
    let step_id = step_id_param(call)?;
    let request: CompletionRequest =
        parse_json_body_within(COMPLETE_BODY_BYTES_MAX, call.content_type.as_deref(), body)?;
    let checked = request.validate()?;
    let Some(lease_id) = checked.lease_id.clone() else {
        return Err(ApiError::Invalid { details: vec![Detail::field("lease_id", "is required")] }.into());
    };
    let db = call.env.d1(bindings::DB)?;
    let succeeded = checked.outcome == Reported::Succeeded;
    let (selection, fresh) = match succeeded {
        true => engine::checked_selection(&db, &step_id, checked.report.as_ref()).await?,
        false => (None, None),
    };
    let completion = Completion {
        step_id: step_id.clone(),
        lease_id,
        caller: caller_of(call),
        succeeded,
        error: checked.error.clone(),
        hash: sha256_hex(body),
        items: checked.report.as_ref().and_then(report::items_of),
        report: checked.report.map(|r| ReportRef::Inline(r.into_value().to_string())),
        selection,
    };
    let command = Command::Complete(completion);
    let key = TaskKey::OfStep(&step_id);
    let log = checked.log.as_deref();
    match engine::drive_from(call.env, &db, key, fresh, &command, log, Vec::new(), &store::Guard::Version).await? {
        Driven::Applied(transition) => {
            // A webhook agent that answered 202 completes here: the end of a delivery makes room.
            if let Some(agent) = transition.task.step(&step_id).and_then(|s| s.agent.as_deref()) {
                engine::deliver_waiting(call.env, &db, agent).await;
            }
            let response = transition.response.clone().unwrap_or_else(|| "{}".into());
            Ok(ApiResponse::raw(200, "application/json; charset=utf-8", response))
        }
        Driven::Replay(response) => Ok(ApiResponse::raw(200, "application/json; charset=utf-8", response)),
        other => Err(refused_or_missing(other, &format!("no step {step_id}"))),
    }
}

/// `GET /v1/steps/{id}/attempts/{attempt}/parts/{part}`: a part of a step's brief that was over
/// its bound and so was offloaded to R2 (the payload points here). Readable by the step's agent
/// and by admins; anything else, and a part that was not offloaded, is 404.
pub async fn step_part(call: &Call<'_>) -> Handled {
    let step_id = step_id_param(call)?;
    let part = call.matched.param("part").to_string();
    let missing =
        || ApiError::NotFound { message: format!("step {step_id} has no offloaded part {part} for this attempt") };
    let attempt = call.matched.param("attempt").parse::<u32>().map_err(|_| missing())?;
    if brief::part_bound(&part).is_none() {
        return Err(missing().into());
    }
    let db = call.env.d1(bindings::DB)?;
    let read = store::read_task_of_step(&db, &step_id).await?.ok_or_else(missing)?;
    let Some(step) = read.steps.iter().find(|s| s.id == step_id) else { return Err(missing().into()) };
    if let Caller::Agent(own) = caller_of(call) {
        if step.agent.as_deref() != Some(own.as_str()) {
            return Err(missing().into());
        }
    }
    let key = brief::part_key(&read.task.id, &step_id, attempt, &part);
    let text = super::artifacts::read_artifact(call.env, &key).await?.ok_or_else(missing)?;
    Ok(ApiResponse::raw(200, "application/json; charset=utf-8", text))
}

/// `GET /v1/system/counters`: what this isolate has done since it started, for benchmarks.
pub fn counters() -> ApiResponse {
    let (transitions, transition_trips) = engine::transition_counts();
    let (summaries, summary_ms) = super::records::summary_counts();
    let (leases, lease_trips) = engine::lease_counts();
    let (kept_used, kept_stale) = engine::kept_state_counts();
    let (submission_trips, completion_trips, builtin_trips) = engine::trips_by_command();
    ApiResponse::json(
        200,
        &json!({
            "d1_round_trips": store::round_trips(),
            "step_transitions": transitions,
            "transition_round_trips": transition_trips,
            "leases": leases,
            "lease_round_trips": lease_trips,
            "submission_round_trips": submission_trips,
            "completion_round_trips": completion_trips,
            "builtin_round_trips": builtin_trips,
            "kept_state_decisions": kept_used,
            "kept_state_stale": kept_stale,
            "step_messages_sent": engine::step_messages_sent(),
            "summaries_written": summaries,
            "summary_write_ms": summary_ms,
            "agent_metrics_rows_read": store::aggregate_rows_read(),
        }),
    )
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct TestFault {
    point: String,
    #[serde(default)]
    skip: u32,
    fail: Option<u32>,
    hold: Option<bool>,
}

/// `POST /__test/faults` (test-only): after `skip` more operations at `point` pass, the next
/// `fail` fail; or, with `hold`, the next operation at `point` waits until `hold` is false
/// (see `shell/faults.rs`).
pub async fn test_arm_fault(call: &Call<'_>, body: &[u8]) -> Handled {
    use super::faults::{self, Point};
    let request: TestFault = parse_json_body(call.content_type.as_deref(), body)?;
    let invalid =
        |field: &str, why: String| -> Failed { ApiError::Invalid { details: vec![Detail::field(field, why)] }.into() };
    let Some(point) = Point::parse(&request.point) else {
        let names: Vec<_> = Point::ALL.iter().map(|p| p.name()).collect();
        return Err(invalid("point", format!("is one of {}", names.join(", "))));
    };
    match (request.fail, request.hold) {
        (Some(fail), None) => faults::arm(point, request.skip, fail),
        (None, Some(_)) if !Point::HOLDABLE.contains(&point) => {
            let names: Vec<_> = Point::HOLDABLE.iter().map(|p| p.name()).collect();
            return Err(invalid("point", format!("is one of {} to be held", names.join(", "))));
        }
        (None, Some(_)) if request.skip > 0 => return Err(invalid("skip", "is not used with hold".into())),
        (None, Some(on)) => faults::hold(point, on),
        _ => return Err(invalid("fail", "or hold is required, not both".into())),
    }
    Ok(ApiResponse::json(200, &faults::status()))
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct TestStepMessage {
    task_id: String,
    step_id: String,
    attempt: u32,
    /// Put it on the dead-letter queue instead, as the queue does when retries run out.
    #[serde(default)]
    dead_letter: bool,
}

/// `POST /__test/step-messages` (test-only): puts a step message on the queue (or its dead-letter
/// queue), so that the tests can deliver one twice, out of order or dead, as the platform may.
pub async fn test_step_message(call: &Call<'_>, body: &[u8]) -> Handled {
    let request: TestStepMessage = parse_json_body(call.content_type.as_deref(), body)?;
    let message = crate::core::engine::queue::QueueMessage::Step {
        task_id: request.task_id,
        step_id: request.step_id,
        attempt: request.attempt,
    };
    let queue = if request.dead_letter { bindings::STEPS_DLQ } else { bindings::STEPS };
    call.env.queue(queue)?.send(message.to_json()).await?;
    Ok(ApiResponse::empty(202))
}
