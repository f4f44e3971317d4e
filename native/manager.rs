//! The session operations both faces offer: new id, store, load, touch, delete, lock, unlock,
//! statistics. All routing, failover and locking decisions are made here.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use crate::backup::{Fingerprint, Queue, Tracker};
use crate::client::expiry;
use crate::cluster::{Cluster, Node};
use crate::config::{Config, KeySource, parse_node_list};
use crate::envelope::Codec;
use crate::error::{Error, Result};
use crate::ids::{OsRandom, RandomSource, SessionId, upper_hex};
use crate::keys::KeyKind;
use crate::locking::{self, Backoff, SessionLock};
use crate::session::{SessionData, now_millis};
use crate::stats::{Stats, bump};
use crate::sticky::BackupJob;

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

/// Sessions of one context in one memcached cluster.
pub struct SessionManager {
    pub(crate) config: Config,
    pub(crate) cluster: Cluster,
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
    pub(crate) queue: Queue<BackupJob>,
}

impl std::fmt::Debug for SessionManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionManager")
            .field("cluster", &self.cluster)
            .field("codec", &self.codec)
            .finish_non_exhaustive()
    }
}

fn read_key(source: &KeySource) -> Result<Vec<u8>> {
    let (value, key) = match source {
        KeySource::File(path) => (
            format!("file:{path}"),
            std::fs::read(path).map_err(|e| {
                Error::config("integrityKey", &format!("file:{path}"), e.to_string())
            })?,
        ),
        KeySource::Env(var) => (
            format!("env:{var}"),
            std::env::var(var)
                .map_err(|e| Error::config("integrityKey", &format!("env:{var}"), e.to_string()))?
                .into_bytes(),
        ),
    };
    let key = key.trim_ascii_end().to_vec();
    if key.len() < 16 {
        return Err(Error::config(
            "integrityKey",
            &value,
            "the key must be at least 16 bytes",
        ));
    }
    Ok(key)
}

/// Lifetime in seconds as memcached's expiry field.
fn session_expiry(max_inactive: i32) -> u64 {
    expiry(u64::try_from(max_inactive).unwrap_or(0))
}

impl SessionManager {
    /// A manager drawing ids from the operating system's CSPRNG.
    pub fn new(config: Config) -> Result<Self> {
        Self::with_random_source(config, Box::new(OsRandom))
    }

    /// A manager drawing the random part of ids from `random` (tests force collisions with it).
    pub fn with_random_source(config: Config, random: Box<dyn RandomSource>) -> Result<Self> {
        let key = config.integrity_key.as_ref().map(read_key).transpose()?;
        if key.is_none() {
            tracing::warn!(
                "no integrityKey: values in memcached carry a checksum only, so anyone who can \
                 write to memcached can forge session content; configure integrityKey"
            );
        }
        let codec = Codec::new(
            key.as_deref(),
            config.max_session_size,
            config.keys.prefix(),
        );
        let stats = Arc::new(Stats::default());
        let cluster = Cluster::new(&config, Arc::clone(&stats));
        Ok(SessionManager {
            queue: Queue::new(config.backup_queue_size),
            config,
            cluster,
            codec,
            random,
            stats,
            tracker: Tracker::default(),
            tracks_backups: AtomicBool::new(false),
            read_only_uris: parking_lot::Mutex::default(),
        })
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
        format!(
            "{}log_records_dropped {}\n{}",
            self.stats.to_text(),
            crate::logging::dropped(),
            self.cluster.describe()
        )
    }

    /// Replaces the memcached node list while the manager runs (`memcachedNodes` syntax). The
    /// failover nodes stay failover nodes and must remain in the list. Nodes that stay keep
    /// their connections; sessions on removed nodes move as if their node had failed.
    pub fn set_nodes(&self, memcached_nodes: &str) -> Result<()> {
        let failover: Vec<String> = self
            .cluster
            .nodes()
            .iter()
            .filter(|n| n.is_failover())
            .map(|n| n.id().to_owned())
            .collect();
        let failover = (!failover.is_empty()).then(|| failover.join(" "));
        let nodes = parse_node_list(memcached_nodes, failover.as_deref())?;
        self.cluster.replace(&nodes);
        tracing::info!(nodes = memcached_nodes, "memcached node list replaced");
        Ok(())
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
        let lifetime = session_expiry(self.config.max_inactive_interval);
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

    /// Writes a session to its node, plus the backup copy on the next node in non-sticky mode.
    /// Bumps the session's version. When the session's node is down the session moves to the
    /// next available node and its new id is returned; the host must use it from now on.
    pub async fn store(
        &self,
        id: &SessionId,
        session: &mut SessionData,
    ) -> Result<Option<SessionId>> {
        let started = Instant::now();
        session.version += 1;
        let value = self.codec.encode(id.random(), session).inspect_err(|_| {
            bump(&self.stats.too_large);
        })?;
        let exptime = session_expiry(session.max_inactive);
        let target = if self.config.sticky {
            self.write_primary(id, &value, exptime).await?
        } else {
            // Usually the session stays on its node: write both copies at once.
            let (primary, ()) = tokio::join!(
                self.write_primary(id, &value, exptime),
                self.write_backup(id, &value, exptime)
            );
            let target = primary?;
            if target != *id {
                self.write_backup(&target, &value, exptime).await;
            }
            target
        };
        bump(&self.stats.sessions_stored);
        self.stats.store_time.record(started.elapsed());
        if target == *id {
            return Ok(None);
        }
        bump(&self.stats.sessions_relocated);
        tracing::info!(from = id.node(), to = target.node(), "session relocated");
        self.delete_copies(id).await.ok();
        Ok(Some(target))
    }

    /// Writes the session value to its node, or, when that node is down, to the next available
    /// one; returns the id the session now has.
    async fn write_primary(&self, id: &SessionId, value: &[u8], exptime: u64) -> Result<SessionId> {
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
            let key = self.key(KeyKind::Session, &target);
            match self
                .cluster
                .call(&node, |c| c.set(&key, value, exptime))
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

    /// Writes the backup copy on the node after the session's; a failure is counted, not fatal.
    async fn write_backup(&self, id: &SessionId, value: &[u8], exptime: u64) {
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
        let result = match self.cluster.call(node, |c| c.get(&key)).await {
            Ok(None) => return Ok(None),
            Ok(Some(value)) => self
                .codec
                .decode(id.random(), &value)
                .map(|session| Some((value, session))),
            Err(e) => Err(e),
        };
        if let Err(e @ Error::Corrupt(_)) = &result {
            bump(&self.stats.corrupt_values);
            tracing::warn!(node = node.id(), session = %id.redacted(), error = %e, "corrupt session value");
        }
        result
    }

    /// Loads a session. In non-sticky mode a session whose node is down, or whose copy there is
    /// missing or corrupt, is read from its backup copy; when its node is down it moves to the
    /// backup node, which becomes its primary, and [`Loaded::relocated`] carries the new id.
    pub async fn load(&self, id: &SessionId) -> Result<Option<Loaded>> {
        let started = Instant::now();
        let result = self.load_copies(id).await;
        match &result {
            Ok(Some(loaded)) => {
                if self.tracks_backups.load(Ordering::Relaxed) {
                    let key = self.key(KeyKind::Session, loaded.relocated.as_ref().unwrap_or(id));
                    if self.config.sticky {
                        // Taken over: the next backup claims it with a newer version, so the
                        // host it came from keeps it when that host expires its stale copy.
                        self.tracker.taken_over(&key, loaded.session.version);
                    } else {
                        // Handed back at the end of the request: written only if it changed.
                        let fingerprint = Fingerprint::of(&loaded.session);
                        self.tracker
                            .loaded(&key, fingerprint, loaded.session.version);
                    }
                }
                bump(&self.stats.sessions_loaded);
                self.stats.load_time.record(started.elapsed());
            }
            Ok(None) => bump(&self.stats.sessions_missing),
            Err(_) => {}
        }
        result
    }

    async fn load_copies(&self, id: &SessionId) -> Result<Option<Loaded>> {
        let mut found = self.find_copy(id).await?;
        if let Some(loaded) = &mut found {
            // Its copy exists, so the session is alive: memcached keeps it no longer than its
            // lifetime past its last renewal (a quarter more in sticky mode), and its stored last
            // access changes only with its content. The request reading it is its access now.
            loaded.session.last_accessed = now_millis();
        }
        Ok(found)
    }

    async fn find_copy(&self, id: &SessionId) -> Result<Option<Loaded>> {
        let Some(primary) = self.cluster.node(id.node()) else {
            tracing::debug!(node = id.node(), "session id names an unknown node");
            return Ok(None);
        };
        let primary_failure = match self.read_copy(&primary, KeyKind::Session, id).await {
            Ok(Some((_, session))) => {
                return Ok(Some(Loaded {
                    session,
                    relocated: None,
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
        let exptime = session_expiry(session.max_inactive);
        if primary.is_up() {
            // The primary answered but lacked a good copy: restore it there.
            let key = self.key(KeyKind::Session, id);
            self.cluster
                .call(&primary, |c| c.set(&key, &value, exptime))
                .await
                .ok();
            return Ok(Some(Loaded {
                session,
                relocated: None,
            }));
        }
        // The primary is down: the backup node becomes the primary.
        let moved = id.with_node(backup.id());
        let key = self.key(KeyKind::Session, &moved);
        self.cluster
            .call(&backup, |c| c.set(&key, &value, exptime))
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
            to = backup.id(),
            "session relocated to its backup node"
        );
        Ok(Some(Loaded {
            session,
            relocated: Some(moved),
        }))
    }

    /// Renews the memcached expiry of a session (and of its backup copy in non-sticky mode)
    /// without rewriting it; `false` when the session is not in memcached.
    pub async fn touch(&self, id: &SessionId, max_inactive: i32) -> Result<bool> {
        let Some(node) = self.cluster.node(id.node()) else {
            return Ok(false);
        };
        let exptime = session_expiry(max_inactive);
        let key = self.key(KeyKind::Session, id);
        let found = self.cluster.call(&node, |c| c.touch(&key, exptime)).await?;
        if found && !self.config.sticky {
            if let Some(backup) = self.cluster.next_available(id.node()) {
                let key = self.key(KeyKind::Backup, id);
                self.cluster
                    .call(&backup, |c| c.touch(&key, exptime))
                    .await
                    .ok();
            }
        }
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

    pub(crate) async fn delete_copies(&self, id: &SessionId) -> Result<()> {
        let mut first_error = None;
        let mut remove = |result: Result<bool>| {
            if let Err(e) = result {
                first_error.get_or_insert(e);
            }
        };
        if let Some(primary) = self.cluster.node(id.node()) {
            for kind in [
                KeyKind::Session,
                KeyKind::Validity,
                KeyKind::Lock,
                KeyKind::IdReservation,
            ] {
                let key = self.key(kind, id);
                remove(self.cluster.call(&primary, |c| c.delete(&key)).await);
            }
        }
        if let Some(backup) = self.cluster.next_available(id.node()) {
            let key = self.key(KeyKind::Backup, id);
            remove(self.cluster.call(&backup, |c| c.delete(&key)).await);
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Takes the session's lock: an `add` of the lock key (expiring after `lockExpiration`) on
    /// the node that serves the session, retried with exponential backoff until `lockMaxWait`.
    pub async fn lock(&self, id: &SessionId) -> Result<SessionLock> {
        let started = Instant::now();
        let node = match self.cluster.node(id.node()).filter(|n| n.is_up()) {
            Some(node) => node,
            None => self
                .cluster
                .next_available(id.node())
                .ok_or(Error::Unavailable)?,
        };
        let mut token = [0u8; 16];
        getrandom::fill(&mut token).expect("the operating system's random generator failed");
        let lock = SessionLock {
            id: id.clone(),
            node: node.id().to_owned(),
            key: self.key(KeyKind::Lock, id),
            token: upper_hex(&token),
        };
        let backoff = Backoff {
            initial: self.config.lock_backoff_initial,
            max: self.config.lock_backoff_max,
            max_wait: self.config.lock_max_wait,
        };
        let exptime = self.config.lock_expiration.as_secs();
        let outcome = locking::acquire(backoff, || async {
            let added = self
                .cluster
                .call(&node, |c| c.add(&lock.key, lock.token.as_bytes(), exptime))
                .await?;
            if added {
                return Ok(true);
            }
            // An `add` retried after a broken connection may have been stored the first time:
            // the lock is then ours already.
            let holder = self.cluster.call(&node, |c| c.get(&lock.key)).await?;
            if holder.as_deref() == Some(lock.token.as_bytes()) {
                return Ok(true);
            }
            bump(&self.stats.lock_retries);
            Ok(false)
        })
        .await;
        self.stats.lock_wait_time.record(started.elapsed());
        match outcome {
            Ok(()) => {
                bump(&self.stats.locks_acquired);
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

    /// Releases a lock, unless it expired and another holder has it now (counted as lost).
    pub async fn unlock(&self, lock: SessionLock) -> Result<()> {
        let node = self
            .cluster
            .node(&lock.node)
            .ok_or_else(|| Error::NodeDown(lock.node.clone()))?;
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
