//! The request bodies of the task and step routes, parsed and checked at the edge: a submission,
//! a workflow reference `name[@version]`, a heartbeat and a completion.
//!
//! Parsing here turns bytes into values the engine can trust; nothing here touches state.

use serde::Deserialize;
use serde_json::Value;

use crate::core::base::encoding::{has_control_chars, CONTROL_CHARACTERS};
use crate::core::base::limits::{
    ANALYSIS_TEXT_BYTES_MAX, ATTEMPT_LOG_BYTES_MAX, TASK_PATHS_MAX, TASK_PATH_BYTES_MAX, TASK_REQUIREMENTS_MAX,
    TASK_REQUIREMENT_BYTES_MAX, TASK_TITLE_BYTES_MAX,
};
use crate::core::edge::error::{ApiError, Detail};
use crate::core::records::report::{self, Report};
use crate::core::registry::analysis::TaskInput;
use crate::core::registry::workflow::{agent_name_problem, is_workflow_name, DEFAULT_WORKFLOW_NAME};

/// `POST /v1/tasks` (and `POST /v1/analyze`, which reads the same fields but `workflow`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskRequest {
    pub title: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub requirements: Vec<String>,
    #[serde(default)]
    pub paths: Vec<String>,
    #[serde(default)]
    pub workflow: Option<String>,
    /// Who does the steps naming no subagent, instead of the workflow's or configured one.
    #[serde(default)]
    pub main_agent: Option<String>,
}

/// Which workflow a task runs: a name, and a version or the latest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkflowRef {
    pub name: String,
    pub version: Option<i64>,
}

impl WorkflowRef {
    pub fn parse(text: &str) -> Option<WorkflowRef> {
        let (name, version) = match text.split_once('@') {
            Some((name, version)) => {
                let digits = !version.is_empty() && version.len() <= 9 && version.bytes().all(|b| b.is_ascii_digit());
                let number: i64 = if digits { version.parse().ok()? } else { return None };
                (name, Some(number).filter(|n| *n >= 1)?)
            }
            None => return is_workflow_name(text).then(|| WorkflowRef { name: text.to_string(), version: None }),
        };
        is_workflow_name(name).then(|| WorkflowRef { name: name.to_string(), version: Some(version) })
    }
}

/// Adds a detail for a list over `items_max` items and for each item over `item_bytes_max` bytes.
pub fn check_list(field: &str, items: &[String], items_max: usize, item_bytes_max: usize, details: &mut Vec<Detail>) {
    if items.len() > items_max {
        details.push(Detail::field(field, format!("at most {items_max} items")));
    }
    for (index, item) in items.iter().enumerate() {
        if item.len() > item_bytes_max {
            details.push(Detail::field(format!("{field}[{index}]"), format!("longer than {item_bytes_max} bytes")));
        }
        if has_control_chars(item, false) {
            details.push(Detail::field(format!("{field}[{index}]"), CONTROL_CHARACTERS));
        }
    }
}

impl TaskRequest {
    /// What analysis reads of the task.
    pub fn task_input(&self) -> TaskInput<'_> {
        TaskInput {
            title: &self.title,
            description: &self.description,
            requirements: &self.requirements,
            paths: &self.paths,
        }
    }

    /// Checks every field; returns the workflow to run.
    pub fn validate(&self) -> Result<WorkflowRef, ApiError> {
        let mut details = Vec::new();
        if self.title.trim().is_empty() {
            details.push(Detail::field("title", "is required"));
        }
        if self.title.len() > TASK_TITLE_BYTES_MAX {
            details.push(Detail::field("title", format!("longer than {TASK_TITLE_BYTES_MAX} bytes")));
        }
        if has_control_chars(&self.title, false) {
            details.push(Detail::field("title", CONTROL_CHARACTERS));
        }
        if self.description.len() > ANALYSIS_TEXT_BYTES_MAX {
            details.push(Detail::field("description", format!("longer than {ANALYSIS_TEXT_BYTES_MAX} bytes")));
        }
        if has_control_chars(&self.description, true) {
            details.push(Detail::field("description", CONTROL_CHARACTERS));
        }
        check_list("requirements", &self.requirements, TASK_REQUIREMENTS_MAX, TASK_REQUIREMENT_BYTES_MAX, &mut details);
        check_list("paths", &self.paths, TASK_PATHS_MAX, TASK_PATH_BYTES_MAX, &mut details);
        if let Some(problem) = self.main_agent.as_deref().and_then(agent_name_problem) {
            details.push(Detail::field("main_agent", problem));
        }
        let workflow = match self.workflow.as_deref() {
            None => Some(WorkflowRef { name: DEFAULT_WORKFLOW_NAME.to_string(), version: None }),
            Some(text) => WorkflowRef::parse(text),
        };
        if workflow.is_none() {
            details.push(Detail::field("workflow", "must be a workflow name, optionally followed by @version"));
        }
        match workflow {
            Some(workflow) if details.is_empty() => Ok(workflow),
            _ => Err(ApiError::Invalid { details }),
        }
    }
}

/// `POST /v1/steps/{id}/heartbeat`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeartbeatRequest {
    pub lease_id: String,
    /// Output of the running command since the last acknowledged offset (live output).
    #[serde(default)]
    pub output: Option<OutputChunk>,
}

/// A chunk of live output: `text` from byte `offset` of the attempt's output stream.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutputChunk {
    pub offset: u64,
    pub text: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Succeeded,
    Failed,
}

/// `POST /v1/steps/{id}/complete`, and the body of a webhook's 2xx answer (whose lease is the
/// delivery's, so `lease_id` may be left out there).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CompletionRequest {
    #[serde(default)]
    pub lease_id: Option<String>,
    #[serde(default = "succeeded")]
    pub outcome: Outcome,
    #[serde(default)]
    pub report: Option<Value>,
    #[serde(default)]
    pub log: Option<String>,
    /// Why the attempt failed, in the agent's words.
    #[serde(default)]
    pub error: Option<String>,
}

fn succeeded() -> Outcome {
    Outcome::Succeeded
}

/// Longest error message an agent may give for a failed attempt: a sentence or a stack trace's
/// first lines; the log holds the rest.
pub const ERROR_MESSAGE_BYTES_MAX: usize = 2048;

/// A completion that passed every check.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckedCompletion {
    pub lease_id: Option<String>,
    pub outcome: Outcome,
    pub report: Option<Report>,
    pub log: Option<String>,
    pub error: Option<String>,
}

impl CompletionRequest {
    /// Checks the report (every problem at once), the log and error sizes, and the outcome.
    pub fn validate(self) -> Result<CheckedCompletion, ApiError> {
        let mut details = Vec::new();
        let report = match self.report {
            None => None,
            Some(value) => match report::validate(value) {
                Ok(report) => Some(report),
                Err(problems) => {
                    details.extend(problems);
                    None
                }
            },
        };
        if self.outcome == Outcome::Succeeded && self.error.is_some() {
            details.push(Detail::field("error", "only a failed outcome has an error"));
        }
        if self.log.as_ref().is_some_and(|log| log.len() > ATTEMPT_LOG_BYTES_MAX) {
            details.push(Detail::field("log", format!("longer than {ATTEMPT_LOG_BYTES_MAX} bytes")));
        }
        if self.error.as_ref().is_some_and(|error| error.len() > ERROR_MESSAGE_BYTES_MAX) {
            details.push(Detail::field("error", format!("longer than {ERROR_MESSAGE_BYTES_MAX} bytes")));
        }
        if self.lease_id.as_ref().is_some_and(|lease| lease.is_empty() || lease.len() > 64) {
            details.push(Detail::field("lease_id", "is not a lease id"));
        }
        if !details.is_empty() {
            return Err(ApiError::Invalid { details });
        }
        Ok(CheckedCompletion {
            lease_id: self.lease_id,
            outcome: self.outcome,
            report,
            log: self.log,
            error: self.error,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn workflow_references_are_a_name_and_an_optional_positive_version() {
        assert_eq!(WorkflowRef::parse("release"), Some(WorkflowRef { name: "release".into(), version: None }));
        assert_eq!(WorkflowRef::parse("release@3"), Some(WorkflowRef { name: "release".into(), version: Some(3) }));
        for bad in ["", "@3", "release@", "release@0", "release@-1", "release@v2", "Release", "a@1@2", "x@9999999999"] {
            assert_eq!(WorkflowRef::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_task_without_a_workflow_runs_the_default_one() {
        let request: TaskRequest = serde_json::from_value(json!({"title": "Add a page"})).unwrap();
        assert_eq!(request.validate().unwrap().name, DEFAULT_WORKFLOW_NAME);
    }

    #[test]
    fn every_problem_of_a_task_is_reported_at_once() {
        let request = TaskRequest {
            title: " ".into(),
            description: "x".repeat(ANALYSIS_TEXT_BYTES_MAX + 1),
            requirements: vec!["r".repeat(TASK_REQUIREMENT_BYTES_MAX + 1)],
            paths: vec![String::new(); TASK_PATHS_MAX + 1],
            workflow: Some("bad name".into()),
            main_agent: Some("Main Agent".into()),
        };
        let Err(ApiError::Invalid { details }) = request.validate() else { panic!() };
        let fields: Vec<_> = details.iter().filter_map(|d| d.field.as_deref()).collect();
        assert_eq!(fields, ["title", "description", "requirements[0]", "paths", "main_agent", "workflow"]);
    }

    #[test]
    fn a_completion_defaults_to_succeeded_and_checks_its_report() {
        let request: CompletionRequest =
            serde_json::from_value(json!({"lease_id": "lse_1", "report": {"lines_added": 3}})).unwrap();
        let checked = request.validate().unwrap();
        assert_eq!(checked.outcome, Outcome::Succeeded);
        assert!(checked.report.is_some());
        let request: CompletionRequest =
            serde_json::from_value(json!({"lease_id": "lse_1", "report": {"lines_added": -3}})).unwrap();
        assert!(matches!(request.validate(), Err(ApiError::Invalid { .. })));
    }

    #[test]
    fn an_error_message_belongs_to_a_failed_outcome_only() {
        let request: CompletionRequest =
            serde_json::from_value(json!({"lease_id": "lse_1", "outcome": "succeeded", "error": "x"})).unwrap();
        assert!(matches!(request.validate(), Err(ApiError::Invalid { .. })));
        let request: CompletionRequest =
            serde_json::from_value(json!({"lease_id": "lse_1", "outcome": "failed", "error": "x"})).unwrap();
        assert_eq!(request.validate().unwrap().error.as_deref(), Some("x"));
    }
}
