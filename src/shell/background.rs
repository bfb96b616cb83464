//! The handlers nothing waits on: the queue consumer (for `STEPS` and its dead-letter queue)
//! and the cron trigger (its plan, the engine sweep and the archival of finished tasks).
//!
//! Each message is acknowledged or retried on its own, and the handlers always return normally:
//! an error escaping the queue handler would retry the whole batch, redoing the messages that
//! had already succeeded. A batch's messages run side by side, one chain per task
//! (`queue::chains`).

use wasm_bindgen::JsValue;
use worker::{Env, MessageBatch, MessageExt, QueueRetryOptionsBuilder, RawMessage, ScheduledEvent};

use super::{engine, platform, store};
use crate::core::base::bindings;
use crate::core::base::time::Timestamp;
use crate::core::engine::queue::{self, Decision, QueueRole};
use crate::core::engine::system;

pub async fn consume(batch: MessageBatch<String>, env: &Env) {
    let role = QueueRole::of(&batch.queue());
    let decided: Vec<(RawMessage, Decision)> = batch
        .raw_iter()
        .map(|message| {
            let decision = queue::decide(role, &message.id(), &body_text(&message.body()));
            (message, decision)
        })
        .collect();
    // Side by side by task: see `queue::chains`.
    let runs = queue::chains(decided.iter().map(|(_, d)| d)).into_iter().map(|chain| {
        let decided = &decided;
        async move {
            for index in chain {
                if let Some((message, decision)) = decided.get(index) {
                    handle(message, decision, env).await;
                }
            }
        }
    });
    futures_util::future::join_all(runs).await;
}

async fn handle(message: &RawMessage, decision: &Decision, env: &Env) {
    if let Err(err) = carry_out(decision, message, env).await {
        // After max_retries the message is dead-lettered, and the sweep takes over.
        let age_ms = platform::now().as_millis() - message.timestamp().as_millis() as i64;
        let delay = queue::retry_delay_seconds(age_ms);
        worker::console_error!("queue message {} failed and will be retried in {delay} s: {err}", message.id());
        message.retry_with_options(&QueueRetryOptionsBuilder::new().with_delay_seconds(delay).build());
    }
}

/// The body as text: our producers send JSON strings; anything else (an object sent by another
/// producer) is stringified so that it can still be recorded.
fn body_text(body: &JsValue) -> String {
    if let Some(text) = body.as_string() {
        return text;
    }
    worker::js_sys::JSON::stringify(body)
        .ok()
        .and_then(|s| s.as_string())
        .unwrap_or_else(|| "<unreadable body>".to_string())
}

async fn carry_out(decision: &Decision, message: &RawMessage, env: &Env) -> worker::Result<()> {
    match decision {
        Decision::Ack => message.ack(),
        Decision::RecordThenAck(event) => {
            store::record_system_event(&env.d1(bindings::DB)?, event, platform::now()).await?;
            message.ack();
        }
        Decision::RecordThenRetry { event, delay_seconds } => {
            store::record_system_event(&env.d1(bindings::DB)?, event, platform::now()).await?;
            message.retry_with_options(&QueueRetryOptionsBuilder::new().with_delay_seconds(*delay_seconds).build());
        }
        Decision::ForwardToDeadLetter(forwarded) => {
            env.queue(bindings::STEPS_DLQ)?.send(forwarded.to_json()).await?;
            message.ack();
        }
        Decision::DispatchStep { task_id, step_id, attempt } => {
            engine::dispatch(env, task_id, step_id, *attempt).await?;
            message.ack();
        }
        Decision::DeliverMessage { message_id } => {
            super::messages::deliver(env, message_id).await?;
            message.ack();
        }
        Decision::StepDeadLettered { task_id, step_id, attempt, event } => {
            store::record_system_event(&env.d1(bindings::DB)?, event, platform::now()).await?;
            engine::dead_letter(env, task_id, step_id, *attempt).await?;
            message.ack();
        }
    }
    Ok(())
}

pub async fn tick(event: ScheduledEvent, env: &Env) {
    let now = platform::now();
    // The first cron run after a deploy loads the defaults if no request has yet.
    if let Err(err) = super::registry::ensure_defaults(env, now).await {
        worker::console_error!("loading the defaults failed: {err}");
    }
    let scheduled = Timestamp::saturating_from_millis(event.schedule() as i64);
    let plan = system::plan_cron(&event.cron(), scheduled, now, super::archive::retention_days(env));
    let result = match env.d1(bindings::DB) {
        Ok(db) => store::run_cron_plan(&db, &plan, now).await,
        Err(err) => Err(err),
    };
    if let Err(err) = result {
        // The next tick runs the same plan; nothing is lost by skipping one.
        worker::console_error!("cron run for {} failed: {err}", event.cron());
    }
    if let Err(err) = engine::sweep(env).await {
        worker::console_error!("the engine sweep failed (the next tick sweeps again): {err}");
    }
    if let Err(err) = super::archive::run(env, plan.archive_finished_before).await {
        worker::console_error!("archiving finished tasks failed (the next tick tries again): {err}");
    }
}
