//! `switchyard-agent run`: lease the agent's steps one at a time and run the command for each,
//! heartbeating while it runs, then complete the step with the command's log and report and the
//! change measured in the work directory.
//!
//! The runner never leaves a step leased on purpose: a command that ends is completed (failed
//! if it exited non-zero, was stopped at its time limit or by Ctrl-C), and a step whose lease
//! was lost or whose task was cancelled has its command stopped.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::client::{explain, CallError, Client};
use crate::live::Live;
use crate::tools::{Choices, Finished, Launch, Reader, Tool, LINE_BYTES_MAX};
use crate::{diff, prompt, report};

/// The most log a step completes with: the Worker's limit for an attempt's log. Longer output
/// keeps its tail, where errors are.
pub const LOG_BYTES_MAX: usize = 512 * 1024;
/// How long a stopped command gets to exit after SIGTERM before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(5);
/// How often the runner looks at the command between heartbeats: a command's end is noticed
/// within this, which is most of the runner's overhead per step.
const POLL: Duration = Duration::from_millis(20);
/// Longest wait, once the command exited, for its output pipes to reach their end: a process it
/// left running in the background may hold them open for ever.
const DRAIN_MAX: Duration = Duration::from_secs(2);
/// How soon new output is sent when the next heartbeat is further away: often enough that a
/// person following the step's log sees it move, rarely enough that a chatty command costs a
/// request every few seconds, not every line.
const OUTPUT_FLUSH: Duration = Duration::from_secs(5);

pub struct Settings {
    pub url: String,
    pub agent: String,
    pub token: String,
    pub workdir: PathBuf,
    /// What runs each step: a coding CLI, or `command` for the generic mode.
    pub tool: Tool,
    pub choices: Choices,
    /// The generic mode's command line.
    pub command: Vec<String>,
    pub heartbeat: Duration,
    pub timeout: Duration,
    /// Stop after this many steps (0: never), for scripts and tests.
    pub steps: u64,
}

/// The tail of a command's output, bounded.
#[derive(Default)]
struct Tail {
    text: Vec<u8>,
    dropped: usize,
}

impl Tail {
    fn push(&mut self, bytes: &[u8]) {
        self.text.extend_from_slice(bytes);
        if self.text.len() > LOG_BYTES_MAX - 64 {
            let cut = self.text.len() - (LOG_BYTES_MAX - 64);
            self.text.drain(..cut);
            self.dropped += cut;
        }
    }

    fn render(&self) -> String {
        let text = String::from_utf8_lossy(&self.text).into_owned();
        if self.dropped == 0 {
            text
        } else {
            format!("[{} earlier bytes of output were cut]\n{text}", self.dropped)
        }
    }
}

/// The end of stderr kept for the tool's parser: enough for the last few lines of an error.
const STDERR_TAIL_BYTES: usize = 4096;

/// Splits a stream into lines for a tool's parser, refusing lines over [`LINE_BYTES_MAX`]
/// instead of holding them.
struct Lines {
    reader: Box<dyn Reader>,
    partial: Vec<u8>,
    oversized: u64,
    skipping: bool,
}

impl Lines {
    fn new(reader: Box<dyn Reader>) -> Lines {
        Lines { reader, partial: Vec::new(), oversized: 0, skipping: false }
    }

    fn push(&mut self, bytes: &[u8]) {
        for chunk in bytes.split_inclusive(|b| *b == b'\n') {
            let ends = chunk.ends_with(b"\n");
            if !self.skipping {
                self.partial.extend_from_slice(chunk);
                if self.partial.len() > LINE_BYTES_MAX {
                    self.oversized += 1;
                    self.partial.clear();
                    self.skipping = true;
                }
            }
            if ends {
                if !self.skipping {
                    let line = String::from_utf8_lossy(&self.partial).into_owned();
                    self.reader.line(line.trim_end_matches(['\n', '\r']));
                }
                self.partial.clear();
                self.skipping = false;
            }
        }
    }

    fn finish(mut self, status: ExitStatus, stderr_tail: &str) -> Finished {
        if !self.partial.is_empty() && !self.skipping {
            let line = String::from_utf8_lossy(&self.partial).into_owned();
            self.reader.line(&line);
        }
        let mut finished = self.reader.finish(status, stderr_tail);
        if self.oversized > 0 {
            finished.succeeded = false;
            finished.error = Some(format!(
                "{} line(s) of the tool's output were over {LINE_BYTES_MAX} bytes: not its documented format{}",
                self.oversized,
                finished.error.map(|e| format!("; {e}")).unwrap_or_default()
            ));
        }
        finished
    }
}

/// What is collected from a running command: the log's tail, the parser, the end of stderr.
struct Output {
    /// Output pipes not yet read to their end.
    open: std::sync::atomic::AtomicUsize,
    tail: Mutex<Tail>,
    lines: Mutex<Option<Lines>>,
    stderr: Mutex<Vec<u8>>,
    live: Mutex<Live>,
}

/// How a step's command ended.
enum Ended {
    Exited(ExitStatus),
    TimedOut,
    /// Ctrl-C: hand the step back.
    Interrupted,
    /// The lease is gone or the task was cancelled: nothing to complete.
    Abandoned(String),
}

pub fn run(settings: &Settings, stop: Arc<AtomicBool>) -> Result<(), String> {
    if !settings.workdir.is_dir() {
        return Err(format!("the work directory {} does not exist", settings.workdir.display()));
    }
    let client = Client::new(&settings.url, &settings.token);
    let preflight = Client::new(&settings.url, &settings.token).with_tries(3);
    let whoami = preflight.get("/v1/whoami").map_err(|e| explain(&e, &settings.agent))?;
    match (whoami.body["principal"].as_str(), whoami.body["agent"].as_str()) {
        (Some("agent"), Some(own)) if own != settings.agent => {
            return Err(format!("this token is {own}'s, not {}'s: each agent runs with its own token", settings.agent))
        }
        _ => {}
    }
    let measured = diff::is_work_tree(&settings.workdir);
    eprintln!(
        "switchyard-agent: {} leasing from {} in {}{}",
        settings.agent,
        settings.url,
        settings.workdir.display(),
        if measured { "" } else { " (not a git work tree: changes are not measured)" }
    );
    let mut done = 0;
    while !stop.load(Ordering::SeqCst) {
        let leased = client
            .post(&format!("/v1/agents/{}/lease?wait=20", settings.agent), &json!({}))
            .map_err(|e| explain(&e, &settings.agent))?;
        if leased.status == 204 {
            continue;
        }
        let step = leased.body["step"].clone();
        run_step(&client, settings, &step, measured, &stop)?;
        done += 1;
        if settings.steps > 0 && done >= settings.steps {
            break;
        }
    }
    Ok(())
}

/// Runs one step (leased, or delivered to `serve`) and completes it.
pub fn run_step(
    client: &Client,
    settings: &Settings,
    step: &Value,
    measured: bool,
    stop: &AtomicBool,
) -> Result<(), String> {
    let step_id = step["id"].as_str().unwrap_or_default().to_string();
    let lease_id = step["lease_id"].as_str().unwrap_or_default().to_string();
    eprintln!("switchyard-agent: step {} ({}) attempt {}", step["key"], step["name"], step["attempt"]);
    let files = StepFiles::create(&step_id, step["attempt"].as_u64().unwrap_or(0))?;
    let (step, missing) = with_parts(client, step);
    let step = &step;
    let prompt_text = prompt::render(
        step,
        prompt::Options {
            system_prompt_inline: settings.tool.system_prompt_inline(),
            report_file: Some(&files.report),
        },
    );
    std::fs::write(&files.prompt, &prompt_text).map_err(|e| format!("writing the prompt: {e}"))?;
    let pretty = serde_json::to_string_pretty(step).unwrap_or_default();
    std::fs::write(&files.step, pretty).map_err(|e| format!("writing the step: {e}"))?;
    let before = if measured { diff::snapshot(&settings.workdir, settings.tool.own_files()).ok() } else { None };

    let output = Arc::new(Output {
        open: std::sync::atomic::AtomicUsize::new(0),
        tail: Mutex::new(Tail::default()),
        lines: Mutex::new(Some(Lines::new(settings.tool.reader()))),
        stderr: Mutex::new(Vec::new()),
        live: Mutex::new(Live::default()),
    });
    let launched = if missing.is_empty() {
        settings.tool.launch(step, &settings.choices, &settings.command, &settings.workdir, &files.prompt)
    } else {
        Err(missing.join("; "))
    };
    let (ended, problems) =
        match launched.and_then(|launch| spawn(settings, &launch, step, &files).map(|c| (c, launch))) {
            Err(why) => (Ended::Exited(failed_status()), vec![why]),
            Ok((mut child, launch)) => {
                feed(&mut child, launch.prompt_on_stdin.then_some(prompt_text), &output);
                let ended = watch(client, settings, &step_id, &lease_id, step, &mut child, stop, &output);
                (ended, Vec::new())
            }
        };
    let mut log = output.tail.lock().map(|t| t.render()).unwrap_or_default();
    for problem in &problems {
        log.push_str(&format!("\n[switchyard-agent] {problem}\n"));
    }
    let stderr_tail = output.stderr.lock().map(|e| String::from_utf8_lossy(&e).into_owned()).unwrap_or_default();
    let finished = match (&ended, output.lines.lock().ok().and_then(|mut l| l.take())) {
        (Ended::Exited(status), Some(lines)) if problems.is_empty() => Some(lines.finish(*status, &stderr_tail)),
        _ => None,
    };
    if let (Some(finished), false) = (&finished, settings.tool == Tool::Command) {
        log.push_str(&format!("\n[switchyard-agent] {}\n", outcome_line(settings.tool, finished)));
        if let Some(message) = &finished.message {
            log.push_str(&format!("{message}\n"));
        }
    }
    let (succeeded, error) = match &ended {
        Ended::Abandoned(why) => {
            eprintln!("switchyard-agent: step {step_id} left: {why}");
            files.remove();
            return Ok(());
        }
        Ended::Exited(status) => match &finished {
            Some(finished) => (finished.succeeded, finished.error.clone()),
            None => {
                (false, Some(problems.first().cloned().unwrap_or_else(|| format!("the command failed ({status})"))))
            }
        },
        Ended::TimedOut => (
            false,
            Some(format!("the command ran past its {} s limit and was stopped", timeout_of(settings, step).as_secs())),
        ),
        Ended::Interrupted => {
            (false, Some("the runner was stopped (Ctrl-C); the step is handed back for another attempt".to_string()))
        }
    };
    let change = match (&before, measured) {
        (Some(before), true) => diff::snapshot(&settings.workdir, settings.tool.own_files())
            .and_then(|after| diff::between(&settings.workdir, before, &after))
            .ok(),
        _ => None,
    };
    let written = std::fs::read_to_string(&files.report).ok();
    let own = match report::parse(written.as_deref()) {
        Ok(own) => own,
        Err(why) => {
            log.push_str(&format!("\n[switchyard-agent] {why}\n"));
            Default::default()
        }
    };
    let performance = finished.map(|f| f.performance).unwrap_or_default();
    let merged = report::merge(own, change.as_ref(), performance);
    let mut body = json!({
        "lease_id": lease_id,
        "outcome": if succeeded { "succeeded" } else { "failed" },
        "report": Value::Object(merged),
        "log": log,
    });
    if let Some(error) = error {
        body["error"] = Value::from(error);
    }
    let mut sent = client.post(&format!("/v1/steps/{step_id}/complete"), &body);
    // A report switchyard cannot take (loop items that are not a list, say) fails the attempt
    // with the reason, rather than leaving the lease to expire with none; the rest is kept.
    if let (Err(CallError::Refused(refused)), true) = (&sent, succeeded) {
        if refused.status == 422 {
            eprintln!("switchyard-agent: the report of step {step_id} was refused: {refused}");
            body["outcome"] = Value::from("failed");
            body["error"] = Value::from(format!("switchyard refused the report: {refused}"));
            if let Some(report) = body["report"].as_object_mut() {
                report.remove("items");
                report.remove("selection");
            }
            sent = client.post(&format!("/v1/steps/{step_id}/complete"), &body);
        }
    }
    match sent {
        Ok(_) if body["outcome"] == "failed" => eprintln!("switchyard-agent: step {step_id} failed"),
        Ok(_) => eprintln!("switchyard-agent: step {step_id} succeeded"),
        Err(CallError::Refused(refused)) if refused.status == 409 => {
            eprintln!("switchyard-agent: step {step_id} was not completed: {refused}");
        }
        Err(other) => return Err(format!("completing step {step_id}: {}", explain(&other, &settings.agent))),
    }
    files.remove();
    Ok(())
}

/// The step with each offloaded part (one over its bound, which switchyard keeps apart and the
/// payload points to) replaced by the part itself, and why any part could not be fetched. A step
/// missing a part is not run: its command would work from half a brief.
fn with_parts(client: &Client, step: &Value) -> (Value, Vec<String>) {
    let mut step = step.clone();
    let mut missing = Vec::new();
    let Some(fields) = step.as_object_mut() else { return (step, missing) };
    for (name, part) in fields.iter_mut() {
        let Some(href) = part.get("offloaded").and_then(|o| o.get("href")).and_then(Value::as_str) else { continue };
        match client.get(href) {
            Ok(answer) => *part = answer.body,
            Err(why) => missing.push(format!("the step's {name} could not be fetched from {href}: {why}")),
        }
    }
    (step, missing)
}

/// A status that reads as a failure, for a command that could not even start.
fn failed_status() -> ExitStatus {
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        ExitStatus::from_raw(127 << 8)
    }
    #[cfg(not(unix))]
    {
        use std::os::windows::process::ExitStatusExt;
        ExitStatus::from_raw(127)
    }
}

/// The files a step's command works from, in a directory of their own outside the work tree
/// (so they are not counted as changes).
struct StepFiles {
    dir: PathBuf,
    prompt: PathBuf,
    step: PathBuf,
    report: PathBuf,
}

impl StepFiles {
    fn create(step_id: &str, attempt: u64) -> Result<StepFiles, String> {
        let dir =
            std::env::temp_dir().join("switchyard-agent").join(format!("{step_id}-{attempt}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
        Ok(StepFiles {
            prompt: dir.join("prompt.md"),
            step: dir.join("step.json"),
            report: dir.join("report.json"),
            dir,
        })
    }

    fn remove(&self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn timeout_of(settings: &Settings, step: &Value) -> Duration {
    step["timeout_ms"].as_u64().map_or(settings.timeout, Duration::from_millis).min(settings.timeout)
}

fn spawn(settings: &Settings, launch: &Launch, step: &Value, files: &StepFiles) -> Result<Child, String> {
    let mut command = Command::new(&launch.program);
    command
        .args(&launch.args)
        .envs(launch.env.iter().map(|(k, v)| (k, v)))
        .current_dir(&settings.workdir)
        .stdin(if launch.prompt_on_stdin { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .env("SWITCHYARD_URL", &settings.url)
        .env("SWITCHYARD_AGENT", &settings.agent)
        .env("SWITCHYARD_TOKEN", &settings.token)
        .env("SWITCHYARD_TASK_ID", step["task_id"].as_str().unwrap_or_default())
        .env("SWITCHYARD_STEP_ID", step["id"].as_str().unwrap_or_default())
        .env("SWITCHYARD_STEP_KEY", step["key"].as_str().unwrap_or_default())
        .env("SWITCHYARD_STEP_NAME", step["name"].as_str().unwrap_or_default())
        .env("SWITCHYARD_ATTEMPT", step["attempt"].to_string())
        .env("SWITCHYARD_PROMPT_FILE", &files.prompt)
        .env("SWITCHYARD_STEP_FILE", &files.step)
        .env("SWITCHYARD_REPORT_FILE", &files.report);
    #[cfg(unix)]
    {
        // Its own process group, so stopping it also stops whatever it started.
        use std::os::unix::process::CommandExt;
        command.process_group(0);
    }
    command.spawn().map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound if settings.tool != Tool::Command => {
            format!("{} is not installed (not found on PATH): {e}", launch.program)
        }
        _ => format!("the command {} could not be started: {e}", launch.program),
    })
}

/// Writes the prompt to the command's stdin (if it reads it there) and collects its stdout (for
/// the log and the tool's parser) and stderr (for the log).
fn feed(child: &mut Child, prompt_text: Option<String>, output: &Arc<Output>) {
    if let (Some(mut stdin), Some(text)) = (child.stdin.take(), prompt_text) {
        // A command that never reads stdin must not block the runner: write from a thread.
        thread::spawn(move || {
            let _ = stdin.write_all(text.as_bytes());
        });
    }
    let readers: Vec<(bool, Box<dyn Read + Send>)> = [
        child.stdout.take().map(|s| (true, Box::new(s) as Box<dyn Read + Send>)),
        child.stderr.take().map(|s| (false, Box::new(s) as Box<dyn Read + Send>)),
    ]
    .into_iter()
    .flatten()
    .collect();
    output.open.store(readers.len(), Ordering::SeqCst);
    for (is_stdout, mut reader) in readers {
        let output = Arc::clone(output);
        thread::spawn(move || {
            let mut buffer = [0u8; 8192];
            while let Ok(n) = reader.read(&mut buffer) {
                if n == 0 {
                    break;
                }
                let bytes = &buffer[..n];
                if let Ok(mut tail) = output.tail.lock() {
                    tail.push(bytes);
                }
                if let Ok(mut live) = output.live.lock() {
                    live.push(bytes);
                }
                if is_stdout {
                    if let Ok(mut lines) = output.lines.lock() {
                        if let Some(lines) = lines.as_mut() {
                            lines.push(bytes);
                        }
                    }
                } else if let Ok(mut stderr) = output.stderr.lock() {
                    stderr.extend_from_slice(bytes);
                    let over = stderr.len().saturating_sub(STDERR_TAIL_BYTES);
                    stderr.drain(..over);
                }
            }
            output.open.fetch_sub(1, Ordering::SeqCst);
        });
    }
}

/// One line for the log: how the tool says the attempt went, with its figures.
fn outcome_line(tool: Tool, finished: &Finished) -> String {
    let figures: Vec<String> = finished.performance.iter().map(|(name, value)| format!("{name}={value}")).collect();
    format!(
        "{}: {}{}{}",
        tool.program(),
        if finished.succeeded { "succeeded" } else { "failed" },
        finished.error.as_ref().map(|e| format!(": {e}")).unwrap_or_default(),
        if figures.is_empty() { String::new() } else { format!(" [{}]", figures.join(", ")) }
    )
}

/// Waits for the command, heartbeating the lease, and stops it at its time limit, on Ctrl-C,
/// or when the lease is lost or the task cancelled.
#[allow(clippy::too_many_arguments)]
fn watch(
    client: &Client,
    settings: &Settings,
    step_id: &str,
    lease_id: &str,
    step: &Value,
    child: &mut Child,
    stop: &AtomicBool,
    output: &Output,
) -> Ended {
    let started = Instant::now();
    let limit = timeout_of(settings, step);
    let mut last_beat = Instant::now();
    let mut told_stop = false;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            // Let the readers drain what is left in the pipes.
            let exited = Instant::now();
            while output.open.load(Ordering::SeqCst) > 0 && exited.elapsed() < DRAIN_MAX {
                thread::sleep(Duration::from_millis(2));
            }
            return Ended::Exited(status);
        }
        if stop.load(Ordering::SeqCst) {
            terminate(child);
            return Ended::Interrupted;
        }
        if started.elapsed() >= limit {
            terminate(child);
            return Ended::TimedOut;
        }
        let now = Instant::now();
        let chunk = output.live.lock().ok().and_then(|live| live.next_chunk(now).map(|(o, t)| (o, t.to_string())));
        let due = last_beat.elapsed() >= settings.heartbeat || (chunk.is_some() && last_beat.elapsed() >= OUTPUT_FLUSH);
        if due {
            last_beat = now;
            let mut body = json!({"lease_id": lease_id});
            if let Some((offset, text)) = &chunk {
                body["output"] = json!({"offset": offset, "text": text});
            }
            match client.post(&format!("/v1/steps/{step_id}/heartbeat"), &body) {
                Ok(answer) => {
                    if let (Some(end), Ok(mut live)) = (answer.body["output_offset"].as_u64(), output.live.lock()) {
                        live.acknowledged(end);
                    }
                }
                // Too much output at once: the lease is fine, the chunk is sent smaller later.
                Err(CallError::Refused(refused)) if refused.status == 413 && chunk.is_some() => {
                    if let Ok(mut live) = output.live.lock() {
                        live.refused(now);
                    }
                }
                Err(CallError::Refused(refused)) => {
                    terminate(child);
                    return Ended::Abandoned(format!("the heartbeat was refused ({refused}); the command was stopped"));
                }
                // The server is unreachable for now: keep working (and the output), the lease may still hold.
                Err(CallError::Unreachable(why)) => eprintln!("switchyard-agent: heartbeat failed: {why}"),
            }
            if !told_stop {
                if let Some(why) = output.live.lock().ok().and_then(|mut live| live.stopped()) {
                    eprintln!("switchyard-agent: {why}");
                    told_stop = true;
                }
            }
        }
        thread::sleep(POLL);
    }
}

/// SIGTERM to the command's process group, then SIGKILL if it has not exited after a grace.
fn terminate(child: &mut Child) {
    #[cfg(unix)]
    {
        let group = format!("-{}", child.id());
        let _ = Command::new("kill").args(["-TERM", "--", &group]).status();
        let deadline = Instant::now() + STOP_GRACE;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            thread::sleep(POLL);
        }
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// The work directory, absolute, so that the command and git see the same one.
pub fn absolute(dir: &Path) -> PathBuf {
    std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_huge_output_line_fails_the_attempt_without_being_held_and_the_lines_around_it_are_read() {
        let mut lines = Lines::new(Tool::Claude.reader());
        lines.push(b"{\"type\":\"system\",\"subtype\":\"init\"}\n");
        for _ in 0..(LINE_BYTES_MAX / 65536 + 2) {
            lines.push(&vec![b'x'; 65536]);
        }
        assert!(lines.partial.is_empty(), "the oversized line is dropped as it comes, not kept");
        lines.push(
            b"\n{\"type\":\"result\",\"subtype\":\"success\",\"is_error\":false,\"num_turns\":1,\"result\":\"ok\"}\n",
        );
        let done = lines.finish(crate::tools::testing::exit(0), "");
        assert!(!done.succeeded);
        assert!(done.error.unwrap().contains("were over"), "a clear line says why");
        assert_eq!(done.message.as_deref(), Some("ok"), "the result after it was still read");
    }

    #[test]
    fn output_over_the_limit_keeps_its_tail_and_says_what_was_cut() {
        let mut tail = Tail::default();
        tail.push(b"start\n");
        tail.push(&vec![b'x'; LOG_BYTES_MAX]);
        tail.push(b"\nthe error at the end\n");
        let text = tail.render();
        assert!(text.len() <= LOG_BYTES_MAX);
        assert!(text.starts_with('['), "{}", &text[..40]);
        assert!(text.contains("earlier bytes of output were cut"));
        assert!(text.ends_with("the error at the end\n"));
        assert!(!text.contains("start"));
    }
}
