//! System events: what the queue consumers and the cron handler did, recorded in D1's `events`
//! table with no task. They let an operator (and the tests) see that the background paths run.
//!
//! Each event carries a dedupe key, and the store inserts it only once, so a redelivered queue
//! message or two overlapping cron runs record nothing twice.

use serde::Serialize;
use serde_json::{json, Value};

use crate::core::base::limits::{IDEMPOTENCY_KEY_RETENTION_MS, SYSTEM_EVENT_RETENTION_MS};
use crate::core::base::time::Timestamp;

/// One system event to record.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SystemEvent {
    /// Dotted lowercase name, e.g. `cron.tick`.
    pub kind: &'static str,
    pub data: Value,
    /// Unique per distinct happening; a second insert with the same key is ignored.
    pub dedupe_key: String,
}

/// What one run of the cron handler does: record its tick, prune old system events and forget
/// expired idempotency keys.
#[derive(Debug, Clone, PartialEq)]
pub struct CronPlan {
    pub tick: SystemEvent,
    /// System events created before this time are deleted.
    pub prune_before: Timestamp,
    /// Idempotency keys created before this time are forgotten, oldest first, at most
    /// `IDEMPOTENCY_KEYS_PRUNED_PER_TICK_MAX` of them.
    pub forget_keys_before: Timestamp,
}

/// Plans a cron run for the trigger `cron` scheduled at `scheduled` (the platform's time for the
/// run, identical for a retried or duplicated invocation, hence the dedupe key).
pub fn plan_cron(cron: &str, scheduled: Timestamp, now: Timestamp) -> CronPlan {
    CronPlan {
        tick: SystemEvent {
            kind: "cron.tick",
            data: json!({"cron": cron, "scheduled_time": scheduled.to_rfc3339()}),
            dedupe_key: format!("cron:{cron}:{}", scheduled.as_millis()),
        },
        prune_before: now.minus_millis(SYSTEM_EVENT_RETENTION_MS),
        forget_keys_before: now.minus_millis(IDEMPOTENCY_KEY_RETENTION_MS),
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
        let plan = plan_cron("* * * * *", at(1_705_314_600_000), at(1_705_314_600_250));
        assert_eq!(plan.tick.kind, "cron.tick");
        assert_eq!(plan.tick.dedupe_key, "cron:* * * * *:1705314600000");
        assert_eq!(plan.tick.data, json!({"cron": "* * * * *", "scheduled_time": "2024-01-15T10:30:00.000Z"}));
    }

    #[test]
    fn two_runs_for_the_same_schedule_share_a_dedupe_key() {
        let a = plan_cron("* * * * *", at(60_000), at(60_001));
        let b = plan_cron("* * * * *", at(60_000), at(60_900));
        assert_eq!(a.tick.dedupe_key, b.tick.dedupe_key);
    }

    #[test]
    fn a_cron_run_prunes_system_events_older_than_the_retention() {
        let now = at(SYSTEM_EVENT_RETENTION_MS + 5);
        assert_eq!(plan_cron("* * * * *", now, now).prune_before, at(5));
        assert_eq!(plan_cron("* * * * *", at(1), at(1)).prune_before, at(0));
    }

    #[test]
    fn a_cron_run_forgets_idempotency_keys_older_than_a_day() {
        let now = at(IDEMPOTENCY_KEY_RETENTION_MS + 7);
        assert_eq!(plan_cron("* * * * *", now, now).forget_keys_before, at(7));
    }
}
