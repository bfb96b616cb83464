//! `switchyard-agent serve`: a small HTTP server for a webhook agent. switchyard POSTs each of
//! the agent's steps (and messages) to it, signed; a step is answered 202 at once and run the
//! way `run` runs a leased step (heartbeats and completion over the API), one at a time. A
//! delivery sent again under the same id is answered 202 and not run twice. Steps waiting for
//! their turn are heartbeated, so that their leases do not run out while an earlier step runs.

use std::collections::BTreeMap;
use std::io::Read;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};
use tiny_http::{Header, Method, Response, Server};

use crate::client::Client;
use crate::runner::{self, Settings};
use crate::signature::{self, SeenDeliveries};

/// Largest delivery read: a step with its inputs is far smaller; more is not switchyard.
const DELIVERY_BYTES_MAX: u64 = 4 * 1024 * 1024;

fn now_seconds() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

fn answer(request: tiny_http::Request, status: u16, body: Value) {
    let header = Header::from_bytes(&b"content-type"[..], &b"application/json"[..]).expect("a static header is valid");
    let _ = request.respond(Response::from_string(body.to_string()).with_status_code(status).with_header(header));
}

fn header_of(request: &tiny_http::Request, name: &'static str) -> String {
    request.headers().iter().find(|h| h.field.equiv(name)).map(|h| h.value.as_str().to_string()).unwrap_or_default()
}

pub fn serve(settings: Settings, listen: &str, secret: &str, stop: Arc<AtomicBool>) -> Result<(), String> {
    if !settings.workdir.is_dir() {
        return Err(format!("the work directory {} does not exist", settings.workdir.display()));
    }
    let server = Server::http(listen).map_err(|e| format!("cannot listen on {listen}: {e}"))?;
    eprintln!("switchyard-agent: {} serving webhook deliveries on http://{listen}", settings.agent);
    let (steps, queue) = mpsc::channel::<Value>();
    let settings = Arc::new(settings);
    let worker_settings = Arc::clone(&settings);
    // Accepted steps not started yet, by step id, with their lease ids.
    let waiting: Arc<Mutex<BTreeMap<String, String>>> = Arc::default();
    let worker_waiting = Arc::clone(&waiting);
    let worker_stop = Arc::clone(&stop);
    // One step at a time, in delivery order: they share the work directory.
    thread::spawn(move || {
        let client = Client::new(&worker_settings.url, &worker_settings.token);
        let measured = crate::diff::is_work_tree(&worker_settings.workdir);
        for step in queue {
            if let Ok(mut waiting) = worker_waiting.lock() {
                waiting.remove(step["id"].as_str().unwrap_or_default());
            }
            if let Err(why) = runner::run_step(&client, &worker_settings, &step, measured, &worker_stop) {
                eprintln!("switchyard-agent: {why}");
            }
        }
    });
    let beat_settings = Arc::clone(&settings);
    let beat_waiting = Arc::clone(&waiting);
    thread::spawn(move || heartbeat_waiting(&beat_settings, &beat_waiting, &stop));
    let mut seen = SeenDeliveries::default();
    for mut request in server.incoming_requests() {
        if request.method() != &Method::Post {
            answer(request, 405, json!({"error": "deliveries are POSTed"}));
            continue;
        }
        let mut body = Vec::new();
        let read = request.as_reader().take(DELIVERY_BYTES_MAX + 1).read_to_end(&mut body);
        if read.is_err() || body.len() as u64 > DELIVERY_BYTES_MAX {
            answer(request, 413, json!({"error": "the delivery is too large"}));
            continue;
        }
        let id = header_of(&request, "webhook-id");
        let checked = signature::verify(
            secret,
            &id,
            &header_of(&request, "webhook-timestamp"),
            &header_of(&request, "webhook-signature"),
            &body,
            now_seconds(),
        );
        if let Err(rejected) = checked {
            eprintln!("switchyard-agent: refused a delivery: {rejected}");
            answer(request, 401, json!({"error": rejected.to_string()}));
            continue;
        }
        let delivery: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        if !seen.first_time(&id, now_seconds()) {
            // switchyard sends a delivery again under the same id when it could not finish
            // handing it out; the step is already running (or ran) here.
            answer(request, 202, json!({"duplicate": id}));
            continue;
        }
        if delivery["step"].is_object() {
            let step = &delivery["step"];
            if let (Some(id), Some(lease), Ok(mut waiting)) =
                (step["id"].as_str(), step["lease_id"].as_str(), waiting.lock())
            {
                waiting.insert(id.to_string(), lease.to_string());
            }
            let _ = steps.send(step.clone());
            // Completed later over the API, once the command has run.
            answer(request, 202, json!({"accepted": delivery["step"]["id"]}));
        } else if delivery["message"].is_object() {
            let message = &delivery["message"];
            eprintln!("switchyard-agent: {} from {}: {}", message["type"], message["from"], message["payload"]);
            answer(request, 200, json!({"received": message["id"]}));
        } else {
            answer(request, 400, json!({"error": "a delivery holds a step or a message"}));
        }
    }
    Ok(())
}

/// Heartbeats every accepted step that waits for its turn, as often as a running step is.
/// A step whose heartbeat is refused (cancelled, given to someone else) is left to be run: its
/// run is refused at once and ends there.
fn heartbeat_waiting(settings: &Settings, waiting: &Mutex<BTreeMap<String, String>>, stop: &AtomicBool) {
    let client = Client::new(&settings.url, &settings.token);
    while !stop.load(Ordering::Relaxed) {
        thread::sleep(settings.heartbeat.min(Duration::from_secs(60)));
        let leases: Vec<(String, String)> =
            waiting.lock().map(|w| w.iter().map(|(s, l)| (s.clone(), l.clone())).collect()).unwrap_or_default();
        for (step_id, lease_id) in leases {
            if let Err(why) = client.post(&format!("/v1/steps/{step_id}/heartbeat"), &json!({"lease_id": lease_id})) {
                eprintln!("switchyard-agent: heartbeat of waiting step {step_id} failed: {why}");
            }
        }
    }
}
