//! switchyard-agent: turns any command (a coding agent, a script, a CI job) into a switchyard
//! pull agent. `run` leases the agent's steps and runs the command for each, with the change
//! it made measured from git; `send` and `inbox` speak the agent message protocol.

mod client;
mod diff;
mod live;
mod prompt;
mod report;
mod runner;
mod serve;
mod signature;
mod tools;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Args, Parser, Subcommand};
use serde_json::{json, Value};

use client::{explain, Client};

#[derive(Parser)]
#[command(name = "switchyard-agent", version, about = "Run any command as a switchyard agent")]
struct Cli {
    #[command(subcommand)]
    command: Commands,
}

/// Where switchyard is and who this is. Flags win over environment variables, which win over
/// the config file.
#[derive(Args)]
struct Connection {
    /// The switchyard Worker, e.g. http://localhost:8787.
    #[arg(long, env = "SWITCHYARD_URL")]
    url: Option<String>,
    /// The agent's own token (or an admin token).
    #[arg(long, env = "SWITCHYARD_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// A JSON file with any of url, token, agent and workdir.
    #[arg(long, env = "SWITCHYARD_CONFIG")]
    config: Option<PathBuf>,
}

/// How a step's command is run, for `run` and `serve` alike.
#[derive(Args)]
struct Work {
    /// The agent to work as, e.g. cloudflare-specialist.
    #[arg(long, env = "SWITCHYARD_AGENT")]
    agent: Option<String>,
    /// Where the command runs; when it is a git work tree, files and lines changed are measured.
    #[arg(long, env = "SWITCHYARD_WORKDIR")]
    workdir: Option<PathBuf>,
    /// Seconds between heartbeats while a command runs.
    #[arg(long, default_value_t = 30)]
    heartbeat_seconds: u64,
    /// Longest a command may run; it is stopped and the step failed after this.
    #[arg(long, default_value_t = 3600)]
    timeout_seconds: u64,
    /// What runs each step: a coding CLI invoked non-interactively with the step's prompt and
    /// its subagent's system prompt, tools and model, its output read into the step's log and
    /// report; or `command`, the command after `--`.
    #[arg(long, value_enum, default_value = "command", env = "SWITCHYARD_TOOL")]
    tool: tools::Tool,
    /// The model the tool uses, over the one the agent's subagent file names.
    #[arg(long)]
    model: Option<String>,
    /// Most agentic turns per step (claude).
    #[arg(long)]
    max_turns: Option<u32>,
    /// Most US dollars a step may spend (claude).
    #[arg(long)]
    max_budget_usd: Option<f64>,
    /// An extra argument for the tool, after its own (repeat for several).
    #[arg(long = "tool-arg", allow_hyphen_values = true)]
    tool_args: Vec<String>,
}

#[derive(Subcommand)]
enum Commands {
    /// Lease this agent's steps and run the tool (or COMMAND) for each, until stopped with Ctrl-C.
    ///
    /// The command runs in the work directory with the step's prompt on stdin and in
    /// $SWITCHYARD_PROMPT_FILE, the raw step in $SWITCHYARD_STEP_FILE, and may write a JSON
    /// report to $SWITCHYARD_REPORT_FILE. Its output is the step's log; exit 0 means success.
    /// With --tool claude|codex|gemini|aider the tool is run without a wrapper and its own
    /// output decides success.
    Run {
        #[command(flatten)]
        connection: Connection,
        #[command(flatten)]
        work: Work,
        /// Exit after this many steps (0: keep going).
        #[arg(long, default_value_t = 0)]
        steps: u64,
        /// The command and its arguments, after `--` (for --tool command).
        #[arg(last = true)]
        command: Vec<String>,
    },
    /// Serve webhook deliveries for a webhook agent: check switchyard's signature (timestamp
    /// tolerance, each delivery id once), answer 202, run COMMAND for the step as `run` does and
    /// complete it over the API. Messages are acknowledged and printed.
    Serve {
        #[command(flatten)]
        connection: Connection,
        #[command(flatten)]
        work: Work,
        /// The agent's webhook secret (whsec_...), shown when the agent was created or rotated.
        #[arg(long, env = "SWITCHYARD_WEBHOOK_SECRET", hide_env_values = true)]
        secret: String,
        /// Address to listen on; the agent's webhook_url must reach it.
        #[arg(long, default_value = "127.0.0.1:8790")]
        listen: String,
        /// The command and its arguments, after `--` (for --tool command).
        #[arg(last = true)]
        command: Vec<String>,
    },
    /// Send a message to another agent; with --wait, wait for the answer to a query.
    Send {
        #[command(flatten)]
        connection: Connection,
        /// The sending agent (yourself).
        #[arg(long, env = "SWITCHYARD_AGENT")]
        from: String,
        #[arg(long)]
        to: String,
        /// query, response or notify.
        #[arg(long = "type", default_value = "query")]
        kind: String,
        /// The payload, a JSON object.
        #[arg(long, default_value = "{}")]
        payload: String,
        #[arg(long)]
        correlation_id: String,
        /// The task the message is about.
        #[arg(long, env = "SWITCHYARD_TASK_ID")]
        task_id: Option<String>,
        /// For a query: seconds to wait for the response (printed), 0 to not wait.
        #[arg(long, default_value_t = 0)]
        wait: u64,
    },
    /// Print the agent's messages after a cursor, waiting up to --wait seconds for one.
    Inbox {
        #[command(flatten)]
        connection: Connection,
        #[arg(long, env = "SWITCHYARD_AGENT")]
        agent: Option<String>,
        #[arg(long, default_value_t = 0)]
        after: u64,
        #[arg(long, default_value_t = 0)]
        wait: u64,
    },
}

/// The config file's values, all optional.
fn config_of(path: Option<&PathBuf>) -> Result<Value, String> {
    let Some(path) = path else { return Ok(Value::Null) };
    let text =
        std::fs::read_to_string(path).map_err(|e| format!("cannot read the config file {}: {e}", path.display()))?;
    serde_json::from_str(&text).map_err(|e| format!("the config file {} is not JSON: {e}", path.display()))
}

fn setting(flag: Option<String>, config: &Value, key: &str, what: &str) -> Result<String, String> {
    flag.or_else(|| config[key].as_str().map(String::from)).ok_or_else(|| {
        format!(
            "{what} is missing: pass --{key}, set SWITCHYARD_{}, or put \"{key}\" in the config file",
            key.to_uppercase()
        )
    })
}

/// The runner's settings from flags, environment and config file.
fn settings_of(
    connection: Connection,
    work: Work,
    command: Vec<String>,
    steps: u64,
) -> Result<runner::Settings, String> {
    let config = config_of(connection.config.as_ref())?;
    let workdir =
        work.workdir.or_else(|| config["workdir"].as_str().map(PathBuf::from)).unwrap_or_else(|| PathBuf::from("."));
    let choices = tools::Choices {
        model: work.model,
        max_turns: work.max_turns,
        max_budget_usd: work.max_budget_usd,
        extra: work.tool_args,
    };
    work.tool.check(&choices)?;
    match (work.tool, command.is_empty()) {
        (tools::Tool::Command, true) => return Err("give the command to run after --, or choose a --tool".into()),
        (tools::Tool::Command, false) | (_, true) => {}
        (tool, false) => {
            return Err(format!(
                "--tool {} runs the tool itself; a command after -- is only for --tool command",
                tool.program()
            ))
        }
    }
    Ok(runner::Settings {
        url: setting(connection.url, &config, "url", "the switchyard URL")?,
        token: setting(connection.token, &config, "token", "the token")?,
        agent: setting(work.agent, &config, "agent", "the agent name")?,
        workdir: runner::absolute(&workdir),
        tool: work.tool,
        choices,
        command,
        heartbeat: Duration::from_secs(work.heartbeat_seconds.max(1)),
        timeout: Duration::from_secs(work.timeout_seconds.max(1)),
        steps,
    })
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("switchyard-agent: {message}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<(), String> {
    match cli.command {
        Commands::Run { connection, work, steps, command } => {
            let settings = settings_of(connection, work, command, steps)?;
            let stop = Arc::new(AtomicBool::new(false));
            let flag = Arc::clone(&stop);
            ctrlc::set_handler(move || {
                if flag.swap(true, Ordering::SeqCst) {
                    // A second Ctrl-C: the user wants out now.
                    std::process::exit(130);
                }
                eprintln!("switchyard-agent: stopping; the running step is handed back (Ctrl-C again to quit at once)");
            })
            .map_err(|e| format!("cannot watch for Ctrl-C: {e}"))?;
            runner::run(&settings, stop)
        }
        Commands::Serve { connection, work, secret, listen, command } => {
            let settings = settings_of(connection, work, command, 0)?;
            serve::serve(settings, &listen, &secret, Arc::new(AtomicBool::new(false)))
        }
        Commands::Send { connection, from, to, kind, payload, correlation_id, task_id, wait } => {
            let config = config_of(connection.config.as_ref())?;
            let client = Client::new(
                &setting(connection.url, &config, "url", "the switchyard URL")?,
                &setting(connection.token, &config, "token", "the token")?,
            );
            let payload: Value = serde_json::from_str(&payload).map_err(|e| format!("--payload is not JSON: {e}"))?;
            let mut message =
                json!({"from": from, "to": to, "type": kind, "payload": payload, "correlation_id": correlation_id});
            if let Some(task_id) = task_id {
                message["task_id"] = Value::from(task_id);
            }
            let sent = client.post("/v1/messages", &message).map_err(|e| explain(&e, &from))?;
            if kind != "query" || wait == 0 {
                println!("{}", sent.body["message"]);
                return Ok(());
            }
            let after = sent.body["message"]["seq"].as_u64().unwrap_or(0);
            let answer = wait_for_answer(&client, &from, &to, &correlation_id, after, Duration::from_secs(wait))?;
            println!("{answer}");
            Ok(())
        }
        Commands::Inbox { connection, agent, after, wait } => {
            let config = config_of(connection.config.as_ref())?;
            let agent = setting(agent, &config, "agent", "the agent name")?;
            let client = Client::new(
                &setting(connection.url, &config, "url", "the switchyard URL")?,
                &setting(connection.token, &config, "token", "the token")?,
            );
            let page = client
                .get(&format!("/v1/agents/{agent}/inbox?after={after}&wait={}", wait.min(20)))
                .map_err(|e| explain(&e, &agent))?;
            println!("{}", page.body);
            Ok(())
        }
    }
}

/// Polls `me`'s inbox for the response from `peer` with `correlation_id`, for up to `limit`.
fn wait_for_answer(
    client: &Client,
    me: &str,
    peer: &str,
    correlation_id: &str,
    mut after: u64,
    limit: Duration,
) -> Result<Value, String> {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        let wait = deadline.saturating_duration_since(Instant::now()).as_secs().clamp(1, 20);
        let page =
            client.get(&format!("/v1/agents/{me}/inbox?after={after}&wait={wait}")).map_err(|e| explain(&e, me))?;
        for message in page.body["messages"].as_array().into_iter().flatten() {
            let answers =
                message["type"] == "response" && message["from"] == peer && message["correlation_id"] == correlation_id;
            if answers {
                return Ok(message.clone());
            }
        }
        after = page.body["next_cursor"].as_str().and_then(|c| c.parse().ok()).unwrap_or(after);
    }
    Err(format!("no response from {peer} to {correlation_id} within {} s", limit.as_secs()))
}
