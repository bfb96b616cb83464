//! Retention: the cron moves tasks that finished longer ago than `TASK_RETENTION_DAYS` out of
//! D1 into one R2 document each, and reads an archived task back from its document.
//!
//! A task is written to R2 first and removed from D1 only once the write succeeded, in one batch
//! guarded by what was archived (the task's version, its last event and message): a failed write
//! leaves it in D1 for the next run, and a task that changed meanwhile is not removed. This
//! module never changes a task that is still running.

use worker::{Env, HttpMetadata};

use super::{platform, store};
use crate::core::base::bindings;
use crate::core::base::limits::{ARCHIVE_CONCURRENCY, TASKS_ARCHIVED_PER_TICK_MAX};
use crate::core::base::time::Timestamp;
use crate::core::records::archive::{self, Document};

/// The retention in force, warning once per isolate about a var that is not usable.
pub fn retention_days(env: &Env) -> u32 {
    static WARNED: std::sync::Once = std::sync::Once::new();
    let (days, warning) = archive::retention_days(platform::text(env, bindings::TASK_RETENTION_DAYS).as_deref());
    if let Some(warning) = warning {
        WARNED.call_once(|| worker::console_warn!("{warning}"));
    }
    days
}

/// Archives up to `TASKS_ARCHIVED_PER_TICK_MAX` tasks that finished before `before`, longest
/// finished first, `ARCHIVE_CONCURRENCY` at a time. Returns how many were archived; a task that
/// failed is logged and left in D1 for the next run.
pub async fn run(env: &Env, before: Timestamp) -> worker::Result<u32> {
    let db = env.d1(bindings::DB)?;
    let due = store::tasks_to_archive(&db, before, TASKS_ARCHIVED_PER_TICK_MAX).await?;
    let mut archived = 0;
    for chunk in due.chunks(ARCHIVE_CONCURRENCY) {
        let runs = chunk.iter().map(|task| archive_one(env, &db, task));
        for (task, result) in chunk.iter().zip(futures_util::future::join_all(runs).await) {
            match result {
                Ok(true) => archived += 1,
                Ok(false) => {}
                Err(err) => worker::console_error!("archiving task {} failed (it stays in D1): {err}", task.id),
            }
        }
    }
    Ok(archived)
}

async fn archive_one(env: &Env, db: &worker::D1Database, task: &store::ArchivableTask) -> worker::Result<bool> {
    let now = platform::now();
    let Some(document) = store::archive_document(db, &task.id, now).await? else { return Ok(false) };
    let key = archive::object_key(&task.id);
    super::faults::check(super::faults::Point::R2Write)?;
    env.bucket(bindings::ARTIFACTS)?
        .put(&key, document.to_json())
        .http_metadata(HttpMetadata {
            content_type: Some("application/json; charset=utf-8".into()),
            ..HttpMetadata::default()
        })
        .execute()
        .await?;
    // A task changed since it was read keeps its rows; the next run writes its document again.
    store::remove_archived(db, task, &document, &key, now).await
}

/// An archived task's document, or `None` when the task was never archived. A document that is
/// missing or unreadable is a fault: D1 says the task was archived there.
pub async fn read(env: &Env, db: &worker::D1Database, task_id: &str) -> worker::Result<Option<Document>> {
    let Some(row) = store::archived_task(db, task_id).await? else { return Ok(None) };
    let Some(text) = super::artifacts::read_artifact(env, &row.object_key).await? else {
        return Err(worker::Error::RustError(format!(
            "task {task_id} was archived at {} to {}, and that object is missing from R2",
            Timestamp::saturating_from_millis(row.archived_at).to_rfc3339(),
            row.object_key
        )));
    };
    Document::parse(&text)
        .map(Some)
        .map_err(|err| worker::Error::RustError(format!("the archive {} of task {task_id}: {err}", row.object_key)))
}
