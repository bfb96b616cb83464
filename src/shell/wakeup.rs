//! Waiting lease requests, held without D1: the Durable Object `AgentWake`, one per agent (by
//! name), and the Worker's side of it. A step made leasable anywhere wakes a request waiting
//! for its agent anywhere (see `core::engine::wakeup` for the protocol).
//!
//! The object keeps only memory: the requests waiting and the wake-ups nobody took yet. Losing
//! it (eviction, a restart) loses no work: steps are in D1, and every lease request looks there
//! before it waits. This module never reads or writes D1.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::time::Duration;

use futures_channel::oneshot;
use futures_util::future::{select, Either};
use worker::{durable_object, DurableObject, Env, Request, Response, Result, State, Stub};

use crate::core::base::bindings;
use crate::core::edge::http::query_of;
use crate::core::engine::wakeup::{Waited, WakeCall, WAKEUPS_KEPT_MAX};

#[durable_object]
pub struct AgentWake {
    /// Wake-ups that came while nobody was waiting.
    kept: Cell<u32>,
    /// The waiting requests, longest waiting first.
    waiting: RefCell<VecDeque<oneshot::Sender<()>>>,
}

impl DurableObject for AgentWake {
    fn new(_state: State, _env: Env) -> Self {
        AgentWake { kept: Cell::new(0), waiting: RefCell::new(VecDeque::new()) }
    }

    async fn fetch(&self, req: Request) -> Result<Response> {
        let Some(call) = WakeCall::parse(&req.path(), query_of(&req.inner().url())) else {
            return Response::error("not a wake-up call", 404);
        };
        match call {
            WakeCall::Wake => {
                // A request that stopped waiting dropped its receiver; the next one is woken.
                let mut handed = false;
                while let Some(waiter) = self.waiting.borrow_mut().pop_front() {
                    if waiter.send(()).is_ok() {
                        handed = true;
                        break;
                    }
                }
                if !handed {
                    self.kept.set((self.kept.get() + 1).min(WAKEUPS_KEPT_MAX));
                }
                Response::ok("")
            }
            WakeCall::Wait { wait_ms } => {
                if self.kept.get() > 0 {
                    self.kept.set(self.kept.get() - 1);
                    return Response::ok(Waited::Woken.as_str());
                }
                let (sender, receiver) = oneshot::channel();
                self.waiting.borrow_mut().push_back(sender);
                let timeout = worker::Delay::from(Duration::from_millis(wait_ms));
                let waited = match select(receiver, timeout).await {
                    Either::Left((Ok(()), _)) => Waited::Woken,
                    _ => Waited::TimedOut,
                };
                // A request that timed out leaves its sender behind; drop the ones nobody holds.
                self.waiting.borrow_mut().retain(|w| !w.is_canceled());
                Response::ok(waited.as_str())
            }
        }
    }
}

/// The Worker's handle on one agent's object.
pub struct Door(Stub);

impl Door {
    /// The object of `agent`; `None` when the Worker has no `AGENT_WAKE` binding (lease requests
    /// then look in D1 every `LEASE_POLL_INTERVAL_MS` instead).
    pub fn of(env: &Env, agent: &str) -> Option<Door> {
        let namespace = env.durable_object(bindings::AGENT_WAKE).ok()?;
        namespace.id_from_name(agent).ok()?.get_stub().ok().map(Door)
    }

    async fn call(&self, call: WakeCall) -> Result<String> {
        super::faults::check(super::faults::Point::DurableObject)?;
        let mut response = self.0.fetch_with_str(&call.url()).await?;
        if response.status_code() != 200 {
            return Err(worker::Error::RustError(format!("the wake-up object answered {}", response.status_code())));
        }
        response.text().await
    }

    /// Waits until one of the agent's steps may be ready, or `wait_ms` passed.
    pub async fn wait(&self, wait_ms: u64) -> Result<Waited> {
        let body = self.call(WakeCall::Wait { wait_ms }).await?;
        Waited::parse(&body).ok_or_else(|| worker::Error::RustError(format!("the wake-up object answered {body:?}")))
    }
}

/// Tells `agent`'s waiting lease requests that one of its steps became leasable. A failure is
/// logged: the step stays leasable in D1, and the next lease request finds it.
pub async fn wake(env: &Env, agent: &str) {
    let Some(door) = Door::of(env, agent) else { return };
    if let Err(err) = door.call(WakeCall::Wake).await {
        worker::console_error!("waking the lease requests of {agent} failed: {err}");
    }
}
