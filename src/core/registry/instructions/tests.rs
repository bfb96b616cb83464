use super::*;
use serde_json::json;

/// The project's default workflow: a full instruction file with every kind of block the
/// engine reads. Compiled in, so the tests need nothing outside the repository.
fn default_workflow() -> String {
    include_str!("../../../../workflows/enhanced-multi-agent.md").to_string()
}

/// Wraps steps in the minimum a valid file needs.
fn flow(steps: &str) -> String {
    format!("# T\n\n<process_flow>\n{steps}\n</process_flow>\n")
}

/// Parses and returns the problems as "line:column severity message".
fn problems_of(text: &str) -> Vec<String> {
    parse(text)
        .problems
        .iter()
        .map(|p| {
            format!("{}:{} {:?} {}", p.line, p.column, p.severity, p.message)
                .replace("Error", "error")
                .replace("Warning", "warning")
        })
        .collect()
}

fn check_problems(text: &str, expected: &[&str]) {
    assert_eq!(problems_of(text), expected, "{text}");
}

/// The keys of the flow, groups in brackets: "1 [2a 2b] 3".
fn flow_shape(text: &str) -> String {
    let parsed = parse(text);
    parsed
        .file
        .flow
        .iter()
        .map(|entry| match entry {
            FlowEntry::Step(s) => s.number.clone(),
            FlowEntry::Group(g) => {
                format!("[{}]", g.steps.iter().map(|s| s.number.as_str()).collect::<Vec<_>>().join(" "))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[test]
fn the_default_workflow_parses_without_problems() {
    let parsed = parse(&default_workflow());
    assert_eq!(parsed.problems, vec![]);
}

#[test]
fn the_default_workflow_front_matter_title_and_overview_are_read() {
    let file = parse(&default_workflow()).file;
    assert_eq!(file.front_matter["name"], "enhanced-multi-agent");
    assert_eq!(file.front_matter["version"], 1);
    assert_eq!(file.front_matter["encoding"], "UTF-8");
    assert_eq!(file.title.as_deref(), Some("Enhanced Multi-Agent Task Execution"));
    assert!(file.overview.as_deref().is_some_and(|o| o.starts_with("The default switchyard workflow.")));
}

#[test]
fn agent_os_front_matter_keeps_empty_values_and_booleans() {
    let text = "---\ndescription: A rule\nglobs:\nalwaysApply: false\nversion: 1.0\n---\n\n# T\n\n<process_flow>\n<step number=\"1\">x</step>\n</process_flow>\n";
    let parsed = parse(text);
    assert_eq!(parsed.problems, vec![]);
    let front = &parsed.file.front_matter;
    assert_eq!(front["description"], "A rule");
    assert_eq!(front["alwaysApply"], false);
    assert!(front.contains_key("globs"));
}

#[test]
fn the_default_workflow_has_its_steps_in_order_with_one_optional_parallel_group() {
    let text = default_workflow();
    assert_eq!(flow_shape(&text), "1 [2a 2b] 3 4 5 6");
    let file = parse(&text).file;
    match &file.flow[1] {
        FlowEntry::Group(group) => assert!(group.optional),
        other => panic!("{other:?}"),
    }
    let steps: Vec<(&str, Option<&str>, Option<&str>)> =
        file.steps().map(|s| (s.number.as_str(), s.name.as_deref(), s.subagent.as_deref())).collect();
    assert_eq!(
        steps,
        vec![
            ("1", Some("task_analysis"), Some("context-fetcher")),
            ("2a", Some("backend_implementation"), Some("cloudflare-specialist")),
            ("2b", Some("frontend_implementation"), Some("sveltekit-specialist")),
            ("3", Some("integration_verification"), Some("project-manager")),
            ("4", Some("feedback_aggregation"), None),
            ("5", Some("comprehensive_testing"), Some("test-runner")),
            ("6", Some("documentation_update"), Some("project-manager")),
        ]
    );
}

#[test]
fn the_default_workflow_steps_keep_their_titles_prose_and_blocks() {
    let file = parse(&default_workflow()).file;
    let steps: Vec<&Step> = file.steps().collect();
    assert_eq!(steps[0].title.as_deref(), Some("Step 1: Understand the task"));
    assert_eq!(steps[0].text, "Read the task and the code it touches, and say which kinds of work it contains.");
    let analysis = &steps[0].blocks[0];
    assert_eq!(analysis.tag, "analysis");
    let tags: Vec<&str> = analysis.children.iter().map(|b| b.tag.as_str()).collect();
    assert_eq!(tags, vec!["task_type", "agent_selection"]);
    assert_eq!(analysis.children[0].items.len(), 4);
    let selection: Vec<(&str, &str)> =
        analysis.children[1].directives.iter().map(|d| (d.keyword.as_str(), d.value.as_str())).collect();
    assert_eq!(
        selection,
        vec![
            ("IF", "the task uses Cloudflare services (D1, KV, R2, Queues)"),
            ("ASSIGN", "cloudflare-specialist"),
            ("IF", "the task changes pages, components or routes"),
            ("ASSIGN", "sveltekit-specialist"),
            ("IF", "the task does both"),
            ("ASSIGN", "both specialists, side by side"),
        ]
    );

    let backend = steps[1];
    let tasks = backend.blocks.iter().find(|b| b.tag == "tasks").unwrap();
    assert_eq!(tasks.items.len(), 5);
    assert_eq!(tasks.items[0].text, "Write D1 schema changes as new migrations");
    let logging = backend.blocks.iter().find(|b| b.tag == "logging").unwrap();
    let directives: Vec<String> = logging.directives.iter().map(|d| format!("{}: {}", d.keyword, d.value)).collect();
    assert_eq!(
        directives,
        vec![
            "ACTION: Append every change to the cloudflare-specialist log",
            "RECORD: Database schemas created",
            "RECORD: KV namespaces configured",
            "RECORD: API endpoints implemented",
        ]
    );

    let checklist = steps[3].blocks.iter().find(|b| b.tag == "verification_checklist").unwrap();
    assert_eq!(checklist.items.len(), 5);
    assert!(checklist.items.iter().all(|i| i.checked == Some(false)));
    assert_eq!(checklist.items[0].text, "SvelteKit reaches the new API routes");
    let integration = steps[3].blocks.iter().find(|b| b.tag == "integration_tests").unwrap();
    assert_eq!(integration.items.len(), 5);
}

#[test]
fn the_default_workflow_feedback_and_activity_log_blocks_are_structured() {
    let file = parse(&default_workflow()).file;
    let step = file.steps().find(|s| s.number == "4").unwrap();
    let feedback = step.blocks.iter().find(|b| b.tag == "feedback_collection").unwrap();
    let agents: Vec<(&str, usize)> =
        feedback.children.iter().map(|b| (b.attributes["name"].as_str(), b.items.len())).collect();
    assert_eq!(agents, vec![("cloudflare-specialist", 4), ("sveltekit-specialist", 4)]);
    let log = step.blocks.iter().find(|b| b.tag == "activity_log").unwrap();
    assert_eq!(log.directives[0].keyword, "CREATE");
    assert_eq!(log.directives[0].value, ".agent-os/logs/task-summary-[timestamp].md");
    assert_eq!(log.directives[1].keyword, "CONTENT");
    assert_eq!(
        log.directives[1].items,
        vec![
            "Task objectives",
            "Agents involved",
            "Work completed by each agent",
            "Integration points",
            "Performance metrics",
            "Outstanding issues"
        ]
    );
}

#[test]
fn the_default_workflow_test_categories_nest() {
    let file = parse(&default_workflow()).file;
    let step = file.steps().find(|s| s.number == "5").unwrap();
    let categories = &step.blocks[0];
    assert_eq!(categories.tag, "test_categories");
    let nested: Vec<(&str, usize)> = categories.children.iter().map(|b| (b.tag.as_str(), b.items.len())).collect();
    assert_eq!(nested, vec![("unit_tests", 3), ("integration_tests", 3), ("e2e_tests", 3), ("performance_tests", 4)]);
}

#[test]
fn code_examples_in_blocks_and_after_the_flow_stay_text() {
    let text = "# T\n\n<process_flow>\n<step number=\"1\" name=\"docs\">\n\n<code_documentation>\n  ```typescript\n  /**\n   * @module UserAuthentication\n   * <b>not a block</b>\n   */\n  ```\n</code_documentation>\n\n</step>\n</process_flow>\n\n## Dynamic Agent Selection\n\n```xml\n<step subagent=\"auto-select\" requirements=\"database,d1\">\n  <!-- Automatically selects a specialist -->\n</step>\n```\n";
    let parsed = parse(text);
    assert_eq!(parsed.problems, vec![]);
    let file = parsed.file;
    let step = file.steps().next().unwrap();
    let code = step.blocks.iter().find(|b| b.tag == "code_documentation").unwrap();
    assert!(code.text.contains("@module UserAuthentication"));
    assert!(code.children.is_empty());
    // The auto-select example after the flow is inside a fenced block: not a step.
    assert_eq!(file.steps().count(), 1);
}

#[test]
fn the_default_workflow_flight_checks_keep_their_references_and_summary_template() {
    let file = parse(&default_workflow()).file;
    let pre = file.pre_flight.as_ref().unwrap();
    assert_eq!(pre.executes, vec![".agent-os/instructions/meta/pre-flight.md"]);
    let post = file.post_flight.as_ref().unwrap();
    assert_eq!(post.executes, vec![".agent-os/instructions/meta/post-flight.md"]);
    let template = post.summary_template().unwrap();
    assert!(template.starts_with("## Task Completion Summary"));
    for section in
        ["Agents Used:", "Work Completed:", "Files Modified:", "Tests Passed:", "Performance Metrics:", "Next Steps:"]
    {
        assert!(template.contains(section), "{section}");
    }
    assert!(template.contains("- Unit: {count}"));
}

#[test]
fn step_numbers_like_2a_and_10_keep_their_order() {
    let steps: String = (1..=10).map(|n| format!("<step number=\"{n}\" name=\"s{n}\">x</step>\n")).collect();
    assert_eq!(flow_shape(&flow(&steps)), "1 2 3 4 5 6 7 8 9 10");
    assert_eq!(flow_shape(&flow("<step number=\"2b\">b</step><step number=\"2a\">a</step>")), "2b 2a");
}

#[test]
fn auto_select_steps_keep_their_requirements() {
    let parsed =
        parse(&flow(r#"<step number="1" subagent="auto-select" requirements="database, d1,,migrations ">x</step>"#));
    assert_eq!(parsed.problems, vec![]);
    let step = parsed.file.steps().next().unwrap();
    assert_eq!(step.requirements, vec!["database", "d1", "migrations"]);
}

#[test]
fn extra_attributes_are_kept_and_parallel_on_a_step_joins_the_next_step() {
    let text = flow(
        r#"<step number="1" conditional="true" priority="high">a</step>
<step number="2" parallel="true">b</step>
<step number="3">c</step>
<step number="4" parallel="true">d</step>
<step number="5" parallel="true">e</step>
<step number="6">f</step>
<step number="7" parallel="true">g</step>"#,
    );
    assert_eq!(flow_shape(&text), "1 [2 3] [4 5 6] 7");
    let file = parse(&text).file;
    let first = file.steps().next().unwrap();
    assert!(first.flag("conditional"));
    assert_eq!(first.attributes["priority"], "high");
}

#[test]
fn headings_between_steps_become_the_phase_of_the_steps_after_them() {
    let text = flow("## Phase 1: Setup\n<step number=\"1\">\n### Step 1: Prepare\nDo it.\n</step>\n## Phase 2: Build\n<step number=\"2\">x</step>");
    let file = parse(&text).file;
    let steps: Vec<(Option<&str>, Option<&str>)> =
        file.steps().map(|s| (s.phase.as_deref(), s.title.as_deref())).collect();
    assert_eq!(steps, vec![(Some("Phase 1: Setup"), Some("Step 1: Prepare")), (Some("Phase 2: Build"), None)]);
}

#[test]
fn agent_os_style_nested_blocks_and_placeholders_are_read() {
    let text = flow(
        r#"<step number="1" name="git_commit" subagent="git-workflow">
<instructions>
  ACTION: Use git-workflow subagent
  REQUEST: "Commit with --branch=<branch-name> and --message=<text>"
  WAIT: For completion
</instructions>
<conditional-block task-condition="spec-exists">
  IF peer.spec.<spec-name> exists:
    USE: it
</conditional-block>
<decision_tree>
  <if_running>
    - keep it
  </if_running>
  <file_template>
    ## Heading inside a template
    - [ ] a box
  </file_template>
</decision_tree>
</step>"#,
    );
    let parsed = parse(&text);
    assert_eq!(parsed.problems, vec![]);
    let step = parsed.file.steps().next().unwrap();
    let tags: Vec<&str> = step.blocks.iter().map(|b| b.tag.as_str()).collect();
    assert_eq!(tags, vec!["instructions", "conditional-block", "decision_tree"]);
    let keywords: Vec<&str> = step.blocks[0].directives.iter().map(|d| d.keyword.as_str()).collect();
    assert_eq!(keywords, vec!["ACTION", "REQUEST", "WAIT"]);
    assert!(step.blocks[0].directives[1].value.contains("--branch=<branch-name>"));
    assert_eq!(step.blocks[1].attributes["task-condition"], "spec-exists");
    assert_eq!(step.blocks[1].directives[0].value, "peer.spec.<spec-name> exists");
    let tree = &step.blocks[2];
    assert_eq!(tree.children[0].tag, "if_running");
    assert_eq!(tree.children[1].items, vec![Item { text: "a box".into(), checked: Some(false) }]);
}

#[test]
fn unknown_tags_are_kept_as_blocks() {
    let file = parse(&flow("<step number=\"1\"><mystery kind=\"x\">- one</mystery></step>")).file;
    let block = &file.steps().next().unwrap().blocks[0];
    assert_eq!(block.tag, "mystery");
    assert_eq!(block.attributes["kind"], "x");
    assert_eq!(block.items[0].text, "one");
}

#[test]
fn every_structural_problem_is_reported_with_its_position() {
    check_problems(
        "# T\n<process_flow>\n<step number=\"1\">\nx\n</process_flow>\n",
        &["3:1 error <step> is never closed"],
    );
    check_problems(
        "<process_flow>\n</step>\n<step number=\"1\">x</step>\n</process_flow>",
        &["2:1 error </step> closes a tag that is not open"],
    );
    check_problems(
        "<process_flow>\n<step number=\"1\">a</step>\n  <step number=\"1\">b</step>\n</process_flow>",
        &["3:3 error step number 1 is used twice (first on line 2)"],
    );
    check_problems(
        "<process_flow>\n<parallel_execution>\n<parallel_execution><step number=\"1\">a</step></parallel_execution>\n</parallel_execution>\n</process_flow>",
        &[
            "2:1 error <parallel_execution> has no <step>",
            "3:1 error <parallel_execution> cannot be nested inside another",
        ],
    );
    check_problems(
        "<step number=\"1\">a</step>\n<process_flow>\n<step number=\"2\">b</step>\n</process_flow>",
        &["1:1 error <step> must be inside <process_flow>"],
    );
    check_problems("# T\n<process_flow>\n</process_flow>", &["2:1 error the process flow has no steps"]);
    check_problems("# Just a title\n", &["1:1 error the file has no <process_flow>"]);
    check_problems("", &["1:1 error the file has no <process_flow>"]);
}

#[test]
fn all_problems_are_reported_at_once() {
    let text = "<process_flow>\n<step>a</step>\n<step number=\"x1\">b</step>\n<step number=\"3\" subagent=\"auto-select\">c</step>\n<step number=\"4\" subagent=\"Bad Name\">d</step>\n<step number=\"5\" requirements=\"a\">e</step>\n<step number=\"6\" name=\"has space\">f</step>\n<tasks>\n</process_flow>";
    check_problems(
        text,
        &[
            "2:1 error <step> has no number attribute",
            "3:1 error step number \"x1\" must be digits followed by optional letters, like 2a",
            "4:1 error subagent=\"auto-select\" needs requirements=\"a,b,...\"",
            "5:1 error subagent \"Bad Name\" is not a valid agent name (lowercase letters, digits and hyphens, at most 64)",
            "6:1 warning requirements are only used with subagent=\"auto-select\"",
            "7:1 error step name \"has space\" must be letters, digits, underscores or hyphens",
        ],
    );
}

#[test]
fn a_second_process_flow_and_misplaced_flight_checks_are_errors() {
    check_problems(
        "<process_flow><step number=\"1\">a</step></process_flow>\n<process_flow><step number=\"2\">b</step></process_flow>",
        &["2:1 error a file has one <process_flow>; this is a second one"],
    );
    check_problems(
        "<process_flow><step number=\"1\"><post_flight_check>x</post_flight_check></step></process_flow>",
        &["1:32 error <post_flight_check> must be at the top level of the file"],
    );
}

#[test]
fn columns_count_characters_not_bytes() {
    check_problems(
        "<process_flow>\néé </step>\n<step number=\"1\">a</step></process_flow>",
        &["2:4 error </step> closes a tag that is not open"],
    );
}

#[test]
fn positions_count_the_front_matter_lines() {
    check_problems(
        "---\na: 1\n---\n<process_flow>\n<step>x</step>\n</process_flow>",
        &["5:1 error <step> has no number attribute"],
    );
}

#[test]
fn too_many_steps_and_too_large_files_are_refused() {
    let steps: String = (1..=STEPS_MAX + 1).map(|n| format!("<step number=\"{n}\">x</step>\n")).collect();
    assert!(problems_of(&flow(&steps))
        .contains(&format!("1:1 error the file has {} steps; the limit is {STEPS_MAX}", STEPS_MAX + 1)));
    let huge = "x".repeat(INSTRUCTION_FILE_BYTES_MAX + 1);
    assert_eq!(
        problems_of(&huge),
        vec![format!(
            "1:1 error the file is {} bytes; the limit is {INSTRUCTION_FILE_BYTES_MAX}",
            INSTRUCTION_FILE_BYTES_MAX + 1
        )]
    );
}

#[test]
fn problems_are_capped_and_the_rest_counted() {
    let text = format!("<process_flow><step number=\"1\">a</step></process_flow>{}", "x</step>".repeat(500));
    let problems = problems_of(&text);
    assert_eq!(problems.len(), PROBLEMS_MAX + 1);
    assert!(problems[0].ends_with("</step> closes a tag that is not open"));
    assert!(problems[PROBLEMS_MAX].ends_with("400 more problems are not listed"), "{}", problems[PROBLEMS_MAX]);
    // Columns are still counted in characters along the one long line.
    assert!(problems[1].starts_with("1:64 "), "{}", problems[1]);
}

#[test]
fn blocks_serialise_without_empty_fields() {
    let file = parse(&flow("<step number=\"1\"><logging>\nRECORD: x\n</logging></step>")).file;
    let json = serde_json::to_value(&file.steps().next().unwrap().blocks[0]).unwrap();
    assert_eq!(
        json,
        json!({"tag": "logging", "directives": [{"keyword": "RECORD", "value": "x"}], "text": "RECORD: x"})
    );
}

#[test]
fn list_items_and_directives_are_recognised() {
    let cases: [(&str, Option<Item>); 7] = [
        ("- plain", Some(Item { text: "plain".into(), checked: None })),
        ("* star", Some(Item { text: "star".into(), checked: None })),
        ("12. numbered", Some(Item { text: "numbered".into(), checked: None })),
        ("- [ ] open", Some(Item { text: "open".into(), checked: Some(false) })),
        ("- [x] done", Some(Item { text: "done".into(), checked: Some(true) })),
        ("-not an item", None),
        ("12.5 not either", None),
    ];
    for (line, expected) in cases {
        assert_eq!(list_item(line), expected, "{line}");
    }
    let directives: [(&str, Option<(&str, &str)>); 6] = [
        ("ACTION: do it", Some(("ACTION", "do it"))),
        ("RECORD TYPE: x", Some(("RECORD TYPE", "x"))),
        ("IF task involves both:", Some(("IF", "task involves both"))),
        ("Note: lowercase is prose", None),
        ("A: single letter", None),
        ("IF no colon at the end", None),
    ];
    for (line, expected) in directives {
        let got = directive(line);
        assert_eq!(got.as_ref().map(|d| (d.keyword.as_str(), d.value.as_str())), expected, "{line}");
    }
}

/// A small deterministic generator, so the property test needs no dependency and replays.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        self.0 >> 33
    }
}

#[test]
fn arbitrary_input_never_panics() {
    // Fragments that stress every path: tags, quotes, fences, code spans, comments, multibyte.
    const FRAGMENTS: [&str; 24] = [
        "<process_flow>",
        "</process_flow>",
        "<step number=\"1\">",
        "<step number=\"1",
        "</step>",
        "<parallel_execution>",
        "</parallel_execution>",
        "<tasks>",
        "</tasks>",
        "- [ ] ",
        "ACTION: ",
        "```",
        "`",
        "<!--",
        "-->",
        "\n",
        "é",
        "<",
        ">",
        "\"",
        "---\n",
        "<x a='1'/>",
        "## Phase\n",
        "IF x:",
    ];
    let full = default_workflow();
    for case in 0..3000u64 {
        let mut rng = Lcg(case);
        let mut text = String::new();
        if case % 3 == 0 {
            // Splice fragments into a full instruction file at random character positions.
            let chars: Vec<char> = full.chars().collect();
            let cut = (rng.next() as usize) % chars.len();
            text.extend(&chars[..cut]);
            text.push_str(FRAGMENTS[(rng.next() as usize) % FRAGMENTS.len()]);
            text.extend(&chars[cut..]);
        }
        for _ in 0..(rng.next() % 40) {
            text.push_str(FRAGMENTS[(rng.next() as usize) % FRAGMENTS.len()]);
        }
        let parsed = parse(&text);
        for problem in &parsed.problems {
            assert!(problem.line >= 1 && problem.column >= 1, "case {case}: {problem:?}");
        }
    }
}

#[test]
fn parsing_a_full_file_is_fast_enough_to_do_on_every_request() {
    // Not a benchmark (npm run bench measures it): a guard against an accidental quadratic.
    let big = default_workflow().repeat(30);
    let parsed = parse(&big);
    assert!(parsed.problems.iter().any(|p| p.message.contains("second one")));
}

#[test]
fn a_step_executes_another_file_in_each_form_agent_os_writes_as_a_table() {
    // (step body, expected path, expected line within the file, expected loop)
    let cases: [(&str, Option<&str>, u32, Option<&str>); 8] = [
        (
            "Execute each task using @child.md.\n<flow>\nFOR each task:\n  EXECUTE instructions from child.md\nEND FOR\n</flow>",
            Some("child.md"),
            6,
            Some("task"),
        ),
        ("EXECUTE: @.agent-os/instructions/core/child.md", Some(".agent-os/instructions/core/child.md"), 6, None),
        ("Run it.\n<flow>\nEXECUTE @child.md now.\n</flow>", Some("child.md"), 8, None),
        (
            "<flow>\n  LOAD @.agent-os/instructions/core/child.md ONCE\n\n  FOR each parent_task assigned in Step 1:\n    EXECUTE instructions from child.md with:\n      - parent_task_number\n  END FOR\n</flow>",
            Some(".agent-os/instructions/core/child.md"),
            10,
            Some("parent_task assigned in Step 1"),
        ),
        (
            "<instructions>\n  LOAD: @.agent-os/instructions/core/child.md once\n  ACTION: execute all steps in the child.md process_flow.\n</instructions>",
            Some(".agent-os/instructions/core/child.md"),
            8,
            None,
        ),
        ("<prompt>\n  @.agent-os/instructions/core/child.md\n</prompt>\nACTION: Execute child.md with what you gathered", Some(".agent-os/instructions/core/child.md"), 9, None),
        ("IF yes:\n  REFERENCE: @.agent-os/instructions/core/child.md\nACTION: Execute child.md", None, 0, None),
        ("ACTION: Execute sub-tasks in their defined order", None, 0, None),
    ];
    for (body, path, line, each) in cases {
        let text = flow(&format!("<step number=\"1\" name=\"run_child\">\n\n{body}\n</step>"));
        let parsed = parse(&text);
        let step = parsed.file.steps().next().expect("one step");
        let found = step.execute.as_ref();
        assert_eq!(found.map(|e| e.path.as_str()), path, "{body}");
        if let Some(found) = found {
            assert_eq!(found.line, Some(line), "{body}");
            assert_eq!(found.each.as_deref(), each, "{body}");
        }
    }
}
