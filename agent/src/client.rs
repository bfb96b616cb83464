//! The switchyard API as the runner uses it: JSON over HTTP(S) with the agent's bearer token,
//! retrying network errors, 5xx and 429 with backoff (honouring `Retry-After`), and turning
//! every other refusal into an error a person can act on.

use std::thread::sleep;
use std::time::Duration;

use serde_json::Value;

/// Tries of one call before giving up: with the backoff below, about a minute of an
/// unreachable or failing server.
const TRIES_MAX: u32 = 8;
/// First pause between tries; it doubles up to [`BACKOFF_CAP`].
const BACKOFF_FIRST: Duration = Duration::from_millis(500);
const BACKOFF_CAP: Duration = Duration::from_secs(15);
/// Longest a single call may take: a lease long-polls for at most 20 s.
const CALL_TIMEOUT: Duration = Duration::from_secs(45);

/// An answer: its status and JSON body (`Value::Null` when it had none).
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub body: Value,
}

/// A refusal the runner cannot retry its way out of.
#[derive(Debug)]
pub struct Refused {
    pub status: u16,
    pub code: String,
    pub message: String,
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.status, self.code, self.message)
    }
}

#[derive(Debug)]
pub enum CallError {
    /// The server could not be reached (or kept failing) after every try.
    Unreachable(String),
    Refused(Refused),
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CallError::Unreachable(why) => write!(f, "{why}"),
            CallError::Refused(refused) => write!(f, "{refused}"),
        }
    }
}

pub struct Client {
    base: String,
    token: String,
    http: ureq::Agent,
    /// Tries per call; preflight checks use fewer so a wrong URL fails fast.
    tries: u32,
}

impl Client {
    pub fn new(base: &str, token: &str) -> Client {
        Client {
            base: base.trim_end_matches('/').to_string(),
            token: token.to_string(),
            http: ureq::AgentBuilder::new().timeout(CALL_TIMEOUT).build(),
            tries: TRIES_MAX,
        }
    }

    /// The same client, giving up after `tries`.
    pub fn with_tries(mut self, tries: u32) -> Client {
        self.tries = tries.max(1);
        self
    }

    pub fn get(&self, path: &str) -> Result<Answer, CallError> {
        self.call("GET", path, None)
    }

    pub fn post(&self, path: &str, body: &Value) -> Result<Answer, CallError> {
        self.call("POST", path, Some(body))
    }

    fn call(&self, method: &str, path: &str, body: Option<&Value>) -> Result<Answer, CallError> {
        let url = format!("{}{path}", self.base);
        let mut pause = BACKOFF_FIRST;
        let mut last_problem = String::new();
        for attempt in 1..=self.tries {
            let request = self.http.request(method, &url).set("authorization", &format!("Bearer {}", self.token));
            let result = match body {
                Some(body) => request.send_json(body.clone()),
                None => request.call(),
            };
            let (status, retry_after, text) = match result {
                Ok(response) => {
                    let status = response.status();
                    (status, None, response.into_string().unwrap_or_default())
                }
                Err(ureq::Error::Status(status, response)) => {
                    let retry_after = response.header("retry-after").and_then(|v| v.trim().parse::<u64>().ok());
                    (status, retry_after, response.into_string().unwrap_or_default())
                }
                Err(ureq::Error::Transport(transport)) => {
                    last_problem = format!("cannot reach {url}: {transport}");
                    if attempt < self.tries {
                        sleep(pause);
                        pause = (pause * 2).min(BACKOFF_CAP);
                    }
                    continue;
                }
            };
            let body: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
            if status >= 500 || status == 429 {
                last_problem = format!("{method} {path} answered {status}: {}", error_message(&body));
                if attempt < self.tries {
                    let wait = retry_after.map_or(pause, |s| Duration::from_secs(s.min(60)));
                    sleep(wait);
                    pause = (pause * 2).min(BACKOFF_CAP);
                }
                continue;
            }
            if status >= 400 {
                return Err(CallError::Refused(Refused {
                    status,
                    code: body["error"]["code"].as_str().unwrap_or("unknown").to_string(),
                    message: error_message(&body),
                }));
            }
            return Ok(Answer { status, body });
        }
        Err(CallError::Unreachable(last_problem))
    }
}

/// The error's message, with each of its details (`report.items must be a list ...`).
fn error_message(body: &Value) -> String {
    let message = body["error"]["message"].as_str().map_or_else(|| "no error message".to_string(), String::from);
    let details: Vec<String> = body["error"]["details"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|d| {
            let text = d["message"].as_str()?;
            Some(d["field"].as_str().map_or_else(|| text.to_string(), |field| format!("{field} {text}")))
        })
        .collect();
    if details.is_empty() {
        message
    } else {
        format!("{message} ({})", details.join("; "))
    }
}

/// Says what a refusal of the runner's own credentials means and what to do about it.
pub fn explain(error: &CallError, agent: &str) -> String {
    match error {
        CallError::Refused(Refused { status: 401, .. }) => {
            "the token was refused (401): pass the agent's own token with --token or SWITCHYARD_TOKEN \
             (POST /v1/agents/{name}/token issues one)"
                .to_string()
        }
        CallError::Refused(Refused { status: 403, .. }) => {
            format!("this token may not act as {agent} (403): use {agent}'s own token, or an admin token")
        }
        CallError::Refused(Refused { status: 404, .. }) => {
            format!("no agent named {agent} is registered (404): create it with POST /v1/agents first")
        }
        other => other.to_string(),
    }
}
