//! The coding CLIs a step can be run with, without a wrapper script: for each tool, how to
//! invoke it non-interactively with what the step's brief gives (the prompt, the subagent's
//! system prompt, allowed tools and model, turn and budget limits, the work directory), and how
//! to read its machine-readable output into the attempt's outcome and `report.performance`.
//!
//! `command` is the generic mode: any program, the prompt on stdin, its exit status the outcome.
//! Each tool's parser follows that tool's documented output format (cited in its module) and
//! reads its output line by line as it arrives, so a long session is never held in memory
//! whole. Output that is not in the documented format, or a line over [`LINE_BYTES_MAX`],
//! fails the attempt with a line saying so; it never panics and never hangs the runner.

mod aider;
mod claude;
mod codex;
mod gemini;

use std::path::Path;
use std::process::ExitStatus;

use serde_json::{Map, Value};

/// The longest output line a parser reads: a stream-json event carrying a whole file's content
/// can be a few hundred KiB; a line over this is not one of the tools' documented events.
pub const LINE_BYTES_MAX: usize = 8 * 1024 * 1024;

/// Which program runs a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Tool {
    /// Claude Code (`claude -p`, stream-json output).
    Claude,
    /// Codex CLI (`codex exec --json`).
    Codex,
    /// Gemini CLI (`gemini --prompt`, stream-json output).
    Gemini,
    /// Aider (`aider --message-file`).
    Aider,
    /// Any command given after `--`: the prompt on stdin, exit 0 for success.
    Command,
}

/// Limits and choices from the runner's flags, passed to tools that support them.
#[derive(Debug, Clone, Default)]
pub struct Choices {
    /// Overrides the model the agent's subagent file names.
    pub model: Option<String>,
    pub max_turns: Option<u32>,
    pub max_budget_usd: Option<f64>,
    /// Extra arguments appended to the tool's own, as given.
    pub extra: Vec<String>,
}

/// How to start the tool for one step.
#[derive(Debug, Clone, PartialEq)]
pub struct Launch {
    pub program: String,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    /// Whether the prompt is written to the tool's stdin (otherwise stdin is empty).
    pub prompt_on_stdin: bool,
}

/// How an attempt ended, as the tool reported it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Finished {
    pub succeeded: bool,
    /// The tool's own message when it failed (refusal, turn limit, API error, crash).
    pub error: Option<String>,
    /// The tool's final message, if it gave one.
    pub message: Option<String>,
    /// Measured figures the tool reported: turns, duration, tokens, cost. Only what the tool
    /// printed; nothing is estimated.
    pub performance: Map<String, Value>,
}

impl Finished {
    /// A failed attempt whose output ended without what the tool's documented `format` always
    /// ends with (`missing`), saying what was seen and the end of stderr.
    fn not_the_format(
        tool: &str,
        status: ExitStatus,
        missing: &str,
        format: &str,
        seen: &str,
        stderr_tail: &str,
    ) -> Finished {
        let stderr = match last_words(stderr_tail) {
            words if words.is_empty() => String::new(),
            words => format!("; stderr: {words}"),
        };
        Finished {
            succeeded: false,
            error: Some(format!(
                "{tool} ended ({status}) without {missing}: its output is not the documented {format} format ({seen}){stderr}"
            )),
            ..Finished::default()
        }
    }
}

/// What a parser sees of a tool's run: its stdout line by line, then how it exited.
pub trait Reader: Send {
    fn line(&mut self, line: &str);
    fn finish(self: Box<Self>, status: ExitStatus, stderr_tail: &str) -> Finished;
}

/// The step's subagent file fields: its system prompt, allowed tools and model.
pub struct Profile<'a> {
    pub system_prompt: Option<&'a str>,
    pub tools: Vec<&'a str>,
    pub model: Option<&'a str>,
}

impl<'a> Profile<'a> {
    pub fn of(step: &'a Value) -> Profile<'a> {
        let profile = &step["agent_profile"];
        Profile {
            system_prompt: profile["system_prompt"].as_str().filter(|s| !s.trim().is_empty()),
            tools: profile["tools"].as_array().into_iter().flatten().filter_map(Value::as_str).collect(),
            // Claude Code's `inherit` means "the model of whoever started it": no choice to pass.
            model: profile["model"].as_str().filter(|m| !m.is_empty() && *m != "inherit"),
        }
    }
}

impl Tool {
    /// The program name looked up on PATH.
    pub fn program(self) -> &'static str {
        match self {
            Tool::Claude => "claude",
            Tool::Codex => "codex",
            Tool::Gemini => "gemini",
            Tool::Aider => "aider",
            Tool::Command => "",
        }
    }

    /// Paths (git pathspecs, from the work directory) the tool writes for itself, left out of the
    /// measured change: Aider keeps its repository-map cache in `.aider.tags.cache.v4/`.
    pub fn own_files(self) -> &'static [&'static str] {
        match self {
            Tool::Aider => &[".aider*"],
            _ => &[],
        }
    }

    /// Whether the agent's system prompt has to go into the prompt itself: only Claude Code
    /// takes one of its own (`--append-system-prompt`).
    pub fn system_prompt_inline(self) -> bool {
        self != Tool::Claude
    }

    /// Refuses choices the tool has no documented way to honour, before any step is leased.
    pub fn check(self, choices: &Choices) -> Result<(), String> {
        let unsupported = |what: &str| Err(format!("{what} is not supported by {:?}; leave it out", self));
        match self {
            Tool::Claude => Ok(()),
            _ if choices.max_budget_usd.is_some() => unsupported("--max-budget-usd"),
            Tool::Command | Tool::Aider | Tool::Codex | Tool::Gemini if choices.max_turns.is_some() => {
                unsupported("--max-turns")
            }
            Tool::Command if choices.model.is_some() => unsupported("--model"),
            _ => Ok(()),
        }
    }

    /// The invocation for one step. `command` is the generic mode's command line; `prompt_file`
    /// holds the prompt (tools that read a file get its path), in the step's own directory, where
    /// the report is written too: tools that confine writes to their work directory are given
    /// that directory as well.
    pub fn launch(
        self,
        step: &Value,
        choices: &Choices,
        command: &[String],
        workdir: &Path,
        prompt_file: &Path,
    ) -> Result<Launch, String> {
        let profile = Profile::of(step);
        let files = prompt_file.parent().unwrap_or(workdir);
        let mut launch = match self {
            Tool::Command => {
                let (program, args) = command.split_first().ok_or("no command to run: give one after --")?;
                Launch { program: program.clone(), args: args.to_vec(), env: Vec::new(), prompt_on_stdin: true }
            }
            Tool::Claude => claude::launch(&profile, choices, files),
            Tool::Codex => codex::launch(choices, workdir, files),
            Tool::Gemini => gemini::launch(choices, files),
            Tool::Aider => aider::launch(choices, prompt_file),
        };
        if self != Tool::Command {
            launch.args.extend(choices.extra.iter().cloned());
        }
        Ok(launch)
    }

    /// A fresh parser for one run of the tool.
    pub fn reader(self) -> Box<dyn Reader> {
        match self {
            Tool::Command => Box::new(ExitStatusOnly),
            Tool::Claude => Box::<claude::Stream>::default(),
            Tool::Codex => Box::<codex::Events>::default(),
            Tool::Gemini => Box::<gemini::Stream>::default(),
            Tool::Aider => Box::<aider::Transcript>::default(),
        }
    }
}

/// The generic mode: the exit status is the outcome.
struct ExitStatusOnly;

impl Reader for ExitStatusOnly {
    fn line(&mut self, _line: &str) {}

    fn finish(self: Box<Self>, status: ExitStatus, _stderr_tail: &str) -> Finished {
        Finished {
            succeeded: status.success(),
            error: (!status.success()).then(|| format!("the command failed ({status})")),
            ..Finished::default()
        }
    }
}

/// The lines of a JSON Lines output, counted as they are read, so that output which is not the
/// documented format can be told apart from a run that failed.
#[derive(Default)]
struct JsonLines {
    lines: u64,
    not_json: u64,
}

impl JsonLines {
    /// The line as a JSON object; `None` for a blank line and for one that is not an object
    /// (counted).
    fn event(&mut self, line: &str) -> Option<Map<String, Value>> {
        if line.trim().is_empty() {
            return None;
        }
        self.lines += 1;
        match serde_json::from_str::<Value>(line.trim()) {
            Ok(Value::Object(map)) => Some(map),
            _ => {
                self.not_json += 1;
                None
            }
        }
    }

    /// The JSON objects read so far.
    fn events(&self) -> u64 {
        self.lines - self.not_json
    }
}

/// Sets a figure if the tool reported it as a number.
fn figure(performance: &mut Map<String, Value>, name: &str, value: Option<&Value>) {
    if let Some(number) = value.and_then(Value::as_f64).filter(|n| n.is_finite() && *n >= 0.0) {
        performance.insert(name.into(), Value::from(number));
    }
}

/// The last lines of stderr, for an error message that otherwise says nothing.
fn last_words(stderr_tail: &str) -> String {
    let lines: Vec<&str> = stderr_tail.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(3)..].join(" / ")
}

#[cfg(test)]
pub(crate) mod testing {
    use std::process::ExitStatus;

    pub fn exit(code: i32) -> ExitStatus {
        use std::os::unix::process::ExitStatusExt;
        ExitStatus::from_raw(code << 8)
    }

    /// Runs a reader over `stdout` as the runner would.
    pub fn read(tool: super::Tool, stdout: &str, code: i32, stderr: &str) -> super::Finished {
        let mut reader = tool.reader();
        for line in stdout.lines() {
            reader.line(line);
        }
        reader.finish(exit(code), stderr)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_generic_command_succeeds_by_its_exit_status() {
        assert!(testing::read(Tool::Command, "anything", 0, "").succeeded);
        let failed = testing::read(Tool::Command, "", 3, "");
        assert!(!failed.succeeded);
        assert!(failed.error.unwrap().contains("failed"));
    }

    #[test]
    fn choices_a_tool_cannot_honour_are_refused_up_front() {
        let turns = Choices { max_turns: Some(3), ..Choices::default() };
        assert!(Tool::Claude.check(&turns).is_ok());
        assert!(Tool::Codex.check(&turns).unwrap_err().contains("--max-turns"));
        let budget = Choices { max_budget_usd: Some(1.0), ..Choices::default() };
        assert!(Tool::Gemini.check(&budget).unwrap_err().contains("--max-budget-usd"));
        let model = Choices { model: Some("m".into()), ..Choices::default() };
        assert!(Tool::Command.check(&model).is_err());
        assert!(Tool::Aider.check(&model).is_ok());
    }

    #[test]
    fn the_profile_reads_the_subagent_fields_and_ignores_inherit() {
        let step =
            json!({"agent_profile": {"system_prompt": "Be careful.", "tools": ["Read", "Bash"], "model": "inherit"}});
        let profile = Profile::of(&step);
        assert_eq!(profile.system_prompt, Some("Be careful."));
        assert_eq!(profile.tools, ["Read", "Bash"]);
        assert_eq!(profile.model, None);
    }

    #[test]
    fn extra_arguments_follow_the_tools_own() {
        let choices = Choices { extra: vec!["--verbose-x".into()], ..Choices::default() };
        let launch = Tool::Gemini.launch(&json!({}), &choices, &[], Path::new("/w"), Path::new("/p")).unwrap();
        assert_eq!(launch.args.last().map(String::as_str), Some("--verbose-x"));
        let generic = Tool::Command
            .launch(&json!({}), &choices, &["sh".into(), "-c".into(), "x".into()], Path::new("/w"), Path::new("/p"))
            .unwrap();
        assert_eq!(generic.args, ["-c", "x"], "the generic command is run exactly as given");
    }
}
