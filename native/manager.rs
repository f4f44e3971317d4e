//! The facade both faces call: a manager of one context's sessions. It builds the layers (the
//! cluster and its membership, the session copies wrapped by the near cache, the locks, id
//! reservations and the mode) and hands each call to the one that owns it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::broadcast::{Broadcast, SessionEvent};
use crate::cluster::Cluster;
use crate::config::{Config, parse_node_list};
use crate::copies::near::NearCached;
use crate::copies::{Copies, Loaded};
use crate::envelope::Codec;
use crate::error::Result;
use crate::events::{Events, ExpiredSession};
use crate::ids::reservation::Reservations;
use crate::ids::{OsRandom, RandomSource, SessionId};
use crate::locking::{Locks, SessionLock};
use crate::membership::{Membership, NodeList};
use crate::mode::{Mode, Modes, NonSticky, Sticky, with_mode};
use crate::request::{Ended, HostCopy, Lookup, Outcome, Request, RequestStart, parse_counted};
use crate::runtime;
use crate::session::SessionData;
use crate::stats::{Stats, bump};

/// Sessions of one context in one memcached cluster.
pub struct SessionManager {
    config: Arc<Config>,
    stats: Arc<Stats>,
    membership: Arc<Membership>,
    store: Arc<NearCached>,
    locks: Arc<Locks>,
    ids: Reservations,
    mode: Modes,
    events: Events,
    broadcast: Broadcast,
}

/// A request after [`SessionManager::open`].
enum Opened {
    /// Nothing more to do: ignored, or without a session.
    Done(Request),
    /// Its session's parsed id, for the mode to route.
    Session(Request, SessionId),
}

impl Drop for SessionManager {
    fn drop(&mut self) {
        self.membership.stop();
    }
}

impl std::fmt::Debug for SessionManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionManager")
            .field("copies", self.store.copies())
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
        let config = Arc::new(config);
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
        let cluster = Arc::new(Cluster::new(&config, Arc::clone(&stats))?);
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
        let copies = Copies::new(
            Arc::clone(&config),
            Arc::clone(&cluster),
            Arc::clone(&membership),
            codec,
            Arc::clone(&stats),
        );
        let store = NearCached::start(
            copies,
            config.near_cache_max_sessions,
            config.near_cache_max_bytes,
            (config.node_probe_interval * 5).max(Duration::from_secs(1)),
            Arc::clone(&stats),
        );
        let locks = Arc::new(Locks::new(
            Arc::clone(&config),
            Arc::clone(&cluster),
            Arc::clone(&membership),
            Arc::clone(&stats),
        ));
        let ids = Reservations::new(
            Arc::clone(&config),
            Arc::clone(&cluster),
            Arc::clone(&stats),
            random,
        );
        let events = Events::new(Arc::clone(&config), Arc::clone(&store), Arc::clone(&stats));
        let broadcast = Broadcast::new(Arc::clone(&config), Arc::clone(&store), Arc::clone(&stats));
        let mode = if config.sticky {
            Modes::Sticky(Sticky::new(
                Arc::clone(&config),
                Arc::clone(&store),
                Arc::clone(&stats),
            ))
        } else {
            Modes::NonSticky(NonSticky::new(
                Arc::clone(&config),
                Arc::clone(&store),
                Arc::clone(&locks),
                Arc::clone(&stats),
            ))
        };
        Ok(Arc::new(SessionManager {
            config,
            stats,
            membership,
            store,
            locks,
            ids,
            mode,
            events,
            broadcast,
        }))
    }

    /// The configuration in force.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The counters of this manager.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// The sticky mode's own operations (backups), when the manager is sticky.
    pub fn sticky(&self) -> Option<&Sticky> {
        match &self.mode {
            Modes::Sticky(sticky) => Some(sticky),
            Modes::NonSticky(_) => None,
        }
    }

    /// The non-sticky mode's own operations (locking modes, request ends by hand), when the
    /// manager is non-sticky.
    pub fn non_sticky(&self) -> Option<&NonSticky> {
        match &self.mode {
            Modes::NonSticky(non_sticky) => Some(non_sticky),
            Modes::Sticky(_) => None,
        }
    }

    /// Statistics and node states as `name value` lines.
    pub fn stats_text(&self) -> String {
        let (near_sessions, near_bytes) = self.store.size();
        format!(
            "{}log_records_dropped {}\nshared_list_version {}\nnear_cache_sessions {}\n\
             near_cache_bytes {}\n{}",
            self.stats.to_text(),
            crate::logging::dropped(),
            self.membership.version(),
            near_sessions,
            near_bytes,
            self.store.copies().cluster.describe()
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

    /// Parses an id from untrusted input, counting refusals.
    pub fn parse_id(&self, raw: &str) -> Result<SessionId> {
        parse_counted(raw, &self.stats)
    }

    /// A fresh session id on a node chosen for it, reserved cluster-wide (see
    /// [`crate::ids`]).
    pub async fn new_session_id(&self, route: Option<&str>) -> Result<SessionId> {
        self.ids.new_id(route).await
    }

    /// The id a session requested with `id` must have on this host (route `route`; non-sticky:
    /// the id's own route), or `None` when it is right as it is: see [`crate::mode`].
    pub async fn route_request(&self, id: &SessionId, route: Option<&str>) -> Option<SessionId> {
        let route = if self.config.sticky {
            route
        } else {
            id.route()
        };
        crate::mode::route(self.store.copies(), id, route).await
    }

    /// Declares that this host ends its requests through the core (or backs sticky sessions
    /// up), so loads record what they hand out.
    pub fn track_backups(&self) {
        with_mode!(&self.mode, m => m.track_backups());
    }

    /// A request starts. Requests matching `requestUriIgnorePattern` are marked ignored. The
    /// session id the request carries is parsed (once: a hostile one is counted once and the
    /// request has no session) and routed: sticky, to this host's route and a node that is up
    /// (Tomcat and memcached failover); non-sticky, the session lock is taken when
    /// `lockingMode` says so, and a session on a node that is down is moved now, while the new
    /// cookie can still be sent. Fails with [`crate::Error::LockTimeout`] only when the lock was
    /// not acquired in time and `lockFailure="refuse"`: the host refuses the request (503).
    pub async fn begin(&self, start: RequestStart<'_>) -> Result<Request> {
        let started = Instant::now();
        let (mut request, id) = match self.open(start) {
            Opened::Done(request) => return Ok(request),
            Opened::Session(request, id) => (request, id),
        };
        let begun = with_mode!(&self.mode, m => m.begin(&mut request, id, start.route).await);
        request.spent = started.elapsed();
        begun.inspect_err(|_| self.stats.request_time.record(request.spent))?;
        Ok(request)
    }

    /// [`SessionManager::begin`] when it needs no wait, as nearly every sticky request (its
    /// id's node is known here): it then costs no trip through the async runtime. A host calls
    /// it first, and `begin` when it answers `None`, as it does for every non-sticky request.
    pub fn begin_now(&self, start: RequestStart<'_>) -> Option<Result<Request>> {
        let Modes::Sticky(sticky) = &self.mode else {
            return None;
        };
        let started = Instant::now();
        let (mut request, id) = match self.open(start) {
            Opened::Done(request) => return Some(Ok(request)),
            Opened::Session(request, id) => (request, id),
        };
        sticky.begin_now(&mut request, id, start.route).ok()?;
        request.spent = started.elapsed();
        Some(Ok(request))
    }

    /// What `begin` does before the mode routes the session: ignored URIs, requests without a
    /// session id or with a malformed one are done.
    fn open(&self, start: RequestStart<'_>) -> Opened {
        self.track_backups();
        let mut request = Request::new(start.uri);
        if self.config.ignores_uri(start.uri) {
            request.ignored = true;
            return Opened::Done(request);
        }
        let Some(raw) = start.session_id else {
            return Opened::Done(request);
        };
        let Ok(id) = self.parse_id(raw) else {
            request.invalid_id = true;
            return Opened::Done(request);
        };
        Opened::Session(request, id)
    }

    /// The request uses the session `id` (as the host names it), of which the host holds
    /// `host`. Reads memcached unless the host's copy is current: held here, or (non-sticky)
    /// shared with another request of this host while this one holds no lock. Under the lock,
    /// a shared copy is read again (it was read before the lock was this request's). Each id
    /// is read at most once per request. A session found carries the number of its read
    /// ([`SessionData::read`]): the host keeps it with its copy and hands it back with the
    /// content derived from it, whichever of its requests ends last.
    pub async fn lookup(&self, request: &mut Request, id: &str, host: HostCopy) -> Lookup {
        let started = Instant::now();
        let lookup = with_mode!(&self.mode, m => m.lookup(request, id, host).await);
        request.spent += started.elapsed();
        lookup
    }

    /// A request ends. Sticky: a used session is backed up (written when it changed, its expiry
    /// renewed when due, in the background unless backups are synchronous). Non-sticky: a used
    /// session is written when it changed since the read it derives from (else only its
    /// validity record is renewed); a session the request carried but never used is renewed; then the id it had before the request
    /// changed it is retired; the lock goes in the round trip of the last write, or is handed to
    /// the next request of this host waiting for it. `lockingMode="auto"` learns from it.
    pub async fn end(&self, request: &mut Request, outcome: Outcome<'_>) -> Result<Ended> {
        let started = Instant::now();
        let ended = self.finish(request, outcome).await;
        self.spent(request, started);
        ended
    }

    /// [`SessionManager::end`], before its time is counted.
    async fn finish(&self, request: &mut Request, outcome: Outcome<'_>) -> Result<Ended> {
        if let Some(ended) = self.finished_now(request, &outcome) {
            return ended;
        }
        // With expiry events, the session is indexed when this host has not yet (once).
        let noticed = match &outcome {
            _ if !self.events.enabled() => None,
            Outcome::Used { id, session, .. } => Some((*id, session.max_inactive)),
            Outcome::Unchanged {
                id, max_inactive, ..
            } => Some((*id, *max_inactive)),
            Outcome::Unused | Outcome::NotStored => None,
        };
        let noticed = noticed.and_then(|(id, m)| Some((SessionId::parse(id)?, m)));
        let ended = with_mode!(&self.mode, m => m.end(request, outcome).await)?;
        if let (Some((id, max_inactive)), Ended::Done { moved, .. }) = (noticed, &ended) {
            let id = moved.as_ref().unwrap_or(&id);
            self.events.noticed(id, max_inactive).await;
        }
        Ok(ended)
    }

    /// [`SessionManager::end`] when it sends nothing, as a sticky request that did not change
    /// its session (without expiry events): it then costs no trip through the async runtime. A
    /// host calls it first, and `end` with the same outcome when it answers `None`.
    pub fn end_now(&self, request: &Request, outcome: &Outcome<'_>) -> Option<Result<Ended>> {
        let started = Instant::now();
        let ended = self.finished_now(request, outcome)?;
        self.spent(request, started);
        Some(ended)
    }

    /// Counts the time a request spent in the manager, its end started at `started`. Ignored
    /// requests never reach the manager.
    fn spent(&self, request: &Request, started: Instant) {
        if !request.ignored {
            self.stats
                .request_time
                .record(request.spent + started.elapsed());
        }
    }

    /// [`SessionManager::end_now`], before its time is counted.
    fn finished_now(&self, request: &Request, outcome: &Outcome<'_>) -> Option<Result<Ended>> {
        if request.ignored {
            return Some(Ok(Ended::Done {
                moved: None,
                backup: None,
            }));
        }
        let noticed = matches!(outcome, Outcome::Used { .. } | Outcome::Unchanged { .. });
        match &self.mode {
            Modes::Sticky(sticky) if !(noticed && self.events.enabled()) => {
                sticky.end_now(request, outcome)
            }
            _ => None,
        }
    }

    /// With `sessionEvents="expiry"`: sweeps the buckets of expiring sessions that are due
    /// and not swept yet, and returns the sessions that ended by expiry that this host must
    /// deliver (fire `sessionDestroyed` for, with their last stored data): each such session is
    /// returned once, by one manager of the context, however many poll. Hosts poll at least
    /// every `eventSweepInterval` (more often costs one command per node and poll). Without
    /// events, returns nothing and sends nothing. See [`crate::events`] for the guarantee and
    /// its limits.
    pub async fn expired_sessions(&self) -> Result<Vec<ExpiredSession>> {
        self.events.expired_sessions().await
    }

    /// [`SessionManager::expired_sessions`] one session at a time, for hosts that take them so
    /// (the C face): the next one this host must deliver, `None` when there is none now. A
    /// sweep's other sessions wait in this manager for the next calls.
    pub async fn next_expired_session(&self) -> Result<Option<ExpiredSession>> {
        self.events.next_expired().await
    }

    /// With `sessionEvents="broadcast"`: publishes session events that happened on this host
    /// (its listeners heard them) to every other manager of the context, in one round trip.
    /// Never fails: an event that cannot be published is counted
    /// (`broadcast_events_unpublished`) and logged. Without broadcast, sends nothing. See
    /// [`crate::broadcast`] for the guarantee and its limits.
    pub async fn publish(&self, events: &[SessionEvent]) {
        self.broadcast.publish(events).await;
    }

    /// With `sessionEvents="broadcast"`: the events the other managers of the context published
    /// since the previous call (since this manager started, the first time), each once, in
    /// order; one round trip per memcached node. Hosts call it every `broadcastPollInterval`
    /// and fire their listeners for each. Without broadcast, returns nothing and sends nothing.
    pub async fn broadcast_events(&self) -> Result<Vec<SessionEvent>> {
        self.broadcast.poll().await
    }

    /// A session ended on this host: invalidated by the application (every copy is deleted) or
    /// timed out, `max_inactive` seconds after its last access at `last_accessed` (epoch ms).
    /// Sticky: a timed-out session's copies are deleted unless another host wrote a newer
    /// version meanwhile (it took the session over and is still using it).
    pub async fn ended(&self, id: &SessionId, last_accessed: u64, max_inactive: i32) -> Result<()> {
        with_mode!(&self.mode, m => m.ended(id, last_accessed, max_inactive).await)
    }

    /// A session is about to end on this host (before the host fires its end listeners):
    /// whether the host announces the end (`sessionDestroyed`). With `sessionEvents="expiry"`,
    /// a session that timed out is marked ended on its node with `add`, so that its end is
    /// announced once in the cluster: `false` when it was marked already (a sweep delivered its
    /// expiry to some host, or another host ended it), or (sticky) when another host wrote a
    /// newer version of it (it took the session over: this host's copy timing out is not the
    /// session's end). An invalidation, and every end without events, is the host's to
    /// announce: `true`, nothing sent. Call [`SessionManager::ended`] after, either way.
    pub async fn ending(&self, id: &SessionId, last_accessed: u64, max_inactive: i32) -> bool {
        if !self.events.enabled() || !crate::mode::timed_out(last_accessed, max_inactive) {
            return true;
        }
        if let Some(sticky) = self.sticky() {
            if sticky.superseded(id).await {
                bump(&self.stats.expiry_events_ended_elsewhere);
                return false;
            }
        }
        self.events.claim_end(id).await
    }

    /// A session took a new id on this host. When its storage key changed (a new random part
    /// after login, or a new node), the copies under the old id are deleted; a new route alone
    /// keeps the key and everything stays.
    pub async fn id_changed(&self, old: &SessionId, new: &SessionId) -> Result<()> {
        with_mode!(&self.mode, m => m.id_changed(old, new).await)
    }

    /// Waits up to `timeout` for background backups to finish; returns how many sessions still
    /// have work in flight.
    pub fn flush(&self, timeout: Duration) -> usize {
        with_mode!(&self.mode, m => m.flush(timeout))
    }

    /// Writes a session where its copies live (non-sticky: with its validity record and its
    /// second copy), bumping its version. When the session's node is down the session moves to
    /// the next available node and its new id is returned; the host must use it from now on.
    pub async fn store(
        &self,
        id: &SessionId,
        session: &mut SessionData,
    ) -> Result<Option<SessionId>> {
        let moved = self.store.store(id, session, None, &mut None).await?;
        let current = moved.as_ref().unwrap_or(id);
        self.events.noticed(current, session.max_inactive).await;
        Ok(moved)
    }

    /// Loads a session. Non-sticky: a session whose node is down, or whose copy there is
    /// missing or corrupt, is read from its second copy; when its node is down it moves to the
    /// second copy's node, which becomes its primary, and [`Loaded::relocated`] carries the new
    /// id. When the cluster cannot serve, this host's near cache may.
    pub async fn load(&self, id: &SessionId) -> Result<Option<Loaded>> {
        with_mode!(&self.mode, m => m.load(id, None).await)
    }

    /// Renews the memcached expiry of a session without rewriting it (non-sticky: its validity
    /// record, its copy and its second copy); `false` when the session is not in memcached.
    pub async fn touch(&self, id: &SessionId, max_inactive: i32) -> Result<bool> {
        self.store.copies().touch(id, max_inactive).await
    }

    /// Deletes every copy of a session: the session, its second copy, its validity record, its
    /// lock and its id reservation. Nodes that are down are skipped; the first failure is
    /// returned after every copy has been tried.
    pub async fn delete(&self, id: &SessionId) -> Result<()> {
        with_mode!(&self.mode, m => m.delete(id).await)
    }

    /// Takes the session's lock (see [`crate::locking`]).
    pub async fn lock(&self, id: &SessionId) -> Result<SessionLock> {
        self.locks.lock(id).await
    }

    /// Releases a lock, unless it expired and another holder has it now (counted as lost). When
    /// another request of this host waits for it, the lock is renewed and handed over instead.
    pub async fn unlock(&self, lock: SessionLock) -> Result<()> {
        self.locks.unlock(lock).await
    }

    /// Takes the session's lock, then loads the session (`None` when memcached does not hold
    /// it; the lock is held either way, so the request may create it). When the session moved to
    /// another node, [`Loaded::relocated`] carries its new id.
    pub async fn load_locked(&self, id: &SessionId) -> Result<(Option<Loaded>, SessionLock)> {
        let lock = self.locks.lock(id).await?;
        match self.load(id).await {
            Ok(loaded) => Ok((loaded, lock)),
            Err(e) => {
                // Loading failed: nobody else must wait for this request's lock.
                self.locks.unlock(lock).await.ok();
                Err(e)
            }
        }
    }

    /// Stores the session (see [`SessionManager::store`]) and releases the lock taken by
    /// [`SessionManager::load_locked`], in the same round trip as the write where it can. The
    /// lock is released whatever the store's outcome; the store's result is returned.
    pub async fn store_and_unlock(
        &self,
        id: &SessionId,
        session: &mut SessionData,
        lock: SessionLock,
    ) -> Result<Option<SessionId>> {
        let mut lock = Some(lock);
        let stored = self.store.store(id, session, None, &mut lock).await;
        let released = match lock {
            Some(lock) => self.locks.unlock(lock).await,
            None => Ok(()),
        };
        let moved = stored?;
        released?;
        Ok(moved)
    }
}
