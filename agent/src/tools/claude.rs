//! Claude Code in print mode, as its CLI reference documents it
//! (https://code.claude.com/docs/en/cli-reference): `claude -p` with the prompt on stdin,
//! `--output-format stream-json` (which in print mode requires `--verbose`),
//! `--append-system-prompt`, `--allowedTools`, `--model`, `--max-turns`, `--max-budget-usd`
//! `--permission-mode` and `--add-dir`. It runs in the process's working directory and edits
//! files only there and in the added directories: the step's own directory is added, so that it
//! may write the report.
//!
//! The output is JSON Lines: `system` (subtype `init`), `assistant` and `user` messages, and one
//! final `result` event, the Agent SDK's `SDKResultMessage`
//! (https://docs.claude.com/en/docs/agent-sdk/typescript): `subtype` (`success`,
//! `error_max_turns`, `error_during_execution`, `error_max_budget_usd`), `is_error`, `result`
//! (the final message; absent on `error_*` subtypes, which carry `errors`), `num_turns`,
//! `duration_ms`, `duration_api_ms`, `total_cost_usd` and `usage` (`input_tokens`,
//! `output_tokens`, `cache_read_input_tokens`, `cache_creation_input_tokens`). Token totals are
//! read from the result only: the `usage` of streamed assistant messages is a running value.

use std::path::Path;
use std::process::ExitStatus;

use serde_json::{Map, Value};

use super::{figure, Choices, Finished, JsonLines, Launch, Profile, Reader};

pub fn launch(profile: &Profile, choices: &Choices, files: &Path) -> Launch {
    let mut args: Vec<String> =
        ["-p", "--output-format", "stream-json", "--verbose", "--permission-mode", "acceptEdits"]
            .iter()
            .map(|s| s.to_string())
            .collect();
    // `--add-dir` takes several directories: the option after it ends the list.
    args.extend(["--add-dir".into(), files.display().to_string()]);
    if let Some(prompt) = profile.system_prompt {
        args.extend(["--append-system-prompt".into(), prompt.to_string()]);
    }
    if !profile.tools.is_empty() {
        args.extend(["--allowedTools".into(), profile.tools.join(",")]);
    }
    if let Some(model) = choices.model.as_deref().or(profile.model) {
        args.extend(["--model".into(), model.to_string()]);
    }
    if let Some(turns) = choices.max_turns {
        args.extend(["--max-turns".into(), turns.to_string()]);
    }
    if let Some(budget) = choices.max_budget_usd {
        args.extend(["--max-budget-usd".into(), budget.to_string()]);
    }
    Launch { program: "claude".into(), args, env: Vec::new(), prompt_on_stdin: true }
}

#[derive(Default)]
pub struct Stream {
    result: Option<Map<String, Value>>,
    /// Why tool calls were refused (`system` events of subtype `permission_denied`).
    denied: Vec<String>,
    last_text: Option<String>,
    read: JsonLines,
}

impl Reader for Stream {
    fn line(&mut self, line: &str) {
        let Some(event) = self.read.event(line) else { return };
        match event.get("type").and_then(Value::as_str) {
            Some("result") => self.result = Some(event),
            Some("system") if event.get("subtype").and_then(Value::as_str) == Some("permission_denied") => {
                let tool = event.get("tool_name").and_then(Value::as_str).unwrap_or("a tool");
                let why = event.get("message").and_then(Value::as_str).unwrap_or("refused");
                self.denied.push(format!("{tool}: {why}"));
            }
            Some("assistant") => {
                let texts: Vec<&str> = event
                    .get("message")
                    .and_then(|m| m.get("content"))
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter(|c| c["type"] == "text")
                    .filter_map(|c| c["text"].as_str())
                    .collect();
                if !texts.is_empty() {
                    self.last_text = Some(texts.join("\n"));
                }
            }
            _ => {}
        }
    }

    fn finish(self: Box<Self>, status: ExitStatus, stderr_tail: &str) -> Finished {
        let Some(result) = self.result else {
            let seen = format!("{} lines, {} not JSON", self.read.lines, self.read.not_json);
            return Finished::not_the_format("claude", status, "a result event", "stream-json", &seen, stderr_tail);
        };
        let mut performance = Map::new();
        figure(&mut performance, "turns", result.get("num_turns"));
        figure(&mut performance, "duration_ms", result.get("duration_ms"));
        figure(&mut performance, "duration_api_ms", result.get("duration_api_ms"));
        figure(&mut performance, "cost_usd", result.get("total_cost_usd"));
        let usage = result.get("usage");
        for name in ["input_tokens", "output_tokens", "cache_read_input_tokens", "cache_creation_input_tokens"] {
            figure(&mut performance, name, usage.and_then(|u| u.get(name)));
        }
        let subtype = result.get("subtype").and_then(Value::as_str).unwrap_or("");
        let is_error = result.get("is_error").and_then(Value::as_bool).unwrap_or(true);
        let message = result.get("result").and_then(Value::as_str).map(String::from);
        let succeeded = status.success() && !is_error && subtype == "success";
        let error = (!succeeded).then(|| {
            let errors: Vec<&str> = result
                .get("errors")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            let said = if !errors.is_empty() { errors.join("; ") } else { message.clone().unwrap_or_default() };
            format!(
                "claude: {} ({status}){}",
                if subtype.is_empty() { "error" } else { subtype },
                if said.is_empty() { String::new() } else { format!(": {said}") }
            )
        });
        let mut message = message.or(self.last_text);
        if !self.denied.is_empty() {
            // Not a failure of the attempt (the model may have done the work another way), but
            // the reason work may be missing, so it is said first.
            performance.insert("permission_denials".into(), Value::from(self.denied.len()));
            let refused = format!("{} tool call(s) were refused: {}", self.denied.len(), self.denied.join("; "));
            message = Some(match message {
                Some(text) => format!("{refused}\n{text}"),
                None => refused,
            });
        }
        Finished { succeeded, error, message, performance }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::read;
    use super::super::{Choices, Profile, Tool};
    use super::*;
    use serde_json::json;

    const SUCCESS: &str = r#"{"type":"system","subtype":"init","cwd":"/w","session_id":"s","tools":["Bash","Edit"],"model":"claude-sonnet-4-5"}
{"type":"assistant","message":{"role":"assistant","content":[{"type":"tool_use","id":"t1","name":"Edit","input":{}}],"usage":{"input_tokens":100,"output_tokens":1}}}
{"type":"user","message":{"role":"user","content":[{"tool_use_id":"t1","type":"tool_result","content":"ok"}]}}
{"type":"assistant","message":{"role":"assistant","content":[{"type":"text","text":"Added the reset route."}]}}
{"type":"result","subtype":"success","is_error":false,"num_turns":2,"result":"Added the reset route.","duration_ms":2200,"duration_api_ms":1800,"total_cost_usd":0.0123,"usage":{"input_tokens":200,"output_tokens":40,"cache_read_input_tokens":10,"cache_creation_input_tokens":0},"session_id":"s"}
"#;

    #[test]
    fn a_successful_run_gives_the_final_message_turns_tokens_and_cost() {
        let done = read(Tool::Claude, SUCCESS, 0, "");
        assert!(done.succeeded, "{done:?}");
        assert_eq!(done.message.as_deref(), Some("Added the reset route."));
        assert_eq!(
            Value::Object(done.performance),
            json!({"turns": 2.0, "duration_ms": 2200.0, "duration_api_ms": 1800.0, "cost_usd": 0.0123,
                   "input_tokens": 200.0, "output_tokens": 40.0, "cache_read_input_tokens": 10.0,
                   "cache_creation_input_tokens": 0.0})
        );
    }

    #[test]
    fn refused_tool_calls_are_counted_and_said_before_the_final_message() {
        let out = r#"{"type":"system","subtype":"permission_denied","tool_name":"Bash","message":"A variable in this command can't be checked before it runs"}
{"type":"result","subtype":"success","is_error":false,"num_turns":2,"result":"Done."}"#;
        let done = read(Tool::Claude, out, 0, "");
        assert!(done.succeeded);
        assert_eq!(done.performance["permission_denials"], json!(1));
        assert_eq!(
            done.message.as_deref(),
            Some(
                "1 tool call(s) were refused: Bash: A variable in this command can't be checked before it runs\nDone."
            )
        );
    }

    #[test]
    fn the_turn_limit_fails_the_attempt_with_claudes_own_words() {
        let out = r#"{"type":"result","subtype":"error_max_turns","is_error":true,"num_turns":2,"errors":["Reached maximum number of turns (1)"],"total_cost_usd":0.001,"usage":{"input_tokens":5,"output_tokens":1}}"#;
        let done = read(Tool::Claude, out, 1, "");
        assert!(!done.succeeded);
        let error = done.error.unwrap();
        assert!(error.contains("error_max_turns") && error.contains("Reached maximum number of turns (1)"), "{error}");
        assert_eq!(done.performance["turns"], json!(2.0), "what it spent is still measured");
    }

    #[test]
    fn an_api_error_reported_as_success_with_is_error_fails() {
        let out = r#"{"type":"result","subtype":"success","is_error":true,"num_turns":1,"result":"API Error: 400 bad request","total_cost_usd":0}"#;
        let done = read(Tool::Claude, out, 1, "");
        assert!(!done.succeeded);
        assert!(done.error.unwrap().contains("API Error: 400 bad request"));
    }

    #[test]
    fn output_that_is_not_stream_json_or_stops_early_fails_with_a_clear_line() {
        let done = read(Tool::Claude, "Hello, I am plain text\n{\"type\":\"assistant\",", 0, "boom\n");
        assert!(!done.succeeded);
        let error = done.error.unwrap();
        assert!(
            error.contains("without a result event") && error.contains("2 not JSON") && error.contains("boom"),
            "{error}"
        );
        let truncated = read(Tool::Claude, &SUCCESS[..SUCCESS.rfind("{\"type\":\"result\"").unwrap() + 30], 0, "");
        assert!(!truncated.succeeded, "a result line cut short is not a result");
    }

    #[test]
    fn the_invocation_passes_the_subagents_prompt_tools_and_model_and_the_limits() {
        let step = json!({"agent_profile": {"system_prompt": "You review auth.", "tools": ["Read", "Grep"], "model": "sonnet"}});
        let choices = Choices { max_turns: Some(8), max_budget_usd: Some(0.5), ..Choices::default() };
        let launch = launch(&Profile::of(&step), &choices, Path::new("/tmp/step"));
        assert_eq!(
            launch.args,
            [
                "-p",
                "--output-format",
                "stream-json",
                "--verbose",
                "--permission-mode",
                "acceptEdits",
                "--add-dir",
                "/tmp/step",
                "--append-system-prompt",
                "You review auth.",
                "--allowedTools",
                "Read,Grep",
                "--model",
                "sonnet",
                "--max-turns",
                "8",
                "--max-budget-usd",
                "0.5"
            ]
        );
        assert!(launch.prompt_on_stdin);
        let chosen = Choices { model: Some("opus".into()), ..Choices::default() };
        let plain = super::launch(&Profile::of(&json!({})), &chosen, Path::new("/tmp/step"));
        assert_eq!(plain.args[8..], ["--model", "opus"], "the runner's --model wins; nothing else is added");
    }
}
