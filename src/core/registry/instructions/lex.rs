//! Splits an instruction file into text and tag tokens.
//!
//! Agent OS files are markdown with XML-like tags, not XML: they contain placeholders such as
//! `--branch=<branch-name>`, fenced code with example tags, and `a < b` in prose. So the lexer
//! only says what *could* be a tag; whether it is one is decided when tags are matched
//! (`tree.rs`): an opening tag that is never closed becomes text again. Fenced code blocks,
//! inline code spans and HTML comments are always text.

/// Longest stretch read as one tag. Real tags are a name and a few short attributes; anything
/// longer is prose that happens to start with `<`, and a bound keeps a pathological file linear.
const TAG_BYTES_MAX: usize = 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Token<'a> {
    Text { text: &'a str, start: usize },
    Open { name: &'a str, attrs: Vec<(&'a str, &'a str)>, start: usize, end: usize, self_closing: bool },
    Close { name: &'a str, start: usize, end: usize },
}

impl Token<'_> {
    pub fn start(&self) -> usize {
        match self {
            Token::Text { start, .. } | Token::Open { start, .. } | Token::Close { start, .. } => *start,
        }
    }
}

/// Tokenises `text`. Offsets are byte offsets into `text`. Adjacent text is merged.
pub fn tokenize(text: &str) -> Vec<Token<'_>> {
    let fences = fenced_ranges(text);
    let bytes = text.as_bytes();
    let mut tokens = Vec::new();
    let mut text_start = 0;
    let mut i = 0;
    let mut fence = fences.iter().peekable();
    while i < bytes.len() {
        if let Some(&&(fence_start, fence_end)) = fence.peek() {
            if i >= fence_start {
                i = fence_end;
                fence.next();
                continue;
            }
        }
        match bytes[i] {
            b'`' => i = skip_code_span(bytes, i),
            b'<' => match read_tag(text, i) {
                Some((token, end)) => {
                    if text_start < i {
                        tokens.push(Token::Text { text: &text[text_start..i], start: text_start });
                    }
                    tokens.push(token);
                    i = end;
                    text_start = end;
                }
                None => i += comment_length(bytes, i).unwrap_or(1),
            },
            _ => i += 1,
        }
    }
    if text_start < bytes.len() {
        tokens.push(Token::Text { text: &text[text_start..], start: text_start });
    }
    tokens
}

/// Byte ranges of fenced code blocks (``` or ~~~, any indentation), from the opening fence line
/// to the end of the closing one. An unclosed fence runs to the end of the file, as in markdown.
fn fenced_ranges(text: &str) -> Vec<(usize, usize)> {
    let mut ranges = Vec::new();
    let mut open: Option<(usize, u8, usize)> = None; // (start, fence char, fence length)
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        let trimmed = line.trim_start();
        let marker = trimmed.as_bytes().first().copied().filter(|c| *c == b'`' || *c == b'~');
        let run = marker.map_or(0, |c| trimmed.bytes().take_while(|b| *b == c).count());
        match (open, marker) {
            (None, Some(c)) if run >= 3 => open = Some((offset, c, run)),
            (Some((start, c, length)), Some(m)) if m == c && run >= length && trimmed[run..].trim().is_empty() => {
                ranges.push((start, offset + line.len()));
                open = None;
            }
            _ => {}
        }
        offset += line.len();
    }
    if let Some((start, _, _)) = open {
        ranges.push((start, text.len()));
    }
    ranges
}

/// Skips an inline code span starting at `start` (a run of backticks closed by a run of the same
/// length on the same line). An unmatched run is just backticks.
fn skip_code_span(bytes: &[u8], start: usize) -> usize {
    let run = bytes[start..].iter().take_while(|b| **b == b'`').count();
    let mut i = start + run;
    while i < bytes.len() && bytes[i] != b'\n' {
        if bytes[i] == b'`' {
            let closing = bytes[i..].iter().take_while(|b| **b == b'`').count();
            if closing == run {
                return i + closing;
            }
            i += closing;
        } else {
            i += 1;
        }
    }
    start + run
}

/// The length of an HTML comment starting at `start`, if one does. An unclosed comment runs to
/// the end of the file, as in HTML: searching again from every later `<!--` would make a file
/// of them quadratic.
fn comment_length(bytes: &[u8], start: usize) -> Option<usize> {
    if !bytes[start..].starts_with(b"<!--") {
        return None;
    }
    let body = &bytes[start + 4..];
    Some(body.windows(3).position(|w| w == b"-->").map_or(bytes.len() - start, |end| 4 + end + 3))
}

fn is_name_start(b: u8) -> bool {
    b.is_ascii_alphabetic()
}

fn is_name_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'-'
}

fn is_attr_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_' || b == b':'
}

fn is_attr_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b':' | b'.' | b'-')
}

/// Reads `<name attr="value" ...>`, `<name/>` or `</name>` at `start`. Returns `None` when the
/// text there is not tag-shaped (a comparison, an autolink, an unquoted attribute...).
fn read_tag(text: &str, start: usize) -> Option<(Token<'_>, usize)> {
    let bytes = text.as_bytes();
    let limit = bytes.len().min(start + TAG_BYTES_MAX);
    let mut i = start + 1;
    let closing = bytes.get(i) == Some(&b'/');
    if closing {
        i += 1;
    }
    let name_start = i;
    if !bytes.get(i).copied().is_some_and(is_name_start) {
        return None;
    }
    while i < limit && is_name_char(bytes[i]) {
        i += 1;
    }
    let name = &text[name_start..i];
    if closing {
        while i < limit && bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        return (bytes.get(i) == Some(&b'>')).then(|| (Token::Close { name, start, end: i + 1 }, i + 1));
    }
    let mut attrs = Vec::new();
    loop {
        let before_space = i;
        while i < limit && bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        match bytes.get(i).copied() {
            Some(b'>') if i < limit => {
                let token = Token::Open { name, attrs, start, end: i + 1, self_closing: false };
                return Some((token, i + 1));
            }
            Some(b'/') if i + 1 < limit && bytes.get(i + 1) == Some(&b'>') => {
                let token = Token::Open { name, attrs, start, end: i + 2, self_closing: true };
                return Some((token, i + 2));
            }
            // An attribute must be separated from the name or the previous attribute by space.
            Some(b) if i < limit && is_attr_start(b) && i > before_space => {
                let attr_start = i;
                while i < limit && is_attr_char(bytes[i]) {
                    i += 1;
                }
                let attr = &text[attr_start..i];
                if bytes.get(i) != Some(&b'=') {
                    attrs.push((attr, ""));
                    continue;
                }
                i += 1;
                let quote = bytes.get(i).copied().filter(|q| *q == b'"' || *q == b'\'')?;
                let value_start = i + 1;
                // `get`: the `=` or the quote may sit at the limit, leaving no room for a value.
                let value_length = bytes.get(value_start..limit)?.iter().position(|b| *b == quote)?;
                attrs.push((attr, &text[value_start..value_start + value_length]));
                i = value_start + value_length + 1;
            }
            _ => return None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Renders tokens compactly: text as-is in quotes, tags as <name a=v>, </name>, <name/>.
    fn shape(text: &str) -> Vec<String> {
        tokenize(text)
            .into_iter()
            .map(|t| match t {
                Token::Text { text, .. } => format!("{text:?}"),
                Token::Open { name, attrs, self_closing, .. } => {
                    let attrs: String = attrs.iter().map(|(k, v)| format!(" {k}={v}")).collect();
                    format!("<{name}{attrs}{}>", if self_closing { "/" } else { "" })
                }
                Token::Close { name, .. } => format!("</{name}>"),
            })
            .collect()
    }

    fn check(text: &str, expected: &[&str]) {
        assert_eq!(shape(text), expected, "{text:?}");
    }

    #[test]
    fn tags_and_text_are_told_apart() {
        check("<tasks>\n- a\n</tasks>", &["<tasks>", "\"\\n- a\\n\"", "</tasks>"]);
        check(r#"<step number="2a" subagent="x">"#, &["<step number=2a subagent=x>"]);
        check("<step number='1'>", &["<step number=1>"]);
        check("<br/>", &["<br/>"]);
        check("<conditional-block task-condition=\"a\">", &["<conditional-block task-condition=a>"]);
        check("<if_running>", &["<if_running>"]);
        check("</ step >", &["\"</ step >\""]);
        check("</step >", &["</step>"]);
        check("<flag enabled>", &["<flag enabled=>"]);
    }

    #[test]
    fn things_that_only_look_like_tags_are_text() {
        check("a < b and c > d", &["\"a < b and c > d\""]);
        check("see <https://example.com>", &["\"see <https://example.com>\""]);
        check("<step number=1>", &["\"<step number=1>\""]);
        check("<step number=\"1>", &["\"<step number=\\\"1>\""]);
        check("<a\"b\">", &["\"<a\\\"b\\\">\""]);
        check("<1step>", &["\"<1step>\""]);
        check("<>", &["\"<>\""]);
        check("<", &["\"<\""]);
        check("<!-- <step> -->", &["\"<!-- <step> -->\""]);
        check("<!-- unclosed <step>", &["\"<!-- unclosed <step>\""]);
    }

    #[test]
    fn placeholders_are_tag_shaped_and_left_to_matching() {
        check("--branch=<branch-name>", &["\"--branch=\"", "<branch-name>"]);
        check("peer.spec.<spec-name>", &["\"peer.spec.\"", "<spec-name>"]);
    }

    #[test]
    fn code_is_text() {
        check("use `<step>` here", &["\"use `<step>` here\""]);
        check("``a ` <b>``", &["\"``a ` <b>``\""]);
        check("```xml\n<step>\n```\n<x>", &["\"```xml\\n<step>\\n```\\n\"", "<x>"]);
        check("  ~~~~\n<step>\n  ~~~~\n", &["\"  ~~~~\\n<step>\\n  ~~~~\\n\""]);
        check("```\n<step>\n", &["\"```\\n<step>\\n\""]);
        check("````\n```\n<step>\n````\n", &["\"````\\n```\\n<step>\\n````\\n\""]);
        check("an unmatched ` then <b>", &["\"an unmatched ` then \"", "<b>"]);
    }

    #[test]
    fn offsets_point_at_the_token_in_the_source() {
        let text = "ab <x y=\"1\">cd</x>";
        let tokens = tokenize(text);
        assert_eq!(tokens.iter().map(Token::start).collect::<Vec<_>>(), vec![0, 3, 12, 14]);
        match &tokens[1] {
            Token::Open { end, .. } => assert_eq!(&text[3..*end], "<x y=\"1\">"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn overlong_tags_are_text() {
        let text = format!("<a b=\"{}\">", "x".repeat(TAG_BYTES_MAX));
        assert_eq!(tokenize(&text).len(), 1);
    }

    #[test]
    fn an_attribute_value_starting_at_the_tag_limit_is_text_not_a_panic() {
        // Regression: `="` landing exactly on TAG_BYTES_MAX sliced past the limit.
        for pad in TAG_BYTES_MAX - 6..TAG_BYTES_MAX + 2 {
            let text = format!("<a {}=\"x\"> tail", "b".repeat(pad));
            let tokens = tokenize(&text);
            assert!(!tokens.is_empty());
        }
    }

    #[test]
    fn many_unclosed_comments_are_read_in_linear_time() {
        let text = "<!--".repeat(64 * 1024);
        assert_eq!(tokenize(&text).len(), 1);
    }

    #[test]
    fn multibyte_text_around_tags_is_kept_whole() {
        check("é<x>ü</x>ß", &["\"é\"", "<x>", "\"ü\"", "</x>", "\"ß\""]);
    }
}
