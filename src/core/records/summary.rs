//! The summaries a task's built-in steps write: the activity-log summary of the feedback
//! aggregation step (the sections its `<activity_log>` lists, the categories its
//! `<feedback_collection>` asks each agent for) and the post-flight summary (the workflow's
//! `<post_flight_check>` `<summary>` template filled in).
//!
//! Everything comes from the agents' reports and the task's steps. A figure no report gave is
//! written "not reported", never guessed. This module only builds and renders; the shell reads
//! the reports and stores what is rendered.

use serde::Serialize;
use serde_json::{Map, Value};

use crate::core::records::metrics::AgentMetrics;
use crate::core::records::report::{item_text, tests_in, TestCounts, TestKind};
use crate::core::registry::child_runs::is_under;
use crate::core::registry::instructions::Block;

/// What a missing figure is written as.
pub const NOT_REPORTED: &str = "not reported";

/// The activity log's sections when a workflow does not list its own (the seed's list).
pub const DEFAULT_SECTIONS: [&str; 6] = [
    "Task objectives",
    "Agents involved",
    "Work completed by each agent",
    "Integration points",
    "Performance metrics",
    "Outstanding issues",
];

/// Which summary a built-in step writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// The activity-log summary (`feedback_aggregation`, `task_summary`).
    TaskSummary,
    /// The post-flight summary (`post_flight_summary`).
    PostFlight,
}

impl Kind {
    /// The kind a built-in step writes, by the step's name.
    pub fn of_step(name: &str) -> Kind {
        if name == "post_flight_summary" {
            Kind::PostFlight
        } else {
            Kind::TaskSummary
        }
    }

    /// The start of the R2 object names: `task-summary-{timestamp}.md` as the seed names it.
    pub fn file_stem(self) -> &'static str {
        match self {
            Kind::TaskSummary => "task-summary",
            Kind::PostFlight => "post-flight-summary",
        }
    }
}

/// The task as a summary shows it.
pub struct TaskFacts<'a> {
    pub id: &'a str,
    pub title: &'a str,
    pub description: &'a str,
    pub status: &'a str,
    pub task_type: &'a str,
    pub requirements: Vec<String>,
}

/// One step as a summary shows it: its report only if it succeeded.
pub struct StepFacts<'a> {
    pub key: &'a str,
    pub name: &'a str,
    pub agent: Option<&'a str>,
    pub status: &'a str,
    pub skip_reason: Option<&'a str>,
    pub error: Option<&'a str>,
    pub report: Option<&'a Map<String, Value>>,
    /// For a step that runs a child run: the file it runs, as `name vN`.
    pub child_run: Option<&'a str>,
}

/// What the workflow asks the summary for.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Template {
    /// Per agent, the categories of `<feedback_collection>` `<from_agent name="...">`.
    pub feedback: Vec<(String, Vec<String>)>,
    /// The `CONTENT:` items of `<activity_log>`.
    pub sections: Vec<String>,
    /// The text of the post-flight `<summary>`.
    pub post_flight: Option<String>,
}

impl Template {
    /// Reads the feedback categories and activity-log sections from a step's blocks.
    pub fn from_blocks(blocks: &[Block], post_flight: Option<&str>) -> Template {
        let mut template = Template { post_flight: post_flight.map(String::from), ..Template::default() };
        for block in blocks {
            match block.tag.as_str() {
                "feedback_collection" => {
                    for child in block.children.iter().filter(|c| c.tag == "from_agent") {
                        if let Some(agent) = child.attributes.get("name") {
                            let categories = child.items.iter().map(|i| i.text.clone()).collect();
                            template.feedback.push((agent.clone(), categories));
                        }
                    }
                }
                "activity_log" => {
                    for directive in block.directives.iter().filter(|d| d.keyword == "CONTENT") {
                        template.sections.extend(directive.items.iter().cloned());
                    }
                }
                _ => {}
            }
        }
        template
    }
}

/// A line of a report attributed to the agent that sent it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Attributed {
    pub agent: String,
    pub step: String,
    pub text: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StepLine {
    pub key: String,
    pub name: String,
    pub status: String,
}

/// A step that ran a child run, and the steps of that run (their keys are under its key).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChildRunLine {
    pub key: String,
    pub name: String,
    /// The file it ran, as `name vN`.
    pub file: String,
    pub status: String,
    pub steps: Vec<ChildStepLine>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChildStepLine {
    pub key: String,
    pub name: String,
    pub status: String,
    pub agent: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Feedback {
    pub category: String,
    /// `None` when no report of the agent answered the category.
    pub items: Option<Vec<String>>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AgentWork {
    pub agent: String,
    pub steps: Vec<StepLine>,
    pub files_created: Vec<String>,
    pub files_modified: Vec<String>,
    pub lines_added: u64,
    pub lines_removed: u64,
    /// The categories the workflow asks this agent for, answered or not.
    pub feedback: Vec<Feedback>,
    /// The `RECORD:` items of its steps, by record name.
    pub records: Map<String, Value>,
    pub notes: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Figure {
    pub name: String,
    pub value: f64,
    pub agent: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Tests {
    pub passed: u64,
    pub failed: u64,
    pub skipped: u64,
}

/// A summary with everything it says, before rendering.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    pub kind: Kind,
    pub task_id: String,
    pub title: String,
    pub description: String,
    pub requirements: Vec<String>,
    pub task_type: String,
    pub task_status: String,
    pub written_at: String,
    pub agents: Vec<String>,
    pub work: Vec<AgentWork>,
    /// The child runs the task's steps ran, each with its steps.
    pub child_runs: Vec<ChildRunLine>,
    pub integration_points: Vec<Attributed>,
    pub metrics: Vec<AgentMetrics>,
    /// Every `performance` figure reported, in step order.
    pub performance: Vec<Figure>,
    /// Test counts per kind (`unit`, `integration`, `e2e`), summed over the reports; absent
    /// kinds were not reported.
    pub tests: Map<String, Value>,
    pub outstanding_issues: Vec<Attributed>,
    pub next_steps: Vec<Attributed>,
    /// The activity log's section headings, in order.
    pub sections: Vec<String>,
}

/// Gathers a summary of `kind` from the task, its steps (in workflow order) and their metrics.
pub fn build(
    kind: Kind,
    task: &TaskFacts,
    steps: &[StepFacts],
    metrics: Vec<AgentMetrics>,
    template: &Template,
    written_at: &str,
) -> Summary {
    let mut agents: Vec<String> = Vec::new();
    for agent in steps.iter().filter(|s| s.status != "skipped").filter_map(|s| s.agent) {
        if !agents.iter().any(|a| a == agent) {
            agents.push(agent.to_string());
        }
    }
    let work = agents.iter().map(|agent| work_of(agent, steps, template)).collect();
    let mut summary = Summary {
        kind,
        task_id: task.id.to_string(),
        title: task.title.to_string(),
        description: task.description.to_string(),
        requirements: task.requirements.clone(),
        task_type: task.task_type.to_string(),
        task_status: task.status.to_string(),
        written_at: written_at.to_string(),
        agents,
        work,
        child_runs: child_runs_of(steps),
        integration_points: attributed(steps, "integration_points"),
        metrics,
        performance: Vec::new(),
        tests: Map::new(),
        outstanding_issues: attributed(steps, "outstanding_issues"),
        next_steps: attributed(steps, "next_steps"),
        sections: if template.sections.is_empty() {
            DEFAULT_SECTIONS.iter().map(|s| s.to_string()).collect()
        } else {
            template.sections.clone()
        },
    };
    for step in steps {
        let (Some(agent), Some(report)) = (step.agent, step.report) else {
            if matches!(step.status, "dead" | "failed" | "cancelled") {
                let why = step.error.unwrap_or("no reason recorded");
                summary.outstanding_issues.push(Attributed {
                    agent: step.agent.unwrap_or("switchyard").to_string(),
                    step: step.key.to_string(),
                    text: format!("step {} ({}) is {}: {why}", step.key, step.name, step.status),
                });
            }
            continue;
        };
        for (name, value) in report.get("performance").and_then(Value::as_object).into_iter().flatten() {
            if let Some(value) = value.as_f64() {
                summary.performance.push(Figure { name: name.clone(), value, agent: agent.to_string() });
            }
        }
    }
    for kind in TestKind::ALL {
        let counts: Vec<TestCounts> = steps.iter().filter_map(|s| s.report).filter_map(|r| tests_in(r, kind)).collect();
        if !counts.is_empty() {
            let total = Tests {
                passed: counts.iter().map(|c| c.passed).sum(),
                failed: counts.iter().map(|c| c.failed).sum(),
                skipped: counts.iter().map(|c| c.skipped).sum(),
            };
            summary.tests.insert(kind.as_str().to_string(), serde_json::to_value(total).unwrap_or(Value::Null));
        }
    }
    summary
}

fn strings(report: &Map<String, Value>, field: &str) -> Vec<String> {
    report.get(field).and_then(Value::as_array).map_or_else(Vec::new, |items| items.iter().map(item_text).collect())
}

fn child_runs_of(steps: &[StepFacts]) -> Vec<ChildRunLine> {
    steps
        .iter()
        .filter_map(|parent| {
            Some(ChildRunLine {
                key: parent.key.to_string(),
                name: parent.name.to_string(),
                file: parent.child_run?.to_string(),
                status: parent.status.to_string(),
                steps: steps
                    .iter()
                    .filter(|s| is_under(s.key, parent.key))
                    .map(|s| ChildStepLine {
                        key: s.key.to_string(),
                        name: s.name.to_string(),
                        status: s.status.to_string(),
                        agent: s.agent.map(String::from),
                    })
                    .collect(),
            })
        })
        .collect()
}

fn attributed(steps: &[StepFacts], field: &str) -> Vec<Attributed> {
    let mut lines = Vec::new();
    for step in steps {
        let (Some(agent), Some(report)) = (step.agent, step.report) else { continue };
        for text in strings(report, field) {
            lines.push(Attributed { agent: agent.to_string(), step: step.key.to_string(), text });
        }
    }
    lines
}

/// Lower-case words: "Files created/modified" and "files_created_modified" compare equal.
fn words(text: &str) -> String {
    text.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()).collect::<Vec<_>>().join(" ").to_lowercase()
}

fn work_of(agent: &str, steps: &[StepFacts], template: &Template) -> AgentWork {
    let mine: Vec<&StepFacts> = steps.iter().filter(|s| s.agent == Some(agent) && s.status != "skipped").collect();
    let reports: Vec<&Map<String, Value>> = mine.iter().filter_map(|s| s.report).collect();
    let mut work = AgentWork {
        agent: agent.to_string(),
        steps: mine
            .iter()
            .map(|s| StepLine { key: s.key.to_string(), name: s.name.to_string(), status: s.status.to_string() })
            .collect(),
        files_created: Vec::new(),
        files_modified: Vec::new(),
        lines_added: 0,
        lines_removed: 0,
        feedback: Vec::new(),
        records: Map::new(),
        notes: Vec::new(),
    };
    for report in &reports {
        work.files_created.extend(strings(report, "files_created"));
        work.files_modified.extend(strings(report, "files_modified"));
        work.lines_added += report.get("lines_added").and_then(Value::as_u64).unwrap_or(0);
        work.lines_removed += report.get("lines_removed").and_then(Value::as_u64).unwrap_or(0);
        for (name, items) in report.get("records").and_then(Value::as_object).into_iter().flatten() {
            let entry = work.records.entry(name.clone()).or_insert_with(|| Value::Array(Vec::new()));
            if let (Value::Array(list), Some(items)) = (entry, items.as_array()) {
                list.extend(items.iter().cloned());
            }
        }
        if let Some(notes) = report.get("notes").and_then(Value::as_str) {
            work.notes.push(notes.to_string());
        }
    }
    let categories = template.feedback.iter().find(|(name, _)| name == agent).map(|(_, c)| c.as_slice());
    for category in categories.unwrap_or_default() {
        let items = feedback_items(category, &reports, &work);
        work.feedback.push(Feedback { category: category.clone(), items });
    }
    work
}

/// What an agent's reports say for one feedback category: the `feedback` (or `records`) entry
/// of the same name; the files categories come from the reported file lists.
fn feedback_items(category: &str, reports: &[&Map<String, Value>], work: &AgentWork) -> Option<Vec<String>> {
    let wanted = words(category);
    let mut items = Vec::new();
    let mut answered = false;
    for report in reports {
        for field in ["feedback", "records"] {
            for (name, list) in report.get(field).and_then(Value::as_object).into_iter().flatten() {
                if words(name) == wanted {
                    answered = true;
                    items.extend(list.as_array().into_iter().flatten().map(item_text));
                }
            }
        }
    }
    if !answered && wanted.starts_with("files ") {
        let reported = reports.iter().any(|r| r.contains_key("files_created") || r.contains_key("files_modified"));
        if reported {
            answered = true;
            if wanted.contains("created") {
                items.extend(work.files_created.iter().map(|f| format!("created {f}")));
            }
            if wanted.contains("modified") {
                items.extend(work.files_modified.iter().map(|f| format!("modified {f}")));
            }
        }
    }
    answered.then_some(items)
}

impl Summary {
    /// The activity-log summary as markdown: a heading per section the workflow lists.
    pub fn task_summary_markdown(&self) -> String {
        let mut md = format!("# Task summary: {}\n\n", one_line(&self.title));
        md.push_str(&format!(
            "Task `{}` ({}, {}), written {}.\n",
            self.task_id, self.task_type, self.task_status, self.written_at
        ));
        for section in &self.sections {
            md.push_str(&format!("\n## {}\n\n", one_line(section)));
            md.push_str(&self.section(section));
        }
        md
    }

    /// The body of one activity-log section, chosen by the words of its heading.
    fn section(&self, heading: &str) -> String {
        let words = words(heading);
        let has = |w: &str| words.split(' ').any(|x| x == w);
        if has("objectives") || has("objective") {
            self.objectives_md()
        } else if has("work") {
            self.work_md()
        } else if has("agents") || has("agent") {
            self.agents_md()
        } else if has("integration") {
            attributed_md(&self.integration_points)
        } else if has("performance") || has("metrics") {
            self.metrics_md()
        } else if has("outstanding") || has("issues") {
            attributed_md(&self.outstanding_issues)
        } else if has("next") {
            attributed_md(&self.next_steps)
        } else if has("tests") {
            self.tests_md()
        } else {
            format!("{NOT_REPORTED}\n")
        }
    }

    fn objectives_md(&self) -> String {
        let mut md = format!("{}\n", one_line(&self.title));
        if !self.description.trim().is_empty() {
            md.push_str(&format!("\n{}\n", self.description.trim()));
        }
        if !self.requirements.is_empty() {
            md.push_str("\nRequirements:\n");
            for requirement in &self.requirements {
                md.push_str(&format!("- {}\n", one_line(requirement)));
            }
        }
        md
    }

    fn agents_md(&self) -> String {
        if self.work.is_empty() {
            return "No agent has worked on this task.\n".to_string();
        }
        let mut md = String::new();
        for work in &self.work {
            let steps: Vec<String> =
                work.steps.iter().map(|s| format!("step {} ({}) {}", s.key, s.name, s.status)).collect();
            md.push_str(&format!("- {}: {}\n", work.agent, steps.join("; ")));
        }
        if !self.child_runs.is_empty() {
            md.push_str("\nChild runs:\n");
        }
        for run in &self.child_runs {
            md.push_str(&format!("- step {} ({}) ran {}, {}:\n", run.key, run.name, run.file, run.status));
            for step in &run.steps {
                let by = step.agent.as_deref().map_or_else(String::new, |a| format!(", by {a}"));
                md.push_str(&format!("  - step {} ({}) {}{by}\n", step.key, step.name, step.status));
            }
        }
        md
    }

    fn work_md(&self) -> String {
        if self.work.is_empty() {
            return "No agent has worked on this task.\n".to_string();
        }
        let mut md = String::new();
        for work in &self.work {
            md.push_str(&format!("### {}\n\n", work.agent));
            md.push_str(&format!(
                "- Files: {} created, {} modified; lines +{} -{}\n",
                work.files_created.len(),
                work.files_modified.len(),
                work.lines_added,
                work.lines_removed
            ));
            for feedback in &work.feedback {
                match &feedback.items {
                    None => md.push_str(&format!("- {}: {NOT_REPORTED}\n", one_line(&feedback.category))),
                    Some(items) if items.is_empty() => {
                        md.push_str(&format!("- {}: none\n", one_line(&feedback.category)))
                    }
                    Some(items) => {
                        md.push_str(&format!("- {}:\n", one_line(&feedback.category)));
                        for item in items {
                            md.push_str(&format!("  - {}\n", one_line(item)));
                        }
                    }
                }
            }
            for (name, items) in &work.records {
                md.push_str(&format!("- {}:\n", one_line(name)));
                for item in items.as_array().into_iter().flatten() {
                    md.push_str(&format!("  - {}\n", one_line(&item_text(item))));
                }
            }
            for note in &work.notes {
                md.push_str(&format!("- Notes: {}\n", one_line(note)));
            }
            md.push('\n');
        }
        md
    }

    fn metrics_md(&self) -> String {
        let mut md = String::new();
        if self.metrics.is_empty() {
            md.push_str("No agent has worked on this task.\n");
        } else {
            md.push_str("| Agent | Start | End | Duration | Files created | Files modified | Lines added | Lines removed | Attempts | Outcome | Turns | Tokens in | Tokens out | Cost (USD) |\n");
            md.push_str("|---|---|---|---|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|\n");
            let shown = |value: Option<String>| value.unwrap_or_else(|| NOT_REPORTED.to_string());
            for m in &self.metrics {
                md.push_str(&format!(
                    "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
                    m.agent,
                    m.start_time.as_deref().unwrap_or("-"),
                    m.end_time.as_deref().unwrap_or("-"),
                    m.duration.as_deref().unwrap_or("-"),
                    m.files_created,
                    m.files_modified,
                    m.lines_added,
                    m.lines_removed,
                    m.attempts,
                    m.outcome,
                    shown(m.usage.turns.map(|n| n.to_string())),
                    shown(m.usage.input_tokens.map(|n| n.to_string())),
                    shown(m.usage.output_tokens.map(|n| n.to_string())),
                    shown(m.usage.cost_usd.map(number)),
                ));
            }
            let total = crate::core::records::metrics::total_usage(&self.metrics);
            if let Some(cost) = total.cost_usd {
                md.push_str(&format!("\nTotal cost as the agents' tools reported it: ${}\n", number(cost)));
            }
        }
        if !self.performance.is_empty() {
            md.push_str("\nReported figures:\n");
            for figure in &self.performance {
                md.push_str(&format!("- {}: {} ({})\n", figure.name, number(figure.value), figure.agent));
            }
        }
        md
    }

    fn tests_md(&self) -> String {
        let mut md = String::new();
        for kind in TestKind::ALL {
            md.push_str(&format!("- {}: {}\n", kind.as_str(), self.tests_passed(kind)));
        }
        md
    }

    /// Passed tests of one kind as the post-flight template shows them.
    fn tests_passed(&self, kind: TestKind) -> String {
        let Some(tests) = self.tests.get(kind.as_str()) else { return NOT_REPORTED.to_string() };
        let get = |name: &str| tests.get(name).and_then(Value::as_u64).unwrap_or(0);
        let mut text = get("passed").to_string();
        let others: Vec<String> = [("failed", get("failed")), ("skipped", get("skipped"))]
            .iter()
            .filter(|(_, n)| *n > 0)
            .map(|(name, n)| format!("{n} {name}"))
            .collect();
        if !others.is_empty() {
            text.push_str(&format!(" ({})", others.join(", ")));
        }
        text
    }

    /// The post-flight `<summary>` template with every `{placeholder}` filled in. A bullet that is
    /// only a placeholder for a list becomes one bullet per entry.
    pub fn post_flight_markdown(&self, template: &str) -> String {
        let mut md = String::new();
        for line in template.lines() {
            let Some((open, close)) = line.find('{').zip(line.rfind('}')).filter(|(o, c)| o < c) else {
                md.push_str(line);
                md.push('\n');
                continue;
            };
            let placeholder = &line[open + 1..close];
            let before = &line[..open];
            let label = before.trim().trim_start_matches(['-', '*']).trim().trim_end_matches(':').trim();
            match self.fill(label, placeholder) {
                Fill::List(items) if before.trim() == "-" || before.trim() == "*" => {
                    if items.is_empty() {
                        md.push_str(&format!("{before}none\n"));
                    }
                    for item in items {
                        md.push_str(&format!("{before}{}{}\n", one_line(&item), &line[close + 1..]));
                    }
                }
                Fill::List(items) => {
                    let text = if items.is_empty() { "none".to_string() } else { items.join(", ") };
                    md.push_str(&format!("{before}{}{}\n", one_line(&text), &line[close + 1..]));
                }
                Fill::Text(text) => md.push_str(&format!("{before}{}{}\n", one_line(&text), &line[close + 1..])),
            }
        }
        md
    }

    /// What a placeholder stands for, from its words and the label before it.
    fn fill(&self, label: &str, placeholder: &str) -> Fill {
        let (label, wanted) = (words(label), words(placeholder));
        let has = |text: &str, w: &str| text.split(' ').any(|x| x == w);
        if let Some(kind) = TestKind::ALL.into_iter().find(|k| words(k.as_str()) == label) {
            return Fill::Text(self.tests_passed(kind));
        }
        if has(&wanted, "agents") || has(&wanted, "agent") {
            return Fill::List(self.agents.clone());
        }
        if has(&wanted, "changes") || has(&wanted, "work") {
            return Fill::List(self.work.iter().map(work_line).collect());
        }
        if has(&wanted, "files") {
            let mut files: Vec<String> =
                self.work.iter().flat_map(|w| w.files_created.iter().chain(&w.files_modified).cloned()).collect();
            files.sort();
            files.dedup();
            return Fill::List(files);
        }
        if has(&wanted, "follow") || has(&wanted, "next") || has(&label, "next") {
            return Fill::List(self.next_steps.iter().map(|n| n.text.clone()).collect());
        }
        if has(&wanted, "issues") || has(&wanted, "outstanding") {
            return Fill::List(self.outstanding_issues.iter().map(|n| n.text.clone()).collect());
        }
        match self.figure(&label) {
            Some(text) => Fill::Text(text),
            None => Fill::Text(NOT_REPORTED.to_string()),
        }
    }

    /// The last reported performance figure a label names: "Bundle Size" matches
    /// `bundle_size` and `bundle_size_kb` (shown as "42 KB").
    fn figure(&self, label: &str) -> Option<String> {
        let name = label.replace(' ', "_");
        if name.is_empty() {
            return None;
        }
        let figure =
            self.performance.iter().rev().find(|f| f.name == name || f.name.starts_with(&format!("{name}_")))?;
        let unit = match figure.name[name.len()..].trim_start_matches('_') {
            "" => "",
            "ms" => " ms",
            "s" | "seconds" => " s",
            "kb" => " KB",
            "mb" => " MB",
            "bytes" => " bytes",
            "percent" => "%",
            other => return Some(format!("{} {other}", number(figure.value))),
        };
        Some(format!("{}{unit}", number(figure.value)))
    }
}

enum Fill {
    List(Vec<String>),
    Text(String),
}

fn work_line(work: &AgentWork) -> String {
    let steps: Vec<String> = work.steps.iter().map(|s| format!("{} {}", s.name, s.status)).collect();
    format!(
        "{}: {}; {} files created, {} modified, +{} -{} lines",
        work.agent,
        steps.join(", "),
        work.files_created.len(),
        work.files_modified.len(),
        work.lines_added,
        work.lines_removed
    )
}

fn attributed_md(lines: &[Attributed]) -> String {
    if lines.is_empty() {
        return "None reported.\n".to_string();
    }
    lines.iter().map(|l| format!("- {} ({}, step {})\n", one_line(&l.text), l.agent, l.step)).collect()
}

/// A reported string on one line, so that it cannot start a heading or break a list.
fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// 97 rather than 97.0; fractions as sent.
fn number(value: f64) -> String {
    if value.fract() == 0.0 && value.abs() < 1e15 {
        format!("{}", value as i64)
    } else {
        value.to_string()
    }
}

#[cfg(test)]
mod tests;
