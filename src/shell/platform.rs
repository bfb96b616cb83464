//! What the runtime provides besides bindings: the clock, randomness, configuration from vars
//! and secrets, and the panic hook.

use std::cell::RefCell;
use std::collections::BTreeMap;

use crate::core::base::bindings;
use crate::core::base::ids::{self, IdKind, ID_RANDOM_BYTES};
use crate::core::base::time::Timestamp;
use crate::core::edge::auth::AdminTokens;
use crate::core::edge::cors::CorsPolicy;
use worker::Env;

/// Chains `console_error_panic_hook` (which logs the JavaScript stack) in front of the hook
/// `worker` installs (which flags the instance for re-initialisation). Replacing worker's hook
/// instead would leave a poisoned instance serving requests.
pub fn install_panic_hook() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            console_error_panic_hook::hook(info);
            previous(info);
        }));
    });
}

/// The current time. `Date.now()` in a Worker is the time of the last I/O, which is what
/// ordering and timeouts need.
pub fn now() -> Timestamp {
    Timestamp::saturating_from_millis(i64::try_from(worker::Date::now().as_millis()).unwrap_or(i64::MAX))
}

/// Cryptographically secure random bytes from `crypto.getRandomValues`. Without them ids would
/// repeat, so a failure is an internal error, never a fallback.
pub fn random_bytes<const N: usize>() -> worker::Result<[u8; N]> {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes)
        .map_err(|err| worker::Error::RustError(format!("crypto.getRandomValues failed: {err}")))?;
    Ok(bytes)
}

pub fn new_id(kind: IdKind, now: Timestamp) -> worker::Result<String> {
    Ok(ids::new_id(kind, now, random_bytes::<ID_RANDOM_BYTES>()?))
}

thread_local! {
    /// The vars and secrets read so far, by name. They are fixed for an isolate's life (changing
    /// one deploys a new version, which runs in new isolates), and every request reads several
    /// of them, each a call into JavaScript. Bounded by the names in `bindings`.
    static TEXTS: RefCell<BTreeMap<&'static str, Option<String>>> = const { RefCell::new(BTreeMap::new()) };
}

/// A var or secret as text; `None` when it is not set.
pub fn text(env: &Env, name: &'static str) -> Option<String> {
    if let Some(known) = TEXTS.with(|texts| texts.borrow().get(name).cloned()) {
        return known;
    }
    let value = env.var(name).ok().map(|v| v.to_string());
    TEXTS.with(|texts| texts.borrow_mut().insert(name, value.clone()));
    value
}

/// Logs configuration warnings once per isolate rather than on every request.
fn warn_once(once: &'static std::sync::Once, warnings: Vec<String>) {
    if !warnings.is_empty() {
        once.call_once(|| warnings.iter().for_each(|w| worker::console_warn!("{w}")));
    }
}

/// The admin tokens, logging (never showing) entries that were ignored.
pub fn admin_tokens(env: &Env) -> AdminTokens {
    static WARNED: std::sync::Once = std::sync::Once::new();
    let (tokens, warnings) = AdminTokens::parse(text(env, bindings::ADMIN_TOKEN).as_deref());
    warn_once(&WARNED, warnings);
    tokens
}

pub fn cors_policy(env: &Env) -> CorsPolicy {
    static WARNED: std::sync::Once = std::sync::Once::new();
    let (policy, warnings) = CorsPolicy::parse(text(env, bindings::CORS_ORIGINS).as_deref());
    warn_once(&WARNED, warnings);
    policy
}

/// True when the var `TEST_FAULTS` is `"enabled"`: the test-only routes exist. Never set in
/// wrangler.jsonc; the integration tests set it with `--var`.
pub fn test_faults_enabled(env: &Env) -> bool {
    text(env, bindings::TEST_FAULTS).as_deref() == Some("enabled")
}
