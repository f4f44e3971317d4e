//! What expiry events (`sessionEvents="expiry"`) cost in memcached commands: per request, per
//! sweep of a bucket, per session a sweep finds expired or renewed, and per session that times
//! out on its sticky host, with events off and on.
//!
//! ```text
//! cargo bench --bench events
//! ```
//!
//! Two memcached nodes of its own (the test harness) and managers over them, non-sticky and
//! sticky (synchronous backups, so that every write has landed when a request ends), with
//! `eventSweepInterval=1` so that buckets come due within seconds (the commands do not depend
//! on the interval). Every figure is the difference of memcached's own counters (`stats`)
//! around the work, split as `[keys read, storage commands, touches, deletes]`: `cmd_get` counts
//! each key of a multi-key get, `cmd_set` each `set`, `add` and `append`, and deletes are
//! `delete_hits + delete_misses`. The work is run by this thread alone, one call at a time, so
//! nothing else moves the counters. Environment: `MSM_BENCH_SESSIONS` (sessions per sweep
//! figure, default 200).

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::Duration;

use common::{Memcached, command_totals, create_session, env_or, manager, stat, touch_session};
use msm::runtime::block_on;
use msm::{SessionId, SessionManager};

/// `[keys read, storage commands, touches, deletes]`.
type Counts = [u64; 4];

/// The commands the nodes received while `work` ran.
fn counted<T>(nodes: &[&Memcached], work: impl FnOnce() -> T) -> (T, Counts) {
    let before = command_totals(nodes);
    let result = work();
    let after = command_totals(nodes);
    (result, [0, 1, 2, 3].map(|i| after[i] - before[i]))
}

/// `counts` divided by `n`, as text: `[gets, sets, touches, deletes] = total`.
fn per(counts: Counts, n: u64) -> String {
    let n = n.max(1) as f64;
    let each = counts.map(|c| c as f64 / n);
    format!(
        "[{:.2} get, {:.2} set, {:.2} touch, {:.2} delete] = {:.2}",
        each[0],
        each[1],
        each[2],
        each[3],
        each.iter().sum::<f64>()
    )
}

/// `a - b`, counter by counter.
fn minus(a: Counts, b: Counts) -> Counts {
    [0, 1, 2, 3].map(|i| a[i].saturating_sub(b[i]))
}

/// `counts` times `n`.
fn times(counts: [f64; 4], n: u64) -> Counts {
    counts.map(|c| (c * n as f64).round() as u64)
}

/// The attributes of a mode: non-sticky, or sticky with synchronous backups; with events on.
fn attributes(sticky: bool, events: bool) -> Vec<(&'static str, &'static str)> {
    let mut pairs = vec![
        ("sticky", if sticky { "true" } else { "false" }),
        ("sessionBackupAsync", "false"),
    ];
    if events {
        pairs.extend([("sessionEvents", "expiry"), ("eventSweepInterval", "1")]);
    }
    pairs
}

/// Per request, events off and on: a request creating a session, then 50 reading it (unchanged)
/// and 50 changing it.
fn per_request(sticky: bool) {
    for events in [false, true] {
        let (n1, n2) = (Memcached::start(), Memcached::start());
        let nodes = [&n1, &n2];
        let m = manager(&nodes, &attributes(sticky, events));
        let (id, creating) = counted(&nodes, || create_session(&m, 1800));
        let mut held = sticky.then(|| block_on(m.load(&id)).unwrap().unwrap().session);
        let mut run = |change: bool| {
            counted(&nodes, || {
                for i in 0..50u32 {
                    // A reading request sends the session's attributes back as they were.
                    let value = if change { format!("c{i}") } else { "0".into() };
                    touch_session(&m, &id, held.clone(), Some(1800), value.as_bytes());
                    if let Some(held) = &mut held {
                        held.attributes.insert("n".into(), value.into_bytes());
                    }
                }
            })
            .1
        };
        // The first run sets the attribute the reading requests then leave as it is.
        run(false);
        let reading = run(false);
        let changing = run(true);
        let events = if events { "on " } else { "off" };
        println!(
            "  events {events}  creating a session: {}",
            per(creating, 1)
        );
        println!("              reading it:         {}", per(reading, 50));
        println!("              changing it:        {}", per(changing, 50));
    }
}

/// Polls `m` once; how many sessions it was handed.
fn poll(m: &SessionManager) -> usize {
    block_on(m.expired_sessions()).unwrap().len()
}

/// How many buckets (of one node each) `m` swept so far.
fn swept(m: &SessionManager) -> u64 {
    stat(m, "expiry_buckets_swept")
}

/// Per sweep: per empty bucket (for the sweeper, and for another manager that finds it swept),
/// per session found expired, per session found renewed (listed again); then a session timing
/// out on its sticky host, events off and on.
fn per_sweep(sticky: bool, sessions: u64) {
    let (n1, n2) = (Memcached::start(), Memcached::start());
    let nodes = [&n1, &n2];
    let mode = attributes(sticky, true);
    let sweeper = manager(&nodes, &mode);
    let other = manager(&nodes, &mode);
    let host = manager(&nodes, &mode);

    // Empty buckets: the first poll sweeps every bucket that may still hold sessions.
    let before = swept(&sweeper);
    let (_, sweeping) = counted(&nodes, || poll(&sweeper));
    let buckets = swept(&sweeper) - before;
    let (_, finding) = counted(&nodes, || poll(&other));
    println!(
        "  an empty bucket, per node ({buckets} buckets): the sweeper {}; another manager polling \
         {}",
        per(sweeping, buckets),
        per(finding, buckets)
    );
    let empty = sweeping.map(|c| c as f64 / buckets.max(1) as f64);

    // Expired sessions: created on `host`, which never polls, and left to expire.
    for _ in 0..sessions {
        create_session(&host, 1);
    }
    assert_eq!(host.flush(Duration::from_secs(5)), 0);
    std::thread::sleep(Duration::from_secs(6));
    let before = swept(&sweeper);
    let (delivered, counts) = counted(&nodes, || poll(&sweeper));
    let buckets = swept(&sweeper) - before;
    assert_eq!(delivered as u64, sessions, "every session delivered");
    println!(
        "  an expired session ({sessions}, in {buckets} buckets, their cost taken out): {}",
        per(minus(counts, times(empty, buckets)), sessions)
    );

    // Renewed sessions: indexed under the bucket of a 2 s lifetime, then used with a lifetime
    // of a minute (which indexes nothing: the old bucket comes first): its sweep lists them
    // again under their later bucket.
    let ids: Vec<SessionId> = (0..sessions).map(|_| create_session(&host, 2)).collect();
    for id in &ids {
        let held = sticky.then(|| block_on(host.load(id)).unwrap().unwrap().session);
        touch_session(&host, id, held, Some(60), b"renewed");
    }
    assert_eq!(host.flush(Duration::from_secs(5)), 0);
    std::thread::sleep(Duration::from_secs(7));
    let before = swept(&sweeper);
    let (delivered, counts) = counted(&nodes, || poll(&sweeper));
    let buckets = swept(&sweeper) - before;
    assert_eq!(delivered, 0, "renewed sessions are not delivered");
    println!(
        "  a renewed session ({sessions}, in {buckets} buckets, their cost taken out): {}",
        per(minus(counts, times(empty, buckets)), sessions)
    );

    if sticky {
        // A held session timing out on its host: `ending` (events on: the host's claim of its
        // end) then `ended` (its copies deleted), with events off and on.
        for events in [false, true] {
            let m = manager(&nodes, &attributes(true, events));
            let ids: Vec<SessionId> = (0..sessions).map(|_| create_session(&m, 60)).collect();
            let long_ago = msm::session::now_millis() - 120_000;
            let (_, counts) = counted(&nodes, || {
                for id in &ids {
                    let announced = msm::runtime::handle().block_on(m.ending(id, long_ago, 60));
                    assert!(announced, "announced by its host");
                    block_on(m.ended(id, long_ago, 60)).unwrap();
                }
            });
            let events = if events { "on " } else { "off" };
            println!(
                "  a session timing out on its host, events {events}: {}",
                per(counts, sessions)
            );
        }
    }
}

fn main() {
    let sessions = env_or("MSM_BENCH_SESSIONS", 200);
    for (sticky, name) in [
        (false, "non-sticky"),
        (true, "sticky (synchronous backups)"),
    ] {
        println!("== {name}: memcached commands per request");
        per_request(sticky);
        println!("== {name}: memcached commands per sweep (eventSweepInterval=1)");
        per_sweep(sticky, sessions);
    }
}
