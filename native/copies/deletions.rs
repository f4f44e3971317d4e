//! Deletions of items that no stored index names any more (attribute versions replaced or
//! removed, see [`super::attributes`]), sent in the background and batched per node: the
//! requests of a busy host share one pipelined round trip per node and pause, instead of each
//! sending its own.
//!
//! Nothing waits for them: an item not deleted (its node failed, the batch was full) is never
//! read, and expires with its session.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;

use crate::client::{Answer, Command};
use crate::cluster::Cluster;
use crate::runtime;
use crate::stats::{Stats, bump_by};

/// How long keys gather before their batch is sent.
const PAUSE: Duration = Duration::from_millis(10);

/// Most keys waiting at once; past it, more are left to expire (counted).
const MAX_WAITING: usize = 100_000;

/// Keys waiting for deletion, by node id.
type Waiting = HashMap<String, Vec<String>>;

/// This host's deletions waiting for their batch.
#[derive(Debug)]
pub(crate) struct Deletions {
    waiting: Arc<Mutex<Waiting>>,
    cluster: Arc<Cluster>,
    stats: Arc<Stats>,
}

impl Deletions {
    /// Deletions on the nodes of `cluster`, counted in `stats`.
    pub(crate) fn new(cluster: Arc<Cluster>, stats: Arc<Stats>) -> Self {
        Deletions {
            waiting: Arc::default(),
            cluster,
            stats,
        }
    }

    /// Deletes `keys` on the node `node` with the next batch, within [`PAUSE`].
    pub(crate) fn delete(&self, node: &str, keys: Vec<String>) {
        if keys.is_empty() {
            return;
        }
        let mut waiting = self.waiting.lock();
        let count: usize = waiting.values().map(Vec::len).sum();
        if count + keys.len() > MAX_WAITING {
            bump_by(&self.stats.attribute_items_left, keys.len());
            return;
        }
        let first = waiting.is_empty();
        waiting.entry(node.to_owned()).or_default().extend(keys);
        if first {
            let (waiting, cluster) = (Arc::clone(&self.waiting), Arc::clone(&self.cluster));
            let stats = Arc::clone(&self.stats);
            runtime::handle().spawn(send_after_pause(waiting, cluster, stats));
        }
    }
}

/// Sends, after [`PAUSE`], every key waiting then: one pipeline per node.
async fn send_after_pause(waiting: Arc<Mutex<Waiting>>, cluster: Arc<Cluster>, stats: Arc<Stats>) {
    tokio::time::sleep(PAUSE).await;
    let batch = std::mem::take(&mut *waiting.lock());
    for (node, keys) in batch {
        let Some(node) = cluster.node(&node) else {
            bump_by(&stats.attribute_items_left, keys.len());
            continue;
        };
        let commands: Vec<Command<'_>> = keys.iter().map(|key| Command::Delete(key)).collect();
        match cluster.call(&node, |c| c.pipeline(&commands)).await {
            Ok(answers) => {
                let deleted = answers.iter().filter(|a| **a == Answer::Found(true));
                bump_by(&stats.attribute_items_deleted, deleted.count());
            }
            Err(_) => bump_by(&stats.attribute_items_left, keys.len()),
        }
    }
}
