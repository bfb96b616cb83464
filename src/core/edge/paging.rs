//! Query parameters of list routes: an opaque `cursor` and a `limit`.
//!
//! Cursors are issued by switchyard (the sequence number or the name of the last row of a page)
//! and clients pass them back unchanged; anything that cannot be one is a 400. Unknown parameters are a 400 as
//! well, so a misspelt filter is noticed instead of silently returning everything.

use crate::core::base::limits::{CURSOR_BYTES_MAX, PAGE_LIMIT_DEFAULT, PAGE_LIMIT_MAX};
use crate::core::edge::error::{ApiError, Detail};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    /// Rows strictly after this position; `None` from the start.
    pub cursor: Option<String>,
    pub limit: u32,
}

impl Page {
    /// Parses the raw query string (without `?`).
    pub fn parse(query: &str) -> Result<Page, ApiError> {
        let mut page = Page { cursor: None, limit: PAGE_LIMIT_DEFAULT };
        let mut details = Vec::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            match name {
                "cursor" if is_cursor(value) => page.cursor = Some(value.to_string()),
                "cursor" => details.push(Detail::field("cursor", "not a cursor issued by this api")),
                "limit" => match value.parse::<u32>() {
                    Ok(limit) if (1..=PAGE_LIMIT_MAX).contains(&limit) => page.limit = limit,
                    _ => details
                        .push(Detail::field("limit", format!("must be a whole number from 1 to {PAGE_LIMIT_MAX}"))),
                },
                other => details.push(Detail::field(truncated(other), "unknown query parameter")),
            }
        }
        if details.is_empty() {
            Ok(page)
        } else {
            Err(ApiError::BadRequest { message: "invalid query parameters".into(), details })
        }
    }

    /// For histories ordered by sequence number, which also take `after=<seq>` (the last
    /// sequence number seen) in place of `cursor`: both say the same thing.
    pub fn parse_history(query: &str) -> Result<Page, ApiError> {
        let renamed: Vec<String> = query
            .split('&')
            .map(|pair| match pair.strip_prefix("after=") {
                Some(value) => format!("cursor={value}"),
                None => pair.to_string(),
            })
            .collect();
        Page::parse(&renamed.join("&"))
    }

    /// For lists ordered by sequence number: the cursor as one, or a 400.
    pub fn after_seq(&self) -> Result<i64, ApiError> {
        match &self.cursor {
            None => Ok(0),
            Some(cursor) => cursor
                .parse::<i64>()
                .ok()
                .filter(|seq| *seq >= 0)
                .ok_or_else(|| ApiError::bad_query("cursor", "not a cursor issued by this api")),
        }
    }

    /// The cursor for the page after one whose last row is at `last`, or `None` when the page
    /// was not full (so there is nothing after it yet).
    pub fn next_cursor(&self, rows_returned: usize, last: Option<String>) -> Option<String> {
        if rows_returned < self.limit as usize {
            return None;
        }
        last
    }
}

/// Cursors we issue are sequence numbers and names: short, and URL-safe as they are.
fn is_cursor(value: &str) -> bool {
    !value.is_empty()
        && value.len() <= CURSOR_BYTES_MAX
        && value.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Echoing a parameter name back is helpful; echoing a megabyte of one is not.
fn truncated(name: &str) -> String {
    name.chars().take(64).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(query: &str, expected: Result<(Option<&str>, u32), &[&str]>) {
        let got = Page::parse(query);
        match (&got, expected) {
            (Ok(page), Ok((cursor, limit))) => {
                assert_eq!((page.cursor.as_deref(), page.limit), (cursor, limit), "{query}")
            }
            (Err(ApiError::BadRequest { details, .. }), Err(fields)) => {
                let got_fields: Vec<&str> = details.iter().filter_map(|d| d.field.as_deref()).collect();
                assert_eq!(got_fields, fields, "{query}");
            }
            _ => panic!("{query}: got {got:?}"),
        }
    }

    #[test]
    fn list_queries_parse_or_name_every_bad_parameter() {
        check("", Ok((None, PAGE_LIMIT_DEFAULT)));
        check("limit=10", Ok((None, 10)));
        check("cursor=42&limit=200", Ok((Some("42"), 200)));
        check("cursor=42&", Ok((Some("42"), PAGE_LIMIT_DEFAULT)));
        check("cursor=cloudflare-specialist", Ok((Some("cloudflare-specialist"), PAGE_LIMIT_DEFAULT)));
        check("limit=0", Err(&["limit"]));
        check("limit=201", Err(&["limit"]));
        check("limit=-1", Err(&["limit"]));
        check("limit=ten", Err(&["limit"]));
        check("cursor=", Err(&["cursor"]));
        check("cursor=1.5", Err(&["cursor"]));
        check("cursor=a%2Fb", Err(&["cursor"]));
        check(&format!("cursor={}", "9".repeat(65)), Err(&["cursor"]));
        check("cursor=1%20OR%201=1", Err(&["cursor"]));
        check("sort=desc&limit=x", Err(&["sort", "limit"]));
    }

    #[test]
    fn a_full_page_has_a_next_cursor_and_a_short_one_does_not() {
        let page = Page { cursor: None, limit: 2 };
        assert_eq!(page.next_cursor(2, Some("17".into())), Some("17".to_string()));
        assert_eq!(page.next_cursor(1, Some("17".into())), None);
        assert_eq!(page.next_cursor(0, None), None);
    }

    #[test]
    fn sequence_cursors_must_be_numbers() {
        assert_eq!(Page::parse("cursor=17").unwrap().after_seq(), Ok(17));
        assert_eq!(Page::parse_history("after=17&limit=5").unwrap().after_seq(), Ok(17));
        assert!(Page::parse_history("after=x").unwrap().after_seq().is_err());
        assert!(Page::parse("after=17").is_err(), "only histories take after");
        assert_eq!(Page::parse("").unwrap().after_seq(), Ok(0));
        assert!(Page::parse("cursor=abc").unwrap().after_seq().is_err());
        assert!(Page::parse("cursor=-5").unwrap().after_seq().is_err());
        assert!(Page::parse(&format!("cursor={}", "9".repeat(40))).unwrap().after_seq().is_err(), "overflows i64");
    }
}
