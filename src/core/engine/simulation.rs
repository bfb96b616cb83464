//! A seeded simulation of everything the platform can do to a task: queue messages delivered
//! late, out of order, twice, lost or dead-lettered; agents leasing on stale reads, racing,
//! completing twice or with an old lease, stopping their heartbeats; webhook deliveries; cron
//! sweeps deciding on stale state beside completions; cancellations and manual retries.
//!
//! The model does what the shell does: every command is decided on a snapshot and committed
//! only if the D1 guard would hold: the stored task still has the snapshot's version, or for a
//! lease, its step is still as the snapshot had it (see `Scope`). After every commit
//! the checks below run. `SWITCHYARD_SIM_SEEDS=N` runs N seeds (default 1,000);
//! `SWITCHYARD_SIM_SEED=S` replays seed S alone, with the same failure.

use std::collections::{BTreeMap, BTreeSet};

use super::plan::{self, plan, PlanInput};
use super::*;
use crate::core::registry::analysis::{analyze, AgentProfile, TaskInput};
use crate::core::registry::child_runs::{Files, PostedFile};
use crate::core::registry::default_agents::DEFAULT_AGENTS;
use crate::core::registry::instructions;
use crate::core::registry::workflow::{self, Definition, DEFAULT_WORKFLOW_NAME, DEFAULT_WORKFLOW_SOURCE};

/// Seeds per `cargo test` run unless `SWITCHYARD_SIM_SEEDS` says otherwise.
const SEEDS_DEFAULT: u64 = 1_000;
/// Events of the chaos phase, where anything may happen.
const CHAOS_EVENTS: usize = 250;
/// Events the calm phase (agents just work, sweeps recover, dead steps are retried by hand) may
/// take to bring any task to a terminal state. A 7-step task needs about 5 events per step and
/// attempt; every step can use 10 attempts and be retried by hand once: 7 × 5 × 20 = 700, so
/// 2,000 leaves room without hiding a livelock.
const CALM_EVENTS_MAX: usize = 2_000;
/// A stale state is this many commits old at most. The shell decides a transition on the state
/// its isolate kept of the task (`recent`), which may be any number of commits behind when other
/// isolates wrote meanwhile; 32 is well past the commits a task makes in a chaos phase's burst.
const SNAPSHOTS_KEPT: usize = 32;
const REDISPATCH_AFTER_MS: i64 = 60_000;

/// splitmix64: tiny, fast and good enough to drive a simulation.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    /// True with probability `per_mille` / 1000.
    fn chance(&mut self, per_mille: u64) -> bool {
        self.next() % 1000 < per_mille
    }
}

#[derive(Debug, Clone)]
struct Message {
    step_id: String,
    attempt: u32,
    deliver_at: Timestamp,
}

/// A lease an agent (or a webhook delivery) believes it holds.
#[derive(Debug, Clone)]
struct Held {
    step_id: String,
    agent: String,
    lease_id: String,
}

/// A completion that was committed, to send again.
#[derive(Debug, Clone)]
struct Done {
    command: Completion,
    response: String,
}

struct World {
    rng: Rng,
    task: Task,
    now: Timestamp,
    queue: Vec<Message>,
    held: Vec<Held>,
    done: Vec<Done>,
    snapshots: Vec<Task>,
    webhook_agents: BTreeSet<String>,
    capacity: BTreeMap<String, u32>,
    leases: u64,
    trace: Vec<String>,
    /// (step, attempt, kind) of every committed step event that must happen once.
    once: BTreeSet<(String, u32, &'static str)>,
    queued: BTreeMap<String, u32>,
    events: usize,
    calm: bool,
    /// Whether the last [`World::commit`] wrote a transition.
    applied: bool,
}

type Check = Result<(), String>;

impl World {
    fn new(seed: u64, shape: usize) -> World {
        let mut rng = Rng(seed);
        let both = "Add a D1-backed comments API and a SvelteKit page that lists them";
        let (definition, files, title) = match shape {
            0 => (default_definition(), Files::new(), both),
            1 => (default_definition(), Files::new(), "Add a D1 migration and a Worker API endpoint for comments"),
            2 => (wide_definition(), Files::new(), both),
            _ => {
                let (definition, files) = nested_definition();
                (definition, files, both)
            }
        };
        let capabilities: Vec<Vec<String>> =
            DEFAULT_AGENTS.iter().map(|a| a.capabilities.iter().map(|c| c.to_string()).collect()).collect();
        let agents: Vec<AgentProfile> = DEFAULT_AGENTS
            .iter()
            .zip(&capabilities)
            .map(|(a, c)| AgentProfile { name: a.name, description: a.description, capabilities: c })
            .collect();
        let analysis = analyze(
            &TaskInput { title, description: "", requirements: &[], paths: &[] },
            &definition.routing_input(&agents),
        );
        let step_ids: Vec<String> = (0..plan::step_count(&definition, &files)).map(|i| format!("stp_{i}")).collect();
        let now = Timestamp::from_millis(1_800_000_000_000).unwrap();
        let input = PlanInput {
            task_id: "tsk_sim",
            step_ids: &step_ids,
            definition: &definition,
            files: &files,
            workflow_version: 1,
            analysis: &analysis,
            agents: &agents,
            main_agent: &workflow::main_agent_of(&definition, None, None),
            flight_rules: &[],
            now,
        };
        let planned = plan(&input).expect("the simulated workflows plan");
        let mut task = planned.task.clone();
        // Some steps have timeouts of their own, short enough for the sweep to end attempts.
        for step in &mut task.steps {
            if rng.chance(300) {
                step.timeouts.attempt_ms = Some(2_000 + rng.below(6_000) as i64);
            }
        }
        let mut webhook_agents = BTreeSet::new();
        let mut capacity = BTreeMap::new();
        for agent in DEFAULT_AGENTS {
            if rng.chance(250) {
                webhook_agents.insert(agent.name.to_string());
            }
            capacity.insert(agent.name.to_string(), 1 + rng.below(2) as u32);
        }
        let mut world = World {
            rng,
            task: task.clone(),
            now,
            queue: Vec::new(),
            held: Vec::new(),
            done: Vec::new(),
            snapshots: vec![task.clone()],
            webhook_agents,
            capacity,
            leases: 0,
            trace: Vec::new(),
            once: BTreeSet::new(),
            queued: BTreeMap::new(),
            events: 0,
            calm: false,
            applied: false,
        };
        world.trace.push(format!("shape {shape}, webhook agents {:?}", world.webhook_agents));
        let transition = Transition {
            task,
            events: planned.events,
            sends: planned.sends,
            reports: vec![],
            response: None,
            expiries_read: vec![],
            scope: Scope::Task,
            leasable_read: vec![],
            loop_items: vec![],
        };
        world.record(&transition, None).expect("submission passes the checks");
        world
    }

    fn fail(&self, seed: u64, check: &str) -> String {
        let start = self.trace.len().saturating_sub(20);
        format!(
            "seed {seed}, event {}: {check}\nlast events:\n  {}\nreplay: SWITCHYARD_SIM_SEED={seed} cargo test --lib simulation",
            self.events,
            self.trace[start..].join("\n  ")
        )
    }

    /// The state an actor decides on: usually fresh, sometimes a few commits old.
    fn snapshot(&mut self) -> Task {
        if !self.calm && self.rng.chance(300) {
            let index = self.rng.below(self.snapshots.len());
            return self.snapshots[index].clone();
        }
        self.task.clone()
    }

    /// Decides `command` on `snapshot` and commits it as the store would: a transition if its
    /// guard holds ([`World::guard_holds`]); a lease extension if the step is still leased under
    /// that lease. `self.applied` then says whether a transition was written.
    fn commit(&mut self, snapshot: &Task, command: &Command, label: &str) -> Result<Result<Outcome, Refusal>, String> {
        let random = self.rng.next() as u32;
        let outcome = apply(snapshot, command, self.now, random);
        self.applied = false;
        let note = match &outcome {
            Ok(Outcome::Changed(transition)) if self.guard_holds(snapshot, transition) => {
                self.record(transition, Some(snapshot))?;
                self.applied = true;
                "applied"
            }
            Ok(Outcome::Changed(_)) => "lost the race",
            Ok(Outcome::Extended(extension)) => {
                let current = self.task.steps.iter_mut().find(|s| {
                    s.id == extension.step_id
                        && s.status == StepStatus::Leased
                        && s.lease_id.as_deref() == Some(extension.lease_id.as_str())
                });
                match current {
                    Some(step) => {
                        step.lease_expires_at = Some(extension.expires_at);
                        "extended"
                    }
                    None => "lease gone before the extension was written",
                }
            }
            Ok(Outcome::Unchanged(why)) => why,
            Ok(Outcome::Replay(_)) => "replayed",
            Err(_) => "refused",
        };
        self.trace.push(format!("t={} v{} {label}: {note}", self.now.as_millis() % 1_000_000, snapshot.version));
        Ok(outcome)
    }

    /// The store's guard: a task-wide transition applies if the task is still at the version
    /// read, no heartbeat moved an expiry it read and no lease took a step it read as
    /// leasable; a lease, if the task is not cancelled and its step is as read.
    fn guard_holds(&self, snapshot: &Task, transition: &Transition) -> bool {
        let now = |step_id: &str| self.task.step(step_id);
        match &transition.scope {
            Scope::Task => {
                snapshot.version == self.task.version
                    && transition
                        .expiries_read
                        .iter()
                        .all(|(id, read)| now(id).is_some_and(|s| s.lease_expires_at == Some(*read)))
                    && transition
                        .leasable_read
                        .iter()
                        .all(|(id, attempt)| now(id).is_some_and(|s| s.is_leasable() && s.attempt == *attempt))
            }
            Scope::Step(id) => {
                let read = snapshot.step(id);
                self.task.status != TaskStatus::Cancelled
                    && now(id).zip(read).is_some_and(|(now, read)| {
                        now.status == StepStatus::Queued && now.ready_at == read.ready_at && now.attempt == read.attempt
                    })
            }
        }
    }

    /// Stores a committed transition and checks everything that must hold after it. Like the
    /// store, it writes only the steps the transition changed from `base` (the state it was
    /// decided on): the others keep what they have now, such as a heartbeat's extension.
    fn record(&mut self, transition: &Transition, base: Option<&Task>) -> Check {
        let mut transition = transition.clone();
        if let Scope::Step(id) = &transition.scope {
            // A lease writes its step alone: the task keeps everything else it has now.
            let mut task = self.task.clone();
            let leased = transition.task.step(id).ok_or("a lease names an unknown step")?;
            if let Some(step) = task.steps.iter_mut().find(|s| s.id == *id) {
                step.take_lease(leased);
            }
            transition.task = task;
        } else if let Some(base) = base {
            for step in &mut transition.task.steps {
                let unchanged = base.step(&step.id).is_some_and(|b| b == step);
                if let (true, Some(now)) = (unchanged, self.task.step(&step.id)) {
                    *step = now.clone();
                }
            }
        }
        let transition = &transition;
        let moves = if transition.scope == Scope::Task { 1 } else { 0 };
        if transition.task.version != self.task.version + moves && self.events > 0 {
            return Err(format!("version went from {} to {}", self.task.version, transition.task.version));
        }
        check_invariants(&transition.task)?;
        for event in &transition.events {
            let Some(step_id) = &event.step_id else { continue };
            let step = transition.task.step(step_id).ok_or("an event names an unknown step")?;
            if event.kind == "step.queued" {
                let count = self.queued.entry(step_id.clone()).or_insert(0);
                *count += 1;
                if *count > 1 {
                    return Err(format!("step {} was queued {count} times", step.key));
                }
            }
            // A step can die again after a manual retry without starting an attempt (its new
            // message dead-lettered), so a death is checked against the step's previous status.
            let before = self.task.step(step_id).map(|s| s.status);
            if event.kind == "step.dead" && before == Some(StepStatus::Dead) {
                return Err(format!("step {} died twice without a retry", step.key));
            }
            if matches!(event.kind, "step.leased" | "step.succeeded" | "step.lease_expired")
                && !self.once.insert((step_id.clone(), step.attempt, event.kind))
            {
                return Err(format!("{} recorded twice for step {} attempt {}", event.kind, step.key, step.attempt));
            }
            if event.kind == "step.late_answer" {
                self.trace.push(format!("late answer for step {} ({})", step.key, event.data["outcome"]));
            }
            if event.kind == "step.timed_out" {
                self.trace.push(format!("step {} timed out ({})", step.key, event.data["timeout"]));
            }
            if event.kind == "step.leased" && !transition.task.dependencies_met(step) {
                return Err(format!("step {} started before its dependencies succeeded", step.key));
            }
        }
        for step in &transition.task.steps {
            if step.attempt > step.attempts_max {
                return Err(format!("step {} is on attempt {} of {}", step.key, step.attempt, step.attempts_max));
            }
        }
        for send in &transition.sends {
            let deliver_at = self.now.plus_millis(i64::from(send.delay_seconds) * 1000);
            self.queue.push(Message { step_id: send.step_id.clone(), attempt: send.attempt, deliver_at });
        }
        self.task = transition.task.clone();
        self.snapshots.push(self.task.clone());
        if self.snapshots.len() > SNAPSHOTS_KEPT {
            self.snapshots.remove(0);
        }
        Ok(())
    }

    fn new_lease(&mut self) -> String {
        self.leases += 1;
        format!("lse_{}", self.leases)
    }

    fn deliver(&mut self) -> Check {
        let due: Vec<usize> = (0..self.queue.len()).filter(|&i| self.queue[i].deliver_at <= self.now).collect();
        if due.is_empty() {
            if let Some(next) = self.queue.iter().map(|m| m.deliver_at).min() {
                self.now = next;
            }
            return Ok(());
        }
        let index = due[self.rng.below(due.len())];
        let duplicate = !self.calm && self.rng.chance(150);
        let message = if duplicate { self.queue[index].clone() } else { self.queue.remove(index) };
        if !self.calm && self.rng.chance(50) {
            self.trace.push(format!("lost the message for {} attempt {}", message.step_id, message.attempt));
            return Ok(());
        }
        let snapshot = self.snapshot();
        if !self.calm && self.rng.chance(30) {
            let command = Command::DeadLetter {
                step_id: message.step_id.clone(),
                attempt: message.attempt,
                reason: "exhausted".into(),
            };
            let _ =
                self.commit(&snapshot, &command, &format!("dead letter {} #{}", message.step_id, message.attempt))?;
            return Ok(());
        }
        let Some(step) = snapshot.step(&message.step_id) else { return Err("a message names an unknown step".into()) };
        let agent = step.agent.clone().unwrap_or_default();
        let how = if step.runner == Runner::Builtin {
            Dispatch::Builtin { report: ReportRef::Inline("{}".into()) }
        } else if self.webhook_agents.contains(&agent) {
            Dispatch::Deliver { lease_id: self.new_lease(), agent: hb(1_000 + self.rng.below(4_000) as i64) }
        } else {
            // Agents are sometimes slow to come: the schedule timeout may end the step.
            Dispatch::Leasable {
                agent: AgentTimeouts { schedule_ms: 3_000 + self.rng.below(30_000) as i64, ..hb(1_000) },
            }
        };
        let command =
            Command::Dispatch { step_id: message.step_id.clone(), attempt: message.attempt, how: how.clone() };
        let outcome = self.commit(&snapshot, &command, &format!("deliver {} #{}", message.step_id, message.attempt))?;
        if let (Ok(Outcome::Changed(_)), Dispatch::Deliver { lease_id, .. }) = (&outcome, &how) {
            if self.applied {
                self.held.push(Held { step_id: message.step_id, agent, lease_id: lease_id.clone() });
            }
        }
        Ok(())
    }

    fn lease(&mut self) -> Check {
        let leasable: Vec<(String, String)> = self
            .task
            .steps
            .iter()
            .filter(|s| s.is_leasable())
            .filter_map(|s| s.agent.clone().map(|a| (s.id.clone(), a)))
            .collect();
        if leasable.is_empty() {
            return Ok(());
        }
        let (step_id, agent) = leasable[self.rng.below(leasable.len())].clone();
        // Two agents (or two requests of one) may decide on the same read: the second must lose.
        let racers = if !self.calm && self.rng.chance(200) { 2 } else { 1 };
        let snapshot = self.snapshot();
        for _ in 0..racers {
            let leased = snapshot
                .steps
                .iter()
                .filter(|s| s.agent.as_deref() == Some(&agent) && s.status == StepStatus::Leased)
                .count();
            let at_capacity = leased as u32 >= self.capacity[&agent];
            let lease_id = self.new_lease();
            let command = Command::Lease {
                step_id: step_id.clone(),
                caller: Caller::Agent(agent.clone()),
                lease_id: lease_id.clone(),
                agent: hb(1_000 + self.rng.below(4_000) as i64),
                at_capacity,
            };
            let _ = self.commit(&snapshot, &command, &format!("lease {step_id} by {agent}"))?;
            if self.applied {
                self.held.push(Held { step_id: step_id.clone(), agent: agent.clone(), lease_id });
            }
        }
        Ok(())
    }

    fn complete(&mut self) -> Check {
        if self.held.is_empty() {
            return Ok(());
        }
        let index = self.rng.below(self.held.len());
        let held = self.held[index].clone();
        let succeeded = self.calm || self.rng.chance(750);
        let caller = if !self.calm && self.rng.chance(50) {
            Caller::Agent("someone-else".into())
        } else {
            Caller::Agent(held.agent.clone())
        };
        let completion = Completion {
            step_id: held.step_id.clone(),
            lease_id: held.lease_id.clone(),
            caller: caller.clone(),
            succeeded,
            error: (!succeeded).then(|| "simulated failure".to_string()),
            hash: format!("{}:{succeeded}", held.lease_id),
            report: Some(ReportRef::Inline("{}".into())),
            selection: None,
            items: None,
        };
        let snapshot = self.snapshot();
        let outcome = self.commit(
            &snapshot,
            &Command::Complete(completion.clone()),
            &format!("complete {} {} ok={succeeded}", held.step_id, held.lease_id),
        )?;
        if caller != Caller::Agent(held.agent.clone()) {
            if outcome != Err(Refusal::Forbidden) {
                return Err(format!("a completion by another agent was not forbidden: {outcome:?}"));
            }
            return Ok(());
        }
        let applied = self.applied;
        if applied {
            let Ok(Outcome::Changed(ref transition)) = outcome else { unreachable!() };
            self.done.push(Done { command: completion, response: transition.response.clone().unwrap_or_default() });
        }
        // A lost race is retried by the agent; anything else ends its hold on the lease.
        if applied || !matches!(outcome, Ok(Outcome::Changed(_))) {
            self.held.remove(index);
        }
        Ok(())
    }

    /// Sends a committed completion again: the same body must replay the first answer; another
    /// body must be refused.
    fn complete_again(&mut self) -> Check {
        if self.done.is_empty() {
            return Ok(());
        }
        let done = self.done[self.rng.below(self.done.len())].clone();
        let snapshot = self.task.clone();
        let outcome = self.commit(&snapshot, &Command::Complete(done.command.clone()), "complete again, same body")?;
        if outcome != Ok(Outcome::Replay(done.response.clone())) {
            return Err(format!("the same completion again gave {outcome:?}"));
        }
        let mut other = done.command.clone();
        other.hash.push_str(":other");
        let outcome = self.commit(&snapshot, &Command::Complete(other), "complete again, other body")?;
        if !matches!(outcome, Err(Refusal::StaleLease(_))) {
            return Err(format!("another completion of a completed lease gave {outcome:?}"));
        }
        Ok(())
    }

    fn heartbeat(&mut self) -> Check {
        if self.held.is_empty() {
            return Ok(());
        }
        let index = self.rng.below(self.held.len());
        if !self.calm && self.rng.chance(200) {
            let gone = self.held.remove(index);
            self.trace.push(format!("agent {} stopped heartbeating {}", gone.agent, gone.lease_id));
            return Ok(());
        }
        let held = self.held[index].clone();
        let command = Command::Heartbeat {
            step_id: held.step_id.clone(),
            caller: Caller::Agent(held.agent),
            lease_id: held.lease_id.clone(),
            agent: hb(2_000),
        };
        let snapshot = self.snapshot();
        let outcome = self.commit(&snapshot, &command, &format!("heartbeat {}", held.lease_id))?;
        if matches!(outcome, Err(Refusal::StaleLease(_)) | Err(Refusal::Cancelled)) {
            self.held.remove(index);
        }
        Ok(())
    }

    fn sweep(&mut self) -> Check {
        let snapshot = self.snapshot();
        let _ = self.commit(&snapshot, &Command::Sweep { redispatch_after_ms: REDISPATCH_AFTER_MS }, "sweep")?;
        Ok(())
    }

    fn retry_dead(&mut self) -> Check {
        let dead: Vec<String> =
            self.task.steps.iter().filter(|s| s.status == StepStatus::Dead).map(|s| s.id.clone()).collect();
        if let Some(step_id) = dead.first().cloned() {
            let snapshot = self.task.clone();
            let _ =
                self.commit(&snapshot, &Command::Retry { step_id: step_id.clone() }, &format!("retry {step_id}"))?;
        }
        Ok(())
    }

    fn chaos_event(&mut self) -> Check {
        match self.rng.below(100) {
            0..=29 => self.deliver(),
            30..=49 => self.lease(),
            50..=64 => self.complete(),
            65..=69 => self.complete_again(),
            70..=77 => self.heartbeat(),
            78..=85 => self.sweep(),
            86..=93 => {
                self.now =
                    self.now.plus_millis(if self.rng.chance(100) { 61_000 } else { self.rng.below(3_000) as i64 });
                Ok(())
            }
            94..=98 => self.retry_dead(),
            _ => {
                if self.rng.chance(200) {
                    let snapshot = self.snapshot();
                    let _ = self.commit(&snapshot, &Command::Cancel, "cancel")?;
                }
                Ok(())
            }
        }
    }

    /// The calm phase: agents do the work, sweeps recover what chaos lost.
    fn calm_event(&mut self) -> Check {
        let due = self.queue.iter().any(|m| m.deliver_at <= self.now);
        let leasable = self.task.steps.iter().any(Step::is_leasable);
        if due {
            self.deliver()
        } else if !self.held.is_empty() {
            self.complete()
        } else if leasable {
            self.lease()
        } else if self.task.steps.iter().any(|s| s.status == StepStatus::Dead) {
            self.retry_dead()
        } else if !self.queue.is_empty() {
            self.deliver()
        } else {
            self.now = self.now.plus_millis(REDISPATCH_AFTER_MS + 6_000);
            self.sweep()
        }
    }
}

fn default_definition() -> Definition {
    workflow::from_instructions(DEFAULT_WORKFLOW_NAME.into(), &instructions::parse(DEFAULT_WORKFLOW_SOURCE).file)
}

/// A wider flow: four parallel steps (one with a single attempt, one with five), a fan-in and a
/// built-in summary.
fn wide_definition() -> Definition {
    let source = r#"# Wide
<process_flow>
<step number="1" subagent="context-fetcher" name="look">Look.</step>
<parallel_execution>
<step number="2a" subagent="cloudflare-specialist" name="a" max_attempts="1">A.</step>
<step number="2b" subagent="sveltekit-specialist" name="b" max_attempts="5">B.</step>
<step number="2c" subagent="test-runner" name="c">C.</step>
<step number="2d" subagent="project-manager" name="d">D.</step>
</parallel_execution>
<step number="3" subagent="project-manager" name="join">Join.</step>
<step number="4" name="task_summary">Sum up.</step>
</process_flow>
"#;
    let parsed = instructions::parse(source);
    assert!(parsed.problems.iter().all(|p| p.severity != instructions::Severity::Error), "{:?}", parsed.problems);
    workflow::from_instructions("wide".into(), &parsed.file)
}

/// A flow whose step 2 runs a child run with a parallel group (one step with a single attempt),
/// itself running a one-step child run.
fn nested_definition() -> (Definition, Files) {
    let parse = |name: &str, source: &str| {
        let parsed = instructions::parse(source);
        assert!(parsed.problems.iter().all(|p| p.severity != instructions::Severity::Error), "{:?}", parsed.problems);
        workflow::from_instructions(name.into(), &parsed.file)
    };
    let top = parse(
        "nested",
        r#"# Nested
<process_flow>
<step number="1" subagent="context-fetcher" name="look">Look.</step>
<step number="2" name="run_inner">EXECUTE: @.agent-os/instructions/core/inner.md</step>
<step number="3" subagent="project-manager" name="join">Join.</step>
</process_flow>
"#,
    );
    let inner = parse(
        "inner",
        r#"# Inner
<process_flow>
<parallel_execution>
<step number="1a" subagent="cloudflare-specialist" name="a" max_attempts="1">A.</step>
<step number="1b" subagent="sveltekit-specialist" name="b">B.</step>
</parallel_execution>
<step number="2" name="run_leaf">EXECUTE: @leaf.md</step>
</process_flow>
"#,
    );
    let leaf = parse(
        "leaf",
        "# Leaf\n<process_flow>\n<step number=\"1\" subagent=\"test-runner\" name=\"t\">T.</step>\n</process_flow>\n",
    );
    let files = Files::from([
        ("inner".to_string(), PostedFile { version: 1, definition: inner }),
        ("leaf".to_string(), PostedFile { version: 1, definition: leaf }),
    ]);
    (top, files)
}

/// Runs one seed to the end; returns its trace.
fn run_seed(seed: u64) -> Result<(Vec<String>, Task), String> {
    let mut world = World::new(seed, (seed % 4) as usize);
    for _ in 0..CHAOS_EVENTS {
        world.events += 1;
        world.chaos_event().map_err(|check| world.fail(seed, &check))?;
        if matches!(world.task.status, TaskStatus::Succeeded | TaskStatus::Cancelled) {
            break;
        }
    }
    world.calm = true;
    for _ in 0..CALM_EVENTS_MAX {
        if matches!(world.task.status, TaskStatus::Succeeded | TaskStatus::Cancelled) {
            return Ok((world.trace, world.task));
        }
        world.events += 1;
        world.calm_event().map_err(|check| world.fail(seed, &check))?;
    }
    Err(world.fail(seed, &format!("not terminal after {CALM_EVENTS_MAX} calm events: {:?}", world.task.status)))
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.trim().parse().ok())
}

#[test]
fn every_seed_keeps_the_invariants_and_ends_in_a_terminal_state() {
    let seeds: Vec<u64> = match env_u64("SWITCHYARD_SIM_SEED") {
        Some(seed) => vec![seed],
        None => (0..env_u64("SWITCHYARD_SIM_SEEDS").unwrap_or(SEEDS_DEFAULT)).collect(),
    };
    let mut outcomes = BTreeMap::new();
    for seed in seeds {
        match run_seed(seed) {
            Ok((_, task)) => *outcomes.entry(task.status.as_str()).or_insert(0) += 1,
            Err(failure) => panic!("{failure}"),
        }
    }
    // Both endings must actually occur, or the simulation is not exploring.
    if env_u64("SWITCHYARD_SIM_SEED").is_none() {
        assert!(outcomes.get("succeeded").copied().unwrap_or(0) > 0, "{outcomes:?}");
        assert!(outcomes.get("cancelled").copied().unwrap_or(0) > 0, "{outcomes:?}");
    }
}

#[test]
fn a_seed_replays_the_same_run() {
    for seed in [3, 17, 42] {
        let first = run_seed(seed).unwrap();
        let second = run_seed(seed).unwrap();
        assert_eq!(first.0, second.0);
        assert_eq!(first.1, second.1);
    }
}

#[test]
fn the_simulation_sees_races_lost_duplicates_and_expired_leases() {
    let mut traces = String::new();
    for seed in 0..50 {
        traces.push_str(&run_seed(seed).unwrap().0.join("\n"));
    }
    for seen in [
        "lost the race",
        "duplicate or stale message",
        "replayed",
        "lost the message",
        "stopped heartbeating",
        "refused",
        "timed out (\"attempt\")",
        "timed out (\"schedule\")",
        "extended",
        "late answer for step",
    ] {
        assert!(traces.contains(seen), "no run saw {seen:?}");
    }
}

/// An agent's timeouts with the given heartbeat: a day to be leased, an hour per attempt.
fn hb(heartbeat_ms: i64) -> AgentTimeouts {
    AgentTimeouts { schedule_ms: 86_400_000, attempt_ms: 3_600_000, heartbeat_ms }
}
