//! The session operations both faces offer: new id, store, load, touch, delete, lock, unlock,
//! statistics. All routing, failover and locking decisions are made here.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tokio::task::JoinHandle;

use crate::backup::{Queue, Tracker};
use crate::client::{Answer, Command};
use crate::cluster::{Cluster, Node};
use crate::config::{Config, parse_node_list};
use crate::envelope::Codec;
use crate::error::{Error, Result};
use crate::ids::{OsRandom, RandomSource, SessionId};
use crate::keys::KeyKind;
use crate::locking::{Acquired, Backoff, Release, SessionLock, Turns, Wanted};
use crate::membership::{Membership, NodeList};
use crate::near_cache::{NearCache, write_back_forever};
use crate::nonsticky::CheckedOut;
use crate::runtime;
use crate::session::{SessionData, now_millis};
use crate::stats::{Stats, bump};
use crate::sticky::BackupJob;
use crate::validity::{Validity, copies_exptime, copy_lifetime, session_exptime};

/// Attempts at drawing an id that is not reserved yet before giving up.
const MAX_ID_ATTEMPTS: u32 = 8;

/// A session found by [`SessionManager::load`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Loaded {
    /// The session.
    pub session: SessionData,
    /// Set when the session had to move to another node: its new id, which the host must send
    /// to the client (a new cookie) and use from now on.
    pub relocated: Option<SessionId>,
}

/// A session's copy as read, from the cluster or the near cache.
#[derive(Debug)]
pub(crate) struct Found {
    pub(crate) loaded: Loaded,
    /// Its validity record, when one was read alongside.
    pub(crate) validity: Option<Validity>,
    /// The encoded copy.
    pub(crate) value: Vec<u8>,
    /// Served from the near cache: the cluster does not hold it as read.
    pub(crate) from_near: bool,
}

/// Sessions of one context in one memcached cluster.
pub struct SessionManager {
    pub(crate) config: Config,
    pub(crate) cluster: Arc<Cluster>,
    membership: Arc<Membership>,
    pub(crate) codec: Codec,
    random: Box<dyn RandomSource>,
    pub(crate) stats: Arc<Stats>,
    pub(crate) tracker: Tracker,
    /// Set by hosts that back sessions up after requests ([`SessionManager::track_backups`]):
    /// only then do loads record what they took over (a host that never backs up, like a C
    /// host using store and load, tracks nothing).
    pub(crate) tracks_backups: AtomicBool,
    /// `lockingMode="auto"`: URIs whose last request finished without changing its session.
    pub(crate) read_only_uris: parking_lot::Mutex<std::collections::HashSet<String>>,
    /// Non-sticky: sessions loaded for requests that will hand them back, by storage key.
    pub(crate) checked_out: parking_lot::Mutex<HashMap<String, CheckedOut>>,
    pub(crate) queue: Queue<BackupJob>,
    /// This host's copies of sessions for when the cluster cannot serve them.
    pub(crate) near: NearCache,
    /// This host's requests queued at session locks.
    turns: Turns,
    /// Writes the near cache's dirty copies back when nodes answer again.
    write_back: JoinHandle<()>,
}

impl Drop for SessionManager {
    fn drop(&mut self) {
        self.membership.stop();
        self.write_back.abort();
    }
}

impl std::fmt::Debug for SessionManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionManager")
            .field("cluster", &self.cluster)
            .field("codec", &self.codec)
            .finish_non_exhaustive()
    }
}

impl SessionManager {
    /// A manager drawing ids from the operating system's CSPRNG.
    pub fn new(config: Config) -> Result<Arc<Self>> {
        Self::with_random_source(config, Box::new(OsRandom))
    }

    /// A manager drawing the random part of ids from `random` (tests force collisions with it).
    pub fn with_random_source(config: Config, random: Box<dyn RandomSource>) -> Result<Arc<Self>> {
        let codec = Codec::from_config(&config)?;
        if config.integrity_key.is_none() {
            tracing::warn!(
                "no integrityKey: values in memcached carry a checksum only, so anyone who can \
                 write to memcached can forge session content (and, unless \
                 sharedNodeList=\"false\", add nodes to the shared node list); configure \
                 integrityKey"
            );
        }
        tracing::info!(?codec, "session envelope");
        let stats = Arc::new(Stats::default());
        let cluster = Arc::new(Cluster::new(&config, Arc::clone(&stats)));
        let membership = Membership::new(
            &config,
            Arc::clone(&cluster),
            codec.clone(),
            Arc::clone(&stats),
        );
        if let Some(started) = membership.start() {
            // A host thread waits, so the manager begins with the cluster's node list. Inside an
            // async runtime (where blocking is refused) the start completes in the background;
            // every other use of the shared list waits for it.
            let _ = runtime::wait(started);
        }
        let near = NearCache::new(
            config.near_cache_max_sessions,
            config.near_cache_max_bytes,
            Arc::clone(&stats),
        );
        let recovered = cluster.recovery_signal();
        let every = (config.node_probe_interval * 5).max(Duration::from_secs(1));
        Ok(Arc::new_cyclic(|manager| SessionManager {
            queue: Queue::new(config.backup_queue_size),
            config,
            cluster,
            membership,
            codec,
            random,
            stats,
            tracker: Tracker::default(),
            tracks_backups: AtomicBool::new(false),
            read_only_uris: parking_lot::Mutex::default(),
            checked_out: parking_lot::Mutex::default(),
            near,
            turns: Turns::default(),
            write_back: runtime::handle().spawn(write_back_forever(
                manager.clone(),
                recovered,
                every,
            )),
        }))
    }

    /// Declares that this host backs sticky sessions up after requests
    /// ([`SessionManager::backup`]), so loads record what they take over for those backups.
    pub fn track_backups(&self) {
        self.tracks_backups.store(true, Ordering::Relaxed);
    }

    /// The configuration in force.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The counters of this manager.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Statistics and node states as `name value` lines.
    pub fn stats_text(&self) -> String {
        let (near_sessions, near_bytes) = self.near.size();
        format!(
            "{}log_records_dropped {}\nshared_list_version {}\nnear_cache_sessions {}\n\
             near_cache_bytes {}\n{}",
            self.stats.to_text(),
            crate::logging::dropped(),
            self.membership.version(),
            near_sessions,
            near_bytes,
            self.cluster.describe()
        )
    }

    /// Replaces the memcached node list while the manager runs (`memcachedNodes` syntax) and
    /// publishes it as the next version of the shared node list, so other managers follow. The
    /// configured failover nodes stay failover nodes and must remain in the list. Nodes that
    /// stay keep their connections; sessions on removed nodes move as if their node had failed.
    pub async fn set_nodes(&self, memcached_nodes: &str) -> Result<()> {
        let failover = self.membership.failover().join(" ");
        let failover = (!failover.is_empty()).then_some(failover.as_str());
        let nodes = parse_node_list(memcached_nodes, failover)?;
        self.membership.replace(&nodes).await;
        tracing::info!(nodes = memcached_nodes, "memcached node list replaced");
        Ok(())
    }

    /// Reads the node list shared in the cluster now (it is read at start, every
    /// `nodeListRefreshInterval` and for session ids naming unknown nodes anyway) and adopts it
    /// when it is newer than the one in force.
    pub async fn refresh_nodes(&self) {
        self.membership.refresh().await;
    }

    /// The node list in force: the version of the shared list it comes from (0 when none was
    /// read or written) and the nodes in use, in ring order, without failover flags.
    pub fn node_list(&self) -> NodeList {
        self.membership.node_list()
    }

    /// The node a session id names. A node this manager does not know, or has retired, may be
    /// one the cluster's shared list has gained since: the list is read first (at most once a
    /// second for such ids). A retired node is returned as such (never up).
    pub(crate) async fn session_node(&self, id: &SessionId) -> Option<Arc<Node>> {
        let known = self.cluster.node(id.node());
        if known.as_ref().is_some_and(|n| !n.is_retired()) {
            return known;
        }
        self.membership.learn(id.node()).await;
        self.cluster.node(id.node())
    }

    /// Parses an id from untrusted input, counting refusals.
    pub fn parse_id(&self, raw: &str) -> Result<SessionId> {
        SessionId::parse(raw).ok_or_else(|| {
            bump(&self.stats.invalid_ids);
            Error::InvalidId
        })
    }

    pub(crate) fn key(&self, kind: KeyKind, id: &SessionId) -> String {
        self.config.keys.key(kind, id)
    }

    /// A fresh session id on a node chosen for it, reserved cluster-wide with `add` so it can
    /// never collide with a live one. When no node is reachable the id is still handed out
    /// (unreserved, counted): a memcached outage must not stop new sessions.
    pub async fn new_session_id(&self, route: Option<&str>) -> Result<SessionId> {
        let lifetime = session_exptime(self.config.max_inactive_interval);
        for _ in 0..MAX_ID_ATTEMPTS {
            let node = self.cluster.choose_primary();
            let id =
                SessionId::new(&self.random.random_part(), node.id(), route).ok_or_else(|| {
                    Error::config(
                        "jvmRoute",
                        route.unwrap_or(""),
                        "expected 1 to 32 of [A-Za-z0-9_]",
                    )
                })?;
            let key = self.key(KeyKind::IdReservation, &id);
            match self
                .cluster
                .call(&node, |c| c.add(&key, b"", lifetime))
                .await
            {
                Ok(true) => {
                    bump(&self.stats.ids_generated);
                    return Ok(id);
                }
                Ok(false) => {
                    bump(&self.stats.id_collisions);
                    tracing::warn!(
                        "generated session id collided with a reserved one; drawing again"
                    );
                }
                Err(e) if e.is_node_failure() => {
                    if !self.cluster.nodes().iter().any(|n| n.is_up()) {
                        bump(&self.stats.ids_generated);
                        bump(&self.stats.ids_unreserved);
                        return Ok(id);
                    }
                }
                Err(e) => return Err(e),
            }
        }
        Err(Error::IdExhausted(MAX_ID_ATTEMPTS))
    }

    /// Writes a session to its node; in non-sticky mode also its validity record and the backup
    /// copy on the next node. Bumps the session's version. When the session's node is down the
    /// session moves to the next available node and its new id is returned; the host must use it
    /// from now on.
    pub async fn store(
        &self,
        id: &SessionId,
        session: &mut SessionData,
    ) -> Result<Option<SessionId>> {
        self.store_releasing(id, session, &mut None).await
    }

    /// [`SessionManager::store`], releasing `lock` with the primary write when it can (the lock
    /// is then taken out of the option).
    pub(crate) async fn store_releasing(
        &self,
        id: &SessionId,
        session: &mut SessionData,
        lock: &mut Option<SessionLock>,
    ) -> Result<Option<SessionId>> {
        let started = Instant::now();
        session.version += 1;
        let value = self.codec.encode(id.random(), session).inspect_err(|_| {
            bump(&self.stats.too_large);
        })?;
        let write = async {
            if self.config.sticky {
                let exptime = session_exptime(session.max_inactive);
                return self.write_primary(id, &value, exptime, None, lock).await;
            }
            let exptime = copies_exptime(session.max_inactive);
            let validity = self.validity_now(session.max_inactive, None);
            // Usually the session stays on its node: write both copies at once.
            let (primary, ()) = tokio::join!(
                self.write_primary(id, &value, exptime, Some(&validity), lock),
                self.write_backup(id, &value, exptime)
            );
            let target = primary?;
            if target != *id {
                self.write_backup(&target, &value, exptime).await;
            }
            Ok(target)
        };
        let target = match self.within_budget(write).await {
            Ok(target) => target,
            Err(e) if e.is_cluster_failure() && self.near.enabled() => {
                // Kept here until the cluster answers again; nothing the user stored is lost.
                self.near.put(id, value, true);
                bump(&self.stats.near_cache_stored);
                tracing::debug!(session = %id.redacted(), error = %e, "session kept in the near cache");
                return Ok(None);
            }
            Err(e) => return Err(e),
        };
        bump(&self.stats.sessions_stored);
        self.stats.store_time.record(started.elapsed());
        if self.config.sticky {
            self.near.remove(&target);
        } else {
            self.near.put(&target, value, false);
        }
        if target == *id {
            return Ok(None);
        }
        bump(&self.stats.sessions_relocated);
        tracing::info!(from = id.node(), to = target.node(), "session relocated");
        self.delete_copies(id).await.ok();
        Ok(Some(target))
    }

    /// How long one load or store of a request may wait on the cluster: one and a half
    /// operation timeouts, so that no request waits on more than one failing node (which is
    /// marked down by then); past that the near cache stands in.
    fn budget(&self) -> Duration {
        self.config.operation_timeout * 3 / 2
    }

    /// Runs cluster work within the budget of one load or store.
    pub(crate) async fn within_budget<T>(
        &self,
        work: impl std::future::Future<Output = Result<T>>,
    ) -> Result<T> {
        self.until(Instant::now() + self.budget(), work).await
    }

    /// Runs cluster work until `deadline`, then gives up with a timeout.
    pub(crate) async fn until<T>(
        &self,
        deadline: Instant,
        work: impl std::future::Future<Output = Result<T>>,
    ) -> Result<T> {
        tokio::time::timeout_at(deadline.into(), work)
            .await
            .unwrap_or(Err(Error::Timeout {
                node: "cluster".to_owned(),
                after: self.budget(),
            }))
    }

    /// The validity record of a session of `max_inactive` seconds accessed now. Its copies
    /// expire as `copies_expire` says, or (`None`) are renewed by the write that comes with it.
    pub(crate) fn validity_now(&self, max_inactive: i32, copies_expire: Option<u64>) -> Validity {
        let now = now_millis();
        let copies_expire = copies_expire.unwrap_or_else(|| match copy_lifetime(max_inactive) {
            0 => 0,
            lifetime => now / 1000 + lifetime,
        });
        Validity {
            last_accessed: now,
            max_inactive,
            copies_expire,
        }
    }

    /// Writes the session value to its node, or, when that node is down, to the next available
    /// one, with the session's validity record when given; returns the id the session now has.
    /// Releases `lock` in the same round trip when it lives on that node and is certainly still
    /// ours.
    async fn write_primary(
        &self,
        id: &SessionId,
        value: &[u8],
        exptime: u64,
        validity: Option<&Validity>,
        lock: &mut Option<SessionLock>,
    ) -> Result<SessionId> {
        let mut target = id.clone();
        for _ in 0..=self.cluster.nodes().len() {
            let node = match self.cluster.node(target.node()).filter(|n| n.is_up()) {
                Some(node) => node,
                None => self
                    .cluster
                    .next_available(target.node())
                    .ok_or(Error::Unavailable)?,
            };
            target = target.with_node(node.id());
            match self
                .write_on(&node, &target, value, exptime, validity, lock)
                .await
            {
                Ok(()) => return Ok(target),
                Err(e) if e.is_node_failure() => continue,
                Err(e) => {
                    if matches!(e, Error::TooLarge { .. }) {
                        bump(&self.stats.too_large);
                    }
                    return Err(e);
                }
            }
        }
        Err(Error::Unavailable)
    }

    /// Writes the session value under `id` on `node`, with its validity record when given, in
    /// one round trip; releases `lock` in it when it lives on that node and is certainly still
    /// ours (taking it out of the option).
    pub(crate) async fn write_on(
        &self,
        node: &Node,
        id: &SessionId,
        value: &[u8],
        exptime: u64,
        validity: Option<&Validity>,
        lock: &mut Option<SessionLock>,
    ) -> Result<()> {
        let record = validity.map(|v| self.validity_item(id, v));
        let key = self.key(KeyKind::Session, id);
        let mut commands = vec![Command::Set {
            key: &key,
            value,
            exptime,
        }];
        if let Some((key, value, exptime)) = &record {
            commands.push(Command::Set {
                key,
                value,
                exptime: *exptime,
            });
        }
        let release = self.releasable(lock, node);
        let lock_key = lock.as_ref().map(|l| l.key.clone()).unwrap_or_default();
        if let Some(release) = release {
            commands.push(self.release_command(&lock_key, release));
        }
        let sent = std::time::Instant::now();
        let answers = self.cluster.call(node, |c| c.pipeline(&commands)).await?;
        self.released_with(lock, release, sent, &answers);
        Ok(())
    }

    /// How `lock` can be given up in a round trip to `node`: when it lives there and is
    /// certainly still ours (deleted, or renewed and handed to the next request of this host).
    pub(crate) fn releasable(&self, lock: &Option<SessionLock>, node: &Node) -> Option<Release> {
        let expiration = self.config.lock_expiration;
        lock.as_ref()
            .filter(|l| l.node == node.id() && l.certainly_held(expiration))
            .map(|l| l.release(expiration))
    }

    /// The pipelined command that gives up the lock item `key` as `release` says.
    pub(crate) fn release_command<'a>(&self, key: &'a str, release: Release) -> Command<'a> {
        match release {
            Release::Delete => Command::Delete(key),
            Release::HandOver => Command::Touch {
                key,
                exptime: self.config.lock_expiration.as_secs(),
            },
        }
    }

    /// Takes `lock` out of the option once a pipeline sent at `sent` that ended with its
    /// release command answered `answers`.
    pub(crate) fn released_with(
        &self,
        lock: &mut Option<SessionLock>,
        release: Option<Release>,
        sent: std::time::Instant,
        answers: &[Answer],
    ) {
        if let Some(release) = release
            && let Some(held) = lock.take()
        {
            let renewed = answers.last() == Some(&Answer::Found(true));
            held.released(release, sent, renewed);
        }
    }

    /// Writes the backup copy on the node after the session's; a failure is counted, not fatal.
    pub(crate) async fn write_backup(&self, id: &SessionId, value: &[u8], exptime: u64) {
        let Some(node) = self.cluster.next_available(id.node()) else {
            bump(&self.stats.backups_skipped);
            return;
        };
        let key = self.key(KeyKind::Backup, id);
        match self
            .cluster
            .call(&node, |c| c.set(&key, value, exptime))
            .await
        {
            Ok(()) => bump(&self.stats.backups_written),
            Err(e) => {
                bump(&self.stats.backups_failed);
                tracing::warn!(node = node.id(), error = %e, "session backup failed");
            }
        }
    }

    /// Reads and verifies one copy of a session; corrupt values are counted and reported.
    pub(crate) async fn read_copy(
        &self,
        node: &Node,
        kind: KeyKind,
        id: &SessionId,
    ) -> Result<Option<(Vec<u8>, SessionData)>> {
        let key = self.key(kind, id);
        match self.cluster.call(node, |c| c.get(&key)).await? {
            None => Ok(None),
            Some(value) => {
                let session = self.decode_copy(node, id, &value)?;
                Ok(Some((value, session)))
            }
        }
    }

    /// Reads a non-sticky session's primary copy and its validity record in one round trip.
    /// A session whose record says it expired is not found; a missing or corrupt record leaves
    /// the copy to tell (memcached keeps it no longer than a quarter past its lifetime).
    async fn read_primary(
        &self,
        node: &Node,
        id: &SessionId,
    ) -> Result<Option<(Vec<u8>, SessionData, Option<Validity>)>> {
        if self.config.sticky {
            let found = self.read_copy(node, KeyKind::Session, id).await?;
            return Ok(found.map(|(value, session)| (value, session, None)));
        }
        let key = self.key(KeyKind::Session, id);
        let validity_key = self.key(KeyKind::Validity, id);
        let keys = [key.as_str(), validity_key.as_str()];
        let mut found = self.cluster.call(node, |c| c.get_multi(&keys)).await?;
        let validity = found
            .remove(&validity_key)
            .and_then(|value| self.decode_validity(node, id, &value));
        if validity.is_some_and(|v| v.expired(now_millis())) {
            return Ok(None);
        }
        let Some(value) = found.remove(&key) else {
            return Ok(None);
        };
        let session = self.decode_copy(node, id, &value)?;
        Ok(Some((value, session, validity)))
    }

    pub(crate) fn decode_copy(
        &self,
        node: &Node,
        id: &SessionId,
        value: &[u8],
    ) -> Result<SessionData> {
        self.codec.decode(id.random(), value).map_err(|e| {
            self.stats.count_corrupt(e.kind);
            tracing::warn!(node = node.id(), session = %id.redacted(), error = %e, "corrupt session value");
            e.into()
        })
    }

    /// A session's validity record as memcached stores it: key, encoded value, expiry field
    /// (memcached keeps it exactly the session's lifetime).
    pub(crate) fn validity_item(
        &self,
        id: &SessionId,
        validity: &Validity,
    ) -> (String, Vec<u8>, u64) {
        (
            self.key(KeyKind::Validity, id),
            validity.encode(&self.codec, id.random()),
            session_exptime(validity.max_inactive),
        )
    }

    /// Reads a session's validity record on `node`; `None` when there is none, or when it is
    /// corrupt (counted and reported).
    pub(crate) async fn read_validity(
        &self,
        node: &Node,
        id: &SessionId,
    ) -> Result<Option<Validity>> {
        let key = self.key(KeyKind::Validity, id);
        let record = self.cluster.call(node, |c| c.get(&key)).await?;
        Ok(record.and_then(|value| self.decode_validity(node, id, &value)))
    }

    /// A validity record's content; `None`, counted and reported, when it is corrupt.
    fn decode_validity(&self, node: &Node, id: &SessionId, value: &[u8]) -> Option<Validity> {
        Validity::decode(&self.codec, id.random(), value)
            .inspect_err(|e| {
                self.stats.count_corrupt(e.kind);
                tracing::warn!(node = node.id(), session = %id.redacted(), error = %e, "corrupt validity record");
            })
            .ok()
    }

    /// Loads a session. In non-sticky mode a session whose node is down, or whose copy there is
    /// missing or corrupt, is read from its backup copy; when its node is down it moves to the
    /// backup node, which becomes its primary, and [`Loaded::relocated`] carries the new id.
    pub async fn load(&self, id: &SessionId) -> Result<Option<Loaded>> {
        let started = Instant::now();
        let deadline = started + self.budget();
        let found = self.until(deadline, self.find_copy(id)).await;
        let Some(Found {
            mut loaded,
            validity,
            from_near,
            ..
        }) = self.or_near_copy(id, found, deadline).await?
        else {
            bump(&self.stats.sessions_missing);
            return Ok(None);
        };
        // Its copy exists, so the session is alive (its validity record, or memcached's expiry
        // of the copy, says so), and the request reading it is its access now.
        loaded.session.last_accessed = now_millis();
        if self.tracks_backups.load(Ordering::Relaxed) {
            let key = self.key(KeyKind::Session, loaded.relocated.as_ref().unwrap_or(id));
            if self.config.sticky {
                // Taken over: the next backup claims it with a newer version, so the host it
                // came from keeps it when that host expires its stale copy.
                self.tracker.taken_over(&key, loaded.session.version);
            } else if !from_near {
                // Handed back at the end of the request: written only if it changed (one served
                // from the near cache is always written: the cluster lacks it).
                let copies_expire = validity.map_or(0, |v| v.copies_expire);
                self.check_out(key, &loaded.session, copies_expire);
            }
        }
        bump(&self.stats.sessions_loaded);
        self.stats.load_time.record(started.elapsed());
        Ok(Some(loaded))
    }

    /// Finds a session's copy in the cluster, with its validity record when one was read
    /// alongside.
    pub(crate) async fn find_copy(&self, id: &SessionId) -> Result<Option<Found>> {
        let Some(primary) = self.session_node(id).await else {
            tracing::debug!(node = id.node(), "session id names an unknown node");
            return Ok(None);
        };
        let primary_failure = match self.read_primary(&primary, id).await {
            Ok(Some((value, session, validity))) => {
                let loaded = Loaded {
                    session,
                    relocated: None,
                };
                return Ok(Some(Found {
                    loaded,
                    validity,
                    value,
                    from_near: false,
                }));
            }
            Ok(None) => None,
            Err(e) => Some(e),
        };
        if self.config.sticky {
            return primary_failure.map_or(Ok(None), Err);
        }
        let Some(backup) = self.cluster.next_available(id.node()) else {
            return primary_failure.map_or(Ok(None), Err);
        };
        let (value, session) = match self.read_copy(&backup, KeyKind::Backup, id).await? {
            Some(found) => found,
            None => return primary_failure.map_or(Ok(None), Err),
        };
        bump(&self.stats.backups_loaded);
        let exptime = copies_exptime(session.max_inactive);
        if primary.is_up() {
            // The primary answered but lacked a good copy: restore it there.
            let key = self.key(KeyKind::Session, id);
            self.cluster
                .call(&primary, |c| c.set(&key, &value, exptime))
                .await
                .ok();
            let loaded = Loaded {
                session,
                relocated: None,
            };
            return Ok(Some(Found {
                loaded,
                validity: None,
                value,
                from_near: false,
            }));
        }
        // The primary is down: the backup node becomes the primary.
        let validity = self.validity_now(session.max_inactive, None);
        let moved = self
            .write_primary(
                &id.with_node(backup.id()),
                &value,
                exptime,
                Some(&validity),
                &mut None,
            )
            .await?;
        self.write_backup(&moved, &value, exptime).await;
        let old_backup = self.key(KeyKind::Backup, id);
        self.cluster
            .call(&backup, |c| c.delete(&old_backup))
            .await
            .ok();
        bump(&self.stats.sessions_relocated);
        tracing::info!(
            from = id.node(),
            to = moved.node(),
            "session relocated to its backup node"
        );
        let loaded = Loaded {
            session,
            relocated: Some(moved),
        };
        Ok(Some(Found {
            loaded,
            validity: Some(validity),
            value,
            from_near: false,
        }))
    }

    /// Renews the memcached expiry of a session without rewriting it (in non-sticky mode: its
    /// validity record, its copy and its backup copy); `false` when the session is not in
    /// memcached.
    pub async fn touch(&self, id: &SessionId, max_inactive: i32) -> Result<bool> {
        if !self.config.sticky {
            return self.renew(id, max_inactive, 0, &mut None).await;
        }
        let Some(node) = self.session_node(id).await else {
            return Ok(false);
        };
        let exptime = session_exptime(max_inactive);
        let key = self.key(KeyKind::Session, id);
        let found = self.cluster.call(&node, |c| c.touch(&key, exptime)).await?;
        if found {
            bump(&self.stats.sessions_touched);
        }
        Ok(found)
    }

    /// Deletes every copy of a session: the session, its backup, its validity record, its lock
    /// and its id reservation. Nodes that are down are skipped; the first failure is returned
    /// after every copy has been tried.
    pub async fn delete(self: &Arc<Self>, id: &SessionId) -> Result<()> {
        let key = self.key(KeyKind::Session, id);
        self.tracker.forget(&key);
        // In order with the session's writes: one already on its way cannot bring it back.
        let result = self.delete_in_order(id, key).await;
        if result.is_ok() {
            bump(&self.stats.sessions_deleted);
        }
        result
    }

    /// Deletes every copy of a session as [`SessionManager::delete`] does, with no ordering
    /// against its other writes; this host's copy goes too unless it was taken as another id.
    pub(crate) async fn delete_copies(&self, id: &SessionId) -> Result<()> {
        self.near.remove(id);
        let mut first_error = None;
        let mut note = |result: Result<bool>| {
            if let Err(e) = result {
                first_error.get_or_insert(e);
            }
        };
        let primary = self.cluster.node(id.node());
        // The record first, so that no host reads a live record without its session; the lock
        // last, so that no request it held back finds a copy left.
        if let Some(primary) = &primary {
            let key = self.key(KeyKind::Validity, id);
            if self.config.sticky {
                note(self.cluster.call(primary, |c| c.delete(&key)).await);
            } else {
                // Other hosts may keep copies for outages: the record says the session ended.
                let ended = Validity::ENDED.encode(&self.codec, id.random());
                let lifetime = copies_exptime(self.config.max_inactive_interval);
                let written = self
                    .cluster
                    .call(primary, |c| c.set(&key, &ended, lifetime));
                note(written.await.map(|()| true));
            }
            let key = self.key(KeyKind::Session, id);
            note(self.cluster.call(primary, |c| c.delete(&key)).await);
        }
        if let Some(backup) = self.cluster.next_available(id.node()) {
            let key = self.key(KeyKind::Backup, id);
            note(self.cluster.call(&backup, |c| c.delete(&key)).await);
        }
        if let Some(primary) = &primary {
            for kind in [KeyKind::Lock, KeyKind::IdReservation] {
                let key = self.key(kind, id);
                note(self.cluster.call(primary, |c| c.delete(&key)).await);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Takes the session's lock (see [`crate::locking`]): this host's turn at it, then an `add`
    /// of the lock key (expiring after `lockExpiration`) on the node that serves the session,
    /// retried with jittered exponential backoff until `lockMaxWait`, unless the previous
    /// holder on this host handed the lock over.
    pub async fn lock(&self, id: &SessionId) -> Result<SessionLock> {
        let started = Instant::now();
        let node = match self.session_node(id).await.filter(|n| n.is_up()) {
            Some(node) => node,
            None => self
                .cluster
                .next_available(id.node())
                .ok_or(Error::Unavailable)?,
        };
        let wanted = Wanted {
            id: id.clone(),
            node: node.id().to_owned(),
            key: self.key(KeyKind::Lock, id),
            expiration: self.config.lock_expiration,
            backoff: Backoff {
                initial: self.config.lock_backoff_initial,
                max: self.config.lock_backoff_max,
                max_wait: self.config.lock_max_wait,
            },
        };
        let key = wanted.key.clone();
        let exptime = self.config.lock_expiration.as_secs();
        let outcome = self
            .turns
            .acquire(wanted, |token| {
                let (node, key) = (&node, &key);
                async move {
                    let added = self
                        .cluster
                        .call(node, |c| c.add(key, token.as_bytes(), exptime))
                        .await?;
                    if added {
                        return Ok(true);
                    }
                    // An `add` retried after a broken connection may have been stored the first
                    // time: the lock is then ours already.
                    let holder = self.cluster.call(node, |c| c.get(key)).await?;
                    if holder.as_deref() == Some(token.as_bytes()) {
                        return Ok(true);
                    }
                    bump(&self.stats.lock_retries);
                    Ok(false)
                }
            })
            .await;
        self.stats.lock_wait_time.record(started.elapsed());
        match outcome {
            Ok(Acquired::Taken(lock)) => {
                bump(&self.stats.locks_acquired);
                Ok(lock)
            }
            Ok(Acquired::HandedOver(lock)) => {
                bump(&self.stats.locks_acquired);
                bump(&self.stats.locks_handed_over);
                Ok(lock)
            }
            Err(e) => {
                if matches!(e, Error::LockTimeout(_)) {
                    bump(&self.stats.lock_timeouts);
                    tracing::warn!(session = %id.redacted(), "session lock not acquired in time");
                }
                Err(e)
            }
        }
    }

    /// Releases a lock, unless it expired and another holder has it now (counted as lost). When
    /// another request of this host waits for it, the lock is renewed and handed over instead.
    pub async fn unlock(&self, lock: SessionLock) -> Result<()> {
        let node = self
            .cluster
            .node(&lock.node)
            .ok_or_else(|| Error::NodeDown(lock.node.clone()))?;
        let expiration = self.config.lock_expiration;
        if lock.certainly_held(expiration) {
            let release = lock.release(expiration);
            let sent = std::time::Instant::now();
            let done = match release {
                Release::Delete => self.cluster.call(&node, |c| c.delete(&lock.key)).await,
                Release::HandOver => {
                    let exptime = expiration.as_secs();
                    self.cluster
                        .call(&node, |c| c.touch(&lock.key, exptime))
                        .await
                }
            };
            lock.released(release, sent, *done.as_ref().unwrap_or(&false));
            done?;
            return Ok(());
        }
        match self.cluster.call(&node, |c| c.get(&lock.key)).await? {
            Some(value) if value == lock.token.as_bytes() => {
                self.cluster.call(&node, |c| c.delete(&lock.key)).await?;
            }
            _ => {
                bump(&self.stats.locks_lost);
                tracing::warn!(session = %lock.id.redacted(), "session lock expired before release");
            }
        }
        Ok(())
    }
}
