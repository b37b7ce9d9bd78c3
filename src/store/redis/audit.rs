//! The audit stream `ns:audit`: one entry per event, its id's milliseconds
//! the event time, trimmed to about `audit::KEEP` entries.

use std::collections::HashMap;

use super::RedisStore;
use crate::store::{AuditFrom, StoreError};

// === impl RedisStore (audit) ===

impl RedisStore {
    /// XADD with the event time as the entry id's milliseconds, trimmed to ~KEEP.
    /// Never repeated (the event would be in the stream twice): checked first.
    pub async fn append_audit(&self, e: &crate::audit::Event) -> Result<(), StoreError> {
        let mut cmd = redis::cmd("XADD");
        cmd.arg(self.audit())
            .arg("MAXLEN")
            .arg("~")
            .arg(crate::audit::KEEP)
            .arg(format!("{}-*", e.at_ms))
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
        Ok(entries
            .into_iter()
            .map(|(id, f)| {
                let e = event(&id, f);
                (id, e)
            })
            .collect())
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
        Ok(entries
            .into_iter()
            .map(|(id, f)| {
                let e = event(&id, f);
                (id, e)
            })
            .collect())
    }
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
