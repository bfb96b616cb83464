//! Codex CLI's non-interactive mode, as documented at
//! https://developers.openai.com/codex/noninteractive: `codex exec` with the prompt read from
//! stdin (`-`), `--json` for JSON Lines events, `--sandbox workspace-write` so it may edit the
//! work tree (exec never asks for approval), `-C` for the work directory, `-m` for the model and
//! `--skip-git-repo-check`, and `--add-dir` for the step's own directory (where the report is
//! written), which the sandbox otherwise keeps read-only. Codex has no system-prompt, turn or budget flag: the agent's system
//! prompt goes into the prompt.
//!
//! Events (`codex-rs/exec/src/exec_events.rs`): `thread.started`, `turn.started`,
//! `turn.completed` with `usage` (`input_tokens`, `cached_input_tokens`, `output_tokens`, and in
//! newer versions `reasoning_output_tokens`), `turn.failed` with `error.message`, `error` with
//! `message`, and `item.started|updated|completed` whose `item.type` is `agent_message` (`text`),
//! `command_execution`, `file_change`, `reasoning`, ... An `item` of type `error` is a warning
//! (an unknown model's metadata, say), not a failure. Codex reports no duration or cost.

use std::path::Path;
use std::process::ExitStatus;

use serde_json::{Map, Value};

use super::{Choices, Finished, JsonLines, Launch, Reader};

pub fn launch(choices: &Choices, workdir: &Path, files: &Path) -> Launch {
    let mut args: Vec<String> = ["exec", "--json", "--skip-git-repo-check", "--sandbox", "workspace-write", "-C"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    args.push(workdir.display().to_string());
    args.extend(["--add-dir".into(), files.display().to_string()]);
    if let Some(model) = &choices.model {
        args.extend(["-m".into(), model.clone()]);
    }
    args.push("-".into());
    Launch { program: "codex".into(), args, env: Vec::new(), prompt_on_stdin: true }
}

#[derive(Default)]
pub struct Events {
    turns_completed: u64,
    failure: Option<String>,
    last_error: Option<String>,
    message: Option<String>,
    commands: u64,
    file_changes: u64,
    usage: Map<String, Value>,
    read: JsonLines,
}

impl Reader for Events {
    fn line(&mut self, line: &str) {
        let Some(event) = self.read.event(line) else { return };
        match event.get("type").and_then(Value::as_str) {
            Some("turn.completed") => {
                self.turns_completed += 1;
                for (name, value) in event.get("usage").and_then(Value::as_object).into_iter().flatten() {
                    if let Some(n) = value.as_f64() {
                        let sum = self.usage.get(name).and_then(Value::as_f64).unwrap_or(0.0) + n;
                        self.usage.insert(name.clone(), Value::from(sum));
                    }
                }
            }
            Some("turn.failed") => {
                let said = event.get("error").and_then(|e| e["message"].as_str()).unwrap_or("the turn failed");
                self.failure = Some(said.to_string());
            }
            Some("error") => self.last_error = event.get("message").and_then(Value::as_str).map(String::from),
            Some("item.completed") => {
                let item = event.get("item").unwrap_or(&Value::Null);
                match item["type"].as_str() {
                    Some("agent_message") => self.message = item["text"].as_str().map(String::from),
                    Some("command_execution") => self.commands += 1,
                    Some("file_change") => self.file_changes += 1,
                    _ => {}
                }
            }
            _ => {}
        }
    }

    fn finish(self: Box<Self>, status: ExitStatus, stderr_tail: &str) -> Finished {
        let mut performance = Map::new();
        if self.read.events() > 0 {
            performance.insert("turns".into(), Value::from(self.turns_completed));
            performance.insert("commands".into(), Value::from(self.commands));
            performance.insert("file_changes".into(), Value::from(self.file_changes));
            for (name, value) in &self.usage {
                performance.insert(name.clone(), value.clone());
            }
        }
        let succeeded = status.success() && self.failure.is_none() && self.turns_completed > 0;
        let error = (!succeeded).then(|| match (&self.failure, &self.last_error) {
            (Some(said), _) | (None, Some(said)) => format!("codex: the turn failed ({status}): {said}"),
            (None, None) if self.read.events() == 0 => Finished::not_the_format(
                "codex",
                status,
                "a JSON event",
                "`exec --json`",
                &format!("{} lines not JSON", self.read.not_json),
                stderr_tail,
            )
            .error
            .unwrap_or_default(),
            (None, None) => format!("codex ended ({status}) before its turn completed"),
        });
        Finished { succeeded, error, message: self.message, performance }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::read;
    use super::super::Tool;
    use super::*;
    use serde_json::json;

    #[test]
    fn a_completed_turn_gives_the_last_agent_message_and_the_summed_usage() {
        let out = r#"{"type":"thread.started","thread_id":"t"}
{"type":"item.completed","item":{"id":"item_0","type":"error","message":"Model metadata for `m` not found."}}
{"type":"turn.started"}
{"type":"item.completed","item":{"id":"item_1","type":"command_execution","command":"bash -lc 'ls'","aggregated_output":"a\n","exit_code":0,"status":"completed"}}
{"type":"item.completed","item":{"id":"item_2","type":"file_change","changes":[{"path":"src/a.ts","kind":"add"}],"status":"completed"}}
{"type":"item.completed","item":{"id":"item_3","type":"agent_message","text":"Done: added src/a.ts."}}
{"type":"turn.completed","usage":{"input_tokens":200,"cached_input_tokens":20,"output_tokens":40,"reasoning_output_tokens":10}}"#;
        let done = read(Tool::Codex, out, 0, "");
        assert!(done.succeeded, "{done:?}");
        assert_eq!(done.message.as_deref(), Some("Done: added src/a.ts."));
        assert_eq!(
            Value::Object(done.performance),
            json!({"turns": 1, "commands": 1, "file_changes": 1, "input_tokens": 200.0, "cached_input_tokens": 20.0,
                   "output_tokens": 40.0, "reasoning_output_tokens": 10.0})
        );
    }

    #[test]
    fn a_failed_turn_fails_the_attempt_with_codexs_message() {
        let out = r#"{"type":"thread.started","thread_id":"t"}
{"type":"turn.started"}
{"type":"error","message":"stream error: 400 bad request"}
{"type":"turn.failed","error":{"message":"stream error: 400 bad request"}}"#;
        let done = read(Tool::Codex, out, 1, "");
        assert!(!done.succeeded);
        assert!(done.error.unwrap().contains("400 bad request"));
    }

    #[test]
    fn output_without_events_or_without_a_completed_turn_fails() {
        let plain = read(Tool::Codex, "Reading prompt from stdin...\nsome text", 0, "warning: x\n");
        assert!(plain
            .error
            .unwrap()
            .contains("not the documented `exec --json` format (2 lines not JSON); stderr: warning: x"));
        let cut =
            read(Tool::Codex, "{\"type\":\"thread.started\",\"thread_id\":\"t\"}\n{\"type\":\"turn.started\"}", 0, "");
        assert!(!cut.succeeded);
        assert!(cut.error.unwrap().contains("before its turn completed"));
    }

    #[test]
    fn the_invocation_runs_exec_in_the_work_tree_with_the_prompt_on_stdin() {
        let launch = launch(
            &Choices { model: Some("gpt-5-codex".into()), ..Choices::default() },
            Path::new("/w"),
            Path::new("/s"),
        );
        assert_eq!(
            launch.args,
            [
                "exec",
                "--json",
                "--skip-git-repo-check",
                "--sandbox",
                "workspace-write",
                "-C",
                "/w",
                "--add-dir",
                "/s",
                "-m",
                "gpt-5-codex",
                "-"
            ]
        );
        assert!(launch.prompt_on_stdin);
    }
}
