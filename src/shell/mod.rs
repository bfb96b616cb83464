//! The Worker's entry points: `fetch`, `queue` and `scheduled`.
//!
//! This is the imperative shell. It reads the clock and the random source, talks to the
//! bindings, and carries out what the core decides; it holds no logic the core could hold.
//! Nothing here may panic on input from a request, a binding or the store: a panic aborts the
//! WebAssembly instance and every request in flight on it.

mod access;
mod api;
mod archive;
mod artifacts;
mod background;
mod call;
mod engine;
mod faults;
mod messages;
mod platform;
mod records;
mod registry;
mod sessions;
mod store;
mod tasks;
mod wakeup;

use worker::{event, Context, Env, MessageBatch, Request, Response, Result, ScheduleContext, ScheduledEvent};

#[event(fetch)]
async fn fetch(req: Request, env: Env, _ctx: Context) -> Result<Response> {
    enter(&env);
    api::handle(req, &env).await
}

#[event(queue)]
async fn queue(batch: MessageBatch<String>, env: Env, _ctx: Context) -> Result<()> {
    enter(&env);
    background::consume(batch, &env).await;
    // Every message was acknowledged or retried one by one; an Err here would retry the batch.
    Ok(())
}

#[event(scheduled)]
async fn scheduled(event: ScheduledEvent, env: Env, _ctx: ScheduleContext) {
    enter(&env);
    background::tick(event, &env).await;
}

/// What every entry point does first: panics go to the log, and with the test routes enabled
/// the statements this isolate prepares are recorded for `GET /__test/statements`. The vars
/// do not change within an isolate, so the var is read on its first request only.
fn enter(env: &Env) {
    static RECORDING_CHECKED: std::sync::Once = std::sync::Once::new();
    platform::install_panic_hook();
    RECORDING_CHECKED.call_once(|| {
        if platform::test_faults_enabled(env) {
            store::record_statements();
        }
    });
}
