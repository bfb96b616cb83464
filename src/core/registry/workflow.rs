//! Workflow definitions: what the engine runs, made from an instruction file or posted as JSON.
//!
//! A [`Definition`] is the instruction file reduced to what a run needs and what a person wants
//! to see: ordered steps with their key, agent (or auto-select requirements), parallel group,
//! optionality, dependencies and structured blocks, plus the flight checks. Dependencies are
//! never written by hand; they follow from order and groups:
//!
//! - a step depends on the step or group before it;
//! - every member of a parallel group depends on what precedes the group, and the step after
//!   the group depends on every member (fan-in);
//! - a group marked `optional="true"` (or a step marked `optional` or `conditional`) may be
//!   skipped when analysis assigns it no agent.
//!
//! Versions are given by the store; a definition, once stored, never changes.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::core::base::limits::{
    LEASE_MS_MAX, LEASE_MS_MIN, ROUTING_RULES_MAX, SCHEDULE_TIMEOUT_MS_MAX, SCHEDULE_TIMEOUT_MS_MIN, STEPS_MAX,
    STEP_TIMEOUT_MS_MAX, STEP_TIMEOUT_MS_MIN,
};
use crate::core::base::time::parse_duration_ms;
use crate::core::edge::error::Detail;
use crate::core::registry::analysis::{AgentProfile, RoutingInput, Rule};
use crate::core::registry::instructions::{
    self, is_agent_name, Block, FlightCheck, FlowEntry, InstructionFile, Problem, Severity, StepExecute,
};

/// Longest workflow name: names appear in URLs and task submissions (`name@version`).
pub const WORKFLOW_NAME_BYTES_MAX: usize = 64;

/// The `subagent` value that asks for dynamic selection.
pub const AUTO_SELECT: &str = "auto-select";

/// Steps without an agent that the Worker runs itself, by step name: the feedback aggregation
/// and summaries of the seed workflow.
pub const BUILTIN_STEPS: &[&str] = &["feedback_aggregation", "task_summary", "post_flight_summary"];

/// The main agent when neither the task, the workflow nor the `MAIN_AGENT` var names one. It is
/// one of the default agents, so a fresh installation can run steps that name no subagent.
pub const DEFAULT_MAIN_AGENT: &str = "main-agent";

/// Requirements of an auto-select step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AutoSelect {
    pub requirements: Vec<String>,
}

/// One step of a workflow.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StepDefinition {
    /// The step number from the file: `1`, `2a`, `10`. Unique in the workflow.
    pub key: String,
    pub name: String,
    #[serde(default)]
    pub title: Option<String>,
    /// The named agent, or `None` for a built-in step, an auto-select step or an unassigned one.
    #[serde(default)]
    pub agent: Option<String>,
    #[serde(default)]
    pub auto_select: Option<AutoSelect>,
    /// The parallel group this step belongs to, e.g. `parallel-1`.
    #[serde(default)]
    pub group: Option<String>,
    #[serde(default)]
    pub optional: bool,
    /// Derived from order and groups; accepted on input only when it says the same.
    #[serde(default)]
    pub depends_on: Vec<String>,
    #[serde(default)]
    pub phase: Option<String>,
    /// Every attribute of the `<step>` tag as written (`priority`, `conditional`, ...).
    #[serde(default)]
    pub attributes: BTreeMap<String, String>,
    #[serde(default)]
    pub text: String,
    /// The step's structured blocks: tasks, logging, checklists, test categories...
    #[serde(default)]
    pub blocks: Vec<Block>,
    /// The conditions that gate the step (`condition="..."`, `IF ...: SKIP this step`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<StepCondition>,
    /// The posted instruction file the step runs as a child run (`EXECUTE: @path`): the step
    /// is done when that file's steps are.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub execute: Option<StepExecute>,
}

/// A condition on a step, as the file writes it, and what switchyard evaluates of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StepCondition {
    /// The line of the step in the file (none for a definition posted as JSON).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line: Option<u32>,
    /// As written: `step 2 reported database_changes`, or Agent OS's prose.
    pub text: String,
    pub when: ConditionWhen,
    /// Read from `text` when it is a form switchyard evaluates (on input, recomputed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check: Option<ConditionCheck>,
}

/// What a condition does to its step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConditionWhen {
    /// `IF <condition>: SKIP this step`.
    SkipIf,
    /// `IF <condition>: ... ELSE: SKIP this step`.
    SkipUnless,
    /// `<step condition="...">`: the step runs only when it holds.
    RunIf,
}

/// A condition switchyard evaluates: an earlier step's outcome, or a field of its report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConditionCheck {
    pub step: String,
    pub is: CheckIs,
    /// The report field, for `reported` and `not_reported`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckIs {
    Succeeded,
    Skipped,
    Reported,
    NotReported,
}

/// The forms of condition switchyard evaluates, for messages.
pub const CONDITION_FORMS: &str =
    "\"step N succeeded\", \"step N was skipped\", \"step N reported <field>\", \"step N reported no <field>\"";

/// Reads a condition in one of the [`CONDITION_FORMS`] (case and a trailing `:` or `.` aside).
pub fn read_check(text: &str) -> Option<ConditionCheck> {
    let lower = text.trim().trim_end_matches([':', '.']).to_lowercase();
    let words: Vec<&str> = lower.split_whitespace().collect();
    let (first, key, rest) = match words.as_slice() {
        [first, key, rest @ ..] => (*first, key.trim_end_matches("'s").trim_end_matches('’'), rest),
        _ => return None,
    };
    if first != "step" || !is_step_key(key) {
        return None;
    }
    let field_name = |f: &str| {
        (!f.is_empty() && f.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'))
            .then(|| f.to_string())
    };
    let (is, field) = match rest {
        ["succeeded"] | ["was", "successful"] | ["passed"] => (CheckIs::Succeeded, None),
        ["was", "skipped"] | ["skipped"] => (CheckIs::Skipped, None),
        ["reported", "no", f] | ["report", "has", "no", f] => (CheckIs::NotReported, Some(field_name(f)?)),
        ["reported", f] | ["report", "has", f] => (CheckIs::Reported, Some(field_name(f)?)),
        _ => return None,
    };
    Some(ConditionCheck { step: key.to_string(), is, field })
}

/// Blocks whose `IF ...` / `ELSE` / `SKIP` lines gate the step, as Agent OS writes them.
fn is_condition_block(tag: &str) -> bool {
    tag.starts_with("conditional") || matches!(tag, "decision_tree" | "preliminary_check")
}

/// The conditions of a parsed step: its `condition=` attribute, and each `IF` of its
/// conditional blocks whose branch (or `ELSE` branch) says `SKIP`.
fn conditions_of(step: &instructions::Step) -> Vec<StepCondition> {
    let line = Some(step.line);
    let new = |text: &str, when| StepCondition { line, text: text.to_string(), when, check: read_check(text) };
    let mut found = Vec::new();
    if let Some(text) = step.attributes.get("condition").filter(|t| !t.trim().is_empty()) {
        found.push(new(text.trim(), ConditionWhen::RunIf));
    }
    let mut stack: Vec<&Block> = step.blocks.iter().collect();
    while let Some(block) = stack.pop() {
        stack.extend(block.children.iter());
        if !is_condition_block(&block.tag) {
            continue;
        }
        let mut current: Option<(String, bool)> = None;
        for raw in block.text.lines() {
            let line_text = raw.trim();
            if let Some(condition) = line_text.strip_prefix("IF ").and_then(|c| c.trim().strip_suffix(':')) {
                current = Some((condition.trim().to_string(), false));
            } else if line_text.starts_with("ELSE") {
                if let Some((_, in_else)) = current.as_mut() {
                    *in_else = true;
                }
            } else if line_text.starts_with("SKIP") {
                if let Some((condition, in_else)) = current.take() {
                    found
                        .push(new(&condition, if in_else { ConditionWhen::SkipUnless } else { ConditionWhen::SkipIf }));
                }
            }
        }
    }
    found
}

impl StepDefinition {
    /// Whether the main agent does this step: it names no agent, does not ask for one to be
    /// selected and is not one the Worker runs itself (as in Agent OS, where a step without
    /// `subagent=` is done by the agent running the flow).
    pub fn is_main_agents(&self) -> bool {
        self.agent.is_none() && self.auto_select.is_none() && !self.is_builtin() && self.execute.is_none()
    }

    pub fn is_builtin(&self) -> bool {
        self.agent.is_none()
            && self.auto_select.is_none()
            && self.execute.is_none()
            && BUILTIN_STEPS.contains(&self.name.as_str())
    }
}

/// One `IF <condition>: ASSIGN: <agents>` of a step's `<agent_selection>`: when the task fits
/// the condition, the agents it assigns are needed. Analysis decides which rules fire; an
/// optional step of an agent that some rule assigns runs only when a rule that fired assigns it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoutingRule {
    /// The line of the `IF` in the file (none for a rule posted as JSON).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line: Option<u32>,
    /// The key of the step whose `<agent_selection>` holds the rule.
    #[serde(default)]
    pub step: String,
    /// As written: `the task uses Cloudflare services (D1, KV, R2, Queues)`.
    pub condition: String,
    /// As written: `cloudflare-specialist`, or `both specialists in parallel`.
    pub assign: String,
    /// The agents `assign` names, read from it (on input, recomputed).
    #[serde(default)]
    pub agents: Vec<String>,
    /// Whether `assign` means the agents of the other rules that fire ("both specialists",
    /// "all of them"), read from it (on input, recomputed).
    #[serde(default)]
    pub others: bool,
}

/// A workflow as stored and served (without its id, version and time, which the store adds).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Definition {
    pub name: String,
    #[serde(default)]
    pub title: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub overview: Option<String>,
    #[serde(default)]
    pub front_matter: Map<String, Value>,
    /// The agent that does every step naming no agent (front matter `main_agent:`); unset, the
    /// task's or the configured one does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub main_agent: Option<String>,
    #[serde(default)]
    pub pre_flight: Option<FlightCheck>,
    #[serde(default)]
    pub post_flight: Option<FlightCheck>,
    pub steps: Vec<StepDefinition>,
    /// Top-level blocks of the file outside the flow (kept, not interpreted).
    #[serde(default)]
    pub blocks: Vec<Block>,
    /// The `<agent_selection>` rules, in file order. Without any, the capabilities of the agents
    /// of optional steps decide which of those steps a task needs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub routing: Vec<RoutingRule>,
    /// For a rules file (no `<process_flow>`, like Agent OS's `meta/pre-flight.md`): its text,
    /// which the flight checks of other files attach to their steps. A rules file has no steps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rules: Option<String>,
}

/// One `EXECUTE:` of a flight check: where it is, what it names, and the posted file that is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlightExecute {
    /// `pre_flight` or `post_flight`.
    pub check: &'static str,
    pub path: String,
    /// The name of the posted file the path addresses, if it can address one.
    pub name: Option<String>,
    pub line: Option<u32>,
    pub index: usize,
}

impl FlightExecute {
    /// A problem about this `EXECUTE`, at its line or field.
    pub fn problem(&self, message: String) -> Detail {
        located(self.line, self.check, || format!("{}.executes[{}]", self.check, self.index), message)
    }
}

/// A problem about something that has a line when it came from a file: the line and the
/// `field` it belongs to, or (posted as JSON) the `indexed` field that locates it.
pub(crate) fn located(line: Option<u32>, field: &str, indexed: impl FnOnce() -> String, message: String) -> Detail {
    match line {
        Some(line) => Detail { line: Some(line), ..Detail::field(field, message) },
        None => Detail::field(indexed(), message),
    }
}

/// What to do about an `EXECUTE` of a file that is not posted.
pub fn post_first(name: &str) -> String {
    format!("post that file first, as {name} (POST /v1/workflows?name={name})")
}

/// A rules file a task's flight checks attach, at the version fixed at submission.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FlightRules {
    /// `pre_flight` (attached to every step) or `post_flight` (to the last agent step).
    pub check: &'static str,
    pub name: String,
    pub version: i64,
    pub text: String,
}

/// The name of the posted file an `EXECUTE` path addresses: `@.agent-os/instructions/meta/
/// pre-flight.md` and `pre-flight` both address `pre-flight`, the file's name without its
/// folders and extension.
pub fn name_of_path(path: &str) -> Option<String> {
    let file = path.trim().trim_start_matches('@').rsplit('/').next()?;
    let stem = file.strip_suffix(".md").unwrap_or(file);
    let name = slug(stem);
    is_workflow_name(&name).then_some(name)
}

impl Definition {
    /// The step that analyses the task, whose report may choose the agents (`report.selection`):
    /// the one whose `<agent_selection>` holds the routing rules, else the first.
    pub fn analysis_step(&self) -> Option<&str> {
        self.routing
            .iter()
            .map(|r| r.step.as_str())
            .find(|k| !k.is_empty())
            .or(self.steps.first().map(|s| s.key.as_str()))
    }

    /// Every `EXECUTE:` of the flight checks, pre-flight first.
    pub fn flight_executes(&self) -> Vec<FlightExecute> {
        let checks = [("pre_flight", &self.pre_flight), ("post_flight", &self.post_flight)];
        let mut found = Vec::new();
        for (check, flight) in checks {
            let Some(flight) = flight else { continue };
            for (index, path) in flight.executes.iter().enumerate() {
                let line = flight.lines.get(index).copied();
                found.push(FlightExecute { check, path: path.clone(), name: name_of_path(path), line, index });
            }
        }
        found
    }

    /// A rules file made from a file without a flow: its name, front matter, title and text.
    pub fn rules_file(name: String, file: &InstructionFile, text: &str) -> Definition {
        Definition {
            name,
            title: file.title.clone(),
            description: file.front_matter.get("description").and_then(Value::as_str).map(String::from),
            overview: file.overview.clone(),
            front_matter: file.front_matter.clone(),
            main_agent: None,
            pre_flight: None,
            post_flight: None,
            steps: Vec::new(),
            blocks: Vec::new(),
            routing: Vec::new(),
            rules: Some(text.to_string()),
        }
    }
}

impl Definition {
    /// Every agent the workflow names (not counting auto-select), sorted, without repeats.
    pub fn agents(&self) -> Vec<&str> {
        let set: BTreeSet<&str> = self.steps.iter().filter_map(|s| s.agent.as_deref()).collect();
        set.into_iter().collect()
    }
}

impl Definition {
    /// What routing reads from the workflow: its rules, or without any, the agents of its
    /// optional steps, whose capabilities then decide.
    pub fn routing_input<'a>(&'a self, agents: &'a [AgentProfile<'a>]) -> RoutingInput<'a> {
        let rules = self
            .routing
            .iter()
            .map(|r| Rule { line: r.line, condition: &r.condition, agents: &r.agents, others: r.others })
            .collect();
        let mut routable: Vec<&str> = Vec::new();
        for agent in self.steps.iter().filter(|s| s.optional).filter_map(|s| s.agent.as_deref()) {
            if !routable.contains(&agent) {
                routable.push(agent);
            }
        }
        RoutingInput { rules, routable, agents }
    }
}

/// The agents a definition names that are not in `registered`, sorted: a task on this workflow
/// must be refused with these names until they are registered.
pub fn missing_agents<'a>(definition: &'a Definition, registered: &[&str]) -> Vec<&'a str> {
    definition.agents().into_iter().filter(|agent| !registered.contains(agent)).collect()
}

/// Builds a definition from a parsed instruction file. `name` is the name to store it under
/// (from the request, the front matter `name`, or the title).
pub fn from_instructions(name: String, file: &InstructionFile) -> Definition {
    let mut steps = Vec::new();
    let mut group_count = 0;
    for entry in &file.flow {
        match entry {
            FlowEntry::Step(step) => steps.push((step, None, step_optional(step))),
            FlowEntry::Group(group) => {
                group_count += 1;
                let label = format!("parallel-{group_count}");
                for step in &group.steps {
                    steps.push((step, Some(label.clone()), group.optional || step_optional(step)));
                }
            }
        }
    }
    let mut definition = Definition {
        name,
        title: file.title.clone(),
        description: file.front_matter.get("description").and_then(Value::as_str).map(String::from),
        overview: file.overview.clone(),
        front_matter: file.front_matter.clone(),
        // Anything but text is kept as written, for validation to refuse.
        main_agent: file
            .front_matter
            .get("main_agent")
            .map(|v| v.as_str().map_or_else(|| v.to_string(), |a| a.trim().to_string())),
        pre_flight: file.pre_flight.clone(),
        post_flight: file.post_flight.clone(),
        steps: steps
            .into_iter()
            .map(|(step, group, optional)| {
                let auto = step.subagent.as_deref() == Some(AUTO_SELECT);
                StepDefinition {
                    key: step.number.clone(),
                    name: step.name.clone().unwrap_or_else(|| format!("step_{}", step.number)),
                    title: step.title.clone(),
                    agent: if auto { None } else { step.subagent.clone() },
                    auto_select: auto.then(|| AutoSelect { requirements: step.requirements.clone() }),
                    group,
                    optional,
                    depends_on: Vec::new(),
                    phase: step.phase.clone(),
                    attributes: step.attributes.clone(),
                    text: step.text.clone(),
                    blocks: step.blocks.clone(),
                    conditions: conditions_of(step),
                    execute: step.execute.clone(),
                }
            })
            .collect(),
        blocks: file.blocks.clone(),
        routing: Vec::new(),
        rules: None,
    };
    derive_dependencies(&mut definition.steps);
    definition.routing = file.steps().flat_map(|step| rules_of(&step.number, &step.selection)).collect();
    read_assignments(&mut definition);
    definition
}

/// Pairs each `IF` with the `ASSIGN` lines after it. An `ASSIGN` with no `IF` before it becomes
/// a rule without a condition, for validation to point at.
fn rules_of(step: &str, directives: &[(u32, instructions::Directive)]) -> Vec<RoutingRule> {
    let mut rules: Vec<RoutingRule> = Vec::new();
    let new_rule = |line: u32, condition: &str| RoutingRule {
        line: Some(line),
        step: step.to_string(),
        condition: condition.to_string(),
        assign: String::new(),
        agents: Vec::new(),
        others: false,
    };
    for (line, directive) in directives {
        match directive.keyword.as_str() {
            "IF" => rules.push(new_rule(*line, &directive.value)),
            "ASSIGN" => {
                if rules.last().is_none_or(|r| !r.assign.is_empty()) {
                    rules.push(new_rule(*line, ""));
                }
                if let Some(rule) = rules.last_mut() {
                    rule.assign = directive.value.clone();
                }
            }
            _ => {}
        }
    }
    rules
}

/// Words of an `ASSIGN` that mean "the agents of the other rules": "both specialists", "all of
/// them", "each agent".
const OTHERS_WORDS: [&str; 4] = ["both", "all", "each", "every"];

/// Reads each rule's `assign` into agent names, or "the others": a list of agent names (`a, b`,
/// `a and b`) names them; otherwise the step agents it mentions are named, and "both" or "all"
/// means the others.
pub fn read_assignments(definition: &mut Definition) {
    let step_agents: Vec<String> = definition.agents().into_iter().map(String::from).collect();
    for rule in &mut definition.routing {
        let words: Vec<&str> = rule
            .assign
            .split(|c: char| c.is_whitespace() || matches!(c, ',' | '&' | '+' | ';' | '(' | ')' | '`' | '"' | '\''))
            .filter(|w| !w.is_empty())
            .collect();
        let names: Vec<&str> = words.iter().copied().filter(|w| !matches!(*w, "and" | "or")).collect();
        rule.agents = if !names.is_empty() && names.iter().all(|w| is_agent_name(w) && w.contains('-')) {
            names.iter().map(|w| w.to_string()).collect()
        } else {
            step_agents.iter().filter(|a| words.contains(&a.as_str())).cloned().collect()
        };
        rule.others = rule.agents.is_empty() && words.iter().any(|w| OTHERS_WORDS.contains(&w.to_lowercase().as_str()));
    }
}

/// What is wrong with the routing rules: a rule without a condition or an assignment, one that
/// names no agent, or one naming an agent no step of the workflow names (it could never change
/// what runs). Each problem says the rule's line, when it has one.
pub fn routing_problems(definition: &Definition) -> Vec<Detail> {
    let step_agents = definition.agents();
    let mut details = Vec::new();
    if definition.routing.len() > ROUTING_RULES_MAX {
        let count = definition.routing.len();
        details.push(Detail::field("routing", format!("{count} routing rules; the limit is {ROUTING_RULES_MAX}")));
    }
    for (index, rule) in definition.routing.iter().enumerate() {
        let problem = |message: String| located(rule.line, "routing", || format!("routing[{index}]"), message);
        if rule.condition.trim().is_empty() {
            details.push(problem(format!("ASSIGN: {} has no IF before it", rule.assign)));
        } else if rule.assign.trim().is_empty() {
            details.push(problem(format!("IF {}: is followed by no ASSIGN", rule.condition)));
        } else if rule.agents.is_empty() && !rule.others {
            details.push(problem(format!(
                "ASSIGN: {} names no agent; write agent names, or \"both specialists\" for the agents of the other rules",
                rule.assign
            )));
        }
        for agent in &rule.agents {
            if !step_agents.contains(&agent.as_str()) {
                details.push(problem(format!("ASSIGN: {agent} is an agent no step of this workflow names")));
            }
        }
    }
    details
}

fn step_optional(step: &instructions::Step) -> bool {
    step.flag("optional") || step.flag("conditional")
}

/// The name of the built-in step that writes the post-flight summary.
pub const POST_FLIGHT_STEP: &str = "post_flight_summary";

/// The steps a task runs: the workflow's, plus a last built-in `post_flight_summary` step when
/// the workflow has a post-flight `<summary>` template and no step of that name, so the summary
/// is written after every other step and before the task succeeds.
pub fn steps_to_run(definition: &Definition) -> Vec<StepDefinition> {
    let mut steps = definition.steps.clone();
    let has_template = definition.post_flight.as_ref().and_then(FlightCheck::summary_template).is_some();
    if !has_template || steps.iter().any(|s| s.name == POST_FLIGHT_STEP) {
        return steps;
    }
    let last_number =
        steps.iter().filter_map(|s| s.key.split(|c: char| !c.is_ascii_digit()).next()?.parse::<u64>().ok()).max();
    steps.push(StepDefinition {
        key: (last_number.unwrap_or(0) + 1).to_string(),
        name: POST_FLIGHT_STEP.to_string(),
        title: Some("Post-flight summary".to_string()),
        agent: None,
        auto_select: None,
        group: None,
        optional: false,
        depends_on: Vec::new(),
        phase: None,
        attributes: BTreeMap::new(),
        text: "Fills in the workflow's post-flight summary template from the agents' reports.".to_string(),
        blocks: Vec::new(),
        conditions: Vec::new(),
        execute: None,
    });
    derive_dependencies(&mut steps);
    steps
}

/// A step's own timeouts, from its `<step>` attributes; each unset one is the agent's.
///
/// - `schedule_timeout="1h"`: how long the step may wait to be leased (schedule-to-start);
/// - `timeout="30m"`: how long one attempt may run (start-to-close);
/// - `heartbeat="2m"`: how long a lease lasts between heartbeats.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StepTimeouts {
    pub schedule_ms: Option<i64>,
    pub attempt_ms: Option<i64>,
    pub heartbeat_ms: Option<i64>,
}

/// The timeout attributes, their bounds, and what each means, for messages.
const TIMEOUT_ATTRIBUTES: [(&str, i64, i64); 3] = [
    ("schedule_timeout", SCHEDULE_TIMEOUT_MS_MIN, SCHEDULE_TIMEOUT_MS_MAX),
    ("timeout", STEP_TIMEOUT_MS_MIN, STEP_TIMEOUT_MS_MAX),
    ("heartbeat", LEASE_MS_MIN, LEASE_MS_MAX),
];

/// A step's timeouts, or what is wrong with each attribute that is not a duration within its
/// bounds (`field` names where the step is, for the message).
pub fn timeouts_of(step: &StepDefinition, field: &str) -> Result<StepTimeouts, Vec<Detail>> {
    let mut values = [None; 3];
    let mut details = Vec::new();
    for (slot, (name, min, max)) in values.iter_mut().zip(TIMEOUT_ATTRIBUTES) {
        let Some(text) = step.attributes.get(name) else { continue };
        match parse_duration_ms(text).filter(|ms| (min..=max).contains(ms)) {
            Some(ms) => *slot = Some(ms),
            None => details.push(Detail::field(
                format!("{field}.attributes.{name}"),
                format!(
                    "step {}: {text:?} is not a duration from {}s to {}h: whole digits and a unit (ms, s, m, h, d), like 30m",
                    step.key,
                    min / 1000,
                    max / 3_600_000
                ),
            )),
        }
    }
    if !details.is_empty() {
        return Err(details);
    }
    Ok(StepTimeouts { schedule_ms: values[0], attempt_ms: values[1], heartbeat_ms: values[2] })
}

/// What is wrong with the main agent, the routing rules and the steps' attributes, however the
/// workflow was written.
pub fn definition_problems(definition: &Definition) -> Vec<Detail> {
    let mut details = routing_problems(definition);
    if let Some(agent) = &definition.main_agent {
        if let Some(problem) = agent_name_problem(agent) {
            details.push(Detail::field("main_agent", format!("{agent:?} {problem}")));
        }
    }
    for (index, step) in definition.steps.iter().enumerate() {
        if let Err(found) = timeouts_of(step, &format!("steps[{index}]")) {
            details.extend(found);
        }
        let earlier: Vec<&str> = definition.steps[..index].iter().map(|s| s.key.as_str()).collect();
        for (at, condition) in step.conditions.iter().enumerate() {
            let Some(check) = &condition.check else { continue };
            if !earlier.contains(&check.step.as_str()) {
                let message = format!(
                    "step {}: the condition \"{}\" refers to step {}, which does not come before it",
                    step.key, condition.text, check.step
                );
                let field = format!("steps[{index}].conditions");
                details.push(located(condition.line, &field, || format!("{field}[{at}]"), message));
            }
        }
    }
    details
}

/// A warning for each condition switchyard does not evaluate: it reaches the agent with the
/// step's instructions, to decide itself.
pub fn condition_warnings(definition: &Definition) -> Vec<Detail> {
    let mut warnings = Vec::new();
    for (index, step) in definition.steps.iter().enumerate() {
        for condition in step.conditions.iter().filter(|c| c.check.is_none()) {
            let message = format!(
                "step {}: switchyard does not evaluate the condition \"{}\" (it reads {CONDITION_FORMS}); it is \
                 passed to the agent with the step's instructions",
                step.key, condition.text
            );
            let field = format!("steps[{index}].conditions");
            warnings.push(located(condition.line, &field, || field.clone(), message));
        }
    }
    warnings
}

/// Fills `depends_on` from order and groups (see the module documentation).
pub fn derive_dependencies(steps: &mut [StepDefinition]) {
    let mut previous: Vec<String> = Vec::new();
    let mut i = 0;
    while i < steps.len() {
        let group = steps[i].group.clone();
        let end = match &group {
            Some(label) => i + steps[i..].iter().take_while(|s| s.group.as_ref() == Some(label)).count(),
            None => i + 1,
        };
        for step in &mut steps[i..end] {
            step.depends_on = previous.clone();
        }
        previous = steps[i..end].iter().map(|s| s.key.clone()).collect();
        i = end;
    }
}

/// Checks a definition posted as JSON (a parsed file is checked by the parser); returns every
/// problem. Dependencies are re-derived; a `depends_on` that disagrees is a problem.
pub fn validate(definition: &mut Definition) -> Vec<Detail> {
    let mut details = Vec::new();
    if !is_workflow_name(&definition.name) {
        details.push(Detail::field("name", name_rule()));
    }
    match (&definition.rules, definition.steps.is_empty()) {
        (None, true) => details.push(Detail::field("steps", "a workflow needs at least one step, or rules text")),
        (Some(_), false) => details.push(Detail::field("rules", "a rules file has no steps")),
        (Some(rules), true) if rules.trim().is_empty() => details.push(Detail::field("rules", "is empty")),
        _ => {}
    }
    if definition.steps.len() > STEPS_MAX {
        details.push(Detail::field("steps", format!("{} steps; the limit is {STEPS_MAX}", definition.steps.len())));
    }
    let mut keys = BTreeSet::new();
    let mut closed_groups: BTreeSet<&str> = BTreeSet::new();
    let mut current_group: Option<&str> = None;
    for (index, step) in definition.steps.iter().enumerate() {
        let field = |name: &str| format!("steps[{index}].{name}");
        if !is_step_key(&step.key) {
            details.push(Detail::field(field("key"), "must be digits followed by optional letters, like 2a"));
        } else if !keys.insert(step.key.as_str()) {
            details.push(Detail::field(field("key"), format!("step key {} is used twice", step.key)));
        }
        if step.name.is_empty()
            || step.name.len() > 64
            || !step.name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        {
            details.push(Detail::field(field("name"), "must be 1 to 64 letters, digits, underscores or hyphens"));
        }
        match (&step.agent, &step.auto_select) {
            (Some(agent), _) if agent == AUTO_SELECT && is_agent_name(agent) => {
                details.push(Detail::field(field("agent"), "auto-select is written as auto_select with requirements"));
            }
            (Some(agent), _) if agent_name_problem(agent).is_some() => {
                let problem = agent_name_problem(agent).unwrap_or_default();
                details.push(Detail::field(field("agent"), problem));
            }
            (Some(_), Some(_)) => {
                details.push(Detail::field(field("auto_select"), "a step has either an agent or auto_select, not both"))
            }
            (None, Some(auto)) if auto.requirements.iter().all(|r| r.trim().is_empty()) => {
                details.push(Detail::field(field("auto_select.requirements"), "must list at least one requirement"));
            }
            _ => {}
        }
        // A group's steps must be adjacent: the group is one stage of the flow.
        if current_group != step.group.as_deref() {
            if let Some(previous) = current_group {
                closed_groups.insert(previous);
            }
            if let Some(group) = step.group.as_deref() {
                if closed_groups.contains(group) {
                    details.push(Detail::field(
                        field("group"),
                        format!("the steps of group {group} must be next to each other"),
                    ));
                }
            }
            current_group = step.group.as_deref();
        }
    }
    read_assignments(definition);
    for condition in definition.steps.iter_mut().flat_map(|s| s.conditions.iter_mut()) {
        condition.check = read_check(&condition.text);
    }
    details.extend(definition_problems(definition));
    let given: Vec<Vec<String>> = definition.steps.iter().map(|s| s.depends_on.clone()).collect();
    derive_dependencies(&mut definition.steps);
    for (index, (given, step)) in given.iter().zip(&definition.steps).enumerate() {
        if !given.is_empty() && *given != step.depends_on {
            details.push(Detail::field(
                format!("steps[{index}].depends_on"),
                format!("dependencies follow from order and groups; this step depends on {:?}", step.depends_on),
            ));
        }
    }
    details
}

/// Why `agent` cannot name an agent, if it cannot.
pub fn agent_name_problem(agent: &str) -> Option<String> {
    if !is_agent_name(agent) {
        return Some("must be lowercase letters, digits and hyphens".into());
    }
    if agent == AUTO_SELECT || crate::core::registry::agents::check_name(agent).is_err() {
        return Some(format!("{agent} is reserved and cannot name an agent"));
    }
    None
}

/// Who the main agent of a task is, and who chose it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MainAgent {
    pub name: String,
    pub chosen_by: ChosenBy,
}

/// Where a task's main agent came from, most specific first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChosenBy {
    Task,
    Workflow,
    /// The `MAIN_AGENT` var.
    Configuration,
    Default,
}

impl ChosenBy {
    pub fn as_str(self) -> &'static str {
        match self {
            ChosenBy::Task => "task",
            ChosenBy::Workflow => "workflow",
            ChosenBy::Configuration => "configuration",
            ChosenBy::Default => "default",
        }
    }

    /// For messages: "the task's main_agent".
    pub fn describe(self) -> &'static str {
        match self {
            ChosenBy::Task => "the task's main_agent",
            ChosenBy::Workflow => "the workflow's main_agent",
            ChosenBy::Configuration => "the MAIN_AGENT var",
            ChosenBy::Default => "the default",
        }
    }
}

/// The main agent of a task: the one the task names, else the workflow's, else the configured
/// one, else [`DEFAULT_MAIN_AGENT`].
pub fn main_agent_of(definition: &Definition, requested: Option<&str>, configured: Option<&str>) -> MainAgent {
    let configured = configured.map(str::trim).filter(|a| !a.is_empty());
    let (name, chosen_by) = match (requested, definition.main_agent.as_deref(), configured) {
        (Some(agent), _, _) => (agent, ChosenBy::Task),
        (None, Some(agent), _) => (agent, ChosenBy::Workflow),
        (None, None, Some(agent)) => (agent, ChosenBy::Configuration),
        (None, None, None) => (DEFAULT_MAIN_AGENT, ChosenBy::Default),
    };
    MainAgent { name: name.to_string(), chosen_by }
}

fn name_rule() -> String {
    format!(
        "must be 1 to {WORKFLOW_NAME_BYTES_MAX} lowercase letters, digits and hyphens, starting with a letter or digit"
    )
}

pub fn is_workflow_name(name: &str) -> bool {
    is_agent_name(name) && name.len() <= WORKFLOW_NAME_BYTES_MAX
}

fn is_step_key(key: &str) -> bool {
    let digits = key.bytes().take_while(u8::is_ascii_digit).count();
    key.len() <= 16 && digits > 0 && key[digits..].bytes().all(|b| b.is_ascii_lowercase())
}

/// The name to store a posted instruction file under: the one asked for, else the front matter
/// `name`, else the title turned into a slug.
pub fn choose_name(requested: Option<&str>, file: &InstructionFile) -> Result<String, Detail> {
    let candidate = match requested {
        Some(name) => name.to_string(),
        None => match file.front_matter.get("name").and_then(Value::as_str) {
            Some(name) => name.to_string(),
            None => match &file.title {
                Some(title) => slug(title),
                None => return Err(Detail::field("name", "the file has no name or title; pass ?name=")),
            },
        },
    };
    if is_workflow_name(&candidate) {
        Ok(candidate)
    } else {
        Err(Detail::field("name", format!("{candidate:?} {}", name_rule())))
    }
}

/// `Enhanced Multi-Agent Task Execution` → `enhanced-multi-agent-task-execution`.
pub fn slug(text: &str) -> String {
    let mut slug = String::new();
    for c in text.chars() {
        if c.is_ascii_alphanumeric() {
            slug.push(c.to_ascii_lowercase());
        } else if !slug.is_empty() && !slug.ends_with('-') {
            slug.push('-');
        }
    }
    let trimmed = slug.trim_end_matches('-');
    trimmed.chars().take(WORKFLOW_NAME_BYTES_MAX).collect::<String>().trim_end_matches('-').to_string()
}

/// Parser problems as API error details (errors only) and warnings (as sentences with positions).
pub fn split_problems(problems: &[Problem]) -> (Vec<Detail>, Vec<Detail>) {
    let (errors, warnings): (Vec<&Problem>, Vec<&Problem>) =
        problems.iter().partition(|p| p.severity == Severity::Error);
    let convert = |p: &&Problem| Detail::at(p.line, p.column, p.message.clone());
    (errors.iter().map(convert).collect(), warnings.iter().map(convert).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::registry::instructions::parse;

    fn default_workflow() -> &'static str {
        DEFAULT_WORKFLOW_SOURCE
    }

    fn definition(text: &str) -> Definition {
        let parsed = parse(text);
        assert!(!parsed.has_errors(), "{:?}", parsed.problems);
        from_instructions("test".into(), &parsed.file)
    }

    /// "key:dep1+dep2" for every step.
    fn dependencies(definition: &Definition) -> Vec<String> {
        definition.steps.iter().map(|s| format!("{}:{}", s.key, s.depends_on.join("+"))).collect()
    }

    #[test]
    fn the_default_workflow_becomes_seven_steps_with_a_fan_out_and_a_fan_in() {
        let definition = definition(default_workflow());
        assert_eq!(dependencies(&definition), vec!["1:", "2a:1", "2b:1", "3:2a+2b", "4:3", "5:4", "6:5"]);
        let groups: Vec<Option<&str>> = definition.steps.iter().map(|s| s.group.as_deref()).collect();
        assert_eq!(groups, vec![None, Some("parallel-1"), Some("parallel-1"), None, None, None, None]);
        let optional: Vec<bool> = definition.steps.iter().map(|s| s.optional).collect();
        assert_eq!(optional, vec![false, true, true, false, false, false, false]);
        assert_eq!(
            definition.agents(),
            vec!["cloudflare-specialist", "context-fetcher", "project-manager", "sveltekit-specialist", "test-runner"]
        );
        assert_eq!(
            definition.description.as_deref(),
            Some("Cloudflare + SvelteKit work split between specialist agents, backend and frontend side by side")
        );
        assert!(definition.post_flight.as_ref().and_then(|p| p.summary_template()).is_some());
        let run = steps_to_run(&definition);
        let last = run.last().unwrap();
        assert_eq!((last.key.as_str(), last.name.as_str(), last.agent.as_deref()), ("7", POST_FLIGHT_STEP, None));
        assert_eq!(last.depends_on, vec!["6"]);
        assert_eq!(run.len(), definition.steps.len() + 1);
    }

    #[test]
    fn missing_agents_are_the_named_ones_not_registered() {
        let definition = definition(default_workflow());
        let registered = ["context-fetcher", "cloudflare-specialist", "test-runner"];
        assert_eq!(missing_agents(&definition, &registered), vec!["project-manager", "sveltekit-specialist"]);
        let all =
            ["cloudflare-specialist", "context-fetcher", "project-manager", "sveltekit-specialist", "test-runner"];
        assert!(missing_agents(&definition, &all).is_empty());
    }

    #[test]
    fn consecutive_groups_and_single_steps_chain_correctly() {
        let text = "<process_flow>
<parallel_execution><step number=\"1\">a</step><step number=\"2\">b</step></parallel_execution>
<parallel_execution><step number=\"3\">c</step><step number=\"4\">d</step></parallel_execution>
<step number=\"5\">e</step>
</process_flow>";
        assert_eq!(dependencies(&definition(text)), vec!["1:", "2:", "3:1+2", "4:1+2", "5:3+4"]);
    }

    #[test]
    fn auto_select_steps_carry_their_requirements_and_no_agent() {
        let text = "<process_flow><step number=\"1\" name=\"db\" subagent=\"auto-select\" requirements=\"database,d1\">x</step></process_flow>";
        let step = &definition(text).steps[0];
        assert_eq!(step.agent, None);
        assert_eq!(step.auto_select, Some(AutoSelect { requirements: vec!["database".into(), "d1".into()] }));
    }

    #[test]
    fn steps_without_a_name_are_named_after_their_number() {
        assert_eq!(definition("<process_flow><step number=\"3b\">x</step></process_flow>").steps[0].name, "step_3b");
    }

    #[test]
    fn a_definition_round_trips_through_json() {
        let definition = definition(default_workflow());
        let json = serde_json::to_string(&definition).unwrap();
        let back: Definition = serde_json::from_str(&json).unwrap();
        assert_eq!(back, definition);
    }

    #[test]
    fn a_valid_posted_definition_gets_its_dependencies_derived() {
        let mut posted: Definition = serde_json::from_value(serde_json::json!({
            "name": "two-step",
            "steps": [
                {"key": "1", "name": "plan", "agent": "context-fetcher"},
                {"key": "2a", "name": "api", "agent": "cloudflare-specialist", "group": "g", "optional": true},
                {"key": "2b", "name": "ui", "agent": "sveltekit-specialist", "group": "g", "depends_on": ["1"]},
                {"key": "3", "name": "check", "auto_select": {"requirements": ["tests"]}}
            ]
        }))
        .unwrap();
        assert_eq!(validate(&mut posted), vec![]);
        assert_eq!(dependencies(&posted), vec!["1:", "2a:1", "2b:1", "3:2a+2b"]);
    }

    #[test]
    fn timeout_attributes_are_durations_within_their_bounds() {
        let file = r#"<process_flow>
<step number="1" subagent="a" name="one" timeout="30m" heartbeat="90s" schedule_timeout="2h">One.</step>
<step number="2" subagent="a" name="two" timeout="soon" heartbeat="500ms" schedule_timeout="31d">Two.</step>
</process_flow>"#;
        let definition = from_instructions("timed".into(), &crate::core::registry::instructions::parse(file).file);
        let own = timeouts_of(&definition.steps[0], "steps[0]").unwrap();
        assert_eq!(
            own,
            StepTimeouts { schedule_ms: Some(7_200_000), attempt_ms: Some(1_800_000), heartbeat_ms: Some(90_000) }
        );
        let fields: Vec<String> =
            definition_problems(&definition).into_iter().map(|d| d.field.unwrap_or_default()).collect();
        assert_eq!(
            fields,
            ["steps[1].attributes.schedule_timeout", "steps[1].attributes.timeout", "steps[1].attributes.heartbeat"]
        );
    }

    #[test]
    fn route_words_and_auto_select_cannot_name_a_step_agent() {
        let mut posted: Definition = serde_json::from_value(serde_json::json!({
            "name": "reserved",
            "steps": [
                {"key": "1", "name": "a", "agent": "import"},
                {"key": "2", "name": "b", "agent": "select"},
                {"key": "3", "name": "c", "agent": "auto-select"}
            ]
        }))
        .unwrap();
        let fields: Vec<String> = validate(&mut posted).into_iter().map(|d| d.field.unwrap_or_default()).collect();
        assert_eq!(fields, ["steps[0].agent", "steps[1].agent", "steps[2].agent"]);
    }

    #[test]
    fn every_problem_of_a_posted_definition_is_reported() {
        let mut posted: Definition = serde_json::from_value(serde_json::json!({
            "name": "Bad Name",
            "steps": [
                {"key": "1", "name": "a", "agent": "Not-Valid"},
                {"key": "1", "name": "b c", "group": "g"},
                {"key": "x", "name": "c", "group": "h"},
                {"key": "4", "name": "d", "group": "g", "auto_select": {"requirements": [" "]}},
                {"key": "5", "name": "e", "agent": "a", "auto_select": {"requirements": ["x"]}},
                {"key": "6", "name": "f", "depends_on": ["1"]}
            ]
        }))
        .unwrap();
        let fields: Vec<String> = validate(&mut posted).into_iter().map(|d| d.field.unwrap_or_default()).collect();
        assert_eq!(
            fields,
            vec![
                "name",
                "steps[0].agent",
                "steps[1].key",
                "steps[1].name",
                "steps[2].key",
                "steps[3].auto_select.requirements",
                "steps[3].group",
                "steps[4].auto_select",
                "steps[5].depends_on",
            ]
        );
    }

    #[test]
    fn the_main_agent_is_read_from_the_front_matter_and_must_be_an_agent_name() {
        let file = |main: &str| {
            format!("---\nmain_agent: {main}\n---\n# F\n<process_flow>\n<step number=\"1\" name=\"plan\">Plan.</step>\n</process_flow>\n")
        };
        let planner = definition(&file("planner"));
        assert_eq!(planner.main_agent.as_deref(), Some("planner"));
        assert!(planner.steps[0].is_main_agents());
        assert!(definition_problems(&planner).is_empty());
        for bad in ["Main Agent", "auto-select", "-lead"] {
            let problems = definition_problems(&definition(&file(bad)));
            assert_eq!(problems.len(), 1, "{bad}");
            assert_eq!(problems[0].field.as_deref(), Some("main_agent"), "{bad}");
        }
        assert_eq!(definition(default_workflow()).main_agent, None);
    }

    #[test]
    fn the_default_workflows_agent_selection_becomes_three_rules_with_their_lines() {
        let definition = definition(default_workflow());
        let rules: Vec<(Option<u32>, &str, Vec<&str>, bool)> = definition
            .routing
            .iter()
            .map(|r| (r.line, r.step.as_str(), r.agents.iter().map(String::as_str).collect(), r.others))
            .collect();
        let (cloudflare, sveltekit) = (definition.steps[1].agent.as_deref(), definition.steps[2].agent.as_deref());
        assert_eq!(
            rules,
            [
                (Some(39), "1", vec![cloudflare.unwrap()], false),
                (Some(41), "1", vec![sveltekit.unwrap()], false),
                (Some(43), "1", vec![], true),
            ]
        );
        assert!(routing_problems(&definition).is_empty());
    }

    #[test]
    fn an_assignment_names_agents_or_the_others() {
        let flow = |assign: &str| {
            format!(
                "# F\n<process_flow>\n<step number=\"1\" name=\"a\">\n<agent_selection>\nIF task involves APIs:\n  ASSIGN: {assign}\n</agent_selection>\n</step>\n<step number=\"2\" subagent=\"api-engineer\" name=\"b\">B.</step>\n<step number=\"3\" subagent=\"ui-engineer\" name=\"c\">C.</step>\n</process_flow>\n"
            )
        };
        let cases: &[(&str, &[&str], bool)] = &[
            ("api-engineer", &["api-engineer"], false),
            ("api-engineer, ui-engineer", &["api-engineer", "ui-engineer"], false),
            ("api-engineer and ui-engineer", &["api-engineer", "ui-engineer"], false),
            ("`api-engineer`", &["api-engineer"], false),
            ("the api-engineer, for the endpoints", &["api-engineer"], false),
            ("both specialists in parallel", &[], true),
            ("All agents", &[], true),
            ("someone clever", &[], false),
        ];
        for &(assign, agents, others) in cases {
            let rule = &definition(&flow(assign)).routing[0];
            assert_eq!(
                (rule.agents.iter().map(String::as_str).collect::<Vec<_>>(), rule.others),
                (agents.to_vec(), others),
                "{assign}"
            );
            assert_eq!(rule.line, Some(5), "{assign}");
        }
    }

    #[test]
    fn a_rule_without_its_other_half_or_naming_an_agent_no_step_has_is_refused_at_its_line() {
        let flow = |selection: &str| {
            format!(
                "# F\n<process_flow>\n<step number=\"1\" name=\"a\">\n<agent_selection>\n{selection}\n</agent_selection>\n</step>\n<step number=\"2\" subagent=\"api-engineer\" name=\"b\">B.</step>\n</process_flow>\n"
            )
        };
        let cases: &[(&str, &str)] = &[
            ("ASSIGN: api-engineer", "line 5: ASSIGN: api-engineer has no IF before it"),
            ("IF task involves APIs:", "line 5: IF task involves APIs: is followed by no ASSIGN"),
            ("IF task involves APIs:\n  ASSIGN: someone clever", "line 5: ASSIGN: someone clever names no agent; write agent names, or \"both specialists\" for the agents of the other rules"),
            ("IF task involves Python:\n  ASSIGN: python-specialist", "line 5: ASSIGN: python-specialist is an agent no step of this workflow names"),
        ];
        for &(selection, expected) in cases {
            let problems = routing_problems(&definition(&flow(selection)));
            let shown: Vec<String> =
                problems.iter().map(|p| format!("line {}: {}", p.line.unwrap_or(0), p.message)).collect();
            assert_eq!(shown, [expected], "{selection}");
            assert_eq!(problems[0].field.as_deref(), Some("routing"));
        }
    }

    #[test]
    fn posted_rules_are_read_again_and_checked_by_index() {
        let mut posted = definition(default_workflow());
        posted.routing[0].agents = vec!["ghost".into()];
        posted.routing[0].line = None;
        posted.routing[1].assign = "python-specialist".into();
        posted.routing[1].line = None;
        let problems = validate(&mut posted);
        assert_eq!(posted.routing[0].agents, [posted.steps[1].agent.clone().unwrap()], "agents are recomputed");
        let shown: Vec<(Option<&str>, &str)> =
            problems.iter().map(|p| (p.field.as_deref(), p.message.as_str())).collect();
        assert_eq!(
            shown,
            [(Some("routing[1]"), "ASSIGN: python-specialist is an agent no step of this workflow names")]
        );
    }

    #[test]
    fn conditions_in_the_forms_switchyard_reads_become_checks() {
        let check = |step: &str, is, field: Option<&str>| {
            Some(ConditionCheck { step: step.into(), is, field: field.map(String::from) })
        };
        let cases = [
            ("step 1 succeeded", check("1", CheckIs::Succeeded, None)),
            ("Step 2a was skipped", check("2a", CheckIs::Skipped, None)),
            ("step 3 reported database_changes", check("3", CheckIs::Reported, Some("database_changes"))),
            ("step 3 reported no files_created:", check("3", CheckIs::NotReported, Some("files_created"))),
            ("step 3's report has api_changes.", check("3", CheckIs::Reported, Some("api_changes"))),
            ("spec_requires_database_changes", None),
            ("both mission-lite.md AND tech-stack.md already read in current context", None),
            ("step x succeeded", None),
            ("step 3 reported Database Changes", None),
        ];
        for (text, expected) in cases {
            assert_eq!(read_check(text), expected, "{text}");
        }
    }

    #[test]
    fn agent_os_conditional_blocks_and_condition_attributes_become_step_conditions() {
        let file = r#"# F
<process_flow>
<step number="1" subagent="context-fetcher" name="look">
Look.
<conditional_logic>
  IF both mission-lite.md AND tech-stack.md already read in current context:
    SKIP this entire step
  ELSE:
    READ them
</conditional_logic>
</step>
<step number="2" subagent="file-creator" name="schema">
Write the schema.
<decision_tree>
  IF step 1 reported database_changes:
    CREATE sub-specs/database-schema.md
  ELSE:
    SKIP this_step
</decision_tree>
</step>
<step number="3" subagent="file-creator" name="api" condition="step 4 succeeded">API.</step>
<step number="4" subagent="file-creator" name="later">Later.</step>
</process_flow>
"#;
        let definition = definition(file);
        let shown: Vec<(&str, &str, ConditionWhen, bool)> = definition
            .steps
            .iter()
            .flat_map(|s| {
                s.conditions.iter().map(move |c| (s.key.as_str(), c.text.as_str(), c.when, c.check.is_some()))
            })
            .collect();
        assert_eq!(
            shown,
            [
                (
                    "1",
                    "both mission-lite.md AND tech-stack.md already read in current context",
                    ConditionWhen::SkipIf,
                    false
                ),
                ("2", "step 1 reported database_changes", ConditionWhen::SkipUnless, true),
                ("3", "step 4 succeeded", ConditionWhen::RunIf, true),
            ]
        );
        let warnings = condition_warnings(&definition);
        assert_eq!(warnings.len(), 1);
        assert_eq!(warnings[0].line, Some(3));
        assert!(
            warnings[0].message.starts_with("step 1: switchyard does not evaluate the condition"),
            "{}",
            warnings[0].message
        );
        let problems = definition_problems(&definition);
        let shown: Vec<(Option<u32>, &str)> = problems.iter().map(|p| (p.line, p.message.as_str())).collect();
        assert_eq!(
            shown,
            [(Some(21), "step 3: the condition \"step 4 succeeded\" refers to step 4, which does not come before it")]
        );
    }

    #[test]
    fn empty_and_oversized_definitions_are_refused() {
        let mut empty = Definition {
            name: "empty".into(),
            title: None,
            description: None,
            overview: None,
            front_matter: Map::new(),
            main_agent: None,
            pre_flight: None,
            post_flight: None,
            steps: vec![],
            blocks: vec![],
            routing: vec![],
            rules: None,
        };
        assert_eq!(validate(&mut empty).len(), 1);
    }

    #[test]
    fn names_come_from_the_request_the_front_matter_or_the_title() {
        let file = parse(
            "---\nname: from-front-matter\n---\n# A Title\n<process_flow><step number=\"1\">x</step></process_flow>",
        )
        .file;
        assert_eq!(choose_name(Some("asked-for"), &file), Ok("asked-for".to_string()));
        assert_eq!(choose_name(None, &file), Ok("from-front-matter".to_string()));
        let file =
            parse("# Enhanced Multi-Agent Task Execution\n<process_flow><step number=\"1\">x</step></process_flow>")
                .file;
        assert_eq!(choose_name(None, &file), Ok("enhanced-multi-agent-task-execution".to_string()));
        let file = parse("<process_flow><step number=\"1\">x</step></process_flow>").file;
        assert!(choose_name(None, &file).is_err());
        assert!(choose_name(Some("../etc"), &file).is_err());
        assert!(choose_name(Some("a/b"), &file).is_err());
    }

    #[test]
    fn slugs_are_lowercase_hyphenated_and_bounded() {
        assert_eq!(slug("  Hello, World!  "), "hello-world");
        assert_eq!(slug("Ünïcode & Co"), "n-code-co");
        assert!(slug(&"ab ".repeat(100)).len() <= WORKFLOW_NAME_BYTES_MAX);
        assert!(!slug(&"ab ".repeat(100)).ends_with('-'));
    }
}

/// The project's own default workflow, loaded as `enhanced-multi-agent` version 1 on first start.
pub const DEFAULT_WORKFLOW_SOURCE: &str = include_str!("../../../workflows/enhanced-multi-agent.md");

/// The name the default workflow is stored under and tasks use when they name none.
pub const DEFAULT_WORKFLOW_NAME: &str = "enhanced-multi-agent";

/// The rules files the default workflow's flight checks `EXECUTE`, loaded with it on first
/// start: (name, source).
pub const DEFAULT_RULES_FILES: [(&str, &str); 2] = [
    ("pre-flight", include_str!("../../../workflows/meta/pre-flight.md")),
    ("post-flight", include_str!("../../../workflows/meta/post-flight.md")),
];

#[cfg(test)]
mod default_workflow_tests {
    use super::*;
    use crate::core::registry::instructions::{self, parse};

    #[test]
    fn the_default_workflows_flight_checks_execute_the_default_rules_files() {
        let definition = from_instructions(DEFAULT_WORKFLOW_NAME.into(), &parse(DEFAULT_WORKFLOW_SOURCE).file);
        let executes: Vec<(&str, Option<String>, Option<u32>)> =
            definition.flight_executes().iter().map(|e| (e.check, e.name.clone(), e.line)).collect();
        assert_eq!(
            executes,
            [
                ("pre_flight", Some("pre-flight".into()), Some(19)),
                ("post_flight", Some("post-flight".into()), Some(218))
            ]
        );
        for (name, source) in DEFAULT_RULES_FILES {
            let parsed = parse(source);
            assert!(instructions::is_rules_file(&parsed), "{name}: {:?}", parsed.problems);
            assert_eq!(choose_name(None, &parsed.file).as_deref(), Ok(name));
            assert!(instructions::body_of(source).starts_with("# "), "{name}");
        }
    }

    #[test]
    fn an_execute_path_addresses_a_posted_file_by_its_name() {
        for (path, name) in [
            ("@.agent-os/instructions/meta/pre-flight.md", Some("pre-flight")),
            (".agent-os/instructions/core/execute-task.md", Some("execute-task")),
            ("execute-task", Some("execute-task")),
            ("@Execute Task.md", Some("execute-task")),
            ("@.agent-os/instructions/", None),
        ] {
            assert_eq!(name_of_path(path).as_deref(), name, "{path}");
        }
    }

    #[test]
    fn the_default_workflow_parses_cleanly_and_follows_the_seed_process() {
        let parsed = parse(DEFAULT_WORKFLOW_SOURCE);
        assert_eq!(parsed.problems, vec![]);
        let name = choose_name(None, &parsed.file).unwrap();
        assert_eq!(name, DEFAULT_WORKFLOW_NAME);
        let definition = from_instructions(name, &parsed.file);
        let steps: Vec<(&str, &str, Option<&str>, Vec<&str>)> = definition
            .steps
            .iter()
            .map(|s| {
                (s.key.as_str(), s.name.as_str(), s.agent.as_deref(), s.depends_on.iter().map(String::as_str).collect())
            })
            .collect();
        assert_eq!(
            steps,
            vec![
                ("1", "task_analysis", Some("context-fetcher"), vec![]),
                ("2a", "backend_implementation", Some("cloudflare-specialist"), vec!["1"]),
                ("2b", "frontend_implementation", Some("sveltekit-specialist"), vec!["1"]),
                ("3", "integration_verification", Some("project-manager"), vec!["2a", "2b"]),
                ("4", "feedback_aggregation", None, vec!["3"]),
                ("5", "comprehensive_testing", Some("test-runner"), vec!["4"]),
                ("6", "documentation_update", Some("project-manager"), vec!["5"]),
            ]
        );
        assert!(definition.post_flight.as_ref().and_then(|p| p.summary_template()).is_some());
    }

    #[test]
    fn only_a_workflow_with_a_summary_template_and_no_post_flight_step_gets_one_added() {
        let default = || from_instructions("w".into(), &parse(DEFAULT_WORKFLOW_SOURCE).file);
        let mut definition = default();
        definition.post_flight = None;
        assert_eq!(steps_to_run(&definition).len(), definition.steps.len());
        let mut named = default();
        named.steps[6].name = POST_FLIGHT_STEP.to_string();
        assert_eq!(steps_to_run(&named).len(), named.steps.len());
    }
}
