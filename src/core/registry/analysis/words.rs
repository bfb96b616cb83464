//! The word model: a second reading of a task's type, learned from the labelled tasks of
//! `tests/fixtures/analysis/tuning*.json`.
//!
//! The vocabulary of the parent module knows the terms of the seed's task types, but tickets are
//! often written as problems ("new hires lose a day to setup", "the invoice link 404s on the
//! custom domain") whose words it has no term for. For every feature (a word, a word of the
//! title, a path segment or a vocabulary term: see [`features`]) that appears in at least
//! `training::WORD_TASKS_MIN` labelled tasks, the model keeps how much more or less often it
//! appears in tasks of each type than in all of them (a naive Bayes model of which features a
//! task has). A task's score for a type is the sum over its distinct features.
//!
//! It never learns at run time and reads no file: the weights are the table in
//! `word_weights.rs`, generated from the labelled sets by `npm run train-analysis`, and a native
//! test fails when the table and the sets disagree.

use super::vocabulary::STOPWORDS;
use super::{head, negated_by, negator_ends, tokenize, words, TaskType};
use crate::core::base::limits::{ANALYSIS_TEXT_BYTES_MAX, TASK_PATHS_MAX, TASK_PATH_BYTES_MAX};

mod weights {
    include!("word_weights.rs");
}
pub(super) use weights::WORD_WEIGHTS;

/// Weights are stored in hundredths of a nat (natural-log units).
pub(super) const WEIGHT_SCALE: f64 = 100.0;

/// Words quoted as the reading's evidence.
const WORDS_SHOWN_MAX: usize = 5;

/// The types in the order of a weight row.
pub(super) const TYPES: [TaskType; 4] =
    [TaskType::Frontend, TaskType::Backend, TaskType::FullStack, TaskType::Infrastructure];

/// What the word model makes of a task.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct WordReading {
    pub(super) task_type: TaskType,
    /// Score of the best type minus that of the next, in nats: how clearly the words choose.
    pub(super) margin: f64,
    /// Score per type, in the order of [`TYPES`], in nats.
    pub(super) scores: [f64; 4],
    /// The words that speak most for the type, strongest first, with their weight in nats.
    pub(super) words: Vec<(String, f64)>,
    /// How many distinct words of the title and description the model knows: how much text the
    /// reading rests on.
    pub(super) known_words: usize,
}

impl WordReading {
    /// How far its type's score leads `other`'s, in nats.
    pub(super) fn lead_over(&self, other: TaskType) -> f64 {
        self.scores[slot(self.task_type)] - self.scores[slot(other)]
    }
}

/// The features the model reads, sorted so that readings never depend on order:
/// - the distinct words of the title and description that no negation governs ("do not change
///   the API" says nothing for backend work);
/// - the title's words again as `title:word`: the title says what the task is, the description
///   often what is around it;
/// - each segment of each path as `path:segment`;
/// - each vocabulary term the task names and does not negate as `term:id` (`term:d1` for
///   "database", "SQL" or "D1"), so that synonyms the labelled tasks spell differently count
///   as one.
pub(super) fn features(title: &str, description: &str, paths: &[String], terms: &[&str]) -> Vec<String> {
    let title_words = unnegated_words(head(title, ANALYSIS_TEXT_BYTES_MAX));
    let mut features: Vec<String> = title_words.iter().map(|w| format!("title:{w}")).collect();
    features.extend(title_words);
    features.extend(unnegated_words(head(description, ANALYSIS_TEXT_BYTES_MAX)));
    for path in paths.iter().take(TASK_PATHS_MAX) {
        features.extend(words(head(path, TASK_PATH_BYTES_MAX)).into_iter().map(|w| format!("path:{w}")));
    }
    features.extend(terms.iter().map(|t| format!("term:{t}")));
    features.sort();
    features.dedup();
    features
}

/// The position of a type in a weight row.
fn slot(task_type: TaskType) -> usize {
    TYPES.iter().position(|t| *t == task_type).unwrap_or(0)
}

/// The words of a text, each file name written in it split into words too, leaving out those a
/// negator governs (by the vocabulary's rules for negation).
fn unnegated_words(text: &str) -> Vec<String> {
    let tokens = tokenize(text);
    let negators = negator_ends(&tokens, &[]);
    let mut kept = Vec::new();
    for (at, token) in tokens.iter().enumerate() {
        if negators.get(at).copied().flatten().is_some() || negated_by(&tokens, &negators, at).is_some() {
            continue;
        }
        match token.word() {
            Some(word) => kept.push(word.to_string()),
            None => kept.extend(words(text.get(token.start..token.end).unwrap_or(""))),
        }
    }
    kept
}

/// The word a feature quotes: `title:deploy` and `path:deploy` quote "deploy".
fn quoted(feature: &str) -> &str {
    feature.split_once(':').map_or(feature, |(_, word)| word)
}

/// Whether a word is worth quoting: "the" and "in" carry weight too, but say nothing to a reader.
fn shown(word: &str) -> bool {
    word.chars().count() > 2 && !STOPWORDS.contains(&word)
}

/// A feature's weights: a binary search over the lines of [`WORD_WEIGHTS`] by byte offset.
///
/// The table is text (`feature\tw w w w\n`, sorted by feature) rather than an array of pairs:
/// an array spends sixteen bytes a feature on a pointer, a length and four numbers, and the
/// text compresses to 30 KiB of the Worker's upload where the array took 42.
fn weight(feature: &str) -> Option<[i16; 4]> {
    weight_in(WORD_WEIGHTS, feature)
}

pub(super) fn weight_in(table: &str, feature: &str) -> Option<[i16; 4]> {
    let bytes = table.as_bytes();
    // Both ends are always the start of a line (or the table's end).
    let (mut low, mut high) = (0, bytes.len());
    while low < high {
        let middle = low + (high - low) / 2;
        let start = bytes[low..middle].iter().rposition(|&b| b == b'\n').map_or(low, |at| low + at + 1);
        let end = bytes[start..high].iter().position(|&b| b == b'\n').map_or(high, |at| start + at);
        let (word, row) = table.get(start..end)?.split_once('\t')?;
        match word.cmp(feature) {
            std::cmp::Ordering::Equal => return parse_row(row),
            std::cmp::Ordering::Less => low = end + 1,
            std::cmp::Ordering::Greater => high = start,
        }
    }
    None
}

/// `58 33 -130 -12`: a row of [`WORD_WEIGHTS`].
fn parse_row(row: &str) -> Option<[i16; 4]> {
    let mut weights = row.split(' ').map(|w| w.parse::<i16>().ok());
    let parsed = [weights.next()??, weights.next()??, weights.next()??, weights.next()??];
    weights.next().is_none().then_some(parsed)
}

/// Reads a task's [`features`] with the model; `None` when none of them is in the table.
pub(super) fn read(features: Vec<String>) -> Option<WordReading> {
    let known: Vec<(String, [i16; 4])> = features.into_iter().filter_map(|f| weight(&f).map(|row| (f, row))).collect();
    if known.is_empty() {
        return None;
    }
    let mut scores = [0.0; 4];
    for (_, row) in &known {
        for (score, w) in scores.iter_mut().zip(row) {
            *score += f64::from(*w) / WEIGHT_SCALE;
        }
    }
    // The first of equal scores wins, so a tie reads the same on every target.
    let best = (0..4).fold(0, |best, i| if scores[i] > scores[best] { i } else { best });
    let next = (0..4).filter(|&i| i != best).map(|i| scores[i]).fold(f64::NEG_INFINITY, f64::max);
    let mut words: Vec<(String, f64)> = known
        .iter()
        .map(|(feature, row)| (quoted(feature).to_string(), f64::from(row[best]) / WEIGHT_SCALE))
        .filter(|(word, w)| *w > 0.0 && shown(word))
        .collect();
    words.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    // A word can speak as itself, in the title and as a term: quoted once, at its strongest.
    let mut seen = std::collections::BTreeSet::new();
    words.retain(|(word, _)| seen.insert(word.clone()));
    words.truncate(WORDS_SHOWN_MAX);
    let known_words = known.iter().filter(|(feature, _)| !feature.contains(':')).count();
    Some(WordReading { task_type: TYPES[best], margin: scores[best] - next, scores, words, known_words })
}

/// Training, for the test that checks the table and for `npm run train-analysis`.
#[cfg(test)]
pub(super) mod training {
    use std::collections::BTreeMap;

    use super::{features, TaskType, WEIGHT_SCALE};

    /// A word seen in fewer labelled tasks says more about those tasks than about its type.
    pub(crate) const WORD_TASKS_MIN: u32 = 2;

    /// Additive smoothing of the counts: a word never seen with a type is rare there, not
    /// impossible. Chosen by leaving each labelled set out in turn and reading it with the others'
    /// weights (0.5 read 92% of them right; 1.0, 87%; 2.0, 81%).
    pub(crate) const SMOOTHING: f64 = 0.5;

    /// One labelled task.
    pub(crate) struct Example<'a> {
        pub(crate) title: &'a str,
        pub(crate) description: &'a str,
        pub(crate) paths: &'a [String],
        /// The vocabulary terms the task names, as analysis finds them.
        pub(crate) terms: Vec<&'static str>,
        pub(crate) task_type: TaskType,
    }

    /// Weights per feature: `ln P(feature | type) − ln P(feature)`, each probability the share of
    /// tasks (of the type, of all) that contain the feature, smoothed by [`SMOOTHING`].
    pub(crate) fn train(examples: &[Example]) -> BTreeMap<String, [i16; 4]> {
        let mut per_type = [0u32; 4];
        let mut counts: BTreeMap<String, [u32; 4]> = BTreeMap::new();
        for example in examples {
            let slot = super::slot(example.task_type);
            per_type[slot] += 1;
            for feature in features(example.title, example.description, example.paths, &example.terms) {
                counts.entry(feature).or_default()[slot] += 1;
            }
        }
        let all = f64::from(per_type.iter().sum::<u32>());
        let probability = |seen: u32, of: f64| (f64::from(seen) + SMOOTHING) / (of + 2.0 * SMOOTHING);
        counts
            .into_iter()
            .filter(|(_, seen)| seen.iter().sum::<u32>() >= WORD_TASKS_MIN)
            .map(|(feature, seen)| {
                let overall = probability(seen.iter().sum(), all);
                let mut row = [0i16; 4];
                for slot in 0..4 {
                    let ratio = (probability(seen[slot], f64::from(per_type[slot])) / overall).ln();
                    row[slot] = (ratio * WEIGHT_SCALE).round() as i16;
                }
                (feature, row)
            })
            .collect()
    }

    /// The text of `word_weights.rs` for the given weights.
    pub(crate) fn render(weights: &BTreeMap<String, [i16; 4]>) -> String {
        let mut text = String::from(
            "// Generated by `npm run train-analysis` from tests/fixtures/analysis/tuning*.json; do not edit.\n\
             // A line per feature, sorted by feature: the feature, a tab, and its weights for frontend,\n\
             // backend, full-stack and infrastructure in hundredths of a nat, separated by spaces.\n\
             pub(crate) const WORD_WEIGHTS: &str = \"\\\n",
        );
        for (feature, row) in weights {
            // A feature is a token of the task's text: nothing a string literal must escape.
            assert!(!feature.chars().any(|c| c.is_whitespace() || c == '"' || c == '\\'), "{feature:?}");
            text.push_str(&format!("{feature}\\t{} {} {} {}\\n\\\n", row[0], row[1], row[2], row[3]));
        }
        text.push_str("\";\n");
        text
    }
}
