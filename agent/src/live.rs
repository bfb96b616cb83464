//! Live output: what the running command printed and switchyard has not acknowledged yet, sent
//! in bounded chunks with the heartbeats so that `GET /v1/steps/{id}/log` shows it while the
//! step runs.
//!
//! Offsets are bytes of the output as text (UTF-8, invalid bytes replaced), counted from the
//! start of the attempt. A chunk always starts at the last offset switchyard acknowledged, so a
//! heartbeat whose answer was lost is resent from the same place and nothing is doubled; what
//! is not acknowledged is kept until it is. A chunk switchyard refuses as too large is sent
//! smaller, after a pause; when even the smallest is refused (the attempt's live output is
//! full), or the unsent output outgrows [`PENDING_BYTES_MAX`] while switchyard is unreachable,
//! live output stops for the attempt. The completion still carries the whole log.

use std::time::{Duration, Instant};

/// The most text one heartbeat carries: switchyard's bound for a chunk.
pub const CHUNK_BYTES_MAX: usize = 32 * 1024;
/// The smallest chunk tried after switchyard refused larger ones.
const CHUNK_BYTES_MIN: usize = 1024;
/// Unsent output kept while switchyard is unreachable; beyond it live output stops (a gap would
/// make everything after it unreadable live).
pub const PENDING_BYTES_MAX: usize = 8 * 1024 * 1024;
/// First pause after a refused chunk; it doubles up to [`BACKOFF_CAP`].
const BACKOFF_FIRST: Duration = Duration::from_secs(1);
const BACKOFF_CAP: Duration = Duration::from_secs(30);

pub struct Live {
    /// Text from `acked` on, not acknowledged yet.
    pending: String,
    acked: u64,
    /// Bytes of a character cut between two reads.
    carry: Vec<u8>,
    chunk: usize,
    backoff: Duration,
    not_before: Option<Instant>,
    stopped: Option<String>,
}

impl Default for Live {
    fn default() -> Self {
        Live {
            pending: String::new(),
            acked: 0,
            carry: Vec::new(),
            chunk: CHUNK_BYTES_MAX,
            backoff: BACKOFF_FIRST,
            not_before: None,
            stopped: None,
        }
    }
}

impl Live {
    /// Adds what the command printed.
    pub fn push(&mut self, bytes: &[u8]) {
        if self.stopped.is_some() {
            return;
        }
        self.carry.extend_from_slice(bytes);
        let valid = match std::str::from_utf8(&self.carry) {
            Ok(text) => text.len(),
            // A cut character at the end waits for its other bytes; anything else is replaced.
            Err(err) if err.error_len().is_none() => err.valid_up_to(),
            Err(_) => self.carry.len(),
        };
        let text: Vec<u8> = self.carry.drain(..valid).collect();
        self.pending.push_str(&String::from_utf8_lossy(&text));
        if self.pending.len() > PENDING_BYTES_MAX {
            self.stop("switchyard was unreachable for too long; the rest arrives with the completion".into());
        }
    }

    /// Whether there is output to send now.
    pub fn has_output(&self, now: Instant) -> bool {
        self.stopped.is_none() && !self.pending.is_empty() && self.not_before.is_none_or(|t| now >= t)
    }

    /// The next chunk to send, as (offset, text), if any may be sent now.
    pub fn next_chunk(&self, now: Instant) -> Option<(u64, &str)> {
        if !self.has_output(now) {
            return None;
        }
        let mut end = self.pending.len().min(self.chunk);
        while !self.pending.is_char_boundary(end) {
            end -= 1;
        }
        Some((self.acked, &self.pending[..end]))
    }

    /// switchyard acknowledged the output up to `offset`.
    pub fn acknowledged(&mut self, offset: u64) {
        let done = offset.saturating_sub(self.acked).min(self.pending.len() as u64) as usize;
        let mut done = done;
        while !self.pending.is_char_boundary(done) {
            done -= 1;
        }
        self.pending.drain(..done);
        self.acked += done as u64;
        self.backoff = BACKOFF_FIRST;
        self.not_before = None;
    }

    /// switchyard refused the chunk as too large: smaller, later, or no more.
    pub fn refused(&mut self, now: Instant) {
        if self.chunk <= CHUNK_BYTES_MIN {
            self.stop(
                "switchyard refuses more live output for this attempt; the rest arrives with the completion".into(),
            );
            return;
        }
        self.chunk = (self.chunk / 2).max(CHUNK_BYTES_MIN);
        self.not_before = Some(now + self.backoff);
        self.backoff = (self.backoff * 2).min(BACKOFF_CAP);
    }

    fn stop(&mut self, why: String) {
        self.pending.clear();
        self.carry.clear();
        self.stopped = Some(why);
    }

    /// Why live output stopped, if it did, for the log.
    pub fn stopped(&mut self) -> Option<String> {
        self.stopped.as_ref().map(|why| format!("live output stopped: {why}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_start_at_the_acknowledged_offset_and_a_lost_answer_resends_the_same_bytes() {
        let mut live = Live::default();
        let now = Instant::now();
        live.push(b"one\ntwo\n");
        assert_eq!(live.next_chunk(now), Some((0, "one\ntwo\n")));
        // The answer was lost: more output arrives, the resend starts at 0 again.
        live.push(b"three\n");
        assert_eq!(live.next_chunk(now), Some((0, "one\ntwo\nthree\n")));
        live.acknowledged(14);
        assert_eq!(live.next_chunk(now), None);
        live.push(b"four\n");
        assert_eq!(live.next_chunk(now), Some((14, "four\n")));
    }

    #[test]
    fn a_character_cut_between_reads_is_sent_whole() {
        let mut live = Live::default();
        let e_acute = "é".as_bytes();
        live.push(&[b'a', e_acute[0]]);
        assert_eq!(live.next_chunk(Instant::now()), Some((0, "a")));
        live.push(&[e_acute[1], b'!']);
        assert_eq!(live.next_chunk(Instant::now()), Some((0, "aé!")));
        live.push(&[0xff, b'\n']);
        assert_eq!(live.next_chunk(Instant::now()).unwrap().1, "aé!\u{fffd}\n");
    }

    #[test]
    fn a_long_output_goes_in_bounded_chunks() {
        let mut live = Live::default();
        live.push(&vec![b'x'; CHUNK_BYTES_MAX * 2 + 5]);
        let (offset, text) = live.next_chunk(Instant::now()).unwrap();
        assert_eq!((offset, text.len()), (0, CHUNK_BYTES_MAX));
        live.acknowledged(CHUNK_BYTES_MAX as u64);
        assert_eq!(live.next_chunk(Instant::now()).unwrap().0, CHUNK_BYTES_MAX as u64);
    }

    #[test]
    fn a_refused_chunk_is_sent_smaller_after_a_pause_and_at_the_smallest_live_output_stops() {
        let mut live = Live::default();
        let now = Instant::now();
        live.push(&vec![b'x'; CHUNK_BYTES_MAX]);
        live.refused(now);
        assert_eq!(live.next_chunk(now), None, "not at once");
        let later = now + Duration::from_secs(2);
        assert_eq!(live.next_chunk(later).unwrap().1.len(), CHUNK_BYTES_MAX / 2);
        for _ in 0..10 {
            live.refused(later);
        }
        assert!(live.stopped().unwrap().contains("refuses more live output"));
        assert_eq!(live.next_chunk(later + Duration::from_secs(600)), None);
    }

    #[test]
    fn unsent_output_past_its_bound_stops_live_output_instead_of_leaving_a_gap() {
        let mut live = Live::default();
        live.push(&vec![b'x'; PENDING_BYTES_MAX + 1]);
        assert!(live.stopped().unwrap().contains("unreachable"));
        assert!(!live.has_output(Instant::now()));
    }
}
