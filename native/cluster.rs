//! The memcached nodes of one manager: their health, and which node holds what.
//!
//! A node that fails an operation is marked down at once and probed in the background; while it
//! is down nothing is sent to it, so a dead or hung node costs at most one operation deadline.
//! Each node that is up is also watched: a connection of its own waits for the server to close
//! it, as memcached does with every connection when it stops, so a killed or restarted node is
//! marked down at once, before any request meets it. A node that keeps failing soon after each
//! probe brought it back (a server answering `version` but failing real operations) is probed
//! less and less often, up to [`MAX_PROBE_BACKOFF`] times `nodeProbeInterval`.
//! Node order defines the "next" node: the backup of a session, and where it goes when its node
//! fails. Failover nodes come last, used only when no regular node is up.
//!
//! A node removed from the list stays in the ring, *retired*: never contacted, never up, at its
//! old place. So a session whose id names it is handled exactly as on a failed node (sticky: it
//! is written to the next node and takes a new id; non-sticky: its second copy, on the node that
//! followed it, is read and becomes its primary), instead of being unknown.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use parking_lot::{Mutex, RwLock};
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::client::{NodeClient, Security};
use crate::config::{Config, NodeConfig};
use crate::envelope::CorruptKind;
use crate::error::{Error, Result};
use crate::runtime;
use crate::stats::{Stats, bump};

/// Most retired nodes remembered; beyond it the first ones in ring order are forgotten (ids
/// naming them are then unknown).
const MAX_RETIRED: usize = 64;
/// A node marked down again less than this many probe intervals after a probe brought it back
/// is flapping: the wait before its next probe doubles.
const FLAP_WINDOW: u32 = 20;
/// The longest wait between probes of a flapping node, in probe intervals.
pub const MAX_PROBE_BACKOFF: u32 = 32;

/// Whether a node is up, shared by the node and its monitor.
#[derive(Debug)]
struct Health {
    up: AtomicBool,
    /// Wakes the monitor when a request marked the node down, so that it stops watching and
    /// starts probing.
    down: Notify,
}

impl Health {
    /// Marks the node down for `error`; true when it was up.
    fn mark_down(&self, node: &str, stats: &Stats, error: &Error) -> bool {
        let was_up = self.up.swap(false, Ordering::AcqRel);
        if was_up {
            bump(&stats.nodes_marked_down);
            tracing::warn!(node, error = %error, "memcached node marked down");
            self.down.notify_one();
        }
        was_up
    }
}

/// One memcached server and its health.
#[derive(Debug)]
pub struct Node {
    config: NodeConfig,
    client: Arc<NodeClient>,
    health: Arc<Health>,
    retired: bool,
    /// The task watching the node while it is up and probing it while it is down.
    monitor: Mutex<Option<JoinHandle<()>>>,
}

impl Drop for Node {
    fn drop(&mut self) {
        self.stop_monitor();
    }
}

impl Node {
    fn stop_monitor(&self) {
        if let Some(monitor) = self.monitor.lock().take() {
            monitor.abort();
        }
    }

    /// The node id used in session ids.
    pub fn id(&self) -> &str {
        &self.config.id
    }

    /// Whether operations are sent to this node (never to a retired one).
    pub fn is_up(&self) -> bool {
        !self.retired && self.health.up.load(Ordering::Acquire)
    }

    /// A node removed from the list, kept so that sessions naming it move as on a failure.
    pub fn is_retired(&self) -> bool {
        self.retired
    }

    /// How the node is configured.
    pub fn config(&self) -> &NodeConfig {
        &self.config
    }

    /// A failover node is used only when no regular node is up.
    pub fn is_failover(&self) -> bool {
        self.config.failover
    }
}

/// A snapshot of the node list.
pub type Nodes = Arc<[Arc<Node>]>;

/// How node clients are set up and monitored.
#[derive(Debug, Clone)]
struct ClientSettings {
    timeout: Duration,
    retries: u32,
    retry_backoff: Duration,
    max_value: usize,
    security: Arc<Security>,
    probe_interval: Duration,
    stats: Arc<Stats>,
    recovered: Arc<Notify>,
    /// Sticky mode: single-line requests of many callers are sent together.
    together: bool,
}

impl ClientSettings {
    /// A node; one in use gets its monitor.
    fn node(&self, config: &NodeConfig, retired: bool) -> Node {
        let client = Arc::new(
            NodeClient::new(
                &config.id,
                &config.address(),
                self.timeout,
                self.retries,
                self.retry_backoff,
                self.max_value,
            )
            .with_security(Arc::clone(&self.security))
            .together(self.together),
        );
        let health = Arc::new(Health {
            up: AtomicBool::new(!retired),
            down: Notify::new(),
        });
        let monitor = (!retired).then(|| {
            runtime::handle().spawn(monitor(
                Arc::clone(&client),
                Arc::clone(&health),
                Arc::clone(&self.stats),
                Arc::clone(&self.recovered),
                self.probe_interval,
            ))
        });
        Node {
            client,
            config: config.clone(),
            health,
            retired,
            monitor: Mutex::new(monitor),
        }
    }
}

/// The nodes of a manager, with the background probe of those that are down. The node list can
/// be replaced while the manager runs.
#[derive(Debug)]
pub struct Cluster {
    nodes: Arc<RwLock<Nodes>>,
    recovered: Arc<Notify>,
    settings: ClientSettings,
    next_primary: AtomicUsize,
    stats: Arc<Stats>,
}

impl Drop for Cluster {
    /// Stops every node's monitor now, even if a snapshot of the nodes outlives the cluster.
    fn drop(&mut self) {
        for node in self.nodes.read().iter() {
            node.stop_monitor();
        }
    }
}

impl Cluster {
    /// Builds the clients of every configured node and starts watching them. Fails when what
    /// TLS or authentication need cannot be read (a configuration error naming the attribute).
    pub fn new(config: &Config, stats: Arc<Stats>) -> Result<Self> {
        let recovered = Arc::new(Notify::new());
        let settings = ClientSettings {
            timeout: config.operation_timeout,
            retries: config.operation_retries,
            retry_backoff: config.operation_retry_backoff,
            // Room for the largest session (or broadcast log item: see `crate::broadcast`)
            // plus the protocol's framing.
            max_value: if config.session_events.broadcast() {
                config.max_session_size.max(1 << 20)
            } else {
                config.max_session_size
            } + 1024,
            security: Security::load(config.tls.as_ref(), config.credentials.as_ref())?,
            probe_interval: config.node_probe_interval,
            stats: Arc::clone(&stats),
            recovered: Arc::clone(&recovered),
            together: config.sticky,
        };
        if settings.security.is_tls() {
            tracing::info!("connections to memcached use TLS");
        }
        let nodes: Nodes = config
            .nodes
            .iter()
            .map(|n| Arc::new(settings.node(n, false)))
            .collect();
        Ok(Cluster {
            nodes: Arc::new(RwLock::new(nodes)),
            recovered,
            settings,
            next_primary: AtomicUsize::new(0),
            stats,
        })
    }

    /// The node with this id, if known (retired nodes included).
    pub fn node(&self, id: &str) -> Option<Arc<Node>> {
        self.nodes.read().iter().find(|n| n.id() == id).cloned()
    }

    /// Whether the node with this id is up; `None` when it is not known or retired. Clones
    /// nothing: every request asks it.
    pub fn is_up(&self, id: &str) -> Option<bool> {
        self.nodes
            .read()
            .iter()
            .find(|n| n.id() == id && !n.is_retired())
            .map(|n| n.is_up())
    }

    /// All nodes in ring order, retired ones included.
    pub fn nodes(&self) -> Nodes {
        Arc::clone(&self.nodes.read())
    }

    /// The configuration of the nodes in use (not retired), in ring order.
    pub fn active(&self) -> Vec<NodeConfig> {
        self.nodes()
            .iter()
            .filter(|n| !n.is_retired())
            .map(|n| n.config.clone())
            .collect()
    }

    /// Replaces the node list. Nodes whose configuration is unchanged keep their connections
    /// and health; removed nodes stay in the ring, retired where they were, so sessions on them
    /// move as if their node had failed; a retired node listed again is used again.
    pub fn replace(&self, configs: &[NodeConfig]) {
        let mut nodes = self.nodes.write();
        let mut ring: Vec<Arc<Node>> = configs
            .iter()
            .map(|config| {
                nodes
                    .iter()
                    .find(|n| !n.retired && n.config == *config)
                    .cloned()
                    .unwrap_or_else(|| Arc::new(self.settings.node(config, false)))
            })
            .collect();
        // Each node that is gone goes back after the node it followed, so the next node of a
        // retired one (where its sessions' second copies are) stays what it was.
        let mut previous: Option<usize> = None;
        for old in nodes.iter() {
            if let Some(at) = ring.iter().position(|n| n.id() == old.id()) {
                previous = Some(at);
                continue;
            }
            let at = previous.map_or(0, |p| p + 1);
            let retired = if old.retired {
                Arc::clone(old)
            } else {
                Arc::new(self.settings.node(&old.config, true))
            };
            ring.insert(at, retired);
            previous = Some(at);
        }
        while ring.iter().filter(|n| n.retired).count() > MAX_RETIRED {
            let first = ring.iter().position(|n| n.retired).expect("counted above");
            ring.remove(first);
        }
        *nodes = ring.into();
    }

    /// The node for a new session: regular nodes that are up, in turn; failover nodes only when
    /// no regular node is up; when every node is down, the first regular node (the session then
    /// lives in the host until a node comes back).
    pub fn choose_primary(&self) -> Arc<Node> {
        let turn = self.next_primary.fetch_add(1, Ordering::Relaxed);
        let nodes = self.nodes();
        let pick = |failover: bool| {
            let candidates: Vec<&Arc<Node>> = nodes
                .iter()
                .filter(|n| n.is_failover() == failover && n.is_up())
                .collect();
            (!candidates.is_empty()).then(|| Arc::clone(candidates[turn % candidates.len()]))
        };
        pick(false)
            .or_else(|| pick(true))
            .or_else(|| {
                nodes
                    .iter()
                    .find(|n| !n.is_failover() && !n.is_retired())
                    .cloned()
            })
            .expect("configuration guarantees a regular node")
    }

    /// The first node that is up after the node `after` in ring order (regular nodes first,
    /// then failover nodes), never `after` itself: a session's second copy, and where it moves
    /// when its own node fails.
    pub fn next_available(&self, after: &str) -> Option<Arc<Node>> {
        let nodes = self.nodes();
        let regular: Vec<&Arc<Node>> = nodes.iter().filter(|n| !n.is_failover()).collect();
        let start = regular
            .iter()
            .position(|n| n.id() == after)
            .map_or(0, |i| i + 1);
        let ring = (0..regular.len()).map(|i| regular[(start + i) % regular.len()]);
        let failover = nodes.iter().filter(|n| n.is_failover());
        ring.chain(failover)
            .find(|n| n.id() != after && n.is_up())
            .cloned()
    }

    /// Runs an operation on a node. A node that is down is not contacted; a node failure marks
    /// the node down, so only the first request meeting a dead node waits for it. The
    /// operation goes to the heap: it waits on the network, where an allocation costs nothing,
    /// and every future that awaits it stays small enough to move cheaply.
    pub async fn call<'a, T, F>(
        &self,
        node: &'a Node,
        op: impl FnOnce(&'a NodeClient) -> F,
    ) -> Result<T>
    where
        F: Future<Output = Result<T>>,
    {
        if !node.is_up() {
            return Err(Error::NodeDown(node.id().to_owned()));
        }
        let result = Box::pin(op(&node.client)).await;
        match &result {
            Err(e) if e.is_node_failure() => {
                bump(&self.stats.failed_operations);
                if matches!(e, Error::Timeout { .. }) {
                    bump(&self.stats.timeouts);
                }
                node.health.mark_down(node.id(), &self.stats, e);
            }
            // The client refuses a value beyond every limit before reading it: corrupt, like a
            // value that fails its decoder.
            Err(e @ Error::Corrupt(_)) => {
                self.stats.count_corrupt(CorruptKind::Malformed);
                tracing::warn!(node = node.id(), error = %e, "corrupt value refused");
            }
            _ => {}
        }
        result
    }

    /// Notified whenever a node that was down answers again (a permit is kept when nobody
    /// waits).
    pub fn recovery_signal(&self) -> Arc<Notify> {
        Arc::clone(&self.recovered)
    }

    /// One line per node in use: id, address, and whether it is up.
    pub fn describe(&self) -> String {
        self.nodes()
            .iter()
            .filter(|n| !n.is_retired())
            .map(|n| {
                let state = if n.is_up() { "up" } else { "down" };
                let role = if n.is_failover() { " failover" } else { "" };
                format!("node_{} {} {state}{role}\n", n.id(), n.config.address())
            })
            .collect()
    }
}

/// Watches a node while it is up (a connection of its own, which the server closes when it
/// stops) and probes it (`version`) while it is down, every `interval`, or less often while it
/// keeps failing soon after coming back. Announces each recovery on `recovered`.
async fn monitor(
    client: Arc<NodeClient>,
    health: Arc<Health>,
    stats: Arc<Stats>,
    recovered: Arc<Notify>,
    interval: Duration,
) {
    let mut wait = interval;
    let mut came_back: Option<Instant> = None;
    loop {
        if health.up.load(Ordering::Acquire) {
            tokio::select! {
                watched = client.watch() => {
                    let error = watched.unwrap_or_else(|failed| failed);
                    health.mark_down(client.node(), &stats, &error);
                }
                () = health.down.notified() => {}
            }
            if health.up.load(Ordering::Acquire) {
                continue;
            }
            wait = match came_back {
                Some(at) if at.elapsed() < interval * FLAP_WINDOW => {
                    let backoff = (wait * 2).min(interval * MAX_PROBE_BACKOFF);
                    tracing::warn!(
                        node = client.node(),
                        next_probe_in = ?backoff,
                        "memcached node failed again soon after it came back; probing it less often"
                    );
                    backoff
                }
                _ => interval,
            };
        } else {
            tokio::time::sleep(wait).await;
            if client.version().await.is_ok() && !health.up.swap(true, Ordering::AcqRel) {
                bump(&stats.nodes_recovered);
                tracing::info!(node = client.node(), "memcached node is back up");
                came_back = Some(Instant::now());
                recovered.notify_one();
            }
        }
    }
}
