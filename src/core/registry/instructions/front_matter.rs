//! The YAML front matter of Agent OS instruction files and Claude Code subagent files.
//!
//! These headers are flat `key: value` lists (`description`, `globs`, `alwaysApply`, `version`,
//! `name`, `tools`, `color`...). This reads that subset of YAML without a YAML dependency:
//! scalars (strings, quoted strings, numbers, booleans, null), inline lists `[a, b]`, and block
//! lists of `- item` lines. Anything richer (nested maps, `|` blocks) is kept as its raw text so
//! nothing is lost. Every key is kept, in order, known or not.

use serde_json::{Map, Number, Value};

/// The front matter split from the rest of a file.
#[derive(Debug, Clone, PartialEq)]
pub struct Split<'a> {
    /// The YAML between the `---` lines, if the file starts with one.
    pub yaml: Option<&'a str>,
    /// Byte offset at which the body starts in the original text.
    pub body_start: usize,
}

/// Finds a front matter block: the file's first line is `---` and a later line is `---`.
pub fn split(text: &str) -> Split<'_> {
    let no_front_matter = Split { yaml: None, body_start: 0 };
    let Some(first_line_end) = text.find('\n') else { return no_front_matter };
    if text[..first_line_end].trim_end() != "---" {
        return no_front_matter;
    }
    let mut offset = first_line_end + 1;
    for line in text[offset..].split_inclusive('\n') {
        if line.trim_end() == "---" {
            return Split { yaml: Some(&text[first_line_end + 1..offset]), body_start: offset + line.len() };
        }
        offset += line.len();
    }
    no_front_matter
}

/// Parses the YAML subset into an ordered JSON object.
pub fn parse(yaml: &str) -> Map<String, Value> {
    let mut map = Map::new();
    let lines: Vec<&str> = yaml.lines().collect();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        i += 1;
        if line.trim().is_empty() || line.trim_start().starts_with('#') || line.starts_with([' ', '\t']) {
            continue;
        }
        let Some((key, rest)) = line.split_once(':') else { continue };
        let key = unquote(key.trim()).to_string();
        let rest = rest.trim();
        if !rest.is_empty() {
            map.insert(key, scalar_or_inline_list(rest));
            continue;
        }
        // Indented lines after `key:` belong to it: a block list, or something kept as text.
        let block_start = i;
        while i < lines.len() && (lines[i].starts_with([' ', '\t', '-']) || lines[i].trim().is_empty()) {
            i += 1;
        }
        let block: Vec<&str> = lines[block_start..i].iter().copied().filter(|l| !l.trim().is_empty()).collect();
        let value = if block.is_empty() {
            Value::Null
        } else if block.iter().all(|l| l.trim_start().starts_with("- ") || l.trim() == "-") {
            Value::Array(block.iter().map(|l| scalar(l.trim_start()[1..].trim())).collect())
        } else {
            Value::String(block.join("\n"))
        };
        map.insert(key, value);
    }
    map
}

fn scalar_or_inline_list(text: &str) -> Value {
    match text.strip_prefix('[').and_then(|t| t.strip_suffix(']')) {
        Some(inner) if inner.trim().is_empty() => Value::Array(Vec::new()),
        Some(inner) => Value::Array(inner.split(',').map(|item| scalar(item.trim())).collect()),
        None => scalar(text),
    }
}

fn scalar(text: &str) -> Value {
    if unquote(text).len() != text.len() {
        return Value::String(unquote(text).to_string());
    }
    match text {
        "" | "~" | "null" => return Value::Null,
        "true" => return Value::Bool(true),
        "false" => return Value::Bool(false),
        _ => {}
    }
    if let Ok(n) = text.parse::<i64>() {
        return Value::Number(n.into());
    }
    // Only plain decimals: "1.0" is a number, "1.0.2" or "1e999" are kept as text.
    if text.bytes().all(|b| b.is_ascii_digit() || b == b'.' || b == b'-') {
        if let Some(n) = text.parse::<f64>().ok().and_then(Number::from_f64) {
            return Value::Number(n);
        }
    }
    Value::String(text.to_string())
}

fn unquote(text: &str) -> &str {
    let quoted = text.len() >= 2
        && ((text.starts_with('"') && text.ends_with('"')) || (text.starts_with('\'') && text.ends_with('\'')));
    if quoted {
        &text[1..text.len() - 1]
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn check(yaml: &str, expected: Value) {
        assert_eq!(Value::Object(parse(yaml)), expected, "{yaml:?}");
    }

    #[test]
    fn the_seed_front_matter_is_read_with_every_key() {
        check(
            "description: Enhanced Multi-Agent Execution Pattern for Cloudflare + SvelteKit\nglobs:\nalwaysApply: false\nversion: 1.0\nencoding: UTF-8\n",
            json!({
                "description": "Enhanced Multi-Agent Execution Pattern for Cloudflare + SvelteKit",
                "globs": null,
                "alwaysApply": false,
                "version": 1.0,
                "encoding": "UTF-8"
            }),
        );
    }

    #[test]
    fn scalars_lists_and_unknown_shapes_are_kept() {
        check("name: test-runner\ncolor: 'green'", json!({"name": "test-runner", "color": "green"}));
        check("tools: Read, Grep, Bash", json!({"tools": "Read, Grep, Bash"}));
        check("tools: [Read, \"Grep\"]", json!({"tools": ["Read", "Grep"]}));
        check("tools: []", json!({"tools": []}));
        check("tools:\n  - Read\n  - Grep\n", json!({"tools": ["Read", "Grep"]}));
        check("globs:\n- '*.ts'\n", json!({"globs": ["*.ts"]}));
        check("n: 3\nm: -2\nx: 1.0.2\ny: 1e999", json!({"n": 3, "m": -2, "x": "1.0.2", "y": "1e999"}));
        check("meta:\n  owner: me\n  team: x\nafter: 1", json!({"meta": "  owner: me\n  team: x", "after": 1}));
        check("url: https://example.com/a", json!({"url": "https://example.com/a"}));
        check("# comment\n\nkey: v # not a comment in this subset", json!({"key": "v # not a comment in this subset"}));
        check("no colon here\n: empty key", json!({"": "empty key"}));
    }

    #[test]
    fn front_matter_is_split_only_when_the_file_starts_with_it() {
        let text = "---\na: 1\n---\n# Title\n";
        let found = split(text);
        assert_eq!(found.yaml, Some("a: 1\n"));
        assert_eq!(&text[found.body_start..], "# Title\n");
        assert_eq!(split("# Title\n---\na: 1\n---\n").yaml, None);
        assert_eq!(split("---\nunterminated: yes\n").yaml, None);
        assert_eq!(split("---").yaml, None);
        assert_eq!(split("---\r\na: 1\r\n---\r\nbody").yaml, Some("a: 1\r\n"));
    }
}
