//! One index walked in order: the members of one or more sorted sets (the
//! buckets of the overall index, or a single user or label set) merged
//! into one sequence, fetched in batches with `ZRANGEBYLEX`. A bucket is
//! asked again only when its batch is used up, with a batch twice as large,
//! so a page costs a few round trips whatever the index holds.

use std::collections::VecDeque;

use super::RedisStore;
use crate::store::StoreError;

/// Members fetched per bucket and round at most.
const MAX_BATCH: usize = 1_000;

pub struct Scan<'a> {
    store: &'a RedisStore,
    descending: bool,
    buckets: Vec<Bucket>,
    /// The far end of the range, a `ZRANGEBYLEX` bound (`+`, `-`, `(m`, `[m`).
    end: String,
}

struct Bucket {
    tag: String,
    set: String,
    /// Where the next fetch starts: a `ZRANGEBYLEX` bound.
    from: String,
    fetched: VecDeque<String>,
    /// Nothing more after what is fetched.
    done: bool,
    batch: usize,
}

// === impl Scan ===

impl<'a> Scan<'a> {
    /// A walk over `sets` (hash tag, key) from bound `start` to bound `end`,
    /// in byte order or (`descending`) its reverse; `batch` members per
    /// set for the first fetch.
    pub fn new(
        store: &'a RedisStore,
        sets: Vec<(String, String)>,
        descending: bool,
        start: String,
        end: String,
        batch: usize,
    ) -> Scan<'a> {
        let buckets = sets
            .into_iter()
            .map(|(tag, set)| Bucket {
                tag,
                set,
                from: start.clone(),
                fetched: VecDeque::new(),
                done: false,
                batch: batch.clamp(1, MAX_BATCH),
            })
            .collect();
        Scan {
            store,
            descending,
            buckets,
            end,
        }
    }

    /// The next member in order, `None` at the end.
    pub async fn next(&mut self) -> Result<Option<String>, StoreError> {
        loop {
            let dry: Vec<usize> = (0..self.buckets.len())
                .filter(|&i| !self.buckets[i].done && self.buckets[i].fetched.is_empty())
                .collect();
            if !dry.is_empty() {
                self.fetch(&dry).await?;
                continue;
            }
            // Every bucket that may hold more has a member at hand: the
            // smallest (largest) of them is next overall.
            let best = self
                .buckets
                .iter()
                .enumerate()
                .filter_map(|(i, b)| Some((i, b.fetched.front()?)))
                .reduce(|a, b| match (b.1 < a.1) != self.descending {
                    true => b,
                    false => a,
                });
            return Ok(best
                .map(|(i, _)| i)
                .and_then(|i| self.buckets[i].fetched.pop_front()));
        }
    }

    /// One batch for each of `which`, in one round trip per slot.
    async fn fetch(&mut self, which: &[usize]) -> Result<(), StoreError> {
        let cmds = which
            .iter()
            .map(|&i| {
                let b = &self.buckets[i];
                let mut cmd = match self.descending {
                    false => redis::cmd("ZRANGEBYLEX"),
                    true => redis::cmd("ZREVRANGEBYLEX"),
                };
                cmd.arg(&b.set)
                    .arg(&b.from)
                    .arg(&self.end)
                    .arg("LIMIT")
                    .arg(0)
                    .arg(b.batch);
                (b.tag.clone(), cmd)
            })
            .collect();
        let answers = self.store.read_by_tag(cmds).await?;
        for (&i, answer) in which.iter().zip(answers) {
            let members: Vec<String> =
                redis::from_redis_value(answer).map_err(|_| super::unexpected("ZRANGEBYLEX"))?;
            let b = &mut self.buckets[i];
            b.done = members.len() < b.batch;
            if let Some(last) = members.last() {
                b.from = format!("({last}");
            }
            b.fetched.extend(members);
            b.batch = (b.batch * 2).min(MAX_BATCH);
        }
        Ok(())
    }
}
