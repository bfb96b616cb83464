//! Routing: which of a workflow's specialists a task needs, decided by the workflow's own
//! `<agent_selection>` rules, or by the agents' capabilities where the file has none.
//!
//! A rule's condition is read with the analysis vocabulary: its terms (`D1`, `pages`, ...) and
//! their areas, plus the words it names that the vocabulary does not know (`Python`). The agents
//! a rule assigns add the vocabulary terms of their capabilities. A rule fires:
//!
//! 1. on evidence: a term of the task that decided its type and that the condition or the
//!    assigned agents' capabilities name, or a word of the condition found in the task and not
//!    negated there;
//! 2. on area, for each area of the task's type (backend, frontend, infrastructure) no rule fired
//!    on by evidence: the rules whose condition is about that area, or failing those, the rules
//!    whose agents' capabilities are;
//! 3. on the others: a condition like "the task does both" fires when two other rules fired.
//!
//! When no rule fires, every agent the rules assign is kept: routing never skips work on no
//! evidence. Pure and bounded like the rest of analysis; it knows no agent by name.

use std::collections::BTreeSet;

use serde::Serialize;

use super::vocabulary::STOPWORDS;
use super::{
    content_words, covered_by, find_hits, head, negated_by, negator_ends, related, tokenize, Area, Found, Lexicon,
    Source, TaskInput, TaskType, Token,
};
use crate::core::base::limits::{
    AGENT_CAPABILITIES_MAX, AGENT_CAPABILITY_BYTES_MAX, ANALYSIS_TEXT_BYTES_MAX, EVIDENCE_MAX, ROUTING_RULES_MAX,
    TASK_REQUIREMENTS_MAX, TASK_REQUIREMENT_BYTES_MAX,
};

use super::AgentProfile;

/// Words of a condition that say how a task relates to the work rather than what the work is:
/// "IF task involves ...", "IF the task uses ...".
const CONDITION_FILLER: &[&str] = &[
    "task",
    "tasks",
    "involves",
    "involve",
    "involving",
    "uses",
    "use",
    "using",
    "changes",
    "change",
    "touches",
    "touch",
    "needs",
    "need",
    "requires",
    "require",
    "does",
    "do",
    "has",
    "have",
    "includes",
    "include",
    "contains",
    "contain",
    "adds",
    "add",
    "about",
    "there",
    "services",
    "service",
    "work",
    "something",
    "anything",
    "code",
    "parts",
    "part",
    "only",
    "both",
    "above",
    "them",
    "these",
    "two",
    "kinds",
    "types",
    "also",
    "when",
    "if",
];

/// The words that make a condition refer to the other rules: "the task does both", "all of
/// the above".
const COMBINATION_WORDS: &[&str] = &["both", "all", "above", "them", "these", "two", "each", "every"];

/// Shortest condition or capability word matched against the task on its own: shorter words
/// ("go", "ui") are either in the vocabulary or too ambiguous to route on.
const KEYWORD_CHARS_MIN: usize = 3;

/// A routing rule as analysis reads it.
#[derive(Debug, Clone, Copy)]
pub struct Rule<'a> {
    pub line: Option<u32>,
    pub condition: &'a str,
    /// The agents it assigns; empty when `others`.
    pub agents: &'a [String],
    /// It assigns the agents of the other rules that fire ("both specialists").
    pub others: bool,
}

/// What routing reads besides the task.
#[derive(Debug, Clone, Default)]
pub struct RoutingInput<'a> {
    /// The workflow's rules; empty to route on capabilities.
    pub rules: Vec<Rule<'a>>,
    /// Without rules: the agents whose steps are routing's to keep or skip (those of optional
    /// steps).
    pub routable: Vec<&'a str>,
    /// The registered agents, for their capabilities.
    pub agents: &'a [AgentProfile<'a>],
}

/// How routing decided, shown with the analysis.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Routing {
    /// `agent_selection` (the workflow's rules) or `capabilities` (none: the agents' own).
    pub by: &'static str,
    /// Every agent routing may assign or leave out; an optional step of any other agent is not
    /// routing's to skip.
    pub candidates: Vec<String>,
    pub rules: Vec<RuleOutcome>,
}

/// One rule, whether it fired, and on what.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RuleOutcome {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<u32>,
    pub condition: String,
    /// The agents it assigns (for "both specialists", the agents of the rules that fired).
    pub agents: Vec<String>,
    pub fired: bool,
    /// `evidence`, `area` or `others`, when it fired.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub on: Option<&'static str>,
    pub evidence: Vec<String>,
}

/// A rule made ready for matching.
struct Compiled {
    line: Option<u32>,
    condition: String,
    agents: Vec<String>,
    others: bool,
    combination: bool,
    /// Vocabulary terms the condition names, and their areas.
    terms: BTreeSet<&'static str>,
    areas: BTreeSet<Area>,
    /// Vocabulary terms of the assigned agents' capabilities, by agent, and their areas.
    capability_terms: Vec<(String, BTreeSet<&'static str>)>,
    capability_areas: BTreeSet<Area>,
    /// Words matched against the task on their own.
    keywords: Vec<String>,
}

/// The areas a task type rests on.
fn areas_of(task_type: TaskType) -> &'static [Area] {
    match task_type {
        TaskType::Backend => &[Area::Backend],
        TaskType::Frontend => &[Area::Frontend],
        TaskType::FullStack => &[Area::Backend, Area::Frontend],
        TaskType::Infrastructure => &[Area::Infrastructure],
    }
}

pub(super) fn area_name(area: Area) -> &'static str {
    match area {
        Area::Backend => "backend",
        Area::Frontend => "frontend",
        Area::Infrastructure => "infrastructure",
    }
}

/// Terms and uncovered content words of a text.
fn read(lexicon: &Lexicon, text: &str) -> (BTreeSet<&'static str>, BTreeSet<Area>, Vec<String>) {
    let tokens = tokenize(text);
    let hits = find_hits(lexicon, &tokens);
    let covered = covered_by(&hits, tokens.len());
    let uncovered: Vec<String> =
        tokens.iter().zip(&covered).filter(|(_, &c)| !c).filter_map(|(t, _)| t.word().map(String::from)).collect();
    let keywords = content_words(&uncovered)
        .into_iter()
        .filter(|w| w.chars().count() >= KEYWORD_CHARS_MIN && !CONDITION_FILLER.contains(&w.as_str()))
        .filter(|w| !w.bytes().all(|b| b.is_ascii_digit()))
        .collect();
    (hits.iter().map(|h| h.term.id).collect(), hits.iter().map(|h| h.term.area).collect(), keywords)
}

pub(super) fn is_combination(condition: &str) -> bool {
    let words = super::words(condition);
    let content: Vec<&String> =
        words.iter().filter(|w| !STOPWORDS.contains(&w.as_str()) && !CONDITION_FILLER.contains(&w.as_str())).collect();
    let refers = words.iter().any(|w| matches!(w.as_str(), "both" | "all" | "above"));
    refers && content.iter().all(|w| COMBINATION_WORDS.contains(&w.as_str()) || w.as_str() == "of")
}

fn compile(lexicon: &Lexicon, rule: &Rule, agents: &[AgentProfile], capabilities_only: bool) -> Compiled {
    let condition = head(rule.condition, TASK_REQUIREMENT_BYTES_MAX);
    let (mut terms, mut areas, mut keywords) = read(lexicon, condition);
    let mut capability_terms = Vec::new();
    let mut capability_areas = BTreeSet::new();
    for name in rule.agents {
        let Some(profile) = agents.iter().find(|a| a.name == name) else { continue };
        let mut found = BTreeSet::new();
        for capability in profile.capabilities.iter().take(AGENT_CAPABILITIES_MAX) {
            let (t, a, k) = read(lexicon, head(capability, AGENT_CAPABILITY_BYTES_MAX));
            found.extend(t);
            capability_areas.extend(a);
            // Without rules the capabilities are the condition; a file's rule is matched on
            // its own words, which capabilities only widen with vocabulary terms.
            if capabilities_only && k.len() == 1 {
                keywords.extend(k);
            }
        }
        capability_terms.push((name.clone(), found));
    }
    if capabilities_only {
        terms.extend(capability_terms.iter().flat_map(|(_, t)| t.iter().copied()));
        areas.extend(capability_areas.iter().copied());
    }
    keywords.sort();
    keywords.dedup();
    Compiled {
        line: rule.line,
        condition: condition.to_string(),
        agents: rule.agents.to_vec(),
        others: rule.others,
        combination: !capabilities_only && is_combination(condition),
        terms,
        areas,
        capability_terms,
        capability_areas,
        keywords,
    }
}

/// A word of the task, with where it was and whether it was negated.
struct TaskWord {
    word: String,
    source: Source,
    negated: bool,
}

fn task_words(lexicon: &Lexicon, input: &TaskInput) -> Vec<TaskWord> {
    let mut texts = vec![
        (head(input.title, ANALYSIS_TEXT_BYTES_MAX), Source::Title),
        (head(input.description, ANALYSIS_TEXT_BYTES_MAX), Source::Description),
    ];
    for requirement in input.requirements.iter().take(TASK_REQUIREMENTS_MAX) {
        texts.push((head(requirement, TASK_REQUIREMENT_BYTES_MAX), Source::Requirement));
    }
    let mut words = Vec::new();
    for (text, source) in texts {
        let tokens: Vec<Token> = tokenize(text);
        let hits = find_hits(lexicon, &tokens);
        let negators = negator_ends(&tokens, &hits);
        for (at, token) in tokens.iter().enumerate() {
            if let Some(word) = token.word() {
                let negated = negated_by(&tokens, &negators, at).is_some();
                words.push(TaskWord { word: word.to_string(), source, negated });
            }
        }
    }
    words
}

fn source_name(source: Source) -> &'static str {
    match source {
        Source::Title => "the title",
        Source::Description => "the description",
        Source::Requirement => "the requirements",
        Source::Path => "the paths",
    }
}

/// Decides which rules fire for an analysed task. `found` and `decisive` are analysis's evidence
/// and, for each piece, whether it decided the type; `by_words` says the word model decided it.
pub(super) fn route(
    lexicon: &Lexicon,
    input: &TaskInput,
    task_type: TaskType,
    found: &[(&Found, bool)],
    by_words: bool,
    routing: &RoutingInput,
) -> (Vec<String>, Routing) {
    let by_capabilities = routing.rules.is_empty();
    let implicit: Vec<Vec<String>> = routing.routable.iter().map(|a| vec![a.to_string()]).collect();
    let rules: Vec<Rule> = if by_capabilities {
        implicit.iter().map(|agents| Rule { line: None, condition: "", agents, others: false }).collect()
    } else {
        routing.rules.iter().take(ROUTING_RULES_MAX).copied().collect()
    };
    let mut compiled: Vec<Compiled> =
        rules.iter().map(|r| compile(lexicon, r, routing.agents, by_capabilities)).collect();
    if by_capabilities {
        for rule in &mut compiled {
            rule.condition = format!("the capabilities of {}", rule.agents.join(", "));
        }
    }
    let candidates = distinct(compiled.iter().flat_map(|r| r.agents.iter()));
    let words = task_words(lexicon, input);
    let mut outcomes: Vec<RuleOutcome> = Vec::new();
    let mut covered_areas: BTreeSet<Area> = BTreeSet::new();
    // 1. Evidence.
    for rule in &compiled {
        let mut evidence = Vec::new();
        if !rule.combination {
            for (f, _) in found.iter().filter(|(_, decisive)| *decisive) {
                if rule.terms.contains(f.term.id) {
                    evidence.push(format!(
                        "{} in {} is {}, which the condition names",
                        f.matched,
                        source_name(f.source),
                        f.term.label
                    ));
                    covered_areas.insert(f.term.area);
                } else if let Some((agent, _)) = rule.capability_terms.iter().find(|(_, t)| t.contains(f.term.id)) {
                    evidence.push(format!(
                        "{} in {} is {}, which {agent} lists among its capabilities",
                        f.matched,
                        source_name(f.source),
                        f.term.label
                    ));
                    covered_areas.insert(f.term.area);
                }
            }
            for keyword in &rule.keywords {
                if let Some(w) = words.iter().find(|w| !w.negated && related(&w.word, keyword)) {
                    evidence.push(format!("\"{}\" in {} matches the word {keyword}", w.word, source_name(w.source)));
                    covered_areas.extend(areas_of(task_type));
                }
            }
        }
        evidence.truncate(EVIDENCE_MAX);
        let fired = !evidence.is_empty();
        outcomes.push(RuleOutcome {
            line: rule.line,
            condition: rule.condition.clone(),
            agents: rule.agents.clone(),
            fired,
            on: fired.then_some("evidence"),
            evidence,
        });
    }
    // 2. Area, for each area of the type that no rule fired on.
    for &area in areas_of(task_type) {
        // The word model's type needs no term of the vocabulary to route on its area.
        if covered_areas.contains(&area) || (!by_words && found.iter().all(|(_, decisive)| !decisive)) {
            continue;
        }
        let by_condition: Vec<usize> =
            (0..compiled.len()).filter(|&i| !compiled[i].combination && compiled[i].areas.contains(&area)).collect();
        let (chosen, why) = if by_condition.is_empty() {
            let by_capability = (0..compiled.len())
                .filter(|&i| !compiled[i].combination && compiled[i].capability_areas.contains(&area));
            (by_capability.collect::<Vec<_>>(), "its agents' capabilities cover")
        } else {
            (by_condition, "the condition is about")
        };
        for index in chosen {
            let outcome = &mut outcomes[index];
            outcome.fired = true;
            outcome.on.get_or_insert("area");
            outcome.evidence.push(format!(
                "the task is {} ({}) and {why} {} work",
                area_name(area),
                task_type.name(),
                area_name(area)
            ));
        }
    }
    // 3. The others.
    let fired_lines: Vec<String> = outcomes
        .iter()
        .zip(&compiled)
        .filter(|(o, r)| o.fired && !r.combination)
        .map(|(o, _)| o.line.map_or_else(|| o.condition.clone(), |l| format!("line {l}")))
        .collect();
    let fired_agents = distinct(outcomes.iter().filter(|o| o.fired).flat_map(|o| o.agents.iter()));
    for (outcome, rule) in outcomes.iter_mut().zip(&compiled) {
        if rule.combination && fired_lines.len() >= 2 {
            outcome.fired = true;
            outcome.on = Some("others");
            outcome.evidence.push(format!("the rules at {} fired", fired_lines.join(" and ")));
        }
        if rule.others {
            outcome.agents = if outcome.fired { fired_agents.clone() } else { Vec::new() };
        }
    }
    let mut chosen = distinct(outcomes.iter().filter(|o| o.fired).flat_map(|o| o.agents.iter()));
    if chosen.is_empty() {
        chosen = candidates.clone();
    }
    let by = if by_capabilities { "capabilities" } else { "agent_selection" };
    (chosen, Routing { by, candidates, rules: outcomes })
}

/// The names, each once, in the order they first come.
fn distinct<'a>(names: impl Iterator<Item = &'a String>) -> Vec<String> {
    let mut all: Vec<String> = Vec::new();
    for name in names {
        if !all.contains(name) {
            all.push(name.clone());
        }
    }
    all
}
