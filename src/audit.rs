//! Audit events: who did what to which keys, when, from where, how many.
//! Written to the `keygate::audit` log target (one structured line each).

use std::net::IpAddr;

/// Record one change. `target` names keys by id or user, never by secret.
pub fn record(actor: &str, action: &str, target: &str, count: u64, client: IpAddr) {
    tracing::info!(
        target: "keygate::audit",
        actor,
        action,
        target,
        count,
        client = %client,
    );
}
