//! Archiving finished tasks: which tasks are due, their rows for the document, the one batch
//! that removes them from D1 (adding their steps to the per-day metric totals), and the row an
//! archived task leaves behind.

use serde::Deserialize;
use serde_json::Value;
use worker::{D1Database, Result};

use super::records::{ENDED_AGENT_STEPS, STEP_USAGE};
use super::{int, trip, Statement};
use crate::core::base::time::Timestamp;
use crate::core::records::archive::{self, Document, DAY_MS};

/// A finished task the cron may archive, as it was when picked.
#[derive(Debug, Clone, Deserialize)]
pub struct ArchivableTask {
    pub id: String,
    pub version: i64,
    pub finished_at: i64,
}

/// Up to `limit` finished tasks that finished before `before`, longest finished first.
pub async fn tasks_to_archive(db: &D1Database, before: Timestamp, limit: u32) -> Result<Vec<ArchivableTask>> {
    trip()?;
    db.statement(
        "SELECT id, version, finished_at FROM tasks
         WHERE finished_at IS NOT NULL AND finished_at < ?1 AND status != 'running'
         ORDER BY finished_at LIMIT ?2",
    )
    .bind(&[int(before.as_millis()), int(i64::from(limit))])?
    .all()
    .await?
    .results()
}

/// A task's archive document, its rows read as D1 returns them in one round trip and stamped
/// `archived_at`; `None` when the task is not in D1.
pub async fn archive_document(db: &D1Database, task_id: &str, archived_at: Timestamp) -> Result<Option<Document>> {
    let statements = [
        "SELECT * FROM tasks WHERE id = ?1",
        "SELECT * FROM steps WHERE task_id = ?1 ORDER BY rowid",
        "SELECT * FROM attempts WHERE step_id IN (SELECT id FROM steps WHERE task_id = ?1) ORDER BY step_id, attempt",
        "SELECT * FROM events WHERE task_id = ?1 ORDER BY seq",
        "SELECT * FROM messages WHERE task_id = ?1 ORDER BY seq",
        "SELECT * FROM summaries WHERE task_id = ?1 ORDER BY written_at",
    ]
    .into_iter()
    .map(|sql| db.statement(sql).bind(&[task_id.into()]))
    .collect::<Result<Vec<_>>>()?;
    trip()?;
    let results = db.batch(statements).await?;
    let mut tables = results.iter().map(|r| r.results::<Value>()).collect::<Result<Vec<_>>>()?.into_iter();
    let mut next = || tables.next().unwrap_or_default();
    let Some(task) = next().into_iter().next() else { return Ok(None) };
    Ok(Some(Document {
        format: archive::FORMAT,
        archived_at: archived_at.to_rfc3339(),
        task,
        steps: next(),
        attempts: next(),
        events: next(),
        messages: next(),
        summaries: next(),
    }))
}

/// The highest `seq` among rows of a document, 0 for none.
fn last_seq(rows: &[Value]) -> i64 {
    rows.iter().filter_map(|row| row["seq"].as_i64()).max().unwrap_or(0)
}

/// Removes an archived task's rows from D1 in one transaction: its steps' figures go to the
/// per-day totals the metrics read, and a row records where its document is. False, with
/// nothing changed, when D1 no longer holds what `document` holds: the task changed (a retry
/// started it again, another cron run removed it) or an event or message about it came since.
pub async fn remove_archived(
    db: &D1Database,
    task: &ArchivableTask,
    document: &Document,
    object_key: &str,
    now: Timestamp,
) -> Result<bool> {
    let id = || -> Result<_> { Ok(vec![task.id.as_str().into()]) };
    let guard = db
        .statement(
            "INSERT INTO transition_guard (id, ok)
             VALUES (1, COALESCE((SELECT version = ?2 AND status != 'running' AND finished_at IS NOT NULL
                                  FROM tasks WHERE id = ?1), 0)
                        AND COALESCE((SELECT MAX(seq) FROM events WHERE task_id = ?1), 0) = ?3
                        AND COALESCE((SELECT MAX(seq) FROM messages WHERE task_id = ?1), 0) = ?4)
             ON CONFLICT (id) DO UPDATE SET ok = excluded.ok",
        )
        .bind(&[
            task.id.as_str().into(),
            int(task.version),
            int(last_seq(&document.events)),
            int(last_seq(&document.messages)),
        ])?;
    // The same steps, with the same figures, as `agent_aggregates` counts while they are in D1.
    let days = db
        .statement(format!(
            "INSERT INTO agent_days (day, agent, steps, succeeded, files_created, files_modified, lines_added,
                                     lines_removed, cost_usd, turns, input_tokens, output_tokens)
             SELECT finished_at - finished_at % ?2, agent, COUNT(*), SUM(status = 'succeeded'), SUM(files_created),
                    SUM(files_modified), SUM(lines_added), SUM(lines_removed), SUM(cost_usd), SUM(turns),
                    SUM(input_tokens), SUM(output_tokens)
             FROM (
               SELECT agent, status, finished_at, files_created, files_modified, lines_added, lines_removed,
                      {STEP_USAGE}
               FROM steps
               WHERE task_id = ?1 AND {ENDED_AGENT_STEPS}
             )
             WHERE true
             GROUP BY 1, 2
             ON CONFLICT (day, agent) DO UPDATE SET
               steps = steps + excluded.steps, succeeded = succeeded + excluded.succeeded,
               files_created = files_created + excluded.files_created,
               files_modified = files_modified + excluded.files_modified,
               lines_added = lines_added + excluded.lines_added, lines_removed = lines_removed + excluded.lines_removed,
               cost_usd = COALESCE(cost_usd + excluded.cost_usd, cost_usd, excluded.cost_usd),
               turns = COALESCE(turns + excluded.turns, turns, excluded.turns),
               input_tokens = COALESCE(input_tokens + excluded.input_tokens, input_tokens, excluded.input_tokens),
               output_tokens = COALESCE(output_tokens + excluded.output_tokens, output_tokens, excluded.output_tokens)"
        ))
        .bind(&[task.id.as_str().into(), int(DAY_MS)])?;
    let left = db
        .statement("INSERT INTO archived_tasks (id, object_key, finished_at, archived_at) VALUES (?1, ?2, ?3, ?4)")
        .bind(&[task.id.as_str().into(), object_key.into(), int(task.finished_at), int(now.as_millis())])?;
    let mut statements = vec![guard, days, left];
    for sql in [
        "DELETE FROM attempts WHERE step_id IN (SELECT id FROM steps WHERE task_id = ?1)",
        "DELETE FROM steps WHERE task_id = ?1",
        "DELETE FROM summaries WHERE task_id = ?1",
        "DELETE FROM events WHERE task_id = ?1",
        "DELETE FROM messages WHERE task_id = ?1",
        "DELETE FROM tasks WHERE id = ?1",
    ] {
        statements.push(db.statement(sql).bind(&id()?)?);
    }
    trip()?;
    match db.batch(statements).await {
        Ok(_) => Ok(true),
        Err(err) if err.to_string().contains("stale_state") => Ok(false),
        Err(err) => Err(err),
    }
}

/// Where an archived task's document is.
#[derive(Debug, Clone, Deserialize)]
pub struct ArchivedRow {
    pub object_key: String,
    pub archived_at: i64,
}

/// The archive row of a task no longer in D1, if it was archived.
pub async fn archived_task(db: &D1Database, task_id: &str) -> Result<Option<ArchivedRow>> {
    trip()?;
    db.statement("SELECT object_key, archived_at FROM archived_tasks WHERE id = ?1")
        .bind(&[task_id.into()])?
        .first(None)
        .await
}
