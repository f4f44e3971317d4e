//! Where a session's copies live in memcached and how they are read and written: the copy on
//! the session's node (its primary), the second copy on the next available node and the
//! validity record (non-sticky), and the budget within which one load or store must end.
//!
//! The modes decide when a session is read or written; this module decides where and how. The
//! near cache ([`near`]) wraps it, standing in when the cluster cannot serve.

pub mod attributes;
mod deletions;
pub mod near;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use attributes::{Base, Earlier, IndexTurns};

use crate::client::{Answer, CasOutcome, Command, Item, expiry};
use crate::cluster::{Cluster, Node};
use crate::config::{Config, UpdateGranularity};
use crate::envelope::{Codec, Index, Stored};
use crate::error::{Error, Result};
use crate::ids::SessionId;
use crate::keys::KeyKind;
use crate::locking::{Rider, SessionLock};
use crate::membership::Membership;
use crate::session::{SessionData, now_millis};
use crate::stats::{Stats, bump};
use crate::validity::{Validity, copies_exptime, copy_lifetime, session_exptime};

/// A session found by a load.
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
    /// Stored attribute by attribute: what memcached holds of it, for the next write.
    pub(crate) base: Option<Base>,
}

/// The first read of a non-sticky session's load, on its node: its copy and its validity
/// record ([`Copies::primary_read`]).
#[derive(Debug)]
pub(crate) struct PrimaryRead {
    id: SessionId,
    /// The copy's key, then the record's.
    keys: [String; 2],
    /// Read with `gets`: the session is stored attribute by attribute.
    with_cas: bool,
}

impl PrimaryRead {
    /// The keys, for [`PrimaryRead::command`].
    pub(crate) fn keys(&self) -> [&str; 2] {
        [&self.keys[0], &self.keys[1]]
    }

    /// The retrieval command of `keys` (this read's [`PrimaryRead::keys`]).
    pub(crate) fn command<'a>(&self, keys: &'a [&'a str; 2]) -> Command<'a> {
        if self.with_cas {
            Command::Gets(keys)
        } else {
            Command::Get(keys)
        }
    }

    /// What this read found, sent in another round trip's pipeline (behind the `add` that took
    /// the session's lock), for the session's load to take instead of reading again.
    pub(crate) fn primed(self, items: Vec<Item>) -> Primed {
        Primed { id: self.id, items }
    }
}

/// What a [`PrimaryRead`] found, sent ahead of the load that needs it; the load of the same
/// session takes it instead of reading again.
#[derive(Debug)]
pub(crate) struct Primed {
    id: SessionId,
    items: Vec<Item>,
}

impl Primed {
    /// Whether it was read for the session `id` (on the node `id` names).
    pub(crate) fn is_for(&self, id: &SessionId) -> bool {
        self.id.storage_part() == id.storage_part()
    }
}

/// A session on its way to memcached.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Outgoing<'a> {
    /// Its content.
    pub(crate) session: &'a SessionData,
    /// Its whole envelope: what is written, unless it is stored attribute by attribute.
    pub(crate) whole: &'a [u8],
    /// Stored attribute by attribute: what memcached holds of it (none: unknown, everything is
    /// written).
    pub(crate) base: Option<&'a Base>,
    /// Stored attribute by attribute: the version the attributes it changes get, one for all
    /// of its copies.
    pub(crate) version: u64,
}

impl<'a> Outgoing<'a> {
    /// The session `session`, encoded whole as `whole`, over `base`, with a new version.
    pub(crate) fn new(session: &'a SessionData, whole: &'a [u8], base: Option<&'a Base>) -> Self {
        Outgoing {
            session,
            whole,
            base,
            version: attributes::new_version(),
        }
    }
}

/// One copy of a session as read.
#[derive(Debug)]
struct Copy {
    session: SessionData,
    /// Its whole envelope (as stored, or made from what was stored attribute by attribute).
    whole: Vec<u8>,
    base: Option<Base>,
}

/// Where a write left a session.
#[derive(Debug)]
pub(crate) struct Written {
    /// The id it has now.
    pub(crate) id: SessionId,
    /// Stored attribute by attribute: what memcached holds of it now.
    pub(crate) base: Option<Base>,
}

/// Which copies a session has in memcached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Layout {
    /// Sticky: one copy, on the session's node; the host's memory holds the session.
    Single,
    /// Non-sticky: the copy on the session's node with its validity record, and a second copy
    /// on the next available node.
    Replicated,
}

/// How writing a copy over what the cluster holds ended ([`Copies::write_over`]).
pub(crate) enum WrittenOver {
    /// Written: the cluster holds the copy now.
    Written,
    /// The cluster holds a newer copy, or says the session ended: the copy is no longer wanted.
    Superseded,
    /// A request wrote the session between the read and the write: try again later.
    Raced,
}

/// The copies of one context's sessions in one memcached cluster.
#[derive(Debug)]
pub(crate) struct Copies {
    pub(crate) config: Arc<Config>,
    pub(crate) cluster: Arc<Cluster>,
    pub(crate) membership: Arc<Membership>,
    pub(crate) codec: Codec,
    pub(crate) stats: Arc<Stats>,
    layout: Layout,
    /// Stored attribute by attribute: this host's writers of each session's index.
    index_turns: IndexTurns,
    /// Stored attribute by attribute: deletions of versions no index names any more.
    deletions: deletions::Deletions,
}

impl Copies {
    pub(crate) fn new(
        config: Arc<Config>,
        cluster: Arc<Cluster>,
        membership: Arc<Membership>,
        codec: Codec,
        stats: Arc<Stats>,
    ) -> Self {
        let layout = if config.sticky {
            Layout::Single
        } else {
            Layout::Replicated
        };
        let deletions = deletions::Deletions::new(Arc::clone(&cluster), Arc::clone(&stats));
        Copies {
            deletions,
            config,
            cluster,
            membership,
            codec,
            stats,
            layout,
            index_turns: IndexTurns::default(),
        }
    }

    pub(crate) fn layout(&self) -> Layout {
        self.layout
    }

    /// Whether sessions are stored attribute by attribute (`updateGranularity="attribute"`).
    pub(crate) fn split(&self) -> bool {
        self.config.update_granularity == UpdateGranularity::Attribute
    }

    pub(crate) fn key(&self, kind: KeyKind, id: &SessionId) -> String {
        self.config.keys.key(kind, id)
    }

    /// How long one load or store of a request may wait on the cluster: one and a half
    /// operation timeouts, so that no request waits on more than one failing node (which is
    /// marked down by then); past that the near cache stands in.
    pub(crate) fn budget(&self) -> Duration {
        self.config.operation_timeout * 3 / 2
    }

    /// Seconds that memcached keeps what a session's expiry drops (its copies) beyond their
    /// lifetime, so that the sweep of expired sessions still reads them (0 without distributed
    /// events: see [`crate::events`]).
    pub(crate) fn grace(&self) -> u64 {
        self.config.event_grace()
    }

    /// Memcached's expiry field for a session's copies: [`copy_lifetime`], and the grace.
    pub(crate) fn copies_exptime(&self, max_inactive: i32) -> u64 {
        self.lifetime_exptime(copy_lifetime(max_inactive))
    }

    /// Memcached's expiry field for a copy that lives `lifetime` seconds (0: never expires),
    /// and the grace.
    fn lifetime_exptime(&self, lifetime: u64) -> u64 {
        match lifetime {
            0 => 0,
            secs => expiry(secs + self.grace()),
        }
    }

    /// Memcached's expiry field for the mark that a session ended ([`KeyKind::Ended`]): longer
    /// than any bucket that may still list the session is kept.
    pub(crate) fn ended_exptime(&self) -> u64 {
        let lifetime = copy_lifetime(self.config.max_inactive_interval.max(1));
        let width = self.config.event_sweep_interval.as_secs();
        expiry(2 * (lifetime + self.grace() + width))
    }

    /// Sticky, with distributed events: records until when the session under `id` may live
    /// (its record's `copies_expire`: `lifetime` seconds from now, when its copy written or
    /// renewed now would expire without the grace), so that the sweep tells an expired session
    /// from one its host still holds. Stored as its validity record, which sticky hosts never
    /// read; `max_inactive` is 0 when unknown. A failure leaves the sweep to the copy's last
    /// access.
    async fn mark_alive(&self, node: &Node, id: &SessionId, max_inactive: i32, lifetime: u64) {
        if self.grace() == 0 || lifetime == 0 {
            return;
        }
        let now = now_millis();
        let record = Validity {
            last_accessed: now,
            max_inactive,
            copies_expire: now / 1000 + lifetime,
        };
        let key = self.key(KeyKind::Validity, id);
        let value = record.encode(&self.codec, id.random());
        let exptime = self.lifetime_exptime(lifetime);
        let set = self.cluster.call(node, |c| c.set(&key, &value, exptime));
        if let Err(e) = set.await {
            tracing::debug!(session = %id.redacted(), error = %e, "session's lifetime not recorded");
        }
    }

    /// Runs cluster work until `deadline`, then gives up with a timeout. The work goes to the
    /// heap: it waits on the network, where an allocation costs nothing, and every future that
    /// awaits it (up to a host's call) stays small enough to move cheaply.
    pub(crate) fn until<'a, T>(
        &'a self,
        deadline: Instant,
        work: impl std::future::Future<Output = Result<T>> + 'a,
    ) -> impl std::future::Future<Output = Result<T>> + 'a {
        let work = Box::pin(work);
        async move {
            tokio::time::timeout_at(deadline.into(), work)
                .await
                .unwrap_or(Err(Error::Timeout {
                    node: "cluster".to_owned(),
                    after: self.budget(),
                }))
        }
    }

    /// Encodes a session for memcached; a session past `maxSessionSize` is counted.
    pub(crate) fn encode(&self, id: &SessionId, session: &SessionData) -> Result<Vec<u8>> {
        self.codec
            .encode(id.random(), session)
            .inspect_err(|_| bump(&self.stats.too_large))
    }

    /// The validity record of a session of `max_inactive` seconds accessed now. Its copies
    /// expire as `copies_expire` says, or (`None`) are renewed by the write that comes with it.
    pub(crate) fn validity_now(&self, max_inactive: i32, copies_expire: Option<u64>) -> Validity {
        let now = now_millis();
        let copies_expire = copies_expire.unwrap_or_else(|| match copy_lifetime(max_inactive) {
            0 => 0,
            lifetime => now / 1000 + lifetime + self.grace(),
        });
        Validity {
            last_accessed: now,
            max_inactive,
            copies_expire,
        }
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

    /// Writes a session where its copies live: on its node, or, when that node is down, on the
    /// next available one (non-sticky: with its validity record and its second copy). Releases
    /// `lock` in the round trip of the primary write when it can (taking it out of the option),
    /// which then comes after the second copy's: a request holding the lock writes both copies
    /// before the next holder writes either, so that the second copy never falls behind.
    pub(crate) async fn write(
        &self,
        id: &SessionId,
        out: Outgoing<'_>,
        lock: &mut Option<SessionLock>,
    ) -> Result<Written> {
        let max_inactive = out.session.max_inactive;
        if self.layout == Layout::Single {
            let lifetime = u64::try_from(max_inactive).unwrap_or(0);
            let exptime = match self.grace() {
                0 => session_exptime(max_inactive),
                _ => self.lifetime_exptime(lifetime),
            };
            let written = self.write_primary(id, out, exptime, None, lock).await?;
            if let Some(node) = self.cluster.node(written.id.node()) {
                self.mark_alive(&node, &written.id, max_inactive, lifetime)
                    .await;
            }
            return Ok(written);
        }
        let exptime = self.copies_exptime(max_inactive);
        let validity = self.validity_now(max_inactive, None);
        let written = if lock.is_some() {
            // The lock's release rides in the primary write: the second copy goes first, so
            // that no write of this request lands after the next holder's.
            self.write_second(id, out, exptime).await;
            self.write_primary(id, out, exptime, Some(&validity), lock)
                .await?
        } else {
            // Usually the session stays on its node: write both copies at once.
            let (primary, ()) = tokio::join!(
                self.write_primary(id, out, exptime, Some(&validity), lock),
                self.write_second(id, out, exptime)
            );
            primary?
        };
        if written.id != *id {
            let everything = Outgoing { base: None, ..out };
            self.write_second(&written.id, everything, exptime).await;
        }
        Ok(written)
    }

    /// Writes the session to its node, or, when that node is down, to the next available one,
    /// with the session's validity record when given; returns where it is now.
    async fn write_primary(
        &self,
        id: &SessionId,
        out: Outgoing<'_>,
        exptime: u64,
        validity: Option<&Validity>,
        lock: &mut Option<SessionLock>,
    ) -> Result<Written> {
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
            // What memcached holds under the requested id says nothing of another node.
            let out = if target == *id {
                out
            } else {
                Outgoing { base: None, ..out }
            };
            match self
                .write_on(&node, &target, out, exptime, validity, lock)
                .await
            {
                Ok(base) => return Ok(Written { id: target, base }),
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

    /// Writes the session under `id` on `node`, with its validity record when given, in one
    /// round trip, releasing `lock` in it when it can.
    async fn write_on(
        &self,
        node: &Node,
        id: &SessionId,
        out: Outgoing<'_>,
        exptime: u64,
        validity: Option<&Validity>,
        lock: &mut Option<SessionLock>,
    ) -> Result<Option<Base>> {
        if self.splits(out.session) {
            let split = self.write_split(node, KeyKind::Session, id, out, exptime, validity, lock);
            return Ok(Some(split.await?));
        }
        self.count_whole(out.session);
        let record = validity.map(|v| self.validity_item(id, v));
        let key = self.key(KeyKind::Session, id);
        let commands = vec![Command::Set {
            key: &key,
            value: out.whole,
            exptime,
        }];
        self.send_releasing(node, commands, record.as_ref(), lock)
            .await?;
        Ok(None)
    }

    /// Sends `commands` to `node` in one round trip, then `record` (a validity record: key,
    /// value, expiry) and, last, the release of `lock` when it lives there and is certainly still
    /// ours (the lock is then taken out of the option).
    pub(crate) async fn send_releasing<'a>(
        &self,
        node: &Node,
        commands: Vec<Command<'a>>,
        record: Option<&'a (String, Vec<u8>, u64)>,
        lock: &mut Option<SessionLock>,
    ) -> Result<Vec<Answer>> {
        let mut commands = commands;
        if let Some((key, value, exptime)) = record {
            commands.push(Command::Set {
                key,
                value,
                exptime: *exptime,
            });
        }
        let rider = Rider::on(lock, node, self.config.lock_expiration);
        if let Some(rider) = &rider {
            commands.push(rider.command());
        }
        let sent = std::time::Instant::now();
        let answers = self.cluster.call(node, |c| c.pipeline(&commands)).await?;
        if let Some(rider) = rider {
            rider.done(lock, sent, &answers);
        }
        Ok(answers)
    }

    /// Writes the second copy on the node after the session's (stored attribute by attribute:
    /// the attributes that changed, and the index, merged with what is there when the primary's
    /// is, see [`Copies::write_split`]); a failure is counted, not fatal.
    async fn write_second(&self, id: &SessionId, out: Outgoing<'_>, exptime: u64) {
        let Some(node) = self.cluster.next_available(id.node()) else {
            bump(&self.stats.second_copies_skipped);
            return;
        };
        let written = if self.splits(out.session) {
            self.write_split(
                &node,
                KeyKind::SecondCopy,
                id,
                out,
                exptime,
                None,
                &mut None,
            )
            .await
            .map(|_| ())
        } else {
            let key = self.key(KeyKind::SecondCopy, id);
            self.cluster
                .call(&node, |c| c.set(&key, out.whole, exptime))
                .await
        };
        match written {
            Ok(()) => bump(&self.stats.second_copies_written),
            Err(e) => {
                bump(&self.stats.second_copies_failed);
                tracing::warn!(node = node.id(), error = %e, "second copy of a session not written");
            }
        }
    }

    /// Writes a sticky session under its id on its own node, nowhere else (a session whose node
    /// is down moves at its next request). Stored attribute by attribute, only what differs from
    /// `out.base` is sent; returns what memcached holds then.
    pub(crate) async fn write_in_place(
        &self,
        id: &SessionId,
        out: Outgoing<'_>,
        exptime: u64,
    ) -> Result<Option<Base>> {
        let node = self.own_node(id)?;
        let base = if self.splits(out.session) {
            let mut no_lock = None;
            let split = self.write_split(
                &node,
                KeyKind::Session,
                id,
                out,
                exptime,
                None,
                &mut no_lock,
            );
            Some(split.await?)
        } else {
            self.count_whole(out.session);
            let key = self.key(KeyKind::Session, id);
            self.cluster
                .call(&node, |c| c.set(&key, out.whole, exptime))
                .await?;
            None
        };
        let max_inactive = out.session.max_inactive;
        self.mark_alive(&node, id, max_inactive, copy_lifetime(max_inactive))
            .await;
        Ok(base)
    }

    /// Renews the expiry of a sticky session's copy on its own node (stored attribute by
    /// attribute, with its attributes' items: their names from `base`, or else read); `false`
    /// when memcached no longer holds it.
    pub(crate) async fn touch_in_place(
        &self,
        id: &SessionId,
        exptime: u64,
        base: Option<&Base>,
    ) -> Result<bool> {
        let node = self.own_node(id)?;
        let key = self.key(KeyKind::Session, id);
        // The lifetime this renewal gives, without the grace (an absolute expiry field is
        // counted from now).
        let relative = match exptime.checked_sub(now_millis() / 1000) {
            Some(left) if exptime > 30 * 24 * 3600 => left,
            _ => exptime,
        };
        let lifetime = relative.saturating_sub(self.grace());
        if !self.split() {
            let found = self.cluster.call(&node, |c| c.touch(&key, exptime)).await?;
            if found {
                self.mark_alive(&node, id, 0, lifetime).await;
            }
            return Ok(found);
        }
        let versions = match base {
            Some(base) => owned(base.versions()),
            None => self.indexed_versions(&node, KeyKind::Session, id).await?,
        };
        let items = self.attribute_keys(KeyKind::Session, id, borrowed(&versions));
        let touches: Vec<Command<'_>> = std::iter::once(&key)
            .chain(&items)
            .map(|key| Command::Touch { key, exptime })
            .collect();
        let answers = self.cluster.call(&node, |c| c.pipeline(&touches)).await?;
        let found = answers.first() == Some(&Answer::Found(true));
        if found {
            self.mark_alive(&node, id, 0, lifetime).await;
        }
        Ok(found)
    }

    /// The node `id` names, known to this manager (down or not).
    fn own_node(&self, id: &SessionId) -> Result<Arc<Node>> {
        self.cluster
            .node(id.node())
            .ok_or_else(|| Error::NodeDown(id.node().to_owned()))
    }

    /// Reads one copy of a session (its copy `kind` on `node`); a corrupt value is counted and
    /// reported.
    async fn read_copy(&self, node: &Node, kind: KeyKind, id: &SessionId) -> Result<Option<Copy>> {
        let key = self.key(kind, id);
        match self.cluster.call(node, |c| c.get(&key)).await? {
            None => Ok(None),
            Some(value) => Ok(Some(self.open(node, kind, id, value, None, None).await?)),
        }
    }

    /// What a stored value of the session `id`, read from `node` as its copy `kind` with the
    /// CAS unique `cas`, holds: the whole session, or its index and then its attributes (those
    /// of `earlier` whose versions it names taken from there).
    async fn open(
        &self,
        node: &Node,
        kind: KeyKind,
        id: &SessionId,
        value: Vec<u8>,
        cas: Option<u64>,
        earlier: Option<Earlier<'_>>,
    ) -> Result<Copy> {
        let stored = self.codec.decode_stored(id.random(), &value).map_err(|e| {
            self.stats.count_corrupt(e.kind);
            tracing::warn!(node = node.id(), session = %id.redacted(), error = %e, "corrupt session value");
            Error::from(e)
        })?;
        Ok(match stored {
            Stored::Session(session) => Copy {
                base: self.split().then(|| Base::unknown(cas)),
                session,
                whole: value,
            },
            Stored::Index(index) => {
                let (session, base) = self.assemble(node, kind, id, index, cas, earlier).await?;
                Copy {
                    base: self.split().then_some(base),
                    whole: self.encode(id, &session)?,
                    session,
                }
            }
        })
    }

    /// What [`Copies::read`] reads first on a non-sticky session's node, in one command: the
    /// session's copy and its validity record, with `gets` when stored attribute by attribute (a
    /// write goes with `cas` over the index read here). A request taking the session's lock
    /// sends it behind the lock's `add` ([`PrimaryRead::primed`]). `None` in sticky mode.
    pub(crate) fn primary_read(&self, id: &SessionId) -> Option<PrimaryRead> {
        (self.layout == Layout::Replicated).then(|| PrimaryRead {
            id: id.clone(),
            keys: [
                self.key(KeyKind::Session, id),
                self.key(KeyKind::Validity, id),
            ],
            with_cas: self.split(),
        })
    }

    /// Reads a session's copy on its node (non-sticky: with its validity record, in one round
    /// trip, unless `primed` holds what that read found). A session whose record says it
    /// expired is not found; a missing or corrupt record leaves the copy to tell (memcached
    /// keeps it no longer than a quarter past its lifetime).
    async fn read_primary(
        &self,
        node: &Node,
        id: &SessionId,
        earlier: Option<Earlier<'_>>,
        primed: Option<Primed>,
    ) -> Result<Option<(Copy, Option<Validity>)>> {
        let Some(read) = self.primary_read(id) else {
            let found = self.read_copy(node, KeyKind::Session, id).await?;
            return Ok(found.map(|copy| (copy, None)));
        };
        let items = match primed.filter(|p| p.is_for(id)) {
            Some(primed) => {
                bump(&self.stats.loads_with_lock);
                primed.items
            }
            None => {
                let keys = read.keys();
                let command = [read.command(&keys)];
                let answer = self.cluster.call(node, |c| c.pipeline(&command));
                // The pipeline checked the answer's kind.
                match answer.await?.pop() {
                    Some(Answer::Items(items)) => items,
                    _ => Vec::new(),
                }
            }
        };
        let [key, validity_key] = read.keys;
        let mut found: HashMap<String, (Vec<u8>, Option<u64>)> = items
            .into_iter()
            .map(|item| (item.key, (item.data, item.cas)))
            .collect();
        let validity = found
            .remove(&validity_key)
            .and_then(|(value, _)| self.decode_validity(node, id, &value));
        if validity.is_some_and(|v| v.expired(now_millis())) {
            return Ok(None);
        }
        let Some((value, cas)) = found.remove(&key) else {
            return Ok(None);
        };
        let copy = self
            .open(node, KeyKind::Session, id, value, cas, earlier)
            .await?;
        Ok(Some((copy, validity)))
    }

    /// The version of the session's copy on its own node, if it holds a readable one.
    pub(crate) async fn stored_version(&self, id: &SessionId) -> Result<Option<u64>> {
        let Some(node) = self.cluster.node(id.node()) else {
            return Ok(None);
        };
        let found = self.read_copy(&node, KeyKind::Session, id).await?;
        Ok(found.map(|copy| copy.session.version))
    }

    /// The last stored data of a session, whatever its validity record says (the sweep of
    /// expired sessions reads it): its copy on its node, or else (non-sticky) its second copy.
    /// Moves and restores nothing. A node that fails is reported once no other copy is found.
    pub(crate) async fn read_last(&self, id: &SessionId) -> Result<Option<SessionData>> {
        let mut failure = None;
        if let Some(node) = self.cluster.node(id.node()).filter(|n| n.is_up()) {
            match self.read_copy(&node, KeyKind::Session, id).await {
                Ok(Some(copy)) => return Ok(Some(copy.session)),
                Ok(None) => {}
                Err(e) => failure = Some(e),
            }
        }
        let second = match self.layout {
            Layout::Replicated => self.cluster.next_available(id.node()),
            Layout::Single => None,
        };
        if let Some(second) = second {
            match self.read_copy(&second, KeyKind::SecondCopy, id).await {
                Ok(Some(copy)) => return Ok(Some(copy.session)),
                Ok(None) => {}
                Err(e) => {
                    failure.get_or_insert(e);
                }
            }
        }
        failure.map_or(Ok(None), Err)
    }

    /// Reads a session's validity record on `node`; `None` when there is none, or when it is
    /// corrupt (counted and reported).
    /// What `primed` found of it stands for the read when given.
    async fn read_validity(
        &self,
        node: &Node,
        id: &SessionId,
        primed: Option<Primed>,
    ) -> Result<Option<Validity>> {
        let key = self.key(KeyKind::Validity, id);
        let record = match primed.filter(|p| p.is_for(id)) {
            Some(primed) => primed
                .items
                .into_iter()
                .find(|i| i.key == key)
                .map(|i| i.data),
            None => self.cluster.call(node, |c| c.get(&key)).await?,
        };
        Ok(record.and_then(|value| self.decode_validity(node, id, &value)))
    }

    /// The session's validity record, if its node is up and answers with a valid one (a node
    /// that is down or fails now, or a corrupt record, tells nothing).
    pub(crate) async fn record(&self, id: &SessionId) -> Option<Validity> {
        let node = self.cluster.node(id.node()).filter(|n| n.is_up())?;
        self.read_validity(&node, id, None).await.ok().flatten()
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

    /// Reads a session's copy, with its validity record when one was read alongside. Non-sticky:
    /// a session whose node is down, or whose copy there is missing or corrupt, is read from its
    /// second copy; when its node is down it moves to the second copy's node, which becomes its
    /// primary, and [`Loaded::relocated`] carries the new id. Stored attribute by attribute,
    /// the attributes of `earlier` (this host's copy) whose versions the index names are not
    /// fetched; `primed` is what the first read on the session's node found, when a request
    /// sent it ahead (see [`Copies::primary_read`]).
    pub(crate) async fn read(
        &self,
        id: &SessionId,
        earlier: Option<Earlier<'_>>,
        primed: Option<Primed>,
    ) -> Result<Option<Found>> {
        let Some(primary) = self.membership.node(id.node()).await else {
            tracing::debug!(node = id.node(), "session id names an unknown node");
            return Ok(None);
        };
        let found = |copy: Copy, relocated, validity| Found {
            loaded: Loaded {
                session: copy.session,
                relocated,
            },
            validity,
            value: copy.whole,
            from_near: false,
            base: copy.base,
        };
        let primary_failure = match self.read_primary(&primary, id, earlier, primed).await {
            Ok(Some((copy, validity))) => return Ok(Some(found(copy, None, validity))),
            Ok(None) => None,
            Err(e) => Some(e),
        };
        if self.layout == Layout::Single {
            return primary_failure.map_or(Ok(None), Err);
        }
        let Some(second) = self.cluster.next_available(id.node()) else {
            return primary_failure.map_or(Ok(None), Err);
        };
        let Some(copy) = self.read_copy(&second, KeyKind::SecondCopy, id).await? else {
            return primary_failure.map_or(Ok(None), Err);
        };
        bump(&self.stats.second_copies_loaded);
        let exptime = self.copies_exptime(copy.session.max_inactive);
        let everything = Outgoing::new(&copy.session, &copy.whole, None);
        if primary.is_up() {
            // The primary answered but lacked a good copy: restore it there.
            let restored = self
                .write_on(&primary, id, everything, exptime, None, &mut None)
                .await;
            let base = restored.ok().flatten();
            return Ok(Some(found(Copy { base, ..copy }, None, None)));
        }
        // The primary is down: the second copy's node becomes the primary.
        let validity = self.validity_now(copy.session.max_inactive, None);
        let moved = self
            .write_primary(
                &id.with_node(second.id()),
                everything,
                exptime,
                Some(&validity),
                &mut None,
            )
            .await?;
        self.write_second(&moved.id, everything, exptime).await;
        let old_second = self.key(KeyKind::SecondCopy, id);
        self.cluster
            .call(&second, |c| c.delete(&old_second))
            .await
            .ok();
        bump(&self.stats.sessions_relocated);
        tracing::info!(
            from = id.node(),
            to = moved.id.node(),
            "session relocated to its second copy's node"
        );
        let copy = Copy {
            base: moved.base,
            ..copy
        };
        Ok(Some(found(copy, Some(moved.id), Some(validity))))
    }

    /// Renews a non-sticky session accessed now without rewriting it: its validity record, and
    /// its copies' expiry when the record `read` says it comes close; releases `lock` in the same
    /// round trip when it can (taking it out of the option), unless the copies are renewed too (a
    /// session found lost is then written under it). Stored attribute by attribute, the
    /// attributes' items are renewed with the copy (their names from `base`, or else read). A
    /// record renewed lately ([`Validity::renewed_lately`]) for the same lifetime, whose copies
    /// are not due, is left as it is: nothing is sent (the lock stays in the option). `false`
    /// when the session's node is down or memcached no longer holds the session.
    pub(crate) async fn renew(
        &self,
        id: &SessionId,
        max_inactive: i32,
        read: Option<&Validity>,
        base: Option<&Base>,
        lock: &mut Option<SessionLock>,
    ) -> Result<bool> {
        let Some(node) = self.cluster.node(id.node()).filter(|n| n.is_up()) else {
            return Ok(false);
        };
        let now_ms = now_millis();
        let now = now_ms / 1000;
        let copies_expire = read.map_or(0, |v| v.copies_expire);
        let mut validity = self.validity_now(max_inactive, Some(copies_expire));
        let renew_copies = validity.copies_due_within(now, self.grace());
        let lately = |r: &Validity| r.max_inactive == max_inactive && r.renewed_lately(now_ms);
        if !renew_copies && read.is_some_and(lately) {
            bump(&self.stats.renewals_skipped);
            return Ok(true);
        }
        if renew_copies {
            validity = self.validity_now(max_inactive, None);
        }
        let (validity_key, record, lifetime) = self.validity_item(id, &validity);
        let key = self.key(KeyKind::Session, id);
        let copies_ttl = self.copies_exptime(max_inactive);
        let versions = match (renew_copies && self.split(), base) {
            (false, _) => Vec::new(),
            (true, Some(base)) => owned(base.versions()),
            (true, None) => self
                .indexed_versions(&node, KeyKind::Session, id)
                .await
                .unwrap_or_default(),
        };
        let items = self.attribute_keys(KeyKind::Session, id, borrowed(&versions));
        let mut commands = vec![Command::Set {
            key: &validity_key,
            value: &record,
            exptime: lifetime,
        }];
        if renew_copies {
            commands.push(Command::Touch {
                key: &key,
                exptime: copies_ttl,
            });
            commands.extend(items.iter().map(|key| Command::Touch {
                key,
                exptime: copies_ttl,
            }));
        }
        let second_key = self.key(KeyKind::SecondCopy, id);
        let renew_second = async {
            let second = self
                .cluster
                .next_available(id.node())
                .filter(|_| renew_copies);
            if let Some(second) = second {
                // A missing second copy is written again by the next change. Its attributes
                // are those its own index names: concurrent writers may have left it other
                // versions than the primary's.
                let second_items = match self.split() {
                    true => {
                        let versions = self.indexed_versions(&second, KeyKind::SecondCopy, id);
                        let versions = versions.await.unwrap_or_default();
                        self.attribute_keys(KeyKind::SecondCopy, id, borrowed(&versions))
                    }
                    false => Vec::new(),
                };
                let touches: Vec<Command<'_>> = std::iter::once(&second_key)
                    .chain(&second_items)
                    .map(|key| Command::Touch {
                        key,
                        exptime: copies_ttl,
                    })
                    .collect();
                let touched = self.cluster.call(&second, |c| c.pipeline(&touches));
                touched.await.ok();
            }
        };
        // Renewing the copies may find the session lost, and the caller then writes it under
        // the lock: the lock rides only with the record alone.
        let mut kept = None;
        let rider = if renew_copies { &mut kept } else { lock };
        let (answers, ()) = tokio::join!(
            self.send_releasing(&node, commands, None, rider),
            renew_second
        );
        let answers = match answers {
            Ok(answers) => answers,
            Err(e) if e.is_node_failure() => return Ok(false),
            Err(e) => return Err(e),
        };
        if renew_copies && answers.get(1) == Some(&Answer::Found(false)) {
            // Memcached lost the session: its record must not outlive it.
            self.cluster
                .call(&node, |c| c.delete(&validity_key))
                .await
                .ok();
            return Ok(false);
        }
        bump(&self.stats.sessions_touched);
        Ok(true)
    }

    /// Renews a non-sticky session that a request carried but never used: its validity record
    /// is read for the session's lifetime (or taken from `primed`; lacking one, its copy tells),
    /// then renewed. `false` when memcached holds no live session under `id` (or its node is
    /// down).
    pub(crate) async fn renew_unread(
        &self,
        id: &SessionId,
        lock: &mut Option<SessionLock>,
        primed: Option<Primed>,
    ) -> Result<bool> {
        let Some(node) = self.membership.node(id.node()).await.filter(|n| n.is_up()) else {
            return Ok(false);
        };
        match self.read_validity(&node, id, primed).await? {
            Some(validity) if validity.expired(now_millis()) => Ok(false),
            Some(validity) => {
                let max_inactive = validity.max_inactive;
                self.renew(id, max_inactive, Some(&validity), None, lock)
                    .await
            }
            None => {
                // No record (lost with an evicted item, or the session predates non-sticky
                // mode): the session's copy tells; rare, so read it.
                match self.read(id, None, None).await? {
                    Some(found) if found.loaded.relocated.is_none() => {
                        let max_inactive = found.loaded.session.max_inactive;
                        self.renew(id, max_inactive, None, found.base.as_ref(), lock)
                            .await
                    }
                    _ => Ok(false),
                }
            }
        }
    }

    /// Renews the memcached expiry of a session without rewriting it (non-sticky: its validity
    /// record, its copy and its second copy); `false` when the session is not in memcached.
    pub(crate) async fn touch(&self, id: &SessionId, max_inactive: i32) -> Result<bool> {
        if self.layout == Layout::Replicated {
            return self.renew(id, max_inactive, None, None, &mut None).await;
        }
        let Some(node) = self.membership.node(id.node()).await else {
            return Ok(false);
        };
        let lifetime = u64::try_from(max_inactive).unwrap_or(0);
        let exptime = match self.grace() {
            0 => session_exptime(max_inactive),
            _ => self.lifetime_exptime(lifetime),
        };
        let key = self.key(KeyKind::Session, id);
        let found = self.cluster.call(&node, |c| c.touch(&key, exptime)).await?;
        if found {
            bump(&self.stats.sessions_touched);
            self.mark_alive(&node, id, max_inactive, lifetime).await;
        }
        Ok(found)
    }

    /// Deletes every copy of a session: the session, its second copy, its validity record
    /// (non-sticky: replaced by one saying the session ended, for hosts keeping copies), its
    /// lock and its id reservation. Nodes that are down are skipped; the first failure is
    /// returned after every copy has been tried.
    pub(crate) async fn delete(&self, id: &SessionId) -> Result<()> {
        let mut first_error = None;
        let mut note = |result: Result<bool>| {
            if let Err(e) = result {
                first_error.get_or_insert(e);
            }
        };
        let primary = self.cluster.node(id.node());
        // Stored attribute by attribute: the items its index names go after it.
        let versions = match &primary {
            Some(primary) if self.split() => self
                .indexed_versions(primary, KeyKind::Session, id)
                .await
                .unwrap_or_default(),
            _ => Vec::new(),
        };
        // With distributed events, the mark that the session ended comes first, so that no sweep
        // finds it gone unmarked (and counts its end undeliverable); then the record, so that no
        // host reads a live record without its session; the lock last, so that no request it
        // held back finds a copy left.
        if let (Some(primary), true) = (&primary, self.grace() > 0) {
            let key = self.key(KeyKind::Ended, id);
            let exptime = self.ended_exptime();
            let marked = self.cluster.call(primary, |c| c.set(&key, b"1", exptime));
            note(marked.await.map(|()| true));
        }
        if let Some(primary) = &primary {
            let key = self.key(KeyKind::Validity, id);
            if self.layout == Layout::Single {
                note(self.cluster.call(primary, |c| c.delete(&key)).await);
            } else {
                let ended = Validity::ENDED.encode(&self.codec, id.random());
                let lifetime = copies_exptime(self.config.max_inactive_interval);
                let written = self
                    .cluster
                    .call(primary, |c| c.set(&key, &ended, lifetime));
                note(written.await.map(|()| true));
            }
            let key = self.key(KeyKind::Session, id);
            note(self.cluster.call(primary, |c| c.delete(&key)).await);
            let items = self.attribute_keys(KeyKind::Session, id, borrowed(&versions));
            note(self.delete_all(primary, &items).await);
        }
        if let Some(second) = self.cluster.next_available(id.node()) {
            // Its own index names its attributes (it may hold other versions than the primary).
            let versions = match self.split() {
                true => {
                    self.indexed_versions(&second, KeyKind::SecondCopy, id)
                        .await
                }
                false => Ok(Vec::new()),
            }
            .unwrap_or_default();
            let key = self.key(KeyKind::SecondCopy, id);
            note(self.cluster.call(&second, |c| c.delete(&key)).await);
            let items = self.attribute_keys(KeyKind::SecondCopy, id, borrowed(&versions));
            note(self.delete_all(&second, &items).await);
        }
        if let Some(primary) = &primary {
            for kind in [KeyKind::Lock, KeyKind::IdReservation] {
                let key = self.key(kind, id);
                note(self.cluster.call(primary, |c| c.delete(&key)).await);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Deletes `keys` on `node` in one round trip (none: nothing is sent).
    async fn delete_all(&self, node: &Node, keys: &[String]) -> Result<bool> {
        let commands: Vec<Command<'_>> = keys.iter().map(|key| Command::Delete(key)).collect();
        self.cluster.call(node, |c| c.pipeline(&commands)).await?;
        Ok(true)
    }

    /// Writes `value` (the session `ours`, stored as `id`) to `node` over what the cluster
    /// holds: only over what was read (`add` where there was none, `cas` over an older copy),
    /// so that a request's write in between is never replaced. Stored attribute by attribute,
    /// a request's write in between is merged with instead (its attributes kept, this copy's
    /// values winning for the attributes both have). Non-sticky: not over a record saying the
    /// session ended, and with a new validity record and second copy.
    pub(crate) async fn write_over(
        &self,
        node: &Node,
        id: &SessionId,
        value: &[u8],
        ours: &SessionData,
    ) -> Result<WrittenOver> {
        if self.layout == Layout::Replicated {
            let record = self.read_validity(node, id, None).await?;
            if record.is_some_and(|r| r.expired(now_millis())) {
                return Ok(WrittenOver::Superseded);
            }
        }
        let key = self.key(KeyKind::Session, id);
        let token = match self.cluster.call(node, |c| c.gets(&key)).await? {
            Some((stored, token)) => match self.codec.decode_stored(id.random(), &stored) {
                Ok(
                    Stored::Session(theirs)
                    | Stored::Index(Index {
                        session: theirs, ..
                    }),
                ) if newer(&theirs, ours) => {
                    return Ok(WrittenOver::Superseded);
                }
                // Older, or corrupt: ours replaces it.
                _ => Some(token),
            },
            None => None,
        };
        let exptime = self.copies_exptime(ours.max_inactive);
        // Stored attribute by attribute, everything is written, and the index over what was
        // read: merged with whatever was written since (the second copy's too).
        let base = self.splits(ours).then(|| Base::unknown(token));
        let out = Outgoing::new(ours, value, base.as_ref());
        let stored = if base.is_some() {
            let mut no_lock = None;
            let split =
                self.write_split(node, KeyKind::Session, id, out, exptime, None, &mut no_lock);
            // Merged with whatever was written since: attributes written in between by
            // requests are kept, though this copy's values win.
            split.await.map(|_| true)?
        } else {
            self.count_whole(ours);
            match token {
                Some(token) => {
                    let outcome = self
                        .cluster
                        .call(node, |c| c.cas(&key, value, exptime, token))
                        .await?;
                    outcome == CasOutcome::Stored
                }
                None => {
                    self.cluster
                        .call(node, |c| c.add(&key, value, exptime))
                        .await?
                }
            }
        };
        if !stored {
            return Ok(WrittenOver::Raced);
        }
        if self.layout == Layout::Replicated {
            let validity = self.validity_now(ours.max_inactive, None);
            let (validity_key, record, lifetime) = self.validity_item(id, &validity);
            self.cluster
                .call(node, |c| c.set(&validity_key, &record, lifetime))
                .await?;
            self.write_second(id, out, exptime).await;
        }
        Ok(WrittenOver::Written)
    }
}

/// Attribute versions, owned.
fn owned<'a>(versions: impl Iterator<Item = (&'a str, u64)>) -> Vec<(String, u64)> {
    versions
        .map(|(name, version)| (name.to_owned(), version))
        .collect()
}

/// Attribute versions, borrowed.
fn borrowed(versions: &[(String, u64)]) -> impl Iterator<Item = (&str, u64)> {
    versions
        .iter()
        .map(|(name, version)| (name.as_str(), *version))
}

/// Whether `theirs` is newer than `ours`: accessed later, or as late with a newer version.
fn newer(theirs: &SessionData, ours: &SessionData) -> bool {
    (theirs.last_accessed, theirs.version) > (ours.last_accessed, ours.version)
}
