//! Per-attribute updates against whole-session writes: the same non-sticky request, side by
//! side in one run.
//!
//! ```text
//! cargo bench --bench granularity
//! ```
//!
//! Two memcached nodes of its own (the test harness) and, per mode, two managers over them (two
//! non-sticky Tomcats behind a round-robin balancer), writing whole sessions
//! (`updateGranularity="session"`) or attribute by attribute. N worker threads each own a
//! session and loop one request through the lifecycle a host runs (begin, lookup, end) that
//! changes one attribute of its session, sending its requests to the two managers in turn: each
//! request reads what the other manager wrote. Two session shapes: 10 attributes of 1 KiB (one
//! changes), and 1 attribute of 1 KiB (the overhead case). Modes alternate over rounds, the
//! first mode rotating, so noise spreads over both.
//!
//! Printed per shape and mode: requests/s, bytes the servers received and sent per request,
//! memcached operations per request (keys read, stores, touches, deletes), and this process's
//! CPU time per request (user + system); then each figure of `attribute` divided by that of
//! `session` (the ratio row), which holds better than the figures themselves on a shared
//! machine.
//!
//! Environment: `MSM_BENCH_TASKS` (worker threads, default 8), `MSM_BENCH_SECS` (seconds per
//! mode per round, default 5), `MSM_BENCH_ROUNDS` (default 3).

#[path = "../tests/common/mod.rs"]
mod common;

use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use common::{Memcached, command_totals, env_or, manager};
use msm::runtime::block_on;
use msm::{HostCopy, Lookup, Outcome, RequestStart, SessionData, SessionId, SessionManager};

const ATTRIBUTE_SIZE: usize = 1024;
const MODES: [&str; 2] = ["session", "attribute"];

/// One request that changes the attribute `a0` of the session `id` to `value`.
fn request(m: &SessionManager, id: &str, value: u64) -> msm::Result<()> {
    block_on(async {
        let start = RequestStart {
            session_id: Some(id),
            uri: "/",
            route: None,
        };
        let mut request = m.begin(start).await?;
        let Lookup::Found(loaded) = m.lookup(&mut request, id, HostCopy::None).await else {
            return Err(msm::Error::Unavailable);
        };
        let mut session = loaded.session;
        let mut changed = vec![0u8; ATTRIBUTE_SIZE];
        changed[..8].copy_from_slice(&value.to_le_bytes());
        session.attributes.insert("a0".into(), changed);
        let outcome = Outcome::Used {
            id,
            session,
            previous: None,
        };
        m.end(&mut request, outcome).await.map(|_| ())
    })
}

/// A stored session of `attributes` attributes of 1 KiB.
fn session(m: &SessionManager, attributes: usize) -> SessionId {
    let id = block_on(m.new_session_id(None)).expect("new id");
    let mut session = SessionData::new(1800);
    for i in 0..attributes {
        session
            .attributes
            .insert(format!("a{i}"), vec![i as u8; ATTRIBUTE_SIZE]);
    }
    block_on(m.store(&id, &mut session)).expect("store");
    id
}

/// This process's CPU time so far.
fn cpu() -> Duration {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::uninit();
    // SAFETY: getrusage fills the struct it is given.
    let usage = unsafe {
        libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr());
        usage.assume_init()
    };
    let time = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    time(usage.ru_utime) + time(usage.ru_stime)
}

/// What one mode did in one run.
#[derive(Default, Clone, Copy)]
struct Tally {
    requests: u64,
    errors: u64,
    elapsed: Duration,
    cpu: Duration,
    bytes: u64,
    bytes_out: u64,
    commands: u64,
}

impl std::ops::AddAssign for Tally {
    fn add_assign(&mut self, o: Self) {
        self.requests += o.requests;
        self.errors += o.errors;
        self.elapsed += o.elapsed;
        self.cpu += o.cpu;
        self.bytes += o.bytes;
        self.bytes_out += o.bytes_out;
        self.commands += o.commands;
    }
}

/// Every worker runs requests on its own session for `duration`, to the managers `hosts` in
/// turn.
fn run(
    hosts: &[Arc<SessionManager>; 2],
    ids: &[SessionId],
    nodes: &[&Memcached],
    duration: Duration,
) -> Tally {
    let stat = |name: &str| nodes.iter().map(|n| n.stat(name)).sum::<u64>();
    let commands = || command_totals(nodes).iter().sum::<u64>();
    let (bytes_before, bytes_out_before) = (stat("bytes_read"), stat("bytes_written"));
    let (commands_before, cpu_before) = (commands(), cpu());
    let barrier = Barrier::new(ids.len());
    let started = Instant::now();
    let tallies: Vec<(u64, u64)> = std::thread::scope(|scope| {
        let workers: Vec<_> = ids
            .iter()
            .map(|id| {
                let (barrier, id) = (&barrier, id.to_string());
                scope.spawn(move || {
                    barrier.wait();
                    let (mut done, mut errors) = (0, 0);
                    let until = Instant::now() + duration;
                    while Instant::now() < until {
                        let host = &hosts[(done + errors) as usize % 2];
                        match request(host, &id, done) {
                            Ok(()) => done += 1,
                            Err(_) => errors += 1,
                        }
                    }
                    (done, errors)
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap()).collect()
    });
    Tally {
        requests: tallies.iter().map(|t| t.0).sum(),
        errors: tallies.iter().map(|t| t.1).sum(),
        elapsed: started.elapsed(),
        cpu: cpu() - cpu_before,
        bytes: stat("bytes_read") - bytes_before,
        bytes_out: stat("bytes_written") - bytes_out_before,
        commands: commands() - commands_before,
    }
}

fn main() {
    let tasks = env_or("MSM_BENCH_TASKS", 8) as usize;
    let secs = env_or("MSM_BENCH_SECS", 5);
    let rounds = env_or("MSM_BENCH_ROUNDS", 3);
    let (m1, m2) = (Memcached::start(), Memcached::start());
    let nodes = [&m1, &m2];
    let managers: Vec<[Arc<SessionManager>; 2]> = MODES
        .iter()
        .map(|granularity| {
            let attributes = [
                ("sticky", "false"),
                ("lockingMode", "none"),
                ("updateGranularity", granularity),
                ("operationTimeout", "5000"),
                ("nodeProbeInterval", "1000"),
            ];
            [manager(&nodes, &attributes), manager(&nodes, &attributes)]
        })
        .collect();
    println!(
        "granularity: {tasks} tasks, {secs} s per mode, {rounds} rounds; one attribute of \
         {ATTRIBUTE_SIZE} B changes per request; two memcached nodes"
    );
    for attributes in [10, 1] {
        let ids: Vec<Vec<SessionId>> = managers
            .iter()
            .map(|hosts| (0..tasks).map(|_| session(&hosts[0], attributes)).collect())
            .collect();
        for (hosts, ids) in managers.iter().zip(&ids) {
            run(hosts, ids, &nodes, Duration::from_millis(500));
        }
        let mut totals = [Tally::default(); MODES.len()];
        for round in 0..rounds {
            let mut order: Vec<usize> = (0..MODES.len()).collect();
            order.rotate_left(round as usize % MODES.len());
            for mode in order {
                let tally = run(
                    &managers[mode],
                    &ids[mode],
                    &nodes,
                    Duration::from_secs(secs),
                );
                totals[mode] += tally;
            }
        }
        println!("\nsession of {attributes} x {ATTRIBUTE_SIZE} B:");
        println!(
            "{:<10} {:>10} {:>14} {:>14} {:>14} {:>14} {:>7}",
            "mode",
            "requests/s",
            "bytes in/req",
            "bytes out/req",
            "ops/request",
            "cpu µs/req",
            "errors"
        );
        let figures = totals.map(|t| {
            let per = |x: f64| x / t.requests.max(1) as f64;
            [
                t.requests as f64 / t.elapsed.as_secs_f64(),
                per(t.bytes as f64),
                per(t.bytes_out as f64),
                per(t.commands as f64),
                per(t.cpu.as_secs_f64() * 1e6),
            ]
        });
        for ((mode, t), f) in MODES.iter().zip(totals).zip(figures) {
            println!(
                "{:<10} {:>10.0} {:>14.0} {:>14.0} {:>14.2} {:>14.1} {:>7}",
                mode, f[0], f[1], f[2], f[3], f[4], t.errors
            );
        }
        // The figures of one run side by side: on a shared machine the ratios are what holds.
        let [whole, split] = figures;
        println!(
            "{:<10} {:>10.2} {:>14.2} {:>14.2} {:>14.2} {:>14.2}",
            "ratio",
            split[0] / whole[0],
            split[1] / whole[1],
            split[2] / whole[2],
            split[3] / whole[3],
            split[4] / whole[4]
        );
    }
}
