//! Test-only fault injection. With `TEST_FAULTS=enabled`, `POST /__test/faults` arms a point:
//! after `skip` more operations of that kind pass, the next `fail` of them fail as the platform
//! would make them fail (an error from the binding). The shell checks its points where it calls
//! the bindings: every D1 round trip, R2 writes and reads, queue sends, webhook calls and calls to the
//! agents' wake-up objects; and where an isolate keeps the state a write left (`kept_state`), to
//! make that state stale as another isolate's write would.
//!
//! Armed faults live in the isolate's memory: `wrangler dev` runs the fetch, queue and cron
//! handlers in one isolate, so a test arms the faults of the handlers it is about to drive.
//! Without the test route nothing is ever armed, and a check is one map lookup.
//!
//! This module must never arm anything by itself.

use std::cell::RefCell;
use std::collections::BTreeMap;

/// Where a fault can be injected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Point {
    D1,
    R2Write,
    R2Read,
    QueueSend,
    Webhook,
    DurableObject,
    /// The isolate's kept state of a task misses a write, as when another isolate made it.
    KeptState,
}

impl Point {
    pub const ALL: [Point; 7] = [
        Point::D1,
        Point::R2Write,
        Point::R2Read,
        Point::QueueSend,
        Point::Webhook,
        Point::DurableObject,
        Point::KeptState,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Point::D1 => "d1",
            Point::R2Write => "r2_write",
            Point::R2Read => "r2_read",
            Point::QueueSend => "queue_send",
            Point::Webhook => "webhook",
            Point::DurableObject => "durable_object",
            Point::KeptState => "kept_state",
        }
    }

    pub fn parse(name: &str) -> Option<Point> {
        Point::ALL.into_iter().find(|p| p.name() == name)
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct Armed {
    skip: u32,
    fail: u32,
    failed: u32,
}

thread_local! {
    static ARMED: RefCell<BTreeMap<Point, Armed>> = const { RefCell::new(BTreeMap::new()) };
}

/// Arms `point`: after `skip` operations pass, the next `fail` fail. `fail` 0 disarms it.
pub fn arm(point: Point, skip: u32, fail: u32) {
    ARMED.with(|armed| armed.borrow_mut().insert(point, Armed { skip, fail, failed: 0 }));
}

/// How many operations each point has failed since it was armed, and how many it still will.
pub fn status() -> serde_json::Value {
    ARMED.with(|armed| {
        let armed = armed.borrow();
        let points = Point::ALL.iter().map(|point| {
            let state = armed.get(point).copied().unwrap_or_default();
            (
                point.name().to_string(),
                serde_json::json!({"skip": state.skip, "fail": state.fail, "failed": state.failed}),
            )
        });
        serde_json::Value::Object(points.collect())
    })
}

/// An error if `point` is armed to fail this operation.
pub fn check(point: Point) -> worker::Result<()> {
    ARMED.with(|armed| {
        let mut armed = armed.borrow_mut();
        let Some(state) = armed.get_mut(&point) else { return Ok(()) };
        if state.skip > 0 {
            state.skip -= 1;
            return Ok(());
        }
        if state.fail == 0 {
            return Ok(());
        }
        state.fail -= 1;
        state.failed += 1;
        Err(worker::Error::RustError(format!("injected fault: {} unavailable", point.name())))
    })
}
