//! Live output: what a running attempt's command has printed so far, sent by the runner in
//! chunks with its heartbeats and read back while the attempt runs.
//!
//! A chunk is the text from a byte offset of the attempt's output stream. The runner sends
//! from the last offset switchyard acknowledged, so a chunk resent after a lost answer starts
//! at the same offset and is stored under the same key (replacing the shorter copy), and chunks
//! may overlap. Reading walks the chunks in offset order and takes each byte once; it stops at
//! a gap (a chunk not written yet) rather than skip output. Nothing is lost or doubled, whatever
//! the network did.
//!
//! This module only names and assembles; the shell stores chunks in R2.

use crate::core::base::limits::{LIVE_CHUNK_BYTES_MAX, LIVE_OUTPUT_BYTES_MAX, LOG_WAIT_SECONDS_MAX};
use crate::core::edge::error::{ApiError, Detail};

/// Digits of a chunk's offset in its key: keys sort in offset order as R2 lists them.
const OFFSET_DIGITS: usize = 16;

/// The prefix of an attempt's chunks in R2, beside its final log.
pub fn prefix(task_id: &str, step_id: &str, attempt: u32) -> String {
    format!("tasks/{task_id}/steps/{step_id}/attempt-{attempt}/live/")
}

pub fn chunk_key(task_id: &str, step_id: &str, attempt: u32, offset: u64) -> String {
    format!("{}{offset:0width$}.txt", prefix(task_id, step_id, attempt), width = OFFSET_DIGITS)
}

/// The offset a chunk key names; `None` for a key that is not a chunk's.
pub fn offset_of(key: &str) -> Option<u64> {
    let name = key.rsplit('/').next()?.strip_suffix(".txt")?;
    (name.len() == OFFSET_DIGITS).then(|| name.parse().ok()).flatten()
}

/// Checks a chunk a heartbeat carries: 413 over the chunk bound or past the attempt's bound.
pub fn check_chunk(offset: u64, text: &str) -> Result<(), ApiError> {
    if text.len() > LIVE_CHUNK_BYTES_MAX {
        return Err(ApiError::PayloadTooLarge { limit_bytes: LIVE_CHUNK_BYTES_MAX });
    }
    let end = offset.checked_add(text.len() as u64);
    if end.is_none_or(|end| end > LIVE_OUTPUT_BYTES_MAX as u64) {
        return Err(ApiError::PayloadTooLarge { limit_bytes: LIVE_OUTPUT_BYTES_MAX });
    }
    if text.is_empty() && offset > 0 {
        return Err(ApiError::Invalid { details: vec![Detail::field("output.text", "an empty chunk starts at 0")] });
    }
    Ok(())
}

/// The output from byte `after` on, from chunks given as (offset, text) in any order, and the
/// offset just past it. An `after` inside a character starts at the next one.
pub fn assemble(mut chunks: Vec<(u64, &str)>, after: u64) -> (String, u64) {
    chunks.sort_by_key(|(offset, text)| (*offset, std::cmp::Reverse(text.len())));
    let mut out = String::new();
    let mut cursor = after;
    for (offset, text) in chunks {
        let end = offset + text.len() as u64;
        if end <= cursor {
            continue;
        }
        if offset > cursor {
            break;
        }
        let mut start = (cursor - offset) as usize;
        while !text.is_char_boundary(start) {
            start += 1;
        }
        out.push_str(&text[start..]);
        cursor = end;
    }
    (out, cursor.max(after))
}

/// `GET /v1/steps/{id}/log?attempt=&after=&wait=`: which attempt (default: the current one), from
/// which byte of its output, and how long to wait for more when there is none yet.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LogQuery {
    pub attempt: Option<u32>,
    pub after: u64,
    pub wait_seconds: u32,
}

impl LogQuery {
    pub fn parse(query: &str) -> Result<LogQuery, ApiError> {
        let mut parsed = LogQuery::default();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            match name {
                "attempt" => {
                    parsed.attempt = Some(
                        value
                            .parse()
                            .ok()
                            .filter(|a| *a >= 1)
                            .ok_or_else(|| ApiError::bad_query("attempt", "must be an attempt number, from 1"))?,
                    )
                }
                "after" => {
                    parsed.after = value
                        .parse()
                        .map_err(|_| ApiError::bad_query("after", "must be a byte offset, the last next_offset"))?
                }
                "wait" => {
                    parsed.wait_seconds =
                        value.parse().ok().filter(|w| *w <= LOG_WAIT_SECONDS_MAX).ok_or_else(|| {
                            ApiError::bad_query("wait", format!("whole seconds from 0 to {LOG_WAIT_SECONDS_MAX}"))
                        })?
                }
                other => {
                    return Err(ApiError::bad_query(
                        other,
                        "unknown query parameter; this route reads attempt, after and wait",
                    ))
                }
            }
        }
        Ok(parsed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunk_keys_sort_by_offset_and_name_it_back() {
        let key = chunk_key("tsk_1", "stp_1", 2, 4096);
        assert_eq!(key, "tasks/tsk_1/steps/stp_1/attempt-2/live/0000000000004096.txt");
        assert_eq!(offset_of(&key), Some(4096));
        assert!(chunk_key("t", "s", 1, 99) < chunk_key("t", "s", 1, 100));
        assert_eq!(offset_of("tasks/t/steps/s/attempt-1.log"), None);
        assert_eq!(offset_of("tasks/t/live/12.txt"), None);
    }

    #[test]
    fn chunks_in_order_make_the_output_and_its_end() {
        let (text, end) = assemble(vec![(0, "one\n"), (4, "two\n"), (8, "three\n")], 0);
        assert_eq!((text.as_str(), end), ("one\ntwo\nthree\n", 14));
        assert_eq!(assemble(vec![(0, "one\n"), (4, "two\n")], 4), ("two\n".to_string(), 8));
    }

    #[test]
    fn a_resent_chunk_and_overlapping_chunks_give_every_byte_once() {
        // The answer to the chunk at 4 was lost; the runner resent from 4 with more text.
        let chunks = vec![(0, "one\n"), (4, "tw"), (4, "two\nthree\n"), (8, "three\nfour\n")];
        assert_eq!(assemble(chunks, 0).0, "one\ntwo\nthree\nfour\n");
    }

    #[test]
    fn reading_stops_at_a_gap_rather_than_skip_output() {
        let (text, end) = assemble(vec![(0, "one\n"), (8, "three\n")], 0);
        assert_eq!((text.as_str(), end), ("one\n", 4));
        assert_eq!(assemble(vec![(8, "three\n")], 0), (String::new(), 0));
    }

    #[test]
    fn an_offset_inside_a_character_starts_at_the_next_one() {
        let (text, _) = assemble(vec![(0, "é!")], 1);
        assert_eq!(text, "!");
    }

    #[test]
    fn the_log_query_reads_attempt_after_and_a_bounded_wait() {
        assert_eq!(LogQuery::parse("").unwrap(), LogQuery::default());
        assert_eq!(
            LogQuery::parse("attempt=2&after=120&wait=5").unwrap(),
            LogQuery { attempt: Some(2), after: 120, wait_seconds: 5 }
        );
        for bad in ["attempt=0", "attempt=x", "after=-1", "wait=21", "follow=1"] {
            assert!(LogQuery::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn chunks_over_their_bound_or_past_the_attempts_bound_are_413() {
        assert!(check_chunk(0, "hello").is_ok());
        let big = "x".repeat(LIVE_CHUNK_BYTES_MAX + 1);
        assert!(matches!(check_chunk(0, &big), Err(ApiError::PayloadTooLarge { .. })));
        assert!(matches!(check_chunk(LIVE_OUTPUT_BYTES_MAX as u64, "x"), Err(ApiError::PayloadTooLarge { .. })));
        assert!(matches!(check_chunk(u64::MAX, "x"), Err(ApiError::PayloadTooLarge { .. })));
        assert!(check_chunk(5, "").is_err());
    }
}
