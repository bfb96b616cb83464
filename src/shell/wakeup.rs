//! Waiting lease requests, held without D1: the Durable Object `AgentWake`, one per agent (by
//! name), and the Worker's side of it. A step made leasable anywhere wakes the requests waiting
//! for its agent anywhere (see `core::engine::wakeup` for the protocol).
//!
//! The object keeps only memory: a generation number and the requests waiting on it. Losing it
//! (eviction, a restart) loses no work: steps are in D1, and a request that finds the object
//! new looks in D1 once more. This module never reads or writes D1.

use std::cell::{Cell, RefCell};
use std::time::Duration;

use futures_channel::oneshot;
use futures_util::future::{select, Either};
use worker::{durable_object, DurableObject, Env, Request, Response, Result, State, Stub};

use crate::core::base::bindings;
use crate::core::engine::wakeup::{parse_generation, WakeCall};

#[durable_object]
pub struct AgentWake {
    generation: Cell<u64>,
    waiting: RefCell<Vec<oneshot::Sender<u64>>>,
}

impl DurableObject for AgentWake {
    fn new(_state: State, _env: Env) -> Self {
        AgentWake { generation: Cell::new(0), waiting: RefCell::new(Vec::new()) }
    }

    async fn fetch(&self, req: Request) -> Result<Response> {
        let url = req.url()?;
        let Some(call) = WakeCall::parse(url.path(), url.query().unwrap_or("")) else {
            return Response::error("not a wake-up call", 404);
        };
        let generation = match call {
            WakeCall::Generation => self.generation.get(),
            WakeCall::Wake => {
                let next = self.generation.get() + 1;
                self.generation.set(next);
                // One step made ready wakes one waiting request, the longest waiting: waking
                // them all would send every one to D1 to race for the same step. A request that
                // stopped waiting dropped its receiver, and the next one is woken instead.
                let mut waiting = self.waiting.borrow_mut();
                while !waiting.is_empty() {
                    if waiting.remove(0).send(next).is_ok() {
                        break;
                    }
                }
                next
            }
            WakeCall::Wait { seen, wait_ms } => {
                if self.generation.get() != seen {
                    self.generation.get()
                } else {
                    let (sender, receiver) = oneshot::channel();
                    {
                        let mut waiting = self.waiting.borrow_mut();
                        waiting.retain(|w| !w.is_canceled());
                        waiting.push(sender);
                    }
                    let timeout = worker::Delay::from(Duration::from_millis(wait_ms));
                    match select(receiver, timeout).await {
                        Either::Left((Ok(generation), _)) => generation,
                        _ => self.generation.get(),
                    }
                }
            }
        };
        Response::ok(generation.to_string())
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

    async fn call(&self, call: WakeCall) -> Result<u64> {
        super::faults::check(super::faults::Point::DurableObject)?;
        let mut response = self.0.fetch_with_str(&call.url()).await?;
        let body = response.text().await?;
        parse_generation(&body)
            .ok_or_else(|| worker::Error::RustError(format!("the agent's wake-up object answered {body:?}")))
    }

    pub async fn generation(&self) -> Result<u64> {
        self.call(WakeCall::Generation).await
    }

    /// The generation once it differs from `seen`, or `seen` again after `wait_ms`.
    pub async fn wait(&self, seen: u64, wait_ms: u64) -> Result<u64> {
        self.call(WakeCall::Wait { seen, wait_ms }).await
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
