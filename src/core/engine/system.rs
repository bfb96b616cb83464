//! System events: what the queue consumers and the cron handler did, recorded in D1's `events`
//! table with no task. They let an operator (and the tests) see that the background paths run.
//!
//! Each event carries a dedupe key, and the store inserts it only once, so a redelivered queue
//! message or two overlapping cron runs record nothing twice.

use serde::Serialize;
use serde_json::{json, Value};

use crate::core::base::limits::{IDEMPOTENCY_KEY_RETENTION_MS, SYSTEM_EVENT_RETENTION_MS};
use crate::core::base::time::Timestamp;
use crate::core::records::archive;

/// One system event to record.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SystemEvent {
    /// Dotted lowercase name, e.g. `cron.tick`.
    pub kind: &'static str,
    pub data: Value,
    /// Unique per distinct happening; a second insert with the same key is ignored.
    pub dedupe_key: String,
}

/// What one run of the cron handler does: record its tick, prune old system events, forget
/// expired idempotency keys and archive tasks that finished longer ago than the retention.
#[derive(Debug, Clone, PartialEq)]
pub struct CronPlan {
    pub tick: SystemEvent,
    /// System events created before this time are deleted.
    pub prune_before: Timestamp,
    /// Idempotency keys created before this time are forgotten, oldest first, at most
    /// `IDEMPOTENCY_KEYS_PRUNED_PER_TICK_MAX` of them.
    pub forget_keys_before: Timestamp,
    /// Tasks that finished before this time are archived to R2 (see `records::archive`).
    pub archive_finished_before: Timestamp,
}

/// Plans a cron run for the trigger `cron` scheduled at `scheduled` (the platform's time for the
/// run, identical for a retried or duplicated invocation, hence the dedupe key), keeping finished
/// tasks `retention_days` in D1.
pub fn plan_cron(cron: &str, scheduled: Timestamp, now: Timestamp, retention_days: u32) -> CronPlan {
    CronPlan {
        tick: SystemEvent {
            kind: "cron.tick",
            data: json!({"cron": cron, "scheduled_time": scheduled.to_rfc3339()}),
            dedupe_key: format!("cron:{cron}:{}", scheduled.as_millis()),
        },
        prune_before: now.minus_millis(SYSTEM_EVENT_RETENTION_MS),
        forget_keys_before: now.minus_millis(IDEMPOTENCY_KEY_RETENTION_MS),
        archive_finished_before: archive::archive_before(now, retention_days),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: i64) -> Timestamp {
        Timestamp::from_millis(ms).unwrap()
    }

    #[test]
    fn a_cron_run_records_its_tick_keyed_by_its_scheduled_time() {
        let plan = plan_cron("* * * * *", at(1_705_314_600_000), at(1_705_314_600_250), 30);
        assert_eq!(plan.tick.kind, "cron.tick");
        assert_eq!(plan.tick.dedupe_key, "cron:* * * * *:1705314600000");
        assert_eq!(plan.tick.data, json!({"cron": "* * * * *", "scheduled_time": "2024-01-15T10:30:00.000Z"}));
    }

    #[test]
    fn two_runs_for_the_same_schedule_share_a_dedupe_key() {
        let a = plan_cron("* * * * *", at(60_000), at(60_001), 30);
        let b = plan_cron("* * * * *", at(60_000), at(60_900), 30);
        assert_eq!(a.tick.dedupe_key, b.tick.dedupe_key);
    }

    #[test]
    fn a_cron_run_prunes_system_events_older_than_the_retention() {
        let now = at(SYSTEM_EVENT_RETENTION_MS + 5);
        assert_eq!(plan_cron("* * * * *", now, now, 30).prune_before, at(5));
        assert_eq!(plan_cron("* * * * *", at(1), at(1), 30).prune_before, at(0));
    }

    #[test]
    fn a_cron_run_forgets_idempotency_keys_older_than_a_day() {
        let now = at(IDEMPOTENCY_KEY_RETENTION_MS + 7);
        assert_eq!(plan_cron("* * * * *", now, now, 30).forget_keys_before, at(7));
    }

    #[test]
    fn a_cron_run_archives_tasks_that_finished_longer_ago_than_the_retention() {
        let now = at(10 * archive::DAY_MS + 3);
        assert_eq!(plan_cron("* * * * *", now, now, 7).archive_finished_before, at(3 * archive::DAY_MS + 3));
    }
}
