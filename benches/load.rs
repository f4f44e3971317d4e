//! Load benchmark: msm's blocking store + load against raw memcached set + get, same server, same
//! process, same value size.
//!
//! Run with `cargo bench --bench load`. Starts one memcached of its own (the test harness, which
//! needs `memcached` installed) and compares two modes, each run by N worker threads:
//!
//! - `msm`: each worker owns one session (its id from `SessionManager::new_session_id`) and loops
//!   `runtime::block_on(manager.store(..))` then `runtime::block_on(manager.load(..))`, exactly as
//!   a host thread does through the C ABI. One shared manager, sticky, so one memcached `set` per
//!   store and one `get` per load.
//! - `baseline`: each worker has its own `memcache::Client` (text protocol) and loops a raw `set`
//!   then `get` of a value as large as msm's encoded envelope, under a key as long as msm's.
//! - `raw`: the floor: each worker has one plain blocking `TcpStream` and writes each `set` and
//!   `get` as a single send, reading the reply through a buffer; no pool, no checks. The
//!   `memcache` crate checks each pooled connection with a `version` round trip and writes
//!   commands in many small sends, so it is slower than the server allows; `raw` shows what
//!   the server allows.
//! - `msm-tls`: `msm` against a second memcached serving TLS only (`-Z`, a certificate of a CA
//!   made here, ECDSA P-256), the manager configured with `tls` and `tlsCaFile`: what TLS costs.
//!
//! The session: 10 attributes of 100 bytes each (names `attribute0`..`attribute9`), FORM login,
//! CRC-32 envelope (no integrity key). The modes alternate over several rounds, and which mode goes
//! first alternates too, to spread noise over both.
//!
//! Environment:
//! - `MSM_BENCH_TASKS`: worker threads (default 8);
//! - `MSM_BENCH_SECS`: seconds per mode per round (default 5);
//! - `MSM_BENCH_ROUNDS`: rounds (default 3).
//!
//! With the defaults the run takes about 3 x 2 x 5 s plus a second of warm-up.

#[path = "../tests/common/mod.rs"]
mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::sync::Barrier;
use std::time::{Duration, Instant};

use common::env_or;
use msm::envelope::Codec;
use msm::ids::{OsRandom, RandomSource};
use msm::keys::KeyKind;
use msm::{SessionData, SessionId, SessionManager, runtime};

const ATTRIBUTES: usize = 10;
const ATTRIBUTE_SIZE: usize = 100;
const WARM_UP: Duration = Duration::from_millis(500);

/// The benchmark session: 10 attributes of 100 bytes, a logged-in user.
fn payload() -> SessionData {
    let mut session = SessionData::new(1800);
    session.auth_type = Some("FORM".into());
    session.principal = Some("alice".into());
    for i in 0..ATTRIBUTES {
        let value = (0..ATTRIBUTE_SIZE)
            .map(|j| (i * 31 + j * 7) as u8)
            .collect();
        session.attributes.insert(format!("attribute{i}"), value);
    }
    session
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Msm,
    Baseline,
    Raw,
    MsmTls,
}

const MODES: [Mode; 4] = [Mode::Msm, Mode::Baseline, Mode::Raw, Mode::MsmTls];

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Msm => "msm",
            Mode::Baseline => "baseline",
            Mode::Raw => "raw",
            Mode::MsmTls => "msm-tls",
        }
    }
}

/// What one worker owns in msm mode.
struct MsmWorker {
    id: SessionId,
    session: SessionData,
}

/// What one worker owns in baseline and raw modes.
struct BaselineWorker {
    client: memcache::Client,
    raw: BufReader<TcpStream>,
    key: String,
}

/// Completed pairs and failed attempts of one run.
#[derive(Clone, Copy, Default)]
struct Tally {
    pairs: u64,
    errors: u64,
}

impl std::ops::AddAssign for Tally {
    fn add_assign(&mut self, other: Self) {
        self.pairs += other.pairs;
        self.errors += other.errors;
    }
}

/// One msm store + load; `false` on any error or a lost session.
fn msm_pair(manager: &SessionManager, worker: &mut MsmWorker) -> bool {
    match runtime::block_on(manager.store(&worker.id, &mut worker.session)) {
        Ok(None) => {}
        Ok(Some(moved)) => {
            // Relocation needs a node failure; with one healthy node it is a bug.
            panic!("session relocated to {moved} with a single healthy node");
        }
        Err(_) => return false,
    }
    match runtime::block_on(manager.load(&worker.id)) {
        Ok(Some(loaded)) => loaded.session.version == worker.session.version,
        _ => false,
    }
}

/// One raw set + get; `false` on any error or a wrong value.
fn baseline_pair(worker: &BaselineWorker, value: &[u8]) -> bool {
    if worker.client.set(&worker.key, value, 1800).is_err() {
        return false;
    }
    matches!(
        worker.client.get::<Vec<u8>>(&worker.key),
        Ok(Some(read)) if read.len() == value.len()
    )
}

/// One set + get written by hand on a plain socket; `false` on any error or a wrong value.
fn raw_pair(worker: &mut BaselineWorker, value: &[u8]) -> bool {
    let mut set = format!("set {} 0 1800 {}\r\n", worker.key, value.len()).into_bytes();
    set.extend_from_slice(value);
    set.extend_from_slice(b"\r\n");
    let get = format!("get {}\r\n", worker.key);
    let mut line = String::new();
    let mut exchange = || -> std::io::Result<bool> {
        worker.raw.get_mut().write_all(&set)?;
        line.clear();
        worker.raw.read_line(&mut line)?;
        if line != "STORED\r\n" {
            return Ok(false);
        }
        worker.raw.get_mut().write_all(get.as_bytes())?;
        line.clear();
        worker.raw.read_line(&mut line)?;
        let mut data = vec![0; value.len() + 2];
        worker.raw.read_exact(&mut data)?;
        line.clear();
        worker.raw.read_line(&mut line)?;
        Ok(line == "END\r\n")
    };
    exchange().unwrap_or(false)
}

/// The managers and the workers of every mode.
struct Setup<'a> {
    manager: &'a SessionManager,
    tls_manager: &'a SessionManager,
    msm_workers: &'a mut [MsmWorker],
    tls_workers: &'a mut [MsmWorker],
    baseline_workers: &'a mut [BaselineWorker],
}

/// Runs one mode with every worker for `duration`; returns the tally and the elapsed time.
fn run(mode: Mode, duration: Duration, setup: &mut Setup<'_>, value: &[u8]) -> (Tally, Duration) {
    let tasks = setup.msm_workers.len();
    let barrier = Barrier::new(tasks + 1);
    let (manager, workers) = match mode {
        Mode::MsmTls => (setup.tls_manager, &mut *setup.tls_workers),
        _ => (setup.manager, &mut *setup.msm_workers),
    };
    let (tally, elapsed) = std::thread::scope(|scope| {
        let handles: Vec<_> = workers
            .iter_mut()
            .zip(setup.baseline_workers.iter_mut())
            .map(|(msm_worker, baseline_worker)| {
                let barrier = &barrier;
                scope.spawn(move || {
                    barrier.wait();
                    let deadline = Instant::now() + duration;
                    let mut tally = Tally::default();
                    while Instant::now() < deadline {
                        let ok = match mode {
                            Mode::Msm | Mode::MsmTls => msm_pair(manager, msm_worker),
                            Mode::Baseline => baseline_pair(baseline_worker, value),
                            Mode::Raw => raw_pair(baseline_worker, value),
                        };
                        if ok {
                            tally.pairs += 1;
                        } else {
                            tally.errors += 1;
                        }
                    }
                    tally
                })
            })
            .collect();
        barrier.wait();
        let started = Instant::now();
        let mut total = Tally::default();
        for handle in handles {
            total += handle.join().expect("worker panicked");
        }
        (total, started.elapsed())
    });
    (tally, elapsed)
}

fn rate(tally: Tally, elapsed: Duration) -> f64 {
    tally.pairs as f64 / elapsed.as_secs_f64()
}

fn main() {
    let tasks = env_or("MSM_BENCH_TASKS", 8) as usize;
    let secs = env_or("MSM_BENCH_SECS", 5);
    let rounds = env_or("MSM_BENCH_ROUNDS", 3);
    let duration = Duration::from_secs(secs);

    let server = common::Memcached::start();
    // Sticky: one memcached set per store, one get per load. A generous deadline so a scheduling
    // hiccup under load is not counted as a failure, and a relaxed probe interval (no node is
    // ever down here).
    let manager = common::manager(
        &[&server],
        &[
            ("sticky", "true"),
            ("operationTimeout", "5000"),
            ("nodeProbeInterval", "1000"),
        ],
    );
    let config = manager.config();
    assert!(config.sticky && config.integrity_key.is_none());
    let dir = common::TempDir::new("bench-tls");
    let ca = common::tls::TestCa::new(&dir, "bench");
    let tls_server = common::tls::tls_memcached(&ca.server(&["127.0.0.1"]), None);
    let ca_file = ca.file.display().to_string();
    let tls_manager = common::manager(
        &[&tls_server],
        &[
            ("sticky", "true"),
            ("operationTimeout", "5000"),
            ("nodeProbeInterval", "1000"),
            ("tls", "true"),
            ("tlsCaFile", &ca_file),
        ],
    );

    // The size of msm's value in memcached, computed with msm's own codec, and the length of its
    // key, so the baseline moves the same bytes.
    let probe_id = SessionId::new(&OsRandom.random_part(), "n1", None).expect("id");
    let mut probe_session = payload();
    probe_session.version = 1;
    let codec = Codec::new(None, config.max_session_size, config.keys.prefix());
    let value_len = codec
        .encode(probe_id.random(), &probe_session)
        .expect("encode")
        .len();
    let key_len = config.keys.key(KeyKind::Session, &probe_id).len();
    let value = vec![0x5a; value_len];

    let mut msm_workers: Vec<MsmWorker> = (0..tasks)
        .map(|_| MsmWorker {
            id: runtime::block_on(manager.new_session_id(None)).expect("new session id"),
            session: payload(),
        })
        .collect();
    let mut tls_workers: Vec<MsmWorker> = (0..tasks)
        .map(|_| MsmWorker {
            id: runtime::block_on(tls_manager.new_session_id(None)).expect("new session id"),
            session: payload(),
        })
        .collect();
    assert!(
        msm_pair(&tls_manager, &mut tls_workers[0]),
        "first store + load over TLS failed"
    );
    let url = format!("memcache://{}?protocol=ascii&timeout=5", server.address());
    let mut baseline_workers: Vec<BaselineWorker> = (0..tasks)
        .map(|i| {
            let key = format!("baseline:{i:0>width$}", width = key_len - "baseline:".len());
            assert_eq!(key.len(), key_len);
            let raw = TcpStream::connect(server.address()).expect("raw connection");
            raw.set_nodelay(true).expect("nodelay");
            BaselineWorker {
                client: memcache::Client::connect(url.as_str()).expect("memcache client"),
                raw: BufReader::new(raw),
                key,
            }
        })
        .collect();

    // Cross-check: the value msm actually stored is the size the baseline uses (the version
    // varint grows by a byte or two over a long run; that is all).
    let first = &mut msm_workers[0];
    assert!(msm_pair(&manager, first), "first store + load failed");
    let stored = server
        .get(&config.keys.key(KeyKind::Session, &first.id))
        .expect("the stored session");
    println!(
        "load: {tasks} tasks, {secs} s per mode, {rounds} rounds; session of {ATTRIBUTES} attributes \
         x {ATTRIBUTE_SIZE} B; envelope {value_len} B (stored: {} B), key {key_len} B; memcached \
         on {}",
        stored.len(),
        server.address()
    );

    let mut setup = Setup {
        manager: &manager,
        tls_manager: &tls_manager,
        msm_workers: &mut msm_workers,
        tls_workers: &mut tls_workers,
        baseline_workers: &mut baseline_workers,
    };
    for mode in MODES {
        run(mode, WARM_UP, &mut setup, &value);
    }

    let mut totals = [(Tally::default(), Duration::ZERO); MODES.len()];
    for round in 0..rounds {
        // Each round starts with another mode, so no mode always runs first.
        let mut order = MODES;
        order.rotate_left(round as usize % MODES.len());
        let mut rates = [0.0; MODES.len()];
        for mode in order {
            let (tally, elapsed) = run(mode, duration, &mut setup, &value);
            let slot = mode as usize;
            totals[slot].0 += tally;
            totals[slot].1 += elapsed;
            rates[slot] = rate(tally, elapsed);
            println!(
                "round {}: {:<8} {:>10.0} pairs/s ({} pairs, {} errors, {:.2} s, {:.1} us per pair \
                 per task)",
                round + 1,
                mode.name(),
                rates[slot],
                tally.pairs,
                tally.errors,
                elapsed.as_secs_f64(),
                1e6 * tasks as f64 / rates[slot],
            );
        }
        println!(
            "round {}: ratio msm/baseline {:.3}, msm/raw {:.3}, msm-tls/msm {:.3}",
            round + 1,
            rates[Mode::Msm as usize] / rates[Mode::Baseline as usize],
            rates[Mode::Msm as usize] / rates[Mode::Raw as usize],
            rates[Mode::MsmTls as usize] / rates[Mode::Msm as usize]
        );
    }

    let [
        (msm, msm_time),
        (baseline, baseline_time),
        (raw, raw_time),
        (tls, tls_time),
    ] = totals;
    let tls_rate = rate(tls, tls_time);
    let msm_rate = rate(msm, msm_time);
    let baseline_rate = rate(baseline, baseline_time);
    let raw_rate = rate(raw, raw_time);
    println!(
        "total: msm {} pairs, {} errors; baseline {} pairs, {} errors; raw {} pairs, {} errors",
        msm.pairs, msm.errors, baseline.pairs, baseline.errors, raw.pairs, raw.errors
    );
    println!(
        "msm store+load: {msm_rate:.0}/s, memcache set+get: {baseline_rate:.0}/s, ratio: {:.3} \
         ({tasks} tasks, payload {value_len} bytes)",
        msm_rate / baseline_rate
    );
    println!(
        "raw set+get floor: {raw_rate:.0}/s, ratio msm/raw: {:.3}",
        msm_rate / raw_rate
    );

    println!(
        "msm store+load over TLS: {tls_rate:.0}/s ({} pairs, {} errors), plain: {msm_rate:.0}/s, \
         ratio tls/plain: {:.3}",
        tls.pairs,
        tls.errors,
        tls_rate / msm_rate
    );

    drop(baseline_workers);
    drop(manager);
    drop(tls_manager);
    drop(server);
    drop(tls_server);
}
