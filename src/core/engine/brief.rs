//! The brief: everything an agent is handed with a step, so that a coding agent that knows
//! nothing else can do the work and hand back what switchyard reads.
//!
//! A lease, a webhook delivery and the runner's prompt carry the same parts:
//!
//! - `task`: what to build (title, description, requirements, paths) and what analysis decided
//!   (type, agents, reasons, evidence);
//! - `workflow`: what the whole flow is for and the step's place in it;
//! - `agent_profile`: who the agent is (description, capabilities, and an imported subagent file's
//!   system prompt, tools and model);
//! - `instructions`: the step's own text and blocks;
//! - `inputs`: the reports of the steps it depends on;
//! - `report_contract`: which report fields switchyard reads for this step, derived from the
//!   step's own blocks and from what later steps ask of its agent.
//!
//! The workflow part and the contract depend only on the workflow version and the plan, so they
//! are made once at submission and stored with the step; the task and agent parts are made when
//! the step is handed out. Every part has a bound ([`part_bound`]); a part over it is not cut but
//! offloaded ([`place`]): the shell stores it in R2 and the payload says where to fetch it.
//!
//! This module only shapes values; it reads nothing and stores nothing.

use serde_json::{json, Map, Value};

use super::Step;
use crate::core::base::limits::{
    BRIEF_AGENT_BYTES_MAX, BRIEF_CONTRACT_BYTES_MAX, BRIEF_INPUTS_BYTES_MAX, BRIEF_INSTRUCTIONS_BYTES_MAX,
    BRIEF_TASK_BYTES_MAX, BRIEF_WORKFLOW_BYTES_MAX,
};
use crate::core::registry::instructions::Block;
use crate::core::registry::workflow::Definition;

/// The parts of a step's payload that are bounded and may be offloaded, in payload order.
pub const PARTS: [&str; 6] = ["task", "workflow", "agent_profile", "instructions", "inputs", "report_contract"];

/// The report fields every step may send whatever its blocks say; switchyard reads each of them
/// into summaries, metrics or the next steps' inputs.
pub const ALWAYS_READ: [&str; 9] = [
    "files_created",
    "files_modified",
    "lines_added",
    "lines_removed",
    "performance",
    "integration_points",
    "outstanding_issues",
    "next_steps",
    "notes",
];

/// The most bytes a part may have inline, by name; `None` for a name that is not a part.
pub fn part_bound(part: &str) -> Option<usize> {
    Some(match part {
        "task" => BRIEF_TASK_BYTES_MAX,
        "workflow" => BRIEF_WORKFLOW_BYTES_MAX,
        "agent_profile" => BRIEF_AGENT_BYTES_MAX,
        "instructions" => BRIEF_INSTRUCTIONS_BYTES_MAX,
        "inputs" => BRIEF_INPUTS_BYTES_MAX,
        "report_contract" => BRIEF_CONTRACT_BYTES_MAX,
        _ => return None,
    })
}

/// The task as it was submitted, and what analysis made of it, from the stored task row.
pub struct TaskFacts<'a> {
    pub id: &'a str,
    pub title: &'a str,
    pub description: &'a str,
    /// The stored input: `{"requirements": [...], "paths": [...]}`.
    pub input: &'a Value,
    /// The stored analysis (with its `selections`).
    pub analysis: &'a Value,
}

pub fn task_part(facts: &TaskFacts) -> Value {
    let field = |value: &Value, name: &str| value.get(name).cloned().unwrap_or(Value::Null);
    json!({
        "id": facts.id,
        "title": facts.title,
        "description": facts.description,
        "requirements": field(facts.input, "requirements"),
        "paths": field(facts.input, "paths"),
        "task_type": field(facts.analysis, "task_type"),
        "agents": field(facts.analysis, "agents"),
        "confidence": field(facts.analysis, "confidence"),
        "reasons": field(facts.analysis, "reasons"),
        "evidence": field(facts.analysis, "evidence"),
    })
}

/// The agent as registered: `metadata` is what an imported Claude Code subagent file said
/// besides its name and description (`prompt`, `tools`, `model`); absent for other agents.
pub fn agent_part(name: &str, description: &str, capabilities: &Value, metadata: &Value) -> Value {
    let meta = |key: &str| metadata.get(key).cloned().unwrap_or(Value::Null);
    json!({
        "name": name,
        "description": description,
        "capabilities": capabilities,
        "system_prompt": meta("prompt"),
        "tools": meta("tools"),
        "model": meta("model"),
    })
}

/// What the workflow is for and where step `index` of the plan stands in it. `steps` are the
/// planned steps, in workflow order, so that the steps around it show who does them and which
/// were skipped at submission.
pub fn workflow_part(definition: &Definition, version: i64, steps: &[Step], index: usize) -> Value {
    let line = |step: &Step| {
        json!({
            "key": step.key,
            "name": step.name,
            "agent": step.agent,
            "skipped": step.skip_reason.is_some(),
        })
    };
    let here = definition.steps.get(index);
    json!({
        "name": definition.name,
        "version": version,
        "title": definition.title,
        "description": definition.description,
        "overview": definition.overview,
        "step": {
            "key": here.map(|s| s.key.as_str()),
            "name": here.map(|s| s.name.as_str()),
            "title": here.and_then(|s| s.title.as_deref()),
            "phase": here.and_then(|s| s.phase.as_deref()),
            "group": here.and_then(|s| s.group.as_deref()),
            "depends_on": here.map(|s| s.depends_on.clone()).unwrap_or_default(),
            "position": index + 1,
            "of": steps.len(),
        },
        "before": steps.iter().take(index).map(line).collect::<Vec<_>>(),
        "after": steps.iter().skip(index + 1).map(line).collect::<Vec<_>>(),
    })
}

/// Every block of a tree, depth first.
fn walk<'a>(blocks: &'a [Block], out: &mut Vec<&'a Block>) {
    for block in blocks {
        out.push(block);
        walk(&block.children, out);
    }
}

/// Test block tags and the report's test kinds they ask for.
const TEST_BLOCKS: [(&str, &str); 3] =
    [("unit_tests", "unit"), ("integration_tests", "integration"), ("e2e_tests", "e2e")];

/// Block tags whose items are things to measure, reported as `performance` figures.
const PERFORMANCE_BLOCKS: [&str; 3] = ["performance_tests", "performance_metrics", "performance"];

/// Which report fields switchyard reads for step `index`, done by `agent`:
///
/// - `records`: the names of the step's `RECORD:` directives (`report.records[name]`);
/// - `feedback`: the categories a later `<feedback_collection>` asks of this agent
///   (`report.feedback[category]`), and the step that asks (`feedback_for`);
/// - `checklist`: the step's checklist items (`report.checklist[]`);
/// - `tests`: per test kind the step's blocks name, what to test (`report.tests[kind]`);
/// - `performance`: what the step's performance blocks ask to measure (`report.performance`);
/// - `always`: the fields every step may send ([`ALWAYS_READ`]).
///
/// A list the step does not ask for is empty rather than absent, so agents read one shape.
pub fn report_contract(definition: &Definition, index: usize, agent: Option<&str>) -> Value {
    let mut blocks = Vec::new();
    if let Some(step) = definition.steps.get(index) {
        walk(&step.blocks, &mut blocks);
    }
    let mut records = Vec::new();
    let mut checklist = Vec::new();
    let mut tests = Map::new();
    let mut performance = Vec::new();
    for block in &blocks {
        for directive in block.directives.iter().filter(|d| d.keyword == "RECORD" && !d.value.trim().is_empty()) {
            push_new(&mut records, directive.value.trim());
        }
        for item in block.items.iter().filter(|i| i.checked.is_some()) {
            push_new(&mut checklist, item.text.trim());
        }
        if let Some((_, kind)) = TEST_BLOCKS.iter().find(|(tag, _)| *tag == block.tag) {
            let items: Vec<Value> = block.items.iter().map(|i| Value::from(i.text.trim())).collect();
            tests.insert((*kind).to_string(), Value::from(items));
        }
        if PERFORMANCE_BLOCKS.contains(&block.tag.as_str()) {
            for item in &block.items {
                push_new(&mut performance, item.text.trim());
            }
        }
    }
    let (feedback_for, feedback) = feedback_asked(definition, index, agent);
    json!({
        "records": records,
        "feedback": feedback,
        "feedback_for": feedback_for,
        "checklist": checklist,
        "tests": tests,
        "performance": performance,
        "always": ALWAYS_READ,
    })
}

fn push_new(list: &mut Vec<String>, text: &str) {
    if !text.is_empty() && !list.iter().any(|t| t == text) {
        list.push(text.to_string());
    }
}

/// The first later step whose `<feedback_collection>` has a `<from_agent name="agent">`, and
/// the categories it lists.
fn feedback_asked(definition: &Definition, index: usize, agent: Option<&str>) -> (Option<String>, Vec<String>) {
    let Some(agent) = agent else { return (None, Vec::new()) };
    for later in definition.steps.iter().skip(index + 1) {
        let mut blocks = Vec::new();
        walk(&later.blocks, &mut blocks);
        let asked = blocks
            .iter()
            .filter(|b| b.tag == "feedback_collection")
            .flat_map(|b| b.children.iter())
            .find(|c| c.tag == "from_agent" && c.attributes.get("name").map(String::as_str) == Some(agent));
        if let Some(from) = asked {
            return (Some(later.key.clone()), from.items.iter().map(|i| i.text.trim().to_string()).collect());
        }
    }
    (None, Vec::new())
}

/// Where an offloaded part is kept in R2: beside the attempt's log and report, so that a retry's
/// parts never mix with an earlier attempt's.
pub fn part_key(task_id: &str, step_id: &str, attempt: u32, part: &str) -> String {
    format!("tasks/{task_id}/steps/{step_id}/attempt-{attempt}/{part}.json")
}

/// Where the agent fetches an offloaded part.
pub fn part_href(step_id: &str, attempt: u32, part: &str) -> String {
    format!("/v1/steps/{step_id}/attempts/{attempt}/parts/{part}")
}

/// A part placed in the payload: inline, or (over its bound) a pointer plus the text to store.
#[derive(Debug, Clone, PartialEq)]
pub struct Placed {
    pub value: Value,
    /// `Some(json)` when the part is offloaded: the shell stores it at [`part_key`].
    pub offload: Option<String>,
}

/// Places `value` as part `part` of the payload of `step_id`'s attempt `attempt`.
pub fn place(step_id: &str, attempt: u32, part: &str, value: Value) -> Placed {
    let bound = part_bound(part).unwrap_or(0);
    let text = value.to_string();
    if text.len() <= bound {
        return Placed { value, offload: None };
    }
    Placed {
        value: json!({"offloaded": {
            "bytes": text.len(),
            "bound": bound,
            "href": part_href(step_id, attempt, part),
        }}),
        offload: Some(text),
    }
}

/// What a step is handed, before its parts are placed.
pub struct Handout<'a> {
    pub task_id: &'a str,
    pub step: &'a Step,
    /// The step's instructions as stored at submission (with `workflow` and `report_contract`).
    pub stored: &'a Value,
    pub task: Value,
    /// The agent part ([`agent_part`]); the payload's `agent` stays the agent's name.
    pub agent: Value,
    pub inputs: Value,
}

/// A step's payload, and the offloaded parts the shell stores before handing it out, as
/// (R2 key, JSON text).
#[derive(Debug, Clone, PartialEq)]
pub struct Payload {
    pub value: Value,
    pub offloads: Vec<(String, String)>,
}

/// The step as an agent receives it, from a lease or a webhook delivery.
pub fn payload(handout: Handout) -> Payload {
    let step = handout.step;
    let mut instructions = handout.stored.as_object().cloned().unwrap_or_default();
    let workflow = instructions.remove("workflow").unwrap_or(Value::Null);
    let contract = instructions.remove("report_contract").unwrap_or(Value::Null);
    let mut value = json!({
        "id": step.id,
        "task_id": handout.task_id,
        "key": step.key,
        "name": step.name,
        "agent": step.agent,
        "attempt": step.attempt,
        "attempts_max": step.attempts_max,
        "lease_id": step.lease_id,
        "lease_expires_at": step.lease_expires_at.map(|t| t.to_rfc3339()),
    });
    let parts = [
        ("task", handout.task),
        ("workflow", workflow),
        ("agent_profile", handout.agent),
        ("instructions", Value::Object(instructions)),
        ("inputs", handout.inputs),
        ("report_contract", contract),
    ];
    let mut offloads = Vec::new();
    for (name, part) in parts {
        let placed = place(&step.id, step.attempt, name, part);
        if let Some(text) = placed.offload {
            offloads.push((part_key(handout.task_id, &step.id, step.attempt, name), text));
        }
        value[name] = placed.value;
    }
    Payload { value, offloads }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::engine::{Runner, StepStatus};
    use crate::core::registry::instructions;
    use crate::core::registry::workflow::{self, DEFAULT_WORKFLOW_NAME, DEFAULT_WORKFLOW_SOURCE};

    fn seed() -> Definition {
        workflow::from_instructions(DEFAULT_WORKFLOW_NAME.into(), &instructions::parse(DEFAULT_WORKFLOW_SOURCE).file)
    }

    fn planned(key: &str, name: &str, agent: Option<String>, skip_reason: Option<String>) -> Step {
        Step {
            id: format!("stp_{key}"),
            key: key.into(),
            name: name.into(),
            runner: Runner::Agent,
            agent,
            status: if skip_reason.is_some() { StepStatus::Skipped } else { StepStatus::Pending },
            depends_on: Vec::new(),
            attempt: 0,
            attempts_max: 3,
            attempts_budget: 3,
            lease_id: None,
            lease_expires_at: None,
            queued_at: None,
            due_at: None,
            ready_at: None,
            started_at: None,
            finished_at: None,
            skip_reason,
            error: None,
            attempts: Vec::new(),
            optional: false,
            timeouts: Default::default(),
            schedule_deadline_at: None,
            attempt_deadline_at: None,
            gate: None,
            report_fields: None,
            parent: None,
            child_run: None,
        }
    }

    fn index_of(definition: &Definition, key: &str) -> usize {
        definition.steps.iter().position(|s| s.key == key).expect("the step exists")
    }

    #[test]
    fn a_specialist_step_is_told_its_records_and_the_feedback_the_fan_in_step_asks_for() {
        let definition = seed();
        let index = index_of(&definition, "2a");
        let contract = report_contract(&definition, index, Some("cloudflare-specialist"));
        assert_eq!(
            contract["records"],
            json!(["Database schemas created", "KV namespaces configured", "API endpoints implemented"])
        );
        assert_eq!(contract["feedback_for"], json!("4"));
        assert_eq!(
            contract["feedback"],
            json!([
                "Files created/modified",
                "Services configured",
                "Performance optimizations applied",
                "Security measures implemented"
            ])
        );
        assert_eq!(contract["checklist"], json!([]));
        assert_eq!(contract["always"][0], json!("files_created"));
    }

    #[test]
    fn a_verification_step_is_told_its_checklist_and_the_integration_tests_to_count() {
        let definition = seed();
        let contract = report_contract(&definition, index_of(&definition, "3"), Some("project-manager"));
        assert_eq!(contract["checklist"][0], json!("SvelteKit reaches the new API routes"));
        assert_eq!(contract["checklist"].as_array().map(Vec::len), Some(5));
        assert_eq!(contract["tests"]["integration"][0], json!("Load data from D1 through a page"));
        assert_eq!(contract["feedback"], json!([]), "the fan-in step asks the project manager nothing");
    }

    #[test]
    fn a_test_step_is_told_every_test_kind_and_what_to_measure() {
        let definition = seed();
        let contract = report_contract(&definition, index_of(&definition, "5"), Some("test-runner"));
        let kinds: Vec<&String> = contract["tests"].as_object().map(|m| m.keys().collect()).unwrap_or_default();
        assert_eq!(kinds, ["e2e", "integration", "unit"]);
        assert!(!contract["performance"].as_array().is_some_and(Vec::is_empty), "{contract}");
    }

    #[test]
    fn a_step_without_an_agent_is_asked_no_feedback() {
        let definition = seed();
        let contract = report_contract(&definition, index_of(&definition, "2a"), None);
        assert_eq!(contract["feedback"], json!([]));
        assert_eq!(contract["feedback_for"], Value::Null);
    }

    #[test]
    fn the_workflow_part_places_the_step_between_the_steps_around_it() {
        let definition = seed();
        let steps: Vec<Step> = definition
            .steps
            .iter()
            .map(|s| planned(&s.key, &s.name, s.agent.clone(), (s.key == "2b").then(|| "backend only".to_string())))
            .collect();
        let index = index_of(&definition, "2a");
        let part = workflow_part(&definition, 3, &steps, index);
        assert_eq!(part["name"], json!("enhanced-multi-agent"));
        assert_eq!(part["version"], json!(3));
        assert!(part["overview"].as_str().is_some_and(|o| !o.is_empty()), "{part}");
        assert_eq!(part["step"]["key"], json!("2a"));
        assert_eq!(part["step"]["position"], json!(index + 1));
        assert_eq!(part["before"][0]["key"], json!("1"));
        assert_eq!(
            part["after"][0],
            json!({"key": "2b", "name": steps[index + 1].name, "agent": steps[index + 1].agent, "skipped": true})
        );
    }

    #[test]
    fn the_task_part_carries_the_submission_and_the_analysis() {
        let input = json!({"requirements": ["emails expire"], "paths": ["src/reset.rs"]});
        let analysis = json!({"task_type": "backend", "agents": ["cloudflare-specialist"], "confidence": 0.8,
                              "reasons": ["D1"], "evidence": [{"term": "d1"}], "selections": {}});
        let part = task_part(&TaskFacts {
            id: "tsk_1",
            title: "Password reset",
            description: "By email",
            input: &input,
            analysis: &analysis,
        });
        assert_eq!(part["title"], json!("Password reset"));
        assert_eq!(part["description"], json!("By email"));
        assert_eq!(part["requirements"], json!(["emails expire"]));
        assert_eq!(part["paths"], json!(["src/reset.rs"]));
        assert_eq!(part["task_type"], json!("backend"));
        assert_eq!(part["agents"], json!(["cloudflare-specialist"]));
        assert_eq!(part["evidence"], json!([{"term": "d1"}]));
        assert!(part.get("selections").is_none());
    }

    #[test]
    fn the_agent_part_carries_an_imported_files_prompt_tools_and_model() {
        let metadata =
            json!({"prompt": "You review SQL.", "tools": ["Read", "Grep"], "model": "sonnet", "color": "blue"});
        let part = agent_part("db-reviewer", "Reviews SQL", &json!(["sql"]), &metadata);
        assert_eq!(part["system_prompt"], json!("You review SQL."));
        assert_eq!(part["tools"], json!(["Read", "Grep"]));
        assert_eq!(part["model"], json!("sonnet"));
        assert!(part.get("color").is_none());
        let plain = agent_part("x", "y", &json!([]), &json!({}));
        assert_eq!(plain["system_prompt"], Value::Null);
    }

    #[test]
    fn a_part_within_its_bound_stays_inline() {
        let placed = place("stp_1", 1, "task", json!({"title": "small"}));
        assert_eq!(placed, Placed { value: json!({"title": "small"}), offload: None });
    }

    #[test]
    fn a_part_over_its_bound_is_offloaded_whole_never_cut() {
        let big = json!({"description": "x".repeat(BRIEF_TASK_BYTES_MAX)});
        let placed = place("stp_1", 2, "task", big.clone());
        assert_eq!(placed.offload.as_deref(), Some(big.to_string().as_str()));
        assert_eq!(placed.value["offloaded"]["href"], json!("/v1/steps/stp_1/attempts/2/parts/task"));
        assert_eq!(placed.value["offloaded"]["bytes"], json!(big.to_string().len()));
        assert_eq!(part_key("tsk_1", "stp_1", 2, "task"), "tasks/tsk_1/steps/stp_1/attempt-2/task.json");
    }

    #[test]
    fn a_payload_splits_the_stored_instructions_into_their_parts_and_offloads_only_the_large_one() {
        let step =
            Step { attempt: 2, lease_id: Some("lse_1".into()), ..planned("2a", "backend", Some("a".into()), None) };
        let stored = json!({"title": "Step 2a", "text": "Build it.", "blocks": [],
                            "workflow": {"name": "w"}, "report_contract": {"records": ["Endpoints"]}});
        let inputs = json!({"1": {"report": {"notes": "y".repeat(BRIEF_INPUTS_BYTES_MAX)}}});
        let out = payload(Handout {
            task_id: "tsk_1",
            step: &step,
            stored: &stored,
            task: json!({"title": "Reset"}),
            agent: json!({"name": "a"}),
            inputs: inputs.clone(),
        });
        assert_eq!(out.value["instructions"], json!({"title": "Step 2a", "text": "Build it.", "blocks": []}));
        assert_eq!(out.value["workflow"], json!({"name": "w"}));
        assert_eq!(out.value["report_contract"], json!({"records": ["Endpoints"]}));
        assert_eq!(out.value["task"], json!({"title": "Reset"}));
        assert_eq!(out.value["agent"], json!("a"), "the agent's name stays where it was");
        assert_eq!(out.value["agent_profile"], json!({"name": "a"}));
        assert_eq!(out.value["lease_id"], json!("lse_1"));
        assert_eq!(out.value["inputs"]["offloaded"]["href"], json!("/v1/steps/stp_2a/attempts/2/parts/inputs"));
        assert_eq!(
            out.offloads,
            vec![("tasks/tsk_1/steps/stp_2a/attempt-2/inputs.json".to_string(), inputs.to_string())]
        );
    }

    #[test]
    fn every_part_has_a_bound_and_nothing_else_does() {
        for part in PARTS {
            assert!(part_bound(part).is_some_and(|b| b >= 4096), "{part}");
        }
        assert_eq!(part_bound("messages"), None);
    }
}
