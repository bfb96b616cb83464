//! Task analysis (step 1 of the seed workflow) and dynamic agent selection
//! (`subagent="auto-select" requirements="..."`).
//!
//! [`analyze`] reads a task's title, description, requirements and the paths it touches, finds
//! evidence of backend, frontend and infrastructure work, both in plain English (word forms,
//! phrases, synonyms, negations) and in file paths, and from that evidence decides the task type
//! and the specialists, with every piece of evidence and a reason for each shown. A word model
//! learned from labelled tasks ([`words`]) reads the task too, and decides the type instead when
//! the vocabulary's evidence is thin and the words clearly point elsewhere. [`select`] scores
//! registered agents' capabilities against a step's requirements.
//!
//! Both are pure and deterministic: no clock, no randomness, no I/O, no hash-map order in the
//! output, and every input is read only up to a named bound. Neither ever guesses: when nothing
//! matches, the answer says so (confidence 0.0 with both specialists and a reason, or no agent).

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

mod routing;
mod vocabulary;
mod words;
pub use routing::{Routing, RoutingInput, Rule, RuleOutcome};
use vocabulary::*;

use crate::core::base::limits::{
    AGENT_CAPABILITIES_MAX, AGENT_CAPABILITY_BYTES_MAX, ANALYSIS_TEXT_BYTES_MAX, EVIDENCE_MAX, SELECT_AGENTS_MAX,
    SELECT_DESCRIPTION_BYTES_MAX, SELECT_REQUIREMENTS_MAX, TASK_PATHS_MAX, TASK_PATH_BYTES_MAX, TASK_REQUIREMENTS_MAX,
    TASK_REQUIREMENT_BYTES_MAX,
};

/// Characters of matched text quoted in a piece of evidence: enough for a phrase or a path.
const MATCHED_CHARS_MAX: usize = 80;

/// How many words after a term a marker that it stays as it is ("the endpoint response stays
/// the same", "user uploads are out of scope") may come.
const POST_NEGATION_REACH_WORDS: usize = 6;

/// How many words after a negator it still governs. "without touching the database" needs
/// three; past four a sentence has usually moved on to what should be done instead.
const NEGATION_REACH_WORDS: usize = 4;

/// When the word model's reading decides the type instead of the vocabulary's: its type leads
/// the vocabulary's by more than [`WORDS_OVERRULE_MARGIN`] nats (natural-log units), the
/// vocabulary's confidence is below [`WORDS_OVERRULE_CONFIDENCE`], and the model knows at least
/// [`WORDS_OVERRULE_KNOWN_WORDS`] of the task's words or the vocabulary found nothing at all.
///
/// Chosen by reading each of the five labelled sets the vocabulary was never tuned on
/// (`tuning-8.json` to `tuning-12.json`, 1,000 tickets) with weights trained on the other eleven
/// sets: this rule was right on 899. Without the floor of known words it was right on 909, but
/// one-line tasks ("Add a contact form that saves messages to D1"; "Nested routing for admin:
/// each tab gets its own route and a shared layout") then went to the words, whose sum over a
/// dozen words means little against terms that name the work. With no vocabulary evidence at all
/// there is nothing for the floor to protect (the floor everywhere: 885). The vocabulary's
/// confidence is 0.5 for one strong term, 0.75 for two and 0.88 for three, so the words
/// overrule anything short of three one-sided terms.
const WORDS_OVERRULE_MARGIN: f64 = 1.0;
const WORDS_OVERRULE_CONFIDENCE: f64 = 0.89;
const WORDS_OVERRULE_KNOWN_WORDS: usize = 15;

/// The margin, in nats, at which a type the word model decided has confidence `1 − 1/e`.
const WORD_CONFIDENCE_NATS: f64 = 4.0;

/// Scores of [`select`], per requirement and agent; the best kind of match counts, once.
/// A requirement equal to a capability (after case, separators and plural: "Components" =
/// "component"):
const SCORE_EXACT: u32 = 10;
/// The same words in another form ("caching" ~ "cache") or a synonym (the capability names only
/// a term of the analysis vocabulary that the requirement names too: "bucket" ~ "r2", "table" ~
/// "database"):
const SCORE_RELATED: u32 = 5;
/// A word shared with a longer capability ("unit" ~ "unit tests"):
const SCORE_PARTIAL: u32 = 3;
/// A word of the agent's description:
const SCORE_DESCRIPTION: u32 = 1;

/// What analysis reads: the task as submitted.
#[derive(Debug, Clone, Copy)]
pub struct TaskInput<'a> {
    pub title: &'a str,
    pub description: &'a str,
    pub requirements: &'a [String],
    /// Repository paths the task touches (`src/routes/+page.svelte`, `migrations/0002.sql`).
    pub paths: &'a [String],
}

/// The seed's four task types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TaskType {
    Frontend,
    Backend,
    FullStack,
    Infrastructure,
}

impl TaskType {
    pub fn name(self) -> &'static str {
        match self {
            TaskType::Frontend => "frontend",
            TaskType::Backend => "backend",
            TaskType::FullStack => "full-stack",
            TaskType::Infrastructure => "infrastructure",
        }
    }
}

/// The kind of work a piece of evidence points to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Area {
    Backend,
    Frontend,
    Infrastructure,
}

/// Where a piece of evidence was found; evidence is listed in this order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    Title,
    Description,
    Requirement,
    Path,
}

/// One match: a word, phrase or path that points to an area.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Evidence {
    pub area: Area,
    /// The canonical term (`d1`, `form`, `deployment`): "databases" and "SQL" both give `d1`.
    pub term: String,
    /// The text as it appeared (for paths, the path).
    pub matched: String,
    pub source: Source,
    /// Preceded by a negation ("without touching the database"): listed, but not counted.
    pub negated: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Analysis {
    pub task_type: TaskType,
    /// How one-sided and how strong the evidence is, from 0.0 (nothing matched) to 1.0, rounded
    /// to two decimals. See [`confidence`]; when the word model decided, `1 − e^(−margin/4)`.
    pub confidence: f64,
    /// The specialists the task needs, by the workflow's routing.
    pub agents: Vec<String>,
    pub evidence: Vec<Evidence>,
    pub reasons: Vec<String>,
    /// Which routing rules fired and on what.
    pub routing: Routing,
    /// What the word model made of the task, when any of its words is known to it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub words: Option<WordsOutcome>,
}

/// The word model's reading (see [`words`]), as the analysis shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WordsOutcome {
    pub task_type: TaskType,
    /// How far its type leads the next, in nats, rounded to two decimals.
    pub margin: f64,
    /// Whether it decided the type, overruling the vocabulary's weak evidence.
    pub decided: bool,
    /// The words that speak most for its type, strongest first.
    pub words: Vec<String>,
}

/// Reads a task and decides its type, its specialists (by `routing`, see [`routing`]) and why.
///
/// The type, following the seed's `<task_type>`: backend evidence (Cloudflare services, API
/// endpoints...) and frontend evidence (UI components, routing, forms...) together make
/// full-stack, either alone makes its own type. Infrastructure (deployment, configuration, CI)
/// decides only when there is no backend or frontend work, and general terms ("the worker",
/// "SvelteKit") only when nothing else matched. With no evidence at all the answer is full-stack
/// with confidence 0.0, the reasons say that nothing matched, and routing keeps every agent.
pub fn analyze(input: &TaskInput, routing: &RoutingInput) -> Analysis {
    let lexicon = Lexicon::new();
    let found = evidence(&lexicon, input);
    decide(&lexicon, input, &found, routing)
}

/// The vocabulary terms of the evidence that are not negated, each once, as the word model reads
/// them.
fn counted_terms(found: &[Found]) -> Vec<&'static str> {
    let terms: BTreeSet<&'static str> = found.iter().filter(|f| f.negator.is_none()).map(|f| f.term.id).collect();
    terms.into_iter().collect()
}

/// [`counted_terms`] of a task, for training the word model.
#[cfg(test)]
fn terms_of(input: &TaskInput) -> Vec<&'static str> {
    counted_terms(&evidence(&Lexicon::new(), input))
}

/// Every term and path of the task that points to an area, negated ones included.
fn evidence(lexicon: &Lexicon, input: &TaskInput) -> Vec<Found> {
    let mut found = Vec::new();
    scan_text(lexicon, head(input.title, ANALYSIS_TEXT_BYTES_MAX), Source::Title, &mut found);
    scan_text(lexicon, head(input.description, ANALYSIS_TEXT_BYTES_MAX), Source::Description, &mut found);
    for requirement in input.requirements.iter().take(TASK_REQUIREMENTS_MAX) {
        scan_text(lexicon, head(requirement, TASK_REQUIREMENT_BYTES_MAX), Source::Requirement, &mut found);
    }
    let mut paths_seen = BTreeSet::new();
    for path in input.paths.iter().take(TASK_PATHS_MAX) {
        let path = head(path.trim(), TASK_PATH_BYTES_MAX);
        let Some((class, term)) = classify_path(path).and_then(|c| Some((c, find_term(c.term)?))) else { continue };
        if paths_seen.insert(path) {
            found.push(Found {
                term,
                source: Source::Path,
                matched: quote(path),
                key: path.to_lowercase(),
                negator: None,
                what: Some(class.what),
            });
        }
    }
    found
}

/// One piece of evidence, with what the decision and the reasons need besides what is shown.
struct Found {
    term: &'static Term,
    source: Source,
    matched: String,
    /// What makes two pieces of evidence the same one: the phrase, or the path.
    key: String,
    /// The negator that governs it, if any.
    negator: Option<&'static str>,
    /// For paths: what kind of file it is.
    what: Option<&'static str>,
}

/// Distinct counted evidence per area. Repeating a word does not make a task more backend; naming
/// D1, a table and a migration does.
#[derive(Debug, Default, Clone, Copy)]
struct Side {
    strong: u32,
    general: u32,
}

impl Side {
    /// Weight in half units: a strong term counts 2, a general one 1.
    fn halves(self) -> u32 {
        self.strong.saturating_mul(2).saturating_add(self.general)
    }
}

#[derive(Debug, Default)]
struct Tally {
    backend: Side,
    frontend: Side,
    infrastructure: Side,
}

impl Tally {
    fn side(&mut self, area: Area) -> &mut Side {
        match area {
            Area::Backend => &mut self.backend,
            Area::Frontend => &mut self.frontend,
            Area::Infrastructure => &mut self.infrastructure,
        }
    }
}

/// Why the type is what it is, which changes how the reasons read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Basis {
    Application,
    Infrastructure,
    GeneralTerms,
    /// The word model overruled weak or missing vocabulary evidence.
    Words,
}

/// The vocabulary's verdict on the evidence found, with the counts it rests on; `None` when
/// nothing counted.
fn vocabulary_verdict(found: &[Found]) -> (Option<(TaskType, Basis)>, Tally) {
    let mut tally = Tally::default();
    let mut counted = BTreeSet::new();
    for f in found.iter().filter(|f| f.negator.is_none()) {
        if counted.insert((f.term.id, f.key.as_str())) {
            let side = tally.side(f.term.area);
            match f.term.strength {
                Strength::Strong => side.strong = side.strong.saturating_add(1),
                Strength::General => side.general = side.general.saturating_add(1),
            }
        }
    }
    let (b, f, i) = (tally.backend, tally.frontend, tally.infrastructure);
    let counted = |area: Area| found.iter().filter(move |f| f.negator.is_none() && f.term.area == area);
    let only_resources = counted(Area::Backend).all(|f| RESOURCE_NAMES.contains(&f.key.as_str()));
    let configures = counted(Area::Infrastructure).any(|f| CONFIGURATION_TERMS.contains(&f.term.id));
    let provisioning = configures && f.strong == 0 && only_resources;
    let strong = |area: Area| {
        let mut seen = BTreeSet::new();
        let distinct =
            counted(area).filter(|f| f.term.strength == Strength::Strong && seen.insert((f.term.id, &f.key)));
        u32::try_from(distinct.count()).unwrap_or(u32::MAX)
    };
    // More distinct deployment and configuration evidence than application evidence: the
    // application nouns are what is being configured ("a WAF skip rule for the contact form").
    let titled = |area: Area| counted(area).any(|f| f.source == Source::Title && f.term.strength == Strength::Strong);
    // A title that names only deployment or configuration work says what the task is, when the
    // description's application evidence does not outnumber it.
    let titled_operations = titled(Area::Infrastructure)
        && !titled(Area::Backend)
        && !titled(Area::Frontend)
        && strong(Area::Infrastructure) >= strong(Area::Backend).saturating_add(strong(Area::Frontend));
    // "No code changes" says in so many words that the application is not the work.
    let no_code = counted(Area::Infrastructure).any(|f| f.term.id == "no-code");
    let operations = titled_operations
        || no_code
        || strong(Area::Infrastructure) > strong(Area::Backend).saturating_add(strong(Area::Frontend));
    let verdict = if operations || provisioning {
        Some((TaskType::Infrastructure, Basis::Infrastructure))
    } else if b.strong > 0 || f.strong > 0 {
        Some((app_type(b.strong > 0, f.strong > 0), Basis::Application))
    } else if i.halves() > 0 {
        Some((TaskType::Infrastructure, Basis::Infrastructure))
    } else if b.general > 0 || f.general > 0 {
        Some((app_type(b.general > 0, f.general > 0), Basis::GeneralTerms))
    } else {
        None
    };
    (verdict, tally)
}

fn decide(lexicon: &Lexicon, input: &TaskInput, found: &[Found], routing: &RoutingInput) -> Analysis {
    let (verdict, tally) = vocabulary_verdict(found);
    let i = tally.infrastructure;
    let vocabulary_type = verdict.map_or(TaskType::FullStack, |(t, _)| t);
    let vocabulary_confidence = verdict.map_or(0.0, |(t, _)| confidence(t, &tally));
    let reading = words::read(words::features(input.title, input.description, input.paths, &counted_terms(found)));
    let overrules = reading.as_ref().filter(|r| words_overrule(r, vocabulary_type, vocabulary_confidence));
    let verdict = match overrules {
        Some(r) => Some((r.task_type, Basis::Words)),
        None => verdict,
    };
    let task_type = verdict.map_or(TaskType::FullStack, |(t, _)| t);
    let weighed: Vec<(&Found, bool)> = found.iter().map(|f| (f, decides(f, verdict))).collect();
    let by_words = overrules.is_some();
    let (agents, routed) = routing::route(lexicon, input, task_type, &weighed, by_words, routing);
    let mut reasons = Vec::new();
    let mut said = BTreeSet::new();
    for f in found {
        if said.insert((f.term.id, f.negator.is_some())) {
            reasons.push(reason(f, verdict.map(|(t, _)| t)));
        }
    }
    match verdict {
        None if found.is_empty() => reasons.push(
            "nothing in the title, description, requirements or paths matched a known backend, frontend or \
             infrastructure term, so the task is treated as full-stack"
                .into(),
        ),
        None => reasons.push(
            "every term that matched was negated, so nothing points to a type: the task is treated as \
             full-stack"
                .into(),
        ),
        // Said below, with the reading.
        Some((_, Basis::Words)) => {}
        Some((task_type, basis)) => {
            if basis == Basis::GeneralTerms {
                reasons.push("only general terms matched, so the type rests on weak evidence".into());
            }
            if basis == Basis::Application && i.halves() > 0 {
                reasons.push(
                    "infrastructure terms matched too; when a task also has backend or frontend work, that work \
                     decides the type"
                        .into(),
                );
            }
            let summary = match task_type {
                TaskType::FullStack => "backend and frontend work both matched",
                TaskType::Backend => "backend work matched and frontend work did not",
                TaskType::Frontend => "frontend work matched and backend work did not",
                TaskType::Infrastructure => "only deployment and configuration work matched",
            };
            reasons.push(format!("{summary} → {}", task_type.name()));
        }
    }
    if let Some(r) = overrules {
        let vocabulary = if vocabulary_confidence == 0.0 {
            "the vocabulary found no evidence".to_string()
        } else {
            format!(
                "the vocabulary's evidence was weak ({} with confidence {vocabulary_confidence:.2})",
                vocabulary_type.name()
            )
        };
        reasons.push(format!(
            "{vocabulary}; the words {} are typical of {} tasks in the labelled examples and lead by {:.1} nats → {}",
            quoted_words(&r.words),
            task_type.name(),
            r.lead_over(vocabulary_type),
            task_type.name()
        ));
    }
    reasons.extend(routing_reasons(&routed, &agents));
    if found.len() > EVIDENCE_MAX {
        reasons.push(format!("{} pieces of evidence matched; the first {EVIDENCE_MAX} are listed", found.len()));
    }
    let confidence = match overrules {
        Some(r) => round2(1.0 - (-r.margin / WORD_CONFIDENCE_NATS).exp()),
        None => vocabulary_confidence,
    };
    let words = reading.map(|r| WordsOutcome {
        task_type: r.task_type,
        margin: (r.margin * 100.0).round() / 100.0,
        decided: by_words,
        words: r.words.into_iter().map(|(w, _)| w).collect(),
    });
    Analysis {
        task_type,
        confidence,
        words,
        agents,
        routing: routed,
        evidence: found
            .iter()
            .take(EVIDENCE_MAX)
            .map(|f| Evidence {
                area: f.term.area,
                term: f.term.id.to_string(),
                matched: f.matched.clone(),
                source: f.source,
                negated: f.negator.is_some(),
            })
            .collect(),
        reasons,
    }
}

/// Whether the word model's reading decides the type instead of the vocabulary's: it chooses
/// another type, clearly, and the vocabulary's evidence is thin.
fn words_overrule(reading: &words::WordReading, vocabulary_type: TaskType, vocabulary_confidence: f64) -> bool {
    reading.task_type != vocabulary_type
        && reading.lead_over(vocabulary_type) > WORDS_OVERRULE_MARGIN
        && vocabulary_confidence < WORDS_OVERRULE_CONFIDENCE
        && (reading.known_words >= WORDS_OVERRULE_KNOWN_WORDS || vocabulary_confidence == 0.0)
}

fn app_type(backend: bool, frontend: bool) -> TaskType {
    match (backend, frontend) {
        (true, true) => TaskType::FullStack,
        (true, false) => TaskType::Backend,
        _ => TaskType::Frontend,
    }
}

/// `confidence = dominance × strength`, rounded to two decimals, where, in weights of counted
/// distinct evidence (a strong term 1, a general term ½, negated evidence 0):
///
/// - `dominance = support / (support + against)`: how one-sided the evidence is. `support` is the
///   weight of the areas that decided the type; `against` is the weight of the other areas, with
///   infrastructure counting only half against backend, frontend and full-stack work because
///   application work routinely comes with some deployment or configuration;
/// - `strength = 1 − 0.5^n`: how much evidence there is, where `n` is the support's weight (for
///   full-stack, the weaker of the two sides, since both must be real). One term gives 0.5, two
///   0.75, three 0.88.
///
/// No evidence gives 0.0.
fn confidence(task_type: TaskType, tally: &Tally) -> f64 {
    let (b, f, i) = (tally.backend.halves(), tally.frontend.halves(), tally.infrastructure.halves());
    // In half units: `against` is doubled so that halving infrastructure stays whole.
    let (support, n, against_halves_x2) = match task_type {
        TaskType::Backend => (b, b, f.saturating_mul(2).saturating_add(i)),
        TaskType::Frontend => (f, f, b.saturating_mul(2).saturating_add(i)),
        TaskType::FullStack => (b.saturating_add(f), b.min(f), i),
        TaskType::Infrastructure => (i, i, b.saturating_add(f).saturating_mul(2)),
    };
    if support == 0 {
        return 0.0;
    }
    let support = f64::from(support);
    let dominance = support / (support + f64::from(against_halves_x2) / 2.0);
    // 0.5^(n halves) = 0.5^(n/2) × (1/√2 for an odd half): exact powers of two for whole terms,
    // so that three terms give exactly 0.875 and round to 0.88 on every target.
    let whole = i32::try_from(n / 2).unwrap_or(i32::MAX);
    let odd_half = if n % 2 == 1 { std::f64::consts::FRAC_1_SQRT_2 } else { 1.0 };
    let strength = 1.0 - 0.5f64.powi(whole) * odd_half;
    round2(dominance * strength)
}

/// A share between 0.0 and 1.0, rounded to two decimals.
fn round2(value: f64) -> f64 {
    (value.clamp(0.0, 1.0) * 100.0).round() / 100.0
}

/// `"a", "b" and "c"`.
fn quoted_words(words: &[(String, f64)]) -> String {
    let quoted: Vec<String> = words.iter().map(|(w, _)| format!("\"{}\"", w.trim_start_matches("path:"))).collect();
    match quoted.split_last() {
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} and {last}", rest.join(", ")),
        None => "(none)".into(),
    }
}

/// Whether a piece of evidence decided the type: counted, of an area the type rests on, and
/// strong unless only general terms matched.
fn decides(f: &Found, verdict: Option<(TaskType, Basis)>) -> bool {
    let Some((task_type, basis)) = verdict else { return false };
    let area_decides = matches!(
        (task_type, f.term.area),
        (TaskType::FullStack, Area::Backend | Area::Frontend)
            | (TaskType::Backend, Area::Backend)
            | (TaskType::Frontend, Area::Frontend)
            | (TaskType::Infrastructure, Area::Infrastructure)
    );
    f.negator.is_none() && area_decides && (basis != Basis::Application || f.term.strength == Strength::Strong)
}

/// One reason per rule that fired, and one when none did.
fn routing_reasons(routed: &Routing, agents: &[String]) -> Vec<String> {
    let fired: Vec<&RuleOutcome> = routed.rules.iter().filter(|r| r.fired).collect();
    if fired.is_empty() {
        return vec![format!(
            "no routing rule matched the task, so every agent the rules assign is kept: {}",
            agents.join(", ")
        )];
    }
    fired
        .iter()
        .map(|rule| {
            let at = rule.line.map_or_else(String::new, |line| format!("line {line}: "));
            let on = rule.evidence.first().map_or("", String::as_str);
            let assigned = if rule.agents.is_empty() { "nothing more".to_string() } else { rule.agents.join(" and ") };
            format!("{at}IF {} fired ({on}) → {assigned}", rule.condition)
        })
        .collect()
}

fn reason(f: &Found, task_type: Option<TaskType>) -> String {
    let subject = match (f.source, f.what) {
        (Source::Path, what) => format!("lists the path {} ({})", f.matched, what.unwrap_or(f.term.label)),
        (Source::Title, _) => format!("mentions {} in the title", f.term.label),
        (Source::Description, _) => format!("mentions {} in the description", f.term.label),
        (Source::Requirement, _) => format!("mentions {} in the requirements", f.term.label),
    };
    if let Some(negator) = f.negator {
        if KEPT_AS_IS.contains(&negator) || negator == "out of scope" {
            return format!("{subject}, followed by \"{negator}\": it stays as it is, so it does not count");
        }
        return format!("{subject} after \"{negator}\", so it does not count");
    }
    let decides = matches!(
        (task_type, f.term.area),
        (Some(TaskType::FullStack), Area::Backend | Area::Frontend)
            | (Some(TaskType::Backend), Area::Backend)
            | (Some(TaskType::Frontend), Area::Frontend)
            | (Some(TaskType::Infrastructure), Area::Infrastructure)
    );
    if decides {
        format!("{subject} → {} work", routing::area_name(f.term.area))
    } else if f.term.area == Area::Infrastructure {
        format!("{subject}, which is infrastructure and outweighed by the application work")
    } else {
        format!("{subject}, which is too general to decide the type on its own")
    }
}

// ---------------------------------------------------------------------------------------------
// Reading text: tokens, phrases, negations.

/// What separates a token from the one before it. A soft break (a comma, a dash) ends a
/// negation's first reach but not a list; a hard break (end of sentence, semicolon, colon, new
/// line) ends both. No phrase spans either: "database, table" is two pieces of evidence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Break {
    None,
    Soft,
    Hard,
}

#[derive(Debug)]
enum Kind {
    /// Lowercase letters and digits, apostrophes dropped ("don't" is "dont").
    Word(String),
    /// A file name or path written in the text (`wrangler.toml`, `src/routes/+page.svelte`).
    File(PathClass, String),
}

#[derive(Debug)]
struct Token {
    kind: Kind,
    /// Byte range in the text, for quoting what matched.
    start: usize,
    end: usize,
    before: Break,
}

impl Token {
    fn word(&self) -> Option<&str> {
        match &self.kind {
            Kind::Word(w) => Some(w),
            Kind::File(..) => None,
        }
    }
}

/// Splits text into words and file names. A whitespace-separated chunk that looks like a path and
/// is one [`classify_path`] knows becomes one token, so that `+page.svelte` is a SvelteKit page
/// rather than the words "page" and "svelte"; everything else is split into runs of letters and
/// digits, so "rate-limiting" is two words and "D1/KV" is "d1", "kv".
fn tokenize(text: &str) -> Vec<Token> {
    let mut tokens = Vec::new();
    let mut pending = Break::None;
    let mut chunk_start = None;
    for (at, c) in text.char_indices() {
        if c.is_whitespace() {
            if let Some(start) = chunk_start.take() {
                pending = chunk(text, start, at, pending, &mut tokens);
            }
            if c == '\n' {
                pending = Break::Hard;
            }
        } else if chunk_start.is_none() {
            chunk_start = Some(at);
        }
    }
    if let Some(start) = chunk_start {
        chunk(text, start, text.len(), pending, &mut tokens);
    }
    tokens
}

/// Punctuation around a file name that is not part of it: quotes, brackets, markdown emphasis.
fn is_wrapping(c: char) -> bool {
    matches!(c, '"' | '\'' | '`' | '(' | ')' | '[' | ']' | '{' | '}' | '<' | '>' | '*' | '“' | '”' | '‘' | '’')
}

/// What may follow a file name in a sentence: wrapping and sentence punctuation. A leading dot is
/// part of the name (`.github/`, `.dev.vars`); a trailing one ends the sentence.
fn is_wrapping_or_sentence_end(c: char) -> bool {
    is_wrapping(c) || matches!(c, '.' | ',' | ';' | ':' | '!' | '?')
}

/// Tokenises one whitespace-free chunk; returns the break that follows it.
fn chunk(text: &str, start: usize, end: usize, mut pending: Break, tokens: &mut Vec<Token>) -> Break {
    let raw = text.get(start..end).unwrap_or("");
    let core = raw.trim_start_matches(is_wrapping);
    let core_start = start + (raw.len() - core.len());
    let core = core.trim_end_matches(is_wrapping_or_sentence_end);
    let core_end = core_start + core.len();
    let looks_like_path = core.contains('/') || core.contains('.') || core.starts_with('+');
    if looks_like_path && core.len() <= TASK_PATH_BYTES_MAX {
        if let Some(class) = classify_path(core) {
            tokens.push(Token {
                kind: Kind::File(class, core.to_lowercase()),
                start: core_start,
                end: core_end,
                before: pending,
            });
            let trailing = text.get(core_end..end).unwrap_or("");
            return trailing.chars().fold(Break::None, |b, c| b.max(punctuation_break(c, false)));
        }
    }
    let mut word = String::new();
    let mut word_start = None;
    let mut word_end = start;
    let mut chars = raw.char_indices().peekable();
    while let Some((offset, c)) = chars.next() {
        let next_is_alphanumeric = chars.peek().is_some_and(|&(_, n)| n.is_alphanumeric());
        if c.is_alphanumeric() {
            word_start.get_or_insert(start + offset);
            word.extend(c.to_lowercase());
            word_end = start + offset + c.len_utf8();
        } else if matches!(c, '\'' | '’') && word_start.is_some() && next_is_alphanumeric {
            // "don't" reads as "dont": one word, so that it can be a negator.
        } else {
            if let Some(word_start) = word_start.take() {
                tokens.push(Token {
                    kind: Kind::Word(std::mem::take(&mut word)),
                    start: word_start,
                    end: word_end,
                    before: pending,
                });
                pending = Break::None;
            }
            pending = pending.max(punctuation_break(c, next_is_alphanumeric));
        }
    }
    if let Some(word_start) = word_start {
        tokens.push(Token { kind: Kind::Word(word), start: word_start, end: word_end, before: pending });
        pending = Break::None;
    }
    pending
}

fn punctuation_break(c: char, next_is_alphanumeric: bool) -> Break {
    match c {
        ',' | '—' | '–' => Break::Soft,
        ';' | ':' | '!' | '?' | '\n' => Break::Hard,
        // A dot inside a word ("node.js", "e.g") is not the end of a sentence.
        '.' if !next_is_alphanumeric => Break::Hard,
        _ => Break::None,
    }
}

/// [`VOCABULARY`] split into words and indexed by their first byte, built once per call.
struct Lexicon {
    phrases: Vec<(&'static str, Vec<&'static str>, &'static Term)>,
    by_first_byte: Vec<Vec<usize>>,
}

impl Lexicon {
    fn new() -> Lexicon {
        let mut phrases = Vec::new();
        let mut by_first_byte = vec![Vec::new(); 256];
        let all = VOCABULARY.iter().flat_map(|&(id, phrases)| phrases.iter().map(move |&phrase| (phrase, id)));
        for (phrase, id) in all {
            let Some(term) = find_term(id) else { continue };
            let words: Vec<&'static str> = phrase.split(' ').collect();
            let first = words.first().map(|w| w.trim_start_matches('=')).and_then(|w| w.bytes().next());
            if let Some(bucket) = first.and_then(|b| by_first_byte.get_mut(usize::from(b))) {
                bucket.push(phrases.len());
                phrases.push((phrase, words, term));
            }
        }
        Lexicon { phrases, by_first_byte }
    }

    /// The longest phrase starting at token `at`, as (words, phrase index). Among phrases of the
    /// same length the one whose words match exactly wins, then the earlier in [`VOCABULARY`].
    fn longest_at(&self, tokens: &[Token], at: usize) -> Option<(usize, usize)> {
        let first = tokens.get(at)?.word()?;
        let bucket = self.by_first_byte.get(usize::from(*first.as_bytes().first()?))?;
        let mut best: Option<(usize, usize, usize)> = None;
        for &index in bucket {
            let Some((_, words, _)) = self.phrases.get(index) else { continue };
            let mut exact = 0;
            let matches = words.iter().enumerate().all(|(k, pattern)| {
                let Some(token) = tokens.get(at + k) else { return false };
                if k > 0 && token.before != Break::None {
                    return false;
                }
                let Some(word) = token.word() else { return false };
                if word == pattern.trim_start_matches('=') {
                    exact += 1;
                }
                word_matches(word, pattern)
            });
            if matches && best.is_none_or(|(n, e, _)| (words.len(), exact) > (n, e)) {
                best = Some((words.len(), exact, index));
            }
        }
        best.map(|(n, _, index)| (n, index))
    }
}

fn find_term(id: &str) -> Option<&'static Term> {
    TERMS.iter().find(|t| t.id == id)
}

/// A phrase or file name found in a text, by token range.
struct Hit {
    first: usize,
    last: usize,
    term: &'static Term,
    key: String,
    what: Option<&'static str>,
}

fn find_hits(lexicon: &Lexicon, tokens: &[Token]) -> Vec<Hit> {
    let mut hits = Vec::new();
    let mut at = 0;
    while let Some(token) = tokens.get(at) {
        let mut width = 1;
        match &token.kind {
            Kind::File(class, key) => {
                if let Some(term) = find_term(class.term) {
                    hits.push(Hit { first: at, last: at, term, key: key.clone(), what: Some(class.what) });
                }
            }
            Kind::Word(_) => {
                if let Some((n, index)) = lexicon.longest_at(tokens, at) {
                    if let Some((phrase, _, term)) = lexicon.phrases.get(index) {
                        let last = at + n.saturating_sub(1);
                        hits.push(Hit { first: at, last, term, key: phrase.to_string(), what: None });
                        width = n.max(1);
                    }
                }
            }
        }
        at += width;
    }
    hits
}

/// For each of `count` tokens, whether a hit covers it.
fn covered_by(hits: &[Hit], count: usize) -> Vec<bool> {
    let mut covered = vec![false; count];
    for hit in hits {
        for at in hit.first..=hit.last {
            if let Some(c) = covered.get_mut(at) {
                *c = true;
            }
        }
    }
    covered
}

/// For each token, the negator that ends there. A negator inside a recognised phrase ("skip
/// link") is part of that phrase, not a negation.
fn negator_ends(tokens: &[Token], hits: &[Hit]) -> Vec<Option<&'static str>> {
    let mut ends: Vec<Option<&'static str>> = tokens
        .iter()
        .enumerate()
        .map(|(at, token)| {
            let word = token.word()?;
            if let Some(&negator) = NEGATORS.iter().find(|&&n| n == word) {
                return Some(negator);
            }
            let previous = at.checked_sub(1).and_then(|p| tokens.get(p)).and_then(Token::word)?;
            NEGATOR_PAIRS.iter().find(|&&(a, b, _)| a == previous && b == word).map(|&(_, _, said)| said)
        })
        .collect();
    for hit in hits {
        for at in hit.first..=hit.last {
            if let Some(end) = ends.get_mut(at) {
                *end = None;
            }
        }
    }
    ends
}

/// The negator within [`NEGATION_REACH_WORDS`] words before token `first`, in the same clause
/// (no comma, sentence end or "but" in between).
fn negated_by(tokens: &[Token], negators: &[Option<&'static str>], first: usize) -> Option<&'static str> {
    let mut at = first;
    for _ in 0..NEGATION_REACH_WORDS {
        if tokens.get(at)?.before != Break::None {
            return None;
        }
        at = at.checked_sub(1)?;
        if let Some(negator) = negators.get(at).copied().flatten() {
            return Some(negator);
        }
        if tokens.get(at)?.word().is_some_and(|w| SCOPE_BREAKERS.contains(&w)) {
            return None;
        }
    }
    None
}

/// The marker after the term ending at token `last`, in the same clause, that says it is left
/// as it is: "the API already returns the messages", "schema stays as is", "uploads are out of
/// scope".
fn kept_as_is(tokens: &[Token], last: usize) -> Option<&'static str> {
    for at in last + 1..=last + POST_NEGATION_REACH_WORDS {
        let token = tokens.get(at)?;
        if token.before != Break::None {
            return None;
        }
        let word = token.word()?;
        if SCOPE_BREAKERS.contains(&word) {
            return None;
        }
        if let Some(&marker) = KEPT_AS_IS.iter().find(|&&m| m == word) {
            return Some(marker);
        }
        let previous = tokens.get(at - 1).and_then(Token::word);
        if word == "scope" && previous == Some("of") {
            return Some("out of scope");
        }
    }
    None
}

/// Whether the tokens between a negated term ending at `last` and the term starting at `first`
/// only continue a list: list words and commas, no sentence end.
fn continues_list(tokens: &[Token], last: usize, first: usize) -> bool {
    (last + 1..=first).all(|at| {
        tokens.get(at).is_some_and(|t| {
            t.before != Break::Hard && (at == first || t.word().is_some_and(|w| LIST_GLUE.contains(&w)))
        })
    })
}

/// Finds the evidence in one text and appends it to `found`, each phrase once per text (and once
/// more if it occurs both negated and not).
fn scan_text(lexicon: &Lexicon, text: &str, source: Source, found: &mut Vec<Found>) {
    let tokens = tokenize(text);
    let hits = find_hits(lexicon, &tokens);
    let negators = negator_ends(&tokens, &hits);
    let mut seen = BTreeSet::new();
    let mut previous_negated: Option<(usize, &'static str)> = None;
    for hit in &hits {
        let negator = negated_by(&tokens, &negators, hit.first)
            .or_else(|| previous_negated.filter(|&(last, _)| continues_list(&tokens, last, hit.first)).map(|(_, n)| n))
            .or_else(|| kept_as_is(&tokens, hit.last));
        previous_negated = negator.map(|n| (hit.last, n));
        if !seen.insert((hit.key.clone(), negator.is_some())) {
            continue;
        }
        let start = tokens.get(hit.first).map_or(0, |t| t.start);
        let end = tokens.get(hit.last).map_or(start, |t| t.end);
        found.push(Found {
            term: hit.term,
            source,
            matched: quote(text.get(start..end).unwrap_or("")),
            key: hit.key.clone(),
            negator,
            what: hit.what,
        });
    }
}

/// Whether `word` is `pattern` or one of its forms; a pattern word marked `=` allows only its
/// plural.
fn word_matches(word: &str, pattern: &str) -> bool {
    match pattern.strip_prefix('=') {
        Some(base) => is_plural_of(word, base),
        None => is_form_of(word, pattern),
    }
}

/// `word` is `base` or its plural: "tables", "addresses", "queries".
fn is_plural_of(word: &str, base: &str) -> bool {
    if word == base {
        return true;
    }
    if base.len() < 2 {
        return false;
    }
    if word.strip_prefix(base).is_some_and(|rest| rest == "s" || rest == "es") {
        return true;
    }
    base.strip_suffix('y').is_some_and(|stem| word.strip_prefix(stem) == Some("ies"))
}

/// `word` is `base`, its plural, or its -ing/-ed form: "caching" and "cached" (cache), "deploying"
/// (deploy), "mapping" (map), "queried" (query). A simple rule, not a stemmer: it only has to
/// agree with itself, because the vocabulary is written in base forms.
fn is_form_of(word: &str, base: &str) -> bool {
    if is_plural_of(word, base) {
        return true;
    }
    if base.len() < 2 {
        return false;
    }
    if let Some(rest) = word.strip_prefix(base) {
        if rest == "ing" || rest == "ed" || (rest == "d" && base.ends_with('e')) {
            return true;
        }
        // A doubled final consonant: "map" → "mapping", "mapped".
        let mut rest_chars = rest.chars();
        let doubled = base.chars().last().filter(|c| c.is_ascii_alphabetic() && !"aeiouy".contains(*c));
        if doubled.is_some() && rest_chars.next() == doubled && matches!(rest_chars.as_str(), "ing" | "ed") {
            return true;
        }
    }
    if let Some(stem) = base.strip_suffix('e') {
        if word.strip_prefix(stem) == Some("ing") {
            return true;
        }
    }
    base.strip_suffix('y').is_some_and(|stem| word.strip_prefix(stem) == Some("ied"))
}

// ---------------------------------------------------------------------------------------------
// Paths.

/// What a path says about a task: its term and what kind of file it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct PathClass {
    term: &'static str,
    what: &'static str,
}

const fn class(term: &'static str, what: &'static str) -> Option<PathClass> {
    Some(PathClass { term, what })
}

/// Classifies a repository path (or a file name written in text). The first rule that applies
/// wins, so the order matters: configuration and CI files first (a YAML file under `.github/` is
/// CI, not a page); then backend (`src/routes/api/**` and `+server.ts` are API routes although
/// they sit under `src/routes`, SQL and `migrations/` are D1, `src/lib/server/**`, `hooks.server.*`,
/// `src/worker*` and Rust are Worker code, since in a Cloudflare + SvelteKit repository Rust only
/// runs in a Worker); then frontend (`+page.*`, `+layout.*`, `+error.*` including
/// `+page.server.ts`, whose load functions the seed gives to the SvelteKit specialist; `*.svelte`;
/// stylesheets; the rest of `src/routes/**`; `components/`; HTML). `package.json` counts as
/// build configuration: a change to it is a dependency or a script. Anything else (`README.md`,
/// `src/lib/util.ts`) says nothing and gives no evidence.
fn classify_path(path: &str) -> Option<PathClass> {
    let lower = path.to_lowercase().replace('\\', "/");
    let segments: Vec<&str> = lower.split('/').filter(|s| !s.is_empty() && *s != ".").collect();
    let (&name, _) = segments.split_last()?;
    let ext = name.rsplit_once('.').map_or("", |(_, e)| e);
    let has = |segment: &str| segments.contains(&segment);
    if name.starts_with("wrangler.") && matches!(ext, "toml" | "json" | "jsonc") {
        return class("wrangler", "wrangler configuration");
    }
    if has(".github") || has(".circleci") || name == ".gitlab-ci.yml" || name == "jenkinsfile" {
        return class("ci", "CI configuration");
    }
    if name == "dockerfile" || name.starts_with("dockerfile.") || name.starts_with("docker-compose") {
        return class("containers", "container configuration");
    }
    if name == ".dev.vars" || name == ".env" || name.starts_with(".env.") {
        return class("secrets", "local secrets");
    }
    if name == "package.json" || ext == "tf" || ext == "yml" || ext == "yaml" {
        return class("config", "build and tooling configuration");
    }
    if ext == "sql" || has("migrations") {
        return class("d1", "a D1 migration or SQL file");
    }
    if name.starts_with("+server.") || has("api") {
        return class("api", "an API route");
    }
    if name.starts_with("hooks.server.")
        || has("server")
        || has("worker")
        || has("workers")
        || name.starts_with("worker.")
        || ext == "rs"
    {
        return class("server-code", "Worker code");
    }
    if name.starts_with("+page.") || name.starts_with("+layout.") || name.starts_with("+error.") {
        return class("page", "a SvelteKit page or layout");
    }
    if ext == "svelte" {
        return class("component", "a Svelte component");
    }
    if matches!(ext, "css" | "scss" | "sass" | "less" | "pcss" | "postcss") || name.starts_with("tailwind.config.") {
        return class("styling", "a stylesheet");
    }
    if has("routes") {
        return class("routing", "a SvelteKit route");
    }
    if has("components") {
        return class("component", "a component module");
    }
    if ext == "html" {
        return class("page", "an HTML page");
    }
    None
}

// ---------------------------------------------------------------------------------------------
// Dynamic agent selection.

/// An agent as selection sees it.
#[derive(Debug, Clone, Copy)]
pub struct AgentProfile<'a> {
    pub name: &'a str,
    pub description: &'a str,
    pub capabilities: &'a [String],
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Candidate {
    pub agent: String,
    pub score: u32,
    /// The requirements (trimmed) that contributed, in the order given.
    pub matched: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Selection {
    /// The best candidate, or `None` when no agent matched any requirement.
    pub agent: Option<String>,
    /// Agents that matched, best first; equal scores in name order.
    pub candidates: Vec<Candidate>,
}

/// Picks the agent for an `auto-select` step. Every requirement is scored against every agent
/// (the weights are on [`SCORE_EXACT`] and the constants after it); an agent's score is the sum
/// over requirements of its best match for each. Requirements are trimmed; empty ones and repeats
/// are ignored. Ties go to the name that sorts first, so the answer never depends on the order
/// agents were registered in.
pub fn select(requirements: &[String], agents: &[AgentProfile]) -> Selection {
    let lexicon = Lexicon::new();
    let mut seen = BTreeSet::new();
    let requirements: Vec<Phrase> = requirements
        .iter()
        .take(SELECT_REQUIREMENTS_MAX)
        .map(|r| head(r.trim(), TASK_REQUIREMENT_BYTES_MAX))
        .filter(|r| !r.is_empty())
        .map(|r| Phrase::new(&lexicon, r))
        .filter(|p| !p.words.is_empty() && seen.insert(p.words.clone()))
        .collect();
    let mut candidates = Vec::new();
    for agent in agents.iter().take(SELECT_AGENTS_MAX) {
        let capabilities: Vec<Phrase> = agent
            .capabilities
            .iter()
            .take(AGENT_CAPABILITIES_MAX)
            .map(|c| Phrase::new(&lexicon, head(c.trim(), AGENT_CAPABILITY_BYTES_MAX)))
            .collect();
        let description: BTreeSet<String> =
            content_words(&words(head(agent.description, SELECT_DESCRIPTION_BYTES_MAX))).into_iter().collect();
        let mut score = 0u32;
        let mut matched = Vec::new();
        for requirement in &requirements {
            let mut best = 0;
            for capability in &capabilities {
                best = best.max(requirement.score_against(capability));
                if best == SCORE_EXACT {
                    break;
                }
            }
            let in_description = requirement.content.iter().any(|r| description.iter().any(|d| related(r, d)));
            let points = best.max(if in_description { SCORE_DESCRIPTION } else { 0 });
            if points > 0 {
                score = score.saturating_add(points);
                matched.push(requirement.given.clone());
            }
        }
        if score > 0 {
            candidates.push(Candidate { agent: agent.name.to_string(), score, matched });
        }
    }
    candidates.sort_by(|a, b| b.score.cmp(&a.score).then_with(|| a.agent.cmp(&b.agent)));
    Selection { agent: candidates.first().map(|c| c.agent.clone()), candidates }
}

/// A requirement or capability, normalised for comparison.
struct Phrase {
    given: String,
    /// Lowercase words: "Form-Actions" is ["form", "actions"].
    words: Vec<String>,
    /// `words` without stopwords and single letters, for partial and description matches.
    content: Vec<String>,
    /// The analysis terms it names, for synonyms: "bucket" and "R2" both name `r2`. Requirements
    /// are keywords, so negations are not looked for here.
    terms: BTreeSet<&'static str>,
    /// Whether those terms are all it says. A capability is a synonym of a requirement only then:
    /// "component tests" mentions components but is about tests.
    only_terms: bool,
}

impl Phrase {
    fn new(lexicon: &Lexicon, text: &str) -> Phrase {
        let tokens = tokenize(text);
        let hits = find_hits(lexicon, &tokens);
        let covered = covered_by(&hits, tokens.len());
        let only_terms = !hits.is_empty()
            && tokens.iter().zip(&covered).all(|(t, &c)| c || t.word().is_some_and(|w| STOPWORDS.contains(&w)));
        let words = words(text);
        Phrase {
            given: text.to_string(),
            content: content_words(&words),
            words,
            terms: hits.iter().map(|h| h.term.id).collect(),
            only_terms,
        }
    }

    fn score_against(&self, capability: &Phrase) -> u32 {
        let pairs = || self.words.iter().zip(&capability.words);
        let same_length = !self.words.is_empty() && self.words.len() == capability.words.len();
        let synonym = capability.only_terms && !self.terms.is_disjoint(&capability.terms);
        if same_length && pairs().all(|(a, b)| is_plural_of(a, b) || is_plural_of(b, a)) {
            SCORE_EXACT
        } else if synonym || (same_length && pairs().all(|(a, b)| related(a, b))) {
            SCORE_RELATED
        } else if self.content.iter().any(|a| capability.content.iter().any(|b| related(a, b))) {
            SCORE_PARTIAL
        } else {
            0
        }
    }
}

fn related(a: &str, b: &str) -> bool {
    is_form_of(a, b) || is_form_of(b, a)
}

/// Lowercase runs of letters and digits.
fn words(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()).map(str::to_lowercase).collect()
}

fn content_words(words: &[String]) -> Vec<String> {
    words.iter().filter(|w| w.len() >= 2 && !STOPWORDS.contains(&w.as_str())).cloned().collect()
}

// ---------------------------------------------------------------------------------------------
// Bounds.

/// The first `max` bytes of `text`, cut at a character boundary.
fn head(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.get(..end).unwrap_or("")
}

/// Matched text as shown in evidence, at most [`MATCHED_CHARS_MAX`] characters.
fn quote(text: &str) -> String {
    text.chars().take(MATCHED_CHARS_MAX).collect()
}

#[cfg(test)]
mod tests;
