//! Every transition of the state machine, one at a time, on the default workflow.

use std::collections::BTreeSet;

use super::plan::{plan, PlanInput};
use super::*;
use crate::core::records::report::ReportedSelection;
use crate::core::registry::analysis::{analyze, AgentProfile, TaskInput};
use crate::core::registry::child_runs::{Files, PostedFile};
use crate::core::registry::default_agents::DEFAULT_AGENTS;
use crate::core::registry::instructions;
use crate::core::registry::workflow::{
    self, Definition, BUILTIN_STEPS, DEFAULT_WORKFLOW_NAME, DEFAULT_WORKFLOW_SOURCE,
};

const FULL_STACK: &str = "Add a D1-backed comments API and a SvelteKit page that lists them";
const BACKEND: &str = "Add a D1 migration and a Worker API endpoint for comments";
const FRONTEND: &str = "Restyle the SvelteKit settings page and its form components";

fn at(ms: i64) -> Timestamp {
    Timestamp::from_millis(1_800_000_000_000 + ms).unwrap()
}

fn default_definition() -> Definition {
    let parsed = instructions::parse(DEFAULT_WORKFLOW_SOURCE);
    workflow::from_instructions(DEFAULT_WORKFLOW_NAME.into(), &parsed.file)
}

fn capabilities() -> Vec<Vec<String>> {
    DEFAULT_AGENTS.iter().map(|a| a.capabilities.iter().map(|c| c.to_string()).collect()).collect()
}

/// The default agents as planning reads them.
fn profiles(capabilities: &[Vec<String>]) -> Vec<AgentProfile<'_>> {
    DEFAULT_AGENTS
        .iter()
        .zip(capabilities)
        .map(|(a, c)| AgentProfile { name: a.name, description: a.description, capabilities: c })
        .collect()
}

fn planned(definition: &Definition, title: &str) -> Result<plan::Plan, Vec<Detail>> {
    planned_with(definition, title, &workflow::main_agent_of(definition, None, None))
}

/// Plans a task on `definition` with the default agents and the given main agent.
fn planned_with(
    definition: &Definition,
    title: &str,
    main_agent: &workflow::MainAgent,
) -> Result<plan::Plan, Vec<Detail>> {
    planned_in(definition, &Files::new(), title, main_agent)
}

/// Plans a task on `definition`, whose `EXECUTE`s reach `files`, with the default agents.
fn planned_in(
    definition: &Definition,
    files: &Files,
    title: &str,
    main_agent: &workflow::MainAgent,
) -> Result<plan::Plan, Vec<Detail>> {
    let capabilities = capabilities();
    let agents = profiles(&capabilities);
    let analysis = analyze(
        &TaskInput { title, description: "", requirements: &[], paths: &[] },
        &definition.routing_input(&agents),
    );
    let step_ids: Vec<String> = (0..plan::step_count(definition, files)).map(|i| format!("stp_{i}")).collect();
    plan(&PlanInput {
        task_id: "tsk_1",
        step_ids: &step_ids,
        definition,
        files,
        workflow_version: 1,
        analysis: &analysis,
        agents: &agents,
        main_agent,
        flight_rules: &[],
        now: at(0),
    })
}

use crate::core::edge::error::Detail;

fn submitted(title: &str) -> Task {
    planned(&default_definition(), title).expect("the default workflow plans").task
}

fn id_of(task: &Task, key: &str) -> String {
    task.steps.iter().find(|s| s.key == key).unwrap().id.clone()
}

fn step<'a>(task: &'a Task, key: &str) -> &'a Step {
    task.steps.iter().find(|s| s.key == key).unwrap()
}

fn changed(task: &Task, command: Command, now: Timestamp) -> Transition {
    match apply(task, &command, now, 7) {
        Ok(Outcome::Changed(transition)) => {
            let moves = if transition.scope == Scope::Task { 1 } else { 0 };
            assert_eq!(transition.task.version, task.version + moves);
            check_invariants(&transition.task).unwrap();
            *transition
        }
        other => panic!("{command:?} did not change the task: {other:?}"),
    }
}

fn refused(task: &Task, command: Command, now: Timestamp) -> Refusal {
    match apply(task, &command, now, 7) {
        Err(refusal) => refusal,
        other => panic!("{command:?} was not refused: {other:?}"),
    }
}

fn dispatch(task: &Task, key: &str) -> Task {
    let step = step(task, key);
    let command = Command::Dispatch {
        step_id: step.id.clone(),
        attempt: step.attempt + 1,
        how: Dispatch::Leasable { agent: hb(1_000) },
    };
    changed(task, command, at(10)).task
}

fn lease_command(task: &Task, key: &str, lease_id: &str) -> Command {
    Command::Lease {
        step_id: id_of(task, key),
        caller: Caller::Admin,
        lease_id: lease_id.into(),
        agent: hb(1_000),
        at_capacity: false,
    }
}

fn lease(task: &Task, key: &str, lease_id: &str) -> Task {
    changed(task, lease_command(task, key, lease_id), at(20)).task
}

fn completion(task: &Task, key: &str, succeeded: bool, hash: &str) -> Command {
    Command::Complete(Completion {
        step_id: id_of(task, key),
        lease_id: step(task, key).lease_id.clone().unwrap_or_default(),
        caller: Caller::Admin,
        succeeded,
        error: (!succeeded).then(|| "broke".to_string()),
        hash: hash.into(),
        report: Some(ReportRef::Inline("{}".into())),
        selection: None,
        items: None,
    })
}

/// Dispatches, leases and completes one step successfully.
fn run(task: &Task, key: &str) -> Transition {
    let leased = lease(&dispatch(task, key), key, &format!("lse_{key}"));
    changed(&leased, completion(&leased, key, true, "h"), at(30))
}

#[test]
fn a_full_stack_task_queues_step_1_only_and_runs_both_specialists() {
    let plan = planned(&default_definition(), FULL_STACK).unwrap();
    let statuses: Vec<_> = plan.task.steps.iter().map(|s| (s.key.as_str(), s.status)).collect();
    assert_eq!(statuses[0], ("1", StepStatus::Queued));
    assert!(statuses[1..].iter().all(|(_, s)| *s == StepStatus::Pending));
    assert_eq!(plan.sends, vec![Send { step_id: id_of(&plan.task, "1"), attempt: 1, delay_seconds: 0 }]);
    assert_eq!(plan.events[0].kind, "task.created");
    assert_eq!(plan.instructions.len(), plan.task.steps.len());
    assert_eq!(step(&plan.task, "4").runner, Runner::Builtin);
}

/// A completion of `key` under its lease whose report carries the analysis step's selection.
fn completion_selecting(task: &Task, key: &str, agents: &[&str]) -> Command {
    let Command::Complete(mut completion) = completion(task, key, true, "selected") else { unreachable!() };
    completion.selection = Some(ReportedSelection {
        step: key.into(),
        agents: agents.iter().map(|a| a.to_string()).collect(),
        task_type: None,
        reason: Some("the spec asks for a page".into()),
    });
    Command::Complete(completion)
}

fn routed_events(transition: &Transition) -> Vec<(String, bool, String)> {
    transition
        .events
        .iter()
        .filter(|e| e.kind == "step.routed")
        .map(|e| {
            (
                e.data["key"].as_str().unwrap_or("").to_string(),
                e.data["kept"] == true,
                e.data["decided_by"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

#[test]
fn a_backend_task_skips_the_frontend_step_once_step_1_is_done_and_a_frontend_task_the_backend_step() {
    let plan = planned(&default_definition(), BACKEND).unwrap();
    let waiting = step(&plan.task, "2b");
    assert_eq!(waiting.status, StepStatus::Pending, "routing decides when the group is ready");
    assert!(waiting
        .gate
        .as_ref()
        .unwrap()
        .routing
        .as_ref()
        .unwrap()
        .planned_skip
        .as_deref()
        .unwrap()
        .contains("backend task"));
    let after = run(&plan.task, "1");
    let skipped = step(&after.task, "2b");
    assert_eq!(skipped.status, StepStatus::Skipped);
    assert!(skipped.skip_reason.as_deref().unwrap().contains("backend task"));
    assert_eq!(step(&after.task, "2a").status, StepStatus::Queued);
    assert!(after.events.iter().any(|e| e.kind == "step.skipped" && e.data["decided_by"] == "submission"));
    assert_eq!(
        routed_events(&after),
        [("2a".into(), true, "submission".into()), ("2b".into(), false, "submission".into())]
    );
    let frontend = run(&submitted(FRONTEND), "1").task;
    assert_eq!(step(&frontend, "2a").status, StepStatus::Skipped);
    assert_eq!(step(&frontend, "2b").status, StepStatus::Queued);
}

#[test]
fn the_analysis_steps_selection_replaces_the_analysis_made_at_submission() {
    let (cloudflare, sveltekit) = (DEFAULT_AGENTS[1].name, DEFAULT_AGENTS[2].name);
    let backend = submitted(BACKEND);
    let leased = lease(&dispatch(&backend, "1"), "1", "lse_1");
    let both = changed(&leased, completion_selecting(&leased, "1", &[cloudflare, sveltekit]), at(30));
    assert_eq!(step(&both.task, "2b").status, StepStatus::Queued, "the selection keeps what submission skipped");
    assert_eq!(both.task.selection.as_ref().unwrap().agents, [cloudflare, sveltekit]);
    assert!(both.events.iter().any(|e| e.kind == "task.selection_reported"));
    assert_eq!(
        routed_events(&both),
        [("2a".into(), true, "analysis_step".into()), ("2b".into(), true, "analysis_step".into())]
    );

    let full = submitted(FULL_STACK);
    let leased = lease(&dispatch(&full, "1"), "1", "lse_1");
    let frontend_only = changed(&leased, completion_selecting(&leased, "1", &[sveltekit]), at(30));
    let skipped = step(&frontend_only.task, "2a");
    assert_eq!(skipped.status, StepStatus::Skipped);
    assert_eq!(
        skipped.skip_reason.as_deref(),
        Some(format!("the analysis step (step 1) selected only {sveltekit}: the spec asks for a page").as_str())
    );
    assert_eq!(step(&frontend_only.task, "3").status, StepStatus::Pending, "the fan-in waits for 2b");
}

#[test]
fn a_workflow_naming_unregistered_agents_is_refused_with_their_names_and_steps() {
    let mut definition = default_definition();
    definition.steps[0].agent = Some("ghost".into());
    definition.steps[5].agent = Some("ghost".into());
    let problems = planned(&definition, FULL_STACK).unwrap_err();
    assert_eq!(problems[0].message, "agent ghost (step 1, 5) is not registered");
}

#[test]
fn auto_select_steps_get_the_best_agent_and_are_skipped_or_refused_without_one() {
    let mut definition = default_definition();
    definition.steps[5].agent = None;
    definition.steps[5].auto_select = Some(workflow::AutoSelect { requirements: vec!["unit tests".into()] });
    let plan = planned(&definition, FULL_STACK).unwrap();
    assert_eq!(step(&plan.task, "5").agent.as_deref(), Some("test-runner"));
    assert!(plan.selections.contains_key("5"));

    definition.steps[5].auto_select = Some(workflow::AutoSelect { requirements: vec!["zzz".into()] });
    assert!(planned(&definition, FULL_STACK).unwrap_err()[0].message.contains("no registered agent"));
    definition.steps[5].optional = true;
    let plan = planned(&definition, FULL_STACK).unwrap();
    assert_eq!(step(&plan.task, "5").status, StepStatus::Skipped);
}

#[test]
fn a_step_without_an_agent_is_built_in_by_name_or_done_by_the_main_agent() {
    let mut definition = default_definition();
    assert!(BUILTIN_STEPS.contains(&definition.steps[4].name.as_str()));
    assert_eq!(step(&planned(&definition, FULL_STACK).unwrap().task, "4").runner, Runner::Builtin);
    definition.steps[4].name = "mystery".into();
    let plan = planned(&definition, FULL_STACK).unwrap();
    let mystery = step(&plan.task, "4");
    assert_eq!((mystery.runner, mystery.agent.as_deref()), (Runner::Agent, Some(workflow::DEFAULT_MAIN_AGENT)));
    assert_eq!(plan.events[0].data["main_agent"], serde_json::json!({"name": "main-agent", "chosen_by": "default"}));
}

#[test]
fn the_main_agent_comes_from_the_task_then_the_workflow_then_the_configuration() {
    let mut definition = default_definition();
    let chosen = |definition: &Definition, task: Option<&str>, configured: Option<&str>| {
        let main = workflow::main_agent_of(definition, task, configured);
        (main.name, main.chosen_by.as_str())
    };
    assert_eq!(chosen(&definition, None, None), ("main-agent".into(), "default"));
    assert_eq!(chosen(&definition, None, Some(" lead ")), ("lead".into(), "configuration"));
    definition.main_agent = Some("planner".into());
    assert_eq!(chosen(&definition, None, Some("lead")), ("planner".into(), "workflow"));
    assert_eq!(chosen(&definition, Some("closer"), Some("lead")), ("closer".into(), "task"));
}

#[test]
fn a_task_is_refused_only_when_its_main_agent_is_needed_and_not_registered() {
    let mut definition = default_definition();
    let ghost = workflow::MainAgent { name: "ghost".into(), chosen_by: workflow::ChosenBy::Task };
    let plan_with = |definition: &Definition| planned_with(definition, FULL_STACK, &ghost);
    assert!(plan_with(&definition).is_ok(), "no step of the default workflow needs the main agent");
    definition.steps[4].name = "mystery".into();
    definition.steps[5].agent = None;
    let problems = plan_with(&definition).unwrap_err();
    assert_eq!(problems.len(), 1);
    assert_eq!(problems[0].field.as_deref(), Some("main_agent"));
    assert_eq!(
        problems[0].message,
        "the main agent ghost (the task's main_agent) does steps 4, 5, which name no subagent, and is not registered"
    );
}

#[test]
fn max_attempts_is_read_from_the_step_and_clamped() {
    let mut definition = default_definition();
    definition.steps[0].attributes.insert("max_attempts".into(), "5".into());
    definition.steps[1].attributes.insert("max_attempts".into(), "500".into());
    definition.steps[2].attributes.insert("max_attempts".into(), "0".into());
    let task = planned(&definition, FULL_STACK).unwrap().task;
    assert_eq!(step(&task, "1").attempts_max, 5);
    assert_eq!(step(&task, "2a").attempts_max, crate::core::base::limits::STEP_ATTEMPTS_MAX);
    assert_eq!(step(&task, "2b").attempts_max, 1);
    assert_eq!(step(&task, "3").attempts_max, crate::core::base::limits::STEP_ATTEMPTS_DEFAULT);
}

#[test]
fn dispatching_a_pull_step_makes_it_leasable_and_a_duplicate_message_changes_nothing() {
    let task = submitted(FULL_STACK);
    let ready = dispatch(&task, "1");
    assert_eq!(step(&ready, "1").status, StepStatus::Queued);
    assert_eq!(step(&ready, "1").ready_at, Some(at(10)));
    let again =
        Command::Dispatch { step_id: id_of(&ready, "1"), attempt: 1, how: Dispatch::Leasable { agent: hb(1_000) } };
    assert!(matches!(apply(&ready, &again, at(11), 0), Ok(Outcome::Unchanged(_))));
    let other_attempt =
        Command::Dispatch { step_id: id_of(&task, "1"), attempt: 2, how: Dispatch::Leasable { agent: hb(1_000) } };
    assert!(matches!(apply(&task, &other_attempt, at(11), 0), Ok(Outcome::Unchanged(_))));
}

#[test]
fn a_pull_agents_step_is_made_leasable_in_the_change_that_queued_it_and_its_late_message_changes_nothing() {
    let done = run(&submitted(FULL_STACK), "1");
    let queued: Vec<_> = queued_for_agents(&done.task, &done.sends).into_iter().map(|(id, _)| id.to_string()).collect();
    assert_eq!(queued, vec![id_of(&done.task, "2a"), id_of(&done.task, "2b")]);
    // 2a's agent pulls; 2b's is left to its queue message (a webhook agent's, say).
    let (at_once, leasable) = done.clone().with_leasable_at_once(at(30), &[(id_of(&done.task, "2a"), hb(1_000))]);
    check_invariants(&at_once.task).unwrap();
    assert_eq!(leasable, vec![id_of(&done.task, "2a")]);
    assert_eq!(step(&at_once.task, "2a").ready_at, Some(at(30)));
    assert_eq!(step(&at_once.task, "2b").ready_at, None);
    assert_eq!(at_once.sends, vec![Send { step_id: id_of(&done.task, "2b"), attempt: 1, delay_seconds: 0 }]);
    assert_eq!(at_once.events.len(), done.events.len() + 1);
    assert_eq!(at_once.events.last().map(|e| e.kind), Some("step.ready"));
    assert_eq!(at_once.task.version, done.task.version);
    let late = Command::Dispatch {
        step_id: id_of(&done.task, "2a"),
        attempt: 1,
        how: Dispatch::Leasable { agent: hb(1_000) },
    };
    assert!(matches!(apply(&at_once.task, &late, at(31), 0), Ok(Outcome::Unchanged(_))));
    lease(&at_once.task, "2a", "lse_2a");
}

#[test]
fn a_retry_waiting_out_its_backoff_and_a_task_s_first_step_keep_to_the_queue_unless_sent_at_once() {
    let task = dispatch(&submitted(FULL_STACK), "1");
    let leased = lease(&task, "1", "lse_1");
    let failed = changed(&leased, completion(&leased, "1", false, "h"), at(30));
    assert!(failed.sends[0].delay_seconds > 0);
    assert!(queued_for_agents(&failed.task, &failed.sends).is_empty());
    let (kept, leasable) = failed.clone().with_leasable_at_once(at(30), &[(id_of(&task, "1"), hb(1_000))]);
    assert!(leasable.is_empty());
    assert_eq!(kept, failed);

    let plan = planned(&default_definition(), FULL_STACK).unwrap();
    let first = id_of(&plan.task, "1");
    let (plan, leasable) = plan.with_leasable_at_once(at(0), &[(first.clone(), hb(1_000))]);
    assert_eq!(leasable, vec![first]);
    assert!(plan.sends.is_empty());
    assert_eq!(step(&plan.task, "1").ready_at, Some(at(0)));
    check_invariants(&plan.task).unwrap();
}

#[test]
fn a_built_in_step_queued_with_no_delay_is_run_at_once_and_everything_else_goes_to_the_queue() {
    let task = submitted(FULL_STACK);
    let builtin = id_of(&task, "4");
    let sends = vec![
        Send { step_id: builtin.clone(), attempt: 1, delay_seconds: 0 },
        Send { step_id: id_of(&task, "2b"), attempt: 1, delay_seconds: 0 },
        Send { step_id: builtin.clone(), attempt: 2, delay_seconds: 30 },
        Send { step_id: "stp_unknown".into(), attempt: 1, delay_seconds: 0 },
    ];
    let (at_once, queued) = builtins_at_once(&task, sends.clone());
    assert_eq!(at_once, vec![sends[0].clone()]);
    assert_eq!(queued, sends[1..].to_vec());
}

#[test]
fn dispatching_a_webhook_step_leases_it_for_the_delivery() {
    let task = submitted(FULL_STACK);
    let how = Dispatch::Deliver { lease_id: "lse_w".into(), agent: hb(5_000) };
    let after = changed(&task, Command::Dispatch { step_id: id_of(&task, "1"), attempt: 1, how }, at(10)).task;
    let step = step(&after, "1");
    assert_eq!((step.status, step.attempt, step.lease_id.as_deref()), (StepStatus::Leased, 1, Some("lse_w")));
    // Leased for longer than the Worker waits for the webhook's answer.
    assert_eq!(step.lease_expires_at, Some(at(20_010)));
    assert_eq!(step.attempt_deadline_at, Some(at(3_600_010)));
}

#[test]
fn a_builtin_step_runs_at_dispatch_and_the_next_step_is_queued() {
    let mut task = submitted(FULL_STACK);
    for key in ["1", "2a", "2b", "3"] {
        task = run(&task, key).task;
    }
    assert_eq!(step(&task, "4").status, StepStatus::Queued);
    let how = Dispatch::Builtin { report: ReportRef::Inline("{\"builtin\":true}".into()) };
    let transition = changed(&task, Command::Dispatch { step_id: id_of(&task, "4"), attempt: 1, how }, at(40));
    assert_eq!(step(&transition.task, "4").status, StepStatus::Succeeded);
    assert_eq!(step(&transition.task, "5").status, StepStatus::Queued);
    assert_eq!(transition.reports.len(), 1);
}

#[test]
fn a_built_in_step_does_not_loop_in_a_failed_task_and_runs_once_the_task_is_retried() {
    let definition: Definition = serde_json::from_value(serde_json::json!({"name": "w", "steps": [
        {"key": "1a", "name": "checks", "agent": "test-runner", "group": "parallel-1", "attributes": {"max_attempts": "1"}},
        {"key": "1b", "name": "task_summary", "group": "parallel-1"}
    ]}))
    .unwrap();
    let task = planned(&definition, FULL_STACK).unwrap().task;
    assert_eq!(step(&task, "1b").status, StepStatus::Queued);
    let leased = lease(&dispatch(&task, "1a"), "1a", "lse_1a");
    let failed = changed(&leased, completion(&leased, "1a", false, "h"), at(30)).task;
    assert_eq!((failed.status, step(&failed, "1a").status), (TaskStatus::Failed, StepStatus::Dead));

    // The built-in step's message is acknowledged without effect, and the sweep leaves it alone.
    let how = Dispatch::Builtin { report: ReportRef::Inline("{}".into()) };
    let message = Command::Dispatch { step_id: id_of(&failed, "1b"), attempt: 1, how };
    assert!(matches!(apply(&failed, &message, at(40), 0), Ok(Outcome::Unchanged(_))));
    let sweep = Command::Sweep { redispatch_after_ms: 60_000 };
    for minute in 1..=5 {
        assert!(matches!(apply(&failed, &sweep, at(minute * 60_000), 0), Ok(Outcome::Unchanged(_))), "minute {minute}");
    }

    // A manual retry sets the task running; the sweep then sends the built-in step again.
    let retried = changed(&failed, Command::Retry { step_id: id_of(&failed, "1a") }, at(400_000)).task;
    assert_eq!(retried.status, TaskStatus::Running);
    let swept = changed(&retried, sweep, at(400_000));
    assert!(swept.sends.iter().any(|s| s.step_id == id_of(&retried, "1b")), "{:?}", swept.sends);
    assert!(matches!(apply(&swept.task, &message, at(400_001), 0), Ok(Outcome::Changed(_))));
}

#[test]
fn a_message_for_a_finished_task_changes_nothing() {
    let task = submitted(FULL_STACK);
    let cancelled = changed(&task, Command::Cancel, at(5)).task;
    let command =
        Command::Dispatch { step_id: id_of(&task, "1"), attempt: 1, how: Dispatch::Leasable { agent: hb(1_000) } };
    assert!(matches!(apply(&cancelled, &command, at(6), 0), Ok(Outcome::Unchanged(_))));
}

#[test]
fn only_a_dispatched_step_can_be_leased_and_only_by_its_agent_within_its_capacity() {
    let task = submitted(FULL_STACK);
    let lease_as = |task: &Task, caller: Caller, at_capacity: bool| Command::Lease {
        step_id: id_of(task, "1"),
        caller,
        lease_id: "lse_1".into(),
        agent: hb(1_000),
        at_capacity,
    };
    assert_eq!(refused(&task, lease_as(&task, Caller::Admin, false), at(1)), Refusal::NotLeasable);
    let ready = dispatch(&task, "1");
    assert_eq!(
        refused(&ready, lease_as(&ready, Caller::Agent("test-runner".into()), false), at(1)),
        Refusal::Forbidden
    );
    assert_eq!(refused(&ready, lease_as(&ready, Caller::Admin, true), at(1)), Refusal::AtCapacity);
    let leased = changed(&ready, lease_as(&ready, Caller::Agent("context-fetcher".into()), false), at(20)).task;
    let step = step(&leased, "1");
    assert_eq!((step.status, step.attempt, step.lease_expires_at), (StepStatus::Leased, 1, Some(at(1_020))));
    assert_eq!(refused(&leased, lease_as(&leased, Caller::Admin, false), at(21)), Refusal::NotLeasable);
}

#[test]
fn a_cancelled_task_refuses_leases() {
    let ready = dispatch(&submitted(FULL_STACK), "1");
    let mut cancelled = ready.clone();
    cancelled.status = TaskStatus::Cancelled;
    let command = Command::Lease {
        step_id: id_of(&ready, "1"),
        caller: Caller::Admin,
        lease_id: "l".into(),
        agent: hb(1),
        at_capacity: false,
    };
    assert_eq!(refused(&cancelled, command, at(30)), Refusal::Cancelled);
}

#[test]
fn a_heartbeat_extends_the_current_lease_and_refuses_any_other() {
    let leased = lease(&dispatch(&submitted(FULL_STACK), "1"), "1", "lse_a");
    let beat = |lease_id: &str| Command::Heartbeat {
        step_id: id_of(&leased, "1"),
        caller: Caller::Admin,
        lease_id: lease_id.into(),
        agent: hb(1_000),
    };
    let extension = Extension {
        task_id: "tsk_1".into(),
        step_id: id_of(&leased, "1"),
        attempt: 1,
        lease_id: "lse_a".into(),
        expires_at: at(1_500),
    };
    assert_eq!(apply(&leased, &beat("lse_a"), at(500), 7), Ok(Outcome::Extended(extension)));
    assert!(matches!(refused(&leased, beat("lse_other"), at(500)), Refusal::StaleLease(_)));
    // Past its expiry, the lease is still the step's until the sweep ends it.
    assert!(matches!(apply(&leased, &beat("lse_a"), at(1_020), 7), Ok(Outcome::Extended(_))));
    let swept = changed(&leased, Command::Sweep { redispatch_after_ms: 60_000 }, at(1_030)).task;
    assert_eq!(refused(&swept, beat("lse_a"), at(1_040)), Refusal::StaleLease("this lease has expired"));
    let cancelled = changed(&leased, Command::Cancel, at(600)).task;
    assert_eq!(refused(&cancelled, beat("lse_a"), at(700)), Refusal::Cancelled);
}

#[test]
fn a_heartbeat_never_changes_the_tasks_version() {
    let leased = lease(&dispatch(&submitted(FULL_STACK), "1"), "1", "lse_a");
    let beat = Command::Heartbeat {
        step_id: id_of(&leased, "1"),
        caller: Caller::Admin,
        lease_id: "lse_a".into(),
        agent: hb(5),
    };
    assert!(matches!(apply(&leased, &beat, at(30), 7), Ok(Outcome::Extended(_))));
}

#[test]
fn a_lease_changes_its_step_alone_and_leaves_the_tasks_version() {
    let ready = dispatch(&submitted(FULL_STACK), "1");
    let leased = changed(&ready, lease_command(&ready, "1", "lse_a"), at(20));
    assert_eq!(leased.scope, Scope::Step(id_of(&ready, "1")));
    assert_eq!(leased.task.version, ready.version);
    let others_unchanged = leased.task.steps.iter().zip(&ready.steps).all(|(new, old)| new.key == "1" || new == old);
    assert!(others_unchanged);
    assert_eq!(leased.task.status, ready.status);
    assert!(leased.leasable_read.is_empty());
}

#[test]
fn a_lease_tries_the_steps_made_ready_first_spread_at_random_then_the_later_ones_and_never_another_agents() {
    let mut task = submitted(FULL_STACK);
    for (key, agent, ready_ms) in [("2a", "writer", 10), ("2b", "writer", 10), ("3", "writer", 20), ("1", "reader", 5)]
    {
        let step = task.steps.iter_mut().find(|s| s.key == key).unwrap();
        step.agent = Some(agent.into());
        step.status = StepStatus::Queued;
        step.ready_at = Some(at(ready_ms));
    }
    let key_of = |tried: &[String], random: u32| lease_candidate(&task, "writer", tried, random).map(|s| s.key.clone());
    let first: BTreeSet<Option<String>> = (0..8).map(|random| key_of(&[], random)).collect();
    assert_eq!(first, BTreeSet::from([Some("2a".to_string()), Some("2b".to_string())]));
    let both = [id_of(&task, "2a"), id_of(&task, "2b")];
    assert_eq!(key_of(&both[..1], 0).as_deref(), Some("2b"));
    assert_eq!(key_of(&both, 0).as_deref(), Some("3"));
    assert_eq!(key_of(&[both[0].clone(), both[1].clone(), id_of(&task, "3")], 0), None);
    assert_eq!(lease_candidate(&task, "nobody", &[], 0).map(|s| s.key.clone()), None);
}

#[test]
fn a_change_to_a_step_it_read_as_leasable_carries_that_steps_attempt_so_that_a_lease_in_between_wins() {
    let ready = dispatch(&submitted(FULL_STACK), "1");
    let cancelled = changed(&ready, Command::Cancel, at(30));
    assert_eq!(cancelled.scope, Scope::Task);
    assert_eq!(cancelled.leasable_read, vec![(id_of(&ready, "1"), 0)]);
    // A change that leaves the leasable step alone carries nothing.
    let leased = lease(&dispatch(&submitted(FULL_STACK), "1"), "1", "lse_a");
    let done = changed(&leased, completion(&leased, "1", true, "h"), at(30));
    assert!(done.leasable_read.is_empty());
}

#[test]
fn a_lease_put_on_a_step_changed_since_it_was_read_keeps_what_changed_and_adds_the_lease() {
    let ready = dispatch(&submitted(FULL_STACK), "1");
    let leased = lease(&ready, "1", "lse_a");
    let mut now = step(&ready, "1").clone();
    now.error = Some("written by a late answer meanwhile".into());
    now.take_lease(step(&leased, "1"));
    assert_eq!(now.status, StepStatus::Leased);
    assert_eq!(now.lease_id.as_deref(), Some("lse_a"));
    assert_eq!((now.attempt, now.attempts.len()), (1, 1));
    assert_eq!(now.error.as_deref(), Some("written by a late answer meanwhile"));
}

#[test]
fn the_sweep_carries_the_expiry_it_read_so_that_a_heartbeat_in_between_wins() {
    let leased = lease(&dispatch(&submitted(FULL_STACK), "1"), "1", "lse_a");
    let swept = changed(&leased, Command::Sweep { redispatch_after_ms: 60_000 }, at(1_030));
    assert_eq!(swept.expiries_read, vec![(id_of(&leased, "1"), at(1_020))]);
}

#[test]
fn the_fan_in_step_is_queued_once_when_the_last_parallel_step_succeeds_in_either_order() {
    let after_one = run(&submitted(FULL_STACK), "1").task;
    assert_eq!(step(&after_one, "2a").status, StepStatus::Queued);
    assert_eq!(step(&after_one, "2b").status, StepStatus::Queued);
    for order in [["2a", "2b"], ["2b", "2a"]] {
        let first = run(&after_one, order[0]);
        assert_eq!(step(&first.task, "3").status, StepStatus::Pending);
        assert!(first.sends.is_empty());
        let second = run(&first.task, order[1]);
        assert_eq!(step(&second.task, "3").status, StepStatus::Queued);
        assert_eq!(second.sends.len(), 1);
        assert_eq!(second.events.iter().filter(|e| e.kind == "step.queued").count(), 1);
    }
}

#[test]
fn the_task_succeeds_with_its_last_step() {
    let mut task = submitted(BACKEND);
    for key in ["1", "2a", "3"] {
        task = run(&task, key).task;
    }
    let how = Dispatch::Builtin { report: ReportRef::Inline("{}".into()) };
    task = changed(&task, Command::Dispatch { step_id: id_of(&task, "4"), attempt: 1, how }, at(40)).task;
    task = run(&task, "5").task;
    let last = run(&task, "6");
    assert_eq!(last.task.status, TaskStatus::Succeeded);
    assert!(last.events.iter().any(|e| e.kind == "task.succeeded"));
}

#[test]
fn a_failed_attempt_is_retried_after_a_backoff_and_the_last_one_kills_the_step_and_fails_the_task() {
    let mut task = submitted(FULL_STACK);
    for attempt in 1..=3 {
        let leased = lease(&dispatch(&task, "1"), "1", &format!("lse_{attempt}"));
        let transition = changed(&leased, completion(&leased, "1", false, "h"), at(30));
        task = transition.task;
        if attempt < 3 {
            assert_eq!(step(&task, "1").status, StepStatus::Failed);
            let delay = backoff_seconds(attempt, 7);
            assert_eq!(
                transition.sends,
                vec![Send { step_id: id_of(&task, "1"), attempt: attempt + 1, delay_seconds: delay }]
            );
            assert_eq!(step(&task, "1").due_at, Some(at(30 + i64::from(delay) * 1000)));
        }
    }
    assert_eq!(step(&task, "1").status, StepStatus::Dead);
    assert_eq!(task.status, TaskStatus::Failed);
    assert!(step(&task, "1").error.as_deref().unwrap().contains("attempts exhausted"));
}

#[test]
fn the_same_completion_twice_is_answered_as_the_first_time_and_another_body_is_refused() {
    let leased = lease(&dispatch(&submitted(FULL_STACK), "1"), "1", "lse_1");
    let first = changed(&leased, completion(&leased, "1", true, "h1"), at(30));
    let replay = apply(&first.task, &completion(&leased, "1", true, "h1"), at(40), 0).unwrap();
    assert_eq!(replay, Outcome::Replay(first.response.clone().unwrap()));
    assert!(matches!(refused(&first.task, completion(&leased, "1", true, "h2"), at(40)), Refusal::StaleLease(_)));
    let response: serde_json::Value = serde_json::from_str(first.response.as_deref().unwrap()).unwrap();
    assert_eq!(response["status"], "succeeded");
    assert_eq!(first.reports.len(), 1);
}

fn late_completion(task: &Task, key: &str, lease_id: &str, succeeded: bool) -> Command {
    Command::Complete(Completion {
        step_id: id_of(task, key),
        lease_id: lease_id.into(),
        caller: Caller::Admin,
        succeeded,
        error: (!succeeded).then(|| "broke late".to_string()),
        hash: format!("late-{succeeded}"),
        report: Some(ReportRef::Inline("{}".into())),
        selection: None,
        items: None,
    })
}

#[test]
fn a_completion_after_its_lease_expired_is_accepted_when_nobody_else_has_the_step() {
    let leased = lease(&dispatch(&submitted(FULL_STACK), "1"), "1", "lse_1");
    // Expired, not yet swept.
    let done = changed(&leased, completion(&leased, "1", true, "h"), at(5_000));
    assert_eq!(step(&done.task, "1").status, StepStatus::Succeeded);
    // Swept: the attempt was ended and a retry waits out its backoff; the answer still counts.
    let swept = changed(&leased, Command::Sweep { redispatch_after_ms: 60_000 }, at(1_030)).task;
    let late = changed(&swept, late_completion(&swept, "1", "lse_1", true), at(1_500));
    let step_1 = step(&late.task, "1");
    assert_eq!(step_1.status, StepStatus::Succeeded);
    assert_eq!(step_1.attempts[0].status, AttemptStatus::Succeeded);
    assert!(late.response.as_deref().unwrap().contains(r#""late":true"#));
    assert!(late.events.iter().any(|e| e.kind == "step.late_answer"));
    assert_eq!(step(&late.task, "2a").status, StepStatus::Queued);
    // The retry's message, when it comes, finds nothing to do.
    let message =
        Command::Dispatch { step_id: id_of(&swept, "1"), attempt: 2, how: Dispatch::Leasable { agent: hb(1_000) } };
    assert!(matches!(apply(&late.task, &message, at(9_000), 0), Ok(Outcome::Unchanged(_))));
}

#[test]
fn a_completion_after_the_step_was_given_to_a_newer_attempt_is_refused_with_the_reason() {
    let leased = lease(&dispatch(&submitted(FULL_STACK), "1"), "1", "lse_1");
    let swept = changed(&leased, Command::Sweep { redispatch_after_ms: 60_000 }, at(1_030)).task;
    let again = lease(&dispatch(&swept, "1"), "1", "lse_2");
    assert_eq!(
        refused(&again, late_completion(&again, "1", "lse_1", true), at(1_500)),
        Refusal::StaleLease("this lease expired and the step was given to a newer attempt")
    );
}

#[test]
fn a_late_failure_replaces_the_expiry_on_its_attempt_and_keeps_the_retry() {
    let leased = lease(&dispatch(&submitted(FULL_STACK), "1"), "1", "lse_1");
    let swept = changed(&leased, Command::Sweep { redispatch_after_ms: 60_000 }, at(1_030)).task;
    let late = changed(&swept, late_completion(&swept, "1", "lse_1", false), at(1_500));
    let step_1 = step(&late.task, "1");
    assert_eq!((step_1.status, step_1.attempt), (StepStatus::Failed, 1));
    assert_eq!(step_1.attempts[0].status, AttemptStatus::Failed);
    assert_eq!(step_1.attempts[0].error.as_deref(), Some("broke late"));
    assert!(late.sends.is_empty(), "the retry was already on its way");
}

#[test]
fn a_late_success_revives_a_step_that_died_of_its_expiry_and_resumes_the_task() {
    let mut task = submitted(FULL_STACK);
    task.steps[0].attempts_max = 1;
    let leased = lease(&dispatch(&task, "1"), "1", "lse_1");
    let dead = changed(&leased, Command::Sweep { redispatch_after_ms: 60_000 }, at(1_030)).task;
    assert_eq!((step(&dead, "1").status, dead.status), (StepStatus::Dead, TaskStatus::Failed));
    let late = changed(&dead, late_completion(&dead, "1", "lse_1", true), at(1_500));
    assert_eq!((step(&late.task, "1").status, late.task.status), (StepStatus::Succeeded, TaskStatus::Running));
    assert!(late.events.iter().any(|e| e.kind == "task.resumed"));
}

#[test]
fn a_late_success_of_the_analysis_step_keeps_its_selection() {
    let sveltekit = DEFAULT_AGENTS[2].name;
    let mut task = submitted(BACKEND);
    task.steps[0].attempts_max = 1;
    let leased = lease(&dispatch(&task, "1"), "1", "lse_1");
    let dead = changed(&leased, Command::Sweep { redispatch_after_ms: 60_000 }, at(1_030)).task;
    let Command::Complete(mut completion) = late_completion(&dead, "1", "lse_1", true) else { unreachable!() };
    completion.selection =
        Some(ReportedSelection { step: "1".into(), agents: vec![sveltekit.into()], task_type: None, reason: None });
    let late = changed(&dead, Command::Complete(completion), at(1_500));
    assert_eq!(late.task.selection.as_ref().map(|s| s.agents.clone()), Some(vec![sveltekit.to_string()]));
    assert_eq!(step(&late.task, "2a").status, StepStatus::Skipped);
    assert_eq!(step(&late.task, "2b").status, StepStatus::Queued);
}

#[test]
fn backoff_doubles_is_capped_and_jittered_but_never_zero() {
    for attempt in 1..=20 {
        for random in [0, 1, 7, u32::MAX] {
            let full = (RETRY_BACKOFF_BASE_SECONDS << (attempt - 1).min(16)).min(RETRY_BACKOFF_CAP_SECONDS);
            let delay = backoff_seconds(attempt, random);
            assert!(delay >= (full / 2).max(1) && delay <= full, "{attempt} {random} {delay}");
        }
    }
    assert_eq!(backoff_seconds(1, 0), 1);
    assert_eq!(backoff_seconds(30, 0), RETRY_BACKOFF_CAP_SECONDS / 2);
}

#[test]
fn the_sweep_expires_a_lease_whose_heartbeats_stopped() {
    let leased = lease(&dispatch(&submitted(FULL_STACK), "1"), "1", "lse_1");
    assert!(matches!(
        apply(&leased, &Command::Sweep { redispatch_after_ms: 60_000 }, at(500), 0),
        Ok(Outcome::Unchanged(_))
    ));
    let swept = changed(&leased, Command::Sweep { redispatch_after_ms: 60_000 }, at(1_020));
    let step = step(&swept.task, "1");
    assert_eq!(step.status, StepStatus::Failed);
    assert_eq!(step.attempts[0].status, AttemptStatus::Expired);
    assert_eq!(swept.sends[0].attempt, 2);
    assert!(swept.events.iter().any(|e| e.kind == "step.lease_expired"));
}

#[test]
fn the_sweep_resends_an_overdue_message_for_the_same_attempt_but_not_a_recent_one() {
    let task = submitted(FULL_STACK);
    let sweep = Command::Sweep { redispatch_after_ms: 60_000 };
    assert!(matches!(apply(&task, &sweep, at(59_999), 0), Ok(Outcome::Unchanged(_))));
    let swept = changed(&task, sweep, at(60_000));
    assert_eq!(swept.sends, vec![Send { step_id: id_of(&task, "1"), attempt: 1, delay_seconds: 0 }]);
    assert_eq!(step(&swept.task, "1").queued_at, Some(at(60_000)));
}

#[test]
fn cancelling_stops_every_moving_step_and_leaves_finished_ones_alone() {
    let after_one = run(&submitted(FULL_STACK), "1").task;
    let leased = lease(&dispatch(&after_one, "2a"), "2a", "lse_2a");
    let cancelled = changed(&leased, Command::Cancel, at(50)).task;
    assert_eq!(cancelled.status, TaskStatus::Cancelled);
    assert_eq!(step(&cancelled, "1").status, StepStatus::Succeeded);
    assert!(cancelled.steps[1..].iter().all(|s| s.status == StepStatus::Cancelled));
    assert_eq!(step(&cancelled, "2a").attempts[0].status, AttemptStatus::Cancelled);
    assert!(matches!(apply(&cancelled, &Command::Cancel, at(60), 0), Ok(Outcome::Unchanged(_))));
}

#[test]
fn a_succeeded_task_cannot_be_cancelled() {
    let mut task = submitted(FULL_STACK);
    task.status = TaskStatus::Succeeded;
    assert!(matches!(refused(&task, Command::Cancel, at(1)), Refusal::WrongStatus(_)));
}

#[test]
fn a_dead_step_retried_by_hand_gets_a_fresh_budget_and_the_task_resumes() {
    let task = submitted(FULL_STACK);
    let retry = Command::Retry { step_id: id_of(&task, "1") };
    assert!(matches!(refused(&task, retry.clone(), at(1)), Refusal::WrongStatus(_)));
    let mut failing = task.clone();
    failing.steps[0].attempts_max = 1;
    let leased = lease(&dispatch(&failing, "1"), "1", "lse_1");
    let dead = changed(&leased, completion(&leased, "1", false, "h"), at(30)).task;
    assert_eq!(dead.status, TaskStatus::Failed);
    let retried = changed(&dead, retry, at(10));
    let step = step(&retried.task, "1");
    assert_eq!((step.status, step.attempts_max), (StepStatus::Queued, step.attempt + step.attempts_budget));
    assert_eq!(retried.task.status, TaskStatus::Running);
    assert_eq!(retried.sends[0].attempt, 2);
}

#[test]
fn a_dead_lettered_message_spends_no_attempt_and_the_sweep_sends_it_again() {
    let task = submitted(FULL_STACK);
    let noted =
        changed(&task, Command::DeadLetter { step_id: id_of(&task, "1"), attempt: 1, reason: "x".into() }, at(5));
    let step_1 = step(&noted.task, "1");
    assert_eq!((step_1.status, step_1.attempt, noted.task.status), (StepStatus::Queued, 0, TaskStatus::Running));
    assert_eq!(noted.events[0].kind, "step.message_dead_lettered");
    let swept = changed(&noted.task, Command::Sweep { redispatch_after_ms: 60_000 }, at(60_000));
    assert_eq!(swept.sends, vec![Send { step_id: id_of(&task, "1"), attempt: 1, delay_seconds: 0 }]);
}

#[test]
fn a_message_back_for_an_unanswered_webhook_delivery_delivers_again_under_the_same_lease() {
    let task = submitted(FULL_STACK);
    let deliver = |lease_id: &str| Command::Dispatch {
        step_id: id_of(&task, "1"),
        attempt: 1,
        how: Dispatch::Deliver { lease_id: lease_id.into(), agent: hb(20_000) },
    };
    let delivered = changed(&task, deliver("lse_first"), at(10)).task;
    let again = changed(&delivered, deliver("lse_second"), at(5_000));
    let step_1 = step(&again.task, "1");
    assert_eq!((step_1.attempt, step_1.lease_id.as_deref()), (1, Some("lse_first")));
    assert_eq!(step_1.lease_expires_at, Some(at(25_000)));
    assert_eq!(again.events[0].kind, "step.redelivered");
    // Once answered, the same message is a duplicate.
    let answered = changed(&delivered, completion(&delivered, "1", true, "h"), at(6_000)).task;
    assert!(matches!(apply(&answered, &deliver("lse_third"), at(7_000), 0), Ok(Outcome::Unchanged(_))));
}

#[test]
fn a_dead_letter_for_an_older_attempt_changes_nothing() {
    let ready = dispatch(&submitted(FULL_STACK), "1");
    let command = Command::DeadLetter { step_id: id_of(&ready, "1"), attempt: 1, reason: "x".into() };
    assert!(matches!(apply(&ready, &command, at(20), 0), Ok(Outcome::Unchanged(_))), "already dispatched");
}

#[test]
fn unknown_steps_are_refused_and_refusals_change_nothing() {
    let task = submitted(FULL_STACK);
    let before = task.clone();
    assert_eq!(refused(&task, Command::Retry { step_id: "stp_nope".into() }, at(1)), Refusal::UnknownStep);
    assert_eq!(task, before);
}

#[test]
fn the_invariants_reject_corrupted_states() {
    let leased = lease(&dispatch(&submitted(FULL_STACK), "1"), "1", "lse_1");
    let mut early = leased.clone();
    early.steps[1].attempts = early.steps[0].attempts.clone();
    early.steps[1].attempt = 1;
    assert!(check_invariants(&early).unwrap_err().contains("before its dependencies"));
    let mut over = leased.clone();
    over.steps[0].attempts_max = 0;
    assert!(check_invariants(&over).is_err());
    let mut unleased = leased.clone();
    unleased.steps[0].lease_id = None;
    assert!(check_invariants(&unleased).is_err());
    let mut done = leased;
    done.status = TaskStatus::Succeeded;
    assert!(check_invariants(&done).is_err());
}

/// An agent's timeouts with the given heartbeat: a day to be leased, an hour per attempt.
fn hb(heartbeat_ms: i64) -> AgentTimeouts {
    AgentTimeouts { schedule_ms: 86_400_000, attempt_ms: 3_600_000, heartbeat_ms }
}

fn sweep_at(task: &Task, ms: i64) -> Transition {
    changed(task, Command::Sweep { redispatch_after_ms: 600_000 }, at(ms))
}

#[test]
fn an_attempt_that_runs_past_its_timeout_is_ended_by_the_sweep_and_retried() {
    let mut task = submitted(FULL_STACK);
    task.steps[0].timeouts.attempt_ms = Some(2_000);
    let leased = lease(&dispatch(&task, "1"), "1", "lse_1");
    assert_eq!(step(&leased, "1").attempt_deadline_at, Some(at(2_020)), "the step's own timeout wins");
    // Heartbeats keep the lease alive, not the attempt.
    let mut beating = leased.clone();
    beating.steps[0].lease_expires_at = Some(at(10_000));
    let swept = sweep_at(&beating, 2_020);
    let step_1 = step(&swept.task, "1");
    assert_eq!((step_1.status, step_1.attempts[0].status), (StepStatus::Failed, AttemptStatus::TimedOut));
    let event = swept.events.iter().find(|e| e.kind == "step.timed_out").unwrap();
    assert_eq!(event.data["timeout"], "attempt");
    assert_eq!(swept.sends[0].attempt, 2);
    assert_eq!(
        refused(&swept.task, late_completion(&swept.task, "1", "lse_1", true), at(2_100)),
        Refusal::StaleLease("the attempt ran past its timeout and was ended")
    );
}

#[test]
fn a_step_nobody_leases_within_its_schedule_timeout_dies_or_is_skipped_if_optional() {
    let agent = AgentTimeouts { schedule_ms: 5_000, ..hb(1_000) };
    let ready = |optional: bool| {
        let mut task = submitted(FULL_STACK);
        task.steps[0].optional = optional;
        let how = Dispatch::Leasable { agent };
        changed(&task, Command::Dispatch { step_id: id_of(&task, "1"), attempt: 1, how }, at(10)).task
    };
    let waiting = ready(false);
    assert_eq!(step(&waiting, "1").schedule_deadline_at, Some(at(5_010)));
    assert!(matches!(
        apply(&waiting, &Command::Sweep { redispatch_after_ms: 600_000 }, at(5_000), 0),
        Ok(Outcome::Unchanged(_))
    ));
    let dead = sweep_at(&waiting, 5_010);
    assert_eq!((step(&dead.task, "1").status, dead.task.status), (StepStatus::Dead, TaskStatus::Failed));
    assert!(step(&dead.task, "1").error.as_deref().unwrap().contains("schedule timeout"));
    assert_eq!(dead.events[0].kind, "step.timed_out");
    assert_eq!(dead.events[0].data["timeout"], "schedule");

    let skipped = sweep_at(&ready(true), 5_010);
    assert_eq!(step(&skipped.task, "1").status, StepStatus::Skipped);
    assert_eq!(skipped.task.status, TaskStatus::Running);
    assert_eq!(step(&skipped.task, "2a").status, StepStatus::Queued, "its dependents go on");
}

#[test]
fn a_message_sent_again_does_not_restart_the_schedule_clock_and_a_lease_stops_it() {
    let agent = AgentTimeouts { schedule_ms: 5_000, ..hb(1_000) };
    let task = submitted(FULL_STACK);
    let how = Dispatch::Leasable { agent };
    let ready =
        changed(&task, Command::Dispatch { step_id: id_of(&task, "1"), attempt: 1, how: how.clone() }, at(10)).task;
    let mut lost = ready.clone();
    lost.steps[0].ready_at = None;
    let again = changed(&lost, Command::Dispatch { step_id: id_of(&task, "1"), attempt: 1, how }, at(3_000)).task;
    assert_eq!(step(&again, "1").schedule_deadline_at, Some(at(5_010)));
    let leased = lease(&ready, "1", "lse_1");
    assert_eq!(step(&leased, "1").schedule_deadline_at, None);
}

#[test]
fn a_steps_own_heartbeat_sets_how_long_its_lease_lasts() {
    let mut task = submitted(FULL_STACK);
    task.steps[0].timeouts.heartbeat_ms = Some(30_000);
    let leased = lease(&dispatch(&task, "1"), "1", "lse_1");
    assert_eq!(step(&leased, "1").lease_expires_at, Some(at(30_020)));
    let beat = Command::Heartbeat {
        step_id: id_of(&task, "1"),
        caller: Caller::Admin,
        lease_id: "lse_1".into(),
        agent: hb(1_000),
    };
    let Ok(Outcome::Extended(extension)) = apply(&leased, &beat, at(100), 0) else { panic!() };
    assert_eq!(extension.expires_at, at(30_100));
}

#[test]
fn a_webhook_step_that_waited_for_room_is_delivered_from_leasable() {
    let ready = dispatch(&submitted(FULL_STACK), "1");
    let how = Dispatch::Deliver { lease_id: "lse_w".into(), agent: hb(1_000) };
    let delivered =
        changed(&ready, Command::Dispatch { step_id: id_of(&ready, "1"), attempt: 1, how: how.clone() }, at(50));
    let step_1 = step(&delivered.task, "1");
    assert_eq!((step_1.status, step_1.attempt, step_1.lease_id.as_deref()), (StepStatus::Leased, 1, Some("lse_w")));
    assert_eq!(step_1.schedule_deadline_at, None);
    // For any other attempt it is a stale message.
    let stale = Command::Dispatch { step_id: id_of(&ready, "1"), attempt: 2, how };
    assert!(matches!(apply(&ready, &stale, at(50), 0), Ok(Outcome::Unchanged(_))));
}

/// A flow whose step 2 runs only when step 1's report has `database_changes`, and whose step 3
/// is skipped when step 2 was skipped.
fn gated_definition() -> Definition {
    let source = r#"# Gated
<process_flow>
<step number="1" subagent="context-fetcher" name="look">Look.</step>
<step number="2" subagent="cloudflare-specialist" name="schema">
Write the schema.
<decision_tree>
  IF step 1 reported database_changes:
    CREATE the migration
  ELSE:
    SKIP this step
</decision_tree>
</step>
<step number="3" subagent="test-runner" name="check" condition="step 2 succeeded">Check it.</step>
<step number="4" subagent="project-manager" name="close">Close.</step>
</process_flow>
"#;
    workflow::from_instructions("gated".into(), &instructions::parse(source).file)
}

fn completion_reporting(task: &Task, key: &str, report: &str) -> Command {
    let Command::Complete(mut completion) = completion(task, key, true, "reported") else { unreachable!() };
    completion.report = Some(ReportRef::Inline(report.into()));
    Command::Complete(completion)
}

#[test]
fn conditions_on_earlier_reports_skip_or_keep_a_step_when_it_is_ready_with_their_evidence() {
    let task = planned(&gated_definition(), "Add a table").unwrap().task;
    assert!(step(&task, "2").gate.as_ref().is_some_and(|g| g.conditions.len() == 1));
    let leased = lease(&dispatch(&task, "1"), "1", "lse_1");
    let without = changed(
        &leased,
        completion_reporting(&leased, "1", r#"{"notes": "no schema", "database_changes": []}"#),
        at(30),
    );
    let skipped = step(&without.task, "2");
    assert_eq!(skipped.status, StepStatus::Skipped);
    assert_eq!(
        skipped.skip_reason.as_deref(),
        Some(
            "the condition \"step 1 reported database_changes\" does not hold: step 1's report has no database_changes"
        )
    );
    let three = step(&without.task, "3");
    assert_eq!(three.status, StepStatus::Skipped, "step 3 runs only if step 2 succeeded");
    assert_eq!(
        three.skip_reason.as_deref(),
        Some("the condition \"step 2 succeeded\" does not hold: step 2 is skipped")
    );
    assert_eq!(step(&without.task, "4").status, StepStatus::Queued);
    let evaluated: Vec<(&str, bool)> = without
        .events
        .iter()
        .filter(|e| e.kind == "step.condition")
        .map(|e| (e.data["key"].as_str().unwrap_or(""), e.data["holds"] == true))
        .collect();
    assert_eq!(evaluated, [("2", false), ("3", false)]);

    let with =
        changed(&leased, completion_reporting(&leased, "1", r#"{"database_changes": ["a comments table"]}"#), at(30));
    assert_eq!(step(&with.task, "2").status, StepStatus::Queued);
    assert_eq!(step(&with.task, "1").report_fields.as_deref(), Some(&["database_changes".to_string()][..]));
}

/// A file of `name` with the given steps, parsed as if posted.
fn file_of(name: &str, steps: &str) -> Definition {
    let parsed = instructions::parse(&format!("# {name}\n\n<process_flow>\n{steps}\n</process_flow>\n"));
    assert!(!parsed.has_errors(), "{:?}", parsed.problems);
    workflow::from_instructions(name.into(), &parsed.file)
}

/// A parent file whose step 2 runs `execute-child`, posted at version 7: a main-agent step
/// and a subagent step whose attempts run out at the first failure.
fn parent_and_child() -> (Definition, Files) {
    let parent = file_of(
        "parent",
        r#"<step number="1" subagent="context-fetcher" name="gather">Gather.</step>
<step number="2" name="run_child">
FOR each parent_task from step 1:
  EXECUTE instructions from execute-child.md
END FOR
LOAD @.agent-os/instructions/core/execute-child.md
</step>
<step number="3" subagent="project-manager" name="wrap_up">Wrap up.</step>"#,
    );
    let child = file_of(
        "execute-child",
        r#"<step number="1" name="understand">Understand the task.</step>
<step number="2" subagent="test-runner" name="verify" max_attempts="1">Run the tests.</step>"#,
    );
    let files = Files::from([("execute-child".to_string(), PostedFile { version: 7, definition: child })]);
    (parent, files)
}

fn child_run_task() -> plan::Plan {
    let (parent, files) = parent_and_child();
    planned_in(&parent, &files, "Add a comments API", &workflow::main_agent_of(&parent, None, None)).unwrap()
}

#[test]
fn a_step_that_executes_a_file_is_planned_with_the_files_steps_under_its_key() {
    let plan = child_run_task();
    let shape: Vec<_> = plan
        .task
        .steps
        .iter()
        .map(|s| (s.key.as_str(), s.runner, s.agent.as_deref(), s.parent.as_deref(), s.depends_on.join(",")))
        .collect();
    assert_eq!(
        shape,
        vec![
            ("1", Runner::Agent, Some("context-fetcher"), None, String::new()),
            ("2", Runner::ChildRun, None, None, "1".into()),
            ("2.1", Runner::Agent, Some("main-agent"), Some("2"), String::new()),
            ("2.2", Runner::Agent, Some("test-runner"), Some("2"), "2.1".into()),
            ("3", Runner::Agent, Some("project-manager"), None, "2".into()),
        ]
    );
    let run = step(&plan.task, "2").child_run.clone().unwrap();
    assert_eq!((run.workflow.as_str(), run.version), ("execute-child", 7));
    assert_eq!(run.each.as_deref(), Some("parent_task from step 1"));
    let child = &plan.instructions[3];
    assert_eq!(child["workflow"]["name"], "execute-child");
    assert_eq!(child["workflow"]["version"], 7);
    assert_eq!(child["workflow"]["step"]["key"], "2.2");
    assert_eq!(child["workflow"]["step"]["position"], 2);
    assert_eq!(child["child_run"]["step"]["key"], "2");
    assert_eq!(child["child_run"]["each"], "parent_task from step 1");
    assert_eq!(plan.events[0].data["child_runs"], json!([{"step": "2", "workflow": "execute-child", "version": 7}]));
}

#[test]
fn a_child_run_starts_with_its_step_and_the_step_succeeds_when_the_child_run_is_done() {
    let mut task = run(&child_run_task().task, "1").task;
    assert_eq!(step(&task, "2").status, StepStatus::Running);
    assert_eq!(step(&task, "2.1").status, StepStatus::Queued);
    assert_eq!(step(&task, "3").status, StepStatus::Pending);
    task = run(&task, "2.1").task;
    assert_eq!(step(&task, "2").status, StepStatus::Running, "one step of the child run is left");
    let transition = run(&task, "2.2");
    task = transition.task;
    assert_eq!(step(&task, "2").status, StepStatus::Succeeded);
    assert_eq!(step(&task, "3").status, StepStatus::Queued);
    let ended: Vec<_> = transition.events.iter().map(|e| (e.kind, e.data["key"].as_str().unwrap_or(""))).collect();
    assert!(ended.contains(&("step.succeeded", "2")), "{ended:?}");
    assert_eq!(transition.events[0].data["parent"], "2");
    task = run(&task, "3").task;
    assert_eq!(task.status, TaskStatus::Succeeded);
}

#[test]
fn a_dead_step_of_a_child_run_fails_its_parent_step_and_retrying_the_parent_step_retries_it() {
    let task = run(&run(&child_run_task().task, "1").task, "2.1").task;
    let leased = lease(&dispatch(&task, "2.2"), "2.2", "lse_x");
    let task = changed(&leased, completion(&leased, "2.2", false, "h"), at(30)).task;
    assert_eq!(step(&task, "2.2").status, StepStatus::Dead);
    assert_eq!(step(&task, "2").status, StepStatus::Dead);
    assert!(step(&task, "2").error.as_deref().unwrap().contains("step 2.2 of its child run is dead"));
    assert_eq!(task.status, TaskStatus::Failed);
    let retried = changed(&task, Command::Retry { step_id: id_of(&task, "2") }, at(40)).task;
    assert_eq!(step(&retried, "2.2").status, StepStatus::Queued);
    assert_eq!(step(&retried, "2").status, StepStatus::Running);
    assert_eq!(retried.status, TaskStatus::Running);
    let done = run(&retried, "2.2").task;
    assert_eq!(step(&done, "2").status, StepStatus::Succeeded);
}

#[test]
fn a_skipped_parent_step_skips_its_child_run_and_conditions_in_a_child_run_read_its_own_steps() {
    let (mut parent, mut files) = parent_and_child();
    parent.steps[1].conditions = file_of(
        "gated",
        r#"<step number="1" name="a">A.</step>
<step number="2" name="b" condition="step 1 reported skip_child">B.</step>"#,
    )
    .steps[1]
        .conditions
        .clone();
    let gated = file_of(
        "execute-child",
        r#"<step number="1" name="understand">Understand.</step>
<step number="2" subagent="test-runner" name="verify" condition="step 1 reported tests">Verify.</step>"#,
    );
    files.get_mut("execute-child").unwrap().definition = gated;
    let plan =
        planned_in(&parent, &files, "Add a comments API", &workflow::main_agent_of(&parent, None, None)).unwrap();
    let check = &step(&plan.task, "2.2").gate.as_ref().unwrap().conditions[0];
    assert_eq!(check.check.as_ref().unwrap().step, "2.1", "the condition names the child run's own step 1");
    // Step 1 reports nothing, so step 2 (condition="step 1 reported skip_child") is skipped.
    let task = run(&plan.task, "1").task;
    for key in ["2", "2.1", "2.2"] {
        assert_eq!(step(&task, key).status, StepStatus::Skipped, "{key}");
    }
    assert!(step(&task, "2.1")
        .skip_reason
        .as_deref()
        .unwrap()
        .contains("step 2 runs this step's file and was skipped"));
    assert_eq!(step(&task, "3").status, StepStatus::Queued);
}

#[test]
fn child_runs_nest_and_a_missing_or_cyclic_file_refuses_the_task() {
    let (parent, mut files) = parent_and_child();
    let middle = file_of(
        "execute-child",
        r#"<step number="1" name="inner">
EXECUTE: @.agent-os/instructions/core/leaf.md
</step>"#,
    );
    files.get_mut("execute-child").unwrap().definition = middle;
    let main = workflow::main_agent_of(&parent, None, None);
    let refused = planned_in(&parent, &files, "x", &main).unwrap_err();
    assert!(refused[0].message.contains("execute-child EXECUTEs leaf, which is not posted"), "{refused:?}");
    files.insert(
        "leaf".into(),
        PostedFile {
            version: 2,
            definition: file_of("leaf", r#"<step number="1" subagent="test-runner" name="leaf_work">Work.</step>"#),
        },
    );
    let plan = planned_in(&parent, &files, "x", &main).unwrap();
    let keys: Vec<_> = plan.task.steps.iter().map(|s| s.key.as_str()).collect();
    assert_eq!(keys, vec!["1", "2", "2.1", "2.1.1", "3"]);
    let mut task = run(&plan.task, "1").task;
    assert_eq!(step(&task, "2.1").status, StepStatus::Running);
    task = run(&task, "2.1.1").task;
    assert_eq!((step(&task, "2.1").status, step(&task, "2").status), (StepStatus::Succeeded, StepStatus::Succeeded));
    files.insert(
        "leaf".into(),
        PostedFile {
            version: 3,
            definition: file_of(
                "leaf",
                r#"<step number="1" name="back">
EXECUTE: @parent.md
</step>"#,
            ),
        },
    );
    files.insert("parent".into(), PostedFile { version: 1, definition: parent.clone() });
    let refused = planned_in(&parent, &files, "x", &main).unwrap_err();
    assert!(refused[0].message.contains("cycle: parent → execute-child → leaf → parent"), "{refused:?}");
}

#[test]
fn only_the_analysis_step_is_told_it_may_choose_the_specialists_and_among_whom() {
    let plan = planned(&default_definition(), FULL_STACK).unwrap();
    let contract = &plan.instructions[0]["report_contract"];
    assert_eq!(contract["selection"]["agents"], json!(["cloudflare-specialist", "sveltekit-specialist"]));
    assert_eq!(contract["selection"]["task_types"], json!(["frontend", "backend", "full-stack", "infrastructure"]));
    assert!(plan.instructions[1..].iter().all(|i| i["report_contract"].get("selection").is_none()));
}

// ---------------------------------------------------------------------------------------------
// FOR each loops.

/// Completes step `key` successfully with `report.items` set to `items`.
fn completion_with_items(task: &Task, key: &str, items: Value) -> Command {
    let report = json!({"notes": "listed", "items": items}).to_string();
    let Command::Complete(mut completion) = completion_reporting(task, key, &report) else { unreachable!() };
    completion.items = Some(items);
    Command::Complete(completion)
}

/// The child-run task with step 1 leased, about to report its items.
fn loop_source_leased() -> Task {
    let task = child_run_task().task;
    lease(&dispatch(&task, "1"), "1", "lse_1")
}

#[test]
fn a_loop_reads_its_items_from_the_step_it_names_and_that_step_is_told_to_list_them() {
    let plan = child_run_task();
    let run = step(&plan.task, "2").child_run.clone().unwrap();
    assert_eq!(run.items_from.as_deref(), Some("1"), "FOR each parent_task from step 1");
    assert_eq!(
        plan.instructions[0]["report_contract"]["items"],
        json!({"for_step": "2", "each": "parent_task from step 1", "workflow": "execute-child"})
    );
    assert!(plan.instructions[2]["report_contract"].get("items").is_none(), "only step 1 lists them");
}

#[test]
fn a_loop_runs_its_child_run_once_per_reported_item_one_item_after_the_other() {
    let leased = loop_source_leased();
    let items = json!(["1. comments table", {"number": 2, "title": "comments API"}, "3. moderation"]);
    let transition = changed(&leased, completion_with_items(&leased, "1", items.clone()), at(30));
    let task = transition.task.clone();
    let shape: Vec<_> =
        task.steps.iter().map(|s| (s.key.as_str(), s.parent.as_deref(), s.depends_on.join(","), s.status)).collect();
    assert_eq!(
        shape,
        vec![
            ("1", None, String::new(), StepStatus::Succeeded),
            ("2", None, "1".into(), StepStatus::Running),
            ("2.1", Some("2"), String::new(), StepStatus::Queued),
            ("2.2", Some("2"), "2.1".into(), StepStatus::Pending),
            ("3", None, "2".into(), StepStatus::Pending),
            ("2#2.1", Some("2"), "2.1,2.2".into(), StepStatus::Pending),
            ("2#2.2", Some("2"), "2#2.1,2.1,2.2".into(), StepStatus::Pending),
            ("2#3.1", Some("2"), "2#2.1,2#2.2".into(), StepStatus::Pending),
            ("2#3.2", Some("2"), "2#3.1,2#2.1,2#2.2".into(), StepStatus::Pending),
        ]
    );
    assert_eq!(step(&task, "2").child_run.as_ref().unwrap().items, Some(3));
    assert_eq!(step(&task, "2#3.2").agent.as_deref(), Some("test-runner"));
    assert_ne!(id_of(&task, "2#3.2"), id_of(&task, "2.2"));
    let parts: Vec<_> = transition
        .loop_items
        .iter()
        .map(|l| {
            let key = &task.steps.iter().find(|s| s.id == l.step_id).unwrap().key;
            let template = &task.steps.iter().find(|s| s.id == l.template_id).unwrap().key;
            (key.as_str(), template.as_str(), l.part["number"].as_u64().unwrap(), l.part["item"].clone())
        })
        .collect();
    assert_eq!(
        parts,
        vec![
            ("2.1", "2.1", 1, items[0].clone()),
            ("2.2", "2.2", 1, items[0].clone()),
            ("2#2.1", "2.1", 2, items[1].clone()),
            ("2#2.2", "2.2", 2, items[1].clone()),
            ("2#3.1", "2.1", 3, items[2].clone()),
            ("2#3.2", "2.2", 3, items[2].clone()),
        ]
    );
    assert!(transition.loop_items.iter().all(|l| l.part["of"] == 3 && l.part["step"] == "2"));
    let told = transition.events.iter().find(|e| e.kind == "step.loop_items").expect("an event");
    assert_eq!((told.data["from"].as_str(), told.data["items"].as_u64()), (Some("1"), Some(3)));

    let mut task = run(&run(&task, "2.1").task, "2.2").task;
    assert_eq!(step(&task, "2#2.1").status, StepStatus::Queued, "item 2 starts once item 1 is done");
    assert_eq!(step(&task, "2").status, StepStatus::Running);
    for key in ["2#2.1", "2#2.2", "2#3.1"] {
        task = run(&task, key).task;
        assert_eq!(step(&task, "3").status, StepStatus::Pending, "after {key}");
    }
    task = run(&task, "2#3.2").task;
    assert_eq!(step(&task, "2").status, StepStatus::Succeeded);
    assert_eq!(step(&task, "3").status, StepStatus::Queued);
}

#[test]
fn a_loop_with_no_items_is_skipped_and_one_whose_step_listed_none_runs_once() {
    let leased = loop_source_leased();
    let empty = changed(&leased, completion_with_items(&leased, "1", json!([])), at(30)).task;
    let skipped = step(&empty, "2");
    assert_eq!(skipped.status, StepStatus::Skipped);
    assert_eq!(skipped.skip_reason.as_deref(), Some("step 1 reported no items for this step's loop"));
    assert_eq!(step(&empty, "2.1").status, StepStatus::Skipped);
    assert_eq!(step(&empty, "3").status, StepStatus::Queued);

    let unlisted = changed(&leased, completion(&leased, "1", true, "h"), at(30));
    assert!(unlisted.loop_items.is_empty());
    assert_eq!(unlisted.task.steps.len(), 5, "no copies");
    assert_eq!(step(&unlisted.task, "2.1").status, StepStatus::Queued);
    assert_eq!(step(&unlisted.task, "2").child_run.as_ref().unwrap().items, None);
}

#[test]
fn loop_items_of_the_wrong_shape_or_too_many_are_refused_and_change_nothing() {
    use crate::core::base::limits::{LOOP_ITEMS_MAX, LOOP_ITEM_BYTES_MAX};
    let leased = loop_source_leased();
    let too_many: Vec<Value> = (0..=LOOP_ITEMS_MAX).map(|i| json!(format!("task {i}"))).collect();
    let cases = [
        (json!("1, 2 and 3"), "must be a list"),
        (json!({"1": "a"}), "must be a list"),
        (Value::Array(too_many), "at most 16 items"),
        (json!(["small", "x".repeat(LOOP_ITEM_BYTES_MAX)]), "item 1 is larger than 2048 bytes"),
    ];
    for (items, expected) in cases {
        let Refusal::Invalid(detail) = refused(&leased, completion_with_items(&leased, "1", items.clone()), at(30))
        else {
            panic!("{items} was not refused as invalid");
        };
        assert_eq!(detail.field.as_deref(), Some("report.items"));
        assert!(detail.message.contains(expected), "{items}: {}", detail.message);
    }
    // A step no loop reads from may report `items` of any shape.
    let task = run(&child_run_task().task, "1").task;
    let leased = lease(&dispatch(&task, "2.1"), "2.1", "lse_2.1");
    changed(&leased, completion_with_items(&leased, "2.1", json!("anything")), at(30));
}

/// A parent whose loop (step 3) reads the items step 1 lists, with step 2 between them.
fn loop_after_another_step() -> (Definition, Files) {
    let (_, files) = parent_and_child();
    let parent = file_of(
        "parent",
        r#"<step number="1" subagent="context-fetcher" name="assign">Assign.</step>
<step number="2" subagent="project-manager" name="branch">Branch.</step>
<step number="3" name="run_child">
FOR each parent_task assigned in Step 1:
  EXECUTE instructions from execute-child.md
END FOR
LOAD @.agent-os/instructions/core/execute-child.md
</step>
<step number="4" subagent="project-manager" name="wrap_up">Wrap up.</step>"#,
    );
    (parent, files)
}

#[test]
fn a_loop_whose_step_listed_no_items_is_skipped_only_once_the_steps_before_it_are_done() {
    let (parent, files) = loop_after_another_step();
    let plan =
        planned_in(&parent, &files, "Add a comments API", &workflow::main_agent_of(&parent, None, None)).unwrap();
    assert_eq!(step(&plan.task, "3").child_run.as_ref().unwrap().items_from.as_deref(), Some("1"));
    let leased = lease(&dispatch(&plan.task, "1"), "1", "lse_1");
    let task = changed(&leased, completion_with_items(&leased, "1", json!([])), at(30)).task;
    assert_eq!(step(&task, "2").status, StepStatus::Queued);
    assert_eq!(step(&task, "3").status, StepStatus::Pending, "step 2 is not done yet");
    assert_eq!(step(&task, "4").status, StepStatus::Pending);
    let task = run(&task, "2").task;
    assert_eq!(step(&task, "3").status, StepStatus::Skipped);
    assert_eq!(step(&task, "3.1").status, StepStatus::Skipped);
    assert_eq!(step(&task, "4").status, StepStatus::Queued);
}

#[test]
fn a_loop_reads_only_from_a_step_it_waits_for_that_an_agent_answers() {
    let child = "<step number=\"1\" name=\"understand\">Understand.</step>";
    let files = Files::from([("child".to_string(), PostedFile { version: 1, definition: file_of("child", child) })]);
    let source = |steps: &str| {
        let parent = file_of("parent", steps);
        let plan = planned_in(&parent, &files, "Add a comments API", &workflow::main_agent_of(&parent, None, None));
        let plan = plan.unwrap();
        let looping = plan.task.steps.iter().find(|s| s.child_run.is_some()).unwrap();
        looping.child_run.as_ref().unwrap().items_from.clone()
    };
    let looped = |each: &str| {
        format!("<step number=\"3\" name=\"loop\">\nFOR each {each}:\n  EXECUTE instructions from child.md\nEND FOR\nLOAD @child.md\n</step>")
    };
    let two = "<step number=\"1\" subagent=\"context-fetcher\" name=\"a\">A.</step>\n<step number=\"2\" subagent=\"project-manager\" name=\"b\">B.</step>\n";
    assert_eq!(source(&format!("{two}{}", looped("task in Step 1"))), Some("1".into()), "the step it names");
    assert_eq!(source(&format!("{two}{}", looped("task"))), Some("2".into()), "else the one it depends on");
    let after = "\n<step number=\"4\" subagent=\"project-manager\" name=\"d\">D.</step>";
    assert_eq!(source(&format!("{two}{}{after}", looped("task in Step 4"))), None, "a step that comes later");
    let grouped = "<step number=\"1\" subagent=\"context-fetcher\" name=\"a\">A.</step>\n<parallel_execution>\n<step number=\"2a\" subagent=\"project-manager\" name=\"b\">B.</step>\n<step number=\"2b\" name=\"loop\">\nFOR each task in step 2a:\n  EXECUTE instructions from child.md\nEND FOR\nLOAD @child.md\n</step>\n</parallel_execution>";
    assert_eq!(source(grouped), None, "a step of its own parallel group is not done before it starts");
}

/// A file named `name` whose step 1 (`agent`'s) lists what step 2 runs `child` for, each.
fn lister_and_loop(name: &str, agent: &str, what: &str, child: &str) -> Definition {
    file_of(
        name,
        &format!(
            "<step number=\"1\" subagent=\"{agent}\" name=\"list\">List the {what}s.</step>
<step number=\"2\" name=\"each_{what}\">
FOR each {what} in Step 1:
  EXECUTE instructions from {child}.md
END FOR
LOAD @.agent-os/instructions/core/{child}.md
</step>"
        ),
    )
}

#[test]
fn loops_nest_and_every_item_of_every_loop_gets_its_own_steps() {
    let parent = lister_and_loop("parent", "context-fetcher", "spec", "spec");
    let spec = lister_and_loop("spec", "project-manager", "task", "task");
    let task_file = file_of("task", r#"<step number="1" subagent="test-runner" name="build">Build.</step>"#);
    let files = Files::from([
        ("spec".to_string(), PostedFile { version: 1, definition: spec }),
        ("task".to_string(), PostedFile { version: 1, definition: task_file }),
    ]);
    let plan = planned_in(&parent, &files, "Two specs", &workflow::main_agent_of(&parent, None, None)).unwrap();
    let keys = |task: &Task| task.steps.iter().map(|s| s.key.clone()).collect::<Vec<_>>();
    assert_eq!(keys(&plan.task), ["1", "2", "2.1", "2.2", "2.2.1"]);
    let leased = lease(&dispatch(&plan.task, "1"), "1", "lse_1");
    let mut task = changed(&leased, completion_with_items(&leased, "1", json!(["spec A", "spec B"])), at(30)).task;
    assert_eq!(keys(&task), ["1", "2", "2.1", "2.2", "2.2.1", "2#2.1", "2#2.2", "2#2.2.1"]);
    assert_eq!(step(&task, "2#2.2").child_run.as_ref().unwrap().items_from.as_deref(), Some("2#2.1"));
    assert_eq!(step(&task, "2#2.2.1").parent.as_deref(), Some("2#2.2"));
    // Spec A lists three tasks: only its own loop grows.
    let leased = lease(&dispatch(&task, "2.1"), "2.1", "lse_a");
    let transition = changed(&leased, completion_with_items(&leased, "2.1", json!(["a1", "a2", "a3"])), at(30));
    task = transition.task;
    assert_eq!(
        keys(&task)[8..],
        ["2.2#2.1".to_string(), "2.2#3.1".to_string()],
        "spec A's tasks 2 and 3 under its own loop"
    );
    assert!(transition.loop_items.iter().all(|l| l.part["step"] == "2.2"), "{:?}", transition.loop_items);
    for key in ["2.2.1", "2.2#2.1", "2.2#3.1"] {
        task = run(&task, key).task;
    }
    assert_eq!(step(&task, "2.2").status, StepStatus::Succeeded);
    assert_eq!(step(&task, "2").status, StepStatus::Running, "spec B is still to do");
    // Spec B lists one task: its loop runs its planned copy once, for that task.
    let leased = lease(&dispatch(&task, "2#2.1"), "2#2.1", "lse_b");
    let transition = changed(&leased, completion_with_items(&leased, "2#2.1", json!(["b1"])), at(30));
    task = transition.task;
    let given: Vec<_> =
        transition.loop_items.iter().map(|l| (l.part["step"].clone(), l.part["item"].clone())).collect();
    assert_eq!(given, vec![(json!("2#2.2"), json!("b1"))]);
    task = run(&task, "2#2.2.1").task;
    assert_eq!(step(&task, "2").status, StepStatus::Succeeded);
    assert_eq!(task.status, TaskStatus::Succeeded);
}

// What an isolate keeps of the states it read and wrote (`recent`).

#[test]
fn a_kept_state_is_found_by_its_task_or_any_of_its_steps_until_it_is_too_old() {
    let mut recent = recent::RecentStates::new(1_000, 4);
    let task = dispatch(&submitted(FULL_STACK), "1");
    recent.read(&task, at(10_000));
    assert_eq!(recent.of_task(&task.id, at(10_999)), Some(task.clone()));
    assert_eq!(recent.of_step(&id_of(&task, "1"), at(10_500)), Some(task.clone()));
    assert_eq!(recent.of_task(&task.id, at(11_000)), None);
    assert_eq!(recent.of_step("stp_unknown", at(10_000)), None);
}

#[test]
fn an_older_read_does_not_replace_the_state_a_transition_wrote_since() {
    let mut recent = recent::RecentStates::new(60_000, 4);
    let leased = lease(&dispatch(&submitted(FULL_STACK), "1"), "1", "lse_a");
    let done = changed(&leased, completion(&leased, "1", true, "h"), at(30));
    recent.wrote(&leased, &done, at(30));
    recent.read(&leased, at(31));
    assert_eq!(recent.of_task(&leased.id, at(32)), Some(done.task));
}

#[test]
fn a_lease_changes_only_its_step_of_the_kept_state() {
    let mut recent = recent::RecentStates::new(60_000, 4);
    let ready = dispatch(&submitted(FULL_STACK), "1");
    recent.read(&ready, at(10));
    let leased = changed(&ready, lease_command(&ready, "1", "lse_a"), at(20));
    recent.wrote(&ready, &leased, at(20));
    assert_eq!(recent.of_task(&ready.id, at(21)), Some(leased.task));
}

#[test]
fn a_lease_decided_on_an_older_read_drops_a_kept_state_that_has_its_step_leased_already() {
    let mut recent = recent::RecentStates::new(60_000, 4);
    let ready = dispatch(&submitted(FULL_STACK), "1");
    let first = changed(&ready, lease_command(&ready, "1", "lse_a"), at(20));
    recent.wrote(&ready, &first, at(20));
    // The kept state cannot hold both leases of the step, so it holds neither.
    let second = changed(&ready, lease_command(&ready, "1", "lse_b"), at(21));
    recent.wrote(&ready, &second, at(21));
    assert_eq!(recent.of_task(&ready.id, at(22)), None);
}

#[test]
fn a_heartbeat_moves_the_kept_expiry_of_its_own_lease_only() {
    let mut recent = recent::RecentStates::new(60_000, 4);
    let leased = lease(&dispatch(&submitted(FULL_STACK), "1"), "1", "lse_a");
    recent.read(&leased, at(30));
    let extension = |lease_id: &str| Extension {
        task_id: leased.id.clone(),
        step_id: id_of(&leased, "1"),
        attempt: 1,
        lease_id: lease_id.into(),
        expires_at: at(9_000),
    };
    let expiry = |recent: &recent::RecentStates| recent.of_task(&leased.id, at(31)).unwrap().steps[0].lease_expires_at;
    recent.extended(&extension("lse_other"));
    assert_eq!(expiry(&recent), step(&leased, "1").lease_expires_at);
    recent.extended(&extension("lse_a"));
    assert_eq!(expiry(&recent), Some(at(9_000)));
}

#[test]
fn a_full_keeper_makes_room_by_dropping_its_oldest_state() {
    let mut recent = recent::RecentStates::new(60_000, 2);
    for (n, id) in ["tsk_a", "tsk_b", "tsk_c"].into_iter().enumerate() {
        let mut task = submitted(FULL_STACK);
        task.id = id.into();
        recent.read(&task, at(10 + n as i64));
    }
    assert_eq!(recent.of_task("tsk_a", at(20)), None);
    assert!(recent.of_task("tsk_b", at(20)).is_some());
    assert!(recent.of_task("tsk_c", at(20)).is_some());
}
