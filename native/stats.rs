//! Counters and timings of one manager, readable as text by any host.

mod timing;

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

pub use timing::Timing;

use crate::envelope::CorruptKind;

macro_rules! counters {
    ($($(#[$doc:meta])* $name:ident),* $(,)?) => {
        /// Every counter of a manager. All are monotonic.
        #[derive(Debug, Default)]
        pub struct Stats {
            $($(#[$doc])* pub $name: AtomicU64,)*
            /// Time to store a session (all copies).
            pub store_time: Timing,
            /// Time to load a session (failover included).
            pub load_time: Timing,
            /// Time to write a sticky session backup.
            pub backup_time: Timing,
            /// Time spent waiting for session locks.
            pub lock_wait_time: Timing,
            /// Time a request spent in the manager, as its host waited for it: its begin (the
            /// lock included), its lookups and its end (a synchronous backup included).
            pub request_time: Timing,
        }

        impl Stats {
            /// All counters and timings as `name value` lines, in a fixed order.
            pub fn to_text(&self) -> String {
                let mut out = String::new();
                $(let _ = writeln!(out, "{} {}", stringify!($name), self.$name.load(Relaxed));)*
                self.store_time.write("store_time", &mut out);
                self.load_time.write("load_time", &mut out);
                self.backup_time.write("backup_time", &mut out);
                self.lock_wait_time.write("lock_wait_time", &mut out);
                self.request_time.write("request_time", &mut out);
                out
            }
        }
    };
}

counters! {
    /// Session ids generated.
    ids_generated,
    /// Generated ids that collided with a reserved one and were drawn again.
    id_collisions,
    /// Ids handed out without a cluster-wide reservation because no node was reachable.
    ids_unreserved,
    /// Session ids refused by the parser (forged, malformed or hostile).
    invalid_ids,
    /// Sessions written to their primary node.
    sessions_stored,
    /// Sessions found by a load.
    sessions_loaded,
    /// Loads that found no session.
    sessions_missing,
    /// Sessions whose expiry was renewed.
    sessions_touched,
    /// Non-sticky: accesses that left the session's validity record as it was, since it had been
    /// renewed less than a second before (see `RENEWAL_LAG_MS`).
    renewals_skipped,
    /// Sessions deleted.
    sessions_deleted,
    /// Sessions moved to another node because theirs failed.
    sessions_relocated,
    /// Non-sticky: second copies written.
    second_copies_written,
    /// Non-sticky: second copies not written because no other node was available.
    second_copies_skipped,
    /// Non-sticky: second copies that failed to write.
    second_copies_failed,
    /// Non-sticky: sessions read from their second copy.
    second_copies_loaded,
    /// Sticky mode: sessions written to memcached after a request changed them.
    session_backups,
    /// Sticky mode: requests whose session had not changed, so nothing was sent.
    session_backups_skipped,
    /// Sticky mode: unchanged sessions whose memcached expiry was renewed.
    session_backups_refreshed,
    /// Sticky mode: writes handed to the background.
    session_backups_queued,
    /// Sticky mode: waiting writes replaced by a newer one of the same session.
    session_backups_coalesced,
    /// Sticky mode: writes done on the request thread because the background queue was full.
    session_backups_queue_full,
    /// Sticky mode: writes or renewals that failed.
    session_backups_failed,
    /// Sessions expired by the host whose memcached copy was newer, so it was kept.
    expired_newer_kept,
    /// Values that failed the integrity tag or the decoder (all of the `corrupt_` kinds below).
    corrupt_values,
    /// Corrupt values that were not an envelope or record, too short, oversized, or undecodable
    /// although their tag verified.
    corrupt_malformed,
    /// Corrupt values in a format version newer than this one reads.
    corrupt_future_version,
    /// Corrupt values signed or encrypted with a key that is not configured.
    corrupt_unknown_key,
    /// Corrupt values carrying only a checksum while keys are configured.
    corrupt_unsigned,
    /// Corrupt values whose integrity tag did not match (altered, truncated, or copied from
    /// another session or context).
    corrupt_tag_mismatch,
    /// Sessions refused for exceeding a size limit.
    too_large,
    /// `updateGranularity="attribute"`: attribute items written.
    attribute_items_written,
    /// `updateGranularity="attribute"`: attribute items an index named that memcached no longer
    /// held (left out of their session).
    attribute_items_missing,
    /// `updateGranularity="attribute"`: items of attribute versions no index names any more
    /// (replaced or removed), deleted once the index that replaced them was stored.
    attribute_items_deleted,
    /// `updateGranularity="attribute"`: attribute versions a read took from this host's earlier
    /// copy of the session (the near cache's) instead of fetching them.
    attribute_items_reused,
    /// `updateGranularity="attribute"`: items of attribute versions no index names any more
    /// that were left to expire with their session instead of deleted (their node failed, or
    /// too many deletions were waiting).
    attribute_items_left,
    /// `updateGranularity="attribute"`: reads that found an item their index named gone and
    /// read the index again (a writer had stored a newer one in between).
    attribute_index_rereads,
    /// `updateGranularity="attribute"`: indexes merged with another writer's.
    attribute_index_merges,
    /// `updateGranularity="attribute"`: writes of sessions with more attributes than are stored
    /// attribute by attribute, written whole instead.
    attribute_sessions_written_whole,
    /// Operations that failed on a node (timeout, I/O, protocol).
    failed_operations,
    /// Operations that timed out.
    timeouts,
    /// Times a node was marked down.
    nodes_marked_down,
    /// Times a down node answered a probe and was marked up.
    nodes_recovered,
    /// Session locks acquired.
    locks_acquired,
    /// Session locks handed from a request to the next one of this host without being released.
    locks_handed_over,
    /// Non-sticky: loads that took the session as read in the round trip that took its lock.
    loads_with_lock,
    /// Lock attempts that found the lock taken and backed off.
    lock_retries,
    /// Lock acquisitions that gave up after `lockMaxWait`.
    lock_timeouts,
    /// Unlocks that found the lock expired or taken over by another holder.
    locks_lost,
    /// Reads of the shared node list: at start, periodic, on request, for unknown nodes.
    shared_list_reads,
    /// Reads for session ids naming unknown nodes skipped by the rate limit (one a second).
    shared_list_reads_limited,
    /// Versions of the shared node list this manager wrote.
    shared_list_published,
    /// Newer versions of the shared node list this manager adopted.
    shared_list_adopted,
    /// Writes of the shared node list that lost a race with another manager and were redone.
    shared_list_conflicts,
    /// Shared node list records refused: integrity tag, format, or an invalid node list.
    shared_lists_refused,
    /// Sessions served from the near cache because the cluster could not serve them.
    near_cache_served,
    /// Sessions kept in the near cache because the cluster could not take them.
    near_cache_stored,
    /// Near-cache copies written back to the cluster after it answered again.
    near_cache_written_back,
    /// Near-cache copies dropped at write-back because the cluster held a newer one, or said
    /// the session ended.
    near_cache_superseded,
    /// Near-cache copies dropped to stay within its bounds.
    near_cache_evicted,
    /// Distributed events: sessions indexed under the time bucket of their expiry (one append
    /// each: a session seen for the first time, or moved to a later bucket by a sweep).
    expiry_index_appends,
    /// Distributed events: buckets of expiring sessions this manager swept.
    expiry_buckets_swept,
    /// Distributed events: expired sessions handed to this host to deliver.
    expiry_events_delivered,
    /// Distributed events: expired sessions whose end could not be delivered: their data was
    /// gone from memcached (evicted, lost with a node).
    expiry_events_undeliverable,
    /// Distributed events: sessions that could not be indexed under their expiry's bucket (no
    /// node up, or its node failed): missed unless a host indexes them again later.
    expiry_index_failures,
    /// Distributed events: sessions that timed out on this host whose end it did not announce:
    /// a sweep had delivered their expiry already, or another host ended them.
    expiry_events_ended_elsewhere,
    /// Broadcast events this manager published (appended to the context's log).
    broadcast_events_published,
    /// Broadcast events that could not be published (no node up, a write that failed, a log
    /// item over memcached's size limit): the other managers never hear them.
    broadcast_events_unpublished,
    /// Broadcast events of other managers this manager heard.
    broadcast_events_heard,
    /// Records of the context's log that were refused (a tag that does not verify, a record
    /// that does not decode): what memcached returned was not written by a manager of this
    /// context.
    broadcast_records_refused,
}

impl Stats {
    /// Counts a refused value, in all and by its kind.
    pub(crate) fn count_corrupt(&self, kind: CorruptKind) {
        bump(&self.corrupt_values);
        bump(match kind {
            CorruptKind::Malformed => &self.corrupt_malformed,
            CorruptKind::FutureVersion => &self.corrupt_future_version,
            CorruptKind::UnknownKey => &self.corrupt_unknown_key,
            CorruptKind::Unsigned => &self.corrupt_unsigned,
            CorruptKind::TagMismatch => &self.corrupt_tag_mismatch,
        });
    }
}

/// Adds one to a counter.
pub(crate) fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Relaxed);
}

/// Adds `n` to a counter.
pub(crate) fn bump_by(counter: &AtomicU64, n: usize) {
    counter.fetch_add(n as u64, Relaxed);
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn text_lists_counters_and_timings() {
        let stats = Stats::default();
        bump(&stats.sessions_stored);
        stats.store_time.record(Duration::from_micros(10));
        stats.store_time.record(Duration::from_micros(30));
        let text = stats.to_text();
        assert!(text.contains("sessions_stored 1\n"));
        assert!(text.contains("store_time_count 2\n"));
        assert!(text.contains("store_time_min_us 10\n"));
        assert!(text.contains("store_time_avg_us 20\n"));
        assert!(text.contains("store_time_p50_us 10\n"));
        assert!(text.contains("store_time_p99_us 30\n"));
        assert!(text.contains("store_time_max_us 30\n"));
        assert!(text.contains("request_time_p999_us 0\n"));
        assert!(text.contains("load_time_min_us 0\n"));
    }
}
