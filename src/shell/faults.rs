//! Test-only fault injection. With `TEST_FAULTS=enabled`, `POST /__test/faults` arms a point:
//! after `skip` more operations of that kind pass, the next `fail` of them fail as the platform
//! would make them fail (an error from the binding). The shell checks its points where it calls
//! the bindings: every D1 round trip, R2 writes and reads, queue sends, webhook calls and calls to the
//! agents' wake-up objects; and where an isolate keeps the state a write left (`kept_state`), to
//! make that state stale as another isolate's write would.
//!
//! A point can also be held: the next operation there waits until the test releases it, as a
//! slow binding call would, so that a test can put another request between that operation's
//! decision and its write (two changes racing for one task, say). Only `change_write`, the batch
//! that writes a change of a task, can be held.
//!
//! Armed faults live in the isolate's memory: `wrangler dev` runs the fetch, queue and cron
//! handlers in one isolate, so a test arms the faults of the handlers it is about to drive.
//! Without the test route nothing is ever armed, and a check is one map lookup.
//!
//! This module must never arm anything by itself.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::time::Duration;

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
    /// The one batch that writes a change of a task (a transition, or a task's insert).
    ChangeWrite,
}

impl Point {
    pub const ALL: [Point; 8] = [
        Point::D1,
        Point::R2Write,
        Point::R2Read,
        Point::QueueSend,
        Point::Webhook,
        Point::DurableObject,
        Point::KeptState,
        Point::ChangeWrite,
    ];

    /// The points [`hold`] can hold: where the shell waits for a hold.
    pub const HOLDABLE: [Point; 1] = [Point::ChangeWrite];

    pub fn name(self) -> &'static str {
        match self {
            Point::D1 => "d1",
            Point::R2Write => "r2_write",
            Point::R2Read => "r2_read",
            Point::QueueSend => "queue_send",
            Point::Webhook => "webhook",
            Point::DurableObject => "durable_object",
            Point::KeptState => "kept_state",
            Point::ChangeWrite => "change_write",
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

/// A held point: whether the next operation there is to wait, how many wait, and how many
/// times the point was released (a waiting operation goes on when this moves).
#[derive(Default)]
struct Held {
    next: bool,
    waiting: u32,
    releases: u64,
}

/// How long a held operation waits for its release at most: a test that fails before releasing
/// it leaves no request waiting for ever.
const HELD_MS_MAX: u64 = 30_000;

/// How often a held operation looks whether it was released. It looks, rather than being woken:
/// a request of a Worker cannot be woken by another request's code.
const HELD_LOOK_MS: u64 = 5;

thread_local! {
    static ARMED: RefCell<BTreeMap<Point, Armed>> = const { RefCell::new(BTreeMap::new()) };
    static HELD: RefCell<BTreeMap<Point, Held>> = const { RefCell::new(BTreeMap::new()) };
}

/// Arms `point`: after `skip` operations pass, the next `fail` fail. `fail` 0 disarms it.
pub fn arm(point: Point, skip: u32, fail: u32) {
    ARMED.with(|armed| armed.borrow_mut().insert(point, Armed { skip, fail, failed: 0 }));
}

/// With `on`, the next operation at `point` (one of [`Point::HOLDABLE`]) waits in
/// [`wait_if_held`] until the point is released; releasing (`on` false) lets every waiting one go.
pub fn hold(point: Point, on: bool) {
    HELD.with(|held| {
        let mut held = held.borrow_mut();
        let state = held.entry(point).or_default();
        state.next = on;
        if !on {
            state.releases += 1;
        }
    });
}

/// Waits here if `point` is held for this operation (see [`hold`]), at most [`HELD_MS_MAX`].
pub async fn wait_if_held(point: Point) {
    // Taking the hold: the point's releases so far, or nothing when it is not held.
    let taken = HELD.with(|held| {
        let mut held = held.borrow_mut();
        let state = held.get_mut(&point).filter(|state| state.next)?;
        state.next = false;
        state.waiting += 1;
        Some(state.releases)
    });
    let Some(releases) = taken else { return };
    let released = || HELD.with(|held| held.borrow().get(&point).is_some_and(|state| state.releases != releases));
    let mut waited = 0;
    while !released() && waited < HELD_MS_MAX {
        worker::Delay::from(Duration::from_millis(HELD_LOOK_MS)).await;
        waited += HELD_LOOK_MS;
    }
    HELD.with(|held| held.borrow_mut().entry(point).or_default().waiting -= 1);
    if waited >= HELD_MS_MAX {
        worker::console_warn!("a held {} was never released; it goes on", point.name());
    }
}

/// How many operations each point has failed since it was armed, how many it still will, and
/// how many wait at it, held.
pub fn status() -> serde_json::Value {
    let held = |point: &Point| HELD.with(|held| held.borrow().get(point).map_or(0, |state| state.waiting));
    ARMED.with(|armed| {
        let armed = armed.borrow();
        let points = Point::ALL.iter().map(|point| {
            let state = armed.get(point).copied().unwrap_or_default();
            (
                point.name().to_string(),
                serde_json::json!({"skip": state.skip, "fail": state.fail, "failed": state.failed, "held": held(point)}),
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
