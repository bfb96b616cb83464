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

/// The prompt for a leased step (the `step` object of a lease response).
pub fn render(step: &Value) -> String {
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
    if let Some(phase) = text(instructions, "phase") {
        out.push_str(&format!("Phase: {phase}.\n"));
    }
    if let Some(body) = text(instructions, "text") {
        out.push('\n');
        out.push_str(body.trim_end());
        out.push('\n');
    }
    for block in instructions.get("blocks").and_then(Value::as_array).into_iter().flatten() {
        render_block(block, 0, &mut out);
    }
    let inputs = step.get("inputs").and_then(Value::as_object).filter(|m| !m.is_empty());
    if let Some(inputs) = inputs {
        out.push_str("\n## What earlier steps reported\n");
        for (key, input) in inputs {
            out.push_str(&format!(
                "\n### Step {key} ({}): {}{}\n\n",
                text(input, "step").unwrap_or("?"),
                text(input, "status").unwrap_or("?"),
                text(input, "agent").map(|a| format!(" by {a}")).unwrap_or_default(),
            ));
            match (input.get("report"), text(input, "reason")) {
                (Some(report), _) if !report.is_null() => {
                    let pretty = serde_json::to_string_pretty(report).unwrap_or_default();
                    out.push_str(&format!("```json\n{pretty}\n```\n"));
                }
                (_, Some(reason)) => out.push_str(&format!("Skipped: {reason}\n")),
                _ => out.push_str("No report.\n"),
            }
        }
    }
    let messages = step.get("messages").and_then(Value::as_array).filter(|m| !m.is_empty());
    if let Some(messages) = messages {
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
    out.push_str(
        "\n## Reporting\n\nWrite what you did as JSON to the file named by `SWITCHYARD_REPORT_FILE` (records, \
         feedback, checklist, tests, performance, integration_points, outstanding_issues, next_steps, notes). \
         Files and lines changed are measured from git; your output is kept as the step's log. Exit 0 when the \
         step succeeded.\n",
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_step_renders_its_instructions_blocks_inputs_and_messages() {
        let step = json!({
            "task_id": "tsk_1", "key": "2a", "name": "backend_implementation", "agent": "cloudflare-specialist",
            "attempt": 1, "attempts_max": 3,
            "instructions": {
                "title": "Step 2a: Backend", "phase": "Phase 2: Build", "text": "Build the API.",
                "blocks": [{"tag": "backend_tasks", "items": [{"text": "D1 schema"}, {"text": "routes", "checked": false}],
                            "directives": [{"keyword": "RECORD", "value": "Endpoints created", "items": []}],
                            "children": [{"tag": "kv_usage", "text": "Cache sessions."}]}]
            },
            "inputs": {"1": {"step": "task_analysis", "status": "succeeded", "agent": "context-fetcher",
                             "report": {"notes": "read the routes"}}},
            "messages": [{"type": "query", "from": "sveltekit-specialist", "correlation_id": "c-1",
                          "payload": {"question": "KV key?"}}]
        });
        let prompt = render(&step);
        for expected in [
            "# Step 2a: Backend\n",
            "Task `tsk_1`, step 2a (`backend_implementation`), for agent `cloudflare-specialist`, attempt 1 of 3.",
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
    }

    #[test]
    fn a_bare_step_still_renders() {
        let prompt = render(&json!({"name": "only"}));
        assert!(prompt.starts_with("# only\n"));
        assert!(!prompt.contains("earlier steps"));
    }
}
