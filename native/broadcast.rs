//! Broadcast session events (`sessionEvents="broadcast"`): every manager of a context hears the
//! session events the others publish (a session created or destroyed, an attribute added,
//! replaced or removed), in order per session, once, within about `broadcastPollInterval`.
//! Hosts fire their own listeners for what happens on them and publish it
//! ([`crate::SessionManager::publish`]); they poll for the others' events
//! ([`crate::SessionManager::broadcast_events`]) and fire their listeners for those.
//!
//! Memcached has no publish/subscribe, so the events travel through a log of ordinary items
//! (`P` the context's key prefix, `s` a Unix second):
//!
//! - `broadcast:P<s>`: the records of the events published during second `s` (by the
//!   publisher's clock), each a 4-byte length and the record, written with `add` (an item
//!   holding only a random 8-byte number, which tells a reader when the item was written anew,
//!   its node restarted or memcached evicted it) and `append` in one round trip per
//!   publication, and expiring after [`RETAIN`] seconds. Memcached appends atomically, so a reader never sees half a record, and sees the
//!   records of one item in the order they were appended.
//! - The log lives on the first node of the ring that is up; when that node fails, publishers
//!   move to the next, and readers read every node that is up.
//!
//! A reader reads, in one round trip per node, the items of the seconds from [`LAG`] before its
//! previous poll of that node to [`LAG`] after now, and remembers how far it read each: it
//! hears each record once. A node it finds down, or fails to read, is read from there when it
//! answers again (within [`RETAIN`]). It skips its own records, and those published before it started (a host that starts
//! later hears only what happens after its start). Each record carries its publisher's number
//! (random per manager) and a count per publisher: a record appended twice (a write retried
//! after its reply was lost) is heard once. Each record is sealed by the context's codec
//! (integrity tag with `integrityKey`, or encryption; only a checksum without keys, which
//! catches garbage but not a forger with access to memcached) and bound to its log item, so one
//! copied from another item or context, or (with keys) written by anything but a manager of the
//! context, is refused (counted in `broadcast_records_refused`). Readers read log items of up
//! to 1 MiB (or `maxSessionSize`, when larger): memcached's default item size.
//!
//! Guarantee and limits: a published event is heard once by each manager that polls at least
//! every [`RETAIN`] − 2 × [`LAG`] seconds, in the order of publication per publisher, and per
//! session across publishers when their clocks agree within a second (events of one poll are
//! ordered by their publishers' clocks). Lost: an event whose publication failed (counted in
//! `broadcast_events_unpublished`: no node up, a write that failed, an item past memcached's
//! item size limit, 1 MiB by default, so at most about that much is published per second and
//! context); the events of a log item evicted or lost with its node before a reader read it;
//! those appended to an item after a malformed frame (which only something other than a
//! manager can write there), as nothing after it can be framed.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use serde_bytes::Bytes;

use crate::client::{Answer, Command, expiry};
use crate::cluster::Node;
use crate::config::Config;
use crate::copies::Copies;
use crate::copies::near::NearCached;
use crate::error::Result;
use crate::ids::SessionId;
use crate::keys::KeyKind;
use crate::session::now_millis;
use crate::stats::{Stats, bump};

/// Seconds a log item is kept.
const RETAIN: u64 = 60;
/// Seconds of clock skew between hosts (and of memcached's one-second clock) that a reader
/// allows: it reads the items of this many seconds before its previous poll and after now.
const LAG: u64 = 2;
/// Bytes of the random number a log item starts with.
const ITEM_HEADER: usize = 8;

/// What happened to a session.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[repr(u8)]
pub enum EventKind {
    /// The session was created (`sessionCreated`).
    Created = 0,
    /// The session ended: invalidated, or expired (`sessionDestroyed`).
    Destroyed = 1,
    /// An attribute was added (`attributeAdded`).
    AttributeAdded = 2,
    /// An attribute was replaced (`attributeReplaced`).
    AttributeReplaced = 3,
    /// An attribute was removed (`attributeRemoved`).
    AttributeRemoved = 4,
}

impl EventKind {
    /// The kind numbered `n` (the faces' numbering, as declared), if any.
    pub fn from_number(n: i32) -> Option<Self> {
        [
            EventKind::Created,
            EventKind::Destroyed,
            EventKind::AttributeAdded,
            EventKind::AttributeReplaced,
            EventKind::AttributeRemoved,
        ]
        .into_iter()
        .find(|kind| *kind as i32 == n)
    }

    /// Whether events of this kind name an attribute.
    pub fn names_attribute(self) -> bool {
        !matches!(self, EventKind::Created | EventKind::Destroyed)
    }
}

/// One session event, as published and as heard.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionEvent {
    /// What happened.
    pub kind: EventKind,
    /// The session, without route.
    pub id: SessionId,
    /// The attribute's name, for attribute events.
    pub name: Option<String>,
    /// The attribute's value after the event (added, or the new one of a replacement),
    /// serialized by the host; published only with `broadcastValues="true"`, so hosts need not
    /// serialize it otherwise.
    pub value: Option<Vec<u8>>,
}

impl SessionEvent {
    /// The event numbered `kind` (an [`EventKind`]'s number, as the faces pass it) of the
    /// session `id`; refuses an unknown kind, a name or value given to a session event, and a
    /// name missing from an attribute event, saying which.
    pub fn new(
        kind: i32,
        id: SessionId,
        name: Option<String>,
        value: Option<Vec<u8>>,
    ) -> std::result::Result<Self, String> {
        let kind = EventKind::from_number(kind)
            .ok_or_else(|| format!("unknown session event kind {kind}"))?;
        match (kind.names_attribute(), &name) {
            (true, None) => Err(format!("a {kind:?} event names its attribute")),
            (false, Some(_)) => Err(format!("a {kind:?} event names no attribute")),
            (false, None) if value.is_some() => Err(format!("a {kind:?} event carries no value")),
            _ => Ok(SessionEvent {
                kind,
                id,
                name,
                value,
            }),
        }
    }
}

/// An event as it travels in the log, inside its sealed record.
#[derive(Serialize, Deserialize)]
struct Record<'a> {
    /// The publishing manager's number.
    publisher: u64,
    /// Its count of records, from 1.
    count: u64,
    /// When it was published, Unix milliseconds by the publisher's clock.
    at: u64,
    kind: EventKind,
    id: &'a str,
    name: Option<&'a str>,
    #[serde(borrow)]
    value: Option<&'a Bytes>,
}

/// An event heard, with what orders it among the others of a poll.
struct Heard {
    at: u64,
    publisher: u64,
    count: u64,
    event: SessionEvent,
}

/// What a reader remembers between polls.
#[derive(Default)]
struct Reader {
    /// The second of the previous poll of each node that answered it (by node id); a node not
    /// yet read is read from this manager's start.
    polled: HashMap<String, u64>,
    /// Each log item (by node and second) read so far: its number, and the bytes read.
    read: HashMap<(String, u64), ([u8; ITEM_HEADER], usize)>,
    /// The records heard (publisher and count) that may still be read again, with their time:
    /// a record appended twice (a retried write whose first reply was lost) is heard once.
    heard: HashMap<(u64, u64), u64>,
}

/// The broadcast events of one manager: its publications and what it heard.
pub(crate) struct Broadcast {
    config: Arc<Config>,
    store: Arc<NearCached>,
    stats: Arc<Stats>,
    /// This manager's number as a publisher (random).
    publisher: u64,
    /// Its count of records published.
    published: AtomicU64,
    /// The time of its latest publication, Unix milliseconds: publications never go back in
    /// time, even when the clock does.
    latest: AtomicU64,
    /// When it started, Unix milliseconds: earlier events are not its to hear.
    started: u64,
    reader: Mutex<Reader>,
}

impl std::fmt::Debug for Broadcast {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Broadcast")
            .field("publisher", &self.publisher)
            .finish_non_exhaustive()
    }
}

impl Broadcast {
    pub(crate) fn new(config: Arc<Config>, store: Arc<NearCached>, stats: Arc<Stats>) -> Self {
        let mut publisher = [0u8; 8];
        getrandom::fill(&mut publisher).expect("the operating system's random generator failed");
        let started = now_millis();
        Broadcast {
            config,
            store,
            stats,
            publisher: u64::from_le_bytes(publisher),
            published: AtomicU64::new(0),
            latest: AtomicU64::new(0),
            started,
            reader: Mutex::new(Reader::default()),
        }
    }

    fn copies(&self) -> &Copies {
        self.store.copies()
    }

    fn enabled(&self) -> bool {
        self.config.session_events.broadcast()
    }

    /// Appends `events` to the context's log in one round trip (see the module's
    /// documentation). Never fails: events that cannot be published are counted and logged.
    pub(crate) async fn publish(&self, events: &[SessionEvent]) {
        if !self.enabled() || events.is_empty() {
            return;
        }
        let now = now_millis();
        let now = self.latest.fetch_max(now, Relaxed).max(now);
        let key = self
            .copies()
            .config
            .keys
            .bucket_key(KeyKind::Broadcast, now / 1000);
        let mut frames = Vec::new();
        let mut framed = 0u64;
        for event in events {
            let count = self.published.fetch_add(1, Relaxed) + 1;
            let record = Record {
                publisher: self.publisher,
                count,
                at: now,
                kind: event.kind,
                id: &event.id.storage_part(),
                name: event.name.as_deref(),
                value: event
                    .value
                    .as_deref()
                    .filter(|_| self.config.broadcast_values)
                    .map(Bytes::new),
            };
            let sealed = postcard::to_allocvec(&record)
                .map_err(|e| crate::Error::Corrupt(format!("cannot encode event: {e}")))
                .and_then(|record| self.copies().codec.encode_event(&key, &record));
            match sealed.map(|sealed| (u32::try_from(sealed.len()), sealed)) {
                Ok((Ok(len), sealed)) => {
                    frames.extend_from_slice(&len.to_le_bytes());
                    frames.extend_from_slice(&sealed);
                    framed += 1;
                }
                Ok((Err(_), _)) | Err(_) => {
                    bump(&self.stats.broadcast_events_unpublished);
                    tracing::warn!(session = %event.id.redacted(), "session event too large to broadcast");
                }
            }
        }
        if framed == 0 {
            return;
        }
        let mut header = [0u8; ITEM_HEADER];
        getrandom::fill(&mut header).expect("the operating system's random generator failed");
        let stored = match self.log_node() {
            Some(node) => {
                let commands = [
                    Command::Add {
                        key: &key,
                        value: &header,
                        exptime: expiry(RETAIN),
                    },
                    Command::Append {
                        key: &key,
                        value: &frames,
                    },
                ];
                let answers = self
                    .copies()
                    .cluster
                    .call(&node, |c| c.pipeline(&commands))
                    .await;
                match answers {
                    Ok(answers) if answers.get(1) == Some(&Answer::Stored) => Ok(()),
                    Ok(answers) => Err(format!("{:?}", answers.get(1))),
                    Err(e) => Err(e.to_string()),
                }
            }
            None => Err("no memcached node is up".to_owned()),
        };
        match stored {
            Ok(()) => {
                self.stats
                    .broadcast_events_published
                    .fetch_add(framed, Relaxed);
            }
            Err(error) => {
                self.stats
                    .broadcast_events_unpublished
                    .fetch_add(framed, Relaxed);
                tracing::warn!(events = framed, error, "session events not broadcast");
            }
        }
    }

    /// The node holding the context's log: the first of the ring that is up.
    fn log_node(&self) -> Option<Arc<Node>> {
        let nodes = self.copies().cluster.nodes();
        nodes.iter().find(|n| n.is_up() && !n.is_retired()).cloned()
    }

    /// The events other managers published since the previous poll (since this manager
    /// started, the first time), in order (see the module's documentation). A node that cannot
    /// be read is read again at the next poll.
    pub(crate) async fn poll(&self) -> Result<Vec<SessionEvent>> {
        if !self.enabled() {
            return Ok(Vec::new());
        }
        let now = now_millis() / 1000;
        let oldest = now.saturating_sub(RETAIN - LAG);
        let nodes = self.copies().cluster.nodes();
        let mut heard = Vec::new();
        let mut failure = None;
        for node in nodes.iter().filter(|n| !n.is_retired()) {
            if !node.is_up() {
                // Its window waits for it.
                continue;
            }
            let previous = self.reader.lock().polled.get(node.id()).copied();
            let first = previous
                .unwrap_or(self.started / 1000)
                .saturating_sub(LAG)
                .max(oldest);
            let seconds: Vec<u64> = (first..=now + LAG).collect();
            let keys: Vec<String> = seconds
                .iter()
                .map(|s| self.copies().config.keys.bucket_key(KeyKind::Broadcast, *s))
                .collect();
            let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
            let items = match self
                .copies()
                .cluster
                .call(node, |c| c.get_multi(&refs))
                .await
            {
                Ok(items) => items,
                Err(e) => {
                    tracing::debug!(node = node.id(), error = %e, "broadcast log not read");
                    failure = Some(e);
                    continue;
                }
            };
            let mut reader = self.reader.lock();
            for (second, key) in seconds.iter().zip(&keys) {
                if let Some(item) = items.get(key) {
                    self.read_item(&mut reader, node.id(), *second, key, item, &mut heard);
                }
            }
            reader.polled.insert(node.id().to_owned(), now);
        }
        let mut reader = self.reader.lock();
        let first = oldest.saturating_sub(LAG);
        reader.read.retain(|(_, second), _| *second >= first);
        // Records older than their items are never read again.
        let forgotten = (now.saturating_sub(RETAIN + 2 * LAG)) * 1000;
        reader.heard.retain(|_, at| *at >= forgotten);
        drop(reader);
        heard.sort_by_key(|h| (h.at, h.publisher, h.count));
        let count = u64::try_from(heard.len()).unwrap_or(u64::MAX);
        self.stats.broadcast_events_heard.fetch_add(count, Relaxed);
        match (heard.is_empty(), failure) {
            (true, Some(e)) => Err(e),
            _ => Ok(heard.into_iter().map(|h| h.event).collect()),
        }
    }

    /// Reads the records of one log item past what was read of it before.
    fn read_item(
        &self,
        reader: &mut Reader,
        node: &str,
        second: u64,
        key: &str,
        item: &[u8],
        heard: &mut Vec<Heard>,
    ) {
        let Some((header, _)) = item.split_first_chunk::<ITEM_HEADER>() else {
            self.refused(key, "an item without its header");
            return;
        };
        let read = reader
            .read
            .entry((node.to_owned(), second))
            .or_insert((*header, ITEM_HEADER));
        if read.0 != *header || read.1 > item.len() {
            // Written anew since it was read: read it all (records heard are not heard again).
            *read = (*header, ITEM_HEADER);
        }
        let mut rest = &item[read.1..];
        read.1 = item.len();
        while !rest.is_empty() {
            let Some((len, after)) = rest.split_first_chunk::<4>() else {
                self.refused(key, "a truncated record length");
                return;
            };
            let len = u32::from_le_bytes(*len) as usize;
            let Some((sealed, after)) = after.split_at_checked(len) else {
                self.refused(key, "a record longer than its item");
                return;
            };
            rest = after;
            let opened = match self.copies().codec.decode_event(key, sealed) {
                Ok(opened) => opened,
                Err(corruption) => {
                    self.refused(key, &corruption.detail);
                    continue;
                }
            };
            let Ok(record) = postcard::from_bytes::<Record<'_>>(&opened) else {
                self.refused(key, "an undecodable record");
                continue;
            };
            if record.publisher == self.publisher || record.at < self.started {
                continue;
            }
            if reader
                .heard
                .insert((record.publisher, record.count), record.at)
                .is_some()
            {
                continue;
            }
            let Some(id) = SessionId::parse(record.id).filter(|id| id.route().is_none()) else {
                self.refused(key, "a record naming an invalid session id");
                continue;
            };
            if record.kind.names_attribute() != record.name.is_some() {
                self.refused(key, "a record whose attribute name does not fit its kind");
                continue;
            }
            heard.push(Heard {
                at: record.at,
                publisher: record.publisher,
                count: record.count,
                event: SessionEvent {
                    kind: record.kind,
                    id,
                    name: record.name.map(str::to_owned),
                    value: record.value.map(|v| v.to_vec()),
                },
            });
        }
    }

    fn refused(&self, key: &str, why: &str) {
        bump(&self.stats.broadcast_records_refused);
        tracing::warn!(key, why, "broadcast log record refused");
    }
}
