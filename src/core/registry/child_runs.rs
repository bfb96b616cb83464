//! Child runs: a step that `EXECUTE`s another posted instruction file runs that file's steps
//! under it, and is done when they are. This module says what a file's `EXECUTE`s reach and
//! whether they can run: each addresses a posted workflow with steps, no file runs itself
//! through its children, child runs nest at most [`EXECUTE_DEPTH_MAX`] levels, and a task of
//! the file has at most [`TASK_STEPS_MAX`] steps. It is checked when a file is posted (with the
//! line of the `EXECUTE`) and again when a task is submitted, on the versions the task pins.
//!
//! It reads nothing itself: the shell loads the posted files the `EXECUTE`s reach ([`Files`])
//! and passes them in. It must never plan a run; the engine's planner does, from [`Files`].

use std::collections::BTreeMap;

use crate::core::base::limits::{EXECUTE_DEPTH_MAX, TASK_STEPS_MAX};
use crate::core::edge::error::Detail;
use crate::core::registry::workflow::{located, name_of_path, post_first, Definition, StepDefinition};

/// A posted file as read for a child run: the version it had and its definition.
#[derive(Debug, Clone, PartialEq)]
pub struct PostedFile {
    pub version: i64,
    pub definition: Definition,
}

/// The posted files a definition's `EXECUTE`s reach, by name, at the versions read.
pub type Files = BTreeMap<String, PostedFile>;

/// The key of a step of a child run: its parent step's key, a dot, and its own key (`4.1`).
pub fn child_key(parent: &str, key: &str) -> String {
    format!("{parent}.{key}")
}

/// The key of a later item's copy of a loop's child step: `5.2` for item 3 of loop step 5 is
/// `5#3.2`, so that what lies under the copy (`5#3.2.1`) is under it by its key as everywhere else.
pub fn item_key(loop_key: &str, number: usize, key: &str) -> Option<String> {
    key.strip_prefix(loop_key)?.strip_prefix('.').map(|rest| format!("{loop_key}#{number}.{rest}"))
}

/// Whether the step keyed `key` is within the child run of step `parent`, at any depth: its
/// key is under the parent's (`4.1`, `4.2.3`), or under an item of the parent's loop (`4#2.1`).
pub fn is_under(key: &str, parent: &str) -> bool {
    let Some(rest) = key.strip_prefix(parent) else { return false };
    if rest.starts_with('.') {
        return true;
    }
    let Some(item) = rest.strip_prefix('#') else { return false };
    let digits = item.bytes().take_while(u8::is_ascii_digit).count();
    digits > 0 && item[digits..].starts_with('.')
}

/// The name of the posted file a step `EXECUTE`s, when it runs one and its path can name one.
pub fn executed_name(step: &StepDefinition) -> Option<String> {
    step.execute.as_ref().and_then(|e| name_of_path(&e.path))
}

/// The names of the files the given definitions' steps `EXECUTE`, each once: the next level to
/// load.
pub fn executed_names<'a>(definitions: impl Iterator<Item = &'a Definition>) -> Vec<String> {
    let mut names: Vec<String> = definitions.flat_map(|d| d.steps.iter().filter_map(executed_name)).collect();
    names.sort();
    names.dedup();
    names
}

/// Every reason the definition's `EXECUTE`s cannot run, each at the line (or field) of the
/// `EXECUTE` in this definition that leads there.
pub fn problems(definition: &Definition, files: &Files) -> Vec<Detail> {
    let mut problems = Vec::new();
    let mut steps = definition.steps.len();
    for (index, step) in definition.steps.iter().enumerate() {
        let Some(execute) = &step.execute else { continue };
        let field = format!("steps[{index}].execute");
        let here = |message: String| located(execute.line, &field, || field.clone(), message);
        if step.agent.is_some() || step.auto_select.is_some() {
            let message = format!(
                "step {} EXECUTEs @{} and names a subagent; a step that runs another file is done by that \
                 file's steps, so it names none",
                step.key, execute.path
            );
            problems.push(here(message));
            continue;
        }
        let Some(name) = name_of_path(&execute.path) else {
            let message = format!("EXECUTE: @{} does not address a file by a name switchyard can use", execute.path);
            problems.push(here(message));
            continue;
        };
        let mut chain = vec![definition.name.clone()];
        match reach(&name, files, &mut chain) {
            Ok(child_steps) => steps += child_steps,
            Err(message) => problems.push(here(format!("EXECUTE: @{}: {message}", execute.path))),
        }
    }
    if problems.is_empty() && steps > TASK_STEPS_MAX {
        let message = format!(
            "a task of this workflow would run {steps} steps with its child runs; the limit is {TASK_STEPS_MAX}"
        );
        problems.push(Detail::field("steps", message));
    }
    problems
}

/// The number of steps a child run of `name` adds, its own child runs included, or why it
/// cannot run. `chain` holds the files that lead to it, outermost first.
fn reach(name: &str, files: &Files, chain: &mut Vec<String>) -> Result<usize, String> {
    if chain.iter().any(|n| n == name) {
        return Err(format!("this makes a cycle: {} → {name}", chain.join(" → ")));
    }
    if chain.len() > EXECUTE_DEPTH_MAX {
        return Err(format!(
            "child runs would nest {} levels deep ({} → {name}); the limit is {EXECUTE_DEPTH_MAX}",
            chain.len(),
            chain.join(" → ")
        ));
    }
    let Some(file) = files.get(name) else {
        return Err(if chain.len() == 1 {
            format!("{name} is not posted; {}", post_first(name))
        } else {
            format!("{} EXECUTEs {name}, which is not posted", chain.last().map_or("", String::as_str))
        });
    };
    if file.definition.rules.is_some() {
        return Err(format!(
            "{name} is a rules file, with no steps to run; rules files are EXECUTEd from <pre_flight_check> or \
             <post_flight_check>"
        ));
    }
    chain.push(name.to_string());
    let mut steps = file.definition.steps.len();
    for step in &file.definition.steps {
        let Some(execute) = &step.execute else { continue };
        let child = name_of_path(&execute.path)
            .ok_or_else(|| format!("{name} EXECUTEs @{}, which names no file switchyard can use", execute.path))?;
        steps += reach(&child, files, chain)?;
    }
    chain.pop();
    Ok(steps)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::registry::instructions;
    use crate::core::registry::workflow::from_instructions;

    fn file(name: &str, executes: &[&str]) -> Definition {
        let mut text =
            format!("# {name}\n\n<process_flow>\n<step number=\"1\" subagent=\"a\" name=\"first\">\nDo it.\n</step>\n");
        for (i, target) in executes.iter().enumerate() {
            text.push_str(&format!(
                "<step number=\"{}\" name=\"run_{i}\">\nEXECUTE: @.agent-os/instructions/core/{target}.md\n</step>\n",
                i + 2
            ));
        }
        text.push_str("</process_flow>\n");
        let parsed = instructions::parse(&text);
        assert!(!parsed.has_errors(), "{:?}", parsed.problems);
        from_instructions(name.to_string(), &parsed.file)
    }

    fn posted(definitions: &[Definition]) -> Files {
        definitions.iter().map(|d| (d.name.clone(), PostedFile { version: 1, definition: d.clone() })).collect()
    }

    fn messages(definition: &Definition, files: &Files) -> Vec<String> {
        problems(definition, files).into_iter().map(|d| d.message).collect()
    }

    #[test]
    fn what_a_file_executes_is_checked_against_the_posted_files_as_a_table() {
        let rules = Definition::rules_file(
            "pre-flight".into(),
            &instructions::parse("# Pre-flight\n\nRules.\n").file,
            "Rules.",
        );
        let cases: Vec<(&str, Definition, Vec<Definition>, &str)> = vec![
            ("a posted child", file("top", &["child"]), vec![file("child", &[])], ""),
            ("an unposted child", file("top", &["child"]), vec![], "child is not posted"),
            ("a rules file", file("top", &["pre-flight"]), vec![rules], "is a rules file"),
            ("itself", file("top", &["top"]), vec![file("top", &[])], "cycle: top → top"),
            (
                "a cycle through a child",
                file("top", &["child"]),
                vec![file("child", &["top"]), file("top", &[])],
                "cycle: top → child → top",
            ),
            ("three levels", file("top", &["a"]), vec![file("a", &["b"]), file("b", &["c"]), file("c", &[])], ""),
            (
                "four levels",
                file("top", &["a"]),
                vec![file("a", &["b"]), file("b", &["c"]), file("c", &["d"]), file("d", &[])],
                "nest 4 levels deep (top → a → b → c → d); the limit is 3",
            ),
            (
                "a grandchild not posted",
                file("top", &["a"]),
                vec![file("a", &["b"])],
                "a EXECUTEs b, which is not posted",
            ),
        ];
        for (case, definition, others, expected) in cases {
            let found = messages(&definition, &posted(&others));
            if expected.is_empty() {
                assert!(found.is_empty(), "{case}: {found:?}");
            } else {
                assert_eq!(found.len(), 1, "{case}: {found:?}");
                assert!(found[0].contains(expected), "{case}: {found:?}");
            }
        }
    }

    #[test]
    fn a_problem_points_at_the_line_of_the_execute() {
        let top = file("top", &["child"]);
        let found = problems(&top, &Files::new());
        assert_eq!(found[0].line, Some(8));
        assert_eq!(found[0].field.as_deref(), Some("steps[1].execute"));
    }

    #[test]
    fn a_task_may_not_run_more_steps_than_the_limit_with_its_child_runs() {
        let mut wide = file("wide", &[]);
        let step = wide.steps[0].clone();
        wide.steps = (1..=64).map(|n| StepDefinition { key: n.to_string(), ..step.clone() }).collect();
        let many: Vec<&str> = vec!["wide"; 5];
        let top = file("top", &many);
        let found = messages(&top, &posted(&[wide]));
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].contains("would run 326 steps"), "{found:?}");
    }

    #[test]
    fn a_definition_posted_as_json_names_the_file_it_runs_by_path_and_unknown_fields_are_refused() {
        let step = |execute: &str| {
            format!(r#"{{"name": "top", "steps": [{{"key": "1", "name": "run", "execute": {execute}}}]}}"#)
        };
        let posted: Definition = serde_json::from_str(&step(r#"{"path": "@child.md"}"#)).unwrap();
        let found = problems(&posted, &Files::new());
        assert_eq!(found[0].field.as_deref(), Some("steps[0].execute"));
        assert_eq!(found[0].line, None);
        assert!(found[0].message.contains("child is not posted"), "{found:?}");
        assert!(serde_json::from_str::<Definition>(&step(r#"{"path": "child.md", "times": 3}"#)).is_err());
    }

    #[test]
    fn the_names_a_level_executes_are_listed_once() {
        let top = file("top", &["b", "a", "b"]);
        assert_eq!(executed_names([&top].into_iter()), vec!["a".to_string(), "b".to_string()]);
    }

    #[test]
    fn a_key_is_under_a_step_when_it_is_under_its_key_or_under_an_item_of_its_loop() {
        let cases = [
            ("4.1", "4", true),
            ("4.2.3", "4", true),
            ("4#2.1", "4", true),
            ("4#12.1.2", "4", true),
            ("4#2.1", "4#2", true),
            ("4.1#2.1", "4.1", true),
            ("4", "4", false),
            ("40.1", "4", false),
            ("4#.1", "4", false),
            ("4#x.1", "4", false),
            ("4#2", "4", false),
            ("4a.1", "4", false),
            ("5.1", "4", false),
        ];
        for (key, parent, expected) in cases {
            assert_eq!(is_under(key, parent), expected, "{key} under {parent}");
        }
        assert_eq!(item_key("4", 3, "4.2").as_deref(), Some("4#3.2"));
        assert_eq!(item_key("4", 2, "4.2.1").as_deref(), Some("4#2.2.1"));
        assert_eq!(item_key("4.2", 2, "4.2.1").as_deref(), Some("4.2#2.1"));
        assert_eq!(item_key("4", 2, "40.1"), None);
        assert_eq!(item_key("4", 2, "5"), None);
    }
}
