//! Distributed session events: every session that ends by expiry is handed, exactly once in the
//! cluster, to one manager of its context, with its last stored data, even when no host holds
//! it (non-sticky) or the host that held it is gone (sticky). The host polls for them
//! ([`crate::SessionManager::expired_sessions`]) and fires its `sessionDestroyed` listeners.
//!
//! Memcached has no publish/subscribe and no key listing, so the bookkeeping is ordinary items
//! (`P` the context's key prefix, `S` a session id without its route, `b` a time bucket: the
//! Unix time divided by `eventSweepInterval`):
//!
//! - `expiring:P<b>`, on each node: the ids of sessions whose expiry falls in bucket `b`,
//!   separated by spaces, written with `add` (an empty item) and `append` in one round trip. A
//!   session is indexed on its own node when a manager first sees it (the end of a request, or a
//!   store, of a session this manager has not indexed), and again by a sweep that finds it
//!   renewed, under the bucket of its later expiry; a host also indexes it again when the bucket
//!   it indexed it under is due, in case that sweep's could not be written. So a session needs
//!   no index command per request: one per host that serves it, and one or two per lifetime.
//! - `sweep:P<b>`, beside it: a sweeper's claim on that bucket of that node, taken with `add`
//!   and expiring after one interval (a sweeper that dies lets it lapse, and the next poll of
//!   any manager sweeps the bucket again), then set to `done` once the bucket was swept.
//! - `ended:P S`, on the session's node: the session's end was dealt with. A sweep writes it
//!   with `add` before handing an expired session over, so two sweepers (one that outlived its
//!   claim, and its successor) never both deliver it; deleting a session (invalidation, expiry
//!   by the host holding it, a new id after login) sets it, so such a session is not delivered
//!   again at expiry. A host about to announce the expiry of a session it holds writes it with
//!   `add` first ([`Events::claim_end`]), and stays silent when it was there: a sweep that found
//!   the session expired before the host's own expiry ran delivered it already.
//!
//! A bucket is swept once it ended and two seconds passed (clock skew between hosts must stay
//! below that). The sweep reads each listed session's validity record: a non-sticky session is
//! alive while its record is (memcached drops it at the exact expiry); a sticky one while the
//! record its host writes with each backup or renewal says its copy may still be needed (a
//! quarter lifetime past the last backup, as the copy's own expiry). An expired session's data
//! is its copy (non-sticky: or its second copy), which memcached keeps
//! [`Config::event_grace`] longer than usual for this purpose; the sweep then deletes its copies.
//!
//! Guarantee and limits: a session that expires is delivered at most once, and exactly once
//! when memcached keeps the items above and the session's copy until its bucket is swept (a
//! poll of some manager within the grace after the bucket ended). It is not delivered:
//! - when its copies are gone by then (evicted, lost with a node that failed or restarted
//!   empty): counted in `expiry_events_undeliverable`;
//! - when no index item lists it: one could not be written (counted in
//!   `expiry_index_failures`; a host that still serves the session indexes it again), or was
//!   evicted or lost with its node (which cannot be counted);
//! - when the sweeper that marked it ended dies before its host fired the listeners.
//!
//! A request that reads a session in the instant a sweep ends it may write it back (as with an
//! invalidation racing a request without the lock).

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

use parking_lot::Mutex;

use crate::client::{Answer, Command, expiry};
use crate::cluster::Node;
use crate::config::Config;
use crate::copies::Layout;
use crate::copies::near::NearCached;
use crate::error::Result;
use crate::ids::SessionId;
use crate::keys::KeyKind;
use crate::session::{SessionData, now_millis};
use crate::stats::{Stats, bump};
use crate::validity::{Validity, copy_lifetime};

/// Seconds a bucket waits, once ended, before it is swept: memcached's one-second clock, and
/// skew between hosts.
const LAG: u64 = 2;
/// Most sessions a manager remembers having indexed; past it, it starts over (indexing again
/// costs one append per session).
const MAX_INDEXED: usize = 100_000;
/// Sessions whose records one sweep reads in one round trip.
const BATCH: usize = 50;
/// The value of a bucket's claim once it was swept.
const DONE: &[u8] = b"done";

/// One session to list under a bucket: the bucket's key, the entry, the item's expiry field.
type Listing = (String, String, u64);

/// The bucket (of `width` seconds) a session alive until `deadline` (Unix seconds) is indexed
/// under at `now`: its own, or the first one that no sweep may have started yet.
fn bucket_of(width: u64, deadline: u64, now: u64) -> u64 {
    (deadline / width).max((now + LAG + 1) / width)
}

/// The latest bucket (of `width` seconds) that may be swept at `now`: ended `LAG` seconds ago.
fn due(width: u64, now: u64) -> Option<u64> {
    (now.saturating_sub(LAG) / width).checked_sub(1)
}

/// A session that ended by expiry, for the host to deliver (`sessionDestroyed`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpiredSession {
    /// Its id, without route.
    pub id: SessionId,
    /// Its last stored data.
    pub session: SessionData,
}

/// What a sweep finds of one listed session.
enum Verdict {
    /// Dealt with already (delivered, invalidated, expired by its host), or never expires.
    Skip,
    /// Alive until this Unix time (seconds): indexed again under its bucket.
    Alive(u64),
    /// Expired, with its last data.
    Expired(SessionData),
    /// Expired, and its data is gone.
    Gone,
    /// Its node cannot tell now: the bucket is swept again later.
    Unknown,
}

/// The expiry events of one manager: what it indexed, and the buckets it knows swept.
#[derive(Debug)]
pub(crate) struct Events {
    config: Arc<Config>,
    store: Arc<NearCached>,
    stats: Arc<Stats>,
    /// The bucket this manager last indexed each session under, by storage part.
    indexed: Mutex<HashMap<String, u64>>,
    /// Buckets known swept, by node.
    swept: Mutex<HashSet<(String, u64)>>,
    /// Sessions a sweep handed to this manager that the host has not taken yet
    /// ([`Events::next_expired`]).
    pending: Mutex<VecDeque<ExpiredSession>>,
}

impl Events {
    pub(crate) fn new(config: Arc<Config>, store: Arc<NearCached>, stats: Arc<Stats>) -> Self {
        Events {
            config,
            store,
            stats,
            indexed: Mutex::default(),
            swept: Mutex::default(),
            pending: Mutex::default(),
        }
    }

    /// Whether expiry events are kept (`sessionEvents="expiry"` or `"broadcast"`).
    pub(crate) fn enabled(&self) -> bool {
        self.config.session_events.expiry()
    }

    /// The width of a bucket in seconds (`eventSweepInterval`).
    fn width(&self) -> u64 {
        self.config.event_sweep_interval.as_secs().max(1)
    }

    fn bucket_of(&self, deadline: u64, now: u64) -> u64 {
        bucket_of(self.width(), deadline, now)
    }

    fn due(&self, now: u64) -> Option<u64> {
        due(self.width(), now)
    }

    /// A request ended with the session `id` (of `max_inactive` seconds), or the host stored
    /// it: indexes it when this manager has not, or when its expiry moved before the bucket it
    /// was indexed under, or when that bucket is due (its sweep indexes it again, unless that
    /// failed). Otherwise sends nothing.
    pub(crate) async fn noticed(&self, id: &SessionId, max_inactive: i32) {
        if !self.enabled() || max_inactive <= 0 {
            return;
        }
        let now = now_millis() / 1000;
        let deadline = now + self.lifetime(max_inactive) + 1;
        let bucket = self.bucket_of(deadline, now);
        let part = id.storage_part();
        let due = self.due(now).unwrap_or(0);
        let seen = self.indexed.lock().get(&part).copied();
        if seen.is_some_and(|seen| seen <= bucket && seen > due) {
            return;
        }
        if self.index(id, deadline, now).await {
            let mut indexed = self.indexed.lock();
            if indexed.len() >= MAX_INDEXED {
                indexed.clear();
            }
            indexed.insert(part, bucket);
        }
    }

    /// How long a session of `max_inactive` seconds stays alive after its last access, as the
    /// sweep tells: its lifetime (non-sticky), or a quarter more (sticky: accesses within a
    /// quarter lifetime of the last backup leave memcached untouched).
    fn lifetime(&self, max_inactive: i32) -> u64 {
        match self.store.copies().layout() {
            Layout::Replicated => u64::try_from(max_inactive).unwrap_or(0),
            Layout::Single => copy_lifetime(max_inactive),
        }
    }

    /// Lists the session `id`, alive until `deadline`, under its bucket (see
    /// [`Events::index_all`]); `false` when it could not be listed.
    async fn index(&self, id: &SessionId, deadline: u64, now: u64) -> bool {
        self.index_all(&[(id.clone(), deadline)], now).await == 1
    }

    /// Lists each session, alive until its deadline (Unix seconds), under its bucket: on its
    /// node, or the next available one when that is down; one round trip per node. Returns how
    /// many were listed; the others are counted as index failures.
    async fn index_all(&self, sessions: &[(SessionId, u64)], now: u64) -> usize {
        let copies = self.store.copies();
        let mut by_node: HashMap<String, (Arc<Node>, Vec<Listing>)> = HashMap::new();
        for (id, deadline) in sessions {
            let node = copies
                .cluster
                .node(id.node())
                .filter(|n| n.is_up())
                .or_else(|| copies.cluster.next_available(id.node()));
            let Some(node) = node else {
                bump(&self.stats.expiry_index_failures);
                tracing::warn!(session = %id.redacted(), "no node to index the session's expiry: its expiry event will be missed");
                continue;
            };
            let bucket = self.bucket_of(*deadline, now);
            let key = copies.config.keys.bucket_key(KeyKind::ExpiryIndex, bucket);
            let ends = (bucket + 1) * self.width() + self.config.event_grace();
            let exptime = expiry(ends.saturating_sub(now).max(1));
            let entry = format!("{} ", id.storage_part());
            by_node
                .entry(node.id().to_owned())
                .or_insert_with(|| (Arc::clone(&node), Vec::new()))
                .1
                .push((key, entry, exptime));
        }
        let mut listed = 0;
        for (node, entries) in by_node.into_values() {
            let commands: Vec<Command<'_>> = entries
                .iter()
                .flat_map(|(key, entry, exptime)| {
                    [
                        Command::Add {
                            key,
                            value: b"",
                            exptime: *exptime,
                        },
                        Command::Append {
                            key,
                            value: entry.as_bytes(),
                        },
                    ]
                })
                .collect();
            let answers = copies.cluster.call(&node, |c| c.pipeline(&commands)).await;
            let appended = match &answers {
                Ok(answers) => answers
                    .iter()
                    .skip(1)
                    .step_by(2)
                    .filter(|a| **a == Answer::Stored)
                    .count(),
                Err(_) => 0,
            };
            listed += appended;
            let missed = entries.len() - appended;
            let count = |n: usize| u64::try_from(n).unwrap_or(u64::MAX);
            (self.stats.expiry_index_appends).fetch_add(count(appended), Relaxed);
            (self.stats.expiry_index_failures).fetch_add(count(missed), Relaxed);
            if missed > 0 {
                let error = answers.err();
                tracing::warn!(
                    node = node.id(),
                    missed,
                    ?error,
                    "sessions' expiries not indexed: their expiry events will be missed"
                );
            }
        }
        listed
    }

    /// Sweeps every due bucket of every node that is up and not known swept (see the module's
    /// documentation) and returns the sessions this manager must deliver as expired.
    /// Sessions handed over earlier and not taken yet come first.
    pub(crate) async fn expired_sessions(&self) -> Result<Vec<ExpiredSession>> {
        let mut expired: Vec<ExpiredSession> = self.pending.lock().drain(..).collect();
        if !self.enabled() {
            return Ok(expired);
        }
        let now = now_millis() / 1000;
        let Some(due) = self.due(now) else {
            return Ok(expired);
        };
        // Older index items have expired.
        let oldest = now.saturating_sub(self.config.event_grace() + self.width()) / self.width();
        self.swept.lock().retain(|(_, bucket)| *bucket >= oldest);
        let nodes = self.store.copies().cluster.nodes();
        for node in nodes.iter().filter(|n| n.is_up()) {
            for bucket in oldest..=due {
                let entry = (node.id().to_owned(), bucket);
                if self.swept.lock().contains(&entry) {
                    continue;
                }
                match self.sweep(node, bucket, &mut expired).await {
                    Ok(true) => {
                        self.swept.lock().insert(entry);
                    }
                    Ok(false) => {}
                    Err(e) => {
                        tracing::warn!(node = node.id(), error = %e, "expired sessions not swept");
                        break;
                    }
                }
            }
        }
        Ok(expired)
    }

    /// The next expired session this host must deliver, one at a time (for hosts that take
    /// them so, like the C face): one handed over earlier, or else the first of a sweep, whose
    /// others wait for the next calls. `None` when there is none now.
    pub(crate) async fn next_expired(&self) -> Result<Option<ExpiredSession>> {
        if let Some(next) = self.pending.lock().pop_front() {
            return Ok(Some(next));
        }
        let mut swept = self.expired_sessions().await?.into_iter();
        let first = swept.next();
        self.pending.lock().extend(swept);
        Ok(first)
    }

    /// Sweeps one bucket of one node when its claim is this manager's; `true` when the bucket
    /// is swept (by this manager or another), `false` when another sweeps it now or some of its
    /// sessions could not be told (the claim lapses and the bucket is swept again).
    async fn sweep(
        &self,
        node: &Node,
        bucket: u64,
        expired: &mut Vec<ExpiredSession>,
    ) -> Result<bool> {
        let copies = self.store.copies();
        let keys = &copies.config.keys;
        let claim = keys.bucket_key(KeyKind::SweepClaim, bucket);
        let claim_ttl = self.width().max(2);
        if !copies
            .cluster
            .call(node, |c| c.add(&claim, b"sweeping", claim_ttl))
            .await?
        {
            let state = copies.cluster.call(node, |c| c.get(&claim)).await?;
            return Ok(state.as_deref() == Some(DONE));
        }
        let index = keys.bucket_key(KeyKind::ExpiryIndex, bucket);
        let listed = copies.cluster.call(node, |c| c.get(&index)).await?;
        // Listed once per host that indexed it, and once per sweep that found it renewed.
        let entries: BTreeSet<&[u8]> = listed
            .as_deref()
            .unwrap_or_default()
            .split(|b| *b == b' ')
            .filter(|entry| !entry.is_empty())
            .collect();
        let ids = entries
            .into_iter()
            .filter_map(|entry| std::str::from_utf8(entry).ok())
            .filter_map(SessionId::parse);
        let mut complete = true;
        let mut renewed = Vec::new();
        for (id, verdict) in self.examine_all(ids.collect()).await {
            // Expired, with its data or without.
            let session = match verdict {
                Verdict::Expired(session) => Some(session),
                Verdict::Gone => None,
                Verdict::Alive(deadline) => {
                    renewed.push((id, deadline));
                    continue;
                }
                Verdict::Skip => continue,
                Verdict::Unknown => {
                    complete = false;
                    continue;
                }
            };
            match self.mark_ended(&id).await {
                Ok(false) => {}
                Ok(true) => match session {
                    Some(session) => {
                        bump(&self.stats.expiry_events_delivered);
                        // Its copies go: a late request must not bring it back.
                        if let Err(e) = self.store.delete(&id).await {
                            tracing::debug!(session = %id.redacted(), error = %e, "expired session's copies not deleted");
                        }
                        expired.push(ExpiredSession { id, session });
                    }
                    None => {
                        bump(&self.stats.expiry_events_undeliverable);
                        tracing::warn!(session = %id.redacted(), "expired session's data is gone from memcached: its expiry event is missed");
                    }
                },
                Err(e) => {
                    tracing::debug!(session = %id.redacted(), error = %e, "expired session not marked ended");
                    complete = false;
                }
            }
        }
        // Renewed: listed again under their later buckets.
        self.index_all(&renewed, now_millis() / 1000).await;
        if complete {
            let done_ttl = expiry(self.config.event_grace() + 2 * self.width());
            copies
                .cluster
                .call(node, |c| c.set(&claim, DONE, done_ttl))
                .await?;
            bump(&self.stats.expiry_buckets_swept);
        }
        Ok(complete)
    }

    /// A session is about to end on its host by timing out there: marks it ended (see
    /// [`Events::mark_ended`]) so that no sweep delivers it again; `true` when the host
    /// announces its end (it marked it, or events are off), `false` when a sweep delivered it
    /// already, or another host ended it. A mark that cannot be written leaves the end to the
    /// host: a sweep that reads its copy later may deliver it a second time (logged).
    pub(crate) async fn claim_end(&self, id: &SessionId) -> bool {
        if !self.enabled() {
            return true;
        }
        match self.mark_ended(id).await {
            Ok(marked) => {
                if !marked {
                    bump(&self.stats.expiry_events_ended_elsewhere);
                }
                marked
            }
            Err(e) => {
                tracing::warn!(session = %id.redacted(), error = %e, "expired session not marked ended: a sweep may deliver its expiry again");
                true
            }
        }
    }

    /// Marks the session `id` ended on its node with `add`: `true` when this manager marked it
    /// (and so deals with its end), `false` when another did first.
    async fn mark_ended(&self, id: &SessionId) -> Result<bool> {
        let copies = self.store.copies();
        let Some(node) = copies.cluster.node(id.node()) else {
            return Ok(true);
        };
        let key = copies.key(KeyKind::Ended, id);
        let exptime = copies.ended_exptime();
        copies
            .cluster
            .call(&node, |c| c.add(&key, b"1", exptime))
            .await
    }

    /// Tells of each listed session whether it expired, from its validity record and its mark
    /// of ending on its node, read for many sessions in one round trip (and, when it expired or
    /// a sticky record is missing, from its copy).
    async fn examine_all(&self, ids: Vec<SessionId>) -> Vec<(SessionId, Verdict)> {
        let copies = self.store.copies();
        let mut by_node: HashMap<String, Vec<SessionId>> = HashMap::new();
        for id in ids {
            by_node.entry(id.node().to_owned()).or_default().push(id);
        }
        let mut verdicts = Vec::new();
        for (node_id, ids) in by_node {
            let Some(node) = copies.cluster.node(&node_id) else {
                // Its node left the cluster, with the session.
                verdicts.extend(ids.into_iter().map(|id| (id, Verdict::Gone)));
                continue;
            };
            for chunk in ids.chunks(BATCH) {
                let keys: Vec<String> = chunk
                    .iter()
                    .flat_map(|id| {
                        [
                            copies.key(KeyKind::Validity, id),
                            copies.key(KeyKind::Ended, id),
                        ]
                    })
                    .collect();
                let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
                let found = match node.is_up() {
                    true => copies
                        .cluster
                        .call(&node, |c| c.get_multi(&refs))
                        .await
                        .ok(),
                    false => None,
                };
                let Some(mut found) = found else {
                    verdicts.extend(chunk.iter().map(|id| (id.clone(), Verdict::Unknown)));
                    continue;
                };
                for (id, keys) in chunk.iter().zip(keys.chunks(2)) {
                    let record = found.remove(&keys[0]);
                    let ended = found.contains_key(&keys[1]);
                    let verdict = self.judge(id, record, ended).await;
                    verdicts.push((id.clone(), verdict));
                }
            }
        }
        verdicts
    }

    /// Tells whether the session `id` expired, from its validity record as read (`record`) and
    /// whether it is marked ended (and, when it expired or a sticky record is missing, from its
    /// copy).
    async fn judge(&self, id: &SessionId, record: Option<Vec<u8>>, ended: bool) -> Verdict {
        let copies = self.store.copies();
        if ended {
            return Verdict::Skip;
        }
        let record =
            record.and_then(|value| Validity::decode(&copies.codec, id.random(), &value).ok());
        let now_ms = now_millis();
        let now = now_ms / 1000;
        let sticky = copies.layout() == Layout::Single;
        match record {
            Some(v) if v == Validity::ENDED => return Verdict::Skip,
            Some(v) if !sticky && v.max_inactive <= 0 => return Verdict::Skip,
            Some(v) if !sticky && !v.expired(now_ms) => {
                let max_inactive = u64::try_from(v.max_inactive).unwrap_or(0);
                return Verdict::Alive(v.last_accessed / 1000 + max_inactive + 1);
            }
            Some(v) if sticky && now <= v.copies_expire => {
                return Verdict::Alive(v.copies_expire + 1);
            }
            _ => {}
        }
        let session = match copies.read_last(id).await {
            Ok(Some(session)) => session,
            Ok(None) | Err(crate::Error::Corrupt(_)) => return Verdict::Gone,
            Err(_) => return Verdict::Unknown,
        };
        if sticky && record.is_none() {
            // No record of its last renewal: its last backup tells.
            if session.max_inactive <= 0 {
                return Verdict::Skip;
            }
            let deadline = session.last_accessed / 1000 + self.lifetime(session.max_inactive) + 1;
            if now <= deadline {
                return Verdict::Alive(deadline);
            }
        }
        Verdict::Expired(session)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_are_indexed_under_buckets_no_sweep_started_and_swept_after_their_deadline() {
        for width in [1, 7, 60] {
            for now in 1_700_000_000..1_700_000_000 + 3 * width {
                for lifetime in [0, 1, width, 10 * width + 3] {
                    let deadline = now + lifetime;
                    let bucket = bucket_of(width, deadline, now);
                    assert!(
                        due(width, now).is_none_or(|due| bucket > due),
                        "{width} {now}"
                    );
                    // Swept only once the whole bucket, its deadline included, lies `LAG` back.
                    let swept_from = (bucket + 1) * width + LAG;
                    assert!(swept_from >= deadline + LAG, "{width} {now} {lifetime}");
                    assert_eq!(due(width, swept_from), Some(bucket));
                    assert_ne!(due(width, swept_from - 1), Some(bucket));
                }
            }
        }
        assert_eq!(due(60, 61), None);
    }
}
