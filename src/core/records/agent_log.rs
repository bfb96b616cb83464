//! Per-agent logs: what each agent did for a task, one entry per attempt it completed: its time,
//! step, attempt and outcome, the agent's log text, and the `RECORD:` items of its report.
//!
//! A log is assembled when it is read, from the attempts' rows and each attempt's own log object
//! (`tasks/{task_id}/steps/{step_id}/attempt-{n}.log`), not kept as an object of its own: R2 has
//! no append, and rewriting one object per agent on every completion cost a read and a
//! conditional write each time (and could lose an entry to a failed write).
//!
//! This module only formats entries and names objects; reading them is the shell's job.

use serde_json::{Map, Value};

use crate::core::base::time::Timestamp;

/// Largest per-agent log served for one task: past 4 MiB (far more than a task's worth of agent
/// logs) the remaining entries are left out and a last line says so, rather than building ever
/// larger responses. Each attempt's own log stays readable on its own.
pub const AGENT_LOG_BYTES_MAX: usize = 4 * 1024 * 1024;

/// The line that ends a log that reached [`AGENT_LOG_BYTES_MAX`].
pub const TRUNCATED_LINE: &str =
    "[log full: later entries are left out; each attempt's own log is at GET /v1/steps/{id}/log?attempt=]\n";

/// The R2 key of one attempt's own log, written whole when the attempt completes.
pub fn attempt_key(task_id: &str, step_id: &str, attempt: u32) -> String {
    format!("tasks/{task_id}/steps/{step_id}/attempt-{attempt}.log")
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

/// A log being assembled from formatted entries, in the order the attempts ended, within
/// [`AGENT_LOG_BYTES_MAX`].
#[derive(Debug, Default)]
pub struct Log {
    text: String,
    full: bool,
}

impl Log {
    /// Adds `entry`, unless the log is full; the entry that would overflow it ends it with
    /// [`TRUNCATED_LINE`] instead.
    pub fn push(&mut self, entry: &str) {
        if self.full {
            return;
        }
        if self.text.len() + entry.len() + TRUNCATED_LINE.len() > AGENT_LOG_BYTES_MAX {
            self.text.push_str(TRUNCATED_LINE);
            self.full = true;
            return;
        }
        self.text.push_str(entry);
    }

    /// Whether later entries would be left out (reading their logs is wasted work).
    pub fn is_full(&self) -> bool {
        self.full
    }

    pub fn into_text(self) -> String {
        self.text
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn an_attempts_log_key_names_the_task_the_step_and_the_attempt() {
        assert_eq!(attempt_key("tsk_1", "stp_2", 3), "tasks/tsk_1/steps/stp_2/attempt-3.log");
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
    fn a_log_keeps_its_entries_in_order_and_stops_at_the_limit_with_a_last_line() {
        let mut log = Log::default();
        log.push("a\n");
        log.push("b\n");
        assert!(!log.is_full());
        assert_eq!(log.into_text(), "a\nb\n");

        let mut log = Log::default();
        log.push(&"x".repeat(AGENT_LOG_BYTES_MAX - TRUNCATED_LINE.len() - 10));
        log.push("a long entry\n");
        assert!(log.is_full());
        log.push("more\n");
        let text = log.into_text();
        assert!(text.ends_with(&format!("x{TRUNCATED_LINE}")), "the overflowing entry and later ones are left out");
        assert!(text.len() <= AGENT_LOG_BYTES_MAX);
    }
}
