//! Sessions stored attribute by attribute (`updateGranularity="attribute"`).
//!
//! A session's own item holds its metadata and its index: the names of its attributes, each
//! with a version (see [`Index`]). Each version of an attribute is an item of its own beside it,
//! its tag binding the session and the name, and is never written over with other content. A
//! changed session stores new versions of the attributes whose value changed, then its index,
//! in one pipelined round trip (a second copy's index, merged, one more); once that index is
//! stored, the versions it no longer names (replaced or removed) are deleted in the background. A
//! read fetches the index, then the versions it names in one multi-get.
//!
//! Consistency: the index is the commit point. A reader gets the attributes of one stored index,
//! never a version a writer stored without (yet) storing its index: a crash between the two
//! leaves items no index names, which expire on their own. Per attribute, the last writer of
//! the index wins. A writer that read the index writes it with `cas` over what it read; when
//! another writer came in between, the two are merged (the other's attributes, with this
//! writer's versions of those it changed or added, less those it removed) and written again, so
//! concurrent requests that change different attributes never lose each other's change, locked
//! or not. The second copy's index (non-sticky) has the same writers and is merged the same way:
//! it is read with `gets` in the round trip that writes the attributes' items, then written with
//! `cas` over what was there. A reader that finds a named version gone (deleted after a newer
//! index was stored) reads the index again, once; a version still missing then was lost by
//! memcached (evicted), or replaced again while it was read: it is left out of the session,
//! counted. A write whose items memcached refuses (too large) is taken back from the index it
//! stored in the same round trip: its attributes are named at their earlier versions again.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock};

use parking_lot::Mutex;

use xxhash_rust::xxh3::xxh3_64;

use super::{Copies, Layout, Outgoing};
use crate::client::{Answer, Command};
use crate::cluster::Node;
use crate::envelope::{Index, Stored};
use crate::error::{Error, Result};
use crate::ids::SessionId;
use crate::keys::KeyKind;
use crate::locking::SessionLock;
use crate::session::SessionData;
use crate::stats::{bump, bump_by};
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

/// What a writer knows memcached holds of a session stored attribute by attribute: each
/// attribute's version and a hash of its value, and the CAS unique of the index it read (none:
/// the index is written over, as a whole-session write would).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Base {
    entries: BTreeMap<String, Entry>,
    cas: Option<u64>,
}

/// One attribute as memcached holds it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Entry {
    version: u64,
    hash: u64,
}

impl Base {
    /// What memcached holds once `session` was read from an index naming `versions` (its CAS
    /// unique `cas`), or written with them.
    fn of(session: &SessionData, versions: &BTreeMap<String, u64>, cas: Option<u64>) -> Self {
        Base {
            entries: session
                .attributes
                .iter()
                .filter_map(|(name, value)| {
                    let version = *versions.get(name)?;
                    let hash = xxh3_64(value);
                    Some((name.clone(), Entry { version, hash }))
                })
                .collect(),
            cas,
        }
    }

    /// What memcached holds unknown: everything is written, and the index over whatever is
    /// there (`cas`, when given, over the whole session read).
    pub(crate) fn unknown(cas: Option<u64>) -> Self {
        Base {
            entries: BTreeMap::new(),
            cas,
        }
    }

    /// The same attributes, with the index written over rather than with `cas` (a sticky
    /// backup, which has one writer: the Tomcat holding the session).
    pub(crate) fn written_over(&self) -> Self {
        Base {
            entries: self.entries.clone(),
            cas: None,
        }
    }

    /// The attributes memcached holds: each name, with the version of its item.
    pub(crate) fn versions(&self) -> impl Iterator<Item = (&str, u64)> {
        self.entries
            .iter()
            .map(|(name, entry)| (name.as_str(), entry.version))
    }

    /// Whether memcached held the attribute `name` at `version`.
    fn holds(&self, name: &str, version: u64) -> bool {
        self.entries.get(name).is_some_and(|e| e.version == version)
    }
}

/// A copy of a session this host kept from an earlier read or write (the near cache's), with
/// what memcached held of it then. A version is written once, so an attribute whose version the
/// index still names is taken from here rather than fetched.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Earlier<'a> {
    /// The session, encoded whole.
    pub(crate) value: &'a [u8],
    /// The versions of its attributes.
    pub(crate) base: &'a Base,
}

/// An index as read with `gets`: its stored value and CAS unique (none: no index there).
type IndexRead = Option<(Vec<u8>, u64)>;

/// This host's writers of sessions' indexes, one at a time per session: requests of one session
/// on one host never send their index writes at once (one whose read predates another's write
/// still finds the index changed, and merges with it as with another host's).
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

    /// The keys of the items of the attributes `versions` (each name with its version) of the
    /// session `id`, beside its copy `kind` ([`KeyKind::Session`] or [`KeyKind::SecondCopy`]).
    pub(crate) fn attribute_keys<'n>(
        &self,
        kind: KeyKind,
        id: &SessionId,
        versions: impl IntoIterator<Item = (&'n str, u64)>,
    ) -> Vec<String> {
        versions
            .into_iter()
            .map(|(name, version)| self.config.keys.attribute_key(kind, id, name, version))
            .collect()
    }

    /// Writes the session `out` as `id`, attribute by attribute, as its copy `kind` on `node`:
    /// the attributes that differ from `out.base` (all of them without one) as new versions
    /// (`out.version`), the index, and with `validity` its record, in one round trip that also
    /// releases `lock` when it can; returns what memcached holds then. Once the index is stored,
    /// the versions it no longer names are deleted in the background. Writers of one session on
    /// this host take turns.
    ///
    /// The index goes with `cas` over the base's when the base has its CAS unique, else with
    /// `add` (non-sticky) or `set` (sticky: one writer); merged with another writer's when one
    /// came in between. A second copy's index is
    /// merged whenever the primary's is: the base's CAS unique is the primary's and says nothing
    /// of it, so it is read with `gets` in that round trip and written with `cas` after it
    /// (merged with what was there; another writer's since is merged in again).
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn write_split(
        &self,
        node: &Node,
        kind: KeyKind,
        id: &SessionId,
        out: Outgoing<'_>,
        exptime: u64,
        validity: Option<&Validity>,
        lock: &mut Option<SessionLock>,
    ) -> Result<Base> {
        let old = |name: &str| out.base.and_then(|b| b.entries.get(name));
        let mut entries = BTreeMap::new();
        let mut items = Vec::new();
        for (name, value) in &out.session.attributes {
            let hash = xxh3_64(value);
            let version = match old(name) {
                Some(entry) if entry.hash == hash => entry.version,
                _ => {
                    let key = self.config.keys.attribute_key(kind, id, name, out.version);
                    items.push((name, key, self.encode_attribute(id, name, value)?));
                    out.version
                }
            };
            entries.insert(name.clone(), Entry { version, hash });
        }
        // What this write changes in the index: the versions it wrote, the names it removed,
        // and the versions of the base it replaces (or removes).
        let written: BTreeMap<&str, u64> = out
            .session
            .attributes
            .keys()
            .filter(|name| entries[*name].version == out.version)
            .map(|name| (name.as_str(), out.version))
            .collect();
        let base_entries = out.base.into_iter().flat_map(|b| &b.entries);
        let gone: BTreeSet<&str> = base_entries
            .clone()
            .filter(|(name, _)| !entries.contains_key(*name))
            .map(|(name, _)| name.as_str())
            .collect();
        let replaced: Vec<(String, u64)> = base_entries
            .filter(|(name, entry)| {
                entries
                    .get(*name)
                    .is_none_or(|e| e.version != entry.version)
            })
            .map(|(name, entry)| (name.clone(), entry.version))
            .collect();
        let index = Index {
            session: metadata(out.session),
            names: entries
                .iter()
                .map(|(name, entry)| (name.clone(), entry.version))
                .collect(),
        };
        let key = self.key(kind, id);
        let value = self.encode_index(id, &index)?;
        let record = validity.map(|v| self.validity_item(id, v));
        let mut commands: Vec<Command<'_>> = items
            .iter()
            .map(|(_, key, value)| Command::Set {
                key,
                value,
                exptime,
            })
            .collect();
        let index_cas = out.base.and_then(|b| b.cas);
        // Non-sticky, other hosts write the index too, and writing over theirs would name
        // versions they deleted: it goes with `cas` over the one read, or with `add` when none
        // was (a session moved or restored here), merged with theirs when they came first. A
        // second copy's index is read with `gets` in this round trip (the base's CAS unique is
        // the primary's), then merged and written with `cas`. Sticky, the one writer sets it.
        let shared = self.layout() == Layout::Replicated;
        let read_first = shared && kind == KeyKind::SecondCopy;
        let index_key = [key.as_str()];
        commands.push(match index_cas {
            _ if read_first => Command::Gets(&index_key),
            Some(cas) => Command::Cas {
                key: &key,
                value: &value,
                exptime,
                cas,
            },
            None if shared => Command::Add {
                key: &key,
                value: &value,
                exptime,
            },
            None => Command::Set {
                key: &key,
                value: &value,
                exptime,
            },
        });
        let _turn = self.index_turns.take(&key).await;
        let answers = match self
            .send_releasing(node, commands, record.as_ref(), lock)
            .await
        {
            Ok(answers) => answers,
            Err(e) if e.is_node_failure() => return Err(e),
            Err(e) => {
                // Refused by memcached (too large, out of memory) after the index may have gone.
                self.undo(node, kind, id, out, exptime).await.ok();
                return Err(e);
            }
        };
        let refused = items
            .iter()
            .zip(&answers)
            .find(|(_, answer)| **answer != Answer::Stored);
        if let Some(((name, ..), answer)) = refused {
            self.undo(node, kind, id, out, exptime).await.ok();
            return Err(Error::Server {
                node: node.id().to_owned(),
                message: format!("the item of the attribute `{name}` was not stored: {answer:?}"),
            });
        }
        bump_by(&self.stats.attribute_items_written, items.len());
        let stored = Base { entries, cas: None };
        // What the second copy's node holds as index, read in this round trip; none when the
        // index was written with `cas` or `set` (then `cas` found another writer's index).
        let read = match answers.into_iter().nth(items.len()) {
            Some(Answer::Stored) => {
                self.delete_versions(node, kind, id, replaced);
                return Ok(stored);
            }
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
        let theirs = self
            .merge_index(node, kind, id, &index, &written, &gone, exptime, read)
            .await?;
        let replaced = replaced.into_iter().chain(theirs).collect::<BTreeSet<_>>();
        self.delete_versions(node, kind, id, replaced.into_iter().collect());
        Ok(stored)
    }

    /// Writes `ours` over another writer's index of the session `id` (its copy `kind`): that
    /// index's attributes, with the versions this writer `written`, less those it removed
    /// (`gone`), with this writer's metadata; retried with `cas`, after a short random pause,
    /// until no third writer comes in between (at most [`MAX_MERGES`] times, then the write
    /// fails: nothing is written over). `read` is the index as already read, with no writer
    /// known to have come in between (a second copy's, read in the write's round trip): it is
    /// merged with first, and only merges after a conflict are counted. Returns the versions of
    /// the other writer's index that this one replaced or removed.
    #[allow(clippy::too_many_arguments)]
    async fn merge_index(
        &self,
        node: &Node,
        kind: KeyKind,
        id: &SessionId,
        ours: &Index,
        written: &BTreeMap<&str, u64>,
        gone: &BTreeSet<&str>,
        exptime: u64,
        read: Option<IndexRead>,
    ) -> Result<Vec<(String, u64)>> {
        let merged = self.rewrite_index(node, kind, id, exptime, read, |theirs| {
            let mut merged = ours.clone();
            let mut replaced = Vec::new();
            if let Some(theirs) = theirs {
                let (kept, lost): (Vec<_>, Vec<_>) =
                    theirs.names.into_iter().partition(|(name, _)| {
                        !gone.contains(name.as_str()) && !written.contains_key(name.as_str())
                    });
                merged.names = kept.into_iter().collect();
                merged
                    .names
                    .extend(written.iter().map(|(name, v)| ((*name).to_owned(), *v)));
                replaced = lost;
            }
            Some((merged, replaced))
        });
        Ok(merged.await?.unwrap_or_default())
    }

    /// Rewrites the index of the session `id` (its copy `kind`) on `node`: `rewrite` is given
    /// the index there (none: no index, or a value that is not one) and says what to write
    /// instead, or nothing. Written with `cas` over what was read (`add` where nothing was);
    /// when another writer came in between, read and rewritten again after a short random
    /// pause, at most [`MAX_MERGES`] times (then the write fails: nothing is written over).
    /// `read` is the index as already read, if it was; each read after a conflict counts as a
    /// merge. Returns what `rewrite` gave with the index it wrote; none when it wrote nothing.
    async fn rewrite_index<T>(
        &self,
        node: &Node,
        kind: KeyKind,
        id: &SessionId,
        exptime: u64,
        mut read: Option<IndexRead>,
        mut rewrite: impl FnMut(Option<Index>) -> Option<(Index, T)>,
    ) -> Result<Option<T>> {
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
            let index = theirs.as_ref().and_then(|(value, _)| {
                match self.codec.decode_stored(id.random(), value) {
                    Ok(Stored::Index(index)) => Some(index),
                    _ => None,
                }
            });
            let Some((ours, result)) = rewrite(index) else {
                return Ok(None);
            };
            let value = self.encode_index(id, &ours)?;
            let stored = match theirs {
                Some((_, cas)) => {
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
                return Ok(Some(result));
            }
        }
    }

    /// Takes back what the write `out` of the session `id` (its copy `kind`) on `node` put in
    /// the index, after memcached refused some of its items: each attribute the index names at
    /// `out.version` is named at its base version again (still there: nothing is deleted before
    /// a write succeeds), or no more. An index naming none (its write never went, or another
    /// writer replaced them since) is left alone.
    async fn undo(
        &self,
        node: &Node,
        kind: KeyKind,
        id: &SessionId,
        out: Outgoing<'_>,
        exptime: u64,
    ) -> Result<()> {
        let key = self.key(kind, id);
        let read = self.cluster.call(node, |c| c.gets(&key)).await?;
        let undone = self.rewrite_index(node, kind, id, exptime, Some(read), |theirs| {
            let mut index = theirs?;
            let ours: Vec<String> = index
                .names
                .iter()
                .filter(|(_, version)| **version == out.version)
                .map(|(name, _)| name.clone())
                .collect();
            if ours.is_empty() {
                return None;
            }
            for name in ours {
                match out.base.and_then(|b| b.entries.get(&name)) {
                    Some(entry) => index.names.insert(name, entry.version),
                    None => index.names.remove(&name),
                };
            }
            Some((index, ()))
        });
        undone.await.map(drop)
    }

    /// Deletes, in the background (see [`super::deletions`]), the items of the attribute
    /// versions `versions` of the session `id` (its copy `kind`) on `node`, which no stored
    /// index names any more.
    fn delete_versions(
        &self,
        node: &Node,
        kind: KeyKind,
        id: &SessionId,
        versions: Vec<(String, u64)>,
    ) {
        let keys = self.attribute_keys(kind, id, versions.iter().map(|(n, v)| (n.as_str(), *v)));
        self.deletions.delete(node.id(), keys);
    }

    /// The session an index read from `node` as its copy `kind` (with the CAS unique `cas`)
    /// describes, and what memcached holds of it: its metadata and the attribute versions the
    /// index names, those `earlier` holds taken from it, the others fetched in one multi-get
    /// (none: no round trip). When a version is gone the index is read once more: a writer
    /// that stored a newer index deletes the versions it replaced. A version still missing
    /// then, or corrupt, is counted and left out.
    pub(crate) async fn assemble(
        &self,
        node: &Node,
        kind: KeyKind,
        id: &SessionId,
        mut index: Index,
        mut cas: Option<u64>,
        earlier: Option<Earlier<'_>>,
    ) -> Result<(SessionData, Base)> {
        let earlier = earlier
            .filter(|e| versions(&index).any(|(name, v)| e.base.holds(name, v)))
            .and_then(|e| Some((self.codec.decode(id.random(), e.value).ok()?, e.base)));
        let reused = |name: &str, version: u64| -> Option<&Vec<u8>> {
            let (session, base) = earlier.as_ref()?;
            base.holds(name, version)
                .then(|| session.attributes.get(name))
                .flatten()
        };
        let mut reread = false;
        let (index, cas, mut found) = loop {
            let wanted = versions(&index).filter(|(name, v)| reused(name, *v).is_none());
            let keys = self.attribute_keys(kind, id, wanted);
            let key_refs: Vec<&str> = keys.iter().map(String::as_str).collect();
            let found = match key_refs.is_empty() {
                true => HashMap::new(),
                false => self.cluster.call(node, |c| c.get_multi(&key_refs)).await?,
            };
            if reread || keys.iter().all(|key| found.contains_key(key)) {
                break (index, cas, found);
            }
            reread = true;
            bump(&self.stats.attribute_index_rereads);
            let key = self.key(kind, id);
            if let Some((value, newer_cas)) = self.cluster.call(node, |c| c.gets(&key)).await?
                && let Ok(Stored::Index(newer)) = self.codec.decode_stored(id.random(), &value)
                && newer.names != index.names
            {
                index = newer;
                cas = cas.map(|_| newer_cas);
                continue;
            }
            break (index, cas, found);
        };
        let mut session = index.session;
        for (name, version) in &index.names {
            if let Some(value) = reused(name, *version) {
                session.attributes.insert(name.clone(), value.clone());
                bump(&self.stats.attribute_items_reused);
                continue;
            }
            let key = self.config.keys.attribute_key(kind, id, name, *version);
            let Some(value) = found.remove(&key) else {
                bump(&self.stats.attribute_items_missing);
                tracing::warn!(session = %id.redacted(), attribute = %name, "attribute's item missing: left out of the session");
                continue;
            };
            match self.codec.decode_attribute(id.random(), name, &value) {
                Ok(value) => {
                    session.attributes.insert(name.clone(), value);
                }
                Err(e) => {
                    self.stats.count_corrupt(e.kind);
                    tracing::warn!(session = %id.redacted(), attribute = %name, error = %e, "corrupt attribute item: left out of the session");
                }
            }
        }
        let base = Base::of(&session, &index.names, cas);
        Ok((session, base))
    }

    /// The attributes the index of the session `id` on `node` (its copy `kind`) names, each
    /// with its version; none when there is no index (or a whole session, or a corrupt value).
    pub(crate) async fn indexed_versions(
        &self,
        node: &Node,
        kind: KeyKind,
        id: &SessionId,
    ) -> Result<Vec<(String, u64)>> {
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

/// A new version for the attributes a write changes, so that no two writes (of any host) store
/// different values under one key: a counter of this process, started at a random number from
/// the operating system's generator, scattered by a bijection (SplitMix64's finalizer). Distinct
/// within a process; two processes meet only if their counters do, which 64 random bits make
/// vanishingly unlikely. No system call per write.
pub(crate) fn new_version() -> u64 {
    static NEXT: LazyLock<AtomicU64> = LazyLock::new(|| {
        let mut bytes = [0u8; 8];
        getrandom::fill(&mut bytes).expect("the operating system's random generator failed");
        AtomicU64::new(u64::from_le_bytes(bytes))
    });
    let mut x = NEXT.fetch_add(1, Ordering::Relaxed);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// The metadata of `session`, without its attributes.
fn metadata(session: &SessionData) -> SessionData {
    SessionData {
        creation_time: session.creation_time,
        last_accessed: session.last_accessed,
        max_inactive: session.max_inactive,
        version: session.version,
        auth_type: session.auth_type.clone(),
        principal: session.principal.clone(),
        attributes: BTreeMap::new(),
        read: None,
    }
}

/// The attributes an index names, each with its version.
fn versions(index: &Index) -> impl Iterator<Item = (&str, u64)> {
    index
        .names
        .iter()
        .map(|(name, version)| (name.as_str(), *version))
}

/// A random number in [0, 1), from the operating system's generator.
fn random_fraction() -> f64 {
    let mut bytes = [0u8; 4];
    getrandom::fill(&mut bytes).expect("the operating system's random generator failed");
    f64::from(u32::from_le_bytes(bytes)) / (f64::from(u32::MAX) + 1.0)
}

#[cfg(test)]
mod tests {
    use super::new_version;

    #[test]
    fn versions_are_distinct_and_scattered() {
        let versions: Vec<u64> = (0..10_000).map(|_| new_version()).collect();
        let distinct: std::collections::BTreeSet<_> = versions.iter().collect();
        assert_eq!(distinct.len(), versions.len());
        let high_bits_differ = versions.windows(2).filter(|w| (w[0] ^ w[1]) >> 32 != 0);
        assert!(
            high_bits_differ.count() > 9_900,
            "consecutive versions look alike"
        );
    }
}
