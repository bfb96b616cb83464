//! Archived tasks: the one JSON document a finished task becomes in R2 when the cron moves it
//! out of D1 (`tasks/{id}/archive.json`), and how long a finished task stays in D1 before that.
//!
//! The document holds the task's rows as D1 returned them: the task, its steps, its attempts
//! (with their reports, inline or by R2 key), its events, its messages and its summaries. It
//! therefore reads back into the same view as a task still in D1. Logs, large reports and
//! summaries' renderings are R2 objects already and stay where they are.
//!
//! This module only names, writes and reads documents; it never touches storage.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::core::base::time::Timestamp;

/// The document's layout. A reader refuses a document of another format rather than show a
/// task wrongly.
pub const FORMAT: u32 = 1;

/// How long a finished task stays in D1 when `TASK_RETENTION_DAYS` is not set: long enough for
/// the dashboard's recent history and a month's reports, short enough that D1 holds a month of
/// work rather than every task ever run.
pub const TASK_RETENTION_DAYS_DEFAULT: u32 = 30;

/// Longest retention accepted: ten years. A larger number is more likely a typo than a wish to
/// keep every task in D1.
pub const TASK_RETENTION_DAYS_MAX: u32 = 3_650;

pub const DAY_MS: i64 = 24 * 60 * 60 * 1000;

/// The retention in days from the var's text, and a warning when the text was not usable (the
/// default then applies).
pub fn retention_days(text: Option<&str>) -> (u32, Option<String>) {
    let Some(text) = text.map(str::trim).filter(|t| !t.is_empty()) else {
        return (TASK_RETENTION_DAYS_DEFAULT, None);
    };
    match text.parse::<u32>() {
        Ok(days) if (1..=TASK_RETENTION_DAYS_MAX).contains(&days) => (days, None),
        _ => (
            TASK_RETENTION_DAYS_DEFAULT,
            Some(format!(
                "TASK_RETENTION_DAYS must be a whole number of days from 1 to {TASK_RETENTION_DAYS_MAX}; \
                 keeping finished tasks {TASK_RETENTION_DAYS_DEFAULT} days"
            )),
        ),
    }
}

/// Tasks that finished before this time are archived.
pub fn archive_before(now: Timestamp, retention_days: u32) -> Timestamp {
    now.minus_millis(i64::from(retention_days) * DAY_MS)
}

/// The R2 key of a task's document, beside its logs and summaries.
pub fn object_key(task_id: &str) -> String {
    format!("tasks/{task_id}/archive.json")
}

/// The start (UTC midnight) of the day `ms` falls in.
pub fn day_start(ms: i64) -> i64 {
    ms - ms.rem_euclid(DAY_MS)
}

/// A task's document. Each list holds rows as objects of column name to value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Document {
    pub format: u32,
    pub archived_at: String,
    pub task: Value,
    pub steps: Vec<Value>,
    pub attempts: Vec<Value>,
    pub events: Vec<Value>,
    pub messages: Vec<Value>,
    pub summaries: Vec<Value>,
}

impl Document {
    /// Reads a document, refusing one that is not JSON, of another format, or without a task.
    pub fn parse(text: &str) -> Result<Document, String> {
        let document: Document = serde_json::from_str(text).map_err(|err| format!("not an archived task: {err}"))?;
        if document.format != FORMAT {
            return Err(format!("archive format {} is not {FORMAT}", document.format));
        }
        if !document.task["id"].is_string() {
            return Err("the archived task has no id".into());
        }
        Ok(document)
    }

    pub fn to_json(&self) -> String {
        // Serialising values that came from JSON cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Whether `agent` held a step of the task (one started at least once under its name): the
    /// same rule as for a task in D1.
    pub fn agent_worked_on(&self, agent: &str) -> bool {
        self.steps.iter().any(|s| s["agent"].as_str() == Some(agent) && s["attempt"].as_i64().unwrap_or(0) > 0)
    }

    /// The task's events after sequence number `after_seq`, oldest first, at most `limit`.
    pub fn events_after(&self, after_seq: i64, limit: usize) -> Vec<&Value> {
        let mut events: Vec<&Value> =
            self.events.iter().filter(|e| e["seq"].as_i64().is_some_and(|seq| seq > after_seq)).collect();
        events.sort_by_key(|e| e["seq"].as_i64());
        events.truncate(limit);
        events
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn document() -> Document {
        Document {
            format: FORMAT,
            archived_at: "2026-12-01T00:00:00.000Z".into(),
            task: json!({"id": "tsk_1", "status": "succeeded"}),
            steps: vec![
                json!({"id": "stp_1", "agent": "context-fetcher", "attempt": 1}),
                json!({"id": "stp_2", "agent": "test-runner", "attempt": 0}),
            ],
            attempts: vec![json!({"step_id": "stp_1", "attempt": 1, "report": "{\"notes\":\"done\"}"})],
            events: vec![
                json!({"seq": 7, "kind": "b"}),
                json!({"seq": 3, "kind": "a"}),
                json!({"seq": 9, "kind": "c"}),
            ],
            messages: vec![],
            summaries: vec![],
        }
    }

    #[test]
    fn a_document_reads_back_as_it_was_written() {
        let written = document();
        assert_eq!(Document::parse(&written.to_json()), Ok(written));
    }

    #[test]
    fn a_document_of_another_format_or_without_a_task_is_refused() {
        let mut other = document();
        other.format = 2;
        assert!(Document::parse(&other.to_json()).unwrap_err().contains("format 2"));
        let mut no_task = document();
        no_task.task = json!({});
        assert!(Document::parse(&no_task.to_json()).is_err());
        assert!(Document::parse("{}").is_err());
        assert!(Document::parse("not json").is_err());
    }

    #[test]
    fn an_agent_worked_on_an_archived_task_only_if_it_started_a_step_of_it() {
        let document = document();
        assert!(document.agent_worked_on("context-fetcher"));
        assert!(!document.agent_worked_on("test-runner"), "given a step but never started it");
        assert!(!document.agent_worked_on("git-workflow"));
    }

    #[test]
    fn archived_events_page_oldest_first_after_a_sequence_number() {
        let document = document();
        fn kinds(events: Vec<&Value>) -> Vec<&str> {
            events.into_iter().map(|e| e["kind"].as_str().unwrap()).collect()
        }
        assert_eq!(kinds(document.events_after(0, 10)), ["a", "b", "c"]);
        assert_eq!(kinds(document.events_after(3, 1)), ["b"]);
        assert!(document.events_after(9, 10).is_empty());
    }

    #[test]
    fn the_retention_defaults_to_thirty_days_and_refuses_what_is_not_a_number_of_days() {
        assert_eq!(retention_days(None), (30, None));
        assert_eq!(retention_days(Some(" ")), (30, None));
        assert_eq!(retention_days(Some("7")), (7, None));
        assert_eq!(retention_days(Some("3650")), (3_650, None));
        for bad in ["0", "-1", "1.5", "thirty", "3651"] {
            let (days, warning) = retention_days(Some(bad));
            assert_eq!(days, 30, "{bad}");
            assert!(warning.unwrap().contains("TASK_RETENTION_DAYS"), "{bad}");
        }
    }

    #[test]
    fn tasks_that_finished_more_than_the_retention_ago_are_archived() {
        let now = Timestamp::from_millis(40 * DAY_MS + 5).unwrap();
        assert_eq!(archive_before(now, 30).as_millis(), 10 * DAY_MS + 5);
        assert_eq!(archive_before(now, 3_650).as_millis(), 0, "never before the epoch");
    }

    #[test]
    fn a_time_falls_in_the_utc_day_that_starts_at_midnight() {
        assert_eq!(day_start(0), 0);
        assert_eq!(day_start(DAY_MS - 1), 0);
        assert_eq!(day_start(3 * DAY_MS + 42), 3 * DAY_MS);
    }

    #[test]
    fn an_archived_task_is_kept_beside_its_other_objects() {
        assert_eq!(object_key("tsk_1"), "tasks/tsk_1/archive.json");
    }
}
