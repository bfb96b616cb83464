//! Identifiers: generated from a time and random bytes that the shell passes in.
//!
//! An id is a short type prefix, an underscore and 26 Crockford base32 characters: 48 bits of
//! milliseconds then 80 random bits, like a ULID. Ids of one kind therefore sort by creation
//! time, which keeps D1 primary-key inserts appending and lets lists page by id.

use crate::core::base::time::Timestamp;

/// Random bytes in an id: 80 bits, so two ids made in the same millisecond collide with
/// probability 2^-80 (a billion ids in one millisecond still only reach about 2^-20).
pub const ID_RANDOM_BYTES: usize = 10;

const ID_BODY_CHARS: usize = 26;
const CROCKFORD: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/// The kinds of id switchyard issues. The prefix tells a person what an id names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdKind {
    Request,
    Probe,
    Task,
    Step,
    Lease,
    Message,
    Workflow,
}

impl IdKind {
    pub fn prefix(self) -> &'static str {
        match self {
            IdKind::Request => "req",
            IdKind::Probe => "prb",
            IdKind::Task => "tsk",
            IdKind::Step => "stp",
            IdKind::Lease => "lse",
            IdKind::Message => "msg",
            IdKind::Workflow => "wfl",
        }
    }
}

/// A new id of `kind` for time `now` and the given random bytes.
pub fn new_id(kind: IdKind, now: Timestamp, random: [u8; ID_RANDOM_BYTES]) -> String {
    // 48 bits of time cover the years up to 10889; Timestamp::MAX_MS fits.
    let time = (now.as_millis() as u128) & ((1u128 << 48) - 1);
    let mut value = time << 80;
    for (i, byte) in random.iter().enumerate() {
        value |= (*byte as u128) << (8 * (ID_RANDOM_BYTES - 1 - i));
    }
    let mut body = [0u8; ID_BODY_CHARS];
    for (i, slot) in body.iter_mut().enumerate() {
        let shift = 5 * (ID_BODY_CHARS - 1 - i);
        *slot = CROCKFORD[((value >> shift) & 0x1f) as usize];
    }
    let mut id = String::with_capacity(kind.prefix().len() + 1 + ID_BODY_CHARS);
    id.push_str(kind.prefix());
    id.push('_');
    // Every byte comes from the ASCII alphabet above.
    id.extend(body.iter().map(|b| *b as char));
    id
}

/// True when `text` has the exact shape of an id of `kind`. Used to refuse malformed ids at the
/// edge with a 404 before they reach a query.
pub fn is_id(kind: IdKind, text: &str) -> bool {
    let Some(body) = text.strip_prefix(kind.prefix()).and_then(|rest| rest.strip_prefix('_')) else {
        return false;
    };
    // The first character holds only the top 3 of 130 bits' worth of positions: at most '7'.
    body.len() == ID_BODY_CHARS && body.bytes().all(|b| CROCKFORD.contains(&b)) && body.as_bytes()[0] <= b'7'
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: i64) -> Timestamp {
        Timestamp::from_millis(ms).unwrap()
    }

    #[test]
    fn an_id_is_prefix_underscore_and_26_crockford_characters() {
        let id = new_id(IdKind::Task, at(0), [0; ID_RANDOM_BYTES]);
        assert_eq!(id, "tsk_00000000000000000000000000");
        let id = new_id(IdKind::Probe, at(1), [0xff; ID_RANDOM_BYTES]);
        assert_eq!(id, "prb_0000000001ZZZZZZZZZZZZZZZZ");
        assert!(is_id(IdKind::Probe, &id));
    }

    #[test]
    fn ids_sort_by_creation_time() {
        let early = new_id(IdKind::Step, at(1_705_314_600_000), [0xff; ID_RANDOM_BYTES]);
        let late = new_id(IdKind::Step, at(1_705_314_600_001), [0x00; ID_RANDOM_BYTES]);
        assert!(early < late, "{early} < {late}");
    }

    #[test]
    fn different_random_bytes_give_different_ids() {
        let a = new_id(IdKind::Task, at(5), [1; ID_RANDOM_BYTES]);
        let b = new_id(IdKind::Task, at(5), [2; ID_RANDOM_BYTES]);
        assert_ne!(a, b);
    }

    #[test]
    fn malformed_ids_are_recognised_as_such() {
        let good = new_id(IdKind::Task, at(1_795_466_671_123), [7; ID_RANDOM_BYTES]);
        assert!(is_id(IdKind::Task, &good));
        assert!(!is_id(IdKind::Step, &good), "wrong kind");
        assert!(!is_id(IdKind::Task, &good.to_lowercase()), "lowercase");
        assert!(!is_id(IdKind::Task, &good[..good.len() - 1]), "short");
        assert!(!is_id(IdKind::Task, "tsk_0000000000000000000000000I"), "I is not crockford");
        assert!(!is_id(IdKind::Task, "tsk_80000000000000000000000000"), "overflows 128 bits");
        assert!(!is_id(IdKind::Task, "tsk_../../etc/passwd"));
        assert!(!is_id(IdKind::Task, ""));
    }
}
