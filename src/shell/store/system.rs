//! System events (the installation's own history) and the cron plan's statements.

use serde::Deserialize;
use worker::{D1Database, D1PreparedStatement, Result};

use super::{int, trip, Statement};
use crate::core::base::limits::IDEMPOTENCY_KEYS_PRUNED_PER_TICK_MAX;
use crate::core::base::time::Timestamp;
use crate::core::engine::system::{CronPlan, SystemEvent};

/// The statement that records a system event unless one with the same dedupe key exists.
fn insert_system_event(db: &D1Database, event: &SystemEvent, now: Timestamp) -> Result<D1PreparedStatement> {
    db.statement(
        "INSERT INTO events (task_id, step_id, kind, data, dedupe_key, created_at)
         VALUES (NULL, NULL, ?1, ?2, ?3, ?4)
         ON CONFLICT (dedupe_key) DO NOTHING",
    )
    .bind(&[
        event.kind.into(),
        event.data.to_string().into(),
        event.dedupe_key.as_str().into(),
        int(now.as_millis()),
    ])
}

/// Records a system event unless one with the same dedupe key exists. Returns whether it was new.
pub async fn record_system_event(db: &D1Database, event: &SystemEvent, now: Timestamp) -> Result<bool> {
    trip()?;
    let result = insert_system_event(db, event, now)?.run().await?;
    let changes = result.meta()?.and_then(|m| m.changes).unwrap_or(0);
    Ok(changes > 0)
}

/// Records a cron tick, prunes old system events and forgets expired idempotency keys (oldest
/// first, a bounded number), in one transaction.
pub async fn run_cron_plan(db: &D1Database, plan: &CronPlan, now: Timestamp) -> Result<()> {
    trip()?;
    let insert = insert_system_event(db, &plan.tick, now)?;
    let prune = db
        .statement("DELETE FROM events WHERE task_id IS NULL AND created_at < ?1")
        .bind(&[int(plan.prune_before.as_millis())])?;
    let forget = db
        .statement(
            "DELETE FROM idempotency_keys WHERE rowid IN
               (SELECT rowid FROM idempotency_keys WHERE created_at < ?1 ORDER BY created_at LIMIT ?2)",
        )
        .bind(&[int(plan.forget_keys_before.as_millis()), int(i64::from(IDEMPOTENCY_KEYS_PRUNED_PER_TICK_MAX))])?;
    db.batch(vec![insert, prune, forget]).await?;
    Ok(())
}

#[derive(Debug, Deserialize)]
pub struct SystemEventRow {
    pub seq: i64,
    pub kind: String,
    pub data: String,
    pub created_at: i64,
}

/// One page of system events, oldest first.
pub async fn list_system_events(db: &D1Database, after_seq: i64, limit: u32) -> Result<Vec<SystemEventRow>> {
    trip()?;
    db.statement(
        "SELECT seq, kind, data, created_at FROM events
         WHERE task_id IS NULL AND seq > ?1
         ORDER BY seq
         LIMIT ?2",
    )
    .bind(&[int(after_seq), int(i64::from(limit))])?
    .all()
    .await?
    .results::<SystemEventRow>()
}
