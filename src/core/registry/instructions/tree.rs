//! Matches opening and closing tags and builds the element tree of an instruction file.
//!
//! Matching is forgiving where Agent OS files need it and strict where the engine depends on it:
//! an opening tag whose name is closed later is an element; one that is never closed is text
//! (a placeholder like `<branch-name>`), unless it is one of the structural tags, which must be
//! closed and are reported when they are not. A stray closing tag is text, or a problem for a
//! structural tag.

use super::lex::{tokenize, Token};
use super::{Problem, STRUCTURAL_TAGS};

/// Deepest nesting of elements read. Real files nest four or five levels; a bound keeps
/// recursion over the tree (serialising, walking) far from any stack limit.
pub const NESTING_DEPTH_MAX: usize = 32;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Element {
    pub name: String,
    pub attrs: Vec<(String, String)>,
    pub children: Vec<Node>,
    /// Byte offset of the opening `<`.
    pub start: usize,
}

impl Element {
    pub fn elements(&self) -> impl Iterator<Item = &Element> {
        self.children.iter().filter_map(|n| match n {
            Node::Element(e) => Some(e),
            Node::Text { .. } => None,
        })
    }

    /// The element's own text (children's text excluded), concatenated.
    pub fn own_text(&self) -> String {
        self.children
            .iter()
            .filter_map(|n| match n {
                Node::Text { text, .. } => Some(text.as_str()),
                Node::Element(_) => None,
            })
            .collect()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    Text { text: String, start: usize },
    Element(Element),
}

/// The top level of a file: a pseudo-element holding every top-level node.
pub fn build(text: &str, problems: &mut Vec<Problem>, position: &dyn Fn(usize) -> (u32, u32)) -> Element {
    let tokens = tokenize(text);
    let partners = match_tags(&tokens, problems, position);
    // Closing tags whose opening tag was read as text (too deep) are text as well.
    let mut demoted = vec![false; tokens.len()];
    let mut stack: Vec<Element> =
        vec![Element { name: String::new(), attrs: Vec::new(), children: Vec::new(), start: 0 }];
    let mut too_deep_reported = false;
    for (index, token) in tokens.iter().enumerate() {
        match (token, partners[index]) {
            (Token::Open { name, attrs, start, self_closing, .. }, Some(_)) if stack.len() <= NESTING_DEPTH_MAX => {
                let element = Element {
                    name: name.to_string(),
                    attrs: attrs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
                    children: Vec::new(),
                    start: *start,
                };
                if *self_closing {
                    push_node(&mut stack, Node::Element(element));
                } else {
                    stack.push(element);
                }
                continue;
            }
            (Token::Open { start, self_closing, .. }, Some(partner)) => {
                if !self_closing {
                    demoted[partner] = true;
                }
                if !too_deep_reported {
                    too_deep_reported = true;
                    let (line, column) = position(*start);
                    problems.push(Problem::error(
                        line,
                        column,
                        format!("tags are nested deeper than {NESTING_DEPTH_MAX} levels; deeper tags are read as text"),
                    ));
                }
            }
            (Token::Close { .. }, Some(_)) if !demoted[index] && stack.len() > 1 => {
                if let Some(element) = stack.pop() {
                    push_node(&mut stack, Node::Element(element));
                }
                continue;
            }
            _ => {}
        }
        push_node(&mut stack, Node::Text { text: source_of(text, token).to_string(), start: token.start() });
    }
    // Matched pairs nest, so only the root is left; folding keeps whatever a bug could leave
    // behind instead of losing it.
    while stack.len() > 1 {
        if let Some(element) = stack.pop() {
            push_node(&mut stack, Node::Element(element));
        }
    }
    stack.pop().unwrap_or(Element { name: String::new(), attrs: Vec::new(), children: Vec::new(), start: 0 })
}

fn push_node(stack: &mut [Element], node: Node) {
    let Some(parent) = stack.last_mut() else { return };
    match (parent.children.last_mut(), node) {
        (Some(Node::Text { text, .. }), Node::Text { text: more, .. }) => text.push_str(&more),
        (_, node) => parent.children.push(node),
    }
}

fn source_of<'a>(text: &'a str, token: &Token<'a>) -> &'a str {
    match token {
        Token::Text { text, .. } => text,
        Token::Open { start, end, .. } | Token::Close { start, end, .. } => &text[*start..*end],
    }
}

/// Pairs opening and closing tags: `partners[i]` is the index of the token that pairs with token
/// `i` (a self-closing tag pairs with itself), or `None` for a tag that is text. Reports
/// structural tags that do not pair.
fn match_tags(
    tokens: &[Token],
    problems: &mut Vec<Problem>,
    position: &dyn Fn(usize) -> (u32, u32),
) -> Vec<Option<usize>> {
    let mut partners = vec![None; tokens.len()];
    let mut open: Vec<(usize, &str)> = Vec::new();
    // How many tags of each name are open: a closing tag with none open is not searched for,
    // which keeps a file of stray closing tags linear.
    let mut open_by_name: std::collections::BTreeMap<&str, usize> = std::collections::BTreeMap::new();
    let mut unclosed: Vec<usize> = Vec::new();
    for (index, token) in tokens.iter().enumerate() {
        match token {
            Token::Open { self_closing: true, .. } => partners[index] = Some(index),
            Token::Open { name, .. } => {
                open.push((index, name));
                *open_by_name.entry(name).or_default() += 1;
            }
            Token::Close { name, start, .. } => match open_by_name
                .get(name)
                .filter(|count| **count > 0)
                .and_then(|_| open.iter().rposition(|(_, n)| n == name))
            {
                Some(depth) => {
                    for (i, n) in open.drain(depth + 1..) {
                        unclosed.push(i);
                        if let Some(count) = open_by_name.get_mut(n) {
                            *count -= 1;
                        }
                    }
                    if let Some(count) = open_by_name.get_mut(name) {
                        *count -= 1;
                    }
                    if let Some((opened, _)) = open.pop() {
                        partners[opened] = Some(index);
                        partners[index] = Some(opened);
                    }
                }
                None if STRUCTURAL_TAGS.contains(name) => {
                    let (line, column) = position(*start);
                    problems.push(Problem::error(line, column, format!("</{name}> closes a tag that is not open")));
                }
                None => {}
            },
            Token::Text { .. } => {}
        }
    }
    unclosed.extend(open.into_iter().map(|(i, _)| i));
    unclosed.sort_unstable();
    for index in unclosed {
        if let Token::Open { name, start, .. } = &tokens[index] {
            if STRUCTURAL_TAGS.contains(name) {
                let (line, column) = position(*start);
                problems.push(Problem::error(line, column, format!("<{name}> is never closed")));
            }
        }
    }
    partners
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(node: &Node) -> String {
        match node {
            Node::Text { text, .. } => text.clone(),
            Node::Element(e) => {
                let inner: String = e.children.iter().map(render).collect();
                format!("[{}:{inner}]", e.name)
            }
        }
    }

    /// Builds the tree and renders elements as [name:children], text as is; plus problems.
    fn check(text: &str, expected: &str, expected_problems: &[&str]) {
        let mut problems = Vec::new();
        let root = build(text, &mut problems, &|offset| (1, offset as u32 + 1));
        let rendered: String = root.children.iter().map(render).collect();
        assert_eq!(rendered, expected, "{text:?}");
        let messages: Vec<&str> = problems.iter().map(|p| p.message.as_str()).collect();
        assert_eq!(messages, expected_problems, "{text:?}");
    }

    #[test]
    fn matched_tags_become_elements_and_the_rest_stays_text() {
        check("<a>x</a>", "[a:x]", &[]);
        check("<a><b>y</b></a>", "[a:[b:y]]", &[]);
        check("<a>run --branch=<branch-name> now</a>", "[a:run --branch=<branch-name> now]", &[]);
        check("<a><b>never closed</a>", "[a:<b>never closed]", &[]);
        check("stray </b> close", "stray </b> close", &[]);
        check("<a/>", "[a:]", &[]);
        check("<a>1</a><a>2</a>", "[a:1][a:2]", &[]);
        check("<a><a>inner</a></a>", "[a:[a:inner]]", &[]);
    }

    #[test]
    fn structural_tags_must_be_closed_and_opened() {
        check("<process_flow><step>x</process_flow>", "[process_flow:<step>x]", &["<step> is never closed"]);
        check("<step>x", "<step>x", &["<step> is never closed"]);
        check("x</step>", "x</step>", &["</step> closes a tag that is not open"]);
        check(
            "<process_flow><parallel_execution><step>a</step></process_flow>",
            "[process_flow:<parallel_execution>[step:a]]",
            &["<parallel_execution> is never closed"],
        );
    }

    #[test]
    fn nesting_beyond_the_limit_is_text_and_reported_once() {
        let depth = NESTING_DEPTH_MAX + 3;
        let text = format!("{}x{}tail", "<d>".repeat(depth), "</d>".repeat(depth));
        let mut problems = Vec::new();
        let root = build(&text, &mut problems, &|_| (1, 1));
        assert_eq!(problems.len(), 1, "{problems:?}");
        let mut levels = 0;
        let mut node = root.elements().next();
        while let Some(element) = node {
            levels += 1;
            node = element.elements().next();
        }
        assert_eq!(levels, NESTING_DEPTH_MAX);
        assert_eq!(root.elements().count(), 1, "the outermost element holds everything");
        assert_eq!(root.own_text(), "tail", "text after the too-deep tags stays where it was");
    }

    #[test]
    fn many_opening_tags_and_stray_closing_tags_are_matched_in_linear_time() {
        let text = format!("{}{}", "<a>".repeat(40_000), "</b>".repeat(40_000));
        let mut problems = Vec::new();
        let root = build(&text, &mut problems, &|_| (1, 1));
        assert_eq!(root.elements().count(), 0);
    }

    #[test]
    fn own_text_leaves_out_child_elements() {
        let mut problems = Vec::new();
        let root = build("<a>one<b>two</b>three</a>", &mut problems, &|_| (1, 1));
        let a = root.elements().next().unwrap();
        assert_eq!(a.own_text(), "onethree");
    }
}
