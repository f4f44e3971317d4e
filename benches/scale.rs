//! Memory the core holds per session in sticky mode, with many sessions: what a Tomcat of a
//! hundred thousand sessions pays for this manager besides the sessions themselves.
//!
//! ```text
//! cargo bench --bench scale
//! MSM_BENCH_SESSIONS=1000000 cargo bench --bench scale
//! ```
//!
//! One memcached of its own (the test harness, with room for every session) and, per
//! configuration, a sticky manager. Each session (one attribute of 1 KiB) goes through the
//! lifecycle a host runs for a request that creates it (begin, end with the session used), its
//! backup waited for, then a second request that changes it. The heap the process holds is
//! counted by a counting allocator (bytes asked for, without the allocator's own overhead, and
//! the number of blocks: glibc adds about 8 bytes to each) before the first session and after
//! the last, once every backup is done; the difference divided by the number of sessions is
//! printed per configuration: whole sessions (`updateGranularity="session"`, the default) and
//! attribute by attribute (`updateGranularity="attribute"`, which remembers what memcached
//! holds of each attribute).
//!
//! Environment: `MSM_BENCH_SESSIONS` (default 100000).

#[path = "../tests/common/mod.rs"]
mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicI64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use common::{Memcached, env_or, manager};
use msm::ids::{OsRandom, RandomSource};
use msm::runtime::block_on;
use msm::{Outcome, RequestStart, SessionData, SessionId, SessionManager};

/// The system allocator, counting the bytes and blocks live.
struct Counting;

static BYTES: AtomicI64 = AtomicI64::new(0);
static BLOCKS: AtomicI64 = AtomicI64::new(0);

// SAFETY: every call is passed to the system allocator as it came; only counters are added.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as the caller promised for `layout`.
        let block = unsafe { System.alloc(layout) };
        if !block.is_null() {
            BYTES.fetch_add(layout.size() as i64, Relaxed);
            BLOCKS.fetch_add(1, Relaxed);
        }
        block
    }

    unsafe fn dealloc(&self, block: *mut u8, layout: Layout) {
        // SAFETY: as the caller promised for `block` and `layout`.
        unsafe { System.dealloc(block, layout) };
        BYTES.fetch_sub(layout.size() as i64, Relaxed);
        BLOCKS.fetch_sub(1, Relaxed);
    }

    unsafe fn realloc(&self, block: *mut u8, layout: Layout, size: usize) -> *mut u8 {
        // SAFETY: as the caller promised for `block`, `layout` and `size`.
        let moved = unsafe { System.realloc(block, layout, size) };
        if !moved.is_null() {
            BYTES.fetch_add(size as i64 - layout.size() as i64, Relaxed);
        }
        moved
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

const ATTRIBUTE_SIZE: usize = 1024;

/// Heap bytes and blocks live now.
fn heap() -> (i64, i64) {
    (BYTES.load(Relaxed), BLOCKS.load(Relaxed))
}

/// One request of the session `id` that leaves it holding `value`, backed up before it returns.
fn request(m: &SessionManager, id: &SessionId, value: u8) {
    let raw = id.to_string();
    let start = RequestStart {
        session_id: Some(&raw),
        uri: "/",
        route: None,
    };
    let mut session = SessionData::new(1800);
    session
        .attributes
        .insert("a0".into(), vec![value; ATTRIBUTE_SIZE]);
    block_on(async {
        let mut request = m.begin(start).await?;
        let outcome = Outcome::Used {
            id: &raw,
            session,
            previous: None,
        };
        m.end(&mut request, outcome).await
    })
    .expect("request");
}

fn main() {
    let sessions = usize::try_from(env_or("MSM_BENCH_SESSIONS", 100_000)).expect("a count");
    // Room for every session: evictions would not change the core's memory, but keep it real.
    let megabytes = (sessions * 2 * ATTRIBUTE_SIZE / (1 << 20) + 64).to_string();
    let server = Memcached::start_with(&["-m", &megabytes]);
    println!("{sessions} sessions of one 1 KiB attribute, sticky, backups waited for");
    println!("granularity  bytes/session  blocks/session  seconds");
    for granularity in ["session", "attribute"] {
        let m = manager(
            &[&server],
            &[
                ("sessionBackupAsync", "false"),
                ("sessionBackupTimeout", "5000"),
                ("operationTimeout", "5000"),
                ("updateGranularity", granularity),
            ],
        );
        let ids: Vec<SessionId> = (0..sessions)
            .map(|_| SessionId::new(&OsRandom.random_part(), "n1", None).expect("an id"))
            .collect();
        // Connections, the runtime and the first allocations of each structure come first.
        request(&m, &ids[0], 0);
        let (bytes, blocks) = heap();
        let started = Instant::now();
        for id in &ids[1..] {
            request(&m, id, 1);
            request(&m, id, 2);
        }
        assert_eq!(
            m.flush(Duration::from_secs(30)),
            0,
            "backups still in flight"
        );
        let (held, blocks_held) = heap();
        let per = |n: i64| (n as f64 / (sessions - 1) as f64).round();
        println!(
            "{granularity:<11}  {:>13}  {:>14}  {:>7.1}",
            per(held - bytes),
            per(blocks_held - blocks),
            started.elapsed().as_secs_f64()
        );
        let stored = m.stats().session_backups.load(Relaxed);
        assert_eq!(
            stored as usize,
            2 * sessions - 1,
            "every change backed up once"
        );
    }
}
