//! Messages on the `STEPS` queue and its dead-letter queue, and what the consumers do with each.
//!
//! Bodies travel as JSON strings (serialised here, not by the runtime, which would turn maps
//! into empty objects). The consumer decision is pure: given the queue and the body, [`decide`]
//! says whether to acknowledge, record, retry or forward; the shell carries it out. Queues
//! deliver at least once, so every recorded effect has a dedupe key.

use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::core::base::limits::{QUEUE_RETRY_DELAY_SECONDS_MAX, QUEUE_RETRY_DELAY_SECONDS_MIN};
use crate::core::engine::system::SystemEvent;

/// Most bytes of a message body kept in a recorded event: enough to recognise the message, while
/// a flood of large dead letters cannot bloat the events table.
pub const RECORDED_BODY_BYTES_MAX: usize = 2048;

/// Queue names ending in this are dead-letter queues. The Worker has one `queue` entry point for
/// both of its queues and tells them apart by name; deployments that rename the queues keep
/// this suffix (see wrangler.jsonc).
pub const DEAD_LETTER_SUFFIX: &str = "-dlq";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProbeOutcome {
    /// The consumer records the probe and acknowledges it.
    Ack,
    /// The consumer retries the probe until the queue moves it to the dead-letter queue.
    DeadLetter,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum QueueMessage {
    /// Sent by `GET /health` to prove the producer works; dropped by the consumer.
    // A struct variant, not a unit one, so that unknown fields are refused here too.
    Ping {},
    /// Sent by `POST /v1/system/probes` to show a queue path end to end.
    Probe { probe_id: String, outcome: ProbeOutcome },
    /// Dispatch attempt `attempt` of a step: sent whenever a step becomes ready or is due again.
    Step { task_id: String, step_id: String, attempt: u32 },
    /// Deliver message `message_id` to its recipient's webhook (sent only for webhook agents).
    Message { message_id: String },
    /// Put on the dead-letter queue by the `STEPS` consumer for a body it cannot read, so that
    /// it is recorded once instead of being retried to no purpose.
    Rejected { reason: String, body: String },
}

impl QueueMessage {
    pub fn to_json(&self) -> String {
        // A tagged enum of strings always serialises.
        serde_json::to_string(self).unwrap_or_default()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueRole {
    Steps,
    DeadLetter,
}

impl QueueRole {
    pub fn of(queue_name: &str) -> QueueRole {
        if queue_name.ends_with(DEAD_LETTER_SUFFIX) {
            QueueRole::DeadLetter
        } else {
            QueueRole::Steps
        }
    }
}

/// What the consumer does with one message.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    Ack,
    /// Record the event, then acknowledge. If recording fails the message is retried.
    RecordThenAck(SystemEvent),
    /// Record the event, then ask for redelivery after `delay_seconds`.
    RecordThenRetry {
        event: SystemEvent,
        delay_seconds: u32,
    },
    /// Send this message to the dead-letter queue, then acknowledge.
    ForwardToDeadLetter(QueueMessage),
    /// Dispatch the step (the engine decides whether the message is still current).
    DispatchStep {
        task_id: String,
        step_id: String,
        attempt: u32,
    },
    /// POST the agent message to its recipient's webhook; an error retries it.
    DeliverMessage {
        message_id: String,
    },
    /// The queue gave up on a step's message: the step dies, with the reason recorded.
    StepDeadLettered {
        task_id: String,
        step_id: String,
        attempt: u32,
        event: SystemEvent,
    },
}

/// Decides what to do with the message `message_id` whose body is `body`, on a queue in `role`.
/// Seconds before the queue delivers again a message whose handling failed, from how long ago
/// it was sent: about its age, so that the delays double from one retry to the next.
pub fn retry_delay_seconds(age_ms: i64) -> u32 {
    let seconds = u32::try_from(age_ms.max(0) / 1000).unwrap_or(u32::MAX);
    seconds.clamp(QUEUE_RETRY_DELAY_SECONDS_MIN, QUEUE_RETRY_DELAY_SECONDS_MAX)
}

pub fn decide(role: QueueRole, message_id: &str, body: &str) -> Decision {
    let parsed = serde_json::from_str::<QueueMessage>(body);
    match (role, parsed) {
        (QueueRole::Steps, Ok(QueueMessage::Ping {})) => Decision::Ack,
        (QueueRole::Steps, Ok(QueueMessage::Probe { probe_id, outcome: ProbeOutcome::Ack })) => {
            Decision::RecordThenAck(SystemEvent {
                kind: "queue.probe_consumed",
                data: json!({"probe_id": probe_id}),
                dedupe_key: format!("probe:{probe_id}:consumed"),
            })
        }
        (QueueRole::Steps, Ok(QueueMessage::Probe { probe_id, outcome: ProbeOutcome::DeadLetter })) => {
            Decision::RecordThenRetry {
                event: SystemEvent {
                    kind: "queue.probe_retried",
                    data: json!({"probe_id": probe_id}),
                    dedupe_key: format!("probe:{probe_id}:retried"),
                },
                delay_seconds: crate::core::base::limits::PROBE_RETRY_DELAY_SECONDS,
            }
        }
        (QueueRole::Steps, Ok(QueueMessage::Step { task_id, step_id, attempt })) => {
            Decision::DispatchStep { task_id, step_id, attempt }
        }
        (QueueRole::Steps, Ok(QueueMessage::Message { message_id })) => Decision::DeliverMessage { message_id },
        // One record per agent message, however often the queue redelivers it here.
        (QueueRole::DeadLetter, Ok(QueueMessage::Message { message_id: id })) => Decision::RecordThenAck(SystemEvent {
            kind: "message.undelivered",
            data: json!({"reason": "the recipient's webhook failed every delivery", "message_id": id}),
            dedupe_key: format!("undelivered:{id}"),
        }),
        (QueueRole::DeadLetter, Ok(QueueMessage::Step { task_id, step_id, attempt })) => Decision::StepDeadLettered {
            event: SystemEvent {
                kind: "queue.dead_lettered",
                data: json!({"reason": "retries exhausted", "task_id": task_id, "step_id": step_id, "attempt": attempt}),
                dedupe_key: format!("dlq:{message_id}"),
            },
            task_id,
            step_id,
            attempt,
        },
        // Only the dead-letter consumer reads these; one on STEPS was sent there by mistake.
        (QueueRole::Steps, Ok(QueueMessage::Rejected { .. })) => {
            Decision::ForwardToDeadLetter(QueueMessage::Rejected {
                reason: "a rejected message was sent to the steps queue".into(),
                body: truncate(body),
            })
        }
        (QueueRole::Steps, Err(err)) => Decision::ForwardToDeadLetter(QueueMessage::Rejected {
            reason: format!("unreadable message: {err}"),
            body: truncate(body),
        }),
        (QueueRole::DeadLetter, parsed) => {
            let data = match parsed {
                Ok(QueueMessage::Rejected { reason, body }) => json!({"reason": reason, "body": body}),
                Ok(QueueMessage::Probe { probe_id, .. }) => {
                    json!({"reason": "retries exhausted", "probe_id": probe_id})
                }
                Ok(QueueMessage::Ping {}) | Ok(QueueMessage::Step { .. }) | Ok(QueueMessage::Message { .. }) => {
                    json!({"reason": "retries exhausted", "body": truncate(body)})
                }
                Err(_) => json!({"reason": "retries exhausted", "body": truncate(body)}),
            };
            Decision::RecordThenAck(SystemEvent {
                kind: "queue.dead_lettered",
                data,
                dedupe_key: format!("dlq:{message_id}"),
            })
        }
    }
}

/// Cuts `text` to at most [`RECORDED_BODY_BYTES_MAX`] bytes on a character boundary.
fn truncate(text: &str) -> String {
    if text.len() <= RECORDED_BODY_BYTES_MAX {
        return text.to_string();
    }
    let mut end = RECORDED_BODY_BYTES_MAX;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

/// The order a consumer carries out a batch's decisions in: chains, given as indexes into
/// `decisions`, that run side by side, each one after another. A batch (at most
/// `max_batch_size`, 10) holds steps of many tasks, and one task's D1 round trips or slow
/// webhook need not hold up the others'. A task's own messages (a parallel group is sent
/// together) share a chain in batch order, since side by side they would only lose races on the
/// task's version and pause to retry. A message about no task has a chain of its own.
pub fn chains<'a>(decisions: impl IntoIterator<Item = &'a Decision>) -> Vec<Vec<usize>> {
    let mut chains: Vec<(Option<&str>, Vec<usize>)> = Vec::new();
    for (index, decision) in decisions.into_iter().enumerate() {
        let task = decision.task_id();
        match chains.iter_mut().find(|(t, _)| task.is_some() && *t == task) {
            Some((_, chain)) => chain.push(index),
            None => chains.push((task, vec![index])),
        }
    }
    chains.into_iter().map(|(_, chain)| chain).collect()
}

impl Decision {
    /// The task the message is about, when it is about one.
    fn task_id(&self) -> Option<&str> {
        match self {
            Decision::DispatchStep { task_id, .. } | Decision::StepDeadLettered { task_id, .. } => Some(task_id),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_failed_message_comes_back_after_about_its_age_between_a_second_and_a_minute() {
        assert_eq!(retry_delay_seconds(-5), 1);
        assert_eq!(retry_delay_seconds(300), 1);
        assert_eq!(retry_delay_seconds(4_900), 4);
        assert_eq!(retry_delay_seconds(3_600_000), 60);
    }

    use super::*;

    #[test]
    fn an_agent_message_is_delivered_and_recorded_once_as_undelivered_on_the_dead_letter_queue() {
        let body = QueueMessage::Message { message_id: "msg_1".into() }.to_json();
        assert_eq!(body, r#"{"kind":"message","message_id":"msg_1"}"#);
        assert_eq!(decide(QueueRole::Steps, "m1", &body), Decision::DeliverMessage { message_id: "msg_1".into() });
        let Decision::RecordThenAck(event) = decide(QueueRole::DeadLetter, "m2", &body) else { panic!() };
        assert_eq!((event.kind, event.dedupe_key.as_str()), ("message.undelivered", "undelivered:msg_1"));
    }

    #[test]
    fn queue_roles_follow_the_dead_letter_suffix() {
        assert_eq!(QueueRole::of("switchyard-steps"), QueueRole::Steps);
        assert_eq!(QueueRole::of("switchyard-steps-dlq"), QueueRole::DeadLetter);
        assert_eq!(QueueRole::of("staging-steps-dlq"), QueueRole::DeadLetter);
    }

    #[test]
    fn messages_round_trip_as_tagged_json() {
        let probe = QueueMessage::Probe { probe_id: "prb_1".into(), outcome: ProbeOutcome::DeadLetter };
        assert_eq!(probe.to_json(), r#"{"kind":"probe","probe_id":"prb_1","outcome":"dead_letter"}"#);
        assert_eq!(serde_json::from_str::<QueueMessage>(&probe.to_json()).unwrap(), probe);
        assert_eq!(QueueMessage::Ping {}.to_json(), r#"{"kind":"ping"}"#);
    }

    #[test]
    fn a_step_message_is_dispatched_and_dies_with_its_step_on_the_dead_letter_queue() {
        let body = QueueMessage::Step { task_id: "tsk_1".into(), step_id: "stp_1".into(), attempt: 2 }.to_json();
        assert_eq!(body, r#"{"kind":"step","task_id":"tsk_1","step_id":"stp_1","attempt":2}"#);
        assert_eq!(
            decide(QueueRole::Steps, "m1", &body),
            Decision::DispatchStep { task_id: "tsk_1".into(), step_id: "stp_1".into(), attempt: 2 }
        );
        match decide(QueueRole::DeadLetter, "m9", &body) {
            Decision::StepDeadLettered { step_id, attempt, event, .. } => {
                assert_eq!((step_id.as_str(), attempt), ("stp_1", 2));
                assert_eq!(event.dedupe_key, "dlq:m9");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_batch_runs_one_chain_per_task_and_a_tasks_messages_in_batch_order() {
        let step =
            |task: &str, step: &str| Decision::DispatchStep { task_id: task.into(), step_id: step.into(), attempt: 1 };
        let batch = [
            step("tsk_a", "1"),
            step("tsk_b", "1"),
            Decision::Ack,
            step("tsk_a", "2"),
            Decision::Ack,
            step("tsk_c", "1"),
        ];
        assert_eq!(chains(&batch), vec![vec![0, 3], vec![1], vec![2], vec![4], vec![5]]);
        assert_eq!(chains(&[]), Vec::<Vec<usize>>::new());
    }

    #[test]
    fn pings_are_dropped() {
        assert_eq!(decide(QueueRole::Steps, "m1", r#"{"kind":"ping"}"#), Decision::Ack);
    }

    #[test]
    fn an_ack_probe_is_recorded_once_per_probe() {
        let body = QueueMessage::Probe { probe_id: "prb_1".into(), outcome: ProbeOutcome::Ack }.to_json();
        match decide(QueueRole::Steps, "m1", &body) {
            Decision::RecordThenAck(event) => {
                assert_eq!(event.kind, "queue.probe_consumed");
                assert_eq!(event.dedupe_key, "probe:prb_1:consumed");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            decide(QueueRole::Steps, "m1", &body),
            decide(QueueRole::Steps, "m2", &body),
            "a redelivery decides the same"
        );
    }

    #[test]
    fn a_dead_letter_probe_is_retried() {
        let body = QueueMessage::Probe { probe_id: "prb_2".into(), outcome: ProbeOutcome::DeadLetter }.to_json();
        assert!(matches!(decide(QueueRole::Steps, "m1", &body), Decision::RecordThenRetry { delay_seconds: 0, .. }));
    }

    #[test]
    fn an_unreadable_body_goes_straight_to_the_dead_letter_queue() {
        for body in ["", "not json", r#"{"kind":"nope"}"#, r#"{"kind":"ping","extra":1}"#, r#"[1,2]"#] {
            match decide(QueueRole::Steps, "m1", body) {
                Decision::ForwardToDeadLetter(QueueMessage::Rejected { reason, body: kept }) => {
                    assert!(reason.starts_with("unreadable message"), "{reason}");
                    assert_eq!(kept, body);
                }
                other => panic!("{body:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn the_dead_letter_consumer_records_every_message_once_by_message_id() {
        let bodies = [
            QueueMessage::Rejected { reason: "unreadable message: x".into(), body: "x".into() }.to_json(),
            QueueMessage::Probe { probe_id: "prb_3".into(), outcome: ProbeOutcome::DeadLetter }.to_json(),
            "garbage".to_string(),
        ];
        for body in &bodies {
            match decide(QueueRole::DeadLetter, "msg-42", body) {
                Decision::RecordThenAck(event) => {
                    assert_eq!(event.kind, "queue.dead_lettered");
                    assert_eq!(event.dedupe_key, "dlq:msg-42");
                    assert!(event.data["reason"].is_string());
                }
                other => panic!("{body}: {other:?}"),
            }
        }
    }

    #[test]
    fn recorded_bodies_are_truncated_on_a_character_boundary() {
        let long = "é".repeat(RECORDED_BODY_BYTES_MAX);
        let cut = truncate(&long);
        assert!(cut.len() <= RECORDED_BODY_BYTES_MAX + "…".len());
        assert!(cut.ends_with('…'));
        assert_eq!(truncate("short"), "short");
    }
}
