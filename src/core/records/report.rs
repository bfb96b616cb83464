//! The report an agent sends when it completes a step: what it changed, recorded, tested and
//! measured. Known fields are checked (every problem at once); unknown fields are kept as sent,
//! so agents may add their own.
//!
//! This module only validates and reads reports; storing them is the shell's job.

use serde_json::{Map, Value};

use crate::core::edge::error::Detail;

/// Paths listed in `files_created` or `files_modified`: a large refactor touches thousands of
/// files; more than this is a generated listing, not a report.
pub const REPORT_FILES_MAX: usize = 10_000;
/// Longest path: far beyond any real repository path.
pub const REPORT_PATH_BYTES_MAX: usize = 1024;
/// Entries in any other list or map of a report (records, feedback, checklist, metrics, notes).
pub const REPORT_ITEMS_MAX: usize = 1_000;
/// Longest name of a record, feedback category or metric: a heading, not a paragraph.
pub const REPORT_NAME_BYTES_MAX: usize = 128;
/// Largest line count: a hundred million lines is more than any single change.
pub const REPORT_LINES_MAX: u64 = 100_000_000;

/// The kinds of tests a report counts, as the seed's summary template names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TestKind {
    Unit,
    Integration,
    E2e,
}

impl TestKind {
    pub const ALL: [TestKind; 3] = [TestKind::Unit, TestKind::Integration, TestKind::E2e];

    pub fn as_str(self) -> &'static str {
        match self {
            TestKind::Unit => "unit",
            TestKind::Integration => "integration",
            TestKind::E2e => "e2e",
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TestCounts {
    pub passed: u64,
    pub failed: u64,
    pub skipped: u64,
}

/// Longest reason an analysis step may give for its selection.
pub const SELECTION_REASON_BYTES_MAX: usize = 1024;

/// What an analysis step's report may say about the agents the task needs:
/// `"selection": {"agents": [...], "task_type": "backend", "reason": "..."}`. It confirms or
/// replaces the analysis made at submission for the optional steps not yet decided.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ReportedSelection {
    /// The key of the step that reported it (filled in by the shell).
    #[serde(default)]
    pub step: String,
    pub agents: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// The task types a selection may name, as analysis names them.
pub const TASK_TYPES: [&str; 4] = ["frontend", "backend", "full-stack", "infrastructure"];

/// A report's `items`, as sent: their shape is checked by the engine, and only when a loop
/// reads them (see `engine::Completion::items`).
pub fn items_of(report: &Report) -> Option<Value> {
    report.as_map().get("items").cloned()
}

/// A report's `selection`, if it has one, or what is wrong with its shape. Whether its agents
/// are known is for the shell to check against the task.
pub fn selection_of(report: &Report) -> Result<Option<ReportedSelection>, Vec<Detail>> {
    let Some(value) = report.as_map().get("selection") else { return Ok(None) };
    let Some(fields) = value.as_object() else {
        return Err(vec![Detail::field("report.selection", "must be an object with agents, task_type and reason")]);
    };
    let mut details = Vec::new();
    for key in fields.keys().filter(|k| !matches!(k.as_str(), "agents" | "task_type" | "reason")) {
        details.push(Detail::field(
            format!("report.selection.{key}"),
            "is not a selection field (agents, task_type, reason)",
        ));
    }
    let agents = match fields.get("agents").and_then(Value::as_array) {
        None => {
            details.push(Detail::field("report.selection.agents", "is required: a list of agent names"));
            Vec::new()
        }
        Some(list) if list.len() > REPORT_ITEMS_MAX => {
            details.push(Detail::field("report.selection.agents", format!("at most {REPORT_ITEMS_MAX} agents")));
            Vec::new()
        }
        Some(list) => list
            .iter()
            .enumerate()
            .filter_map(|(index, agent)| match agent.as_str() {
                Some(name) if crate::core::registry::instructions::is_agent_name(name) => Some(name.to_string()),
                _ => {
                    details.push(Detail::field(format!("report.selection.agents[{index}]"), "is not an agent name"));
                    None
                }
            })
            .collect(),
    };
    let task_type = match fields.get("task_type") {
        None | Some(Value::Null) => None,
        Some(Value::String(t)) if TASK_TYPES.contains(&t.as_str()) => Some(t.clone()),
        Some(_) => {
            details
                .push(Detail::field("report.selection.task_type", format!("must be one of {}", TASK_TYPES.join(", "))));
            None
        }
    };
    let reason = match fields.get("reason") {
        None | Some(Value::Null) => None,
        Some(Value::String(r)) if r.len() <= SELECTION_REASON_BYTES_MAX => Some(r.clone()),
        Some(_) => {
            let message = format!("must be text of at most {SELECTION_REASON_BYTES_MAX} bytes");
            details.push(Detail::field("report.selection.reason", message));
            None
        }
    };
    if !details.is_empty() {
        return Err(details);
    }
    Ok(Some(ReportedSelection { step: String::new(), agents, task_type, reason }))
}

/// Checks a reported selection against its task: only the analysis step (`analysis_step`) may
/// report one, and each agent must be one routing may assign (`candidates`) and registered.
pub fn check_selection(
    mut selection: ReportedSelection,
    step_key: &str,
    analysis_step: Option<&str>,
    candidates: &[String],
    registered: &[String],
) -> Result<ReportedSelection, Vec<Detail>> {
    if analysis_step != Some(step_key) {
        let which = analysis_step.map_or_else(|| "this task has none".to_string(), |k| format!("step {k}"));
        let message = format!("only the analysis step may report a selection ({which})");
        return Err(vec![Detail::field("report.selection", message)]);
    }
    let mut details = Vec::new();
    for (index, agent) in selection.agents.iter().enumerate() {
        let field = format!("report.selection.agents[{index}]");
        if !candidates.contains(agent) {
            let known = if candidates.is_empty() { "none".to_string() } else { candidates.join(", ") };
            details.push(Detail::field(field, format!("{agent} is not an agent this workflow routes ({known})")));
        } else if !registered.contains(agent) {
            details.push(Detail::field(field, format!("{agent} is not registered")));
        }
    }
    if !details.is_empty() {
        return Err(details);
    }
    selection.step = step_key.to_string();
    Ok(selection)
}

/// A validated report: the object as sent (unknown fields kept).
#[derive(Debug, Clone, PartialEq)]
pub struct Report(Map<String, Value>);

impl Report {
    pub fn as_map(&self) -> &Map<String, Value> {
        &self.0
    }

    pub fn into_value(self) -> Value {
        Value::Object(self.0)
    }

    /// The counts reported for one kind of test; `None` when the kind is not reported.
    pub fn tests(&self, kind: TestKind) -> Option<TestCounts> {
        tests_in(&self.0, kind)
    }

    pub fn files_created(&self) -> Vec<&str> {
        self.strings("files_created")
    }

    pub fn files_modified(&self) -> Vec<&str> {
        self.strings("files_modified")
    }

    /// Lines added and removed; 0 when not reported.
    pub fn lines(&self) -> (u64, u64) {
        let get = |name: &str| self.0.get(name).and_then(Value::as_u64).unwrap_or(0);
        (get("lines_added"), get("lines_removed"))
    }

    fn strings(&self, field: &str) -> Vec<&str> {
        self.0
            .get(field)
            .and_then(Value::as_array)
            .map_or_else(Vec::new, |items| items.iter().filter_map(Value::as_str).collect())
    }
}

/// The counts a report object gives for one kind of test; `None` when the kind is not reported.
pub fn tests_in(report: &Map<String, Value>, kind: TestKind) -> Option<TestCounts> {
    let counts = report.get("tests")?.get(kind.as_str())?;
    let get = |name: &str| counts.get(name).and_then(Value::as_u64).unwrap_or(0);
    Some(TestCounts { passed: get("passed"), failed: get("failed"), skipped: get("skipped") })
}

/// A list item of a report (records may hold objects) as one line of text.
pub fn item_text(item: &Value) -> String {
    match item {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

/// Checks `value` (a JSON object) and returns it as a report, or every problem found.
pub fn validate(value: Value) -> Result<Report, Vec<Detail>> {
    let Value::Object(map) = value else {
        return Err(vec![Detail::field("report", "must be a JSON object")]);
    };
    let mut problems = Vec::new();
    for (field, value) in &map {
        let at = format!("report.{field}");
        match field.as_str() {
            "files_created" | "files_modified" => check_paths(&at, value, &mut problems),
            "lines_added" | "lines_removed" => check_count(&at, value, REPORT_LINES_MAX, &mut problems),
            "records" => check_named_lists(&at, value, false, &mut problems),
            "feedback" => check_named_lists(&at, value, true, &mut problems),
            "checklist" => check_checklist(&at, value, &mut problems),
            "tests" => check_tests(&at, value, &mut problems),
            "performance" => check_performance(&at, value, &mut problems),
            "notes" if !value.is_string() => problems.push(Detail::field(at, "must be a string")),
            "next_steps" | "outstanding_issues" | "integration_points" => {
                check_strings(&at, value, REPORT_ITEMS_MAX, &mut problems)
            }
            _ => {}
        }
    }
    let report = Report(map);
    if let Err(found) = selection_of(&report) {
        problems.extend(found);
    }
    if problems.is_empty() {
        Ok(report)
    } else {
        Err(problems)
    }
}

fn check_count(at: &str, value: &Value, max: u64, problems: &mut Vec<Detail>) {
    match value.as_u64() {
        Some(n) if n <= max => {}
        _ => problems.push(Detail::field(at, format!("must be a whole number from 0 to {max}"))),
    }
}

fn list<'a>(at: &str, value: &'a Value, max: usize, problems: &mut Vec<Detail>) -> Option<&'a Vec<Value>> {
    let Some(items) = value.as_array() else {
        problems.push(Detail::field(at, "must be a list"));
        return None;
    };
    if items.len() > max {
        problems.push(Detail::field(at, format!("at most {max} entries")));
        return None;
    }
    Some(items)
}

fn check_strings(at: &str, value: &Value, max: usize, problems: &mut Vec<Detail>) {
    for (index, item) in list(at, value, max, problems).into_iter().flatten().enumerate() {
        if !item.is_string() {
            problems.push(Detail::field(format!("{at}[{index}]"), "must be a string"));
        }
    }
}

fn check_paths(at: &str, value: &Value, problems: &mut Vec<Detail>) {
    for (index, item) in list(at, value, REPORT_FILES_MAX, problems).into_iter().flatten().enumerate() {
        let ok = item.as_str().is_some_and(|path| {
            !path.is_empty() && path.len() <= REPORT_PATH_BYTES_MAX && !path.chars().any(char::is_control)
        });
        if !ok {
            problems.push(Detail::field(
                format!("{at}[{index}]"),
                format!("must be a path of 1 to {REPORT_PATH_BYTES_MAX} bytes without control characters"),
            ));
        }
    }
}

fn object<'a>(at: &str, value: &'a Value, problems: &mut Vec<Detail>) -> Option<&'a Map<String, Value>> {
    let Some(map) = value.as_object() else {
        problems.push(Detail::field(at, "must be an object"));
        return None;
    };
    if map.len() > REPORT_ITEMS_MAX {
        problems.push(Detail::field(at, format!("at most {REPORT_ITEMS_MAX} entries")));
        return None;
    }
    Some(map)
}

fn check_name(at: &str, name: &str, problems: &mut Vec<Detail>) -> bool {
    let ok = !name.trim().is_empty() && name.len() <= REPORT_NAME_BYTES_MAX;
    if !ok {
        problems.push(Detail::field(at, format!("names must be 1 to {REPORT_NAME_BYTES_MAX} bytes")));
    }
    ok
}

/// `records` (items are strings or objects) and `feedback` (items are strings), by name.
fn check_named_lists(at: &str, value: &Value, strings_only: bool, problems: &mut Vec<Detail>) {
    for (name, items) in object(at, value, problems).into_iter().flatten() {
        let here = format!("{at}.{name}");
        if !check_name(&here, name, problems) {
            continue;
        }
        for (index, item) in list(&here, items, REPORT_ITEMS_MAX, problems).into_iter().flatten().enumerate() {
            let ok = item.is_string() || (!strings_only && item.is_object());
            if !ok {
                let expected = if strings_only { "must be a string" } else { "must be a string or an object" };
                problems.push(Detail::field(format!("{here}[{index}]"), expected));
            }
        }
    }
}

fn check_checklist(at: &str, value: &Value, problems: &mut Vec<Detail>) {
    for (index, entry) in list(at, value, REPORT_ITEMS_MAX, problems).into_iter().flatten().enumerate() {
        let here = format!("{at}[{index}]");
        let Some(entry) = entry.as_object() else {
            problems.push(Detail::field(here, "must be an object with item, passed and an optional evidence"));
            continue;
        };
        if entry.get("item").and_then(Value::as_str).is_none_or(|s| s.trim().is_empty()) {
            problems.push(Detail::field(format!("{here}.item"), "must be a non-empty string"));
        }
        if !entry.get("passed").is_some_and(Value::is_boolean) {
            problems.push(Detail::field(format!("{here}.passed"), "must be true or false"));
        }
        if entry.get("evidence").is_some_and(|e| !e.is_string()) {
            problems.push(Detail::field(format!("{here}.evidence"), "must be a string"));
        }
        for key in entry.keys().filter(|k| !["item", "passed", "evidence"].contains(&k.as_str())) {
            problems.push(Detail::field(format!("{here}.{key}"), "is not a checklist field"));
        }
    }
}

fn check_tests(at: &str, value: &Value, problems: &mut Vec<Detail>) {
    for (kind, counts) in object(at, value, problems).into_iter().flatten() {
        let here = format!("{at}.{kind}");
        if !TestKind::ALL.iter().any(|k| k.as_str() == kind) {
            problems.push(Detail::field(here, "test kinds are unit, integration and e2e"));
            continue;
        }
        for (name, count) in object(&here, counts, problems).into_iter().flatten() {
            if ["passed", "failed", "skipped"].contains(&name.as_str()) {
                check_count(&format!("{here}.{name}"), count, u64::from(u32::MAX), problems);
            } else {
                problems.push(Detail::field(format!("{here}.{name}"), "counts are passed, failed and skipped"));
            }
        }
    }
}

fn check_performance(at: &str, value: &Value, problems: &mut Vec<Detail>) {
    for (name, metric) in object(at, value, problems).into_iter().flatten() {
        let here = format!("{at}.{name}");
        let good_name = !name.is_empty()
            && name.len() <= 64
            && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if !good_name {
            problems.push(Detail::field(&here, "metric names are 1 to 64 lowercase letters, digits and underscores"));
        }
        if !metric.as_f64().is_some_and(|n| n.is_finite() && n >= 0.0) {
            problems.push(Detail::field(here, "must be a number of at least 0"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fields(value: Value) -> Vec<String> {
        validate(value).unwrap_err().into_iter().filter_map(|d| d.field).collect()
    }

    #[test]
    fn a_full_report_is_accepted_with_its_unknown_fields_kept() {
        let value = json!({
            "files_created": ["src/routes/+page.svelte"],
            "files_modified": ["wrangler.toml"],
            "lines_added": 120, "lines_removed": 4,
            "records": {"Database schemas created": ["comments"], "API endpoints": [{"path": "/api/comments"}]},
            "feedback": {"Services configured": ["D1", "KV"]},
            "checklist": [{"item": "migrations applied", "passed": true, "evidence": "wrangler d1 migrations list"}],
            "tests": {"unit": {"passed": 12, "failed": 0}, "e2e": {"passed": 3, "failed": 1, "skipped": 2}},
            "performance": {"bundle_size_bytes": 48_000, "cold_start_ms": 4.5},
            "notes": "done", "next_steps": ["deploy"], "outstanding_issues": [],
            "agent_specific": {"anything": true},
        });
        let report = validate(value.clone()).unwrap();
        assert_eq!(report.clone().into_value(), value);
        assert_eq!(report.files_created(), ["src/routes/+page.svelte"]);
        assert_eq!(report.files_modified(), ["wrangler.toml"]);
        assert_eq!(report.lines(), (120, 4));
        assert_eq!(report.tests(TestKind::Unit), Some(TestCounts { passed: 12, failed: 0, skipped: 0 }));
        assert_eq!(report.tests(TestKind::E2e), Some(TestCounts { passed: 3, failed: 1, skipped: 2 }));
        assert_eq!(report.tests(TestKind::Integration), None);
    }

    #[test]
    fn an_empty_object_is_a_report_and_anything_else_is_not() {
        assert!(validate(json!({})).is_ok());
        assert_eq!(fields(json!(null)), ["report"]);
        assert_eq!(fields(json!([1])), ["report"]);
    }

    #[test]
    fn counts_must_be_whole_and_not_negative() {
        assert_eq!(
            fields(json!({"lines_added": -1, "lines_removed": 1.5})),
            ["report.lines_added", "report.lines_removed"]
        );
        assert_eq!(fields(json!({"tests": {"unit": {"passed": -2}}})), ["report.tests.unit.passed"]);
    }

    #[test]
    fn unknown_test_kinds_and_counts_are_refused() {
        assert_eq!(fields(json!({"tests": {"smoke": {"passed": 1}}})), ["report.tests.smoke"]);
        assert_eq!(fields(json!({"tests": {"unit": {"flaky": 1}}})), ["report.tests.unit.flaky"]);
    }

    #[test]
    fn checklist_entries_have_a_fixed_shape() {
        let problems = fields(json!({"checklist": [
            {"item": "ok", "passed": true},
            {"item": "", "passed": "yes", "extra": 1},
            "just text",
        ]}));
        assert_eq!(
            problems,
            [
                "report.checklist[1].item",
                "report.checklist[1].passed",
                "report.checklist[1].extra",
                "report.checklist[2]"
            ]
        );
    }

    #[test]
    fn paths_must_be_non_empty_text_without_control_characters() {
        assert_eq!(
            fields(json!({"files_created": ["ok.rs", "", "bad\u{0}.rs", 3]})),
            ["report.files_created[1]", "report.files_created[2]", "report.files_created[3]"]
        );
    }

    #[test]
    fn feedback_items_are_strings_while_records_may_hold_objects() {
        assert!(validate(json!({"records": {"Routes": [{"path": "/"}, "text"]}})).is_ok());
        assert_eq!(
            fields(json!({"feedback": {"Components created": [{"name": "x"}]}})),
            ["report.feedback.Components created[0]"]
        );
    }

    #[test]
    fn metrics_are_named_simply_and_are_non_negative_numbers() {
        assert_eq!(
            fields(json!({"performance": {"PageSpeed": 90, "cold_start_ms": -1, "size": "big"}})),
            ["report.performance.PageSpeed", "report.performance.cold_start_ms", "report.performance.size"]
        );
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let problems = fields(json!({"notes": 1, "next_steps": "deploy", "files_modified": {}, "lines_added": "3"}));
        assert_eq!(problems.len(), 4);
    }

    #[test]
    fn lists_are_bounded() {
        let many = vec![json!("x"); REPORT_ITEMS_MAX + 1];
        assert_eq!(fields(json!({"next_steps": many})), ["report.next_steps"]);
    }

    #[test]
    fn a_selection_is_an_object_of_agent_names_with_an_optional_type_and_reason() {
        let ok =
            validate(json!({"selection": {"agents": ["api-engineer"], "task_type": "backend", "reason": "no UI"}}));
        let selection = selection_of(&ok.unwrap()).unwrap().unwrap();
        assert_eq!(selection.agents, ["api-engineer"]);
        assert_eq!((selection.task_type.as_deref(), selection.reason.as_deref()), (Some("backend"), Some("no UI")));
        assert_eq!(selection_of(&validate(json!({"notes": "x"})).unwrap()), Ok(None));
        let cases: &[(Value, &[&str])] = &[
            (json!("api-engineer"), &["report.selection"]),
            (json!({}), &["report.selection.agents"]),
            (json!({"agents": "api-engineer"}), &["report.selection.agents"]),
            (json!({"agents": ["Api Engineer", 3]}), &["report.selection.agents[0]", "report.selection.agents[1]"]),
            (json!({"agents": [], "task_type": "mobile"}), &["report.selection.task_type"]),
            (json!({"agents": [], "reason": "x".repeat(SELECTION_REASON_BYTES_MAX + 1)}), &["report.selection.reason"]),
            (json!({"agents": [], "who": "me"}), &["report.selection.who"]),
        ];
        for (selection, expected) in cases {
            assert_eq!(fields(json!({"selection": selection})), *expected, "{selection}");
        }
    }

    #[test]
    fn only_the_analysis_step_may_select_and_only_agents_the_workflow_routes_and_that_are_registered() {
        let selection = |agents: &[&str]| ReportedSelection {
            step: String::new(),
            agents: agents.iter().map(|a| a.to_string()).collect(),
            task_type: None,
            reason: None,
        };
        let candidates = ["api-engineer".to_string(), "ui-engineer".to_string()];
        let registered = ["api-engineer".to_string()];
        let check = |agents: &[&str], step: &str| {
            check_selection(selection(agents), step, Some("1"), &candidates, &registered).map_err(|d| {
                d.into_iter().map(|d| format!("{}: {}", d.field.unwrap_or_default(), d.message)).collect::<Vec<_>>()
            })
        };
        assert_eq!(check(&["api-engineer"], "1").unwrap().step, "1");
        assert_eq!(check(&[], "1").unwrap().agents, Vec::<String>::new());
        assert_eq!(
            check(&["api-engineer"], "2").unwrap_err(),
            ["report.selection: only the analysis step may report a selection (step 1)"]
        );
        assert_eq!(
            check(&["ghost", "ui-engineer"], "1").unwrap_err(),
            [
                "report.selection.agents[0]: ghost is not an agent this workflow routes (api-engineer, ui-engineer)",
                "report.selection.agents[1]: ui-engineer is not registered",
            ]
        );
    }
}
