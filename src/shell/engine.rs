//! Carries out the engine's decisions: reads a task, lets `core::engine` decide, makes the pull
//! agents' steps it queued leasable in the same change, writes the transition in one guarded
//! batch, then wakes those agents' lease requests, sends the other queue messages and runs the
//! built-in steps it queued on the state it wrote. Also the background halves of the engine:
//! dispatching a step's queue message (making it leasable, delivering it to a webhook, or
//! running a built-in step whose first run failed), the cron sweep and dead letters.
//!
//! A transition's first try is decided on the state this isolate kept of the task from its last
//! read or write (`core::engine::recent`), when it has one, instead of a read. A transition that
//! loses a race (another one applied to the task first, or the kept state was behind) is decided
//! again on the newer state this isolate kept, when another of its requests wrote the task
//! meanwhile, and otherwise on a fresh read, up to `TRANSITION_RETRIES_MAX` times. Messages are sent after the batch
//! commits: if sending fails, the step stays `queued` with its due time, and the cron sweep
//! re-sends it.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde_json::{json, Map, Value};
use worker::{BatchMessageBuilder, D1Database, Env, HttpMetadata, MessageBuilder};

use super::artifacts::load_report;
use super::call::Failed;
use super::{platform, registry, store};
use crate::core::base::bindings;
use crate::core::base::encoding::sha256_hex;
use crate::core::base::ids::IdKind;
use crate::core::base::limits::{
    LEASE_READ_AHEAD_MS, LEASE_SPREAD, READ_AHEAD_AGENTS_MAX, RECENT_STATES_MAX, RECENT_STATE_MS,
    REDISPATCH_AFTER_MS_DEFAULT, REPORT_INLINE_BYTES_MAX, SWEEP_BUDGET_MS, SWEEP_CONCURRENCY, SWEEP_ROUNDS_MAX,
    SWEEP_TASKS_MAX, TRANSITION_RETRIES_MAX, TRANSITION_RETRY_PAUSE_MS, WEBHOOK_TIMEOUT_MS,
};
use crate::core::edge::error::ApiError;
use crate::core::engine::queue::QueueMessage;
use crate::core::engine::recent::RecentStates;
use crate::core::engine::task_api::{CompletionRequest, Outcome as Reported};
use crate::core::engine::webhook::{self, Answer};
use crate::core::engine::{
    self, brief, AgentTimeouts, Caller, Command, Completion, Dispatch, Outcome, Refusal, ReportRef, Runner, Transition,
};
use crate::core::records::agent_log;
use crate::core::records::metrics::{ReportCounts, Usage};
use crate::core::records::report::{self, Report, ReportedSelection};
use crate::core::registry::child_runs::is_under;

/// What driving a command to a task came to.
pub enum Driven {
    Applied(Box<Transition>),
    /// A heartbeat extended its lease.
    Extended(engine::Extension),
    Unchanged(&'static str),
    Replay(String),
    Refused(Refusal),
    NoSuchTask,
    /// Every try lost its race to another transition of the task; nothing was written.
    Busy,
}

/// Which task a command is for: by its id, or as the task of a step.
#[derive(Clone, Copy)]
pub enum TaskKey<'a> {
    Id(&'a str),
    OfStep(&'a str),
}

/// Applies `command` to the task, deciding again on fresh state after a lost race. Reports the
/// transition carries are written inline or, when large, to R2 first; `log` (a completion's) is
/// written to R2 under the completed attempt.
pub async fn drive(
    env: &Env,
    db: &D1Database,
    key: TaskKey<'_>,
    command: &Command,
    log: Option<&str>,
) -> worker::Result<Driven> {
    drive_from(env, db, key, None, command, log, Vec::new(), &store::Guard::Version).await
}

/// A task's state that a caller already has, and the D1 round trips it took to get it: none when
/// it is the state a transition has just written.
pub struct Fresh {
    pub task: engine::Task,
    pub trips: u64,
}

/// [`drive`], deciding first on a task state the caller already has (saving a round trip),
/// writing `written_with` in the same batch as the transition, under `guard` as well as the
/// task's version.
#[allow(clippy::too_many_arguments)]
pub async fn drive_from(
    env: &Env,
    db: &D1Database,
    key: TaskKey<'_>,
    mut fresh: Option<Fresh>,
    command: &Command,
    log: Option<&str>,
    written_with: Vec<store::Extra>,
    guard: &store::Guard<'_>,
) -> worker::Result<Driven> {
    // Counted here rather than from the store's global counter: requests interleave.
    let mut trips = 0;
    // A write decided on a kept state that lost its guard is tried again at once: its state was
    // behind, which a pause does not help.
    let mut lost_on_kept = false;
    // A state this isolate kept that is newer than the one a lost write was decided on.
    let mut newer: Option<engine::Task> = None;
    let mut tried_newer = false;
    for retry in 0..TRANSITION_RETRIES_MAX {
        if retry > 0 && !lost_on_kept {
            pause_before_retry(retry).await?;
        }
        // The first try decides on the state this isolate kept of the task, when it has one and
        // the caller brought none: no read. A later try reads, unless it has a newer kept state.
        let mut kept = if retry == 0 && fresh.is_none() { kept_state(key) } else { newer.take() };
        let (before, outcome, now, on_kept) = loop {
            let on_kept = kept.is_some();
            let before = match (fresh.take(), kept.take()) {
                (Some(fresh), _) => {
                    trips += fresh.trips;
                    fresh.task
                }
                (None, Some(task)) => task,
                (None, None) => {
                    let read = match key {
                        TaskKey::Id(id) => store::read_task(db, id).await?,
                        TaskKey::OfStep(step_id) => store::read_task_of_step(db, step_id).await?,
                    };
                    trips += 1;
                    let Some(read) = read else { return Ok(Driven::NoSuchTask) };
                    let task = store::task_state(&read.task, &read.steps, &read.attempts)?;
                    keep_read(&task);
                    task
                }
            };
            let now = platform::now();
            let outcome = engine::apply(&before, command, now, random_u32()?);
            // Only a change or an extension is written under a guard that a stale state fails;
            // a refusal or an answer decided on a kept state is decided again on a fresh read.
            if on_kept && !matches!(outcome, Ok(Outcome::Changed(_) | Outcome::Extended(_))) {
                continue;
            }
            if on_kept {
                KEPT_USED.fetch_add(1, Ordering::Relaxed);
            }
            break (before, outcome, now, on_kept);
        };
        let transition = match outcome {
            Err(refusal) => return Ok(Driven::Refused(refusal)),
            Ok(Outcome::Unchanged(why)) => return Ok(Driven::Unchanged(why)),
            Ok(Outcome::Replay(response)) => return Ok(Driven::Replay(response)),
            Ok(Outcome::Extended(extension)) => {
                trips += 1;
                if store::extend_lease(db, &extension).await? {
                    keep_extended(&extension);
                    return Ok(Driven::Extended(extension));
                }
                // The lease ended between the read and the write: read again for the reason.
                forget_kept(&before.id, on_kept);
                lost_on_kept = on_kept;
                continue;
            }
            Ok(Outcome::Changed(transition)) => transition,
        };
        let mut extras = artifacts(env, &before, &transition, command, log).await?;
        extras.extend(written_with.iter().cloned());
        // Leasable from the batch on, not from the decision: writing the artifacts takes a while.
        let pull = pull_steps(env, db, &transition.task, &transition.sends).await;
        let (transition, leasable) = transition.with_leasable_at_once(platform::now(), &pull);
        let (at_once, queued) = engine::builtins_at_once(&transition.task, transition.sends.clone());
        let completing = match command {
            Command::Complete(Completion { caller: Caller::Agent(agent), .. }) => Some(agent.as_str()),
            _ => None,
        };
        let (ahead, read_after) = ReadsAhead::plan(db, completing, &transition.task, &leasable, !at_once.is_empty())?;
        let (written, read) =
            store::write_transition(db, &before, &transition, guard, &extras, now, read_after).await?;
        trips += 1;
        match written {
            store::Write::Done => {
                count_transition(&transition, trips);
                count_by_command(command, trips);
                keep_written(&before, &transition);
                let summary_inputs = ahead.keep(&read, &before.id);
                wake_for(env, &transition.task, &leasable).await;
                send(env, &before.id, &queued).await;
                run_at_once(env, db, &transition.task, &at_once, summary_inputs).await;
                return Ok(Driven::Applied(Box::new(transition)));
            }
            store::Write::Stale => {
                // Another request of this isolate may have written the task since this try's
                // state (the other completion of a parallel group, say), and kept what it
                // wrote: the next try decides on that, without a read. Once; a second loss reads.
                if let Some(task) = kept_state(key).filter(|task| !tried_newer && task.version > before.version) {
                    if on_kept {
                        KEPT_STALE.fetch_add(1, Ordering::Relaxed);
                    }
                    tried_newer = true;
                    newer = Some(task);
                    lost_on_kept = true;
                    continue;
                }
                forget_kept(&before.id, on_kept);
                lost_on_kept = on_kept;
                continue;
            }
        }
    }
    worker::console_warn!("a transition lost {TRANSITION_RETRIES_MAX} races in a row; answered busy");
    Ok(Driven::Busy)
}

/// The steps among those just queued at once that are a pull agent's, with its timeouts: the
/// choice [`dispatch`] makes for their queue message, made before the change is written so that
/// they become leasable in its batch (see `engine::leasable_at_once`). A step whose agent cannot
/// be looked up is left to its queue message.
pub async fn pull_steps(
    env: &Env,
    db: &D1Database,
    task: &engine::Task,
    sends: &[engine::Send],
) -> Vec<(String, AgentTimeouts)> {
    let mut pull = Vec::new();
    for (step_id, agent) in engine::queued_for_agents(task, sends) {
        let found = match agent {
            None => None,
            Some(agent) => match registry::agent_for_dispatch(env, db, agent).await {
                Ok(found) => found,
                Err(err) => {
                    worker::console_warn!(
                        "agent {agent} could not be looked up; its step {step_id} goes by queue: {err}"
                    );
                    continue;
                }
            },
        };
        if let Some(timeouts) = pull_timeouts(found.as_ref()) {
            pull.push((step_id.to_string(), timeouts));
        }
    }
    pull
}

/// [`pull_steps`] for a task being created, from the agents its submission has read already.
pub fn pull_steps_among(
    agents: &[store::AgentRow],
    task: &engine::Task,
    sends: &[engine::Send],
) -> Vec<(String, AgentTimeouts)> {
    let found = |name: &str| agents.iter().find(|row| row.name == name).map(registry::dispatch_agent);
    engine::queued_for_agents(task, sends)
        .into_iter()
        .filter_map(|(step_id, agent)| Some((step_id.to_string(), pull_timeouts(agent.and_then(found).as_ref())?)))
        .collect()
}

/// The timeouts a step of this agent (`None`: not registered, any more) is made leasable with, as
/// [`dispatch`] does; `None` for a webhook agent's step, which is delivered instead.
fn pull_timeouts(found: Option<&registry::DispatchAgent>) -> Option<AgentTimeouts> {
    match found {
        Some(found) if found.webhook => None,
        Some(found) => Some(found.timeouts),
        None => Some(registry::DEFAULT_TIMEOUTS),
    }
}

/// Wakes a waiting lease request of its agent for each step a change made leasable: one
/// wake-up per step, as its queue message would have sent, since the object hands each wake-up
/// to one request. All at once: the steps a fan-out makes leasable are for different agents,
/// whose objects need not wait for one another.
pub async fn wake_for(env: &Env, task: &engine::Task, leasable: &[String]) {
    let agents = leasable.iter().filter_map(|id| task.step(id)).filter_map(|s| s.agent.as_deref());
    futures_util::future::join_all(agents.map(|agent| super::wakeup::wake(env, agent))).await;
}

/// A random pause before retry `n` of a lost transition (see `TRANSITION_RETRY_PAUSE_MS`).
pub async fn pause_before_retry(n: u32) -> worker::Result<()> {
    let window = TRANSITION_RETRY_PAUSE_MS << n.min(7);
    let ms = random_u32()? % window.max(1);
    worker::Delay::from(Duration::from_millis(u64::from(ms))).await;
    Ok(())
}

/// Writes a transition's large reports and a completion's log to R2, and returns the D1 writes
/// that point to them. Keys name the attempt, so a transition decided again after a lost race
/// overwrites the same objects.
pub async fn artifacts(
    env: &Env,
    before: &engine::Task,
    transition: &Transition,
    command: &Command,
    log: Option<&str>,
) -> worker::Result<Vec<store::Extra>> {
    let mut extras = Vec::new();
    for (step_id, report) in &transition.reports {
        let attempt = transition.task.step(step_id).map_or(0, |s| s.attempt);
        let parsed = match report {
            ReportRef::Inline(json) => serde_json::from_str::<Value>(json).ok(),
            ReportRef::Stored(_) => None,
        };
        let counts = parsed.as_ref().map(ReportCounts::of).unwrap_or_default();
        let usage = parsed.as_ref().map(Usage::of).unwrap_or_default();
        let report = match report {
            ReportRef::Inline(json) if json.len() > REPORT_INLINE_BYTES_MAX => {
                let key = report_key(&before.id, step_id, attempt);
                super::faults::check(super::faults::Point::R2Write)?;
                env.bucket(bindings::ARTIFACTS)?.put(&key, json.clone()).execute().await?;
                ReportRef::Stored(key)
            }
            other => other.clone(),
        };
        // The report of a failed attempt stays with that attempt; only a success's is the step's.
        let succeeded = transition.task.step(step_id).is_some_and(|s| s.status == engine::StepStatus::Succeeded);
        extras.push(store::Extra::Report { step_id: step_id.clone(), attempt, report, counts, usage, succeeded });
    }
    if let (Some(log), Command::Complete(completion)) = (log, command) {
        let attempt = before.step(&completion.step_id).map_or(0, |s| s.attempt);
        let key = agent_log::attempt_key(&before.id, &completion.step_id, attempt);
        super::faults::check(super::faults::Point::R2Write)?;
        env.bucket(bindings::ARTIFACTS)?.put(&key, log.to_string()).execute().await?;
        extras.push(store::Extra::LogKey { step_id: completion.step_id.clone(), attempt, key });
    }
    Ok(extras)
}

thread_local! {
    /// The task states this isolate last read or wrote (see `core::engine::recent`).
    static RECENT: RefCell<RecentStates> = const { RefCell::new(RecentStates::new(RECENT_STATE_MS, RECENT_STATES_MAX)) };
}

/// Transitions this isolate decided on a kept state, and those of them whose write lost its
/// guard (the state was stale), for the benchmark.
static KEPT_USED: AtomicU64 = AtomicU64::new(0);
static KEPT_STALE: AtomicU64 = AtomicU64::new(0);

fn kept_state(key: TaskKey<'_>) -> Option<engine::Task> {
    let now = platform::now();
    RECENT.with(|recent| {
        let recent = recent.borrow();
        match key {
            TaskKey::Id(task_id) => recent.of_task(task_id, now),
            TaskKey::OfStep(step_id) => recent.of_step(step_id, now),
        }
    })
}

fn keep_read(task: &engine::Task) {
    RECENT.with(|recent| recent.borrow_mut().read(task, platform::now()));
}

/// Keeps the state a written transition left, for the task's next transition to decide on.
pub fn keep_written(before: &engine::Task, transition: &Transition) {
    // The test fault leaves the kept state behind the store, as another isolate's write does.
    if super::faults::check(super::faults::Point::KeptState).is_err() {
        return;
    }
    RECENT.with(|recent| recent.borrow_mut().wrote(before, transition, platform::now()));
}

fn keep_extended(extension: &engine::Extension) {
    RECENT.with(|recent| recent.borrow_mut().extended(extension));
}

/// What a change's batch (a transition's, or a submission's) reads at its end for what comes
/// right after it, in the same round trip: the next lease of some agents ([`reads_ahead`]) and
/// the records of the first built-in step it runs at once (which summarises the task as the
/// batch wrote it).
pub struct ReadsAhead {
    /// Each agent read for, and where its results are among the batch's reads.
    agents: Vec<(String, std::ops::Range<usize>)>,
    /// Where the summary's records start, when a built-in step runs at once.
    summary: Option<usize>,
}

impl ReadsAhead {
    pub fn plan(
        db: &D1Database,
        completing: Option<&str>,
        task: &engine::Task,
        leasable: &[String],
        runs_builtin: bool,
    ) -> worker::Result<(ReadsAhead, Vec<worker::D1PreparedStatement>)> {
        let mut statements = Vec::new();
        let mut agents = Vec::new();
        for agent in reads_ahead(completing, task, leasable) {
            let reads = store::lease_read_statements(db, &agent, random_u32()? % LEASE_SPREAD)?;
            agents.push((agent, statements.len()..statements.len() + reads.len()));
            statements.extend(reads);
        }
        let summary = runs_builtin.then_some(statements.len());
        if runs_builtin {
            statements.extend(store::summary_statements(db, &task.id)?);
        }
        Ok((ReadsAhead { agents, summary }, statements))
    }

    /// Keeps the lease reads for their agents and returns the summary's records. Unreadable, a
    /// lease or the built-in step reads for itself: the change is written either way.
    pub fn keep(self, read: &[worker::D1Result], task_id: &str) -> Option<store::SummaryInputs> {
        for (agent, span) in self.agents {
            keep_read_ahead(&agent, read.get(span).unwrap_or_default());
        }
        let start = self.summary?;
        store::summary_inputs_of(read.get(start..).unwrap_or_default()).unwrap_or_else(|err| {
            worker::console_warn!("task {task_id}: the read ahead for its summary was unreadable: {err}");
            None
        })
    }
}

/// The agents whose next lease a change's batch reads ahead for, saving that lease its own
/// read: `completing`, the agent that completed its step with its own token (its runner asks
/// for the next one at once), and the agents of the steps the change makes leasable (their
/// waiting lease requests are woken for them). At most [`READ_AHEAD_AGENTS_MAX`].
fn reads_ahead(completing: Option<&str>, task: &engine::Task, leasable: &[String]) -> Vec<String> {
    let woken = leasable.iter().filter_map(|id| task.step(id)).filter_map(|s| s.agent.as_deref());
    let mut agents: Vec<String> = Vec::new();
    for agent in completing.into_iter().chain(woken) {
        if agents.len() < READ_AHEAD_AGENTS_MAX && !agents.iter().any(|a| a == agent) {
            agents.push(agent.to_string());
        }
    }
    agents
}

thread_local! {
    /// The last read made ahead for each agent's next lease (by a change that woke the agent, or
    /// its own completion), and when.
    static READ_AHEAD: RefCell<BTreeMap<String, (i64, store::LeaseRead)>> = const { RefCell::new(BTreeMap::new()) };
}

/// Keeps a read ahead that found work; one that found none is no answer for a later lease,
/// which looks again (a step may have been made ready since).
fn keep_read_ahead(agent: &str, results: &[worker::D1Result]) {
    let read = match store::lease_read_of(results) {
        Ok(Some(read)) if read.task.is_some() => read,
        Ok(_) => return,
        Err(err) => {
            worker::console_warn!("the read ahead for {agent}'s next lease was unreadable: {err}");
            return;
        }
    };
    let at = platform::now().as_millis();
    READ_AHEAD.with(|kept| kept.borrow_mut().insert(agent.to_string(), (at, read)));
}

/// The read a change made ahead for `agent`'s next lease, once, if it is recent enough.
pub fn take_read_ahead(agent: &str) -> Option<store::LeaseRead> {
    let (at, read) = READ_AHEAD.with(|kept| kept.borrow_mut().remove(agent))?;
    let age = platform::now().as_millis() - at;
    (0..LEASE_READ_AHEAD_MS).contains(&age).then_some(read)
}

/// Drops the kept state of a task whose write lost its guard; `on_kept`: a write decided on it.
pub fn forget_kept(task_id: &str, on_kept: bool) {
    if on_kept {
        KEPT_STALE.fetch_add(1, Ordering::Relaxed);
    }
    RECENT.with(|recent| recent.borrow_mut().forget(task_id));
}

pub fn kept_state_counts() -> (u64, u64) {
    (KEPT_USED.load(Ordering::Relaxed), KEPT_STALE.load(Ordering::Relaxed))
}

/// Step transitions applied by this isolate, and the D1 round trips they took (reads, writes
/// and lost races; not idle lease polls), for the benchmark.
static TRANSITIONS: AtomicU64 = AtomicU64::new(0);
static TRANSITION_TRIPS: AtomicU64 = AtomicU64::new(0);
/// Step messages this isolate sent to the queue, for the benchmark.
static STEP_MESSAGES: AtomicU64 = AtomicU64::new(0);

pub fn step_messages_sent() -> u64 {
    STEP_MESSAGES.load(Ordering::Relaxed)
}

/// Counts a written transition: each step event is one step changing status.
pub fn count_transition(transition: &Transition, round_trips: u64) {
    let steps = transition.events.iter().filter(|e| e.step_id.is_some()).count() as u64;
    TRANSITIONS.fetch_add(steps, Ordering::Relaxed);
    TRANSITION_TRIPS.fetch_add(round_trips, Ordering::Relaxed);
}

/// The analysis step's `report.selection`, checked against its task (see
/// `report::check_selection`), and the task as read for the check, for the completion to
/// decide on; `(None, None)` when the report has none.
pub async fn checked_selection(
    db: &D1Database,
    step_id: &str,
    report: Option<&Report>,
) -> Result<(Option<ReportedSelection>, Option<Fresh>), Failed> {
    // The report was validated, selection included; a shape problem cannot reach here.
    let Some(selection) = report.and_then(|r| report::selection_of(r).ok().flatten()) else { return Ok((None, None)) };
    let names: Vec<&str> = selection.agents.iter().map(String::as_str).collect();
    let (read, registered) = store::read_task_of_step_and_agents(db, step_id, &names).await?;
    let Some(read) = read else { return Ok((None, None)) };
    let Some(step) = read.steps.iter().find(|s| s.id == step_id) else { return Ok((None, None)) };
    let analysis: Value = serde_json::from_str(&read.task.analysis).unwrap_or(Value::Null);
    let candidates: Vec<String> = serde_json::from_value(analysis["routing"]["candidates"].clone()).unwrap_or_default();
    let checked =
        report::check_selection(selection, &step.key, analysis["analysis_step"].as_str(), &candidates, &registered)
            .map_err(|details| ApiError::Invalid { details })?;
    let fresh = Fresh { task: store::task_state(&read.task, &read.steps, &read.attempts)?, trips: 1 };
    Ok((Some(checked), Some(fresh)))
}

/// Counts a submission: its step events and the round trips it took.
pub fn count_submission(events: &[engine::Event], round_trips: u64) {
    TRANSITIONS.fetch_add(events.iter().filter(|e| e.step_id.is_some()).count() as u64, Ordering::Relaxed);
    TRANSITION_TRIPS.fetch_add(round_trips, Ordering::Relaxed);
    SUBMISSION_TRIPS.fetch_add(round_trips, Ordering::Relaxed);
}

/// Of the transitions' round trips, those of submissions, of completions and of built-in steps'
/// runs (leases have theirs, below), so that the benchmark can say where a task's go.
static SUBMISSION_TRIPS: AtomicU64 = AtomicU64::new(0);
static COMPLETION_TRIPS: AtomicU64 = AtomicU64::new(0);
static BUILTIN_TRIPS: AtomicU64 = AtomicU64::new(0);

/// Counts the round trips of a written transition by the command that made it.
fn count_by_command(command: &Command, round_trips: u64) {
    let counter = match command {
        Command::Complete(_) => &COMPLETION_TRIPS,
        Command::Dispatch { how: Dispatch::Builtin { .. }, .. } => &BUILTIN_TRIPS,
        _ => return,
    };
    counter.fetch_add(round_trips, Ordering::Relaxed);
}

/// The round trips of submissions, completions and built-in steps' runs (see [`count_by_command`]).
pub fn trips_by_command() -> (u64, u64, u64) {
    let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
    (load(&SUBMISSION_TRIPS), load(&COMPLETION_TRIPS), load(&BUILTIN_TRIPS))
}

pub fn transition_counts() -> (u64, u64) {
    (TRANSITIONS.load(Ordering::Relaxed), TRANSITION_TRIPS.load(Ordering::Relaxed))
}

/// Leases written by this isolate, and the D1 round trips they took (lost races included).
static LEASES: AtomicU64 = AtomicU64::new(0);
static LEASE_TRIPS: AtomicU64 = AtomicU64::new(0);

/// Counts a written lease and its round trips (also counted as a transition's).
pub fn count_lease(round_trips: u64) {
    LEASES.fetch_add(1, Ordering::Relaxed);
    LEASE_TRIPS.fetch_add(round_trips, Ordering::Relaxed);
}

pub fn lease_counts() -> (u64, u64) {
    (LEASES.load(Ordering::Relaxed), LEASE_TRIPS.load(Ordering::Relaxed))
}

pub fn random_u32() -> worker::Result<u32> {
    Ok(u32::from_le_bytes(platform::random_bytes::<4>()?))
}

/// Sends the transition's queue messages. A failure is logged, not returned: the transition is
/// written, and the sweep re-sends a message that never arrived.
pub async fn send(env: &Env, task_id: &str, sends: &[engine::Send]) {
    if sends.is_empty() {
        return;
    }
    let messages: Vec<_> = sends
        .iter()
        .map(|s| {
            let body =
                QueueMessage::Step { task_id: task_id.to_string(), step_id: s.step_id.clone(), attempt: s.attempt };
            MessageBuilder::new(body.to_json()).delay_seconds(s.delay_seconds).build()
        })
        .collect();
    let sent = match (super::faults::check(super::faults::Point::QueueSend), env.queue(bindings::STEPS)) {
        (Ok(()), Ok(queue)) => queue.send_batch(BatchMessageBuilder::new().messages(messages).build()).await,
        (Err(err), _) | (_, Err(err)) => Err(err),
    };
    match sent {
        Ok(()) => {
            STEP_MESSAGES.fetch_add(sends.len() as u64, Ordering::Relaxed);
        }
        Err(err) => worker::console_error!(
            "task {task_id}: sending {} step messages failed (the sweep re-sends): {err}",
            sends.len()
        ),
    }
}

/// The R2 key of an attempt's report when it is too large for D1.
pub fn report_key(task_id: &str, step_id: &str, attempt: u32) -> String {
    format!("tasks/{task_id}/steps/{step_id}/attempt-{attempt}/report.json")
}

/// The reports a step works from: those of the steps it depends on, by key (a skipped step
/// gives its reason instead). A step that ran a child run gives its child run's reports, by key.
pub async fn inputs_of(env: &Env, depends_on: &[String], rows: &[store::ReportRow]) -> worker::Result<Value> {
    let mut inputs = Map::new();
    for row in rows.iter().filter(|r| depends_on.contains(&r.key)) {
        let child_run: Vec<&store::ReportRow> = rows.iter().filter(|r| is_under(&r.key, &row.key)).collect();
        let value = if row.status != "skipped" && !child_run.is_empty() {
            let mut steps = Map::new();
            for child in
                child_run.into_iter().filter(|r| r.status == "skipped" || r.report.is_some() || r.report_key.is_some())
            {
                steps.insert(child.key.clone(), input_of(env, child).await?);
            }
            json!({"step": row.name, "status": row.status, "child_run": steps})
        } else {
            input_of(env, row).await?
        };
        inputs.insert(row.key.clone(), value);
    }
    Ok(Value::Object(inputs))
}

/// One step's input: its report, or why it was skipped.
async fn input_of(env: &Env, row: &store::ReportRow) -> worker::Result<Value> {
    Ok(if row.status == "skipped" {
        json!({"step": row.name, "status": "skipped", "reason": row.skip_reason})
    } else {
        let report = load_report(env, row.report.as_deref(), row.report_key.as_deref()).await?;
        json!({"step": row.name, "status": row.status, "agent": row.agent, "report": report})
    })
}

/// The task part of a step's brief, from the stored task row.
pub fn task_brief(row: &store::TaskRow) -> Value {
    let input = serde_json::from_str::<Value>(&row.input).unwrap_or(Value::Null);
    let analysis = serde_json::from_str::<Value>(&row.analysis).unwrap_or(Value::Null);
    brief::task_part(&brief::TaskFacts {
        id: &row.id,
        title: &row.title,
        description: &row.description,
        input: &input,
        analysis: &analysis,
    })
}

/// The step as an agent receives it, from a lease or a webhook delivery: the payload the core
/// shapes, with any part over its bound stored in R2 first (the payload points there).
pub async fn hand_out(env: &Env, handout: brief::Handout<'_>) -> worker::Result<Value> {
    let payload = brief::payload(handout);
    for (key, text) in payload.offloads {
        super::faults::check(super::faults::Point::R2Write)?;
        env.bucket(bindings::ARTIFACTS)?
            .put(&key, text)
            .http_metadata(HttpMetadata { content_type: Some("application/json".into()), ..HttpMetadata::default() })
            .execute()
            .await?;
    }
    Ok(payload.value)
}

/// Runs the built-in steps a transition just queued (see `engine::builtins_at_once`), one after
/// another, each deciding on the state written before it. A failure is logged: the step stays
/// queued with its due time, and the sweep sends its message.
async fn run_at_once(
    env: &Env,
    db: &D1Database,
    written: &engine::Task,
    sends: &[engine::Send],
    mut summary_inputs: Option<store::SummaryInputs>,
) {
    for send in sends {
        let fresh = Fresh { task: written.clone(), trips: 0 };
        // Boxed: running a built-in step drives a transition, which may queue another.
        let ran: std::pin::Pin<Box<dyn std::future::Future<Output = worker::Result<()>> + '_>> =
            Box::pin(dispatch_builtin(env, db, fresh, &send.step_id, send.attempt, summary_inputs.take()));
        if let Err(err) = ran.await {
            worker::console_error!(
                "task {}: built-in step {} failed to run (the sweep sends its message): {err}",
                written.id,
                send.step_id
            );
        }
    }
}

/// Runs `attempt` of a built-in step: writes its summary, then records its report. Only an
/// attempt that will dispatch the step writes a summary; a duplicate changes nothing.
async fn dispatch_builtin(
    env: &Env,
    db: &D1Database,
    mut fresh: Fresh,
    step_id: &str,
    attempt: u32,
    summary_inputs: Option<store::SummaryInputs>,
) -> worker::Result<()> {
    let task_id = fresh.task.id.clone();
    let Some(step) = fresh.task.step(step_id) else { return Ok(()) };
    if !step.awaits_dispatch(attempt) || fresh.task.status != engine::TaskStatus::Running {
        worker::console_log!("built-in step {step_id} attempt {attempt}: nothing to do");
        return Ok(());
    }
    // Its read of the task's records, when it makes one, is one of this transition's round trips.
    if summary_inputs.is_none() {
        fresh.trips += 1;
    }
    let (report, summary) = super::records::run_builtin(env, db, &task_id, step, summary_inputs).await?;
    let how = Dispatch::Builtin { report: ReportRef::Inline(report.to_string()) };
    let command = Command::Dispatch { step_id: step_id.to_string(), attempt, how };
    let extras = vec![store::Extra::Summary(summary)];
    let guard = store::Guard::Version;
    let driven = drive_from(env, db, TaskKey::Id(&task_id), Some(fresh), &command, None, extras, &guard).await?;
    settled(driven, step_id, attempt)
}

/// What a dispatch of `attempt` of a step came to: an error when the task stayed busy (so that
/// its message is retried), otherwise logged when it changed nothing.
fn settled(driven: Driven, step_id: &str, attempt: u32) -> worker::Result<()> {
    match driven {
        Driven::Busy => {
            Err(worker::Error::RustError(format!("step {step_id} attempt {attempt}: the task stayed busy")))
        }
        Driven::Unchanged(why) => {
            worker::console_log!("step {step_id} attempt {attempt} dispatched without effect: {why}");
            Ok(())
        }
        Driven::Refused(refusal) => {
            worker::console_warn!("step {step_id} attempt {attempt} refused: {refusal:?}");
            Ok(())
        }
        _ => Ok(()),
    }
}

/// Handles a `step` message from the queue. Errors are returned so that the message is retried.
pub async fn dispatch(env: &Env, task_id: &str, step_id: &str, attempt: u32) -> worker::Result<()> {
    let db = env.d1(bindings::DB)?;
    let Some(read) = store::read_task(&db, task_id).await? else {
        worker::console_warn!("step message for unknown task {task_id}; dropped");
        return Ok(());
    };
    let task = store::task_state(&read.task, &read.steps, &read.attempts)?;
    let Some(step) = task.step(step_id) else {
        worker::console_warn!("step message for unknown step {step_id}; dropped");
        return Ok(());
    };
    // Owned: the guard borrows it while the task moves into the transition.
    let agent = step.agent.clone();
    let mut guard = store::Guard::Version;
    let how = match (step.runner, agent.as_deref()) {
        (Runner::Builtin, _) => {
            return dispatch_builtin(env, &db, Fresh { task, trips: 1 }, step_id, attempt, None).await
        }
        // A step that runs a child run is never sent; its child run's steps are.
        (Runner::ChildRun, _) => {
            worker::console_warn!("step message {step_id} is for a step that runs a child run; dropped");
            return Ok(());
        }
        (Runner::Agent, Some(agent)) => match registry::agent_for_dispatch(env, &db, agent).await? {
            // A webhook agent holds at most max_concurrency deliveries, like a pull agent its
            // leases; a step it has no room for waits, leasable, until one of them ends. A step
            // delivered again already holds its place.
            Some(found) if found.webhook && step.awaits_redelivery(attempt) => {
                Dispatch::Deliver { lease_id: platform::new_id(IdKind::Lease, platform::now())?, agent: found.timeouts }
            }
            Some(found) if found.webhook && store::leased_count(&db, agent).await? < found.max_concurrency => {
                guard = store::Guard::AgentBelow { agent, max_concurrency: found.max_concurrency };
                Dispatch::Deliver { lease_id: platform::new_id(IdKind::Lease, platform::now())?, agent: found.timeouts }
            }
            Some(found) => Dispatch::Leasable { agent: found.timeouts },
            // An agent that is not registered (any more) gets its steps when it is registered
            // again, within the default schedule timeout.
            None => Dispatch::Leasable { agent: registry::DEFAULT_TIMEOUTS },
        },
        (Runner::Agent, None) => Dispatch::Leasable { agent: registry::DEFAULT_TIMEOUTS },
    };
    let command = Command::Dispatch { step_id: step_id.to_string(), attempt, how: how.clone() };
    let fresh = Fresh { task, trips: 1 };
    let driven = drive_from(env, &db, TaskKey::Id(task_id), Some(fresh), &command, None, Vec::new(), &guard).await?;
    if let (Driven::Applied(_), Dispatch::Leasable { .. }, Some(agent)) = (&driven, &how, agent.as_deref()) {
        super::wakeup::wake(env, agent).await;
    }
    match (driven, &how) {
        (Driven::Applied(transition), Dispatch::Deliver { .. }) => {
            deliver(env, &db, task_id, step_id, &transition).await
        }
        (driven, _) => settled(driven, step_id, attempt),
    }
}

/// POSTs a step just leased for a webhook agent, then completes it from the answer (or leaves it
/// leased after a 202). Only the delivery's own lease can be completed this way. An error (D1 or
/// R2 failing before the answer is written) is returned, so that the queue retries the message
/// and the step is delivered again under the same lease and delivery id (see `core::engine`).
async fn deliver(
    env: &Env,
    db: &D1Database,
    task_id: &str,
    step_id: &str,
    transition: &Transition,
) -> worker::Result<()> {
    let Some(step) = transition.task.step(step_id) else { return Ok(()) };
    let (Some(agent), Some(lease_id)) = (step.agent.clone(), step.lease_id.clone()) else { return Ok(()) };
    let target = store::webhook_target(db, &agent).await?;
    let (Some(url), Some(secret)) =
        (target.as_ref().and_then(|t| t.webhook_url.clone()), target.as_ref().and_then(|t| t.webhook_secret.clone()))
    else {
        return complete_delivery(
            env,
            db,
            task_id,
            step_id,
            &agent,
            &lease_id,
            Answer::Failed("the agent has no webhook url".into()),
        )
        .await;
    };
    let Some(read) = store::read_for_delivery(db, task_id, step_id).await? else { return Ok(()) };
    let stored = serde_json::from_str::<Value>(&read.instructions).unwrap_or(Value::Null);
    let handout = brief::Handout {
        task_id,
        step,
        stored: &stored,
        task: task_brief(&read.task),
        agent: registry::agent_brief(env, db, &agent).await?,
        inputs: inputs_of(env, &step.depends_on, &read.reports).await?,
    };
    let body = json!({"step": hand_out(env, handout).await?}).to_string();
    let now = platform::now();
    let timestamp = now.as_millis() / 1000;
    let answer = match post_signed(&url, &secret, &lease_id, timestamp, &body).await {
        Ok((status, text)) => webhook::read_answer(status, &text),
        Err(reason) => Answer::Failed(reason),
    };
    complete_delivery(env, db, task_id, step_id, &agent, &lease_id, answer).await
}

/// POSTs `body` signed with the webhook headers; the status and text of the answer, or why
/// there was none.
pub async fn post_signed(
    url: &str,
    secret: &str,
    delivery: &str,
    timestamp: i64,
    body: &str,
) -> Result<(u16, String), String> {
    super::faults::check(super::faults::Point::Webhook)
        .map_err(|e| format!("the webhook could not be reached: {e}"))?;
    let headers = worker::Headers::new();
    let set = |name: &str, value: &str| headers.set(name, value).map_err(|e| e.to_string());
    set("content-type", "application/json")?;
    set(webhook::ID_HEADER, delivery)?;
    set(webhook::TIMESTAMP_HEADER, &timestamp.to_string())?;
    set(webhook::SIGNATURE_HEADER, &webhook::sign(secret, delivery, timestamp, body.as_bytes()))?;
    let mut init = worker::RequestInit::new();
    init.with_method(worker::Method::Post).with_headers(headers).with_body(Some(body.into()));
    let request = worker::Request::new_with_init(url, &init).map_err(|e| e.to_string())?;
    let controller = worker::AbortController::default();
    let signal = controller.signal();
    let fetch = worker::Fetch::Request(request);
    let sent = fetch.send_with_signal(&signal);
    let timeout = worker::Delay::from(Duration::from_millis(u64::from(WEBHOOK_TIMEOUT_MS)));
    futures_util::pin_mut!(sent);
    futures_util::pin_mut!(timeout);
    match futures_util::future::select(sent, timeout).await {
        futures_util::future::Either::Left((Ok(mut response), _)) => {
            let status = response.status_code();
            let text = response.text().await.unwrap_or_default();
            Ok((status, text))
        }
        futures_util::future::Either::Left((Err(err), _)) => Err(format!("the webhook could not be reached: {err}")),
        futures_util::future::Either::Right(_) => {
            controller.abort();
            Err(format!("the webhook did not answer within {WEBHOOK_TIMEOUT_MS} ms"))
        }
    }
}

async fn complete_delivery(
    env: &Env,
    db: &D1Database,
    task_id: &str,
    step_id: &str,
    agent: &str,
    lease_id: &str,
    answer: Answer,
) -> worker::Result<()> {
    let (mut succeeded, mut error, report, log, hash_source) = match answer {
        Answer::Later => return Ok(()),
        Answer::Failed(reason) => (false, Some(reason.clone()), None, None, reason),
        Answer::Complete(value) => {
            let text = value.to_string();
            let parsed = serde_json::from_value::<CompletionRequest>(value)
                .map_err(|e| e.to_string())
                .and_then(|r| r.validate().map_err(|e| e.message()));
            match parsed {
                Ok(checked) if checked.lease_id.as_deref().is_none_or(|l| l == lease_id) => {
                    (checked.outcome == Reported::Succeeded, checked.error, checked.report, checked.log, text)
                }
                Ok(_) => (false, Some("the webhook answered for another lease".into()), None, None, text),
                Err(reason) => {
                    (false, Some(format!("the webhook's answer is not a valid completion: {reason}")), None, None, text)
                }
            }
        }
    };
    // A selection the task cannot take fails the attempt, as an invalid answer does.
    let (selection, fresh) = match checked_selection(db, step_id, report.as_ref()).await {
        Ok(checked) => checked,
        Err(Failed::Client(refused)) if succeeded => {
            (succeeded, error) =
                (false, Some(format!("the webhook's answer is not a valid completion: {}", refused.message())));
            (None, None)
        }
        Err(Failed::Client(_)) => (None, None),
        Err(Failed::Fault(fault)) => return Err(worker::Error::RustError(fault)),
    };
    let completion = Completion {
        step_id: step_id.to_string(),
        lease_id: lease_id.to_string(),
        caller: Caller::Agent(agent.to_string()),
        succeeded,
        error,
        hash: sha256_hex(hash_source.as_bytes()),
        items: report.as_ref().and_then(report::items_of),
        report: report.map(|r| ReportRef::Inline(r.into_value().to_string())),
        selection,
    };
    let command = Command::Complete(completion);
    let guard = store::Guard::Version;
    let mut driven =
        drive_from(env, db, TaskKey::Id(task_id), fresh, &command, log.as_deref(), Vec::new(), &guard).await?;
    // Items the task cannot take fail the attempt, as an invalid answer does.
    if let (Driven::Refused(Refusal::Invalid(detail)), Command::Complete(completion)) = (&driven, command) {
        let error = format!(
            "the webhook's answer is not a valid completion: {} {}",
            detail.field.as_deref().unwrap_or("report"),
            detail.message
        );
        let failed = Completion { succeeded: false, error: Some(error), items: None, selection: None, ..completion };
        driven = drive(env, db, TaskKey::Id(task_id), &Command::Complete(failed), log.as_deref()).await?;
    }
    match driven {
        Driven::Applied(_) => deliver_waiting(env, db, agent).await,
        Driven::Refused(refusal) => worker::console_warn!("webhook completion of {step_id} refused: {refusal:?}"),
        Driven::Busy => {
            return Err(worker::Error::RustError(format!("webhook completion of {step_id}: the task stayed busy")))
        }
        Driven::Replay(_) | Driven::Unchanged(_) | Driven::NoSuchTask | Driven::Extended(_) => {}
    }
    Ok(())
}

/// Sends the step messages of the steps a webhook agent had no room for, oldest first, as many
/// as it has room for now; their dispatch delivers them (checking the room again). Called when
/// one of its deliveries ends, and by the sweep. A failure is logged: the sweep tries again.
pub async fn deliver_waiting(env: &Env, db: &D1Database, agent: &str) {
    let sent = async {
        let Some(found) = registry::agent_for_dispatch(env, db, agent).await? else { return Ok(0) };
        if !found.webhook {
            return Ok(0);
        }
        let room = found.max_concurrency - store::leased_count(db, agent).await?;
        if room <= 0 {
            return Ok(0);
        }
        let waiting = store::waiting_steps(db, agent, room).await?;
        for step in &waiting {
            let message = engine::Send { step_id: step.id.clone(), attempt: step.attempt, delay_seconds: 0 };
            send(env, &step.task_id, &[message]).await;
        }
        Ok::<usize, worker::Error>(waiting.len())
    };
    if let Err(err) = sent.await {
        worker::console_error!("delivering the waiting steps of {agent} failed (the sweep tries again): {err}");
    }
}

/// The queue gave up on a step's message: noted on the task; the sweep sends it again.
pub async fn dead_letter(env: &Env, task_id: &str, step_id: &str, attempt: u32) -> worker::Result<()> {
    let db = env.d1(bindings::DB)?;
    let command = Command::DeadLetter {
        step_id: step_id.to_string(),
        attempt,
        reason: "its queue message failed every delivery".into(),
    };
    match drive(env, &db, TaskKey::Id(task_id), &command, None).await? {
        Driven::Refused(refusal) => worker::console_warn!("dead letter for {step_id} refused: {refusal:?}"),
        Driven::Busy => {
            return Err(worker::Error::RustError(format!("dead letter for {step_id}: the task stayed busy")))
        }
        _ => {}
    }
    Ok(())
}

/// How long a message may be overdue before the sweep re-sends it: the var
/// `REDISPATCH_AFTER_SECONDS`, or a minute.
fn redispatch_after_ms(env: &Env) -> i64 {
    platform::text(env, bindings::REDISPATCH_AFTER_SECONDS)
        .and_then(|v| v.trim().parse::<i64>().ok())
        .filter(|s| (0..=86_400).contains(s))
        .map_or(REDISPATCH_AFTER_MS_DEFAULT, |s| s * 1000)
}

/// The cron sweep: expires leases whose heartbeats stopped and re-sends overdue messages, task
/// by task, `SWEEP_CONCURRENCY` tasks at a time, in rounds while rounds come back full. Two
/// sweeps at once are safe: each transition applies to the state it read, once.
pub async fn sweep(env: &Env) -> worker::Result<u32> {
    let db = env.d1(bindings::DB)?;
    let after = redispatch_after_ms(env);
    let command = Command::Sweep { redispatch_after_ms: after };
    let mut swept = 0;
    let started = platform::now();
    for _ in 0..SWEEP_ROUNDS_MAX {
        if platform::now().as_millis() - started.as_millis() > SWEEP_BUDGET_MS {
            break;
        }
        let tasks = store::tasks_to_sweep(&db, platform::now(), after, SWEEP_TASKS_MAX).await?;
        let mut changed = 0;
        for chunk in tasks.chunks(SWEEP_CONCURRENCY) {
            let drives = chunk.iter().map(|task_id| drive(env, &db, TaskKey::Id(task_id), &command, None));
            for (task_id, driven) in chunk.iter().zip(futures_util::future::join_all(drives).await) {
                match driven {
                    Ok(Driven::Applied(_)) => changed += 1,
                    Ok(_) => {}
                    // One task's failure does not stop the sweep of the others.
                    Err(err) => worker::console_error!("sweeping task {task_id} failed: {err}"),
                }
            }
        }
        swept += changed;
        // A round that was not full found everything due; one that changed nothing would find
        // the same tasks again.
        if tasks.len() < SWEEP_TASKS_MAX as usize || changed == 0 {
            break;
        }
    }
    // Deliveries the sweep ended (or that ended without an answer) made room.
    for agent in store::webhook_agents_waiting(&db).await? {
        deliver_waiting(env, &db, &agent).await;
    }
    Ok(swept)
}
