//! The execution engine: how a task's steps move from `pending` to a terminal status, whatever
//! order the platform delivers things in. This module is the state machine; beside it are what
//! feeds it: the task, heartbeat and completion request bodies ([`task_api`]), submission
//! planning ([`plan`]), queue messages and their consumers' decisions ([`queue`]), the states an
//! isolate keeps between transitions ([`recent`]), system events and the cron plan ([`system`]),
//! the wake-up protocol of waiting leases ([`wakeup`]), and webhook delivery signatures
//! ([`webhook`]).
//!
//! The engine uses every other group of the core and none uses it. Like all of the core it does no
//! I/O: it decides, and the shell performs.
//!
//! Everything that can happen to a task is a [`Command`]: a queue message arriving, an agent
//! leasing, heartbeating or completing, the cron sweep, a cancellation, a manual retry, a dead
//! letter. [`apply`] takes the task as last read ([`Task`]), a command, the time and a random
//! number, and returns either the new state with the events to record and the queue messages to
//! send, or a refusal. It never does I/O: the shell writes the new state in one D1 batch guarded
//! by the version it read, so two transitions decided on the same state cannot both apply; the
//! loser reads again and decides again. The state a transition is decided on may be any number of
//! changes behind the store (the shell decides first on the state its isolate kept, [`recent`]):
//! the guard, not the freshness of the state, is what keeps a decision from applying to a task
//! that moved on.
//!
//! Step statuses:
//!
//! ```text
//! pending ──► queued ──► leased ──► succeeded
//!    │          ▲          │
//!    │          │          ▼
//!    │          └──────  failed  ──► dead ──(manual retry)──► queued
//!    ▼
//! skipped          any non-terminal status ──(cancel)──► cancelled
//!
//! a step that runs a child run (runner `child_run`):
//! pending ──► running ──► succeeded        running ◄──► dead (while one of its steps is)
//! ```
//!
//! - `queued`: its queue message is on the way (`ready_at` unset) or it has been dispatched and
//!   waits for its pull agent to lease it (`ready_at` set). A pull agent's step queued with no
//!   delay is dispatched in the change that queued it ([`leasable_at_once`]), without a message.
//! - `failed`: the last attempt failed and a retry message is on its way after a backoff.
//! - `dead`: the attempts ran out; the task is `failed` until the step is retried by hand.
//! - `running`: a step that `EXECUTE`s another file, whose child run is under way. Its child
//!   run's steps (keys under its own, `parent` naming it) start only once it has started; it
//!   succeeds when they are all done, dies when one of them dies (the task fails), runs again
//!   when none is dead any more, and a retry of it retries its dead steps. Skipped, it skips them.
//!   A `FOR each` loop runs its child run once per item the step before it reported
//!   (`report.items`): that step's completion adds each later item's copy of the child run's
//!   steps ([`LoopItem`]), and an empty list skips the loop.
//! - `skipped`: when the task was planned, or when its dependencies were met and its [`Gate`]
//!   said so: a condition on earlier steps held (or did not), or routing left its agent out
//!   (by the analysis step's `report.selection`, else by the analysis made at submission).
//!
//! A queue message names a step and the attempt it is for; a message for any other attempt, or
//! for a step already dispatched, is a duplicate and changes nothing. The one exception is a
//! webhook agent's step that is still leased for the delivery the message started, unanswered:
//! its message comes back only when the delivery failed inside the Worker (D1 or R2 failed
//! before the answer was written), and it delivers the step again under the same lease, so
//! the agent sees the same delivery id and no attempt is spent on the Worker's own fault. For
//! the same reason a message the queue gave up on kills nothing: it is noted, and the sweep
//! sends the step's message again.
//!
//! Timeouts, as durable-execution engines have them, are enforced by the sweep, each with its
//! reason in the history (`step.timed_out`): how long a step may wait to be leased
//! (`schedule`, counted from when its attempt was dispatched; the step then dies, or is skipped
//! if optional), how long an attempt may run (`attempt`; the attempt fails and is retried while
//! attempts remain), and how long a lease lasts between heartbeats (the lease expires). Each is
//! the agent's ([`AgentTimeouts`]) unless the step's `<step>` tag sets its own
//! ([`StepTimeouts`]).
//!
//! Heartbeats are not transitions: a heartbeat's decision ([`Outcome::Extended`]) is written
//! with a guard on the step's lease alone and leaves the task's version as it is, so the
//! heartbeats of a wide parallel group never make the group's completions lose their races. The
//! one decision that depends on a lease's expiry, the sweep expiring it, carries the expiry it
//! read ([`Transition::expiries_read`]) and applies only if no heartbeat has moved it since.
//!
//! Leases change one step and leave the version too ([`Scope::Step`]): a lease applies while its
//! step is still leasable at the attempt it read and the task is not cancelled, so the steps of
//! a parallel group are leased side by side instead of one per version. A transition that
//! changes a step it read as leasable carries that step's attempt ([`Transition::leasable_read`])
//! and applies only if no lease has taken the step since.
//!
//! A lease is the step's until somebody else is given the step: an answer that comes after
//! the lease expired is accepted as long as no newer attempt has started, even after the sweep
//! ended the attempt (the late answer then replaces the expiry on that attempt).

pub mod brief;
pub mod plan;
pub mod queue;
pub mod recent;
pub mod system;
pub mod task_api;
pub mod wakeup;
pub mod webhook;

#[cfg(test)]
mod simulation;
#[cfg(test)]
mod tests;

use serde::Serialize;
use serde_json::{json, Value};

use crate::core::base::ids::{self, IdKind, ID_RANDOM_BYTES};
use crate::core::base::limits::{
    LOOP_ITEMS_MAX, LOOP_ITEM_BYTES_MAX, RETRY_BACKOFF_BASE_SECONDS, RETRY_BACKOFF_CAP_SECONDS, TASK_STEPS_MAX,
};
use crate::core::base::time::Timestamp;
use crate::core::edge::error::{ApiError, Detail};
use crate::core::records::report::ReportedSelection;
use crate::core::registry::child_runs::{is_under, item_key};
pub use crate::core::registry::workflow::StepTimeouts;
use crate::core::registry::workflow::{CheckIs, ConditionWhen, StepCondition};

/// A task's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskStatus {
    Running,
    Succeeded,
    /// A step is dead; other branches may still finish, and a manual retry resumes the task.
    Failed,
    Cancelled,
}

/// A step's status; see the module documentation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StepStatus {
    Pending,
    Queued,
    Leased,
    Failed,
    Succeeded,
    Dead,
    Skipped,
    Cancelled,
    /// A step that runs another file: its child run is under way.
    Running,
}

/// Who runs a step: an agent (pull or webhook, known only at dispatch), the Worker itself, or
/// the steps of its child run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Runner {
    Agent,
    Builtin,
    ChildRun,
}

/// How one attempt of a step ended, or that it is still running.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AttemptStatus {
    Running,
    Succeeded,
    Failed,
    /// The lease ran out without a heartbeat.
    Expired,
    /// The attempt ran longer than its timeout.
    TimedOut,
    Cancelled,
}

macro_rules! text_enum {
    ($name:ident { $($variant:ident = $text:literal),+ $(,)? }) => {
        impl $name {
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
            pub fn parse(text: &str) -> Option<$name> {
                match text { $($text => Some($name::$variant),)+ _ => None }
            }
        }
    };
}

text_enum!(TaskStatus { Running = "running", Succeeded = "succeeded", Failed = "failed", Cancelled = "cancelled" });
text_enum!(StepStatus {
    Pending = "pending",
    Queued = "queued",
    Leased = "leased",
    Failed = "failed",
    Succeeded = "succeeded",
    Dead = "dead",
    Skipped = "skipped",
    Cancelled = "cancelled",
    Running = "running",
});
text_enum!(Runner { Agent = "agent", Builtin = "builtin", ChildRun = "child_run" });
text_enum!(AttemptStatus {
    Running = "running",
    Succeeded = "succeeded",
    Failed = "failed",
    Expired = "expired",
    TimedOut = "timed_out",
    Cancelled = "cancelled",
});

impl StepStatus {
    /// Whether steps that depend on this one may start.
    pub fn satisfies_dependents(self) -> bool {
        matches!(self, StepStatus::Succeeded | StepStatus::Skipped)
    }

    /// Whether the step will not move again by itself (a dead step moves only by a manual retry).
    pub fn is_settled(self) -> bool {
        matches!(self, StepStatus::Succeeded | StepStatus::Skipped | StepStatus::Cancelled | StepStatus::Dead)
    }
}

/// One try of a step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    pub number: u32,
    pub agent: Option<String>,
    pub lease_id: Option<String>,
    pub status: AttemptStatus,
    pub started_at: Timestamp,
    pub finished_at: Option<Timestamp>,
    pub error: Option<String>,
    /// A hash of the completion request, so that the same completion sent again is answered as
    /// the first time and a different one is refused.
    pub completion_hash: Option<String>,
    /// The response the completion was answered with (JSON).
    pub response: Option<String>,
}

/// One step of a task's run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub id: String,
    pub key: String,
    pub name: String,
    pub runner: Runner,
    pub agent: Option<String>,
    pub status: StepStatus,
    /// Keys of the steps this one waits for.
    pub depends_on: Vec<String>,
    /// Attempts started so far.
    pub attempt: u32,
    pub attempts_max: u32,
    /// Attempts one drive may use; a manual retry grants this many more.
    pub attempts_budget: u32,
    pub lease_id: Option<String>,
    pub lease_expires_at: Option<Timestamp>,
    /// When the current queue message was sent, and when it is due (after a retry's backoff).
    pub queued_at: Option<Timestamp>,
    pub due_at: Option<Timestamp>,
    /// When the step was dispatched and became leasable.
    pub ready_at: Option<Timestamp>,
    pub started_at: Option<Timestamp>,
    pub finished_at: Option<Timestamp>,
    pub skip_reason: Option<String>,
    pub error: Option<String>,
    pub attempts: Vec<Attempt>,
    /// Whether the workflow marks the step optional: skipped, not dead, when nobody leases it.
    pub optional: bool,
    /// The step's own timeouts from its instruction file.
    pub timeouts: StepTimeouts,
    /// When the sweep gives up on the dispatched step if nobody has leased it (schedule timeout).
    pub schedule_deadline_at: Option<Timestamp>,
    /// When the sweep ends the running attempt if it has not finished (attempt timeout).
    pub attempt_deadline_at: Option<Timestamp>,
    /// What is decided about the step when its dependencies are met: its conditions, and for an
    /// optional step of an agent routing may assign, whether it is needed.
    pub gate: Option<Gate>,
    /// The fields of the step's successful report that say something (see [`report_fields`]),
    /// for conditions of later steps; `None` before it succeeds.
    pub report_fields: Option<Vec<String>>,
    /// For a step of a child run: the key of the step that runs it.
    pub parent: Option<String>,
    /// For a step that runs another file (runner `child_run`): which file, at which version.
    pub child_run: Option<ChildRun>,
}

/// The file a step runs as its child run, at the version pinned when the task was submitted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct ChildRun {
    pub workflow: String,
    pub version: i64,
    /// What the file's `FOR each ...:` loops over, as written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub each: Option<String>,
    /// For a loop: the key of the step whose `report.items` it loops over. The child run then
    /// runs once per item; when that step reports no `items`, once, its agents told of the loop.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub items_from: Option<String>,
    /// How many items the loop runs for, once they were reported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub items: Option<usize>,
}

/// What is decided about a step once it is ready, before it is queued.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Gate {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub routing: Option<StepRouting>,
    /// The step's conditions that switchyard evaluates (on earlier steps' outcomes and reports).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<StepCondition>,
}

/// How an optional step of an agent routing may assign is decided, once its dependencies are
/// met: by the analysis step's selection when it reported one (`report.selection`), otherwise by
/// the analysis made at submission.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct StepRouting {
    /// Why the submission's analysis leaves the step out; `None` when it needs the step.
    pub planned_skip: Option<String>,
}

impl Step {
    /// Whether a queue message for `attempt` finds the step still leased for the webhook
    /// delivery that message started, unanswered (see the module documentation).
    pub fn awaits_redelivery(&self, attempt: u32) -> bool {
        self.status == StepStatus::Leased
            && self.attempt == attempt
            && self.attempts.last().is_some_and(|a| a.status == AttemptStatus::Running && a.completion_hash.is_none())
    }

    /// Whether the step waits for its pull agent to lease it: dispatched (`ready_at` set) and
    /// still queued. The lease guard (`Scope::Step`) and `Transition::leasable_read` are about
    /// this state, and the store's SQL checks the same columns.
    pub fn is_leasable(&self) -> bool {
        self.status == StepStatus::Queued && self.ready_at.is_some()
    }

    /// Puts the lease `leased` (this step as a lease left it) on this step as it is now: what a
    /// lease writes, its status, attempt, lease, deadlines and new attempt, and nothing else,
    /// since a lease does not move the task's version and the rest may have changed since it
    /// was read (a late answer of the attempt before, say). The store's lease write sets the
    /// same columns.
    pub fn take_lease(&mut self, leased: &Step) {
        self.status = leased.status;
        self.attempt = leased.attempt;
        self.lease_id = leased.lease_id.clone();
        self.lease_expires_at = leased.lease_expires_at;
        self.schedule_deadline_at = leased.schedule_deadline_at;
        self.attempt_deadline_at = leased.attempt_deadline_at;
        self.started_at = leased.started_at;
        if let Some(attempt) = leased.attempts.last() {
            self.attempts.retain(|a| a.number != attempt.number);
            self.attempts.push(attempt.clone());
        }
    }

    /// Whether a queue message for `attempt` would dispatch this step now: it waits for its
    /// message (not yet made leasable) and the message is for its next attempt.
    pub fn awaits_dispatch(&self, attempt: u32) -> bool {
        let waiting = matches!(self.status, StepStatus::Queued | StepStatus::Failed) && self.ready_at.is_none();
        waiting && self.attempt + 1 == attempt
    }
}

/// A task and its steps, as read in one go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Task {
    pub id: String,
    pub status: TaskStatus,
    /// Incremented by every transition but a lease; a transition applies only to the version
    /// it read (a lease, only to its step as read: see [`Scope`]).
    pub version: i64,
    pub finished_at: Option<Timestamp>,
    pub steps: Vec<Step>,
    /// The agents the task's analysis step said it needs, once it has.
    pub selection: Option<ReportedSelection>,
}

impl Task {
    pub fn step(&self, step_id: &str) -> Option<&Step> {
        self.steps.iter().find(|s| s.id == step_id)
    }

    fn index(&self, step_id: &str) -> Result<usize, Refusal> {
        self.steps.iter().position(|s| s.id == step_id).ok_or(Refusal::UnknownStep)
    }

    /// Whether the step may start: the steps it depends on are done and, in a child run, the
    /// step that runs it has started.
    fn dependencies_met(&self, step: &Step) -> bool {
        let parent_started = step
            .parent
            .as_ref()
            .is_none_or(|key| self.steps.iter().find(|s| &s.key == key).is_none_or(|s| s.started_at.is_some()));
        parent_started
            && step
                .depends_on
                .iter()
                .all(|key| self.steps.iter().find(|s| &s.key == key).is_none_or(|s| s.status.satisfies_dependents()))
    }

    /// The indices of the steps of the child run that `key` runs.
    pub fn children(&self, key: &str) -> Vec<usize> {
        (0..self.steps.len()).filter(|&i| self.steps[i].parent.as_deref() == Some(key)).collect()
    }
}

/// An agent's timeouts as registered: how long its steps may wait to be leased, how long an
/// attempt may run, and how long a lease lasts between heartbeats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AgentTimeouts {
    pub schedule_ms: i64,
    pub attempt_ms: i64,
    pub heartbeat_ms: i64,
}

impl AgentTimeouts {
    /// These timeouts with the step's own in place of any it sets.
    pub fn for_step(self, step: &Step) -> AgentTimeouts {
        AgentTimeouts {
            schedule_ms: step.timeouts.schedule_ms.unwrap_or(self.schedule_ms),
            attempt_ms: step.timeouts.attempt_ms.unwrap_or(self.attempt_ms),
            heartbeat_ms: step.timeouts.heartbeat_ms.unwrap_or(self.heartbeat_ms),
        }
    }
}

/// Who is calling: an admin may act for any agent; an agent only for its own steps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    Admin,
    Agent(String),
}

/// Where a report is kept: inline in D1, or in R2 under a key when it is large.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReportRef {
    Inline(String),
    Stored(String),
}

/// The top-level fields of a report that say something: not null, `""`, `[]`, `{}`, `false` or 0.
/// A report the engine cannot read (stored elsewhere) says nothing here.
pub fn report_fields(report: &ReportRef) -> Vec<String> {
    let ReportRef::Inline(text) = report else { return Vec::new() };
    let Ok(Value::Object(fields)) = serde_json::from_str::<Value>(text) else { return Vec::new() };
    let says_something = |value: &Value| match value {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|n| n != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
    };
    fields.iter().filter(|(_, v)| says_something(v)).map(|(k, _)| k.clone()).collect()
}

/// How a dispatched step reaches its runner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dispatch {
    /// A pull agent's step: it becomes leasable (its schedule timeout starts).
    Leasable { agent: AgentTimeouts },
    /// A webhook agent's step: leased on the agent's behalf for the delivery. A step of a webhook
    /// agent that had no room (it held `max_concurrency` leases) is made leasable instead, and
    /// delivered this way when a delivery of the agent ends.
    Deliver { lease_id: String, agent: AgentTimeouts },
    /// A built-in step the Worker has just run, with its output.
    Builtin { report: ReportRef },
}

/// A heartbeat's decision: the lease to extend and its new expiry. The shell writes it guarded
/// by the lease alone (the step is still leased under `lease_id`), without a task version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Extension {
    pub task_id: String,
    pub step_id: String,
    /// The attempt the lease is for.
    pub attempt: u32,
    pub lease_id: String,
    pub expires_at: Timestamp,
}

/// An agent's (or a webhook's) answer for a leased step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Completion {
    pub step_id: String,
    pub lease_id: String,
    pub caller: Caller,
    pub succeeded: bool,
    pub error: Option<String>,
    /// Hash of the request body: the same completion twice is answered as the first time.
    pub hash: String,
    pub report: Option<ReportRef>,
    /// The analysis step's `report.selection`, checked by the shell against the task.
    pub selection: Option<ReportedSelection>,
    /// The report's `items`, as sent: what a `FOR each` loop after the step runs its child run
    /// for (checked by the engine, since only the task says whether a loop reads them).
    pub items: Option<Value>,
}

/// Everything that can happen to a task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// A queue message for `attempt` of a step arrived.
    Dispatch {
        step_id: String,
        attempt: u32,
        how: Dispatch,
    },
    /// A pull agent leases a leasable step. `at_capacity`: it already holds its
    /// `max_concurrency` leases.
    Lease {
        step_id: String,
        caller: Caller,
        lease_id: String,
        agent: AgentTimeouts,
        at_capacity: bool,
    },
    Heartbeat {
        step_id: String,
        caller: Caller,
        lease_id: String,
        agent: AgentTimeouts,
    },
    Complete(Completion),
    /// The cron sweep: expire leases whose heartbeats stopped, re-send messages overdue by
    /// `redispatch_after_ms`.
    Sweep {
        redispatch_after_ms: i64,
    },
    Cancel,
    /// Re-drive a dead step.
    Retry {
        step_id: String,
    },
    /// The queue gave up on the message for `attempt` of a step (noted; the sweep re-sends it).
    DeadLetter {
        step_id: String,
        attempt: u32,
        reason: String,
    },
}

/// A queue message to send: dispatch `attempt` of a step after `delay_seconds`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Send {
    pub step_id: String,
    pub attempt: u32,
    pub delay_seconds: u32,
}

/// A task event to record.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub step_id: Option<String>,
    pub kind: &'static str,
    pub data: Value,
}

/// The result of a command that changed the task.
#[derive(Debug, Clone, PartialEq)]
pub struct Transition {
    pub task: Task,
    pub events: Vec<Event>,
    pub sends: Vec<Send>,
    /// Reports to write, by step id.
    pub reports: Vec<(String, ReportRef)>,
    /// The answer to a completion (also kept on its attempt).
    pub response: Option<String>,
    /// Leases this transition expired, by step id, with the expiry it read: the write applies
    /// only if each is still the step's expiry, because a heartbeat extends a lease without
    /// changing the task's version.
    pub expiries_read: Vec<(String, Timestamp)>,
    /// What the write is guarded by: the task's version, or for a lease its step alone.
    pub scope: Scope,
    /// The steps this transition changes that it read as leasable, with the attempt they were
    /// at: a lease takes such a step without changing the task's version, so the write applies
    /// only if each is still leasable at that attempt.
    pub leasable_read: Vec<(String, u32)>,
    /// The steps of `FOR each` loops this transition gave an item: the first item's are the
    /// planned steps, each later item's are new steps, copies of the first's (see [`LoopItem`]).
    pub loop_items: Vec<LoopItem>,
}

/// What a transition is decided on, and so what its write must find unchanged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// The whole task: the write moves the task's version and applies only at the version read.
    Task,
    /// A lease, which changes its step alone: the write leaves the task's version as it is and
    /// applies while the task is not cancelled and the step is as read (leasable, at the same
    /// attempt and ready time). Leases of a parallel group's steps then never make each other,
    /// or the group's completions, lose their races.
    Step(String),
}

/// A step of one item's run of a `FOR each` loop: the shell writes `item` into its
/// instructions (`loop`), and for a new step, copies the rest of them from `template_id`.
#[derive(Debug, Clone, PartialEq)]
pub struct LoopItem {
    pub step_id: String,
    /// The planned step (of the first item's run) this one is a copy of; itself for the first.
    pub template_id: String,
    /// What the shell writes into the step's instructions as `loop`: the step that loops, what
    /// it loops over, which item this is (from 1) of how many, and the item as reported.
    pub part: Value,
}

/// What a command did.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Changed(Box<Transition>),
    /// A heartbeat extends a lease (see the module documentation).
    Extended(Extension),
    /// Nothing to do: a duplicate or stale message, a sweep with nothing due, a second cancel.
    Unchanged(&'static str),
    /// The same completion again: here is the first answer.
    Replay(String),
}

/// Why a command was refused; the shell maps each to an HTTP status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    UnknownStep,
    /// The caller is an agent other than the step's.
    Forbidden,
    /// The lease is not (or no longer) the step's current lease.
    StaleLease(&'static str),
    /// The task was cancelled.
    Cancelled,
    /// The step cannot be leased now (not dispatched, already leased, finished).
    NotLeasable,
    /// The agent already holds as many leases as it may.
    AtCapacity,
    /// The command does not apply to the step or task in its status.
    WrongStatus(String),
    /// A completion whose content the task cannot take (a loop's `report.items` of the wrong
    /// shape, or too many); nothing changes.
    Invalid(Detail),
}

impl From<Refusal> for ApiError {
    fn from(refusal: Refusal) -> ApiError {
        match refusal {
            Refusal::UnknownStep => ApiError::NotFound { message: "no step with this id".into() },
            Refusal::Forbidden => ApiError::Forbidden { message: "this step belongs to another agent".into() },
            Refusal::StaleLease(why) => ApiError::StaleLease { message: why.into() },
            Refusal::Cancelled => ApiError::Cancelled { message: "the task was cancelled; stop working on it".into() },
            Refusal::NotLeasable => ApiError::Conflict { message: "the step is not waiting to be leased".into() },
            Refusal::AtCapacity => {
                ApiError::Conflict { message: "the agent already holds as many leases as it may".into() }
            }
            Refusal::WrongStatus(message) => ApiError::Conflict { message },
            Refusal::Invalid(detail) => ApiError::Invalid { details: vec![detail] },
        }
    }
}

/// The id of the copy of step `template` for item `number` of loop step `loop_key`: a step id of
/// the time of the copy whose random part is drawn from all three, so that no two copies (of
/// one loop, or of nested loops over the same planned step) and no planned step share an id.
fn copy_id(template: &str, loop_key: &str, number: usize, now: Timestamp) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(format!("{template} {loop_key}#{number}").as_bytes());
    let mut random = [0u8; ID_RANDOM_BYTES];
    random.copy_from_slice(&digest[..ID_RANDOM_BYTES]);
    ids::new_id(IdKind::Step, now, random)
}

/// Seconds before retry number `attempt` (the attempt that failed): exponential from
/// [`RETRY_BACKOFF_BASE_SECONDS`], capped, with "equal jitter" (between half and all of it) from
/// `random`, so that many steps failing together do not all come back at the same moment.
pub fn backoff_seconds(failed_attempt: u32, random: u32) -> u32 {
    let exponent = failed_attempt.saturating_sub(1).min(16);
    let full = RETRY_BACKOFF_BASE_SECONDS.saturating_mul(1 << exponent).min(RETRY_BACKOFF_CAP_SECONDS);
    let half = full / 2;
    (half + random % (full - half + 1)).max(1)
}

/// Applies `command` to `task` as read; see the module documentation.
pub fn apply(task: &Task, command: &Command, now: Timestamp, random: u32) -> Result<Outcome, Refusal> {
    let mut run = Run::new(task.clone(), Vec::new(), now, random);
    let mut response = None;
    match command {
        Command::Dispatch { step_id, attempt, how } => {
            if let Some(why) = run.dispatch(step_id, *attempt, how)? {
                return Ok(Outcome::Unchanged(why));
            }
        }
        Command::Lease { step_id, caller, lease_id, agent, at_capacity } => {
            run.lease(step_id, caller, lease_id, *agent, *at_capacity)?
        }
        Command::Heartbeat { step_id, caller, lease_id, agent } => {
            return run.heartbeat(step_id, caller, lease_id, *agent).map(Outcome::Extended);
        }
        Command::Complete(completion) => match run.complete(completion)? {
            Completed::Replay(first) => return Ok(Outcome::Replay(first)),
            Completed::Now(answer) => response = Some(answer),
        },
        Command::Sweep { redispatch_after_ms } => {
            if !run.sweep(*redispatch_after_ms) {
                return Ok(Outcome::Unchanged("nothing due"));
            }
        }
        Command::Cancel => {
            if let Some(why) = run.cancel()? {
                return Ok(Outcome::Unchanged(why));
            }
        }
        Command::Retry { step_id } => run.retry(step_id)?,
        Command::DeadLetter { step_id, attempt, reason } => {
            if let Some(why) = run.dead_letter(step_id, *attempt, reason)? {
                return Ok(Outcome::Unchanged(why));
            }
        }
    }
    let scope = match command {
        Command::Lease { step_id, .. } => Scope::Step(step_id.clone()),
        _ => Scope::Task,
    };
    let leasable_read = match scope {
        Scope::Task => {
            run.task.version += 1;
            leasable_changed(task, &run.task)
        }
        Scope::Step(_) => Vec::new(),
    };
    Ok(Outcome::Changed(Box::new(Transition {
        task: run.task,
        events: run.events,
        sends: run.sends,
        reports: run.reports,
        response,
        expiries_read: run.expiries_read,
        scope,
        leasable_read,
        loop_items: run.loop_items,
    })))
}

/// The steps leasable in `before` that `after` changes, with their attempt in `before`.
fn leasable_changed(before: &Task, after: &Task) -> Vec<(String, u32)> {
    before
        .steps
        .iter()
        .filter(|old| old.is_leasable())
        .filter(|old| after.step(&old.id).is_some_and(|new| new != *old))
        .map(|old| (old.id.clone(), old.attempt))
        .collect()
}

/// The step of `task` a lease by `agent` tries next: one of the agent's leasable steps that
/// became ready first, other than those `tried`, picked by `random` among them. Steps made
/// ready together (a parallel group's) are all first, so workers of one agent leasing at the
/// same moment mostly try different steps, and a lease that lost one of them can try another
/// from the same read: a lease is guarded by its step alone ([`Scope::Step`]).
pub fn lease_candidate<'a>(task: &'a Task, agent: &str, tried: &[String], random: u32) -> Option<&'a Step> {
    let leasable: Vec<&Step> = task
        .steps
        .iter()
        .filter(|s| s.agent.as_deref() == Some(agent) && s.is_leasable())
        .filter(|s| !tried.contains(&s.id))
        .collect();
    let first = leasable.iter().filter_map(|s| s.ready_at).min()?;
    let ties: Vec<&Step> = leasable.into_iter().filter(|s| s.ready_at == Some(first)).collect();
    ties.get(random as usize % ties.len()).copied()
}

/// The steps a transition (or a plan) has just queued with no delay for an agent, each with the
/// agent named, if any: the ones the shell may make leasable at once ([`leasable_at_once`]).
pub fn queued_for_agents<'a>(task: &'a Task, sends: &[Send]) -> Vec<(&'a str, Option<&'a str>)> {
    sends
        .iter()
        .filter(|send| send.delay_seconds == 0)
        .filter_map(|send| task.step(&send.step_id))
        .filter(|step| step.runner == Runner::Agent)
        .map(|step| (step.id.as_str(), step.agent.as_deref()))
        .collect()
}

/// Splits a written transition's sends: those for built-in steps queued with no delay, which
/// the shell runs at once in the same request, on the state it has just written, and the rest,
/// which go to the queue. A built-in step then costs no queue hop and no read of its task, and
/// the steps after it become ready a hop sooner. If running it fails, the step stays queued with
/// its due time, as when a message cannot be sent, and the sweep sends its message.
pub fn builtins_at_once(task: &Task, sends: Vec<Send>) -> (Vec<Send>, Vec<Send>) {
    sends.into_iter().partition(|send| {
        send.delay_seconds == 0 && task.step(&send.step_id).is_some_and(|step| step.runner == Runner::Builtin)
    })
}

/// Dispatches, within the change that queued them, the steps `pull` names (a pull agent's,
/// with its timeouts), as their queue message would: each becomes leasable and its message is
/// not sent. A waiting agent can then lease a step in the same moment its dependency completes,
/// and the consumer's read and write for it are saved. Webhook agents' steps, built-in steps
/// and delayed retries still go through the queue. Returns the steps made leasable.
pub fn leasable_at_once(
    task: Task,
    events: Vec<Event>,
    sends: Vec<Send>,
    now: Timestamp,
    pull: &[(String, AgentTimeouts)],
) -> (Task, Vec<Event>, Vec<Send>, Vec<String>) {
    let mut run = Run::new(task, events, now, 0);
    let mut leasable = Vec::new();
    for send in sends {
        let agent = pull.iter().find(|(step_id, _)| *step_id == send.step_id).map(|(_, agent)| *agent);
        let dispatched = match agent {
            Some(agent) if send.delay_seconds == 0 => {
                let how = Dispatch::Leasable { agent };
                matches!(run.dispatch(&send.step_id, send.attempt, &how), Ok(None))
            }
            _ => false,
        };
        if dispatched {
            leasable.push(send.step_id);
        } else {
            run.sends.push(send);
        }
    }
    (run.task, run.events, run.sends, leasable)
}

impl Transition {
    /// [`leasable_at_once`] for this transition.
    pub fn with_leasable_at_once(self, now: Timestamp, pull: &[(String, AgentTimeouts)]) -> (Transition, Vec<String>) {
        let (task, events, sends, leasable) = leasable_at_once(self.task, self.events, self.sends, now, pull);
        (Transition { task, events, sends, ..self }, leasable)
    }
}

enum Completed {
    Replay(String),
    Now(String),
}

/// The state a command is being applied to, and what it has produced so far.
struct Run {
    task: Task,
    events: Vec<Event>,
    sends: Vec<Send>,
    reports: Vec<(String, ReportRef)>,
    expiries_read: Vec<(String, Timestamp)>,
    loop_items: Vec<LoopItem>,
    now: Timestamp,
    random: u32,
}

impl Run {
    /// A run over `task` that has produced `events` so far and nothing else.
    fn new(task: Task, events: Vec<Event>, now: Timestamp, random: u32) -> Run {
        Run {
            task,
            events,
            sends: Vec::new(),
            reports: Vec::new(),
            expiries_read: Vec::new(),
            loop_items: Vec::new(),
            now,
            random,
        }
    }

    fn event(&mut self, index: Option<usize>, kind: &'static str, data: Value) {
        let step_id = index.map(|i| self.task.steps[i].id.clone());
        self.events.push(Event { step_id, kind, data });
    }

    fn step_event(&mut self, index: usize, kind: &'static str, mut data: Value) {
        let step = &self.task.steps[index];
        if let Some(fields) = data.as_object_mut() {
            fields.insert("key".into(), Value::from(step.key.clone()));
            fields.insert("attempt".into(), Value::from(step.attempt));
            if let Some(agent) = &step.agent {
                fields.insert("agent".into(), Value::from(agent.clone()));
            }
            if let Some(parent) = &step.parent {
                fields.insert("parent".into(), Value::from(parent.clone()));
            }
        }
        self.event(Some(index), kind, data);
    }

    fn check_caller(&self, index: usize, caller: &Caller) -> Result<(), Refusal> {
        match caller {
            Caller::Admin => Ok(()),
            Caller::Agent(name) if self.task.steps[index].agent.as_deref() == Some(name) => Ok(()),
            Caller::Agent(_) => Err(Refusal::Forbidden),
        }
    }

    /// Sends the message for the step's next attempt and marks it queued (or failed, for a
    /// retry waiting out its backoff).
    fn queue(&mut self, index: usize, status: StepStatus, delay_seconds: u32) {
        let now = self.now;
        let step = &mut self.task.steps[index];
        step.status = status;
        step.queued_at = Some(now);
        step.due_at = Some(now.plus_millis(i64::from(delay_seconds) * 1000));
        step.ready_at = None;
        step.lease_id = None;
        step.lease_expires_at = None;
        step.attempt_deadline_at = None;
        self.sends.push(Send { step_id: step.id.clone(), attempt: step.attempt + 1, delay_seconds });
    }

    /// Queues every pending step whose dependencies are met (starting child runs and finishing
    /// those whose steps are done, until nothing more moves), then settles the task's status.
    fn advance(&mut self) {
        if self.task.status == TaskStatus::Cancelled || self.task.status == TaskStatus::Succeeded {
            return;
        }
        // Each pass that changes something settles at least one step, so this ends.
        let mut moved = true;
        while moved {
            moved = false;
            for index in 0..self.task.steps.len() {
                moved |= self.skip_if_parent_skipped(index);
                let step = &self.task.steps[index];
                if step.status == StepStatus::Pending && self.task.dependencies_met(step) {
                    let runner = step.runner;
                    if !self.passes_conditions(index) || !self.route(index) {
                        moved = true;
                        continue;
                    }
                    if runner == Runner::ChildRun {
                        if !self.skip_if_no_items(index) {
                            self.start_child_run(index);
                        }
                        moved = true;
                        continue;
                    }
                    self.queue(index, StepStatus::Queued, 0);
                    self.step_event(index, "step.queued", json!({}));
                }
            }
            // Innermost first: a nested child run finishes before the one around it looks.
            for index in (0..self.task.steps.len()).rev() {
                moved |= self.finish_child_run(index);
            }
        }
        if self.task.steps.iter().all(|s| s.status.satisfies_dependents()) {
            self.task.status = TaskStatus::Succeeded;
            self.task.finished_at = Some(self.now);
            self.event(None, "task.succeeded", json!({}));
        }
    }

    /// Starts the child run of a step that runs another file: its steps may start now.
    fn start_child_run(&mut self, index: usize) {
        let now = self.now;
        let step = &mut self.task.steps[index];
        step.status = StepStatus::Running;
        step.started_at = Some(now);
        let data = json!({"child_run": step.child_run, "steps": self.task.children(&self.task.steps[index].key).len()});
        self.step_event(index, "step.child_run_started", data);
    }

    /// Ends a running child run whose steps are all done: its step succeeds, and the fields its
    /// steps reported are its own for later conditions. Returns whether it ended.
    fn finish_child_run(&mut self, index: usize) -> bool {
        let step = &self.task.steps[index];
        if step.runner != Runner::ChildRun || step.status != StepStatus::Running {
            return false;
        }
        let children = self.task.children(&step.key);
        if !children.iter().all(|&i| self.task.steps[i].status.satisfies_dependents()) {
            return false;
        }
        let mut fields: Vec<String> =
            children.iter().flat_map(|&i| self.task.steps[i].report_fields.clone().unwrap_or_default()).collect();
        fields.sort();
        fields.dedup();
        let skipped = children.iter().filter(|&&i| self.task.steps[i].status == StepStatus::Skipped).count();
        let now = self.now;
        let step = &mut self.task.steps[index];
        step.status = StepStatus::Succeeded;
        step.finished_at = Some(now);
        step.error = None;
        step.report_fields = Some(fields);
        let data = json!({"steps": children.len(), "skipped": skipped});
        self.step_event(index, "step.succeeded", data);
        true
    }

    /// Skips a loop step, now that it is ready, whose step listed no items; returns whether it did.
    fn skip_if_no_items(&mut self, index: usize) -> bool {
        let run = self.task.steps[index].child_run.as_ref();
        let Some(source) = run.filter(|r| r.items == Some(0)).and_then(|r| r.items_from.clone()) else { return false };
        let reason = format!("step {source} reported no items for this step's loop");
        self.skip_ready(index, reason, json!({"items": 0}));
        true
    }

    /// Skips a pending step whose child run will never start, because the step that runs it
    /// was skipped; returns whether it did.
    fn skip_if_parent_skipped(&mut self, index: usize) -> bool {
        let step = &self.task.steps[index];
        let Some(parent) = step.parent.as_ref().and_then(|key| self.task.steps.iter().find(|s| &s.key == key)) else {
            return false;
        };
        if step.status != StepStatus::Pending || parent.status != StepStatus::Skipped {
            return false;
        }
        let reason = format!("step {} runs this step's file and was skipped", parent.key);
        self.skip_ready(index, reason, json!({"decided_by": "parent"}));
        true
    }

    /// Keeps or skips a step that routing decides, now that it is ready; returns whether it is
    /// kept. Every other step is kept. The decision and who made it go into the history.
    fn route(&mut self, index: usize) -> bool {
        let step = &self.task.steps[index];
        let routing = step.gate.as_ref().and_then(|g| g.routing.as_ref());
        let (Some(routing), Some(agent)) = (routing, step.agent.clone()) else { return true };
        let (kept, decided_by, reason) = match &self.task.selection {
            Some(selection) => {
                let kept = selection.agents.contains(&agent);
                let chose =
                    if selection.agents.is_empty() { "no agent".to_string() } else { selection.agents.join(", ") };
                let why = selection.reason.as_deref().map_or_else(String::new, |r| format!(": {r}"));
                let verb = if kept { "selected" } else { "selected only" };
                (kept, "analysis_step", format!("the analysis step (step {}) {verb} {chose}{why}", selection.step))
            }
            None => match &routing.planned_skip {
                Some(reason) => (false, "submission", reason.clone()),
                None => (true, "submission", format!("the analysis at submission assigned {agent}")),
            },
        };
        self.step_event(index, "step.routed", json!({"kept": kept, "decided_by": decided_by, "reason": reason}));
        if !kept {
            self.skip_ready(index, reason, json!({"decided_by": decided_by}));
        }
        kept
    }

    /// Evaluates the step's conditions now that it is ready; skips it (and returns false) when
    /// one says so. Each evaluation is a `step.condition` event with its evidence.
    fn passes_conditions(&mut self, index: usize) -> bool {
        let conditions = self.task.steps[index].gate.as_ref().map(|g| g.conditions.clone()).unwrap_or_default();
        for condition in conditions {
            let Some((holds, evidence)) = self.evaluate(&condition) else { continue };
            let skip = match condition.when {
                ConditionWhen::SkipIf => holds,
                ConditionWhen::SkipUnless | ConditionWhen::RunIf => !holds,
            };
            let data = json!({"condition": condition.text, "holds": holds, "evidence": evidence, "skips": skip});
            self.step_event(index, "step.condition", data);
            if skip {
                let verdict = if holds { "holds" } else { "does not hold" };
                let reason = format!("the condition \"{}\" {verdict}: {evidence}", condition.text);
                self.skip_ready(index, reason, json!({"condition": condition.text, "evidence": evidence}));
                return false;
            }
        }
        true
    }

    /// Whether a condition holds, and the evidence; `None` when it cannot be told (the step it
    /// names is unknown).
    fn evaluate(&self, condition: &StepCondition) -> Option<(bool, String)> {
        let check = condition.check.as_ref()?;
        let step = self.task.steps.iter().find(|s| s.key == check.step)?;
        let field = check.field.as_deref().unwrap_or("");
        let reported = step.report_fields.as_ref().is_some_and(|fields| fields.iter().any(|f| f == field));
        let status = step.status.as_str();
        Some(match check.is {
            CheckIs::Succeeded => (step.status == StepStatus::Succeeded, format!("step {} is {status}", step.key)),
            CheckIs::Skipped => (step.status == StepStatus::Skipped, format!("step {} is {status}", step.key)),
            CheckIs::Reported | CheckIs::NotReported => {
                let evidence = if reported {
                    format!("step {}'s report has {field}", step.key)
                } else {
                    format!("step {}'s report has no {field}", step.key)
                };
                (reported == (check.is == CheckIs::Reported), evidence)
            }
        })
    }

    /// Skips a step that was about to be queued, with the reason.
    fn skip_ready(&mut self, index: usize, reason: String, mut data: Value) {
        let now = self.now;
        let step = &mut self.task.steps[index];
        step.status = StepStatus::Skipped;
        step.finished_at = Some(now);
        step.skip_reason = Some(reason.clone());
        if let Some(fields) = data.as_object_mut() {
            fields.insert("reason".into(), Value::from(reason));
        }
        self.step_event(index, "step.skipped", data);
    }

    /// Starts the step's next attempt under `lease_id`, for a lease of `lease_ms` and an attempt
    /// that may run `attempt_ms` (`None`: a built-in step, done at once).
    fn start_attempt(&mut self, index: usize, lease_id: &str, lease_ms: i64, attempt_ms: Option<i64>) {
        let now = self.now;
        let step = &mut self.task.steps[index];
        step.attempt += 1;
        step.status = StepStatus::Leased;
        step.lease_id = Some(lease_id.to_string());
        step.lease_expires_at = Some(now.plus_millis(lease_ms));
        step.schedule_deadline_at = None;
        step.attempt_deadline_at = attempt_ms.map(|ms| now.plus_millis(ms));
        step.started_at.get_or_insert(now);
        step.attempts.push(Attempt {
            number: step.attempt,
            agent: step.agent.clone(),
            lease_id: Some(lease_id.to_string()),
            status: AttemptStatus::Running,
            started_at: now,
            finished_at: None,
            error: None,
            completion_hash: None,
            response: None,
        });
    }

    fn finish_attempt(&mut self, index: usize, status: AttemptStatus, error: Option<String>) {
        let now = self.now;
        let step = &mut self.task.steps[index];
        if let Some(attempt) = step.attempts.iter_mut().rev().find(|a| a.status == AttemptStatus::Running) {
            attempt.status = status;
            attempt.finished_at = Some(now);
            attempt.error = error;
        }
    }

    fn succeed(&mut self, index: usize, report: Option<ReportRef>) {
        self.finish_attempt(index, AttemptStatus::Succeeded, None);
        self.mark_succeeded(index, report);
        self.advance();
    }

    /// The step's status once its attempt has succeeded (the attempt is already marked).
    fn mark_succeeded(&mut self, index: usize, report: Option<ReportRef>) {
        let now = self.now;
        let step = &mut self.task.steps[index];
        step.status = StepStatus::Succeeded;
        step.finished_at = Some(now);
        step.lease_id = None;
        step.lease_expires_at = None;
        step.ready_at = None;
        step.due_at = None;
        step.schedule_deadline_at = None;
        step.attempt_deadline_at = None;
        step.error = None;
        step.report_fields = Some(report.as_ref().map(report_fields).unwrap_or_default());
        if let Some(report) = report {
            self.reports.push((step.id.clone(), report));
        }
        self.step_event(index, "step.succeeded", json!({}));
    }

    /// Sets a failed task running again once none of its steps is dead. A step that runs a
    /// child run is dead while one of its steps is, and runs again when none is.
    fn resume_if_nothing_dead(&mut self) {
        for index in (0..self.task.steps.len()).rev() {
            let step = &self.task.steps[index];
            let revives = step.runner == Runner::ChildRun
                && step.status == StepStatus::Dead
                && !self.task.children(&step.key).iter().any(|&i| self.task.steps[i].status == StepStatus::Dead);
            if revives {
                let step = &mut self.task.steps[index];
                step.status = StepStatus::Running;
                step.finished_at = None;
                step.error = None;
                self.step_event(index, "step.child_run_resumed", json!({}));
            }
        }
        if self.task.status == TaskStatus::Failed && !self.task.steps.iter().any(|s| s.status == StepStatus::Dead) {
            self.task.status = TaskStatus::Running;
            self.task.finished_at = None;
            self.event(None, "task.resumed", json!({}));
        }
    }

    /// Ends the running attempt as failed: retried after a backoff while attempts remain, dead
    /// (and the task failed) when they are used up.
    fn fail(&mut self, index: usize, status: AttemptStatus, error: String) {
        self.finish_attempt(index, status, Some(error.clone()));
        let step = &mut self.task.steps[index];
        step.error = Some(error.clone());
        if step.attempt < step.attempts_max {
            let delay = backoff_seconds(step.attempt, self.random);
            self.queue(index, StepStatus::Failed, delay);
            self.step_event(index, "step.failed", json!({"error": error, "retry_in_seconds": delay}));
        } else {
            self.step_event(index, "step.failed", json!({"error": error, "retry_in_seconds": null}));
            self.kill(index, format!("attempts exhausted after {} tries: {error}", self.task.steps[index].attempt));
        }
    }

    fn kill(&mut self, index: usize, reason: String) {
        let now = self.now;
        let step = &mut self.task.steps[index];
        step.status = StepStatus::Dead;
        step.finished_at = Some(now);
        step.lease_id = None;
        step.lease_expires_at = None;
        step.ready_at = None;
        step.schedule_deadline_at = None;
        step.attempt_deadline_at = None;
        step.error = Some(reason.clone());
        self.step_event(index, "step.dead", json!({"reason": reason}));
        if self.task.status == TaskStatus::Running {
            self.task.status = TaskStatus::Failed;
            self.task.finished_at = Some(now);
            let key = self.task.steps[index].key.clone();
            self.event(None, "task.failed", json!({"step": key}));
        }
        let parent = self.task.steps[index].parent.clone();
        if let Some(parent) = parent.and_then(|key| self.task.steps.iter().position(|s| s.key == key)) {
            if self.task.steps[parent].status == StepStatus::Running {
                let key = self.task.steps[index].key.clone();
                self.kill(parent, format!("step {key} of its child run is dead"));
            }
        }
    }

    fn dispatch(&mut self, step_id: &str, attempt: u32, how: &Dispatch) -> Result<Option<&'static str>, Refusal> {
        let index = self.task.index(step_id)?;
        let step = &self.task.steps[index];
        if self.task.status == TaskStatus::Cancelled || self.task.status == TaskStatus::Succeeded {
            return Ok(Some("the task is finished"));
        }
        if let Dispatch::Deliver { agent, .. } = how {
            if step.awaits_redelivery(attempt) {
                let lease_id = step.lease_id.clone();
                let now = self.now;
                let lease_ms = webhook::delivery_lease_ms(agent.for_step(step).heartbeat_ms);
                self.task.steps[index].lease_expires_at = Some(now.plus_millis(lease_ms));
                self.step_event(index, "step.redelivered", json!({"lease_id": lease_id}));
                return Ok(None);
            }
        }
        // A webhook agent's step that waited, leasable, for the agent to have room.
        let waited_for_room = matches!(how, Dispatch::Deliver { .. })
            && step.status == StepStatus::Queued
            && step.ready_at.is_some()
            && step.attempt + 1 == attempt;
        if !step.awaits_dispatch(attempt) && !waited_for_room {
            return Ok(Some("duplicate or stale message"));
        }
        // A built-in step summarises a run that goes on; in a failed task it waits, queued, for
        // a manual retry to set the task running again, and the sweep re-sends it then.
        if step.runner == Runner::Builtin && self.task.status != TaskStatus::Running {
            return Ok(Some("a built-in step runs only while its task is running"));
        }
        match how {
            Dispatch::Leasable { agent } => {
                let now = self.now;
                let step = &mut self.task.steps[index];
                let schedule_ms = agent.for_step(step).schedule_ms;
                step.status = StepStatus::Queued;
                step.ready_at = Some(now);
                // A message sent again by the sweep does not restart the clock.
                step.schedule_deadline_at.get_or_insert(now.plus_millis(schedule_ms));
                self.step_event(index, "step.ready", json!({}));
            }
            Dispatch::Deliver { lease_id, agent } => {
                let timeouts = agent.for_step(&self.task.steps[index]);
                let lease_ms = webhook::delivery_lease_ms(timeouts.heartbeat_ms);
                self.start_attempt(index, lease_id, lease_ms, Some(timeouts.attempt_ms));
                self.step_event(index, "step.leased", json!({"lease_id": lease_id, "via": "webhook"}));
            }
            Dispatch::Builtin { report } => {
                self.start_attempt(index, "builtin", 0, None);
                self.step_event(index, "step.leased", json!({"via": "builtin"}));
                self.succeed(index, Some(report.clone()));
            }
        }
        Ok(None)
    }

    fn lease(
        &mut self,
        step_id: &str,
        caller: &Caller,
        lease_id: &str,
        agent: AgentTimeouts,
        at_capacity: bool,
    ) -> Result<(), Refusal> {
        let index = self.task.index(step_id)?;
        self.check_caller(index, caller)?;
        let step = &self.task.steps[index];
        if self.task.status == TaskStatus::Cancelled {
            return Err(Refusal::Cancelled);
        }
        if step.runner != Runner::Agent || !step.is_leasable() {
            return Err(Refusal::NotLeasable);
        }
        if at_capacity {
            return Err(Refusal::AtCapacity);
        }
        let timeouts = agent.for_step(step);
        self.start_attempt(index, lease_id, timeouts.heartbeat_ms, Some(timeouts.attempt_ms));
        let waited = self.task.steps[index].ready_at.map(|ready| self.now.as_millis() - ready.as_millis());
        self.step_event(
            index,
            "step.leased",
            json!({"lease_id": lease_id, "via": "lease", "ready_to_leased_ms": waited}),
        );
        Ok(())
    }

    /// Why `lease_id` is not the step's lease any more.
    fn lease_gone(&self, index: usize, lease_id: &str) -> Refusal {
        let step = &self.task.steps[index];
        if self.task.status == TaskStatus::Cancelled || step.status == StepStatus::Cancelled {
            return Refusal::Cancelled;
        }
        match step.attempts.iter().find(|a| a.lease_id.as_deref() == Some(lease_id)) {
            Some(attempt) if attempt.number < step.attempt => {
                Refusal::StaleLease("this lease expired and the step was given to a newer attempt")
            }
            Some(attempt) if attempt.status == AttemptStatus::Expired => Refusal::StaleLease("this lease has expired"),
            Some(attempt) if attempt.status == AttemptStatus::TimedOut => {
                Refusal::StaleLease("the attempt ran past its timeout and was ended")
            }
            _ => Refusal::StaleLease("this lease is not the step's current lease"),
        }
    }

    /// A heartbeat extends the step's lease while it is still the step's, even after its expiry
    /// if the sweep has not ended it yet.
    fn heartbeat(
        &self,
        step_id: &str,
        caller: &Caller,
        lease_id: &str,
        agent: AgentTimeouts,
    ) -> Result<Extension, Refusal> {
        let index = self.task.index(step_id)?;
        self.check_caller(index, caller)?;
        let step = &self.task.steps[index];
        let held = self.task.status != TaskStatus::Cancelled
            && step.status == StepStatus::Leased
            && step.lease_id.as_deref() == Some(lease_id);
        if !held {
            return Err(self.lease_gone(index, lease_id));
        }
        Ok(Extension {
            task_id: self.task.id.clone(),
            step_id: step_id.to_string(),
            attempt: step.attempt,
            lease_id: lease_id.to_string(),
            expires_at: self.now.plus_millis(agent.for_step(step).heartbeat_ms),
        })
    }

    fn complete(&mut self, completion: &Completion) -> Result<Completed, Refusal> {
        let index = self.task.index(&completion.step_id)?;
        self.check_caller(index, &completion.caller)?;
        let step = &self.task.steps[index];
        let answered = step
            .attempts
            .iter()
            .find(|a| a.lease_id.as_deref() == Some(completion.lease_id.as_str()) && a.completion_hash.is_some());
        if let Some(attempt) = answered {
            return if attempt.completion_hash.as_deref() == Some(completion.hash.as_str()) {
                Ok(Completed::Replay(attempt.response.clone().unwrap_or_default()))
            } else {
                Err(Refusal::StaleLease("this lease was already completed with a different body"))
            };
        }
        let attempt_number = step.attempt;
        let current = step.attempts.last().filter(|a| a.lease_id.as_deref() == Some(completion.lease_id.as_str()));
        let late = match current.map(|a| a.status) {
            _ if self.task.status == TaskStatus::Cancelled => return Err(Refusal::Cancelled),
            Some(AttemptStatus::Running) => false,
            Some(AttemptStatus::Expired) => true,
            _ => return Err(self.lease_gone(index, &completion.lease_id)),
        };
        let error = completion.error.clone().unwrap_or_else(|| "the agent reported failure".into());
        if completion.succeeded {
            self.take_items(index, completion.items.as_ref())?;
        }
        if late {
            self.accept_late(index, completion, error);
        } else if completion.succeeded {
            self.take_selection(index, completion);
            self.succeed(index, completion.report.clone());
        } else {
            if let Some(report) = &completion.report {
                self.reports.push((completion.step_id.clone(), report.clone()));
            }
            self.fail(index, AttemptStatus::Failed, error);
        }
        let step = &self.task.steps[index];
        let response = json!({
            "step_id": step.id,
            "task_id": self.task.id,
            "attempt": attempt_number,
            "outcome": if completion.succeeded { "succeeded" } else { "failed" },
            "late": late,
            "status": step.status,
            "task_status": self.task.status,
        })
        .to_string();
        let step = &mut self.task.steps[index];
        if let Some(attempt) = step.attempts.iter_mut().find(|a| a.number == attempt_number) {
            attempt.completion_hash = Some(completion.hash.clone());
            attempt.response = Some(response.clone());
        }
        Ok(Completed::Now(response))
    }

    /// Keeps the analysis step's selection of a successful completion, for the steps routing
    /// has yet to decide.
    fn take_selection(&mut self, index: usize, completion: &Completion) {
        let Some(selection) = &completion.selection else { return };
        self.task.selection = Some(selection.clone());
        let data = json!({"agents": selection.agents, "task_type": selection.task_type, "reason": selection.reason});
        self.step_event(index, "task.selection_reported", data);
    }

    /// Gives the `FOR each` loops over step `index`'s items their items, from its successful
    /// completion: a loop with none is skipped; with n, its child run runs n times, one item
    /// after the other (see [`Run::expand_loop`]). A step no loop reads from keeps `items` as any
    /// other report field; a completion without them leaves its loops to run once.
    fn take_items(&mut self, index: usize, items: Option<&Value>) -> Result<(), Refusal> {
        let key = &self.task.steps[index].key;
        let loops: Vec<usize> = (0..self.task.steps.len())
            .filter(|&i| {
                let step = &self.task.steps[i];
                let run = step.child_run.as_ref();
                step.status == StepStatus::Pending
                    && run.is_some_and(|r| r.items_from.as_ref() == Some(key) && r.items.is_none())
            })
            .collect();
        // `"items": null` says as much as no `items`.
        let Some(items) = items.filter(|v| !loops.is_empty() && !v.is_null()) else { return Ok(()) };
        let key = key.clone();
        let invalid = |why: String| Refusal::Invalid(Detail::field("report.items", why));
        let Some(list) = items.as_array() else {
            return Err(invalid("must be a list of what the loop after this step runs for".into()));
        };
        if list.len() > LOOP_ITEMS_MAX {
            return Err(invalid(format!("at most {LOOP_ITEMS_MAX} items, found {}", list.len())));
        }
        if let Some(at) = list.iter().position(|item| item.to_string().len() > LOOP_ITEM_BYTES_MAX) {
            return Err(invalid(format!("item {at} is larger than {LOOP_ITEM_BYTES_MAX} bytes as JSON")));
        }
        let loops: Vec<(usize, Vec<usize>)> = loops.into_iter().map(|l| (l, self.descendants(l))).collect();
        let copies: usize = loops.iter().map(|(_, under)| under.len() * list.len().saturating_sub(1)).sum();
        if self.task.steps.len() + copies > TASK_STEPS_MAX {
            return Err(invalid(format!(
                "{} items would make the task {} steps, more than {TASK_STEPS_MAX}",
                list.len(),
                self.task.steps.len() + copies
            )));
        }
        for (l, under) in loops {
            self.expand_loop(l, &under, &key, list);
        }
        Ok(())
    }

    /// The indices of every step under step `index`'s child run, nested ones included.
    fn descendants(&self, index: usize) -> Vec<usize> {
        let key = &self.task.steps[index].key;
        (0..self.task.steps.len()).filter(|&i| is_under(&self.task.steps[i].key, key)).collect()
    }

    /// Runs the child run of loop step `index` (its steps are `under`) once per item: the planned
    /// steps are the first item's; each later item's are copies keyed by [`item_key`] (`5#3.2`:
    /// step 5.2 for item 3), whose first steps wait for every first step of the item before, so
    /// items run in turn as Agent OS's `WAIT for task completion` says. With no items, the loop
    /// step is skipped when it is ready ([`Run::advance`]).
    fn expand_loop(&mut self, index: usize, under: &[usize], source: &str, items: &[Value]) {
        let loop_key = self.task.steps[index].key.clone();
        let each = self.task.steps[index].child_run.as_ref().and_then(|r| r.each.clone());
        if let Some(run) = self.task.steps[index].child_run.as_mut() {
            run.items = Some(items.len());
        }
        let data = json!({"from": source, "items": items.len(), "each": each});
        self.step_event(index, "step.loop_items", data);
        if items.is_empty() {
            return;
        }
        let template: Vec<Step> = under.iter().map(|&i| self.task.steps[i].clone()).collect();
        let part = |number: usize, item: &Value| json!({"step": loop_key, "each": each, "item": item, "number": number, "of": items.len()});
        for step in &template {
            let part = part(1, &items[0]);
            self.loop_items.push(LoopItem { step_id: step.id.clone(), template_id: step.id.clone(), part });
        }
        let first_steps = |steps: &[Step]| -> Vec<String> {
            steps.iter().filter(|s| s.parent.as_deref() == Some(loop_key.as_str())).map(|s| s.key.clone()).collect()
        };
        let mut before = first_steps(&template);
        for (offset, item) in items.iter().enumerate().skip(1) {
            let number = offset + 1;
            let rename = |key: &str| item_key(&loop_key, number, key).unwrap_or_else(|| key.to_string());
            let mut copies = Vec::with_capacity(template.len());
            for step in &template {
                let mut copy = step.clone();
                copy.id = copy_id(&step.id, &loop_key, number, self.now);
                copy.key = rename(&step.key);
                copy.parent = step.parent.as_deref().map(rename);
                copy.depends_on = step.depends_on.iter().map(|k| rename(k)).collect();
                if step.parent.as_deref() == Some(loop_key.as_str()) {
                    copy.depends_on.extend(before.iter().cloned());
                }
                for check in copy.gate.iter_mut().flat_map(|g| g.conditions.iter_mut()).filter_map(|c| c.check.as_mut())
                {
                    check.step = rename(&check.step);
                }
                if let Some(from) = copy.child_run.as_mut().and_then(|r| r.items_from.as_mut()) {
                    *from = rename(from);
                }
                let part = part(number, item);
                self.loop_items.push(LoopItem { step_id: copy.id.clone(), template_id: step.id.clone(), part });
                copies.push(copy);
            }
            before = first_steps(&copies);
            self.task.steps.extend(copies);
        }
    }

    /// An answer for the step's newest attempt, which the sweep ended when its lease expired.
    /// A success is the step's success (a retry waiting for its backoff is dropped, and a step
    /// that died of the expiry lives again); a failure only replaces the expiry on the attempt,
    /// since the expiry already counted as the attempt's failure.
    fn accept_late(&mut self, index: usize, completion: &Completion, error: String) {
        let now = self.now;
        let step = &mut self.task.steps[index];
        // `complete` found this attempt; a step without one has nothing to accept.
        let Some(attempt) = step.attempts.last_mut() else { return };
        attempt.finished_at = Some(now);
        if completion.succeeded {
            attempt.status = AttemptStatus::Succeeded;
            attempt.error = None;
        } else {
            attempt.status = AttemptStatus::Failed;
            attempt.error = Some(error.clone());
            if step.status != StepStatus::Dead {
                step.error = Some(error);
            }
        }
        let outcome = if completion.succeeded { "succeeded" } else { "failed" };
        self.step_event(index, "step.late_answer", json!({"outcome": outcome, "lease_id": completion.lease_id}));
        if completion.succeeded {
            self.take_selection(index, completion);
            self.mark_succeeded(index, completion.report.clone());
            self.resume_if_nothing_dead();
            self.advance();
        } else if let Some(report) = &completion.report {
            self.reports.push((completion.step_id.clone(), report.clone()));
        }
    }

    /// Returns whether anything changed.
    fn sweep(&mut self, redispatch_after_ms: i64) -> bool {
        if self.task.status == TaskStatus::Cancelled || self.task.status == TaskStatus::Succeeded {
            return false;
        }
        let mut changed = false;
        let mut settled = false;
        for index in 0..self.task.steps.len() {
            let step = &self.task.steps[index];
            let now = self.now;
            let leased = step.status == StepStatus::Leased;
            let timed_out = leased && step.attempt_deadline_at.is_some_and(|d| d <= now);
            let waiting = matches!(step.status, StepStatus::Queued | StepStatus::Failed);
            let unclaimed = waiting && step.schedule_deadline_at.is_some_and(|d| d <= now);
            if timed_out {
                let started = step.attempts.last().map_or(now, |a| a.started_at);
                let allowed = step.attempt_deadline_at.map_or(0, |d| d.as_millis() - started.as_millis());
                self.step_event(index, "step.timed_out", json!({"timeout": "attempt", "timeout_ms": allowed}));
                let reason = format!("the attempt ran longer than its timeout of {} s", allowed / 1000);
                self.fail(index, AttemptStatus::TimedOut, reason);
                changed = true;
                continue;
            }
            if unclaimed {
                let since = step.ready_at.or(step.due_at).unwrap_or(now);
                let waited = now.as_millis() - since.as_millis();
                self.step_event(index, "step.timed_out", json!({"timeout": "schedule", "waited_ms": waited}));
                let reason = format!("no agent leased it within its schedule timeout ({} s waited)", waited / 1000);
                self.give_up_unclaimed(index, reason);
                changed = true;
                settled = true;
                continue;
            }
            let expired = leased && step.lease_expires_at.is_some_and(|e| e <= now);
            let overdue = matches!(step.status, StepStatus::Queued | StepStatus::Failed)
                && step.ready_at.is_none()
                && step.due_at.is_some_and(|due| due.plus_millis(redispatch_after_ms) <= self.now)
                && (step.runner != Runner::Builtin || self.task.status == TaskStatus::Running);
            if expired {
                if let Some(expiry) = step.lease_expires_at {
                    self.expiries_read.push((step.id.clone(), expiry));
                }
                self.step_event(index, "step.lease_expired", json!({}));
                self.fail(index, AttemptStatus::Expired, "the lease expired without a heartbeat".into());
                changed = true;
            } else if overdue {
                let status = step.status;
                self.queue(index, status, 0);
                self.step_event(index, "step.redispatched", json!({}));
                changed = true;
            }
        }
        if settled {
            self.advance();
        }
        changed
    }

    /// A step nobody leased before its schedule timeout: skipped if the workflow marks it
    /// optional, dead otherwise.
    fn give_up_unclaimed(&mut self, index: usize, reason: String) {
        if !self.task.steps[index].optional {
            self.kill(index, reason);
            return;
        }
        let now = self.now;
        let step = &mut self.task.steps[index];
        step.status = StepStatus::Skipped;
        step.skip_reason = Some(reason.clone());
        step.finished_at = Some(now);
        step.ready_at = None;
        step.due_at = None;
        step.schedule_deadline_at = None;
        self.step_event(index, "step.skipped", json!({"reason": reason}));
    }

    fn cancel(&mut self) -> Result<Option<&'static str>, Refusal> {
        match self.task.status {
            TaskStatus::Cancelled => return Ok(Some("already cancelled")),
            TaskStatus::Succeeded => return Err(Refusal::WrongStatus("the task has already succeeded".into())),
            TaskStatus::Running | TaskStatus::Failed => {}
        }
        for index in 0..self.task.steps.len() {
            if self.task.steps[index].status.is_settled() {
                continue;
            }
            self.finish_attempt(index, AttemptStatus::Cancelled, Some("the task was cancelled".into()));
            let now = self.now;
            let step = &mut self.task.steps[index];
            step.status = StepStatus::Cancelled;
            step.finished_at = Some(now);
            step.lease_id = None;
            step.lease_expires_at = None;
            self.step_event(index, "step.cancelled", json!({}));
        }
        self.task.status = TaskStatus::Cancelled;
        self.task.finished_at = Some(self.now);
        self.event(None, "task.cancelled", json!({}));
        Ok(None)
    }

    fn retry(&mut self, step_id: &str) -> Result<(), Refusal> {
        let index = self.task.index(step_id)?;
        if self.task.status == TaskStatus::Cancelled {
            return Err(Refusal::Cancelled);
        }
        let step = &self.task.steps[index];
        if step.status != StepStatus::Dead {
            return Err(Refusal::WrongStatus(format!(
                "only a dead step can be retried; this one is {}",
                step.status.as_str()
            )));
        }
        self.retry_dead(index);
        self.resume_if_nothing_dead();
        self.advance();
        Ok(())
    }

    /// Queues a dead step again with a fresh budget of attempts; for a step that runs a child
    /// run, every dead step of the child run.
    fn retry_dead(&mut self, index: usize) {
        if self.task.steps[index].runner == Runner::ChildRun {
            for child in self.task.children(&self.task.steps[index].key) {
                if self.task.steps[child].status == StepStatus::Dead {
                    self.retry_dead(child);
                }
            }
            return;
        }
        let step = &mut self.task.steps[index];
        step.attempts_max = step.attempt + step.attempts_budget;
        step.finished_at = None;
        self.queue(index, StepStatus::Queued, 0);
        self.step_event(index, "step.retried", json!({"attempts_max": self.task.steps[index].attempts_max}));
    }

    fn dead_letter(&mut self, step_id: &str, attempt: u32, reason: &str) -> Result<Option<&'static str>, Refusal> {
        let index = self.task.index(step_id)?;
        let step = &self.task.steps[index];
        let waiting = matches!(step.status, StepStatus::Queued | StepStatus::Failed) && step.ready_at.is_none();
        if !waiting || step.attempt + 1 != attempt || self.task.status == TaskStatus::Cancelled {
            return Ok(Some("the step has moved on since this message was sent"));
        }
        // The Worker failed to handle the message, not the agent: no attempt is spent, and the
        // sweep sends the message again once it is overdue.
        self.step_event(index, "step.message_dead_lettered", json!({"reason": reason}));
        Ok(None)
    }
}

/// Checks what must hold of any task at any time; the simulation runs it after every event.
pub fn check_invariants(task: &Task) -> Result<(), String> {
    let keys: std::collections::BTreeSet<&str> = task.steps.iter().map(|s| s.key.as_str()).collect();
    let ids: std::collections::BTreeSet<&str> = task.steps.iter().map(|s| s.id.as_str()).collect();
    if keys.len() != task.steps.len() || ids.len() != task.steps.len() {
        return Err("two steps share a key or an id".into());
    }
    if task.steps.len() > TASK_STEPS_MAX {
        return Err(format!("{} steps, more than {TASK_STEPS_MAX}", task.steps.len()));
    }
    for step in &task.steps {
        let here = |what: &str| format!("step {} ({}): {what}", step.key, step.status.as_str());
        let started = !step.attempts.is_empty();
        if started && !task.dependencies_met(step) {
            return Err(here("started before its dependencies succeeded"));
        }
        if step.attempt > step.attempts_max {
            return Err(here(&format!("attempt {} is over the limit {}", step.attempt, step.attempts_max)));
        }
        if step.attempts.len() != step.attempt as usize {
            return Err(here("attempt count and attempt records disagree"));
        }
        let running = step.attempts.iter().filter(|a| a.status == AttemptStatus::Running).count();
        let leased = step.status == StepStatus::Leased;
        if running != usize::from(leased) || leased != step.lease_id.is_some() {
            return Err(here("a lease must match exactly one running attempt"));
        }
        let child_run = step.runner == Runner::ChildRun;
        if child_run != (step.child_run.is_some()) || (step.status == StepStatus::Running && !child_run) {
            return Err(here("only a step that runs a child run has one, and only it is running"));
        }
        if child_run && started {
            return Err(here("a step that runs a child run has no attempts of its own"));
        }
        if child_run && step.status == StepStatus::Succeeded {
            let children = task.children(&step.key);
            if !children.iter().all(|&i| task.steps[i].status.satisfies_dependents()) {
                return Err(here("succeeded before the steps of its child run"));
            }
        }
        if step.status == StepStatus::Succeeded
            && !child_run
            && step.attempts.last().map(|a| a.status) != Some(AttemptStatus::Succeeded)
        {
            return Err(here("succeeded without a succeeded attempt"));
        }
        let succeeded = step.attempts.iter().filter(|a| a.status == AttemptStatus::Succeeded).count();
        if succeeded > 1 || (succeeded == 1 && step.status != StepStatus::Succeeded) {
            return Err(here("a step has at most one succeeded attempt, and then it has succeeded"));
        }
    }
    if task.status == TaskStatus::Succeeded && !task.steps.iter().all(|s| s.status.satisfies_dependents()) {
        return Err("the task succeeded with steps unfinished".into());
    }
    if task.status == TaskStatus::Cancelled && task.steps.iter().any(|s| !s.status.is_settled()) {
        return Err("the task is cancelled with steps still moving".into());
    }
    Ok(())
}
