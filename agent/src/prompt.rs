//! The step as a person (or a coding agent) reads it: a markdown prompt made from the leased
//! step's instructions, the reports of the steps it depends on, and the messages sent to the
//! agent about its task. The command gets it on stdin and as a file.

use serde_json::Value;

fn text<'a>(value: &'a Value, field: &str) -> Option<&'a str> {
    value.get(field).and_then(Value::as_str).filter(|s| !s.trim().is_empty())
}

/// `feedback_collection` → "Feedback collection".
fn heading_of(tag: &str) -> String {
    let words = tag.replace(['_', '-'], " ");
    let mut chars = words.chars();
    chars.next().map(|c| c.to_uppercase().chain(chars).collect()).unwrap_or_default()
}

fn render_block(block: &Value, depth: usize, out: &mut String) {
    let hashes = "#".repeat((2 + depth).min(6));
    out.push_str(&format!("\n{hashes} {}\n\n", heading_of(text(block, "tag").unwrap_or("block"))));
    if let Some(body) = text(block, "text") {
        out.push_str(body.trim_end());
        out.push_str("\n\n");
    }
    for item in block.get("items").and_then(Value::as_array).into_iter().flatten() {
        let mark = match item.get("checked").and_then(Value::as_bool) {
            Some(true) => "[x] ",
            Some(false) => "[ ] ",
            None => "",
        };
        out.push_str(&format!("- {mark}{}\n", text(item, "text").unwrap_or("")));
    }
    for directive in block.get("directives").and_then(Value::as_array).into_iter().flatten() {
        out.push_str(&format!(
            "{}: {}\n",
            text(directive, "keyword").unwrap_or(""),
            directive.get("value").and_then(Value::as_str).unwrap_or("")
        ));
        for item in directive.get("items").and_then(Value::as_array).into_iter().flatten() {
            out.push_str(&format!("  - {}\n", item.as_str().unwrap_or("")));
        }
    }
    for child in block.get("children").and_then(Value::as_array).into_iter().flatten() {
        render_block(child, depth + 1, out);
    }
}

fn strings(value: &Value) -> Vec<&str> {
    value.as_array().map_or_else(Vec::new, |items| items.iter().filter_map(Value::as_str).collect())
}

fn bullets(out: &mut String, items: &[&str]) {
    for item in items {
        out.push_str(&format!("- {item}\n"));
    }
}

/// How the prompt is rendered for the tool that reads it.
#[derive(Clone, Copy, Default)]
pub struct Options<'a> {
    /// Whether the agent's system prompt (an imported subagent file's body) goes into the
    /// prompt. Tools that take a system prompt of their own get it that way instead.
    pub system_prompt_inline: bool,
    /// Where the report goes, named in the prompt: a coding agent may not expand
    /// `$SWITCHYARD_REPORT_FILE` itself (Claude Code refuses shell commands whose variables it
    /// cannot check), so it is given the path.
    pub report_file: Option<&'a std::path::Path>,
}

/// The prompt for a leased step (the `step` object of a lease response).
pub fn render(step: &Value, options: Options<'_>) -> String {
    let instructions = step.get("instructions").unwrap_or(&Value::Null);
    let title = text(instructions, "title").or_else(|| text(step, "name")).unwrap_or("Step");
    let mut out = format!("# {title}\n\n");
    out.push_str(&format!(
        "Task `{}`, step {} (`{}`), for agent `{}`, attempt {} of {}.\n",
        text(step, "task_id").unwrap_or("?"),
        text(step, "key").unwrap_or("?"),
        text(step, "name").unwrap_or("?"),
        text(step, "agent").unwrap_or("?"),
        step.get("attempt").and_then(Value::as_u64).unwrap_or(0),
        step.get("attempts_max").and_then(Value::as_u64).unwrap_or(0),
    ));
    render_task(step.get("task").unwrap_or(&Value::Null), &mut out);
    render_workflow(step.get("workflow").unwrap_or(&Value::Null), &mut out);
    render_agent(step.get("agent_profile"), options, &mut out);
    out.push_str("\n## This step\n");
    if let Some(phase) = text(instructions, "phase") {
        out.push_str(&format!("\nPhase: {phase}.\n"));
    }
    if let Some(body) = text(instructions, "text") {
        out.push('\n');
        out.push_str(body.trim_end());
        out.push('\n');
    }
    for block in instructions.get("blocks").and_then(Value::as_array).into_iter().flatten() {
        render_block(block, 0, &mut out);
    }
    render_conditions(instructions, &mut out);
    render_child_run(instructions, &mut out);
    render_rules(instructions, &mut out);
    render_inputs(step, &mut out);
    render_messages(step, &mut out);
    render_contract(step.get("report_contract").unwrap_or(&Value::Null), options.report_file, &mut out);
    out
}

fn render_task(task: &Value, out: &mut String) {
    let Some(title) = text(task, "title") else { return };
    out.push_str(&format!("\n## The task: {title}\n\n"));
    if let Some(description) = text(task, "description") {
        out.push_str(description.trim_end());
        out.push_str("\n\n");
    }
    let requirements = strings(&task["requirements"]);
    if !requirements.is_empty() {
        out.push_str("Requirements:\n");
        bullets(out, &requirements);
        out.push('\n');
    }
    let paths = strings(&task["paths"]);
    if !paths.is_empty() {
        out.push_str("Paths it concerns:\n");
        bullets(out, &paths);
        out.push('\n');
    }
    if let Some(task_type) = text(task, "task_type") {
        let agents = strings(&task["agents"]);
        out.push_str(&format!(
            "Analysis: a {task_type} task{}.\n",
            if agents.is_empty() { String::new() } else { format!(" for {}", agents.join(" and ")) }
        ));
        bullets(out, &strings(&task["reasons"]));
    }
}

fn step_line(line: &Value) -> String {
    format!(
        "{} ({}{}{})",
        text(line, "key").unwrap_or("?"),
        text(line, "name").unwrap_or("?"),
        text(line, "agent").map(|a| format!(", {a}")).unwrap_or_default(),
        if line["skipped"] == true { ", skipped" } else { "" }
    )
}

fn render_workflow(workflow: &Value, out: &mut String) {
    let Some(name) = text(workflow, "name") else { return };
    let version = workflow.get("version").and_then(Value::as_i64).unwrap_or(0);
    out.push_str(&format!(
        "\n## The workflow: {}\n\n`{name}` version {version}.",
        text(workflow, "title").unwrap_or(name)
    ));
    for field in ["description", "overview"] {
        if let Some(body) = text(workflow, field) {
            out.push_str(&format!(" {}", body.trim()));
        }
    }
    out.push('\n');
    let here = &workflow["step"];
    out.push_str(&format!(
        "\nThis is step {} of the workflow's {} (position {}).\n",
        text(here, "key").unwrap_or("?"),
        here.get("of").and_then(Value::as_u64).unwrap_or(0),
        here.get("position").and_then(Value::as_u64).unwrap_or(0),
    ));
    for (label, field) in [("Before it", "before"), ("After it", "after")] {
        let lines: Vec<String> = workflow[field].as_array().into_iter().flatten().map(step_line).collect();
        if !lines.is_empty() {
            out.push_str(&format!("{label}: {}.\n", lines.join("; ")));
        }
    }
}

fn render_agent(agent: Option<&Value>, options: Options<'_>, out: &mut String) {
    let Some(agent) = agent else { return };
    let name = text(agent, "name").unwrap_or("?");
    out.push_str(&format!("\n## You: {name}\n\n"));
    if let Some(description) = text(agent, "description") {
        out.push_str(&format!("{}\n", description.trim_end()));
    }
    if options.system_prompt_inline {
        if let Some(prompt) = text(agent, "system_prompt") {
            out.push('\n');
            out.push_str(prompt.trim_end());
            out.push('\n');
        }
    }
}

/// The conditions switchyard leaves to the agent, and what to do when one says to skip.
fn render_conditions(instructions: &Value, out: &mut String) {
    let conditions = instructions.get("conditions").and_then(Value::as_array).filter(|c| !c.is_empty());
    let Some(conditions) = conditions else { return };
    out.push_str(
        "
### Conditions for you to judge

",
    );
    for condition in conditions {
        let lead = match text(condition, "when") {
            Some("skip_unless") => "Skip this step unless",
            Some("run_if") => "Do this step only if",
            _ => "Skip this step if",
        };
        out.push_str(&format!("- {lead}: {}\n", text(condition, "text").unwrap_or("?")));
    }
    out.push_str(
        "\nIf one says to skip, do none of the step's work and complete it with `notes` naming the condition and \
         why it holds.\n",
    );
}

/// Where a step of a child run stands: the file it belongs to and the step that runs it.
fn render_child_run(instructions: &Value, out: &mut String) {
    let run = &instructions["child_run"];
    let Some(workflow) = text(run, "workflow") else { return };
    let parent = &run["step"];
    out.push_str(&format!(
        "\n## Part of a child run\n\nThis step belongs to `{workflow}` version {}, which step {} (`{}`) of the task's \
         workflow runs",
        run.get("version").and_then(Value::as_i64).unwrap_or(0),
        text(parent, "key").unwrap_or("?"),
        text(parent, "name").unwrap_or("?"),
    ));
    match text(run, "each") {
        Some(each) if instructions.get("loop").is_none() => {
            out.push_str(&format!(" for each {each}: work through every one of them in turn.\n"))
        }
        _ => out.push_str(".\n"),
    }
    // The loop this step's run is one item of, then any loop around that one.
    let mut item = instructions.get("loop").filter(|l| l.is_object());
    while let Some(part) = item {
        out.push_str(&format!(
            "\nThis run is for item {} of {} of step {}'s loop over each {}; do this step for it alone:\n\n{}\n",
            part.get("number").and_then(Value::as_u64).unwrap_or(0),
            part.get("of").and_then(Value::as_u64).unwrap_or(0),
            text(part, "step").unwrap_or("?"),
            text(part, "each").unwrap_or("item"),
            match part.get("item") {
                Some(Value::String(text)) => text.clone(),
                other => format!("```json\n{}\n```", serde_json::to_string_pretty(&other).unwrap_or_default()),
            }
        ));
        item = part.get("outer").filter(|l| l.is_object());
    }
    if let Some(body) = text(parent, "text") {
        out.push_str(&format!("\nWhat step {} says:\n\n{}\n", text(parent, "key").unwrap_or("?"), body.trim_end()));
    }
    for block in parent.get("blocks").and_then(Value::as_array).into_iter().flatten() {
        render_block(block, 1, out);
    }
}

/// The rules files the workflow's flight checks attach to this step, whole.
fn render_rules(instructions: &Value, out: &mut String) {
    for rules in instructions.get("rules").and_then(Value::as_array).into_iter().flatten() {
        let check = if text(rules, "check") == Some("post_flight") { "Post-flight" } else { "Pre-flight" };
        out.push_str(&format!(
            "\n## {check} rules (`{}` version {})\n\n{}\n",
            text(rules, "name").unwrap_or("?"),
            rules.get("version").and_then(Value::as_i64).unwrap_or(0),
            text(rules, "text").unwrap_or("").trim_end()
        ));
    }
}

fn render_report(input: &Value, out: &mut String) {
    match (input.get("report"), text(input, "reason")) {
        (Some(report), _) if !report.is_null() => {
            let pretty = serde_json::to_string_pretty(report).unwrap_or_default();
            out.push_str(&format!("```json\n{pretty}\n```\n"));
        }
        (_, Some(reason)) => out.push_str(&format!("Skipped: {reason}\n")),
        _ => out.push_str("No report.\n"),
    }
}

/// An input's step name, and how it ended and by whom (`succeeded by test-runner`).
fn outcome_of(input: &Value) -> (&str, String) {
    let by = text(input, "agent").map(|a| format!(" by {a}")).unwrap_or_default();
    (text(input, "step").unwrap_or("?"), format!("{}{by}", text(input, "status").unwrap_or("?")))
}

fn render_inputs(step: &Value, out: &mut String) {
    let Some(inputs) = step.get("inputs").and_then(Value::as_object).filter(|m| !m.is_empty()) else { return };
    out.push_str("\n## What earlier steps reported\n");
    for (key, input) in inputs {
        let (name, outcome) = outcome_of(input);
        out.push_str(&format!("\n### Step {key} ({name}): {outcome}\n\n"));
        // A step that ran a child run reports through the steps of that run.
        match input.get("child_run").and_then(Value::as_object) {
            Some(children) => {
                for (child_key, child) in children {
                    let (name, outcome) = outcome_of(child);
                    out.push_str(&format!("Step {child_key} ({name}) of its child run: {outcome}\n\n"));
                    render_report(child, out);
                    out.push('\n');
                }
            }
            None => render_report(input, out),
        }
    }
}

fn render_messages(step: &Value, out: &mut String) {
    let Some(messages) = step.get("messages").and_then(Value::as_array).filter(|m| !m.is_empty()) else { return };
    out.push_str("\n## Messages to you about this task\n\n");
    for message in messages {
        let payload = message.get("payload").map(Value::to_string).unwrap_or_default();
        out.push_str(&format!(
            "- {} from {} (correlation id `{}`): {payload}\n",
            text(message, "type").unwrap_or("message"),
            text(message, "from").unwrap_or("?"),
            text(message, "correlation_id").unwrap_or("?"),
        ));
    }
}

/// The report switchyard reads for this step, as a JSON skeleton with the names the step's
/// contract gives, so the agent fills in values rather than guessing field names.
fn render_contract(contract: &Value, report_file: Option<&std::path::Path>, out: &mut String) {
    let target = match report_file {
        Some(path) => {
            format!("the file `{}` (also named by the environment variable `SWITCHYARD_REPORT_FILE`)", path.display())
        }
        None => "the file named by the environment variable `SWITCHYARD_REPORT_FILE`".to_string(),
    };
    out.push_str(&format!(
        "\n## Reporting\n\nWhen you are done, write what you did as one JSON object to {target}. Files and lines \
         changed are measured from git; your output is kept as the step's log. Exit 0 when the step succeeded.\n"
    ));
    let mut skeleton = serde_json::Map::new();
    let named = |field: &str, value: Value| -> Option<(String, Value)> {
        let names = strings(&contract[field]);
        (!names.is_empty())
            .then(|| (field.to_string(), Value::Object(names.iter().map(|n| (n.to_string(), value.clone())).collect())))
    };
    for (field, value) in [
        named("records", serde_json::json!(["what you did for this record"])),
        named("feedback", serde_json::json!(["what you did in this category"])),
    ]
    .into_iter()
    .flatten()
    {
        skeleton.insert(field, value);
    }
    let checklist = strings(&contract["checklist"]);
    if !checklist.is_empty() {
        let items = checklist
            .iter()
            .map(|item| serde_json::json!({"item": item, "passed": true, "evidence": "how you checked"}))
            .collect();
        skeleton.insert("checklist".into(), Value::Array(items));
    }
    if let Some(kinds) = contract["tests"].as_object().filter(|k| !k.is_empty()) {
        let counts = kinds.keys().map(|k| (k.clone(), serde_json::json!({"passed": 0, "failed": 0, "skipped": 0})));
        skeleton.insert("tests".into(), Value::Object(counts.collect()));
    }
    if let Some(selection) = contract.get("selection").filter(|s| s.is_object()) {
        let agents = strings(&selection["agents"]);
        let types = strings(&selection["task_types"]);
        out.push_str(&format!(
            "\nThis step decides which specialists the task needs. Under `selection`, list the ones it needs among \
             {}, the task's type (one of {}) and why; the optional steps of the others are skipped.\n",
            agents.join(", "),
            types.join(", ")
        ));
        skeleton.insert(
            "selection".into(),
            serde_json::json!({"agents": agents, "task_type": types.first().copied().unwrap_or(""), "reason": "why these"}),
        );
    }
    if let Some(items) = contract.get("items").filter(|s| s.is_object()) {
        out.push_str(&format!(
            "\nStep {} runs `{}` once for each {} that this step finds. List them under `items`, one entry \
             (text, or an object) per run, in the order they are to run; an empty list skips step {}.\n",
            text(items, "for_step").unwrap_or("?"),
            text(items, "workflow").unwrap_or("?"),
            text(items, "each").unwrap_or("item"),
            text(items, "for_step").unwrap_or("?"),
        ));
        skeleton.insert("items".into(), serde_json::json!(["the first item", "the next"]));
    }
    skeleton.insert("performance".into(), serde_json::json!({"metric_name": 0}));
    skeleton.insert("outstanding_issues".into(), serde_json::json!([]));
    skeleton.insert("next_steps".into(), serde_json::json!([]));
    skeleton.insert("notes".into(), Value::from("anything else the next steps should know"));
    if let Some(step) = text(contract, "feedback_for") {
        out.push_str(&format!("\nStep {step} gathers the `feedback` categories below from your report.\n"));
    }
    for (label, field) in [("Test what these say and count the results", "tests")] {
        for (kind, items) in contract[field].as_object().into_iter().flatten() {
            let items = strings(items);
            if !items.is_empty() {
                out.push_str(&format!("\n{label} under `tests.{kind}`:\n"));
                bullets(out, &items);
            }
        }
    }
    let measure = strings(&contract["performance"]);
    if !measure.is_empty() {
        out.push_str("\nMeasure these and report each as a number under `performance` (snake_case names):\n");
        bullets(out, &measure);
    }
    let pretty = serde_json::to_string_pretty(&Value::Object(skeleton)).unwrap_or_default();
    out.push_str(&format!(
        "\nThe report, with every field switchyard reads for this step:\n\n```json\n{pretty}\n```\n"
    ));
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn leased() -> Value {
        json!({
            "task_id": "tsk_1", "key": "2a", "name": "backend_implementation", "agent": "cloudflare-specialist",
            "attempt": 1, "attempts_max": 3,
            "task": {"id": "tsk_1", "title": "Add a password reset flow by email",
                     "description": "Users who forgot their password get a link by email.",
                     "requirements": ["links expire after an hour"], "paths": ["src/routes/reset"],
                     "task_type": "full-stack", "agents": ["cloudflare-specialist", "sveltekit-specialist"],
                     "reasons": ["API endpoints (description: \"email\")"]},
            "workflow": {"name": "enhanced-multi-agent", "version": 2, "title": "Enhanced Multi-Agent Task Execution",
                         "overview": "Analyse, build in parallel, verify, test, document.",
                         "step": {"key": "2a", "position": 2, "of": 7},
                         "before": [{"key": "1", "name": "task_analysis", "agent": "context-fetcher", "skipped": false}],
                         "after": [{"key": "2b", "name": "frontend_implementation", "agent": "sveltekit-specialist", "skipped": true}]},
            "agent_profile": {"name": "cloudflare-specialist", "description": "Builds Workers.",
                              "system_prompt": "You are a careful Workers engineer."},
            "instructions": {
                "title": "Step 2a: Backend", "phase": "Phase 2: Build", "text": "Build the API.",
                "blocks": [{"tag": "backend_tasks", "items": [{"text": "D1 schema"}, {"text": "routes", "checked": false}],
                            "directives": [{"keyword": "RECORD", "value": "Endpoints created", "items": []}],
                            "children": [{"tag": "kv_usage", "text": "Cache sessions."}]}]
            },
            "inputs": {"1": {"step": "task_analysis", "status": "succeeded", "agent": "context-fetcher",
                             "report": {"notes": "read the routes"}}},
            "messages": [{"type": "query", "from": "sveltekit-specialist", "correlation_id": "c-1",
                          "payload": {"question": "KV key?"}}],
            "report_contract": {"records": ["Endpoints created"], "feedback": ["Services configured"], "feedback_for": "4",
                                "checklist": ["Routes answer"], "tests": {"unit": ["API route tests"]},
                                "performance": ["Bundle size"], "always": []}
        })
    }

    #[test]
    fn a_step_of_a_child_run_renders_its_rules_conditions_parent_step_and_the_child_runs_reports() {
        let mut step = leased();
        step["instructions"]["rules"] = json!([
            {"check": "pre_flight", "name": "pre-flight", "version": 2, "text": "# Rules\n\n- Use the subagents named."},
            {"check": "post_flight", "name": "post-flight", "version": 1, "text": "- Say what you did not do."}
        ]);
        step["instructions"]["conditions"] = json!([
            {"text": "mission-lite.md is already in context", "when": "skip_if", "evaluated_by": "agent"},
            {"text": "the user approved the plan", "when": "run_if", "evaluated_by": "agent"}
        ]);
        step["instructions"]["child_run"] = json!({
            "step": {"key": "4", "name": "task_execution_loop", "title": "Step 4", "text": "Execute every assigned task.", "blocks": []},
            "workflow": "execute-task", "version": 3, "each": "parent_task assigned in Step 1"
        });
        let mut one_item = step.clone();
        step["inputs"] = json!({"4": {"step": "task_execution_loop", "status": "succeeded", "child_run": {
            "4.1": {"step": "task_understanding", "status": "succeeded", "agent": "main-agent", "report": {"notes": "understood"}},
            "4.2": {"step": "best_practices_review", "status": "skipped", "reason": "routing left it out"}
        }}});
        step["report_contract"]["selection"] =
            json!({"agents": ["api-engineer", "ui-engineer"], "task_types": ["frontend", "backend"]});
        let prompt = render(&step, Options::default());
        for expected in [
            "## Pre-flight rules (`pre-flight` version 2)\n\n# Rules\n\n- Use the subagents named.\n",
            "## Post-flight rules (`post-flight` version 1)\n\n- Say what you did not do.\n",
            "### Conditions for you to judge\n\n- Skip this step if: mission-lite.md is already in context\n- Do this step only if: the user approved the plan\n",
            "This step belongs to `execute-task` version 3, which step 4 (`task_execution_loop`) of the task's workflow runs for each parent_task assigned in Step 1: work through every one of them in turn.",
            "What step 4 says:\n\nExecute every assigned task.\n",
            "Step 4.1 (task_understanding) of its child run: succeeded by main-agent\n\n```json\n{\n  \"notes\": \"understood\"\n}\n```\n",
            "Step 4.2 (best_practices_review) of its child run: skipped\n\nSkipped: routing left it out\n",
            "Under `selection`, list the ones it needs among api-engineer, ui-engineer, the task's type (one of frontend, backend) and why",
            "\"selection\": {\n    \"agents\": [\n      \"api-engineer\",\n      \"ui-engineer\"\n    ],",
        ] {
            assert!(prompt.contains(expected), "missing {expected:?} in:\n{prompt}");
        }
        one_item["instructions"]["loop"] = json!({"step": "4", "each": "parent_task assigned in Step 1", "item": "2. Comments API", "number": 2, "of": 3});
        let prompt = render(&one_item, Options::default());
        let expected = "This run is for item 2 of 3 of step 4's loop over each parent_task assigned in Step 1; do \
                        this step for it alone:\n\n2. Comments API\n";
        assert!(prompt.contains(expected), "missing {expected:?} in:\n{prompt}");
        assert!(!prompt.contains("work through every one of them"), "{prompt}");
        one_item["instructions"]["loop"]["outer"] =
            json!({"step": "2", "each": "spec", "item": {"spec": "csv-export"}, "number": 1, "of": 2});
        let prompt = render(&one_item, Options::default());
        let outer = "This run is for item 1 of 2 of step 2's loop over each spec; do this step for it alone:\n\n\
                     ```json\n{\n  \"spec\": \"csv-export\"\n}\n```\n";
        assert!(prompt.contains(outer), "missing {outer:?} in:\n{prompt}");
    }

    #[test]
    fn the_step_a_loop_reads_from_is_asked_to_list_its_items() {
        let mut step = leased();
        step["report_contract"]["items"] =
            json!({"for_step": "5", "each": "parent_task assigned in Step 1", "workflow": "execute-task"});
        let prompt = render(&step, Options::default());
        let expected = "Step 5 runs `execute-task` once for each parent_task assigned in Step 1 that this step finds. \
                        List them under `items`";
        assert!(prompt.contains(expected), "missing {expected:?} in:\n{prompt}");
        assert!(prompt.contains("\"items\": [\n    \"the first item\","), "{prompt}");
        assert!(!render(&leased(), Options::default()).contains("`items`"));
    }

    #[test]
    fn a_step_renders_the_task_the_workflow_the_agent_its_instructions_inputs_and_messages() {
        let prompt = render(&leased(), Options::default());
        for expected in [
            "# Step 2a: Backend\n",
            "Task `tsk_1`, step 2a (`backend_implementation`), for agent `cloudflare-specialist`, attempt 1 of 3.",
            "## The task: Add a password reset flow by email\n\nUsers who forgot their password get a link by email.",
            "Requirements:\n- links expire after an hour\n",
            "Paths it concerns:\n- src/routes/reset\n",
            "Analysis: a full-stack task for cloudflare-specialist and sveltekit-specialist.",
            "## The workflow: Enhanced Multi-Agent Task Execution\n\n`enhanced-multi-agent` version 2. Analyse, build",
            "This is step 2a of the workflow's 7 (position 2).",
            "Before it: 1 (task_analysis, context-fetcher).",
            "After it: 2b (frontend_implementation, sveltekit-specialist, skipped).",
            "## You: cloudflare-specialist\n\nBuilds Workers.",
            "Phase: Phase 2: Build.",
            "## Backend tasks\n\n- D1 schema\n- [ ] routes\nRECORD: Endpoints created\n",
            "### Kv usage\n\nCache sessions.",
            "### Step 1 (task_analysis): succeeded by context-fetcher",
            "\"notes\": \"read the routes\"",
            "- query from sveltekit-specialist (correlation id `c-1`): {\"question\":\"KV key?\"}",
            "SWITCHYARD_REPORT_FILE",
        ] {
            assert!(prompt.contains(expected), "{expected:?} missing from\n{prompt}");
        }
        assert!(!prompt.contains("careful Workers engineer"), "the system prompt goes to the tool, not the prompt");
    }

    #[test]
    fn the_system_prompt_is_inline_when_the_tool_takes_none_of_its_own() {
        let prompt = render(&leased(), Options { system_prompt_inline: true, report_file: None });
        assert!(prompt.contains("Builds Workers.\n\nYou are a careful Workers engineer.\n"), "{prompt}");
    }

    #[test]
    fn the_report_file_is_named_by_its_path_when_the_runner_knows_it() {
        let path = std::path::Path::new("/tmp/step/report.json");
        let prompt = render(&leased(), Options { system_prompt_inline: false, report_file: Some(path) });
        assert!(prompt.contains("to the file `/tmp/step/report.json` (also named by"), "{prompt}");
    }

    #[test]
    fn the_report_skeleton_names_every_field_the_contract_asks_for() {
        let prompt = render(&leased(), Options::default());
        let start = prompt.rfind("```json\n").expect("a skeleton") + 8;
        let end = prompt[start..].find("\n```").expect("closed") + start;
        let skeleton: Value = serde_json::from_str(&prompt[start..end]).expect("the skeleton is JSON");
        assert!(skeleton["records"]["Endpoints created"].is_array());
        assert!(skeleton["feedback"]["Services configured"].is_array());
        assert_eq!(skeleton["checklist"][0]["item"], json!("Routes answer"));
        assert_eq!(skeleton["tests"]["unit"], json!({"passed": 0, "failed": 0, "skipped": 0}));
        assert!(prompt.contains("Step 4 gathers the `feedback` categories"));
        assert!(prompt.contains("Test what these say and count the results under `tests.unit`:\n- API route tests\n"));
        assert!(prompt.contains("Measure these and report each as a number under `performance`"));
    }

    #[test]
    fn a_bare_step_still_renders() {
        let prompt = render(&json!({"name": "only"}), Options::default());
        assert!(prompt.starts_with("# only\n"));
        assert!(!prompt.contains("earlier steps"));
        assert!(!prompt.contains("## The task"));
    }
}
