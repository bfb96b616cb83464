//! Per-agent logs: what each agent did for a task, one text object per task and agent in R2
//! (`tasks/{task_id}/logs/{agent}.log`), one entry per completed attempt: its time, step,
//! attempt and outcome, the agent's log text, and the `RECORD:` items of its report.
//!
//! This module only formats entries and names objects; appending them is the shell's job.

use serde_json::{Map, Value};

use crate::core::base::time::Timestamp;

/// Largest per-agent log kept for one task. R2 has no append, so every entry rewrites the whole
/// object; past 4 MiB (far more than a task's worth of agent logs) further entries are dropped
/// and a last line says so, rather than rewriting ever larger objects.
pub const AGENT_LOG_BYTES_MAX: usize = 4 * 1024 * 1024;

/// The line that ends a log that reached [`AGENT_LOG_BYTES_MAX`].
pub const TRUNCATED_LINE: &str = "[log full: later entries are kept only in each attempt's own log]\n";

/// The R2 key of one attempt's own log, written whole when the attempt completes.
pub fn attempt_key(task_id: &str, step_id: &str, attempt: u32) -> String {
    format!("tasks/{task_id}/steps/{step_id}/attempt-{attempt}.log")
}

/// The R2 key of `agent`'s log for `task_id`.
pub fn key(task_id: &str, agent: &str) -> String {
    format!("{}{agent}.log", prefix(task_id))
}

/// The R2 prefix under which a task's agent logs live.
pub fn prefix(task_id: &str) -> String {
    format!("tasks/{task_id}/logs/")
}

/// The agent named by a key under [`prefix`], if it is one.
pub fn agent_of(task_id: &str, key: &str) -> Option<String> {
    key.strip_prefix(&prefix(task_id))?.strip_suffix(".log").map(String::from)
}

/// One completed attempt, as the log shows it.
pub struct Entry<'a> {
    pub at: Timestamp,
    pub step_key: &'a str,
    pub step_name: &'a str,
    pub attempt: u32,
    pub outcome: &'a str,
    pub log: Option<&'a str>,
    /// The report's `records`: the step's `RECORD:` names and their items.
    pub records: Option<&'a Map<String, Value>>,
}

/// The entry as text: a header line, the log indented, then each record and its items.
pub fn format(entry: &Entry) -> String {
    let mut text = format!(
        "== {} step {} ({}) attempt {} {}\n",
        entry.at.to_rfc3339(),
        entry.step_key,
        entry.step_name,
        entry.attempt,
        entry.outcome
    );
    if let Some(log) = entry.log.filter(|l| !l.is_empty()) {
        for line in log.lines() {
            text.push_str("  ");
            text.push_str(line);
            text.push('\n');
        }
    }
    for (name, items) in entry.records.into_iter().flatten() {
        text.push_str(&format!("RECORD {name}:\n"));
        for item in items.as_array().into_iter().flatten() {
            text.push_str(&format!("  - {}\n", crate::core::records::report::item_text(item)));
        }
    }
    text
}

/// `current` with `entry` appended, within [`AGENT_LOG_BYTES_MAX`]; `None` when the log is
/// already full (nothing to write).
pub fn append(current: &str, entry: &str) -> Option<String> {
    if current.ends_with(TRUNCATED_LINE) {
        return None;
    }
    if current.len() + entry.len() + TRUNCATED_LINE.len() > AGENT_LOG_BYTES_MAX {
        return Some(format!("{current}{TRUNCATED_LINE}"));
    }
    Some(format!("{current}{entry}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn keys_name_the_task_and_the_agent_and_read_back() {
        assert_eq!(key("tsk_1", "cloudflare-specialist"), "tasks/tsk_1/logs/cloudflare-specialist.log");
        assert_eq!(agent_of("tsk_1", "tasks/tsk_1/logs/test-runner.log").as_deref(), Some("test-runner"));
        assert_eq!(agent_of("tsk_1", "tasks/tsk_2/logs/test-runner.log"), None);
        assert_eq!(agent_of("tsk_1", "tasks/tsk_1/steps/x/attempt-1.log"), None);
    }

    #[test]
    fn an_entry_has_its_time_step_attempt_outcome_log_and_records() {
        let records = json!({"Database schemas created": ["comments", {"table": "users"}]});
        let entry = Entry {
            at: Timestamp::from_millis(1_705_314_600_000).unwrap(),
            step_key: "2a",
            step_name: "backend_implementation",
            attempt: 2,
            outcome: "succeeded",
            log: Some("created the table\nran the migration"),
            records: records.as_object(),
        };
        assert_eq!(
            format(&entry),
            "== 2024-01-15T10:30:00.000Z step 2a (backend_implementation) attempt 2 succeeded\n\
             \x20 created the table\n\
             \x20 ran the migration\n\
             RECORD Database schemas created:\n\
             \x20 - comments\n\
             \x20 - {\"table\":\"users\"}\n"
        );
    }

    #[test]
    fn appending_stops_at_the_limit_with_a_last_line() {
        assert_eq!(append("a\n", "b\n").as_deref(), Some("a\nb\n"));
        let big = "x".repeat(AGENT_LOG_BYTES_MAX - 10);
        let full = append(&big, "a long entry\n").unwrap();
        assert!(full.ends_with(TRUNCATED_LINE));
        assert_eq!(append(&full, "more\n"), None);
    }
}
