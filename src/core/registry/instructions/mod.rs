//! Agent OS instruction files: markdown with `<process_flow>`, `<step>` and nested blocks, read
//! into an [`InstructionFile`] with every problem found, each with its line and column.
//!
//! Reading never fails and never panics: it returns what it could read and the problems. A file
//! with error problems must not become a workflow; warnings are for the author. The reader keeps
//! everything: unknown tags become [`Block`]s, unknown attributes and front-matter keys are kept.
//!
//! How the format is read:
//! - `---` front matter (see `front_matter.rs`), the `# Title` and the `## Overview` text.
//! - The structural tags `process_flow`, `step`, `parallel_execution`, `pre_flight_check` and
//!   `post_flight_check` must be closed; any other tag that is never closed is text (a
//!   placeholder such as `<branch-name>`). Fenced code, inline code and comments are text.
//! - Inside a step, every matched tag is a [`Block`]: list items (`- x`, `- [ ] x`), directive
//!   lines (`ACTION: ...`, `IF ...:`), the raw text, and child blocks.
//! - A markdown heading between steps (`## Phase 1: ...`) is the `phase` of the steps after it.

mod front_matter;
mod lex;
mod tree;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::core::base::limits::{INSTRUCTION_FILE_BYTES_MAX, PROBLEMS_MAX, STEPS_MAX};
use tree::{Element, Node};

pub use front_matter::parse as parse_front_matter;
pub use front_matter::split as split_front_matter;

/// Tags the engine depends on: they must be closed, and a stray closing one is an error.
pub const STRUCTURAL_TAGS: [&str; 5] =
    ["process_flow", "step", "parallel_execution", "pre_flight_check", "post_flight_check"];

/// Longest step number: numbers are like `1`, `2a`, `10`; sixteen characters is generous.
const STEP_NUMBER_BYTES_MAX: usize = 16;

/// Longest agent name accepted in `subagent`: the registry's limit for agent names.
pub const AGENT_NAME_BYTES_MAX: usize = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

/// Something wrong (or worth saying) about a file, at a 1-based line and column.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Problem {
    pub line: u32,
    pub column: u32,
    pub message: String,
    pub severity: Severity,
}

impl Problem {
    pub fn error(line: u32, column: u32, message: impl Into<String>) -> Problem {
        Problem { line, column, message: message.into(), severity: Severity::Error }
    }

    pub fn warning(line: u32, column: u32, message: impl Into<String>) -> Problem {
        Problem { line, column, message: message.into(), severity: Severity::Warning }
    }
}

/// A list item of a block: `- text`, or a checklist item `- [ ] text` / `- [x] text`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Item {
    pub text: String,
    /// `Some(false)` for `- [ ]`, `Some(true)` for `- [x]`, `None` for a plain item.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checked: Option<bool>,
}

/// A directive line such as `RECORD: Database schemas created` or `IF task involves D1:`.
/// Items indented under a directive with no value (`CONTENT:`) belong to it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Directive {
    pub keyword: String,
    pub value: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub items: Vec<String>,
}

/// Any tagged block inside a step or a flight check, kept as a tree.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Block {
    pub tag: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub attributes: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub items: Vec<Item>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub directives: Vec<Directive>,
    /// The block's own text, dedented, with child blocks left out.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub text: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub children: Vec<Block>,
}

/// A `<pre_flight_check>` or `<post_flight_check>`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlightCheck {
    /// The `@path` of each `EXECUTE:` line.
    #[serde(default)]
    pub executes: Vec<String>,
    /// The line of each `EXECUTE:`, in the same order (none for a definition posted as JSON).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub lines: Vec<u32>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub text: String,
    /// Nested blocks, e.g. the post-flight `<summary>` template.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub blocks: Vec<Block>,
}

impl FlightCheck {
    /// The text of the `<summary>` block: the template of the post-flight summary.
    pub fn summary_template(&self) -> Option<&str> {
        self.blocks.iter().find(|b| b.tag == "summary").map(|b| b.text.as_str())
    }
}

/// One `<step>` as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub number: String,
    pub name: Option<String>,
    pub subagent: Option<String>,
    /// From `requirements="a,b,c"`, trimmed, empty entries dropped.
    pub requirements: Vec<String>,
    /// Every attribute as written, including the ones above.
    pub attributes: BTreeMap<String, String>,
    /// The step's markdown heading, e.g. `Step 1: Analyze Task Requirements`.
    pub title: Option<String>,
    /// The nearest heading between steps above this one, e.g. `Phase 1: Setup`.
    pub phase: Option<String>,
    /// Prose of the step outside its blocks, dedented.
    pub text: String,
    pub blocks: Vec<Block>,
    /// The directives of the step's `<agent_selection>` blocks (`IF ...:`, `ASSIGN: ...`), each
    /// with its line, for routing rules that point at the line they came from.
    pub selection: Vec<(u32, Directive)>,
    /// The instruction file the step runs as a child run, if it `EXECUTE`s one.
    pub execute: Option<StepExecute>,
    pub line: u32,
    pub column: u32,
}

/// A step's `EXECUTE` of another instruction file, found in any of the forms Agent OS writes:
/// `EXECUTE: @path`, `EXECUTE instructions from file.md` or `ACTION: Execute file.md ...` where
/// the step `LOAD`s or mentions `@.../file.md`. A `REFERENCE: @path` is not one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StepExecute {
    /// The path as written, without its `@`.
    pub path: String,
    /// The line of the `EXECUTE` (none for a definition posted as JSON).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line: Option<u32>,
    /// What a `FOR each ...:` around the `EXECUTE` loops over, as written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub each: Option<String>,
}

impl Step {
    pub fn flag(&self, attribute: &str) -> bool {
        self.attributes.get(attribute).is_some_and(|v| v.eq_ignore_ascii_case("true"))
    }
}

/// A `<parallel_execution>` group: its steps run beside each other.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    pub optional: bool,
    pub attributes: BTreeMap<String, String>,
    pub steps: Vec<Step>,
    pub line: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
// A file has a handful of entries: boxing the larger variant would buy nothing.
#[allow(clippy::large_enum_variant)]
pub enum FlowEntry {
    Step(Step),
    Group(Group),
}

/// The problem of a file without `<process_flow>`: for a workflow an error, and what makes a
/// file a rules file (like Agent OS's `meta/pre-flight.md`) when it is the only one.
pub const NO_PROCESS_FLOW: &str = "the file has no <process_flow>";

/// Whether the parsed file is a rules file: no `<process_flow>` and nothing else wrong.
pub fn is_rules_file(parsed: &Parsed) -> bool {
    parsed.problems.iter().filter(|p| p.severity == Severity::Error).all(|p| p.message == NO_PROCESS_FLOW)
        && parsed.problems.iter().any(|p| p.message == NO_PROCESS_FLOW)
}

/// The file without its front matter.
pub fn body_of(text: &str) -> &str {
    text.get(front_matter::split(text).body_start..).unwrap_or("").trim()
}

/// Everything read from an instruction file.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct InstructionFile {
    pub front_matter: Map<String, Value>,
    pub title: Option<String>,
    pub overview: Option<String>,
    pub pre_flight: Option<FlightCheck>,
    pub post_flight: Option<FlightCheck>,
    pub flow: Vec<FlowEntry>,
    /// Top-level tagged blocks other than the flow and the flight checks.
    pub blocks: Vec<Block>,
}

impl InstructionFile {
    pub fn steps(&self) -> impl Iterator<Item = &Step> {
        self.flow.iter().flat_map(|entry| match entry {
            FlowEntry::Step(step) => std::slice::from_ref(step).iter(),
            FlowEntry::Group(group) => group.steps.iter(),
        })
    }
}

/// The result of reading a file: what was read and every problem found, in file order.
#[derive(Debug, Clone, PartialEq)]
pub struct Parsed {
    pub file: InstructionFile,
    pub problems: Vec<Problem>,
}

impl Parsed {
    pub fn has_errors(&self) -> bool {
        self.problems.iter().any(|p| p.severity == Severity::Error)
    }
}

/// Maps byte offsets to 1-based line and column (in characters).
struct Lines<'a> {
    text: &'a str,
    starts: Vec<usize>,
    /// The last answer (line start, offset, column): problems come mostly in file order, and
    /// counting on from there keeps many problems on one long line linear.
    last: std::cell::Cell<(usize, usize, usize)>,
}

impl<'a> Lines<'a> {
    fn new(text: &'a str) -> Self {
        let starts = std::iter::once(0).chain(text.match_indices('\n').map(|(i, _)| i + 1)).collect();
        Lines { text, starts, last: std::cell::Cell::new((0, 0, 0)) }
    }

    fn position(&self, offset: usize) -> (u32, u32) {
        let offset = offset.min(self.text.len());
        let line = self.starts.partition_point(|s| *s <= offset).saturating_sub(1);
        let start = self.starts.get(line).copied().unwrap_or(0);
        let (last_start, last_offset, last_column) = self.last.get();
        let (from, counted) =
            if last_start == start && last_offset <= offset { (last_offset, last_column) } else { (start, 0) };
        let column = counted + self.text.get(from..offset).map_or(0, |s| s.chars().count());
        self.last.set((start, offset, column));
        (to_u32(line + 1), to_u32(column + 1))
    }
}

fn to_u32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// Reads an instruction file.
pub fn parse(text: &str) -> Parsed {
    let mut problems = Vec::new();
    if text.len() > INSTRUCTION_FILE_BYTES_MAX {
        problems.push(Problem::error(
            1,
            1,
            format!("the file is {} bytes; the limit is {INSTRUCTION_FILE_BYTES_MAX}", text.len()),
        ));
        return Parsed { file: InstructionFile::default(), problems };
    }
    let lines = Lines::new(text);
    let position = |offset: usize| lines.position(offset);
    let split = front_matter::split(text);
    let front_matter = split.yaml.map(front_matter::parse).unwrap_or_default();
    // The body is parsed with offsets into the whole text, so positions stay true.
    let body = &text[split.body_start..];
    let mut root = tree::build(body, &mut problems, &|offset| position(split.body_start + offset));
    shift_offsets(&mut root, split.body_start);

    let mut file = InstructionFile { front_matter, ..InstructionFile::default() };
    read_title_and_overview(&root, &mut file);
    let mut flows = 0;
    let mut flow_start = 0;
    for element in root.elements() {
        match element.name.as_str() {
            "process_flow" => {
                flows += 1;
                if flows > 1 {
                    let (line, column) = position(element.start);
                    problems.push(Problem::error(line, column, "a file has one <process_flow>; this is a second one"));
                    continue;
                }
                flow_start = element.start;
                read_flow(element, &mut file, &mut problems, &position);
            }
            "pre_flight_check" => file.pre_flight = Some(flight_check(element, &position)),
            "post_flight_check" => file.post_flight = Some(flight_check(element, &position)),
            _ => file.blocks.push(block(element)),
        }
    }
    report_misplaced(&root, false, &mut problems, &position);
    if flows == 0 {
        problems.push(Problem::error(1, 1, NO_PROCESS_FLOW));
    } else if file.steps().next().is_none() && !problems.iter().any(|p| p.severity == Severity::Error) {
        // Only when nothing else explains it: an unclosed <step> also leaves the flow empty.
        let (line, column) = position(flow_start);
        problems.push(Problem::error(line, column, "the process flow has no steps"));
    }
    validate_steps(&file, &mut problems);
    problems.sort_by_key(|p| (p.line, p.column));
    if problems.len() > PROBLEMS_MAX {
        let more = problems.len() - PROBLEMS_MAX;
        problems.truncate(PROBLEMS_MAX);
        let (line, column) = problems.last().map_or((1, 1), |p| (p.line, p.column));
        problems.push(Problem::error(line, column, format!("{more} more problems are not listed")));
    }
    Parsed { file, problems }
}

fn shift_offsets(element: &mut Element, by: usize) {
    element.start += by;
    for child in &mut element.children {
        match child {
            Node::Element(e) => shift_offsets(e, by),
            Node::Text { start, .. } => *start += by,
        }
    }
}

/// The first `# ` line of top-level text is the title; the text after `## Overview` up to the
/// next heading or tag is the overview.
fn read_title_and_overview(root: &Element, file: &mut InstructionFile) {
    let mut overview: Option<String> = None;
    let mut collecting = false;
    for node in &root.children {
        let Node::Text { text, .. } = node else {
            collecting = false;
            continue;
        };
        for line in text.lines() {
            let trimmed = line.trim();
            if trimmed.starts_with('#') {
                collecting = false;
                if let Some(title) = trimmed.strip_prefix("# ") {
                    file.title.get_or_insert_with(|| title.trim().to_string());
                } else if overview.is_none() && heading_text(trimmed).eq_ignore_ascii_case("overview") {
                    collecting = true;
                    overview = Some(String::new());
                }
            } else if let (true, Some(overview)) = (collecting, overview.as_mut()) {
                overview.push_str(line);
                overview.push('\n');
            }
        }
    }
    file.overview = overview.map(|o| o.trim().to_string()).filter(|o| !o.is_empty());
}

fn heading_text(line: &str) -> &str {
    line.trim_start_matches('#').trim()
}

fn read_flow(
    flow: &Element,
    file: &mut InstructionFile,
    problems: &mut Vec<Problem>,
    position: &dyn Fn(usize) -> (u32, u32),
) {
    let mut phase: Option<String> = None;
    let mut pending_parallel: Vec<Step> = Vec::new();
    for node in &flow.children {
        match node {
            Node::Text { text, .. } => {
                if let Some(heading) = text.lines().rev().map(str::trim).find(|l| l.starts_with('#')) {
                    phase = Some(heading_text(heading).to_string());
                }
            }
            Node::Element(element) if element.name == "step" => {
                let step = read_step(element, phase.clone(), position);
                // `parallel="true"` on a lone step: it runs beside the step that follows it.
                // A run of such steps and the step after them form one group.
                if step.flag("parallel") {
                    pending_parallel.push(step);
                } else if pending_parallel.is_empty() {
                    file.flow.push(FlowEntry::Step(step));
                } else {
                    let line = pending_parallel[0].line;
                    let mut steps = std::mem::take(&mut pending_parallel);
                    steps.push(step);
                    file.flow.push(FlowEntry::Group(Group {
                        optional: false,
                        attributes: BTreeMap::new(),
                        steps,
                        line,
                    }));
                }
            }
            Node::Element(element) if element.name == "parallel_execution" => {
                flush_parallel(&mut pending_parallel, file);
                let (line, _) = position(element.start);
                let mut steps = Vec::new();
                for child in element.elements() {
                    match child.name.as_str() {
                        "step" => steps.push(read_step(child, phase.clone(), position)),
                        "parallel_execution" => {
                            let (line, column) = position(child.start);
                            problems.push(Problem::error(
                                line,
                                column,
                                "<parallel_execution> cannot be nested inside another",
                            ));
                        }
                        _ => {}
                    }
                }
                let attributes = attributes(element);
                let optional = attributes.get("optional").is_some_and(|v| v.eq_ignore_ascii_case("true"));
                if steps.is_empty() {
                    let (line, column) = position(element.start);
                    problems.push(Problem::error(line, column, "<parallel_execution> has no <step>"));
                }
                file.flow.push(FlowEntry::Group(Group { optional, attributes, steps, line }));
            }
            Node::Element(element) => file.blocks.push(block(element)),
        }
    }
    flush_parallel(&mut pending_parallel, file);
}

/// A trailing `parallel="true"` step has no step after it to run beside: it runs alone.
fn flush_parallel(pending: &mut Vec<Step>, file: &mut InstructionFile) {
    match pending.len() {
        0 => {}
        1 => file.flow.extend(pending.drain(..).map(FlowEntry::Step)),
        _ => {
            let line = pending[0].line;
            let steps = std::mem::take(pending);
            file.flow.push(FlowEntry::Group(Group { optional: false, attributes: BTreeMap::new(), steps, line }));
        }
    }
}

fn attributes(element: &Element) -> BTreeMap<String, String> {
    element.attrs.iter().cloned().collect()
}

fn read_step(element: &Element, phase: Option<String>, position: &dyn Fn(usize) -> (u32, u32)) -> Step {
    let attributes = attributes(element);
    let (line, column) = position(element.start);
    let own = element.own_text();
    let title = own.lines().map(str::trim).find(|l| l.starts_with('#')).map(|l| heading_text(l).to_string());
    let prose: Vec<&str> = own.lines().filter(|l| !l.trim().starts_with('#')).collect();
    Step {
        number: attributes.get("number").cloned().unwrap_or_default(),
        name: attributes.get("name").cloned().filter(|n| !n.trim().is_empty()),
        subagent: attributes.get("subagent").cloned().filter(|s| !s.trim().is_empty()),
        requirements: attributes
            .get("requirements")
            .map(|r| r.split(',').map(str::trim).filter(|r| !r.is_empty()).map(String::from).collect())
            .unwrap_or_default(),
        attributes,
        title,
        phase,
        text: dedent(&prose.join("\n")),
        blocks: element.elements().map(block).collect(),
        selection: selection_directives(element, position),
        execute: step_execute(&lines_of(element, position, true)),
        line,
        column,
    }
}

/// Every non-blank line of `element`'s own text (with `nested`, of its nested blocks' too),
/// trimmed, with its line number, in document order.
fn lines_of<'e>(element: &'e Element, position: &dyn Fn(usize) -> (u32, u32), nested: bool) -> Vec<(u32, &'e str)> {
    let mut found = Vec::new();
    for node in &element.children {
        match node {
            Node::Text { text, start } => {
                let mut offset = 0;
                for line in text.split_inclusive('\n') {
                    let indent = line.len() - line.trim_start().len();
                    if !line.trim().is_empty() {
                        found.push((position(start + offset + indent).0, line.trim()));
                    }
                    offset += line.len();
                }
            }
            Node::Element(child) if nested => found.extend(lines_of(child, position, true)),
            Node::Element(_) => {}
        }
    }
    found
}

/// The `@path.md` references of a line, without the `@` and trailing punctuation.
fn file_references(line: &str) -> impl Iterator<Item = &str> {
    line.split_whitespace().filter_map(|word| {
        let path = word.strip_prefix('@')?.trim_end_matches(|c: char| !c.is_alphanumeric());
        path.ends_with(".md").then_some(path)
    })
}

/// The first file the step's lines `EXECUTE` (see [`StepExecute`]), and the loop around any
/// `EXECUTE` of it: Agent OS says what a step runs in its prose first and loops over it later.
fn step_execute(lines: &[(u32, &str)]) -> Option<StepExecute> {
    let found = executes_in(lines);
    let first = found.first()?;
    let each = found.iter().filter(|e| e.path == first.path).find_map(|e| e.each.clone());
    Some(StepExecute { each, ..first.clone() })
}

/// Every `EXECUTE` of a file in the step's lines, in order, each with the loop around it.
fn executes_in(lines: &[(u32, &str)]) -> Vec<StepExecute> {
    let mut found = Vec::new();
    let mentioned: Vec<&str> = lines
        .iter()
        .filter(|(_, line)| !line.to_ascii_uppercase().starts_with("REFERENCE"))
        .flat_map(|(_, line)| file_references(line))
        .collect();
    let mut each = None;
    for &(number, line) in lines {
        let upper = line.trim_start_matches("- ").to_ascii_uppercase();
        if let Some(rest) = upper.strip_prefix("FOR EACH ") {
            let start = line.len() - rest.len();
            each = Some(line[start..].trim().trim_end_matches(':').trim().to_string());
            continue;
        }
        if upper.starts_with("END FOR") {
            each = None;
            continue;
        }
        if !(upper.starts_with("EXECUTE") || upper.starts_with("ACTION: EXECUTE")) {
            continue;
        }
        let named = file_references(line).next().or_else(|| {
            line.split_whitespace()
                .map(|w| w.trim_matches(|c: char| !c.is_alphanumeric()))
                .filter(|w| w.ends_with(".md"))
                .find_map(|file| mentioned.iter().copied().find(|m| m.rsplit('/').next() == Some(file)))
        });
        if let Some(path) = named {
            found.push(StepExecute { path: path.to_string(), line: Some(number), each: each.clone() });
        }
    }
    found
}

/// Every directive of the `<agent_selection>` blocks anywhere inside `element`, with its line.
fn selection_directives(element: &Element, position: &dyn Fn(usize) -> (u32, u32)) -> Vec<(u32, Directive)> {
    let mut found = Vec::new();
    for child in element.elements() {
        if child.name != "agent_selection" {
            found.extend(selection_directives(child, position));
            continue;
        }
        let lines = lines_of(child, position, false);
        found.extend(lines.into_iter().filter_map(|(line, text)| Some((line, directive(text)?))));
    }
    found
}

fn flight_check(element: &Element, position: &dyn Fn(usize) -> (u32, u32)) -> FlightCheck {
    let text = dedent(&element.own_text());
    let mut executes = Vec::new();
    let mut lines = Vec::new();
    for (line, text) in lines_of(element, position, false) {
        let path = text.strip_prefix("EXECUTE:").map(|p| p.trim().trim_start_matches('@'));
        if let Some(path) = path.filter(|p| !p.is_empty()) {
            executes.push(path.to_string());
            lines.push(line);
        }
    }
    FlightCheck { executes, lines, text, blocks: element.elements().map(block).collect() }
}

/// Converts an element into a block, reading items and directives from its own text.
pub(crate) fn block(element: &Element) -> Block {
    let text = dedent(&element.own_text());
    let mut items = Vec::new();
    let mut directives: Vec<Directive> = Vec::new();
    // Indentation of a directive that takes the indented items after it, while it does.
    let mut open_directive: Option<usize> = None;
    for line in text.lines() {
        let indent = line.len() - line.trim_start().len();
        let trimmed = line.trim();
        if trimmed.is_empty() {
            continue;
        }
        if let Some(item) = list_item(trimmed) {
            match (open_directive, directives.last_mut()) {
                (Some(directive_indent), Some(directive)) if indent > directive_indent => {
                    directive.items.push(item.text)
                }
                _ => {
                    open_directive = None;
                    items.push(item);
                }
            }
            continue;
        }
        open_directive = None;
        if let Some(directive) = directive(trimmed) {
            if directive.value.is_empty() {
                open_directive = Some(indent);
            }
            directives.push(directive);
        }
    }
    Block {
        tag: element.name.clone(),
        attributes: attributes(element),
        items,
        directives,
        text,
        children: element.elements().map(block).collect(),
    }
}

fn list_item(line: &str) -> Option<Item> {
    let rest = line.strip_prefix("- ").or_else(|| line.strip_prefix("* ")).or_else(|| {
        let digits = line.bytes().take_while(u8::is_ascii_digit).count();
        (digits > 0).then(|| line[digits..].strip_prefix(". ")).flatten()
    })?;
    let rest = rest.trim();
    let checkbox = [("[ ] ", Some(false)), ("[x] ", Some(true)), ("[X] ", Some(true))]
        .into_iter()
        .find_map(|(prefix, checked)| rest.strip_prefix(prefix).map(|text| (text, checked)));
    Some(match checkbox {
        Some((text, checked)) => Item { text: text.trim().to_string(), checked },
        None => Item { text: rest.to_string(), checked: None },
    })
}

/// `KEYWORD: value` (one or more uppercase words before the colon), or `IF condition:` (an
/// uppercase word, then text ending in a colon).
fn directive(line: &str) -> Option<Directive> {
    let is_keyword = |word: &str| word.len() >= 2 && word.bytes().all(|b| b.is_ascii_uppercase() || b == b'_');
    if let Some((keyword, value)) = line.split_once(':') {
        if !keyword.is_empty() && keyword.split(' ').all(is_keyword) {
            return Some(Directive {
                keyword: keyword.to_string(),
                value: value.trim().to_string(),
                items: Vec::new(),
            });
        }
    }
    let (first, rest) = line.split_once(' ')?;
    let condition = rest.strip_suffix(':')?;
    is_keyword(first).then(|| Directive {
        keyword: first.to_string(),
        value: condition.trim().to_string(),
        items: Vec::new(),
    })
}

/// Removes the common leading indentation and surrounding blank lines.
fn dedent(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let indent =
        lines.iter().filter(|l| !l.trim().is_empty()).map(|l| l.len() - l.trim_start().len()).min().unwrap_or(0);
    let dedented: Vec<&str> = lines
        .iter()
        .map(|l| if l.len() >= indent && l.is_char_boundary(indent) { &l[indent..] } else { l.trim_start() })
        .collect();
    dedented.join("\n").trim_matches('\n').trim_end().to_string()
}

/// Steps and groups anywhere but directly in the process flow (or a group in it) are errors.
fn report_misplaced(
    element: &Element,
    in_flow: bool,
    problems: &mut Vec<Problem>,
    position: &dyn Fn(usize) -> (u32, u32),
) {
    for child in element.elements() {
        let allowed_here = in_flow && matches!(element.name.as_str(), "process_flow" | "parallel_execution");
        match child.name.as_str() {
            "step" | "parallel_execution" if !allowed_here => {
                let (line, column) = position(child.start);
                problems.push(Problem::error(line, column, format!("<{}> must be inside <process_flow>", child.name)));
            }
            "pre_flight_check" | "post_flight_check" | "process_flow" if !element.name.is_empty() => {
                let (line, column) = position(child.start);
                problems.push(Problem::error(
                    line,
                    column,
                    format!("<{}> must be at the top level of the file", child.name),
                ));
            }
            _ => {}
        }
        let child_in_flow = child.name == "process_flow" || (in_flow && child.name == "parallel_execution");
        report_misplaced(child, child_in_flow, problems, position);
    }
}

fn validate_steps(file: &InstructionFile, problems: &mut Vec<Problem>) {
    let mut seen: BTreeMap<&str, u32> = BTreeMap::new();
    let mut count = 0;
    for step in file.steps() {
        count += 1;
        let at = |message: String| Problem::error(step.line, step.column, message);
        if step.number.is_empty() {
            problems.push(at("<step> has no number attribute".into()));
        } else if !is_step_number(&step.number) {
            problems.push(at(format!(
                "step number {:?} must be digits followed by optional letters, like 2a",
                step.number
            )));
        } else if let Some(first) = seen.insert(&step.number, step.line) {
            problems.push(at(format!("step number {} is used twice (first on line {first})", step.number)));
        }
        match step.subagent.as_deref() {
            Some("auto-select") if step.requirements.is_empty() => {
                problems.push(at("subagent=\"auto-select\" needs requirements=\"a,b,...\"".into()));
            }
            Some("auto-select") | None => {}
            Some(agent) if !is_agent_name(agent) => problems.push(at(format!(
                "subagent {agent:?} is not a valid agent name (lowercase letters, digits and hyphens, at most {AGENT_NAME_BYTES_MAX})"
            ))),
            Some(_) => {}
        }
        if !step.requirements.is_empty() && step.subagent.as_deref() != Some("auto-select") {
            problems.push(Problem::warning(
                step.line,
                step.column,
                "requirements are only used with subagent=\"auto-select\"",
            ));
        }
        if let Some(name) = &step.name {
            if !is_step_name(name) {
                problems.push(at(format!("step name {name:?} must be letters, digits, underscores or hyphens")));
            }
        }
    }
    if count > STEPS_MAX {
        problems.push(Problem::error(1, 1, format!("the file has {count} steps; the limit is {STEPS_MAX}")));
    }
}

fn is_step_number(number: &str) -> bool {
    let digits = number.bytes().take_while(u8::is_ascii_digit).count();
    number.len() <= STEP_NUMBER_BYTES_MAX && digits > 0 && number[digits..].bytes().all(|b| b.is_ascii_lowercase())
}

fn is_step_name(name: &str) -> bool {
    name.len() <= 64 && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Agent names: lowercase letters, digits and hyphens, starting with a letter or digit.
pub fn is_agent_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= AGENT_NAME_BYTES_MAX
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
}

#[cfg(test)]
mod tests;
