//! The report a step completes with: what the command wrote to its report file, with the
//! figures measured from git put over its own claims about files and lines.

use serde_json::{json, Map, Value};

use crate::diff::Change;

/// Reads the command's report file text: a JSON object, or nothing usable. A file that is
/// there but not an object is a problem worth saying in the log, not a reason to fail a step
/// whose command succeeded.
pub fn parse(text: Option<&str>) -> Result<Map<String, Value>, String> {
    let Some(text) = text.filter(|t| !t.trim().is_empty()) else { return Ok(Map::new()) };
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err("the report file is JSON but not an object; it was ignored".into()),
        Err(err) => Err(format!("the report file is not JSON ({err}); it was ignored")),
    }
}

/// The command's report with what was measured: files and lines from git and the tool's own
/// figures (turns, tokens, cost) under `performance` win over whatever the command said;
/// everything else is kept as written.
pub fn merge(
    mut report: Map<String, Value>,
    measured: Option<&Change>,
    tool: Map<String, Value>,
) -> Map<String, Value> {
    if !tool.is_empty() {
        let mut performance = match report.remove("performance") {
            Some(Value::Object(own)) => own,
            _ => Map::new(),
        };
        performance.extend(tool);
        report.insert("performance".into(), Value::Object(performance));
    }
    if let Some(change) = measured {
        report.insert("files_created".into(), json!(change.files_created));
        report.insert("files_modified".into(), json!(change.files_modified));
        report.insert("lines_added".into(), json!(change.lines_added));
        report.insert("lines_removed".into(), json!(change.lines_removed));
    }
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn measured_figures_win_over_claimed_ones_and_the_rest_is_kept() {
        let claimed = parse(Some(
            r#"{"files_created": ["made-up.ts"], "lines_added": 9999, "records": {"Routes": ["/comments"]},
                "tests": {"unit": {"passed": 4}}}"#,
        ))
        .unwrap();
        let change = Change {
            files_created: vec!["src/real.ts".into()],
            files_modified: vec!["wrangler.toml".into()],
            lines_added: 12,
            lines_removed: 3,
        };
        let merged = merge(claimed, Some(&change), Map::new());
        assert_eq!(merged["files_created"], json!(["src/real.ts"]));
        assert_eq!(merged["files_modified"], json!(["wrangler.toml"]));
        assert_eq!((merged["lines_added"].clone(), merged["lines_removed"].clone()), (json!(12), json!(3)));
        assert_eq!(merged["records"], json!({"Routes": ["/comments"]}));
        assert_eq!(merged["tests"]["unit"]["passed"], 4);
    }

    #[test]
    fn without_a_work_tree_the_commands_own_figures_stay() {
        let claimed = parse(Some(r#"{"lines_added": 5}"#)).unwrap();
        assert_eq!(merge(claimed, None, Map::new())["lines_added"], 5);
    }

    #[test]
    fn the_tools_figures_join_the_commands_own_performance_and_win() {
        let claimed = parse(Some(r#"{"performance": {"bundle_kb": 120, "cost_usd": 99}}"#)).unwrap();
        let tool = json!({"cost_usd": 0.01, "turns": 3}).as_object().cloned().unwrap();
        assert_eq!(merge(claimed, None, tool)["performance"], json!({"bundle_kb": 120, "cost_usd": 0.01, "turns": 3}));
    }

    #[test]
    fn a_missing_empty_or_broken_report_file_gives_an_empty_report_and_says_why() {
        assert_eq!(parse(None).unwrap(), Map::new());
        assert_eq!(parse(Some("  \n")).unwrap(), Map::new());
        assert!(parse(Some("[1]")).unwrap_err().contains("not an object"));
        assert!(parse(Some("{oops")).unwrap_err().contains("not JSON"));
    }
}
