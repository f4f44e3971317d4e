//! Sessions stored attribute by attribute (`updateGranularity="attribute"`).
//!
//! A session's own item holds its metadata and the names of its attributes (its index, see
//! [`Index`]); each attribute is an item of its own beside it, its tag binding the session and
//! the name. A changed session writes only the attributes whose value changed, deletes those it
//! removed, and writes its index, in one pipelined round trip (a second copy's index, merged, one
//! more); a read fetches the index, then its attributes in one multi-get.
//!
//! Consistency: per attribute, the last writer wins. A writer that read the index writes it with
//! `cas` over what it read; when another writer came in between, the two are merged (the names
//! both have, plus those this writer added, minus those it removed) and written again, so
//! concurrent requests that change different attributes never lose each other's change, locked or
//! not. The second copy's index (non-sticky) has the same writers and is merged the same way: it
//! is read with `gets` in the round trip that writes the attributes' items, then written with
//! `cas` over what was there. An attribute item the index does not name is never read (left over
//! by a removal or by a crash between two writes) and expires on its own; an item the index names
//! that memcached lost is missing from the session, counted.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use parking_lot::Mutex;

use xxhash_rust::xxh3::xxh3_64;

use super::Copies;
use crate::client::{Answer, Command};
use crate::cluster::Node;
use crate::envelope::{Index, Stored};
use crate::error::{Error, Result};
use crate::ids::SessionId;
use crate::keys::KeyKind;
use crate::locking::SessionLock;
use crate::session::SessionData;
use crate::stats::bump;
use crate::validity::Validity;

/// Most attributes of a session written attribute by attribute; a session with more is written
/// whole, as with `updateGranularity="session"`. Every read of a session stored attribute by
/// attribute fetches each of its attributes' items, and every renewal touches each: this bounds
/// what one request costs memcached (one multi-get of at most this many keys, about 80 bytes
/// each).
pub(crate) const MAX_SPLIT_ATTRIBUTES: usize = 1024;

/// Most attempts at merging an index with concurrent writers' before giving up.
const MAX_MERGES: u32 = 32;
/// The longest pause between two attempts at merging an index.
const MAX_MERGE_PAUSE: std::time::Duration = std::time::Duration::from_millis(16);

/// What a writer knows memcached holds of a session stored attribute by attribute: a hash of
/// each attribute's value, and the CAS unique of the index it read (none: the index is written
/// over, as a whole-session write would).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Base {
    hashes: BTreeMap<String, u64>,
    cas: Option<u64>,
}

impl Base {
    /// What memcached holds once `session` was read, its index with the CAS unique `cas`, or
    /// written.
    pub(crate) fn of(session: &SessionData, cas: Option<u64>) -> Self {
        Base {
            hashes: session
                .attributes
                .iter()
                .map(|(name, value)| (name.clone(), xxh3_64(value)))
                .collect(),
            cas,
        }
    }

    /// What memcached holds unknown: everything is written, and the index over whatever is
    /// there (`cas`, when given, over the whole session read).
    pub(crate) fn unknown(cas: Option<u64>) -> Self {
        Base {
            hashes: BTreeMap::new(),
            cas,
        }
    }

    /// The same attributes, with the index written over rather than with `cas` (a sticky
    /// backup, which has one writer: the Tomcat holding the session).
    pub(crate) fn written_over(&self) -> Self {
        Base {
            hashes: self.hashes.clone(),
            cas: None,
        }
    }

    /// The names of the attributes memcached holds.
    pub(crate) fn names(&self) -> impl Iterator<Item = &str> {
        self.hashes.keys().map(String::as_str)
    }
}

/// An index as read with `gets`: its stored value and CAS unique (none: no index there).
type IndexRead = Option<(Vec<u8>, u64)>;

/// This host's writers of sessions' indexes, one at a time per session: requests of one session
/// on one host then never race each other for its index, and merges are only ever needed with
/// other hosts' writers.
#[derive(Debug, Default)]
pub(crate) struct IndexTurns {
    slots: Arc<Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>>,
}

/// A writer's turn at a session's index; the next writer of this host goes when it drops.
struct IndexTurn {
    key: String,
    guard: Option<tokio::sync::OwnedMutexGuard<()>>,
    slots: Arc<Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>>,
}

impl IndexTurns {
    async fn take(&self, key: &str) -> IndexTurn {
        let slot = Arc::clone(self.slots.lock().entry(key.to_owned()).or_default());
        IndexTurn {
            key: key.to_owned(),
            guard: Some(slot.lock_owned().await),
            slots: Arc::clone(&self.slots),
        }
    }
}

impl Drop for IndexTurn {
    /// Forgets the session's queue once nobody holds or waits for it.
    fn drop(&mut self) {
        drop(self.guard.take());
        let mut slots = self.slots.lock();
        if slots
            .get(&self.key)
            .is_some_and(|slot| Arc::strong_count(slot) == 1)
        {
            slots.remove(&self.key);
        }
    }
}

impl Copies {
    /// Whether `session` is written attribute by attribute: sessions are stored so
    /// (`updateGranularity="attribute"`), and it has at most [`MAX_SPLIT_ATTRIBUTES`]
    /// attributes.
    pub(crate) fn splits(&self, session: &SessionData) -> bool {
        self.split() && session.attributes.len() <= MAX_SPLIT_ATTRIBUTES
    }

    /// Counts a session stored attribute by attribute that is written whole for its number of
    /// attributes.
    pub(crate) fn count_whole(&self, session: &SessionData) {
        if self.split() {
            bump(&self.stats.attribute_sessions_written_whole);
            tracing::debug!(
                attributes = session.attributes.len(),
                "session with more than {MAX_SPLIT_ATTRIBUTES} attributes written whole"
            );
        }
    }

    /// The keys of the items of the attributes `names` of the session `id`, beside its copy
    /// `kind` ([`KeyKind::Session`] or [`KeyKind::SecondCopy`]).
    pub(crate) fn attribute_keys<'n>(
        &self,
        kind: KeyKind,
        id: &SessionId,
        names: impl IntoIterator<Item = &'n str>,
    ) -> Vec<String> {
        names
            .into_iter()
            .map(|name| self.config.keys.attribute_key(kind, id, name))
            .collect()
    }

    /// Writes the session `id` attribute by attribute as its copy `kind` on `node`: the
    /// attributes that differ from `base` (all of them without one), deletions of those `base`
    /// has and the session no longer does, the index, and with `validity` its record, in one
    /// round trip that also releases `lock` when it can; returns what memcached holds then.
    /// Writers of one session on this host take turns.
    ///
    /// The index goes with `cas` over the base's when the base has its CAS unique (merged with
    /// another writer's when one came in between), else with `set`. A second copy's index is
    /// merged whenever the primary's is: the base's CAS unique is the primary's and says nothing
    /// of it, so it is read with `gets` in that round trip and written with `cas` after it
    /// (merged with what was there; another writer's since is merged in again).
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn write_split(
        &self,
        node: &Node,
        kind: KeyKind,
        id: &SessionId,
        session: &SessionData,
        base: Option<&Base>,
        exptime: u64,
        validity: Option<&Validity>,
        lock: &mut Option<SessionLock>,
    ) -> Result<Base> {
        let unchanged = |name: &str, value: &[u8]| {
            base.and_then(|b| b.hashes.get(name)) == Some(&xxh3_64(value))
        };
        let mut items = Vec::new();
        for (name, value) in &session.attributes {
            if !unchanged(name, value) {
                let key = self.config.keys.attribute_key(kind, id, name);
                items.push((key, self.encode_attribute(id, name, value)?));
            }
        }
        let removed: Vec<&str> = base
            .into_iter()
            .flat_map(Base::names)
            .filter(|name| !session.attributes.contains_key(*name))
            .collect();
        let removed = self.attribute_keys(kind, id, removed.iter().copied());
        let index = index_of(session);
        let key = self.key(kind, id);
        let value = self.encode_index(id, &index)?;
        let record = validity.map(|v| self.validity_item(id, v));
        let mut commands: Vec<Command<'_>> = items
            .iter()
            .map(|(key, value)| Command::Set {
                key,
                value,
                exptime,
            })
            .collect();
        commands.extend(removed.iter().map(|key| Command::Delete(key)));
        let at_index = commands.len();
        let index_cas = base.and_then(|b| b.cas);
        let read_first = kind == KeyKind::SecondCopy && index_cas.is_some();
        let index_key = [key.as_str()];
        commands.push(match index_cas {
            _ if read_first => Command::Gets(&index_key),
            Some(cas) => Command::Cas {
                key: &key,
                value: &value,
                exptime,
                cas,
            },
            None => Command::Set {
                key: &key,
                value: &value,
                exptime,
            },
        });
        let _turn = self.index_turns.take(&key).await;
        let answers = self
            .send_releasing(node, commands, record.as_ref(), lock)
            .await?;
        if let Some(refused) = answers[..items.len()]
            .iter()
            .find(|a| **a != Answer::Stored)
        {
            return Err(Error::Server {
                node: node.id().to_owned(),
                message: format!("an attribute's item was not stored: {refused:?}"),
            });
        }
        bump_by(&self.stats.attribute_items_written, items.len());
        let stored = Base::of(session, None);
        // What the second copy's node holds as index, read in this round trip; none when the
        // index was written with `cas` or `set` (then `cas` found another writer's index).
        let read = match answers.into_iter().nth(at_index) {
            Some(Answer::Stored) => return Ok(stored),
            Some(Answer::Items(found)) if read_first => {
                let found = found.into_iter().find(|item| item.key == key);
                Some(match found {
                    Some(item) => {
                        let cas = item.cas.ok_or_else(|| Error::Server {
                            node: node.id().to_owned(),
                            message: "gets reply without CAS unique".to_owned(),
                        })?;
                        Some((item.data, cas))
                    }
                    None => None,
                })
            }
            _ => None,
        };
        let added: BTreeSet<&str> = items_names(session, base);
        let gone: BTreeSet<&str> = base
            .into_iter()
            .flat_map(Base::names)
            .filter(|name| !session.attributes.contains_key(*name))
            .collect();
        self.merge_index(node, kind, id, &index, &added, &gone, exptime, read)
            .await?;
        Ok(stored)
    }

    /// Writes `ours` over another writer's index of the session `id` (its copy `kind`): the
    /// names that index has, plus those this writer `added`, minus those it removed (`gone`),
    /// with this writer's metadata; retried with `cas`, after a short random pause, until no
    /// third writer comes in between (at most [`MAX_MERGES`] times, then the write fails: nothing
    /// is written over). `read` is the index as already read, with no writer known to have come
    /// in between (a second copy's, read in the write's round trip): it is merged with first,
    /// and only merges after a conflict are counted.
    #[allow(clippy::too_many_arguments)]
    async fn merge_index(
        &self,
        node: &Node,
        kind: KeyKind,
        id: &SessionId,
        ours: &Index,
        added: &BTreeSet<&str>,
        gone: &BTreeSet<&str>,
        exptime: u64,
        mut read: Option<IndexRead>,
    ) -> Result<()> {
        let key = self.key(kind, id);
        let mut merges = 0;
        loop {
            let theirs = match read.take() {
                Some(read) => read,
                None if merges == MAX_MERGES => {
                    return Err(Error::Server {
                        node: node.id().to_owned(),
                        message: format!(
                            "the index of a session stored attribute by attribute changed under \
                             {MAX_MERGES} merges in a row"
                        ),
                    });
                }
                None => {
                    if merges > 0 {
                        let longest = std::time::Duration::from_millis(1 << merges.min(4));
                        let pause = longest.min(MAX_MERGE_PAUSE).mul_f64(random_fraction());
                        tokio::time::sleep(pause).await;
                    }
                    merges += 1;
                    bump(&self.stats.attribute_index_merges);
                    self.cluster.call(node, |c| c.gets(&key)).await?
                }
            };
            let mut merged = ours.clone();
            let cas = match &theirs {
                Some((value, cas)) => {
                    if let Ok(Stored::Index(theirs)) = self.codec.decode_stored(id.random(), value)
                    {
                        merged.names = theirs
                            .names
                            .into_iter()
                            .filter(|name| !gone.contains(name.as_str()))
                            .chain(added.iter().map(|name| (*name).to_owned()))
                            .collect();
                    }
                    Some(*cas)
                }
                None => None,
            };
            let value = self.encode_index(id, &merged)?;
            let stored = match cas {
                Some(cas) => {
                    let outcome = self
                        .cluster
                        .call(node, |c| c.cas(&key, &value, exptime, cas))
                        .await?;
                    outcome == crate::client::CasOutcome::Stored
                }
                None => {
                    self.cluster
                        .call(node, |c| c.add(&key, &value, exptime))
                        .await?
                }
            };
            if stored {
                return Ok(());
            }
        }
    }

    /// The session an index read from `node` as its copy `kind` describes: its metadata and the
    /// attributes whose items memcached still holds (one missing or corrupt is counted and
    /// left out).
    pub(crate) async fn assemble(
        &self,
        node: &Node,
        kind: KeyKind,
        id: &SessionId,
        index: Index,
    ) -> Result<SessionData> {
        let keys = self.attribute_keys(kind, id, index.names.iter().map(String::as_str));
        let key_refs: Vec<&str> = keys.iter().map(String::as_str).collect();
        let mut found = self.cluster.call(node, |c| c.get_multi(&key_refs)).await?;
        let mut session = index.session;
        for (name, key) in index.names.into_iter().zip(keys) {
            let Some(value) = found.remove(&key) else {
                bump(&self.stats.attribute_items_missing);
                tracing::warn!(session = %id.redacted(), attribute = %name, "attribute's item missing: left out of the session");
                continue;
            };
            match self.codec.decode_attribute(id.random(), &name, &value) {
                Ok(value) => {
                    session.attributes.insert(name, value);
                }
                Err(e) => {
                    self.stats.count_corrupt(e.kind);
                    tracing::warn!(session = %id.redacted(), attribute = %name, error = %e, "corrupt attribute item: left out of the session");
                }
            }
        }
        Ok(session)
    }

    /// The names of the attributes the index of the session `id` on `node` (its copy `kind`)
    /// names; none when there is no index (or a whole session, or a corrupt value).
    pub(crate) async fn indexed_names(
        &self,
        node: &Node,
        kind: KeyKind,
        id: &SessionId,
    ) -> Result<Vec<String>> {
        let key = self.key(kind, id);
        let value = self.cluster.call(node, |c| c.get(&key)).await?;
        Ok(
            match value.map(|v| self.codec.decode_stored(id.random(), &v)) {
                Some(Ok(Stored::Index(index))) => index.names.into_iter().collect(),
                _ => Vec::new(),
            },
        )
    }

    fn encode_index(&self, id: &SessionId, index: &Index) -> Result<Vec<u8>> {
        self.codec
            .encode_index(id.random(), index)
            .inspect_err(|_| bump(&self.stats.too_large))
    }

    fn encode_attribute(&self, id: &SessionId, name: &str, value: &[u8]) -> Result<Vec<u8>> {
        self.codec
            .encode_attribute(id.random(), name, value)
            .inspect_err(|_| bump(&self.stats.too_large))
    }
}

/// The index of `session`: its metadata and its attributes' names.
fn index_of(session: &SessionData) -> Index {
    Index {
        session: SessionData {
            creation_time: session.creation_time,
            last_accessed: session.last_accessed,
            max_inactive: session.max_inactive,
            version: session.version,
            auth_type: session.auth_type.clone(),
            principal: session.principal.clone(),
            attributes: BTreeMap::new(),
            read: None,
        },
        names: session.attributes.keys().cloned().collect(),
    }
}

/// The names of the attributes of `session` that `base` does not have.
fn items_names<'a>(session: &'a SessionData, base: Option<&Base>) -> BTreeSet<&'a str> {
    session
        .attributes
        .keys()
        .map(String::as_str)
        .filter(|name| base.is_none_or(|b| !b.hashes.contains_key(*name)))
        .collect()
}

/// A random number in [0, 1), from the operating system's generator.
fn random_fraction() -> f64 {
    let mut bytes = [0u8; 4];
    getrandom::fill(&mut bytes).expect("the operating system's random generator failed");
    f64::from(u32::from_le_bytes(bytes)) / (f64::from(u32::MAX) + 1.0)
}

/// Adds `n` to a counter.
fn bump_by(counter: &std::sync::atomic::AtomicU64, n: usize) {
    counter.fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
}
