use serde_json::{json, Map, Value};

use super::*;
use crate::core::records::metrics::{per_agent, StepFigures};
use crate::core::registry::instructions;

const DEFAULT_WORKFLOW: &str = include_str!("../../../../workflows/enhanced-multi-agent.md");

fn template() -> Template {
    let file = instructions::parse(DEFAULT_WORKFLOW).file;
    let step = file.steps().find(|s| s.name.as_deref() == Some("feedback_aggregation")).unwrap();
    let post_flight = file.post_flight.as_ref().and_then(|p| p.summary_template()).map(String::from);
    Template::from_blocks(&step.blocks, post_flight.as_deref())
}

fn object(value: Value) -> Map<String, Value> {
    value.as_object().unwrap().clone()
}

/// A step of the fixture: key, name, agent, status and report.
type FixtureStep = (&'static str, &'static str, Option<&'static str>, &'static str, Option<Map<String, Value>>);

struct Fixture {
    reports: Vec<FixtureStep>,
}

impl Fixture {
    fn full_stack() -> Fixture {
        let backend = object(json!({
            "files_created": ["migrations/0003_comments.sql", "src/comments.rs"],
            "files_modified": ["wrangler.toml"],
            "lines_added": 245, "lines_removed": 32,
            "feedback": {
                "Services configured": ["D1 comments table", "KV cache"],
                "security_measures_implemented": ["input validation"]
            },
            "records": {"API endpoints": ["POST /api/comments"]},
            "integration_points": ["POST /api/comments returns the saved comment"],
            "performance": {"cold_start_ms": 12.5}
        }));
        let frontend = object(json!({
            "files_created": ["src/routes/comments/+page.svelte"],
            "files_modified": ["src/lib/api.ts", "wrangler.toml"],
            "lines_added": 389, "lines_removed": 18,
            "feedback": {"Components created": ["CommentForm"], "Accessibility features added": []},
            "next_steps": ["Paginate comments"]
        }));
        let tests_a = object(json!({"tests": {"unit": {"passed": 40, "failed": 1}, "integration": {"passed": 6}},
                                    "performance": {"bundle_size_kb": 42, "pagespeed_score": 97}}));
        let tests_b = object(json!({"tests": {"unit": {"passed": 2}}, "outstanding_issues": ["Flaky e2e on Safari"]}));
        Fixture {
            reports: vec![
                ("1", "task_analysis", Some("context-fetcher"), "succeeded", Some(Map::new())),
                ("2a", "backend_implementation", Some("cloudflare-specialist"), "succeeded", Some(backend)),
                ("2b", "frontend_implementation", Some("sveltekit-specialist"), "succeeded", Some(frontend)),
                ("3", "integration_verification", Some("project-manager"), "dead", None),
                ("4", "feedback_aggregation", None, "succeeded", None),
                ("5", "comprehensive_testing", Some("test-runner"), "succeeded", Some(tests_a)),
                ("5b", "more_testing", Some("test-runner"), "succeeded", Some(tests_b)),
            ],
        }
    }

    fn steps(&self) -> Vec<StepFacts<'_>> {
        self.reports
            .iter()
            .map(|(key, name, agent, status, report)| StepFacts {
                key,
                name,
                agent: *agent,
                status,
                skip_reason: None,
                error: (*status == "dead").then_some("the attempts ran out"),
                report: report.as_ref(),
                child_run: None,
            })
            .collect()
    }

    fn summary(&self, kind: Kind) -> Summary {
        let figures: Vec<StepFigures> = self
            .reports
            .iter()
            .filter_map(|(_, _, agent, status, report)| {
                let count = |f: &str| {
                    report.as_ref().and_then(|r| r.get(f)).and_then(Value::as_array).map_or(0, |a| a.len() as u64)
                };
                let lines = |f: &str| report.as_ref().and_then(|r| r.get(f)).and_then(Value::as_u64).unwrap_or(0);
                Some(StepFigures {
                    agent: (*agent)?.to_string(),
                    status: status.to_string(),
                    started_at: crate::core::base::time::Timestamp::from_millis(0),
                    finished_at: crate::core::base::time::Timestamp::from_millis(60_000),
                    attempts: 1,
                    files_created: count("files_created"),
                    files_modified: count("files_modified"),
                    lines_added: lines("lines_added"),
                    lines_removed: lines("lines_removed"),
                    usage: report
                        .as_ref()
                        .map(|r| crate::core::records::metrics::Usage::of(&Value::Object(r.clone())))
                        .unwrap_or_default(),
                })
            })
            .collect();
        let task = TaskFacts {
            id: "tsk_1",
            title: "Add comments",
            description: "Readers can comment on posts.",
            status: "running",
            task_type: "full_stack",
            requirements: vec!["store comments in D1".into()],
        };
        build(kind, &task, &self.steps(), per_agent(&figures), &template(), "2026-11-24T10:00:00.000Z")
    }
}

#[test]
fn the_default_workflow_asks_two_agents_for_four_categories_and_lists_six_sections() {
    let template = template();
    let agents: Vec<(&str, usize)> = template.feedback.iter().map(|(a, c)| (a.as_str(), c.len())).collect();
    assert_eq!(agents, vec![("cloudflare-specialist", 4), ("sveltekit-specialist", 4)]);
    assert_eq!(template.sections, DEFAULT_SECTIONS.to_vec());
    assert!(template.post_flight.unwrap().contains("{list of agents involved}"));
}

#[test]
fn feedback_is_matched_by_words_and_a_category_nobody_answered_is_not_reported() {
    let summary = Fixture::full_stack().summary(Kind::TaskSummary);
    let cf = summary.work.iter().find(|w| w.agent == "cloudflare-specialist").unwrap();
    let answers: Vec<(&str, Option<usize>)> =
        cf.feedback.iter().map(|f| (f.category.as_str(), f.items.as_ref().map(Vec::len))).collect();
    assert_eq!(
        answers,
        vec![
            ("Files created/modified", Some(3)),
            ("Services configured", Some(2)),
            ("Performance optimizations applied", None),
            ("Security measures implemented", Some(1)),
        ]
    );
    let svelte = summary.work.iter().find(|w| w.agent == "sveltekit-specialist").unwrap();
    let accessibility = svelte.feedback.iter().find(|f| f.category == "Accessibility features added").unwrap();
    assert_eq!(accessibility.items, Some(vec![]));
}

#[test]
fn the_task_summary_has_every_section_the_activity_log_lists_with_the_reported_figures() {
    let summary = Fixture::full_stack().summary(Kind::TaskSummary);
    let md = summary.task_summary_markdown();
    for section in DEFAULT_SECTIONS {
        assert!(md.contains(&format!("\n## {section}\n")), "{section} missing from\n{md}");
    }
    assert!(md.contains("Readers can comment on posts."));
    assert!(md.contains("- store comments in D1"));
    assert!(md.contains("- cloudflare-specialist: step 2a (backend_implementation) succeeded"));
    assert!(md.contains("- Files: 2 created, 1 modified; lines +245 -32"));
    assert!(md.contains("- Performance optimizations applied: not reported"));
    assert!(md.contains("- POST /api/comments returns the saved comment (cloudflare-specialist, step 2a)"));
    assert!(md.contains("| cloudflare-specialist | 1970-01-01T00:00:00.000Z | 1970-01-01T00:01:00.000Z | 1 minute | 2 | 1 | 245 | 32 | 1 | succeeded |"));
    assert!(md.contains("- Flaky e2e on Safari (test-runner, step 5b)"));
    assert!(md.contains("- step 3 (integration_verification) is dead: the attempts ran out (project-manager, step 3)"));
}

#[test]
fn the_post_flight_template_is_filled_from_the_reports_and_says_what_was_not_reported() {
    let summary = Fixture::full_stack().summary(Kind::PostFlight);
    let md = summary.post_flight_markdown(summary_template().as_str());
    let expect = [
        "## Task Completion Summary",
        "Agents Used:\n- context-fetcher\n- cloudflare-specialist\n- sveltekit-specialist\n- project-manager\n- test-runner\n",
        "Files Modified:\n- migrations/0003_comments.sql\n- src/comments.rs\n- src/lib/api.ts\n- src/routes/comments/+page.svelte\n- wrangler.toml\n",
        "- Unit: 42 (1 failed)\n- Integration: 6\n- E2E: not reported\n",
        "- PageSpeed Score: 97\n- Bundle Size: 42 KB\n- Cold Start: 12.5 ms\n",
        "Next Steps:\n- Paginate comments\n",
        "- cloudflare-specialist: backend_implementation succeeded; 2 files created, 1 modified, +245 -32 lines\n",
    ];
    for text in expect {
        assert!(md.contains(text), "{text:?} missing from\n{md}");
    }
    assert!(!md.contains('{'), "a placeholder is left in\n{md}");
}

#[test]
fn a_task_with_no_reports_says_not_reported_rather_than_inventing_figures() {
    let task = TaskFacts {
        id: "t",
        title: "T",
        description: "",
        status: "running",
        task_type: "general",
        requirements: vec![],
    };
    let summary = build(Kind::PostFlight, &task, &[], Vec::new(), &template(), "2026-11-24T10:00:00.000Z");
    let md = summary.post_flight_markdown(&summary_template());
    assert!(md.contains("- Unit: not reported\n"));
    assert!(md.contains("- PageSpeed Score: not reported\n"));
    assert!(md.contains("Agents Used:\n- none\n"));
    let activity = summary.task_summary_markdown();
    assert!(activity.contains("## Integration points\n\nNone reported.\n"));
}

#[test]
fn reported_text_stays_on_one_line_so_it_cannot_start_a_heading() {
    let report = object(json!({"next_steps": ["line one\n## Injected heading"]}));
    let steps = [StepFacts {
        key: "1",
        name: "s",
        agent: Some("a"),
        status: "succeeded",
        skip_reason: None,
        error: None,
        report: Some(&report),
        child_run: None,
    }];
    let task = TaskFacts {
        id: "t",
        title: "T\n# x",
        description: "",
        status: "running",
        task_type: "general",
        requirements: vec![],
    };
    let summary = build(Kind::PostFlight, &task, &steps, Vec::new(), &template(), "now");
    let md = summary.post_flight_markdown(&summary_template());
    assert!(md.contains("- line one ## Injected heading\n"));
    assert!(summary.task_summary_markdown().starts_with("# Task summary: T # x\n"));
}

fn summary_template() -> String {
    template().post_flight.unwrap()
}

#[test]
fn the_agents_section_lists_each_child_run_with_its_steps_under_it() {
    let report = object(json!({"notes": "done"}));
    let fact = |key, name, agent, status, child_run| StepFacts {
        key,
        name,
        agent,
        status,
        skip_reason: None,
        error: None,
        report: agent.map(|_| &report),
        child_run,
    };
    let steps = [
        fact("1", "gather", Some("context-fetcher"), "succeeded", None),
        fact("2", "run_child", None, "succeeded", Some("execute-child v7")),
        fact("2.1", "understand", Some("main-agent"), "succeeded", None),
        fact("2.2", "verify", Some("test-runner"), "skipped", None),
        fact("3", "wrap_up", Some("project-manager"), "succeeded", None),
    ];
    let task = TaskFacts {
        id: "t",
        title: "T",
        description: "",
        status: "succeeded",
        task_type: "backend",
        requirements: vec![],
    };
    let summary = build(Kind::TaskSummary, &task, &steps, Vec::new(), &template(), "now");
    let md = summary.task_summary_markdown();
    assert!(
        md.contains(
            "Child runs:\n- step 2 (run_child) ran execute-child v7, succeeded:\n  - step 2.1 (understand) succeeded, by main-agent\n  - step 2.2 (verify) skipped, by test-runner\n"
        ),
        "{md}"
    );
}
