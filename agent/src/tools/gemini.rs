//! Gemini CLI in headless mode, as documented at https://geminicli.com/docs/cli/headless:
//! `gemini --prompt` (what it reads on stdin comes first, then the prompt's text),
//! `--output-format stream-json`, `--yolo` (in headless mode the tools that edit files or run
//! commands are offered only when approvals are automatic), `--skip-trust` (headless mode
//! otherwise refuses a folder not trusted before, https://geminicli.com/docs/cli/trusted-folders/)
//! `--model`, and `--include-directories` for the step's own directory (where the report is
//! written). It runs in the process's working directory. There is no system-prompt flag
//! that adds to the built-in one, so the agent's system prompt goes into the prompt.
//!
//! Events (JSON Lines): `init`, `message` (`role`, `content`; the assistant's text arrives in
//! pieces marked `delta`), `tool_use`, `tool_result`, `error` (`severity`, `message`; a warning
//! unless the run fails), and one `result` with `status` (`success` or `error`), `error`
//! (`type`, `message`) and `stats` (`input_tokens`, `output_tokens`, `cached`, `total_tokens`,
//! `duration_ms`, `tool_calls`). Gemini CLI reports no turn count or cost.

use std::path::Path;
use std::process::ExitStatus;

use serde_json::{Map, Value};

use super::{figure, Choices, Finished, JsonLines, Launch, Reader};

/// The text passed with `--prompt`: Gemini CLI puts stdin (the step's prompt) before it.
pub const PROMPT_TAIL: &str = "Do the step described above in this directory, then write the report it asks for.";

pub fn launch(choices: &Choices, files: &Path) -> Launch {
    let mut args: Vec<String> = ["--prompt", PROMPT_TAIL, "--output-format", "stream-json", "--yolo", "--skip-trust"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    args.extend(["--include-directories".into(), files.display().to_string()]);
    if let Some(model) = &choices.model {
        args.extend(["--model".into(), model.clone()]);
    }
    Launch { program: "gemini".into(), args, env: Vec::new(), prompt_on_stdin: true }
}

#[derive(Default)]
pub struct Stream {
    result: Option<Map<String, Value>>,
    text: String,
    read: JsonLines,
}

impl Reader for Stream {
    fn line(&mut self, line: &str) {
        let Some(event) = self.read.event(line) else { return };
        match event.get("type").and_then(Value::as_str) {
            Some("result") => self.result = Some(event),
            Some("message") if event.get("role").and_then(Value::as_str) == Some("assistant") => {
                let content = event.get("content").and_then(Value::as_str).unwrap_or("");
                if event.get("delta").and_then(Value::as_bool) != Some(true) {
                    self.text.clear();
                }
                self.text.push_str(content);
            }
            _ => {}
        }
    }

    fn finish(self: Box<Self>, status: ExitStatus, stderr_tail: &str) -> Finished {
        let Some(result) = self.result else {
            let seen = format!("{} lines, {} not JSON", self.read.lines, self.read.not_json);
            return Finished::not_the_format("gemini", status, "a result event", "stream-json", &seen, stderr_tail);
        };
        let stats = result.get("stats");
        let mut performance = Map::new();
        for name in ["input_tokens", "output_tokens", "cached", "total_tokens", "duration_ms", "tool_calls"] {
            let reported = if name == "cached" { "cached_input_tokens" } else { name };
            figure(&mut performance, reported, stats.and_then(|s| s.get(name)));
        }
        let succeeded = status.success() && result.get("status").and_then(Value::as_str) == Some("success");
        let error = (!succeeded).then(|| {
            let said = result.get("error").and_then(|e| e["message"].as_str()).unwrap_or("the run failed");
            format!("gemini: {said} ({status})")
        });
        let message = (!self.text.trim().is_empty()).then_some(self.text);
        Finished { succeeded, error, message, performance }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::read;
    use super::super::Tool;
    use super::*;
    use serde_json::json;

    #[test]
    fn a_successful_run_joins_the_assistants_pieces_and_reads_the_stats() {
        let out = r#"{"type":"init","timestamp":"t","session_id":"s","model":"gemini-2.5-flash"}
{"type":"message","timestamp":"t","role":"user","content":"the prompt"}
{"type":"tool_use","timestamp":"t","tool_name":"write_file","tool_id":"w1","parameters":{"file_path":"a.ts"}}
{"type":"tool_result","timestamp":"t","tool_id":"w1","status":"success","output":"ok"}
{"type":"message","timestamp":"t","role":"assistant","content":"Wrote ","delta":true}
{"type":"message","timestamp":"t","role":"assistant","content":"a.ts.","delta":true}
{"type":"result","timestamp":"t","status":"success","stats":{"total_tokens":240,"input_tokens":200,"output_tokens":40,"cached":20,"input":180,"duration_ms":308,"tool_calls":1}}"#;
        let done = read(Tool::Gemini, out, 0, "");
        assert!(done.succeeded, "{done:?}");
        assert_eq!(done.message.as_deref(), Some("Wrote a.ts."));
        assert_eq!(
            Value::Object(done.performance),
            json!({"input_tokens": 200.0, "output_tokens": 40.0, "cached_input_tokens": 20.0, "total_tokens": 240.0,
                   "duration_ms": 308.0, "tool_calls": 1.0})
        );
    }

    #[test]
    fn an_error_result_fails_with_geminis_message() {
        let out = r#"{"type":"result","timestamp":"t","status":"error","error":{"type":"unknown","message":"[API Error: 400 bad request]"},"stats":{"duration_ms":0}}"#;
        let done = read(Tool::Gemini, out, 144, "");
        assert!(!done.succeeded);
        assert!(done.error.unwrap().contains("[API Error: 400 bad request]"));
    }

    #[test]
    fn an_untrusted_folder_or_other_early_exit_fails_with_stderr() {
        let done = read(Tool::Gemini, "", 55, "Gemini CLI is not running in a trusted directory.\n");
        assert!(done.error.unwrap().contains("trusted directory"));
    }

    #[test]
    fn the_invocation_is_headless_with_automatic_approvals() {
        let launch = launch(&Choices { model: Some("gemini-2.5-pro".into()), ..Choices::default() }, Path::new("/s"));
        assert_eq!(
            launch.args,
            [
                "--prompt",
                PROMPT_TAIL,
                "--output-format",
                "stream-json",
                "--yolo",
                "--skip-trust",
                "--include-directories",
                "/s",
                "--model",
                "gemini-2.5-pro"
            ]
        );
    }
}
