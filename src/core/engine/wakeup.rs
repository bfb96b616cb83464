//! The wake-up protocol between the Worker and the per-agent Durable Object (`AgentWake`) that
//! holds waiting lease requests, so that a waiting lease costs no D1 query until a step is
//! made ready for its agent.
//!
//! Each step made leasable sends the object one wake-up. The object hands it to the request that
//! has waited longest, which then looks in D1; one ready step sends one request to D1, not all
//! of them. With nobody waiting it keeps the wake-up (at most [`WAKEUPS_KEPT_MAX`]): a request
//! that looked in D1 just before the step became ready, and asks to wait just after, takes it at
//! once, so no step is missed between a look and a wait. An object that was evicted has kept
//! none, which only matters if nobody was waiting, and then the next request looks in D1 anyway.
//!
//! This module only names and parses the object's requests; the shell holds the object.

use crate::core::base::limits::LEASE_WAIT_SECONDS_MAX;

/// What a request to the object asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WakeCall {
    /// Answer once a wake-up comes (or take one kept), or after `wait_ms`.
    Wait { wait_ms: u64 },
    /// A step was made leasable: wake the request that has waited longest, or keep the wake-up.
    Wake,
}

/// How a wait ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Waited {
    /// A step may be ready: look in D1.
    Woken,
    /// Nothing was made ready in all that time.
    TimedOut,
}

/// Most wake-ups the object keeps while nobody waits. Each costs a later request one early look
/// in D1, so a few are harmless, and the bound keeps an agent that never leases from piling
/// them up.
pub const WAKEUPS_KEPT_MAX: u32 = 16;

/// Longest wait the object accepts: a lease's longest wait, with room for the time the request
/// took to arrive.
pub const WAIT_MS_MAX: u64 = (LEASE_WAIT_SECONDS_MAX as u64 + 5) * 1000;

/// The object is reached through its stub, so the host is never resolved; it only makes a URL.
const ORIGIN: &str = "https://agent-wake";

impl WakeCall {
    pub fn url(self) -> String {
        match self {
            WakeCall::Wait { wait_ms } => format!("{ORIGIN}/wait?ms={}", wait_ms.min(WAIT_MS_MAX)),
            WakeCall::Wake => format!("{ORIGIN}/wake"),
        }
    }

    /// The call a request to the object makes; `None` for anything else.
    pub fn parse(path: &str, query: &str) -> Option<WakeCall> {
        match (path, query) {
            ("/wake", "") => Some(WakeCall::Wake),
            ("/wait", query) => {
                let ms = query.strip_prefix("ms=")?.parse::<u64>().ok().filter(|ms| *ms <= WAIT_MS_MAX)?;
                Some(WakeCall::Wait { wait_ms: ms })
            }
            _ => None,
        }
    }
}

impl Waited {
    pub fn as_str(self) -> &'static str {
        match self {
            Waited::Woken => "woken",
            Waited::TimedOut => "timed out",
        }
    }

    pub fn parse(body: &str) -> Option<Waited> {
        [Waited::Woken, Waited::TimedOut].into_iter().find(|w| w.as_str() == body.trim())
    }
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
        for call in [WakeCall::Wake, WakeCall::Wait { wait_ms: 20_000 }, WakeCall::Wait { wait_ms: 0 }] {
            assert_eq!(parsed(call), Some(call));
        }
        for waited in [Waited::Woken, Waited::TimedOut] {
            assert_eq!(Waited::parse(waited.as_str()), Some(waited));
        }
    }

    #[test]
    fn a_wait_is_bounded_and_anything_else_is_refused() {
        assert_eq!(parsed(WakeCall::Wait { wait_ms: u64::MAX }), Some(WakeCall::Wait { wait_ms: WAIT_MS_MAX }));
        assert_eq!(WakeCall::parse("/wait", &format!("ms={}", WAIT_MS_MAX + 1)), None);
        assert_eq!(WakeCall::parse("/wait", ""), None);
        assert_eq!(WakeCall::parse("/wait", "ms=x"), None);
        assert_eq!(WakeCall::parse("/wait", "ms=5&more=1"), None);
        assert_eq!(WakeCall::parse("/wake", "now=1"), None);
        assert_eq!(WakeCall::parse("/other", ""), None);
        assert_eq!(Waited::parse("maybe"), None);
    }
}
