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
//! - a step with no agent runs in the Worker if its name is a [`BUILTIN_STEPS`] entry, and is
//!   otherwise the main agent's; a task is refused while its main agent is needed and
//!   unregistered.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::{brief, Event, Gate, Run, Runner, Send, Step, StepRouting, StepStatus, Task, TaskStatus};
use crate::core::base::limits::{STEP_ATTEMPTS_DEFAULT, STEP_ATTEMPTS_MAX};
use crate::core::base::time::Timestamp;
use crate::core::edge::error::Detail;
use crate::core::registry::analysis::{self, AgentProfile, Analysis, Selection};
use crate::core::registry::workflow::{
    self, missing_agents, ChosenBy, Definition, FlightRules, MainAgent, StepDefinition,
};

/// What a submission is planned from.
pub struct PlanInput<'a> {
    pub task_id: &'a str,
    /// One new id per workflow step, in order.
    pub step_ids: &'a [String],
    pub definition: &'a Definition,
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

/// Plans the task, or returns every reason it cannot run.
pub fn plan(input: &PlanInput) -> Result<Plan, Vec<Detail>> {
    let registered: Vec<&str> = input.agents.iter().map(|a| a.name).collect();
    let mut problems: Vec<Detail> = missing_agents(input.definition, &registered)
        .into_iter()
        .map(|agent| {
            let keys = steps_naming(input.definition, agent);
            Detail::field("workflow", format!("agent {agent} (step {keys}) is not registered"))
        })
        .collect();
    problems.extend(main_agent_problem(input, &registered));
    let mut selections = BTreeMap::new();
    let mut steps = Vec::new();
    let mut events = Vec::new();
    for (definition, id) in input.definition.steps.iter().zip(input.step_ids) {
        let (runner, agent, skip_reason, routing) = match assign(definition, input, &mut selections) {
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
                data: json!({"key": definition.key, "reason": skip_reason}),
            });
        }
        steps.push(Step {
            id: id.clone(),
            key: definition.key.clone(),
            name: definition.name.clone(),
            runner,
            agent,
            status: if skipped { StepStatus::Skipped } else { StepStatus::Pending },
            depends_on: definition.depends_on.clone(),
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
            gate: gate_of(definition, routing),
            report_fields: None,
        });
    }
    if input.step_ids.len() != input.definition.steps.len() {
        problems.push(Detail::field("workflow", "internal: one step id is needed per workflow step"));
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
    let mut run = Run {
        task,
        events: Vec::new(),
        sends: Vec::new(),
        reports: Vec::new(),
        expiries_read: Vec::new(),
        now: input.now,
        random: 0,
    };
    run.event(
        None,
        "task.created",
        json!({
            "task_type": input.analysis.task_type,
            "agents": input.analysis.agents,
            "main_agent": {"name": input.main_agent.name, "chosen_by": input.main_agent.chosen_by.as_str()},
            "rules": input.flight_rules.iter().map(|r| json!({"check": r.check, "name": r.name, "version": r.version})).collect::<Vec<_>>(),
        }),
    );
    run.events.extend(events);
    let last_agent_step = run.task.steps.iter().rposition(|s| s.runner == Runner::Agent);
    let instructions = (0..input.definition.steps.len())
        .map(|index| {
            let mut part = instructions_of(input.definition, input.workflow_version, &run.task.steps, index);
            let rules = flight_rules_of(input.flight_rules, Some(index) == last_agent_step);
            if !rules.is_empty() {
                part["rules"] = Value::Array(rules);
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
    selections: &mut BTreeMap<String, Selection>,
) -> Result<Assigned, Detail> {
    let here = format!("step {} ({})", step.key, step.name);
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
        selections.insert(step.key.clone(), selection);
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

/// The refusal when steps need the main agent and it is not registered, naming who chose it.
fn main_agent_problem(input: &PlanInput, registered: &[&str]) -> Option<Detail> {
    let main = input.main_agent;
    let keys: Vec<&str> =
        input.definition.steps.iter().filter(|s| s.is_main_agents()).map(|s| s.key.as_str()).collect();
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
/// evaluates. `None` when there is nothing to decide.
fn gate_of(step: &StepDefinition, routing: Option<StepRouting>) -> Option<Gate> {
    let conditions: Vec<_> = step.conditions.iter().filter(|c| c.check.is_some()).cloned().collect();
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

fn steps_naming(definition: &Definition, agent: &str) -> String {
    let keys: Vec<&str> =
        definition.steps.iter().filter(|s| s.agent.as_deref() == Some(agent)).map(|s| s.key.as_str()).collect();
    keys.join(", ")
}

/// `max_attempts="5"` on the step, within [1, STEP_ATTEMPTS_MAX]; the default otherwise.
fn attempts_of(step: &StepDefinition) -> u32 {
    step.attributes
        .get("max_attempts")
        .and_then(|v| v.trim().parse::<u32>().ok())
        .map_or(STEP_ATTEMPTS_DEFAULT, |n| n.clamp(1, STEP_ATTEMPTS_MAX))
}

fn instructions_of(definition: &Definition, version: i64, steps: &[Step], index: usize) -> Value {
    let step = &definition.steps[index];
    let agent = steps.get(index).and_then(|s| s.agent.as_deref());
    // The conditions switchyard does not evaluate are the agent's to decide, said in so many words.
    let yours: Vec<Value> = step
        .conditions
        .iter()
        .filter(|c| c.check.is_none())
        .map(|c| json!({"text": c.text, "when": c.when, "evaluated_by": "agent"}))
        .collect();
    let mut part = json!({
        "title": step.title,
        "phase": step.phase,
        "text": step.text,
        "blocks": step.blocks,
        "workflow": brief::workflow_part(definition, version, steps, index),
        "report_contract": brief::report_contract(definition, index, agent),
    });
    if !yours.is_empty() {
        part["conditions"] = Value::Array(yours);
    }
    part
}
