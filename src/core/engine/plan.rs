//! Submission: a workflow version, a task's analysis and the registered agents become the
//! task's steps, each assigned to an agent or the Worker, or skipped with the reason.
//!
//! Assignment, step by step:
//! - a step naming an agent gets it; a task is refused while any named agent is unregistered;
//! - an optional step naming an agent that routing may assign is decided when it is ready (see
//!   [`StepRouting`]): by the analysis step's selection if it reported one, else by this
//!   analysis (the frontend step of a backend-only task is skipped then);
//! - an `auto-select` step gets the best registered agent for its requirements, or is skipped
//!   (if optional) or refused (if not) when none matches;
//! - a step with no agent runs in the Worker if its name is a [`BUILTIN_STEPS`](workflow::BUILTIN_STEPS) entry, and is
//!   otherwise the main agent's; a task is refused while its main agent is needed and
//!   unregistered;
//! - a step that `EXECUTE`s another file runs it as a child run: the file's steps, at the
//!   version read at submission ([`Files`]), follow the step in the task with keys under its own
//!   (`4.1`, `4.2`), planned the same way; the task's main agent and flight rules are theirs too.
//!   Inside a `FOR each`, they are the first item's, and the step the loop reads its items from
//!   is asked to list them (`report_contract.items`).

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::{
    brief, AgentTimeouts, ChildRun, Event, Gate, Run, Runner, Send, Step, StepRouting, StepStatus, Task, TaskStatus,
};
use crate::core::base::limits::{EXECUTE_DEPTH_MAX, STEP_ATTEMPTS_DEFAULT, STEP_ATTEMPTS_MAX};
use crate::core::base::time::Timestamp;
use crate::core::edge::error::Detail;
use crate::core::records::report::TASK_TYPES;
use crate::core::registry::analysis::{self, AgentProfile, Analysis, Selection};
use crate::core::registry::child_runs::{self, child_key, executed_name, Files};
use crate::core::registry::workflow::{self, ChosenBy, Definition, FlightRules, MainAgent, StepDefinition};

/// What a submission is planned from.
pub struct PlanInput<'a> {
    pub task_id: &'a str,
    /// One new id per step the task runs, child runs included ([`step_count`]), in order.
    pub step_ids: &'a [String],
    pub definition: &'a Definition,
    /// The files the definition's `EXECUTE`s reach, at the versions the task pins.
    pub files: &'a Files,
    /// The version of the workflow the definition is, as stored.
    pub workflow_version: i64,
    pub analysis: &'a Analysis,
    pub agents: &'a [AgentProfile<'a>],
    /// Who does the steps that name no agent.
    pub main_agent: &'a MainAgent,
    /// The rules files the flight checks `EXECUTE`, resolved at submission.
    pub flight_rules: &'a [FlightRules],
    pub now: Timestamp,
}

/// A planned task: its initial state, the events and first queue messages of its creation, the
/// auto-select decisions (kept with the analysis) and each step's instructions.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub task: Task,
    pub events: Vec<Event>,
    pub sends: Vec<Send>,
    pub selections: BTreeMap<String, Selection>,
    /// Per step, in order: its title, phase, text and structured blocks, and the parts of its
    /// brief fixed at submission (`workflow`, `report_contract`), as JSON.
    pub instructions: Vec<Value>,
}

/// One step the task runs, before it is assigned: the step as its file writes it, where it
/// comes from, and its place in the task.
struct Entry<'a> {
    step: &'a StepDefinition,
    definition: &'a Definition,
    version: i64,
    /// What keys in its file are prefixed with in the task: `""`, or `4.` in step 4's child run.
    prefix: String,
    parent: Option<String>,
    /// The child run the step starts, if it runs another file.
    child_run: Option<ChildRun>,
}

impl Entry<'_> {
    fn key(&self) -> String {
        format!("{}{}", self.prefix, self.step.key)
    }
}

/// Every step the task runs, in order: each step of the file, and after one that runs a child
/// run, the child run's steps. A file missing from `files`, or nested deeper than
/// [`EXECUTE_DEPTH_MAX`] (a cycle), adds none: [`child_runs::problems`] refuses those.
fn entries<'a>(
    definition: &'a Definition,
    version: i64,
    files: &'a Files,
    parent: Option<&str>,
    out: &mut Vec<Entry<'a>>,
) {
    let depth = parent.map_or(0, |key| key.matches('.').count() + 1);
    if depth > EXECUTE_DEPTH_MAX {
        return;
    }
    let prefix = parent.map(|p| child_key(p, "")).unwrap_or_default();
    for step in &definition.steps {
        let child = executed_name(step).and_then(|name| files.get_key_value(&name));
        let entry = Entry {
            step,
            definition,
            version,
            prefix: prefix.clone(),
            parent: parent.map(String::from),
            child_run: child.map(|(name, file)| {
                let each = step.execute.as_ref().and_then(|e| e.each.clone());
                let items_from = each.as_deref().and_then(|each| loop_source(definition, step, each));
                ChildRun {
                    workflow: name.clone(),
                    version: file.version,
                    items_from: items_from.map(|key| format!("{prefix}{key}")),
                    each,
                    items: None,
                }
            }),
        };
        let key = entry.key();
        out.push(entry);
        if let Some((_, file)) = child {
            entries(&file.definition, file.version, files, Some(&key), out);
        }
    }
}

/// The step of `definition` whose `report.items` a `FOR each` around `step`'s `EXECUTE` loops
/// over: the step the loop names ("FOR each parent_task assigned in Step 1"), else the last step
/// it depends on. Only a step the loop waits for (directly or through others) and that an agent
/// answers can list the items before the loop starts; `None` when there is none, and the child
/// run then runs once.
fn loop_source(definition: &Definition, step: &StepDefinition, each: &str) -> Option<String> {
    let mut before = std::collections::BTreeSet::new();
    let mut next: Vec<&str> = step.depends_on.iter().map(String::as_str).collect();
    while let Some(key) = next.pop() {
        if before.insert(key.to_string()) {
            let found = definition.steps.iter().find(|s| s.key == key);
            next.extend(found.into_iter().flat_map(|s| s.depends_on.iter().map(String::as_str)));
        }
    }
    let answers = |key: &str| {
        definition.steps.iter().find(|s| s.key == key).is_some_and(|s| !s.is_builtin() && s.execute.is_none())
    };
    let words: Vec<String> = each
        .split(|c: char| c.is_whitespace() || c == ',' || c == ':' || c == ')' || c == '(')
        .map(|w| w.trim_end_matches('.').to_lowercase())
        .collect();
    let named = words
        .windows(2)
        .filter(|pair| pair[0] == "step")
        .find_map(|pair| definition.steps.iter().find(|s| s.key.eq_ignore_ascii_case(&pair[1])).map(|s| s.key.clone()));
    let source = named.or_else(|| step.depends_on.last().cloned())?;
    (before.contains(&source) && answers(&source)).then_some(source)
}

/// How many steps a task of `definition` runs, child runs included: the step ids to make.
pub fn step_count(definition: &Definition, files: &Files) -> usize {
    let mut found = Vec::new();
    entries(definition, 0, files, None, &mut found);
    found.len()
}

impl Plan {
    /// [`super::leasable_at_once`] for the task's first steps, as created.
    pub fn with_leasable_at_once(self, now: Timestamp, pull: &[(String, AgentTimeouts)]) -> (Plan, Vec<String>) {
        let Plan { task, events, sends, selections, instructions } = self;
        let (task, events, sends, leasable) = super::leasable_at_once(task, events, sends, now, pull);
        (Plan { task, events, sends, selections, instructions }, leasable)
    }
}

/// Plans the task, or returns every reason it cannot run.
pub fn plan(input: &PlanInput) -> Result<Plan, Vec<Detail>> {
    let mut problems = child_runs::problems(input.definition, input.files);
    if !problems.is_empty() {
        return Err(problems);
    }
    let mut planned = Vec::new();
    entries(input.definition, input.workflow_version, input.files, None, &mut planned);
    let registered: Vec<&str> = input.agents.iter().map(|a| a.name).collect();
    problems.extend(missing_agent_problems(&planned, &registered));
    problems.extend(main_agent_problem(input, &planned, &registered));
    let mut selections = BTreeMap::new();
    let mut steps = Vec::new();
    let mut events = Vec::new();
    for (entry, id) in planned.iter().zip(input.step_ids) {
        let definition = entry.step;
        let key = entry.key();
        let assigned = if entry.child_run.is_some() {
            Ok((Runner::ChildRun, None, None, None))
        } else {
            assign(definition, input, &key, &mut selections)
        };
        let (runner, agent, skip_reason, routing) = match assigned {
            Ok(assigned) => assigned,
            Err(problem) => {
                problems.push(problem);
                continue;
            }
        };
        let attempts = attempts_of(definition);
        let skipped = skip_reason.is_some();
        if skipped {
            events.push(Event {
                step_id: Some(id.clone()),
                kind: "step.skipped",
                data: json!({"key": key, "reason": skip_reason}),
            });
        }
        steps.push(Step {
            id: id.clone(),
            key,
            name: definition.name.clone(),
            runner,
            agent,
            status: if skipped { StepStatus::Skipped } else { StepStatus::Pending },
            depends_on: definition.depends_on.iter().map(|k| format!("{}{k}", entry.prefix)).collect(),
            attempt: 0,
            attempts_max: attempts,
            attempts_budget: attempts,
            lease_id: None,
            lease_expires_at: None,
            queued_at: None,
            due_at: None,
            ready_at: None,
            started_at: None,
            finished_at: skipped.then_some(input.now),
            skip_reason,
            error: None,
            attempts: Vec::new(),
            optional: definition.optional,
            // Checked when the workflow was stored; a stored one older than the check keeps the
            // agent's timeouts.
            timeouts: workflow::timeouts_of(definition, &definition.key).unwrap_or_default(),
            schedule_deadline_at: None,
            attempt_deadline_at: None,
            gate: gate_of(definition, &entry.prefix, routing),
            report_fields: None,
            parent: entry.parent.clone(),
            child_run: entry.child_run.clone(),
        });
    }
    if input.step_ids.len() != planned.len() {
        problems.push(Detail::field("workflow", "internal: one step id is needed per step the task runs"));
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    let task = Task {
        id: input.task_id.to_string(),
        status: TaskStatus::Running,
        version: 1,
        finished_at: None,
        steps,
        selection: None,
    };
    let mut run = Run::new(task, Vec::new(), input.now, 0);
    run.event(
        None,
        "task.created",
        json!({
            "task_type": input.analysis.task_type,
            "agents": input.analysis.agents,
            "main_agent": {"name": input.main_agent.name, "chosen_by": input.main_agent.chosen_by.as_str()},
            "rules": input.flight_rules.iter().map(|r| json!({"check": r.check, "name": r.name, "version": r.version})).collect::<Vec<_>>(),
            "child_runs": run.task.steps.iter().filter_map(|s| Some(json!({"step": s.key, "workflow": s.child_run.as_ref()?.workflow, "version": s.child_run.as_ref()?.version}))).collect::<Vec<_>>(),
        }),
    );
    run.events.extend(events);
    let last_agent_step = run.task.steps.iter().rposition(|s| s.runner == Runner::Agent);
    // The steps of each run (the task's own, and each child run's), in order.
    let mut runs: BTreeMap<Option<&str>, Vec<Step>> = BTreeMap::new();
    for step in &run.task.steps {
        runs.entry(step.parent.as_deref()).or_default().push(step.clone());
    }
    let analysis_step = input.definition.analysis_step();
    let instructions = (0..planned.len())
        .map(|index| {
            let siblings = runs.get(&planned[index].parent.as_deref()).map_or(&[][..], Vec::as_slice);
            let mut part = instructions_of(&planned, &run.task.steps, siblings, index);
            let rules = flight_rules_of(input.flight_rules, Some(index) == last_agent_step);
            if !rules.is_empty() {
                part["rules"] = Value::Array(rules);
            }
            // The analysis step is told it may choose the specialists, and among whom.
            let entry = &planned[index];
            let candidates = &input.analysis.routing.candidates;
            if entry.parent.is_none() && analysis_step == Some(entry.step.key.as_str()) && !candidates.is_empty() {
                part["report_contract"]["selection"] = json!({"agents": candidates, "task_types": TASK_TYPES});
            }
            // The step a loop reads its items from is told what to list, and for which loop.
            let key = entry.key();
            let loops = run.task.steps.iter().filter_map(|s| s.child_run.as_ref().map(|r| (s, r)));
            if let Some((step, run)) = loops.into_iter().find(|(_, r)| r.items_from.as_deref() == Some(key.as_str())) {
                part["report_contract"]["items"] =
                    json!({"for_step": step.key, "each": run.each, "workflow": run.workflow});
            }
            part
        })
        .collect();
    run.advance();
    Ok(Plan { task: run.task, events: run.events, sends: run.sends, selections, instructions })
}

/// Who runs a step, its agent, why it is skipped at submission, and how routing decides it later.
type Assigned = (Runner, Option<String>, Option<String>, Option<StepRouting>);

fn assign(
    step: &StepDefinition,
    input: &PlanInput,
    key: &str,
    selections: &mut BTreeMap<String, Selection>,
) -> Result<Assigned, Detail> {
    let here = format!("step {key} ({})", step.name);
    if let Some(agent) = &step.agent {
        let routed = input.analysis.routing.candidates.contains(agent);
        if step.optional && routed {
            let planned_skip = (!input.analysis.agents.contains(agent)).then(|| {
                format!(
                    "analysis found a {} task, and no routing rule that fired assigns {agent}",
                    input.analysis.task_type.name()
                )
            });
            return Ok((Runner::Agent, Some(agent.clone()), None, Some(StepRouting { planned_skip })));
        }
        return Ok((Runner::Agent, Some(agent.clone()), None, None));
    }
    if let Some(auto) = &step.auto_select {
        let selection = analysis::select(&auto.requirements, input.agents);
        let chosen = selection.agent.clone();
        selections.insert(key.to_string(), selection);
        return match chosen {
            Some(agent) => Ok((Runner::Agent, Some(agent), None, None)),
            None if step.optional => Ok((
                Runner::Agent,
                None,
                Some(format!("no registered agent matches the requirements {}", auto.requirements.join(", "))),
                None,
            )),
            None => Err(Detail::field(
                "workflow",
                format!("{here}: no registered agent matches the requirements {}", auto.requirements.join(", ")),
            )),
        };
    }
    if step.is_builtin() {
        return Ok((Runner::Builtin, None, None, None));
    }
    Ok((Runner::Agent, Some(input.main_agent.name.clone()), None, None))
}

/// A refusal for each agent a step names that is not registered, with the steps naming it.
fn missing_agent_problems(planned: &[Entry], registered: &[&str]) -> Vec<Detail> {
    let mut missing: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for entry in planned {
        if let Some(agent) = entry.step.agent.as_deref().filter(|a| !registered.contains(a)) {
            missing.entry(agent).or_default().push(entry.key());
        }
    }
    missing
        .into_iter()
        .map(|(agent, keys)| {
            Detail::field("workflow", format!("agent {agent} (step {}) is not registered", keys.join(", ")))
        })
        .collect()
}

/// The refusal when steps need the main agent and it is not registered, naming who chose it.
fn main_agent_problem(input: &PlanInput, planned: &[Entry], registered: &[&str]) -> Option<Detail> {
    let main = input.main_agent;
    let keys: Vec<String> =
        planned.iter().filter(|e| e.step.is_main_agents() && e.child_run.is_none()).map(Entry::key).collect();
    if keys.is_empty() || registered.contains(&main.name.as_str()) {
        return None;
    }
    let field = if main.chosen_by == ChosenBy::Task { "main_agent" } else { "workflow" };
    let steps = if keys.len() == 1 { "step" } else { "steps" };
    let name = if keys.len() == 1 { "names" } else { "name" };
    Some(Detail::field(
        field,
        format!(
            "the main agent {} ({}) does {steps} {}, which {name} no subagent, and is not registered",
            main.name,
            main.chosen_by.describe(),
            keys.join(", ")
        ),
    ))
}

/// What is decided about a step when it is ready: its routing, and the conditions switchyard
/// evaluates, on the steps of its own file (keys under `prefix`). `None` when there is nothing
/// to decide.
fn gate_of(step: &StepDefinition, prefix: &str, routing: Option<StepRouting>) -> Option<Gate> {
    let mut conditions: Vec<_> = step.conditions.iter().filter(|c| c.check.is_some()).cloned().collect();
    for check in conditions.iter_mut().filter_map(|c| c.check.as_mut()) {
        check.step = format!("{prefix}{}", check.step);
    }
    (routing.is_some() || !conditions.is_empty()).then_some(Gate { routing, conditions })
}

/// The rules a step's instructions carry: every pre-flight rules file, and for the last step an
/// agent does, the post-flight ones too.
fn flight_rules_of(rules: &[FlightRules], last: bool) -> Vec<Value> {
    rules
        .iter()
        .filter(|r| r.check == "pre_flight" || last)
        .map(|r| json!({"check": r.check, "name": r.name, "version": r.version, "text": r.text}))
        .collect()
}

/// `max_attempts="5"` on the step, within [1, STEP_ATTEMPTS_MAX]; the default otherwise.
fn attempts_of(step: &StepDefinition) -> u32 {
    step.attributes
        .get("max_attempts")
        .and_then(|v| v.trim().parse::<u32>().ok())
        .map_or(STEP_ATTEMPTS_DEFAULT, |n| n.clamp(1, STEP_ATTEMPTS_MAX))
}

/// The instructions of step `index` of the task: its own, where it stands in its file (among
/// `siblings`, the steps of the same run), and for a step of a child run, the step that runs it.
fn instructions_of(planned: &[Entry], steps: &[Step], siblings: &[Step], index: usize) -> Value {
    let entry = &planned[index];
    let step = entry.step;
    let agent = steps.get(index).and_then(|s| s.agent.as_deref());
    let place = entry.definition.steps.iter().position(|s| std::ptr::eq(s, step)).unwrap_or(0);
    // The conditions switchyard does not evaluate are the agent's to decide, said in so many words.
    let yours: Vec<Value> = step
        .conditions
        .iter()
        .filter(|c| c.check.is_none())
        .map(|c| json!({"text": c.text, "when": c.when, "evaluated_by": "agent"}))
        .collect();
    let mut workflow = brief::workflow_part(entry.definition, entry.version, siblings, place);
    workflow["step"]["key"] = Value::from(entry.key());
    workflow["step"]["depends_on"] = json!(steps.get(index).map(|s| s.depends_on.clone()).unwrap_or_default());
    let mut part = json!({
        "title": step.title,
        "phase": step.phase,
        "text": step.text,
        "blocks": step.blocks,
        "workflow": workflow,
        "report_contract": brief::report_contract(entry.definition, place, agent),
    });
    if !yours.is_empty() {
        part["conditions"] = Value::Array(yours);
    }
    if let Some(parent) = entry.parent.as_ref().and_then(|key| planned.iter().find(|e| &e.key() == key)) {
        part["child_run"] = json!({
            "step": {"key": parent.key(), "name": parent.step.name, "title": parent.step.title, "text": parent.step.text, "blocks": parent.step.blocks},
            "workflow": parent.child_run.as_ref().map(|c| &c.workflow),
            "version": parent.child_run.as_ref().map(|c| c.version),
            "each": parent.child_run.as_ref().and_then(|c| c.each.as_ref()),
        });
    }
    part
}
