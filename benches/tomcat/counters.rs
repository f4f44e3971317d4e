//! memcached's counters summed over the nodes: commands by kind, bytes each way and evictions,
//! and what a stretch of work added to them, without the `stats` requests that read them.

use crate::common::{Memcached, parse_stats};

/// What each counter reading sends to each node; memcached counts it in `bytes_read`.
const STATS_REQUEST: &[u8] = b"stats\r\n";

/// The kinds of commands, as the tables name them, and the `stats` counters each adds up.
/// memcached counts every store (`set`, `add`, `replace`, `append`, `prepend`, `cas`, and the meta
/// `ms`) in `cmd_set` and every key read in `cmd_get`; `cas` is also shown alone, so it is not part
/// of [`Counters::commands`].
pub const KINDS: [(&str, &[&str]); 6] = [
    ("get", &["cmd_get"]),
    ("set", &["cmd_set"]),
    ("touch", &["cmd_touch"]),
    ("delete", &["delete_hits", "delete_misses"]),
    (
        "incr/decr",
        &["incr_hits", "incr_misses", "decr_hits", "decr_misses"],
    ),
    ("cas", &["cas_hits", "cas_misses", "cas_badval"]),
];

/// Index of `cmd_get` in [`KINDS`].
pub const GET: usize = 0;

/// Index of `cmd_set` in [`KINDS`].
pub const SET: usize = 1;

/// Index of the `cas` counters in [`KINDS`], a part of `cmd_set`.
const CAS: usize = 5;

/// memcached's counters over all nodes, at one moment or as the growth between two.
#[derive(Clone, Copy, Debug, Default)]
pub struct Counters {
    /// Commands of each of [`KINDS`].
    pub by_kind: [u64; KINDS.len()],
    /// Bytes memcached received (`bytes_read`).
    pub received: u64,
    /// Bytes memcached sent (`bytes_written`).
    pub sent: u64,
    /// Items memcached evicted for want of memory (`evictions`).
    pub evictions: u64,
    /// Bytes of the `stats` replies that read this snapshot: memcached counts them after it.
    stats_replies: u64,
    /// Nodes read.
    nodes: u64,
}

impl Counters {
    /// The counters of `nodes` now.
    pub fn read(nodes: &[Memcached]) -> Counters {
        let mut counters = Counters {
            nodes: nodes.len() as u64,
            ..Counters::default()
        };
        for node in nodes {
            let reply = node.raw(STATS_REQUEST, &["END"]);
            let stats = parse_stats(&reply);
            let stat = |name: &str| {
                *stats
                    .get(name)
                    .unwrap_or_else(|| panic!("memcached's stats have no {name}"))
            };
            for (count, (_, names)) in counters.by_kind.iter_mut().zip(KINDS) {
                *count += names.iter().map(|name| stat(name)).sum::<u64>();
            }
            counters.received += stat("bytes_read");
            counters.sent += stat("bytes_written");
            counters.evictions += stat("evictions");
            counters.stats_replies += reply.len() as u64;
        }
        counters
    }

    /// What the nodes did between `before` and this snapshot, both read with [`Counters::read`]:
    /// the `stats` reply of `before` and the `stats` request of this one taken off.
    pub fn since(&self, before: &Counters) -> Counters {
        let mut by_kind = self.by_kind;
        for (count, earlier) in by_kind.iter_mut().zip(before.by_kind) {
            *count -= earlier;
        }
        Counters {
            by_kind,
            received: self.received - before.received - STATS_REQUEST.len() as u64 * self.nodes,
            sent: self.sent - before.sent - before.stats_replies,
            evictions: self.evictions - before.evictions,
            stats_replies: 0,
            nodes: self.nodes,
        }
    }

    /// Commands of every kind (`cas` being part of `set`).
    pub fn commands(&self) -> u64 {
        self.by_kind
            .iter()
            .enumerate()
            .filter(|(kind, _)| *kind != CAS)
            .map(|(_, count)| count)
            .sum()
    }

    /// Bytes both ways.
    pub fn bytes(&self) -> u64 {
        self.received + self.sent
    }

    /// The sum of `counters`, growths each.
    pub fn sum<'a>(counters: impl IntoIterator<Item = &'a Counters>) -> Counters {
        let mut total = Counters::default();
        for counters in counters {
            for (count, more) in total.by_kind.iter_mut().zip(counters.by_kind) {
                *count += more;
            }
            total.received += counters.received;
            total.sent += counters.sent;
            total.evictions += counters.evictions;
            total.nodes = counters.nodes;
        }
        total
    }
}
