//! Per-agent performance figures: for one task (the seed's `agent-performance.yml`) from its
//! steps, and the shape of the cross-task aggregates the store computes in D1.
//!
//! Files and lines come from the agents' reports (counted when each step completes); times come
//! from the steps themselves. This module only computes and formats; it never reads storage.

use serde::Serialize;

use crate::core::base::time::Timestamp;

/// What running an agent cost, as its tool reported it in `report.performance`: each figure is
/// `None` when not reported, and sums leave out what was not reported (never estimated).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Usage {
    pub cost_usd: Option<f64>,
    pub turns: Option<u64>,
    pub input_tokens: Option<u64>,
    pub output_tokens: Option<u64>,
}

impl Usage {
    /// The figures of one report's `performance`.
    pub fn of(report: &serde_json::Value) -> Usage {
        let performance = &report["performance"];
        let whole = |name: &str| performance[name].as_f64().filter(|n| n.is_finite() && *n >= 0.0).map(|n| n as u64);
        Usage {
            cost_usd: performance["cost_usd"].as_f64().filter(|n| n.is_finite() && *n >= 0.0),
            turns: whole("turns"),
            input_tokens: whole("input_tokens"),
            output_tokens: whole("output_tokens"),
        }
    }

    /// Both added, a figure missing from one side counting as not reported there.
    pub fn plus(self, other: Usage) -> Usage {
        fn add<T: std::ops::Add<Output = T>>(a: Option<T>, b: Option<T>) -> Option<T> {
            match (a, b) {
                (Some(a), Some(b)) => Some(a + b),
                (one, None) | (None, one) => one,
            }
        }
        Usage {
            cost_usd: add(self.cost_usd, other.cost_usd),
            turns: add(self.turns, other.turns),
            input_tokens: add(self.input_tokens, other.input_tokens),
            output_tokens: add(self.output_tokens, other.output_tokens),
        }
    }
}

/// One step of a task as the metrics see it.
#[derive(Debug, Clone, PartialEq)]
pub struct StepFigures {
    pub agent: String,
    /// The step status (`succeeded`, `dead`, `leased`, ...).
    pub status: String,
    pub started_at: Option<Timestamp>,
    pub finished_at: Option<Timestamp>,
    /// Attempts started.
    pub attempts: u32,
    pub files_created: u64,
    pub files_modified: u64,
    pub lines_added: u64,
    pub lines_removed: u64,
    /// Summed over the step's attempts.
    pub usage: Usage,
}

/// The change figures of one report: how many files it lists as created and modified, and its
/// line counts (0 for what it leaves out).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReportCounts {
    pub files_created: u64,
    pub files_modified: u64,
    pub lines_added: u64,
    pub lines_removed: u64,
}

impl ReportCounts {
    pub fn of(report: &serde_json::Value) -> ReportCounts {
        let files = |name: &str| report.get(name).and_then(serde_json::Value::as_array).map_or(0, |a| a.len() as u64);
        let lines = |name: &str| report.get(name).and_then(serde_json::Value::as_u64).unwrap_or(0);
        ReportCounts {
            files_created: files("files_created"),
            files_modified: files("files_modified"),
            lines_added: lines("lines_added"),
            lines_removed: lines("lines_removed"),
        }
    }
}

/// One agent's figures for one task.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AgentMetrics {
    pub agent: String,
    pub start_time: Option<String>,
    pub end_time: Option<String>,
    /// From the first start to the last end of the agent's steps; absent until both exist.
    pub duration_ms: Option<i64>,
    /// `duration_ms` as a person says it ("15 minutes"), as the seed's file shows it.
    pub duration: Option<String>,
    pub files_created: u64,
    pub files_modified: u64,
    pub lines_added: u64,
    pub lines_removed: u64,
    pub steps: u32,
    pub attempts: u32,
    /// `succeeded` when all its steps did, `failed` when one is dead, `cancelled`, or `running`.
    pub outcome: &'static str,
    /// What the agent's attempts cost, failed ones included, as their tools reported it.
    #[serde(flatten)]
    pub usage: Usage,
}

/// Figures per agent (in order of first appearance) for the steps an agent ran or was given;
/// skipped steps and steps without an agent are left out.
pub fn per_agent(steps: &[StepFigures]) -> Vec<AgentMetrics> {
    let mut agents: Vec<(String, Vec<&StepFigures>)> = Vec::new();
    for step in steps.iter().filter(|s| s.status != "skipped") {
        match agents.iter_mut().find(|(name, _)| *name == step.agent) {
            Some((_, list)) => list.push(step),
            None => agents.push((step.agent.clone(), vec![step])),
        }
    }
    agents.into_iter().map(|(agent, steps)| figures_of(agent, &steps)).collect()
}

fn figures_of(agent: String, steps: &[&StepFigures]) -> AgentMetrics {
    let start = steps.iter().filter_map(|s| s.started_at).min();
    let all_finished = steps.iter().all(|s| s.finished_at.is_some());
    let end = if all_finished { steps.iter().filter_map(|s| s.finished_at).max() } else { None };
    let duration_ms = match (start, end) {
        (Some(start), Some(end)) => Some((end.as_millis() - start.as_millis()).max(0)),
        _ => None,
    };
    let outcome = if steps.iter().any(|s| s.status == "dead") {
        "failed"
    } else if steps.iter().any(|s| s.status == "cancelled") {
        "cancelled"
    } else if steps.iter().all(|s| s.status == "succeeded") {
        "succeeded"
    } else {
        "running"
    };
    AgentMetrics {
        agent,
        start_time: start.map(Timestamp::to_rfc3339),
        end_time: end.map(Timestamp::to_rfc3339),
        duration_ms,
        duration: duration_ms.map(spoken_duration),
        files_created: steps.iter().map(|s| s.files_created).sum(),
        files_modified: steps.iter().map(|s| s.files_modified).sum(),
        lines_added: steps.iter().map(|s| s.lines_added).sum(),
        lines_removed: steps.iter().map(|s| s.lines_removed).sum(),
        steps: steps.len() as u32,
        attempts: steps.iter().map(|s| s.attempts).sum(),
        outcome,
        usage: steps.iter().fold(Usage::default(), |sum, s| sum.plus(s.usage)),
    }
}

/// "15 minutes", "1 hour 5 minutes", "42 seconds", "350 ms": the largest two units that matter.
pub fn spoken_duration(ms: i64) -> String {
    fn unit(n: i64, name: &str) -> String {
        if n == 1 {
            format!("1 {name}")
        } else {
            format!("{n} {name}s")
        }
    }
    let seconds = ms / 1000;
    match seconds {
        0 => format!("{ms} ms"),
        1..=59 => unit(seconds, "second"),
        60..=3599 => unit(seconds / 60, "minute"),
        _ => {
            let (hours, minutes) = (seconds / 3600, seconds % 3600 / 60);
            if minutes == 0 {
                unit(hours, "hour")
            } else {
                format!("{} {}", unit(hours, "hour"), unit(minutes, "minute"))
            }
        }
    }
}

/// The seed's `agent-performance.yml` layout for one task: the task id, then each agent and its
/// figures. Strings are written as JSON strings, which YAML reads as double-quoted scalars.
pub fn to_yaml(task_id: &str, metrics: &[AgentMetrics]) -> String {
    let quote = |text: &str| serde_json::Value::String(text.to_string()).to_string();
    let mut yaml = format!("{}:\n", quote(task_id));
    if metrics.is_empty() {
        yaml = format!("{}: {{}}\n", quote(task_id));
    }
    for m in metrics {
        yaml.push_str(&format!("  {}:\n", quote(&m.agent)));
        let text = |value: &Option<String>| value.as_deref().map_or_else(|| "null".to_string(), quote);
        yaml.push_str(&format!("    start_time: {}\n", text(&m.start_time)));
        yaml.push_str(&format!("    end_time: {}\n", text(&m.end_time)));
        yaml.push_str(&format!("    duration: {}\n", text(&m.duration)));
        let duration_ms = m.duration_ms.map_or_else(|| "null".to_string(), |d| d.to_string());
        yaml.push_str(&format!("    duration_ms: {duration_ms}\n"));
        for (name, value) in [
            ("files_created", m.files_created),
            ("files_modified", m.files_modified),
            ("lines_added", m.lines_added),
            ("lines_removed", m.lines_removed),
            ("steps", u64::from(m.steps)),
            ("attempts", u64::from(m.attempts)),
        ] {
            yaml.push_str(&format!("    {name}: {value}\n"));
        }
        yaml.push_str(&format!("    outcome: {}\n", quote(m.outcome)));
        let figure = |value: Option<String>| value.unwrap_or_else(|| "null".to_string());
        yaml.push_str(&format!("    cost_usd: {}\n", figure(m.usage.cost_usd.map(|c| c.to_string()))));
        for (name, value) in
            [("turns", m.usage.turns), ("input_tokens", m.usage.input_tokens), ("output_tokens", m.usage.output_tokens)]
        {
            yaml.push_str(&format!("    {name}: {}\n", figure(value.map(|n| n.to_string()))));
        }
    }
    yaml
}

/// One agent's figures across tasks, as `GET /v1/metrics/agents` answers.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AgentAggregate {
    pub agent: String,
    /// Steps that reached an end: succeeded or dead.
    pub steps: u64,
    pub succeeded: u64,
    pub success_rate: f64,
    pub duration_p50_ms: Option<i64>,
    pub duration_p95_ms: Option<i64>,
    pub files_created: u64,
    pub files_modified: u64,
    pub lines_added: u64,
    pub lines_removed: u64,
    /// Over every attempt of those steps.
    #[serde(flatten)]
    pub usage: Usage,
    /// How many of `steps` belong to archived tasks: counted from per-day totals, so they are in
    /// every figure but the duration percentiles.
    pub archived_steps: u64,
}

/// The figures of the steps still in D1 with those of archived tasks' steps added (per agent,
/// from the per-day totals, so without percentiles), one entry per agent, sorted by agent. An
/// agent whose steps are all archived has no duration percentiles.
pub fn with_archived(live: Vec<AgentAggregate>, archived: Vec<AgentAggregate>) -> Vec<AgentAggregate> {
    let mut merged = live;
    for totals in archived {
        let Some(m) = merged.iter_mut().find(|m| m.agent == totals.agent) else {
            merged.push(AgentAggregate {
                duration_p50_ms: None,
                duration_p95_ms: None,
                archived_steps: totals.steps,
                ..totals
            });
            continue;
        };
        m.steps += totals.steps;
        m.succeeded += totals.succeeded;
        m.archived_steps += totals.steps;
        m.files_created += totals.files_created;
        m.files_modified += totals.files_modified;
        m.lines_added += totals.lines_added;
        m.lines_removed += totals.lines_removed;
        m.usage = m.usage.plus(totals.usage);
    }
    for m in &mut merged {
        m.success_rate = success_rate(m.succeeded, m.steps);
    }
    merged.sort_by(|a, b| a.agent.cmp(&b.agent));
    merged
}

/// Succeeded steps over ended steps; 0 when none ended.
pub fn success_rate(succeeded: u64, steps: u64) -> f64 {
    if steps > 0 {
        succeeded as f64 / steps as f64
    } else {
        0.0
    }
}

/// The total of every agent's usage for one task.
pub fn total_usage(metrics: &[AgentMetrics]) -> Usage {
    metrics.iter().fold(Usage::default(), |sum, m| sum.plus(m.usage))
}

/// The nearest-rank position (1-based) of the `percent` percentile among `n` sorted values:
/// the same formula the store's SQL uses, kept here so it is tested.
pub fn nearest_rank(n: u64, percent: u64) -> u64 {
    (n * percent).div_ceil(100).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(agent: &str, status: &str, start: i64, end: Option<i64>, lines: u64) -> StepFigures {
        StepFigures {
            agent: agent.into(),
            status: status.into(),
            started_at: Timestamp::from_millis(start),
            finished_at: end.and_then(Timestamp::from_millis),
            attempts: 1,
            files_created: 1,
            files_modified: 2,
            lines_added: lines,
            lines_removed: 1,
            usage: Usage::default(),
        }
    }

    #[test]
    fn an_agents_figures_add_up_over_its_steps_and_span_first_start_to_last_end() {
        let steps = [
            step("cloudflare-specialist", "succeeded", 0, Some(600_000), 200),
            step("sveltekit-specialist", "succeeded", 1_000, Some(2_000), 5),
            step("cloudflare-specialist", "succeeded", 700_000, Some(900_000), 45),
        ];
        let metrics = per_agent(&steps);
        assert_eq!(metrics.len(), 2);
        let cf = &metrics[0];
        assert_eq!(cf.agent, "cloudflare-specialist");
        assert_eq!((cf.files_created, cf.files_modified, cf.lines_added, cf.lines_removed), (2, 4, 245, 2));
        assert_eq!(cf.duration_ms, Some(900_000));
        assert_eq!(cf.duration.as_deref(), Some("15 minutes"));
        assert_eq!(cf.start_time.as_deref(), Some("1970-01-01T00:00:00.000Z"));
        assert_eq!((cf.steps, cf.attempts, cf.outcome), (2, 2, "succeeded"));
    }

    #[test]
    fn an_agent_with_a_step_still_running_has_no_end_and_a_dead_step_makes_it_failed() {
        let running = per_agent(&[step("a", "succeeded", 0, Some(5), 0), step("a", "leased", 6, None, 0)]);
        assert_eq!(
            (running[0].end_time.as_deref(), running[0].duration_ms, running[0].outcome),
            (None, None, "running")
        );
        let failed = per_agent(&[step("a", "dead", 0, Some(5), 0), step("a", "cancelled", 6, Some(7), 0)]);
        assert_eq!(failed[0].outcome, "failed");
        assert!(per_agent(&[step("a", "skipped", 0, Some(0), 0)]).is_empty());
    }

    #[test]
    fn usage_adds_up_over_steps_and_agents_and_what_nobody_reported_stays_unreported() {
        let mut a = step("a", "succeeded", 0, Some(5), 0);
        a.usage = Usage::of(&serde_json::json!({"performance": {"cost_usd": 0.25, "turns": 3, "input_tokens": 100}}));
        let mut b = step("a", "succeeded", 6, Some(9), 0);
        b.usage = Usage::of(&serde_json::json!({"performance": {"cost_usd": 0.5, "turns": 2, "bundle_kb": 9}}));
        let c = step("b", "succeeded", 0, Some(1), 0);
        let metrics = per_agent(&[a, b, c]);
        assert_eq!(
            metrics[0].usage,
            Usage { cost_usd: Some(0.75), turns: Some(5), input_tokens: Some(100), output_tokens: None }
        );
        assert_eq!(metrics[1].usage, Usage::default());
        assert_eq!(total_usage(&metrics).cost_usd, Some(0.75));
        let yaml = to_yaml("t", &metrics);
        assert!(
            yaml.contains("    cost_usd: 0.75\n    turns: 5\n    input_tokens: 100\n    output_tokens: null\n"),
            "{yaml}"
        );
        let json = serde_json::to_value(&metrics[1]).unwrap();
        assert_eq!(json["cost_usd"], serde_json::Value::Null, "not reported, not zero");
    }

    #[test]
    fn usage_ignores_figures_that_are_not_numbers_of_at_least_zero() {
        let usage = Usage::of(&serde_json::json!({"performance": {"cost_usd": -1, "turns": "3"}}));
        assert_eq!(usage, Usage::default());
    }

    #[test]
    fn durations_are_spoken_in_their_two_largest_units() {
        assert_eq!(spoken_duration(350), "350 ms");
        assert_eq!(spoken_duration(1_000), "1 second");
        assert_eq!(spoken_duration(42_500), "42 seconds");
        assert_eq!(spoken_duration(12 * 60_000 + 59_000), "12 minutes");
        assert_eq!(spoken_duration(3_600_000), "1 hour");
        assert_eq!(spoken_duration(2 * 3_600_000 + 5 * 60_000), "2 hours 5 minutes");
    }

    #[test]
    fn the_yaml_follows_the_seed_layout_with_quoted_strings() {
        let yaml = to_yaml("tsk_1", &per_agent(&[step("cloudflare-specialist", "succeeded", 0, Some(900_000), 245)]));
        assert!(yaml
            .starts_with("\"tsk_1\":\n  \"cloudflare-specialist\":\n    start_time: \"1970-01-01T00:00:00.000Z\"\n"));
        assert!(yaml.contains("    duration: \"15 minutes\"\n    duration_ms: 900000\n"));
        assert!(yaml.contains("    lines_added: 245\n    lines_removed: 1\n"));
        assert!(yaml.contains("    outcome: \"succeeded\"\n"));
        assert!(
            yaml.ends_with("    cost_usd: null\n    turns: null\n    input_tokens: null\n    output_tokens: null\n")
        );
        assert_eq!(to_yaml("tsk_2", &[]), "\"tsk_2\": {}\n");
    }

    #[test]
    fn a_reports_counts_are_its_list_lengths_and_line_figures() {
        let report = serde_json::json!({"files_created": ["a", "b"], "files_modified": ["c"], "lines_added": 9});
        let counts = ReportCounts::of(&report);
        assert_eq!(counts, ReportCounts { files_created: 2, files_modified: 1, lines_added: 9, lines_removed: 0 });
        assert_eq!(ReportCounts::of(&serde_json::json!({"notes": "x"})), ReportCounts::default());
    }

    fn aggregate(agent: &str, steps: u64, succeeded: u64, p50: Option<i64>) -> AgentAggregate {
        AgentAggregate {
            agent: agent.into(),
            steps,
            succeeded,
            success_rate: success_rate(succeeded, steps),
            duration_p50_ms: p50,
            duration_p95_ms: p50,
            files_created: 1,
            files_modified: 0,
            lines_added: 10,
            lines_removed: 0,
            usage: Usage { cost_usd: Some(0.5), ..Usage::default() },
            archived_steps: 0,
        }
    }

    #[test]
    fn archived_totals_add_to_an_agents_figures_but_not_to_its_percentiles() {
        let live = vec![aggregate("test-runner", 2, 2, Some(40)), aggregate("context-fetcher", 1, 0, Some(9))];
        let archived = vec![
            AgentAggregate {
                succeeded: 0,
                files_created: 0,
                lines_added: 5,
                usage: Usage { cost_usd: Some(0.25), turns: Some(3), ..Usage::default() },
                ..aggregate("test-runner", 2, 0, None)
            },
            aggregate("git-workflow", 3, 3, None),
        ];
        let merged = with_archived(live, archived);
        let agents: Vec<&str> = merged.iter().map(|m| m.agent.as_str()).collect();
        assert_eq!(agents, ["context-fetcher", "git-workflow", "test-runner"]);
        let runner = &merged[2];
        assert_eq!((runner.steps, runner.succeeded, runner.archived_steps), (4, 2, 2));
        assert_eq!(runner.success_rate, 0.5);
        assert_eq!((runner.lines_added, runner.duration_p50_ms), (15, Some(40)));
        assert_eq!(runner.usage, Usage { cost_usd: Some(0.75), turns: Some(3), ..Usage::default() });
        let git = &merged[1];
        assert_eq!((git.steps, git.archived_steps, git.success_rate, git.duration_p50_ms), (3, 3, 1.0, None));
        assert_eq!(merged[0].archived_steps, 0);
    }

    #[test]
    fn the_nearest_rank_rounds_up_and_is_never_zero() {
        assert_eq!(nearest_rank(1, 50), 1);
        assert_eq!(nearest_rank(1, 95), 1);
        assert_eq!(nearest_rank(10, 50), 5);
        assert_eq!(nearest_rank(10, 95), 10);
        assert_eq!(nearest_rank(100, 95), 95);
        assert_eq!(nearest_rank(101, 50), 51);
    }
}
