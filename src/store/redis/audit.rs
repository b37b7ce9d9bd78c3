//! The audit stream `ns:audit`: one entry per event, its id's milliseconds
//! the event time (Redis's, for an event behind the newest), trimmed to
//! about `audit::KEEP` entries.

use std::collections::HashMap;

use super::RedisStore;
use crate::store::{AuditFrom, StoreError};

// === impl RedisStore (audit) ===

impl RedisStore {
    /// XADD with the event time as the entry id's milliseconds, trimmed to
    /// ~KEEP. An event whose time is behind the stream's newest (another
    /// instance's clock, or a concurrent change that read the time first)
    /// goes after it with Redis's own time: a stream's ids only grow, and
    /// an event refused for that would be missing from `GET /v1/audit`.
    /// Never repeated otherwise (the event would be in the stream twice).
    pub async fn append_audit(&self, e: &crate::audit::Event) -> Result<(), StoreError> {
        match self.xadd_audit(e, format!("{}-*", e.at_ms)).await {
            Err(StoreError::Unavailable(err)) if behind_the_stream(&err) => {
                self.xadd_audit(e, "*".to_owned()).await
            }
            other => other,
        }
    }

    async fn xadd_audit(&self, e: &crate::audit::Event, id: String) -> Result<(), StoreError> {
        let mut cmd = redis::cmd("XADD");
        cmd.arg(self.audit())
            .arg("MAXLEN")
            .arg("~")
            .arg(crate::audit::KEEP)
            .arg(id)
            .arg("actor")
            .arg(&e.actor)
            .arg("action")
            .arg(&e.action)
            .arg("target")
            .arg(&e.target)
            .arg("count")
            .arg(e.count)
            .arg("client")
            .arg(&e.client);
        if let Some(source) = e.source {
            cmd.arg("source").arg(source.as_str());
        }
        self.bounded(async {
            let mut conn = self.conn.checked().await?;
            cmd.query_async::<redis::Value>(&mut conn).await
        })
        .await
        .map(|_| ())
    }

    /// Events from `from`, oldest first, at most `limit`, each with its
    /// position (`ms-seq`).
    pub async fn audit_from(
        &self,
        from: AuditFrom,
        limit: usize,
    ) -> Result<Vec<(String, crate::audit::Event)>, StoreError> {
        let mut conn = self.conn.repeating();
        let start = match from {
            AuditFrom::Since(ms) => ms.to_string(),
            AuditFrom::After(ms, seq) => format!("({ms}-{seq}"),
        };
        let entries: Vec<(String, HashMap<String, String>)> = self
            .bounded(
                redis::cmd("XRANGE")
                    .arg(self.audit())
                    .arg(start)
                    .arg("+")
                    .arg("COUNT")
                    .arg(limit)
                    .query_async(&mut conn),
            )
            .await?;
        Ok(events(entries))
    }

    /// Events before the stream position `before` (`(ms, seq)`), newest
    /// first, at most `limit`, each with its position (`ms-seq`).
    pub async fn audit_before(
        &self,
        before: Option<(u64, u64)>,
        limit: usize,
    ) -> Result<Vec<(String, crate::audit::Event)>, StoreError> {
        let mut conn = self.conn.repeating();
        let top = before.map_or("+".to_owned(), |(ms, seq)| format!("({ms}-{seq}"));
        let entries: Vec<(String, HashMap<String, String>)> = self
            .bounded(
                redis::cmd("XREVRANGE")
                    .arg(self.audit())
                    .arg(top)
                    .arg("-")
                    .arg("COUNT")
                    .arg(limit)
                    .query_async(&mut conn),
            )
            .await?;
        Ok(events(entries))
    }
}

/// Stream entries as events, each with its stream id.
fn events(entries: Vec<(String, HashMap<String, String>)>) -> Vec<(String, crate::audit::Event)> {
    entries
        .into_iter()
        .map(|(id, f)| {
            let e = event(&id, f);
            (id, e)
        })
        .collect()
}

/// An event from its stream entry (the id's milliseconds are its time).
fn event(id: &str, mut f: HashMap<String, String>) -> crate::audit::Event {
    let at_ms = id
        .split('-')
        .next()
        .and_then(|ms| ms.parse().ok())
        .unwrap_or(0);
    crate::audit::Event {
        at_ms,
        time: crate::audit::time_of(at_ms),
        actor: f.remove("actor").unwrap_or_default(),
        action: f.remove("action").unwrap_or_default(),
        target: f.remove("target").unwrap_or_default(),
        count: f.get("count").and_then(|c| c.parse().ok()).unwrap_or(0),
        client: f.remove("client").unwrap_or_default(),
        source: f.get("source").and_then(|s| crate::keys::Source::parse(s)),
    }
}

/// Redis refused an XADD id for being at or before the stream's newest:
/// nothing was added.
fn behind_the_stream(e: &redis::RedisError) -> bool {
    e.to_string()
        .contains("equal or smaller than the target stream top item")
}
