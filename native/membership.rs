//! The node list shared in the cluster, so that managers started at different times with
//! different configurations use the same nodes: a host started before a node existed still
//! finds the sessions other hosts stored there.
//!
//! One small record per context, under `nodes:<prefix>` ([`KeyKind::NodeList`]), kept on every
//! node that is up, so any surviving node tells:
//!
//! ```text
//! offset 0  magic "MSMN"
//!        4  format version (2)
//!        5  tag kind (as in the envelope)
//!        6  id of the key that signed it, 4 bytes (zero without keys)
//!       10  list version, u64 little-endian
//!       18  the nodes in `memcachedNodes` syntax (UTF-8), up to the tag
//!  len - T  tag over every byte before it and the context
//! ```
//!
//! - **Versions**: the higher version wins. At start a manager adds its configured nodes to the
//!   shared list (a union: for an id both name, the shared address wins, since the cluster's
//!   sessions were stored there) and publishes the result as the next version when that added
//!   anything; if no node answered, its next read does so instead. An explicit replacement
//!   (JMX `replaceMemcachedNodes`, `msm_manager_set_nodes`) publishes the new list as the next
//!   version, removals included. Failover flags belong to
//!   each manager's configuration and are not shared.
//! - **Concurrent publishers**: every write is a `cas` on what was read, or an `add` where
//!   nothing was; of two managers publishing at once, one loses the race on some node, reads
//!   again and writes its change on top of the other's, so nobody's nodes are lost.
//! - **Following**: a manager reads the list at start, every `nodeListRefreshInterval`, on
//!   request, and when a session id names a node it does not know (or has retired); the last at
//!   most once per [`MIN_UNKNOWN_NODE_REFRESH`], so forged ids cannot make it hammer memcached. A
//!   newer version is adopted: nodes it adds are used, nodes it lacks are retired (see
//!   [`crate::cluster`]), which moves their sessions as a node failure does. Nodes that are up
//!   but hold an older, missing or refused record are given the newest one.
//! - **Trust**: a record is accepted only with a valid tag bound to the context; its list is
//!   parsed by the configuration's own parser ([`parse_node_list`]: ids, hosts and ports as a
//!   configuration may write them) and holds at most [`MAX_SHARED_NODES`] nodes. Anything else
//!   is refused, counted (`shared_lists_refused`), logged without its content, and overwritten by
//!   the next write. The record is only as trustworthy as its tag: with `integrityKey`
//!   (HMAC-SHA256) nobody without the key can add a node; with the default checksum anyone who
//!   can write to memcached can make every manager send new sessions to a server of their
//!   choosing, so configure `integrityKey` or `sharedNodeList="false"`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::{Mutex, OwnedMutexGuard, oneshot};
use tokio::task::{JoinHandle, JoinSet};

use crate::client::CasOutcome;
use crate::cluster::{Cluster, Node};
use crate::config::{Config, NodeConfig, format_node_list, parse_node_list};
use crate::envelope::{Codec, unencrypted_tag_len};
use crate::error::{Error, Result};
use crate::keys::KeyKind;
use crate::runtime;
use crate::stats::{Stats, bump};

const MAGIC: &[u8; 4] = b"MSMN";
const FORMAT_VERSION: u8 = 2;
/// Magic, format version, tag kind, key id, list version.
const HEADER_LEN: usize = 18;
/// What a record is bound to besides its context (no session id looks like it).
const BOUND: &str = "nodes";
/// Longest node list text a record may carry.
const MAX_LIST_LEN: usize = 16 * 1024;
/// Most nodes a shared list may name.
pub const MAX_SHARED_NODES: usize = 256;
/// Shortest pause between two reads of the list caused by session ids naming unknown nodes.
pub const MIN_UNKNOWN_NODE_REFRESH: Duration = Duration::from_secs(1);
/// Rounds of reading and writing before a publication gives up; each lost race costs one.
const MAX_ROUNDS: u32 = 16;

/// One version of the shared node list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeList {
    /// Higher versions win; a manager that has seen none yet is at 0.
    pub version: u64,
    /// The nodes in ring order, without failover flags.
    pub nodes: Vec<NodeConfig>,
}

impl NodeList {
    /// Encodes the record, tagged by `codec` and bound to its context.
    pub fn encode(&self, codec: &Codec) -> Vec<u8> {
        let text = format_node_list(&self.nodes);
        let integrity = codec.integrity();
        let mut out = Vec::with_capacity(HEADER_LEN + text.len() + 32);
        out.extend_from_slice(MAGIC);
        out.push(FORMAT_VERSION);
        out.push(integrity.record_kind());
        out.extend_from_slice(&integrity.signing_id());
        out.extend_from_slice(&self.version.to_le_bytes());
        out.extend_from_slice(text.as_bytes());
        integrity.append_tag(&mut out, &codec.bound(BOUND));
        out
    }

    /// Decodes and verifies a record read from memcached; its nodes are validated as
    /// configured ones are. Errors never quote the record's content.
    pub fn decode(codec: &Codec, value: &[u8]) -> Result<Self> {
        let corrupt = |reason: &str| Error::Corrupt(format!("shared node list: {reason}"));
        if value.len() < HEADER_LEN || &value[..4] != MAGIC || value[4] != FORMAT_VERSION {
            return Err(corrupt("unknown magic or format version"));
        }
        let kind = value[5];
        let tag_len = unencrypted_tag_len(kind).ok_or_else(|| corrupt("unknown tag kind"))?;
        if !(HEADER_LEN + tag_len..=HEADER_LEN + MAX_LIST_LEN + tag_len).contains(&value.len()) {
            return Err(corrupt("wrong length"));
        }
        let (covered, tag) = value.split_at(value.len() - tag_len);
        let key_id = covered[6..10].try_into().expect("4 bytes");
        codec
            .integrity()
            .verify_tag(kind, Some(&key_id), covered, &codec.bound(BOUND), tag)
            .map_err(|e| corrupt(&e.to_string()))?;
        let version = u64::from_le_bytes(covered[10..HEADER_LEN].try_into().expect("8 bytes"));
        if version == 0 {
            return Err(corrupt("version 0"));
        }
        let text = std::str::from_utf8(&covered[HEADER_LEN..]).map_err(|_| corrupt("not UTF-8"))?;
        let nodes = parse_node_list(text, None).map_err(|e| match e {
            Error::Config { reason, .. } => corrupt(&format!("invalid node list: {reason}")),
            other => other,
        })?;
        if nodes.len() > MAX_SHARED_NODES {
            return Err(corrupt("too many nodes"));
        }
        Ok(NodeList { version, nodes })
    }
}

/// Node configurations as the shared list holds them: without failover flags.
fn plain(nodes: &[NodeConfig]) -> Vec<NodeConfig> {
    nodes
        .iter()
        .map(|n| NodeConfig {
            failover: false,
            ..n.clone()
        })
        .collect()
}

/// The `shared` nodes followed by those of `added` they lack. For an id both name, the shared
/// entry wins (the cluster's sessions were stored at that address), with a warning.
fn union(shared: &[NodeConfig], added: &[NodeConfig]) -> Vec<NodeConfig> {
    let mut nodes = shared.to_vec();
    for node in added {
        match nodes.iter().find(|n| n.id == node.id) {
            None => nodes.push(node.clone()),
            Some(theirs) if theirs != node => tracing::warn!(
                node = node.id,
                kept = theirs.address(),
                ignored = node.address(),
                "two node lists give one node different addresses; the shared one is kept"
            ),
            Some(_) => {}
        }
    }
    nodes
}

/// What one node holds under the list's key.
struct Slot {
    node: Arc<Node>,
    /// The stored bytes and their CAS unique; `None` when the node holds nothing.
    held: Option<(Vec<u8>, u64)>,
    /// The list those bytes hold, when they are a valid record.
    list: Option<NodeList>,
}

/// What a synchronization is after.
#[derive(Clone, Copy)]
enum Goal<'a> {
    /// Follow the newest list (or re-publish ours when the cluster's is older or gone).
    Follow,
    /// Add these nodes to the shared list.
    Add(&'a [NodeConfig]),
    /// Make this the list.
    Replace(&'a [NodeConfig]),
}

/// Another manager changed the record on some node since it was read.
struct Lost;

/// One manager's view of the shared node list; see the module documentation.
pub(crate) struct Membership {
    cluster: Arc<Cluster>,
    codec: Codec,
    stats: Arc<Stats>,
    key: String,
    enabled: bool,
    interval: Option<Duration>,
    /// This manager's failover node ids, flagged in every list it uses.
    failover: Vec<String>,
    /// The version of the list in force.
    version: AtomicU64,
    /// Held by whoever reads or writes the list, so they take turns.
    turn: Arc<Mutex<()>>,
    /// When a session id naming an unknown node last caused a read: the rate limit's clock
    /// (reads for other reasons, at start above all, do not hold such a lookup back).
    last_learn: parking_lot::Mutex<Option<Instant>>,
    task: parking_lot::Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for Membership {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Membership")
            .field("version", &self.version())
            .finish_non_exhaustive()
    }
}

impl Membership {
    /// A manager's view of the shared list of its context; nothing is read before
    /// [`Membership::start`].
    pub(crate) fn new(
        config: &Config,
        cluster: Arc<Cluster>,
        codec: Codec,
        stats: Arc<Stats>,
    ) -> Arc<Self> {
        Arc::new(Membership {
            cluster,
            codec,
            stats,
            key: config.keys.context_key(KeyKind::NodeList),
            enabled: config.shared_node_list,
            interval: config.node_list_refresh_interval,
            failover: config
                .nodes
                .iter()
                .filter(|n| n.failover)
                .map(|n| n.id.clone())
                .collect(),
            version: AtomicU64::new(0),
            turn: Arc::new(Mutex::new(())),
            last_learn: parking_lot::Mutex::new(None),
            task: parking_lot::Mutex::new(None),
        })
    }

    /// Starts following the shared list in the background (unless `sharedNodeList` is off):
    /// first this manager's nodes are added to it, then it is read every refresh interval.
    /// Until that first step is done every other use of the list waits for it. The receiver is
    /// told when it is done.
    pub(crate) fn start(self: &Arc<Self>) -> Option<oneshot::Receiver<()>> {
        if !self.enabled {
            return None;
        }
        let held = Arc::clone(&self.turn)
            .try_lock_owned()
            .expect("nothing else uses the list before it starts");
        let (done, started) = oneshot::channel();
        let task = runtime::handle().spawn(Arc::clone(self).follow(held, done));
        *self.task.lock() = Some(task);
        Some(started)
    }

    /// Stops the background work (the manager is going away).
    pub(crate) fn stop(&self) {
        if let Some(task) = self.task.lock().take() {
            task.abort();
        }
    }

    async fn follow(self: Arc<Self>, turn: OwnedMutexGuard<()>, done: oneshot::Sender<()>) {
        self.read_held().await;
        drop(turn);
        let _ = done.send(());
        let Some(interval) = self.interval else {
            return;
        };
        loop {
            tokio::time::sleep(interval).await;
            self.refresh().await;
        }
    }

    /// The version of the list in force (0 before any was read or written).
    pub(crate) fn version(&self) -> u64 {
        self.version.load(Ordering::Acquire)
    }

    /// The list in force: its version and the nodes in use, without failover flags.
    pub(crate) fn node_list(&self) -> NodeList {
        NodeList {
            version: self.version(),
            nodes: plain(&self.cluster.active()),
        }
    }

    /// This manager's failover node ids.
    pub(crate) fn failover(&self) -> &[String] {
        &self.failover
    }

    /// Reads the shared list now and adopts it when it is newer.
    pub(crate) async fn refresh(&self) {
        if self.enabled {
            let _turn = self.turn.lock().await;
            self.read_held().await;
        }
    }

    /// Reads the shared list, the caller holding the turn, and adopts it when it is newer.
    /// Until this manager's list has been shared once (at start, unless no node answered), the
    /// read adds its nodes to the shared list rather than just following it, so that nodes
    /// only this manager knows are not retired by an older list.
    async fn read_held(&self) {
        bump(&self.stats.shared_list_reads);
        let ours = plain(&self.cluster.active());
        let goal = if self.version() == 0 {
            Goal::Add(&ours)
        } else {
            Goal::Follow
        };
        if let Some(list) = self.sync(goal, &self.up()).await {
            self.adopt(&list);
        }
    }

    /// The nodes in use that are up.
    fn up(&self) -> Vec<Arc<Node>> {
        self.cluster
            .nodes()
            .iter()
            .filter(|n| n.is_up())
            .cloned()
            .collect()
    }

    /// The node `id` (a session id's node part) names. A node this manager does not know, or has
    /// retired, may be one the cluster's shared list has gained since: the list is read first
    /// (at most once a second for such ids). A retired node is returned as such (never up).
    pub(crate) async fn node(&self, id: &str) -> Option<Arc<Node>> {
        let known = self.cluster.node(id);
        if known.as_ref().is_some_and(|n| !n.is_retired()) {
            return known;
        }
        self.learn(id).await;
        self.cluster.node(id)
    }

    /// A session id names `node`, which this manager does not know or has retired: reads the
    /// shared list, unless it was read less than [`MIN_UNKNOWN_NODE_REFRESH`] ago (counted), so
    /// that the node is known if the cluster knows it.
    async fn learn(&self, node: &str) {
        if !self.enabled {
            return;
        }
        let _turn = self.turn.lock().await;
        if self.cluster.node(node).is_some_and(|n| !n.is_retired()) {
            // Learnt while this call waited for its turn.
            return;
        }
        {
            let mut learned = self.last_learn.lock();
            if learned.is_some_and(|at| at.elapsed() < MIN_UNKNOWN_NODE_REFRESH) {
                bump(&self.stats.shared_list_reads_limited);
                return;
            }
            *learned = Some(Instant::now());
        }
        tracing::debug!(
            node,
            "session id names an unknown node: reading the shared node list"
        );
        self.read_held().await;
    }

    /// Replaces the node list (already validated, failover nodes flagged) and publishes it as
    /// the next version of the shared list, on the new nodes and on the removed ones that are
    /// still up (a manager whose configuration names one learns from it that it is gone).
    pub(crate) async fn replace(&self, nodes: &[NodeConfig]) {
        let _turn = self.turn.lock().await;
        let before = self.up();
        self.cluster.replace(nodes);
        if !self.enabled {
            return;
        }
        let mut targets = self.up();
        for old in before {
            if !targets.iter().any(|n| n.id() == old.id()) {
                targets.push(old);
            }
        }
        match self.sync(Goal::Replace(&plain(nodes)), &targets).await {
            Some(list) => self.version.store(list.version, Ordering::Release),
            None => tracing::warn!(
                "the new node list is in force here but could not be shared: other managers \
                 keep theirs until it is"
            ),
        }
    }

    /// Makes `list` the node list in force when it is not older than the one in force.
    fn adopt(&self, list: &NodeList) {
        if list.version < self.version() {
            return;
        }
        self.version.store(list.version, Ordering::Release);
        let ours = plain(&self.cluster.active());
        if list.nodes == ours {
            return;
        }
        let flagged: Vec<NodeConfig> = list
            .nodes
            .iter()
            .map(|n| NodeConfig {
                failover: self.failover.contains(&n.id),
                ..n.clone()
            })
            .collect();
        if flagged.iter().all(|n| n.failover) {
            tracing::warn!(
                version = list.version,
                "the shared node list names only this manager's failover nodes; not adopted"
            );
            return;
        }
        let missing_from = |from: &[NodeConfig], of: &[NodeConfig]| -> String {
            of.iter()
                .filter(|n| !from.contains(n))
                .map(NodeConfig::entry)
                .collect::<Vec<_>>()
                .join(" ")
        };
        tracing::info!(
            version = list.version,
            added = missing_from(&ours, &list.nodes),
            removed = missing_from(&list.nodes, &ours),
            "shared memcached node list adopted"
        );
        self.cluster.replace(&flagged);
        bump(&self.stats.shared_list_adopted);
    }

    /// Reads the record on `nodes`, decides the list `goal` calls for and writes it wherever
    /// it is not stored yet, reading again after a lost race. Returns the list now shared;
    /// `None` when no node could be read or the races never ended.
    async fn sync(&self, goal: Goal<'_>, nodes: &[Arc<Node>]) -> Option<NodeList> {
        for round in 0..MAX_ROUNDS {
            let slots = self.read(nodes).await;
            if slots.is_empty() {
                return None;
            }
            let newest = newest(&slots);
            let known = self.version();
            let wanted = match goal {
                Goal::Follow => match &newest {
                    Some(list) if list.version >= known => list.nodes.clone(),
                    _ => plain(&self.cluster.active()),
                },
                Goal::Add(added) => {
                    union(newest.as_ref().map_or(&[][..], |list| &list.nodes), added)
                }
                Goal::Replace(nodes) => nodes.to_vec(),
            };
            if wanted.len() > MAX_SHARED_NODES {
                tracing::warn!("node list not shared: more than {MAX_SHARED_NODES} nodes");
                return None;
            }
            let seen = newest.as_ref().map_or(0, |list| list.version);
            // The newest version is kept only when every record of it already says `wanted`:
            // a write never replaces a record by a different one of the same version.
            let settled = seen >= known
                && slots
                    .iter()
                    .filter_map(|s| s.list.as_ref())
                    .filter(|list| list.version == seen)
                    .all(|list| list.nodes == wanted);
            let version = if seen > 0 && settled {
                seen
            } else {
                seen.max(known) + 1
            };
            let list = NodeList {
                version,
                nodes: wanted,
            };
            match self.write(&slots, &list.encode(&self.codec)).await {
                Ok(wrote) => {
                    if wrote && version > seen {
                        bump(&self.stats.shared_list_published);
                        tracing::info!(
                            version,
                            nodes = format_node_list(&list.nodes),
                            "shared memcached node list published"
                        );
                    }
                    return Some(list);
                }
                Err(Lost) => {
                    bump(&self.stats.shared_list_conflicts);
                    tokio::time::sleep(backoff(round)).await;
                }
            }
        }
        tracing::warn!("shared node list not written: other managers kept changing it");
        None
    }

    /// The record on each of `nodes` that is up, read in parallel. A node that fails is marked
    /// down by the call and left out.
    async fn read(&self, nodes: &[Arc<Node>]) -> Vec<Slot> {
        let mut reads = JoinSet::new();
        for node in nodes.iter().filter(|n| n.is_up()) {
            let (cluster, node, key) = (
                Arc::clone(&self.cluster),
                Arc::clone(node),
                self.key.clone(),
            );
            reads.spawn(async move {
                let held = cluster.call(&node, |c| c.gets(&key)).await;
                (node, held)
            });
        }
        let mut slots = Vec::new();
        while let Some(joined) = reads.join_next().await {
            let Ok((node, Ok(held))) = joined else {
                continue;
            };
            let list = held.as_ref().and_then(|(value, _)| {
                NodeList::decode(&self.codec, value)
                    .inspect_err(|e| {
                        bump(&self.stats.shared_lists_refused);
                        tracing::warn!(node = node.id(), error = %e, "shared node list refused");
                    })
                    .ok()
            });
            slots.push(Slot { node, held, list });
        }
        slots
    }

    /// Writes `value` to every slot that does not hold it: `cas` over what was read, `add`
    /// where nothing was. `Err(Lost)` when another manager changed a slot since; otherwise
    /// whether anything was written. Nodes that fail are skipped (marked down by the call).
    async fn write(&self, slots: &[Slot], value: &[u8]) -> std::result::Result<bool, Lost> {
        let mut wrote = false;
        for slot in slots {
            let stored = match &slot.held {
                Some((held, _)) if held == value => continue,
                Some((_, cas)) => self
                    .cluster
                    .call(&slot.node, |c| c.cas(&self.key, value, 0, *cas))
                    .await
                    .map(|outcome| outcome == CasOutcome::Stored),
                None => {
                    self.cluster
                        .call(&slot.node, |c| c.add(&self.key, value, 0))
                        .await
                }
            };
            match stored {
                Ok(true) => wrote = true,
                Ok(false) => return Err(Lost),
                Err(e) => {
                    tracing::debug!(node = slot.node.id(), error = %e, "shared node list not written");
                }
            }
        }
        Ok(wrote)
    }
}

/// The newest list the slots hold. Records of the same version and different content (two
/// publishers racing) are merged, in the order of their bytes, so that every manager reads the
/// same list and neither publisher's nodes are lost.
fn newest(slots: &[Slot]) -> Option<NodeList> {
    let mut records: Vec<(&Vec<u8>, &NodeList)> = slots
        .iter()
        .filter_map(|s| Some((&s.held.as_ref()?.0, s.list.as_ref()?)))
        .collect();
    let version = records.iter().map(|(_, list)| list.version).max()?;
    records.retain(|(_, list)| list.version == version);
    records.sort_by(|a, b| a.0.cmp(b.0));
    let nodes = records
        .iter()
        .fold(Vec::new(), |nodes, (_, list)| union(&nodes, &list.nodes));
    Some(NodeList { version, nodes })
}

/// A short random pause after a lost race, growing with the rounds, so racing managers spread.
fn backoff(round: u32) -> Duration {
    let mut byte = [0u8; 1];
    getrandom::fill(&mut byte).expect("the operating system's random generator failed");
    Duration::from_millis(u64::from(round + 1) * (1 + u64::from(byte[0] % 8)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envelope::KeyRing;

    fn node(id: &str, port: u16) -> NodeConfig {
        NodeConfig {
            id: id.into(),
            host: "127.0.0.1".into(),
            port,
            failover: false,
        }
    }

    fn list() -> NodeList {
        NodeList {
            version: 7,
            nodes: vec![
                node("n1", 11211),
                NodeConfig {
                    host: "::1".into(),
                    ..node("n2", 11212)
                },
            ],
        }
    }

    #[test]
    fn round_trips_and_pins_its_layout() {
        let codec = Codec::new(None, 1 << 20, "shop:");
        let bytes = list().encode(&codec);
        assert_eq!(&bytes[..6], b"MSMN\x02\x01");
        assert_eq!(&bytes[10..18], &7u64.to_le_bytes());
        assert_eq!(
            &bytes[18..bytes.len() - 4],
            b"n1:127.0.0.1:11211 n2:[::1]:11212"
        );
        assert_eq!(NodeList::decode(&codec, &bytes).unwrap(), list());
    }

    #[test]
    fn refuses_flipped_bits_other_contexts_and_keys() {
        let codec = Codec::new(
            Some(KeyRing::parse(b"0123456789abcdef").unwrap()),
            1 << 20,
            "shop:",
        );
        let bytes = list().encode(&codec);
        for i in 0..bytes.len() * 8 {
            let mut flipped = bytes.clone();
            flipped[i / 8] ^= 1 << (i % 8);
            assert!(NodeList::decode(&codec, &flipped).is_err(), "bit {i}");
        }
        let other_context = Codec::new(
            Some(KeyRing::parse(b"0123456789abcdef").unwrap()),
            1 << 20,
            "blog:",
        );
        assert!(NodeList::decode(&other_context, &bytes).is_err());
        let other_key = Codec::new(
            Some(KeyRing::parse(b"fedcba9876543210").unwrap()),
            1 << 20,
            "shop:",
        );
        assert!(NodeList::decode(&other_key, &bytes).is_err());
        let unsigned = Codec::new(None, 1 << 20, "shop:");
        assert!(NodeList::decode(&unsigned, &bytes).is_err());
        assert!(NodeList::decode(&codec, &list().encode(&unsigned)).is_err());
    }

    #[test]
    fn validates_nodes_as_the_configuration_does_without_quoting_them() {
        let codec = Codec::new(None, 1 << 20, "shop:");
        for (host, port) in [("evil\u{1b}[31mhost", 1), ("a\u{0}b", 1), ("h", 0)] {
            let forged = NodeList {
                version: 1,
                nodes: vec![NodeConfig {
                    host: host.into(),
                    port,
                    ..node("n1", 1)
                }],
            };
            let error = NodeList::decode(&codec, &forged.encode(&codec))
                .unwrap_err()
                .to_string();
            assert!(error.contains("invalid node list"), "{error}");
            assert!(!error.contains("evil"), "{error}");
        }
        let duplicate = NodeList {
            version: 1,
            nodes: vec![node("n1", 1), node("n1", 2)],
        };
        assert!(NodeList::decode(&codec, &duplicate.encode(&codec)).is_err());
        let too_many = NodeList {
            version: 1,
            nodes: (0..=MAX_SHARED_NODES as u16)
                .map(|i| node(&format!("n{i}"), i + 1))
                .collect(),
        };
        assert!(NodeList::decode(&codec, &too_many.encode(&codec)).is_err());
        let zero = NodeList {
            version: 0,
            ..list()
        };
        assert!(NodeList::decode(&codec, &zero.encode(&codec)).is_err());
    }

    #[test]
    fn union_keeps_the_shared_order_and_addresses() {
        let shared = [node("n1", 1), node("n2", 2)];
        let configured = [node("n3", 3), node("n1", 9), node("n2", 2)];
        assert_eq!(
            union(&shared, &configured),
            [node("n1", 1), node("n2", 2), node("n3", 3)]
        );
    }
}
