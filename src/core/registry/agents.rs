//! The agent registry's rules: what an agent is, which inputs make a valid one, and how a Claude
//! Code subagent file (markdown with `name`, `description`, `tools`, `color` front matter and a
//! prompt body) becomes one.
//!
//! Storage and caching live in the shell; this module only parses and validates.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::core::base::encoding::{has_control_chars, CONTROL_CHARACTERS};
use crate::core::base::limits::{
    AGENT_CAPABILITIES_MAX, AGENT_CAPABILITY_BYTES_MAX, LEASE_MS_MAX, LEASE_MS_MIN, SCHEDULE_TIMEOUT_MS_DEFAULT,
    SCHEDULE_TIMEOUT_MS_MAX, SCHEDULE_TIMEOUT_MS_MIN, STEP_TIMEOUT_MS_MAX, STEP_TIMEOUT_MS_MIN,
};
use crate::core::edge::error::Detail;
use crate::core::registry::instructions::{
    is_agent_name, parse_front_matter, split_front_matter, AGENT_NAME_BYTES_MAX,
};

/// Longest agent description: a paragraph that a person reads in a list and analysis reads for
/// keywords.
pub const AGENT_DESCRIPTION_BYTES_MAX: usize = 2000;
/// Highest per-agent concurrency: more parallel steps than any workflow has (64) is pointless.
pub const AGENT_CONCURRENCY_MAX: u32 = 64;
/// Longest webhook URL.
pub const WEBHOOK_URL_BYTES_MAX: usize = 2048;
/// Largest subagent file imported: prompts are a few KB; 64 KiB is generous.
pub const SUBAGENT_FILE_BYTES_MAX: usize = 64 * 1024;
/// Default lease of a pull agent's step: long enough for a coding agent's heartbeat interval
/// (every minute or so) to miss one beat without losing the step.
pub const LEASE_MS_DEFAULT: i64 = 5 * 60 * 1000;
/// Default time a step may run in total before it counts as failed.
pub const STEP_TIMEOUT_MS_DEFAULT: i64 = 60 * 60 * 1000;

/// Names no agent may take: routes under `/v1/agents/`, and `auto-select`, which a workflow
/// step writes to ask for selection (an agent of that name could never be given a step).
const RESERVED_NAMES: [&str; 3] = ["import", "select", "auto-select"];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// The agent leases its steps over HTTP.
    Pull,
    /// switchyard POSTs each step to the agent's URL, signed.
    Webhook,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Pull => "pull",
            Mode::Webhook => "webhook",
        }
    }

    pub fn parse(text: &str) -> Option<Mode> {
        match text {
            "pull" => Some(Mode::Pull),
            "webhook" => Some(Mode::Webhook),
            _ => None,
        }
    }
}

/// The body of `POST /v1/agents` and `PUT /v1/agents/{name}`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentInput {
    /// Required on create; on update it may be omitted or must equal the path's name.
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub capabilities: Vec<String>,
    #[serde(default = "default_mode")]
    pub mode: Mode,
    #[serde(default)]
    pub webhook_url: Option<String>,
    #[serde(default = "default_concurrency")]
    pub max_concurrency: u32,
    /// How long a lease on one of its steps lasts without a heartbeat.
    #[serde(default = "default_lease_ms")]
    pub lease_ms: i64,
    /// How long one attempt of one of its steps may run in all.
    #[serde(default = "default_step_timeout_ms")]
    pub step_timeout_ms: i64,
    /// How long one of its steps may wait to be leased before it fails (or is skipped).
    #[serde(default = "default_schedule_timeout_ms")]
    pub schedule_timeout_ms: i64,
}

fn default_lease_ms() -> i64 {
    LEASE_MS_DEFAULT
}

fn default_step_timeout_ms() -> i64 {
    STEP_TIMEOUT_MS_DEFAULT
}

fn default_schedule_timeout_ms() -> i64 {
    SCHEDULE_TIMEOUT_MS_DEFAULT
}

fn default_mode() -> Mode {
    Mode::Pull
}

fn default_concurrency() -> u32 {
    1
}

/// An agent's fields as validated, ready to store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentSpec {
    pub name: String,
    pub description: String,
    /// Lowercased, trimmed, without repeats, in the order given.
    pub capabilities: Vec<String>,
    pub mode: Mode,
    pub webhook_url: Option<String>,
    pub max_concurrency: u32,
    pub lease_ms: i64,
    pub step_timeout_ms: i64,
    pub schedule_timeout_ms: i64,
    /// What an imported subagent file said besides the above: tools, color, the prompt.
    pub metadata: Value,
    /// The imported file, kept as is.
    pub source: Option<String>,
}

/// Checks an agent name taken from a path or a body.
pub fn check_name(name: &str) -> Result<(), Detail> {
    if !is_agent_name(name) {
        return Err(Detail::field(
            "name",
            format!(
                "must be 1 to {AGENT_NAME_BYTES_MAX} lowercase letters, digits and hyphens, not starting with a hyphen"
            ),
        ));
    }
    if RESERVED_NAMES.contains(&name) {
        return Err(Detail::field("name", format!("{name} is reserved")));
    }
    Ok(())
}

/// Validates an agent input; `path_name` is the name in the URL for an update. Returns every
/// problem at once.
pub fn validate(input: AgentInput, path_name: Option<&str>) -> Result<AgentSpec, Vec<Detail>> {
    let mut details = Vec::new();
    let name = match (path_name, input.name) {
        (Some(path), None) => path.to_string(),
        (Some(path), Some(body)) if body == path => body,
        (Some(_), Some(_)) => {
            details.push(Detail::field("name", "an agent cannot be renamed; the name must match the path"));
            String::new()
        }
        (None, Some(body)) => body,
        (None, None) => {
            details.push(Detail::field("name", "is required"));
            String::new()
        }
    };
    if !name.is_empty() {
        if let Err(detail) = check_name(&name) {
            details.push(detail);
        }
    }
    if input.description.len() > AGENT_DESCRIPTION_BYTES_MAX {
        details.push(Detail::field("description", format!("longer than {AGENT_DESCRIPTION_BYTES_MAX} bytes")));
    }
    if has_control_chars(&input.description, true) {
        details.push(Detail::field("description", CONTROL_CHARACTERS));
    }
    let capabilities = normalise_capabilities(&input.capabilities, &mut details);
    if input.max_concurrency == 0 || input.max_concurrency > AGENT_CONCURRENCY_MAX {
        details.push(Detail::field("max_concurrency", format!("must be from 1 to {AGENT_CONCURRENCY_MAX}")));
    }
    if !(LEASE_MS_MIN..=LEASE_MS_MAX).contains(&input.lease_ms) {
        details.push(Detail::field("lease_ms", format!("must be from {LEASE_MS_MIN} to {LEASE_MS_MAX}")));
    }
    if !(STEP_TIMEOUT_MS_MIN..=STEP_TIMEOUT_MS_MAX).contains(&input.step_timeout_ms) {
        details.push(Detail::field(
            "step_timeout_ms",
            format!("must be from {STEP_TIMEOUT_MS_MIN} to {STEP_TIMEOUT_MS_MAX}"),
        ));
    }
    if !(SCHEDULE_TIMEOUT_MS_MIN..=SCHEDULE_TIMEOUT_MS_MAX).contains(&input.schedule_timeout_ms) {
        details.push(Detail::field(
            "schedule_timeout_ms",
            format!("must be from {SCHEDULE_TIMEOUT_MS_MIN} to {SCHEDULE_TIMEOUT_MS_MAX}"),
        ));
    }
    match (input.mode, &input.webhook_url) {
        (Mode::Webhook, None) => details.push(Detail::field("webhook_url", "is required for a webhook agent")),
        (Mode::Webhook, Some(url)) => {
            if let Err(message) = check_webhook_url(url) {
                details.push(Detail::field("webhook_url", message));
            }
        }
        (Mode::Pull, Some(_)) => details.push(Detail::field("webhook_url", "only webhook agents have a webhook_url")),
        (Mode::Pull, None) => {}
    }
    if !details.is_empty() {
        return Err(details);
    }
    Ok(AgentSpec {
        name,
        description: input.description.trim().to_string(),
        capabilities,
        mode: input.mode,
        webhook_url: input.webhook_url,
        max_concurrency: input.max_concurrency,
        lease_ms: input.lease_ms,
        step_timeout_ms: input.step_timeout_ms,
        schedule_timeout_ms: input.schedule_timeout_ms,
        metadata: Value::Object(Default::default()),
        source: None,
    })
}

fn normalise_capabilities(given: &[String], details: &mut Vec<Detail>) -> Vec<String> {
    if given.len() > AGENT_CAPABILITIES_MAX {
        details.push(Detail::field("capabilities", format!("at most {AGENT_CAPABILITIES_MAX} keywords")));
        return Vec::new();
    }
    let mut capabilities: Vec<String> = Vec::new();
    for (index, capability) in given.iter().enumerate() {
        let normalised = capability.split_whitespace().collect::<Vec<_>>().join(" ").to_lowercase();
        if normalised.is_empty() || normalised.len() > AGENT_CAPABILITY_BYTES_MAX || !is_keyword(&normalised) {
            details.push(Detail::field(
                format!("capabilities[{index}]"),
                format!(
                    "must be 1 to {AGENT_CAPABILITY_BYTES_MAX} letters, digits, spaces and - _ . + # / (a keyword, not markup)"
                ),
            ));
        } else if !capabilities.contains(&normalised) {
            capabilities.push(normalised);
        }
    }
    capabilities
}

/// A capability is a keyword such as `d1`, `node.js`, `c++` or `server-side rendering`: it is
/// matched against task text and shown in lists, so nothing that could be markup is let in.
fn is_keyword(text: &str) -> bool {
    text.chars().all(|c| c.is_alphanumeric() || matches!(c, ' ' | '-' | '_' | '.' | '+' | '#' | '/'))
}

/// A webhook URL is an absolute http(s) URL with a host and no credentials in it.
fn check_webhook_url(url: &str) -> Result<(), String> {
    if url.len() > WEBHOOK_URL_BYTES_MAX {
        return Err(format!("longer than {WEBHOOK_URL_BYTES_MAX} bytes"));
    }
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or("must start with https:// or http://")?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    if authority.is_empty() {
        return Err("must name a host".into());
    }
    if authority.contains('@') {
        return Err("must not carry credentials; switchyard signs each request instead".into());
    }
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("must not contain spaces or control characters".into());
    }
    Ok(())
}

/// Reads a Claude Code subagent file: front matter `name`, `description`, `tools` (a comma list
/// or a YAML list), optional `color`, `model` and `capabilities`, and the prompt body. Without
/// `capabilities`, the description's significant words are used, so selection has something to
/// score. The file is imported as a pull agent.
pub fn from_subagent_file(text: &str) -> Result<AgentSpec, Vec<Detail>> {
    if text.len() > SUBAGENT_FILE_BYTES_MAX {
        return Err(vec![Detail::field("body", format!("larger than {SUBAGENT_FILE_BYTES_MAX} bytes"))]);
    }
    let split = split_front_matter(text);
    let Some(yaml) = split.yaml else {
        return Err(vec![Detail::at(
            1,
            1,
            "a subagent file starts with --- front matter holding name and description",
        )]);
    };
    let front = parse_front_matter(yaml);
    let string = |key: &str| front.get(key).and_then(Value::as_str).map(str::trim).map(String::from);
    let list = |key: &str| -> Vec<String> {
        match front.get(key) {
            Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).map(|s| s.trim().to_string()).collect(),
            Some(Value::String(text)) => {
                text.split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect()
            }
            _ => Vec::new(),
        }
    };
    let description = string("description").unwrap_or_default();
    let mut capabilities = list("capabilities");
    if capabilities.is_empty() {
        capabilities = keywords(&description);
    }
    let input = AgentInput {
        name: string("name"),
        description,
        capabilities,
        mode: Mode::Pull,
        webhook_url: None,
        max_concurrency: 1,
        lease_ms: LEASE_MS_DEFAULT,
        step_timeout_ms: STEP_TIMEOUT_MS_DEFAULT,
        schedule_timeout_ms: SCHEDULE_TIMEOUT_MS_DEFAULT,
    };
    let mut spec = validate(input, None)?;
    let mut metadata = serde_json::Map::new();
    metadata.insert("tools".into(), Value::from(list("tools")));
    if let Some(color) = string("color") {
        metadata.insert("color".into(), Value::from(color));
    }
    // Claude Code's `model` (an alias such as `sonnet`, a full model name, or `inherit`): the
    // runner passes it to the tool that runs the agent.
    if let Some(model) = string("model").filter(|m| !m.is_empty()) {
        metadata.insert("model".into(), Value::from(model));
    }
    metadata.insert("prompt".into(), Value::from(text[split.body_start..].trim()));
    spec.metadata = Value::Object(metadata);
    spec.source = Some(text.to_string());
    Ok(spec)
}

/// Significant words of a description, as capability keywords: lowercase, at least two
/// characters (so `d1`, `kv`, `r2` and `ui` count), common English words left out, first
/// occurrence order, bounded.
fn keywords(description: &str) -> Vec<String> {
    const STOPWORDS: [&str; 62] = [
        "the", "and", "for", "with", "that", "this", "from", "into", "your", "you", "are", "use", "uses", "used",
        "when", "what", "which", "who", "all", "any", "can", "will", "should", "must", "its", "their", "them", "then",
        "than", "has", "have", "was", "were", "been", "being", "not", "but", "also", "only", "agent", "an", "to", "of",
        "in", "on", "is", "it", "as", "at", "by", "or", "be", "we", "if", "do", "no", "so", "up", "my", "me", "us",
        "our",
    ];
    let mut words: Vec<String> = Vec::new();
    for word in description.split(|c: char| !c.is_alphanumeric()) {
        let word = word.to_lowercase();
        if word.chars().count() >= 2 && !STOPWORDS.contains(&word.as_str()) && !words.contains(&word) {
            words.push(word);
        }
        if words.len() == AGENT_CAPABILITIES_MAX {
            break;
        }
    }
    words
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn input(value: Value) -> AgentInput {
        serde_json::from_value(value).expect("well-formed input")
    }

    fn fields(result: Result<AgentSpec, Vec<Detail>>) -> Vec<String> {
        result.err().unwrap_or_default().into_iter().map(|d| d.field.unwrap_or_default()).collect()
    }

    #[test]
    fn a_minimal_agent_is_a_pull_agent_with_concurrency_one() {
        let spec = validate(input(json!({"name": "db-expert"})), None).unwrap();
        assert_eq!((spec.mode, spec.max_concurrency, spec.webhook_url), (Mode::Pull, 1, None));
    }

    #[test]
    fn capabilities_are_normalised_and_deduplicated() {
        let spec =
            validate(input(json!({"name": "a", "capabilities": ["D1", " Rate   Limiting ", "d1"]})), None).unwrap();
        assert_eq!(spec.capabilities, vec!["d1", "rate limiting"]);
    }

    #[test]
    fn every_problem_of_an_agent_is_reported() {
        let bad = input(json!({
            "name": "Bad/Name",
            "description": "x".repeat(AGENT_DESCRIPTION_BYTES_MAX + 1),
            "capabilities": ["ok", "", "a\u{0}b"],
            "mode": "webhook",
            "max_concurrency": 0
        }));
        assert_eq!(
            fields(validate(bad, None)),
            vec!["name", "description", "capabilities[1]", "capabilities[2]", "max_concurrency", "webhook_url"]
        );
    }

    #[test]
    fn capabilities_are_keywords_and_markup_is_refused() {
        let mut details = Vec::new();
        let kept = normalise_capabilities(
            &["Node.js".into(), "C++".into(), "server-side  rendering".into(), "c#".into(), "ci/cd".into()],
            &mut details,
        );
        assert_eq!(kept, vec!["node.js", "c++", "server-side rendering", "c#", "ci/cd"]);
        assert!(details.is_empty());
        for markup in ["<img src=x>", "a\"b", "it's", "x&y", "`cmd`"] {
            let mut details = Vec::new();
            normalise_capabilities(&[markup.to_string()], &mut details);
            assert_eq!(details.len(), 1, "{markup}");
        }
    }

    #[test]
    fn names_are_checked_and_reserved_route_names_refused() {
        for bad in ["", "UPPER", "-lead", "a/b", "..", "a b", "import", "select", "auto-select", &"a".repeat(65)] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
        for good in ["a", "cloudflare-specialist", "agent-2", &"a".repeat(64)] {
            assert!(check_name(good).is_ok(), "{good:?}");
        }
    }

    #[test]
    fn an_update_keeps_the_path_name_and_refuses_a_rename() {
        assert_eq!(validate(input(json!({})), Some("a")).unwrap().name, "a");
        assert_eq!(validate(input(json!({"name": "a"})), Some("a")).unwrap().name, "a");
        assert_eq!(fields(validate(input(json!({"name": "b"})), Some("a"))), vec!["name"]);
        assert_eq!(fields(validate(input(json!({})), None)), vec!["name"]);
    }

    #[test]
    fn webhook_urls_are_checked() {
        let check =
            |url: &str| validate(input(json!({"name": "w", "mode": "webhook", "webhook_url": url})), None).is_ok();
        assert!(check("https://agents.example.com/hook"));
        assert!(check("http://127.0.0.1:9000/hook"));
        assert!(!check("ftp://example.com"));
        assert!(!check("https://"));
        assert!(!check("https://user:pw@example.com/"));
        assert!(!check("https://exa mple.com/"));
        assert!(!check("/relative"));
        assert!(
            fields(validate(input(json!({"name": "p", "webhook_url": "https://x.example"})), None))
                == vec!["webhook_url"]
        );
    }

    #[test]
    fn a_claude_code_subagent_file_is_imported_with_its_tools_color_model_and_prompt() {
        let file = "---\nname: db-reviewer\ndescription: Reviews D1 migrations and SQL queries for safety\ntools: Read, Grep, Bash\ncolor: blue\nmodel: sonnet\n---\n\nYou review database changes.\n";
        let spec = from_subagent_file(file).unwrap();
        assert_eq!(spec.name, "db-reviewer");
        assert_eq!(spec.mode, Mode::Pull);
        assert_eq!(spec.capabilities, vec!["reviews", "d1", "migrations", "sql", "queries", "safety"]);
        assert_eq!(
            spec.metadata,
            json!({"tools": ["Read", "Grep", "Bash"], "color": "blue", "model": "sonnet", "prompt": "You review database changes."})
        );
        assert_eq!(spec.source.as_deref(), Some(file));
    }

    #[test]
    fn explicit_capabilities_in_a_subagent_file_win() {
        let file = "---\nname: x\ndescription: whatever words\ncapabilities: [d1, kv]\ntools:\n  - Read\n---\nbody";
        let spec = from_subagent_file(file).unwrap();
        assert_eq!(spec.capabilities, vec!["d1", "kv"]);
        assert_eq!(spec.metadata["tools"], json!(["Read"]));
    }

    #[test]
    fn subagent_files_without_front_matter_or_a_valid_name_are_refused() {
        assert!(from_subagent_file("just a prompt").is_err());
        assert_eq!(fields(from_subagent_file("---\ndescription: no name\n---\n")), vec!["name"]);
        assert_eq!(fields(from_subagent_file("---\nname: ../etc\n---\n")), vec!["name"]);
        assert!(from_subagent_file(&"x".repeat(SUBAGENT_FILE_BYTES_MAX + 1)).is_err());
    }
}
