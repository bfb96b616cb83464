//! Aider in scripting mode, as documented at https://aider.chat/docs/scripting.html and
//! https://aider.chat/docs/config/options.html: `--message-file` (the prompt), `--yes-always`,
//! `--no-stream`, `--no-pretty`, `--no-auto-commits` (switchyard-agent measures the change from
//! the work tree, so aider must leave it uncommitted), `--no-check-update`, `--no-analytics`,
//! `--no-show-model-warnings`, `--no-gitignore` (aider would otherwise add `.aider*` to the work
//! tree's `.gitignore`, a change nobody asked for), `--model`, and the history files kept out of
//! the work tree.
//! Aider has no system-prompt, turn or budget flag: the agent's system prompt goes into the
//! prompt.
//!
//! Its output is text. After each model call it prints the line
//! `Tokens: {sent} sent[, {n} cache write][, {n} cache hit], {received} received.` followed, for
//! models with known prices, by ` Cost: ${x} message, ${y} session.`
//! (`Coder.calculate_and_show_tokens_and_cost` in aider/coders/base_coder.py). Counts of 1,000
//! and more are printed rounded (`1.2k`), so only exact ones are reported; the session cost is
//! reported as printed. Aider exits 0 even when the model's API failed and prints the
//! provider's exception instead (`litellm.BadRequestError: ...`), so such a line fails the
//! attempt.

use std::path::Path;
use std::process::ExitStatus;

use serde_json::{Map, Value};

use super::{Choices, Finished, Launch, Reader};

pub fn launch(choices: &Choices, prompt_file: &Path) -> Launch {
    let beside = |name: &str| prompt_file.with_file_name(name).display().to_string();
    let mut args: Vec<String> = vec!["--message-file".into(), prompt_file.display().to_string()];
    args.extend(
        [
            "--yes-always",
            "--no-stream",
            "--no-pretty",
            "--no-auto-commits",
            "--no-check-update",
            "--no-analytics",
            "--no-show-model-warnings",
            "--no-gitignore",
        ]
        .iter()
        .map(|s| s.to_string()),
    );
    args.extend(["--chat-history-file".into(), beside("aider.chat.history.md")]);
    args.extend(["--input-history-file".into(), beside("aider.input.history")]);
    if let Some(model) = &choices.model {
        args.extend(["--model".into(), model.clone()]);
    }
    Launch { program: "aider".into(), args, env: Vec::new(), prompt_on_stdin: false }
}

#[derive(Default)]
pub struct Transcript {
    model_calls: u64,
    sent: Option<u64>,
    received: Option<u64>,
    sent_rounded: bool,
    received_rounded: bool,
    session_cost: Option<f64>,
    api_error: Option<String>,
    applied: Vec<String>,
}

/// `56` → Some(56); `1.2k` → None (rounded by aider, not a measured count).
fn exact(count: &str) -> Option<u64> {
    count.parse::<u64>().ok()
}

impl Reader for Transcript {
    fn line(&mut self, line: &str) {
        let line = line.trim();
        if let Some(rest) = line.strip_prefix("Tokens: ") {
            self.model_calls += 1;
            let (tokens, cost) = rest.split_once(" Cost: ").unwrap_or((rest, ""));
            let parts: Vec<&str> = tokens.trim_end_matches('.').split(", ").collect();
            let count = |suffix: &str| parts.iter().find_map(|p| p.strip_suffix(suffix)).map(str::trim);
            for (counted, total, rounded) in [
                (count(" sent"), &mut self.sent, &mut self.sent_rounded),
                (count(" received"), &mut self.received, &mut self.received_rounded),
            ] {
                match counted.and_then(exact) {
                    Some(n) => *total = Some(total.unwrap_or(0) + n),
                    None => *rounded = true,
                }
            }
            if let Some(session) = cost.split(", $").nth(1).and_then(|s| s.strip_suffix(" session.")) {
                self.session_cost = session.parse().ok();
            }
        } else if line.starts_with("litellm.") && line.contains("Error") {
            self.api_error = Some(line.to_string());
        } else if let Some(file) = line.strip_prefix("Applied edit to ") {
            self.applied.push(file.to_string());
        }
    }

    fn finish(self: Box<Self>, status: ExitStatus, _stderr_tail: &str) -> Finished {
        let mut performance = Map::new();
        performance.insert("model_calls".into(), Value::from(self.model_calls));
        // A sum with one rounded count in it is not a measured figure.
        if let (Some(sent), false) = (self.sent, self.sent_rounded) {
            performance.insert("input_tokens".into(), Value::from(sent));
        }
        if let (Some(received), false) = (self.received, self.received_rounded) {
            performance.insert("output_tokens".into(), Value::from(received));
        }
        if let Some(cost) = self.session_cost {
            performance.insert("cost_usd".into(), Value::from(cost));
        }
        let error = match (&self.api_error, status.success(), self.model_calls) {
            (Some(said), _, _) => Some(format!("aider: the model's API failed: {said}")),
            (None, false, _) => Some(format!("aider failed ({status})")),
            (None, true, 0) => Some("aider ended without a model call (no `Tokens:` line in its output)".to_string()),
            _ => None,
        };
        let message = (!self.applied.is_empty()).then(|| format!("Applied edits to {}", self.applied.join(", ")));
        Finished { succeeded: error.is_none(), error, message, performance }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::read;
    use super::super::Tool;
    use super::*;
    use serde_json::json;

    #[test]
    fn exact_token_counts_and_the_session_cost_are_reported() {
        let out = "Aider v0.86.2\nModel: openai/m with whole edit format\nAdded a.ts to the chat.\n\
                   Tokens: 812 sent, 56 received. Cost: $0.00012 message, $0.00012 session.\nApplied edit to a.ts\n\
                   Tokens: 900 sent, 10 received. Cost: $0.00010 message, $0.00022 session.\n";
        let done = read(Tool::Aider, out, 0, "");
        assert!(done.succeeded, "{done:?}");
        assert_eq!(
            Value::Object(done.performance),
            json!({"model_calls": 2, "input_tokens": 1712, "output_tokens": 66, "cost_usd": 0.00022})
        );
        assert_eq!(done.message.as_deref(), Some("Applied edits to a.ts"));
    }

    #[test]
    fn rounded_counts_are_left_out_rather_than_guessed() {
        let done = read(Tool::Aider, "Tokens: 1.2k sent, 56 received.\nTokens: 900 sent, 4 received.\n", 0, "");
        assert_eq!(Value::Object(done.performance), json!({"model_calls": 2, "output_tokens": 60}));
    }

    #[test]
    fn an_api_exception_fails_the_attempt_although_aider_exits_zero() {
        let out = "Aider v0.86.2\nlitellm.BadRequestError: OpenAIException - mock bad request\n";
        let done = read(Tool::Aider, out, 0, "");
        assert!(!done.succeeded);
        assert!(done.error.unwrap().contains("mock bad request"));
        let silent = read(Tool::Aider, "Aider v0.86.2\n", 0, "");
        assert!(silent.error.unwrap().contains("without a model call"));
    }

    #[test]
    fn the_invocation_reads_the_prompt_file_and_keeps_history_out_of_the_work_tree() {
        let launch = launch(&Choices::default(), Path::new("/tmp/step/prompt.md"));
        assert_eq!(launch.args[..2], ["--message-file", "/tmp/step/prompt.md"]);
        assert!(launch.args.windows(2).any(|w| w == ["--chat-history-file", "/tmp/step/aider.chat.history.md"]));
        assert!(launch.args.contains(&"--no-auto-commits".to_string()));
        assert!(!launch.prompt_on_stdin);
    }
}
