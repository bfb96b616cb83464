//! The task states an isolate has just read or written, kept so that the task's next
//! transition (most often the completion of a step this isolate has just leased) is decided
//! without reading the task again.
//!
//! A kept state may be stale: another isolate, the cron or a heartbeat elsewhere may have
//! changed the task since. That is safe because a transition decided on a kept state is written
//! under the same guard as one decided on a fresh read (the version it read, the expiries and
//! leasable steps it read), and one whose guard fails is decided again on a fresh read.
//! Staleness costs a round trip, never a wrong write.
//!
//! Must never be the only copy of anything: D1 is the record, and a state here is a guess at it.

use std::collections::BTreeMap;

use super::{Extension, Scope, Task, Transition};
use crate::core::base::time::Timestamp;

pub struct RecentStates {
    max_age_ms: i64,
    capacity: usize,
    tasks: BTreeMap<String, (Timestamp, Task)>,
}

impl RecentStates {
    pub const fn new(max_age_ms: i64, capacity: usize) -> RecentStates {
        RecentStates { max_age_ms, capacity, tasks: BTreeMap::new() }
    }

    /// The state kept for the task, unless it is older than the keeping age at `now`.
    pub fn of_task(&self, task_id: &str, now: Timestamp) -> Option<Task> {
        let (at, task) = self.tasks.get(task_id)?;
        self.young(*at, now).then(|| task.clone())
    }

    /// The state kept for the task the step belongs to.
    pub fn of_step(&self, step_id: &str, now: Timestamp) -> Option<Task> {
        let (at, task) = self.tasks.values().find(|(_, task)| task.step(step_id).is_some())?;
        self.young(*at, now).then(|| task.clone())
    }

    fn young(&self, at: Timestamp, now: Timestamp) -> bool {
        (0..self.max_age_ms).contains(&(now.as_millis() - at.as_millis()))
    }

    /// A state read from the store. A kept state of the same version stays: it may carry a
    /// lease this isolate wrote after the read began.
    pub fn read(&mut self, task: &Task, now: Timestamp) {
        match self.tasks.get(&task.id) {
            Some((_, kept)) if kept.version >= task.version => {}
            _ => self.keep(task.clone(), now),
        }
    }

    /// The state a transition decided on `before` has just written. A lease wrote its step
    /// alone, so only that step of the kept state changes, and only if the kept state had the
    /// step as the lease found it; a task-wide transition's state replaces an older one.
    pub fn wrote(&mut self, before: &Task, transition: &Transition, now: Timestamp) {
        let after = &transition.task;
        match &transition.scope {
            Scope::Task => match self.tasks.get(&after.id) {
                Some((_, kept)) if kept.version >= after.version => {}
                _ => self.keep(after.clone(), now),
            },
            Scope::Step(step_id) => {
                let (Some(found), Some(leased)) = (before.step(step_id), after.step(step_id)) else {
                    self.forget(&after.id);
                    return;
                };
                match self.tasks.get_mut(&after.id) {
                    Some((at, kept)) if kept.step(step_id) == Some(found) => {
                        if let Some(step) = kept.steps.iter_mut().find(|s| s.id == *step_id) {
                            *step = leased.clone();
                        }
                        *at = now;
                    }
                    Some((_, kept)) if kept.version >= after.version => self.forget(&after.id),
                    _ => self.keep(after.clone(), now),
                }
            }
        }
    }

    /// A heartbeat moved a lease's expiry without a transition.
    pub fn extended(&mut self, extension: &Extension) {
        let Some((_, kept)) = self.tasks.get_mut(&extension.task_id) else { return };
        let Some(step) = kept.steps.iter_mut().find(|s| s.id == extension.step_id) else { return };
        if step.lease_id.as_deref() == Some(extension.lease_id.as_str()) && step.attempt == extension.attempt {
            step.lease_expires_at = Some(extension.expires_at);
        }
    }

    /// Drops the task's state: a write decided on it lost its guard, so it is known stale.
    pub fn forget(&mut self, task_id: &str) {
        self.tasks.remove(task_id);
    }

    fn keep(&mut self, task: Task, now: Timestamp) {
        if self.tasks.len() >= self.capacity && !self.tasks.contains_key(&task.id) {
            let oldest = self.tasks.iter().min_by_key(|(_, (at, _))| *at).map(|(id, _)| id.clone());
            if let Some(id) = oldest {
                self.tasks.remove(&id);
            }
        }
        self.tasks.insert(task.id.clone(), (now, task));
    }
}
