//! Reading what switchyard stored in R2: any artifact's text, and a step's report whether it
//! was kept inline in D1 or offloaded to R2. The engine and the records both read these.

use serde_json::Value;
use worker::Env;

use crate::core::base::bindings;

/// The text of an R2 object, or `None` when there is none under `key`.
pub async fn read_artifact(env: &Env, key: &str) -> worker::Result<Option<String>> {
    super::faults::check(super::faults::Point::R2Read)?;
    let Some(object) = env.bucket(bindings::ARTIFACTS)?.get(key).execute().await? else { return Ok(None) };
    Ok(Some(match object.body() {
        Some(body) => body.text().await?,
        None => String::new(),
    }))
}

/// A report as stored: parsed inline JSON, or fetched from R2.
pub async fn load_report(env: &Env, inline: Option<&str>, key: Option<&str>) -> worker::Result<Value> {
    if let Some(json) = inline {
        return serde_json::from_str(json).map_err(|_| worker::Error::RustError("a stored report is not JSON".into()));
    }
    let Some(key) = key else { return Ok(Value::Null) };
    let Some(text) = read_artifact(env, key).await? else {
        return Err(worker::Error::RustError(format!("report {key} is missing from R2")));
    };
    serde_json::from_str(&text).map_err(|_| worker::Error::RustError(format!("report {key} is not JSON")))
}
