//! The wake-up protocol between the Worker and the per-agent Durable Object (`AgentWake`) that
//! holds waiting lease requests, so that a waiting lease costs no D1 query until a step is
//! made ready for its agent.
//!
//! The object keeps a generation number, raised each time one of its agent's steps becomes
//! leasable. A lease request reads the generation, looks in D1, and if there is nothing asks the
//! object to answer once the generation differs from the one it read (or after its wait): a step
//! made ready between the look and the wait has already raised the generation, so no wake-up is
//! lost. An object that was evicted starts again at 0, which differs, and costs one extra look.
//! A wake-up answers one waiting request (the longest waiting), so one ready step sends one
//! request to D1; the others keep waiting, and any that reaches the end of its wait with the
//! generation moved looks once more before answering 204.
//!
//! This module only names and parses the object's requests; the shell holds the object.

/// What a request to the object asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WakeCall {
    /// The current generation.
    Generation,
    /// The generation once it is not `seen`, or after `wait_ms`, whichever comes first.
    Wait { seen: u64, wait_ms: u64 },
    /// A step was made leasable: raise the generation and answer the request that has waited
    /// longest.
    Wake,
}

/// Longest wait the object accepts: a lease's longest wait, with room for the time the request
/// took to arrive.
pub const WAIT_MS_MAX: u64 = (crate::core::base::limits::LEASE_WAIT_SECONDS_MAX as u64 + 5) * 1000;

/// The object is reached through its stub, so the host is never resolved; it only makes a URL.
const ORIGIN: &str = "https://agent-wake";

impl WakeCall {
    pub fn url(self) -> String {
        match self {
            WakeCall::Generation => format!("{ORIGIN}/generation"),
            WakeCall::Wait { seen, wait_ms } => format!("{ORIGIN}/wait?seen={seen}&ms={}", wait_ms.min(WAIT_MS_MAX)),
            WakeCall::Wake => format!("{ORIGIN}/wake"),
        }
    }

    /// The call a request to the object makes; `None` for anything else.
    pub fn parse(path: &str, query: &str) -> Option<WakeCall> {
        match path {
            "/generation" => Some(WakeCall::Generation),
            "/wake" => Some(WakeCall::Wake),
            "/wait" => {
                let (mut seen, mut wait_ms) = (None, None);
                for pair in query.split('&') {
                    match pair.split_once('=') {
                        Some(("seen", v)) => seen = v.parse::<u64>().ok(),
                        Some(("ms", v)) => wait_ms = v.parse::<u64>().ok().filter(|ms| *ms <= WAIT_MS_MAX),
                        _ => return None,
                    }
                }
                Some(WakeCall::Wait { seen: seen?, wait_ms: wait_ms? })
            }
            _ => None,
        }
    }
}

/// Reads the generation an object answered with.
pub fn parse_generation(body: &str) -> Option<u64> {
    body.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(call: WakeCall) -> Option<WakeCall> {
        let url = call.url();
        let rest = url.strip_prefix(ORIGIN).unwrap();
        let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
        WakeCall::parse(path, query)
    }

    #[test]
    fn every_call_reads_back_from_its_url() {
        for call in [WakeCall::Generation, WakeCall::Wake, WakeCall::Wait { seen: 7, wait_ms: 20_000 }] {
            assert_eq!(parsed(call), Some(call));
        }
    }

    #[test]
    fn a_wait_is_bounded_and_anything_else_is_refused() {
        assert_eq!(
            parsed(WakeCall::Wait { seen: 1, wait_ms: u64::MAX }),
            Some(WakeCall::Wait { seen: 1, wait_ms: WAIT_MS_MAX })
        );
        assert_eq!(WakeCall::parse("/wait", &format!("seen=1&ms={}", WAIT_MS_MAX + 1)), None);
        assert_eq!(WakeCall::parse("/wait", "seen=1"), None);
        assert_eq!(WakeCall::parse("/wait", "seen=x&ms=5"), None);
        assert_eq!(WakeCall::parse("/wait", "seen=1&ms=5&more=1"), None);
        assert_eq!(WakeCall::parse("/other", ""), None);
        assert_eq!(parse_generation("12\n"), Some(12));
        assert_eq!(parse_generation("twelve"), None);
    }
}
