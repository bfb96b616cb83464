//! A small map whose entries are forgotten after a fixed age: what one isolate remembers of the
//! lookups it made, so that requests close together do not each read the same thing again.
//!
//! It holds at most its capacity and forgets everything when full, rather than tracking use: a
//! miss costs only the read it saves. It never judges whether an entry is still true: its owner
//! picks an age its staleness bound allows, and forgets an entry it knows has changed. A value
//! read while something was forgotten may be the old one, so a put names the moment its read
//! began ([`Memo::writes`]) and is dropped when anything was forgotten since.

use std::collections::BTreeMap;

use super::time::Timestamp;

pub struct Memo<V> {
    max_age_ms: i64,
    capacity: usize,
    entries: BTreeMap<String, (Timestamp, V)>,
    /// How many times an entry was forgotten.
    forgotten: u64,
}

impl<V: Clone> Memo<V> {
    pub const fn new(max_age_ms: i64, capacity: usize) -> Memo<V> {
        Memo { max_age_ms, capacity, entries: BTreeMap::new(), forgotten: 0 }
    }

    /// Where the memo's writes stand: taken before a read whose value will be put.
    pub fn writes(&self) -> u64 {
        self.forgotten
    }

    /// The value remembered for `key`, unless it is older than the memo's age at `now`.
    pub fn get(&self, key: &str, now: Timestamp) -> Option<V> {
        let (at, value) = self.entries.get(key)?;
        let age = now.as_millis() - at.as_millis();
        (0..self.max_age_ms).contains(&age).then(|| value.clone())
    }

    /// Remembers `value`, read from a source since `read_from` ([`Memo::writes`]), unless an
    /// entry was forgotten in between: that read may have raced the change that forgot it.
    pub fn put(&mut self, key: String, value: V, now: Timestamp, read_from: u64) {
        if read_from != self.forgotten {
            return;
        }
        if self.entries.len() >= self.capacity && !self.entries.contains_key(&key) {
            self.entries.clear();
        }
        self.entries.insert(key, (now, value));
    }

    pub fn forget(&mut self, key: &str) {
        self.entries.remove(key);
        self.forgotten += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: i64) -> Timestamp {
        Timestamp::saturating_from_millis(ms)
    }

    #[test]
    fn an_entry_is_served_until_it_reaches_its_age() {
        let mut memo = Memo::new(2_000, 4);
        memo.put("agent:a".into(), 1, at(10_000), 0);
        assert_eq!(memo.get("agent:a", at(10_000)), Some(1));
        assert_eq!(memo.get("agent:a", at(11_999)), Some(1));
        assert_eq!(memo.get("agent:a", at(12_000)), None);
        assert_eq!(memo.get("agent:b", at(10_000)), None);
    }

    #[test]
    fn an_entry_from_a_later_time_than_now_is_not_served() {
        // The clock of the isolate is not monotonic across requests.
        let mut memo = Memo::new(2_000, 4);
        memo.put("k".into(), 1, at(10_000), 0);
        assert_eq!(memo.get("k", at(9_999)), None);
    }

    #[test]
    fn a_forgotten_entry_is_not_served_and_a_new_put_replaces_the_old() {
        let mut memo = Memo::new(2_000, 4);
        memo.put("k".into(), 1, at(0), 0);
        memo.put("k".into(), 2, at(1_000), 0);
        assert_eq!(memo.get("k", at(2_500)), Some(2));
        memo.forget("k");
        assert_eq!(memo.get("k", at(2_500)), None);
    }

    #[test]
    fn a_value_read_while_an_entry_was_forgotten_is_not_remembered() {
        let mut memo = Memo::new(2_000, 4);
        let read_from = memo.writes();
        // The change lands while the read is under way; the read may have the old value.
        memo.forget("token:old");
        memo.put("token:old".into(), "agent", at(0), read_from);
        assert_eq!(memo.get("token:old", at(0)), None);
        let read_from = memo.writes();
        memo.put("token:new".into(), "agent", at(0), read_from);
        assert_eq!(memo.get("token:new", at(0)), Some("agent"));
    }

    #[test]
    fn a_full_memo_forgets_everything_before_it_takes_a_new_key() {
        let mut memo = Memo::new(2_000, 2);
        memo.put("a".into(), 1, at(0), 0);
        memo.put("b".into(), 2, at(0), 0);
        memo.put("b".into(), 3, at(0), 0);
        assert_eq!(memo.get("a", at(0)), Some(1), "replacing a key does not count as a new one");
        memo.put("c".into(), 4, at(0), 0);
        assert_eq!((memo.get("a", at(0)), memo.get("b", at(0)), memo.get("c", at(0))), (None, None, Some(4)));
    }
}
