//! The fault-injection suite: two Tomcats, three memcached nodes and a client loop of many
//! sessions, in sticky and in non-sticky mode, through each fault of DESIGN.md §9: a node
//! killed; a node frozen with `SIGSTOP` for longer than `operationTimeout`; every node killed,
//! then restarted empty; `flush_all` on every node; garbage written under the session keys of a
//! node; a Tomcat killed. Each fault makes one row of a table:
//!
//! ```sh
//! cargo test --test faults -- --nocapture    # prints the table (the README shows one)
//! ```
//!
//! # How a row is run
//!
//! Each mode gets its own three nodes and two Tomcats (routes `a` and `b`,
//! `operationTimeout` 300 ms, `nodeProbeInterval` 100 ms; sticky with synchronous backups, so
//! that an answered request's change is in memcached). Each row starts from a healthy cluster
//! (both Tomcats see every node up) with 20 fresh sessions, half created on each Tomcat. Four
//! client threads, each owning five sessions, send `GET /` (which increments the session's
//! counter) for each of their sessions in turn, 5 ms apart, so one request at a time per
//! session, through a load balancer: sticky, to the Tomcat named by the route in the session's
//! cookie; non-sticky, to each Tomcat in turn. A Tomcat that refuses a connection is taken out of the
//! balancer, which then sends everything to the other one. The fault strikes after 0.5 s of
//! traffic and is undone 1.5 s later where it has an undo (a killed node is restarted, empty; a
//! frozen node is thawed; the nodes killed together are restarted, empty); the clients go on
//! for 1.5 s more. Node faults hit the node holding the most of the row's sessions. Rows share
//! the Tomcats (which keeps the file short), so the Tomcat kill comes last in each mode.
//!
//! # The columns
//!
//! - **requests**: every request the clients sent during the row.
//! - **errors**: requests without a whole answer (connection refused or cut: a killed Tomcat,
//!   before the balancer took it out) or answered with a status other than 200 (a non-sticky
//!   Tomcat that cannot reach any copy of the session answers 503).
//! - **sessions lost**: each client sends its session's requests one after another, so every
//!   answer 200 must show the session it sent (the same random part of the id: a new node or a
//!   new route after a failover is the same session). A session is lost in a row when an answer
//!   200 shows another session (a new one: the user was logged out).
//! - **changes rolled back**: sessions answered with a counter not higher than the last one
//!   their client saw: the session survived, but a change the user was answered for did not.
//!   Each session counts once per row in each column; its client goes on with what it got.
//! - **worst latency**: the longest request of the row, as a multiple of `operationTimeout`.
//!
//! # What is asserted
//!
//! When each fault strikes, a copy of every session exists somewhere: sticky Tomcats hold their
//! sessions in memory, and memcached holds each answered change (synchronous backups), which is
//! what the other Tomcat reads when one is killed; non-sticky, memcached holds two copies on two
//! nodes (the session's and its backup on the next node), and a fault on one node leaves the
//! other. Where a fault removes both (every node restarted empty, `flush_all`), the copies left
//! are those in the near caches of the Tomcats that served the session. So no row may lose a
//! session, and every session must be answered again after the fault was undone (so no row
//! passes by not asking).
//!
//! Changes must not roll back either, except in the two non-sticky rows whose fault removes
//! both memcached copies: requests alternate between the Tomcats there, so each Tomcat's copy
//! misses the changes the other made since it last served the session, and the first request
//! after the fault that reaches the other Tomcat serves its older copy. No host can know its copy
//! is older once the cluster forgot the newer one; only sticky routing avoids that (there the
//! Tomcat's memory is the latest state). The column shows how many sessions it touched.
//!
//! Latency is printed, not asserted: speed is measured in benchmarks, never asserted as a
//! wall-clock limit in a test, and on a shared machine a request's time also depends on what
//! else runs. The design's budget is that no request waits more than about one
//! `operationTimeout`; the column shows how far each fault is from it.
//!
//! Needs the jars of `scripts/build-jar.sh` (the README's test command builds them first).

mod common;

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::tomcat::{Options, Tomcat, storage, try_http_get};
use common::{Memcached, eventually, node_list, random_bytes};

const PREFIX: &str = "faults:";
/// `operationTimeout` of both Tomcats, in milliseconds.
const OPERATION_TIMEOUT_MS: u64 = 300;
/// Sessions per row.
const SESSIONS: usize = 20;
/// Client threads per row; each owns `SESSIONS / CLIENTS` sessions.
const CLIENTS: usize = 4;
/// Traffic before the fault strikes.
const BEFORE: Duration = Duration::from_millis(500);
/// How long the fault lasts before it is undone (five times `operationTimeout`).
const DURING: Duration = Duration::from_millis(1500);
/// Traffic after the fault was undone.
const AFTER: Duration = Duration::from_millis(1500);
/// A client thread's pause between two requests: enough traffic to meet every fault (each
/// session is asked every few tens of milliseconds) without taking the whole machine.
const THINK: Duration = Duration::from_millis(5);
/// The Tomcats' routes; the balancer's Tomcat `i` has route `ROUTES[i]`.
const ROUTES: [&str; 2] = ["a", "b"];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Sticky,
    NonSticky,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Sticky => "sticky",
            Mode::NonSticky => "non-sticky",
        }
    }

    /// The manager's attributes in this mode, besides `memcachedNodes`.
    fn attributes(self) -> Vec<(&'static str, String)> {
        let mut attributes = vec![
            ("storageKeyPrefix", PREFIX.to_owned()),
            ("operationTimeout", OPERATION_TIMEOUT_MS.to_string()),
            ("nodeProbeInterval", "100".to_owned()),
        ];
        match self {
            // An answered request's change is in memcached: what a Tomcat failover reads.
            Mode::Sticky => attributes.extend([
                ("sessionBackupAsync", "false".to_owned()),
                ("sessionBackupTimeout", "2000".to_owned()),
            ]),
            Mode::NonSticky => attributes.push(("sticky", "false".to_owned())),
        }
        attributes
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fault {
    KillNode,
    PauseNode,
    RestartAllEmpty,
    FlushAll,
    Garbage,
    KillTomcat,
}

impl Fault {
    /// Every fault, in the order of the table; the Tomcat kill last, as it leaves one Tomcat.
    const ALL: [Fault; 6] = [
        Fault::KillNode,
        Fault::PauseNode,
        Fault::RestartAllEmpty,
        Fault::FlushAll,
        Fault::Garbage,
        Fault::KillTomcat,
    ];

    fn name(self) -> &'static str {
        match self {
            Fault::KillNode => "kill a node (restart it empty)",
            Fault::PauseNode => "SIGSTOP a node 5 × operationTimeout",
            Fault::RestartAllEmpty => "kill every node, restart them empty",
            Fault::FlushAll => "`flush_all` on every node",
            Fault::Garbage => "garbage under a node's session keys",
            Fault::KillTomcat => "kill a Tomcat",
        }
    }
}

/// The random part of a session id, which no failover changes (`<random>-<node>[.<route>]`).
fn random_part(id: &str) -> &str {
    id.split('-').next().unwrap_or(id)
}

/// Three memcached nodes (n1, n2, n3) and two Tomcats in one mode.
struct Cluster {
    mode: Mode,
    nodes: Vec<Memcached>,
    tomcats: Vec<Tomcat>,
}

impl Cluster {
    fn start(mode: Mode) -> Self {
        let nodes: Vec<Memcached> = (0..3).map(|_| Memcached::start()).collect();
        let list = node_list(&nodes.iter().collect::<Vec<_>>());
        let mut attributes = mode.attributes();
        attributes.push(("memcachedNodes", list));
        let attributes: Vec<(&str, &str)> =
            attributes.iter().map(|(k, v)| (*k, v.as_str())).collect();
        // Both JVMs start side by side.
        let tomcats = std::thread::scope(|scope| {
            let starting: Vec<_> = ROUTES
                .iter()
                .map(|route| {
                    let options = Options::msm(route, &attributes);
                    scope.spawn(move || Tomcat::start(&options))
                })
                .collect();
            starting.into_iter().map(|t| t.join().unwrap()).collect()
        });
        Cluster {
            mode,
            nodes,
            tomcats,
        }
    }

    /// Waits until both Tomcats see every node up (a node is probed every 100 ms once down).
    fn wait_until_every_node_is_up(&self) {
        for (tomcat, route) in self.tomcats.iter().zip(ROUTES) {
            eventually(&format!("Tomcat {route} sees every node up"), || {
                tomcat
                    .get("/stats", None)
                    .field("NodeStates")
                    .is_some_and(|states| states.matches("_up").count() == self.nodes.len())
            });
        }
    }

    /// The index of the node holding the most of these sessions (the first of equals).
    fn busiest_node(&self, clients: &[Client]) -> usize {
        let on = |node: usize| {
            let suffix = format!("-n{}", node + 1);
            clients
                .iter()
                .filter(|c| storage(&c.cookie).ends_with(&suffix))
                .count()
        };
        (0..self.nodes.len())
            .rev()
            .max_by_key(|&node| on(node))
            .unwrap()
    }

    /// Strikes `fault`; node faults hit node `target`, whose session keys `keys` may be.
    fn inject(&mut self, fault: Fault, target: usize, keys: &[String]) {
        match fault {
            Fault::KillNode => self.nodes[target].kill(),
            Fault::PauseNode => self.nodes[target].pause(),
            Fault::RestartAllEmpty => self.nodes.iter_mut().for_each(Memcached::kill),
            Fault::FlushAll => {
                for node in &self.nodes {
                    assert_eq!(node.raw(b"flush_all\r\n", &["OK"]).trim_end(), "OK");
                }
            }
            Fault::Garbage => {
                let node = &self.nodes[target];
                let held: Vec<&String> = keys.iter().filter(|key| node.has(key)).collect();
                assert!(!held.is_empty(), "node {} holds no session key", target + 1);
                for key in held {
                    node.set(key, &random_bytes(200));
                }
            }
            Fault::KillTomcat => self.tomcats[0].kill(),
        }
    }

    /// Undoes `fault` where it has an undo.
    fn undo(&mut self, fault: Fault, target: usize) {
        match fault {
            Fault::KillNode => self.nodes[target].restart(),
            Fault::PauseNode => self.nodes[target].resume(),
            Fault::RestartAllEmpty => self.nodes.iter_mut().for_each(Memcached::restart),
            Fault::FlushAll | Fault::Garbage | Fault::KillTomcat => {}
        }
    }

    /// Runs one row: fresh sessions, the client loop, `fault` struck and undone mid-loop.
    fn run(&mut self, fault: Fault) -> Row {
        self.wait_until_every_node_is_up();
        let balancer = Balancer {
            mode: self.mode,
            ports: [self.tomcats[0].port, self.tomcats[1].port],
            out: [AtomicBool::new(false), AtomicBool::new(false)],
        };
        let mut clients: Vec<Client> = (0..SESSIONS).map(|i| balancer.open(i % 2)).collect();
        let target = self.busiest_node(&clients);
        let keys: Vec<String> = clients
            .iter()
            .flat_map(|c| {
                let key = format!("{PREFIX}{}", storage(&c.cookie));
                [format!("bak:{key}"), key]
            })
            .collect();
        let stop = AtomicBool::new(false);
        let (tallies, undone) = std::thread::scope(|scope| {
            let looping: Vec<_> = clients
                .chunks_mut(SESSIONS / CLIENTS)
                .map(|sessions| {
                    let (balancer, stop) = (&balancer, &stop);
                    scope.spawn(move || {
                        let mut tally = Tally::default();
                        while !stop.load(Ordering::Relaxed) {
                            for client in sessions.iter_mut() {
                                balancer.send(client, &mut tally);
                                std::thread::sleep(THINK);
                            }
                        }
                        tally
                    })
                })
                .collect();
            std::thread::sleep(BEFORE);
            self.inject(fault, target, &keys);
            std::thread::sleep(DURING);
            self.undo(fault, target);
            let undone = Instant::now();
            std::thread::sleep(AFTER);
            stop.store(true, Ordering::Relaxed);
            let tallies: Vec<Tally> = looping.into_iter().map(|t| t.join().unwrap()).collect();
            (tallies, undone)
        });
        Row {
            mode: self.mode,
            fault,
            requests: tallies.iter().map(|t| t.requests).sum(),
            errors: tallies.iter().map(|t| t.errors).sum(),
            lost: clients.iter().filter(|c| c.lost).count(),
            rolled_back: clients.iter().filter(|c| c.rolled_back).count(),
            unanswered: clients
                .iter()
                .filter(|c| c.answered.is_none_or(|at| at < undone))
                .count(),
            worst: tallies.iter().map(|t| t.worst).max().unwrap_or_default(),
        }
    }
}

/// One user's session, as its client sees it.
struct Client {
    /// The JSESSIONID cookie, following every new one the client is sent.
    cookie: String,
    /// The counter of the last answer 200.
    counter: u64,
    /// Requests sent (non-sticky: which Tomcat is next).
    sent: u64,
    /// Whether the session was lost in this row (see the file's documentation).
    lost: bool,
    /// Whether a change of the session was rolled back in this row.
    rolled_back: bool,
    /// When the last answer 200 came.
    answered: Option<Instant>,
}

/// What one client thread saw.
#[derive(Default)]
struct Tally {
    requests: u64,
    errors: u64,
    worst: Duration,
}

/// The load balancer in front of the two Tomcats, shared by the client threads.
struct Balancer {
    mode: Mode,
    ports: [u16; 2],
    /// Tomcats taken out after refusing a connection.
    out: [AtomicBool; 2],
}

impl Balancer {
    /// Creates a session on Tomcat `tomcat` (the cluster is healthy).
    fn open(&self, tomcat: usize) -> Client {
        let response = try_http_get(self.ports[tomcat], "/", None).expect("a new session");
        assert_eq!(response.status, 200, "{response:?}");
        assert_eq!(response.field("counter"), Some("1"), "{response:?}");
        Client {
            cookie: response.new_session.expect("a session cookie"),
            counter: 1,
            sent: 1,
            lost: false,
            rolled_back: false,
            answered: Some(Instant::now()),
        }
    }

    /// The Tomcat for the client's next request: sticky, the one its cookie's route names;
    /// non-sticky, each in turn; the other one when that one was taken out.
    fn route(&self, client: &Client) -> usize {
        let preferred = match self.mode {
            Mode::Sticky => {
                let route = client.cookie.rsplit_once('.').map(|(_, route)| route);
                ROUTES.iter().position(|r| Some(*r) == route).unwrap_or(0)
            }
            Mode::NonSticky => (client.sent % 2) as usize,
        };
        if self.out[preferred].load(Ordering::Relaxed) {
            1 - preferred
        } else {
            preferred
        }
    }

    /// Sends the client's next `GET /` and records what came back.
    fn send(&self, client: &mut Client, tally: &mut Tally) {
        let tomcat = self.route(client);
        let started = Instant::now();
        let result = try_http_get(self.ports[tomcat], "/", Some(&client.cookie));
        tally.worst = tally.worst.max(started.elapsed());
        tally.requests += 1;
        client.sent += 1;
        let response = match result {
            Ok(response) if response.status == 200 => response,
            Ok(_) => {
                tally.errors += 1;
                return;
            }
            Err(e) => {
                if e.kind() == io::ErrorKind::ConnectionRefused {
                    self.out[tomcat].store(true, Ordering::Relaxed);
                }
                tally.errors += 1;
                return;
            }
        };
        let (Some(session), Some(counter)) = (
            response.field("session"),
            response
                .field("counter")
                .and_then(|c| c.parse::<u64>().ok()),
        ) else {
            panic!("the demo application answered without its fields: {response:?}");
        };
        if random_part(session) != random_part(&client.cookie) {
            client.lost = true;
        } else if counter <= client.counter {
            client.rolled_back = true;
        }
        if let Some(cookie) = &response.new_session {
            client.cookie.clone_from(cookie);
        }
        client.counter = counter;
        client.answered = Some(Instant::now());
    }
}

/// One row of the table.
struct Row {
    mode: Mode,
    fault: Fault,
    requests: u64,
    errors: u64,
    lost: usize,
    rolled_back: usize,
    /// Sessions not answered 200 after the fault was undone.
    unanswered: usize,
    worst: Duration,
}

impl Row {
    /// The worst latency as a multiple of `operationTimeout`.
    fn worst_in_timeouts(&self) -> f64 {
        self.worst.as_secs_f64() * 1000.0 / OPERATION_TIMEOUT_MS as f64
    }
}

/// The rows as a Markdown table.
fn table(rows: &[Row]) -> String {
    let mut out = String::from(
        "| mode | fault | requests | errors | sessions lost | changes rolled back | worst latency / operationTimeout |\n\
         |---|---|---:|---:|---:|---:|---:|\n",
    );
    for row in rows {
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {:.2} |\n",
            row.mode.name(),
            row.fault.name(),
            row.requests,
            row.errors,
            row.lost,
            row.rolled_back,
            row.worst_in_timeouts()
        ));
    }
    out
}

#[test]
fn no_fault_loses_a_session_that_had_a_copy() {
    let started = Instant::now();
    let mut rows = Vec::new();
    for mode in [Mode::Sticky, Mode::NonSticky] {
        let mut cluster = Cluster::start(mode);
        for fault in Fault::ALL {
            rows.push(cluster.run(fault));
        }
    }
    println!(
        "\n{SESSIONS} sessions, {CLIENTS} client threads, operationTimeout {OPERATION_TIMEOUT_MS} ms, {:.0} s in all\n\n{}",
        started.elapsed().as_secs_f64(),
        table(&rows)
    );

    let unanswered: Vec<String> = rows
        .iter()
        .filter(|r| r.unanswered > 0)
        .map(|r| format!("{} / {}: {}", r.mode.name(), r.fault.name(), r.unanswered))
        .collect();
    assert!(
        unanswered.is_empty(),
        "sessions never answered 200 after the fault was undone: {unanswered:?}"
    );
    // Every row: no session lost, since each fault leaves a copy of every session somewhere.
    let lost: Vec<String> = rows
        .iter()
        .filter(|r| r.lost > 0)
        .map(|r| format!("{} / {}: {}", r.mode.name(), r.fault.name(), r.lost))
        .collect();
    assert!(
        lost.is_empty(),
        "sessions lost although a copy existed: {lost:?}"
    );
    // No change rolled back, except where no host can know its copy is older (see above).
    let rolled_back: Vec<String> = rows
        .iter()
        .filter(|r| {
            let forgotten = matches!(r.fault, Fault::RestartAllEmpty | Fault::FlushAll);
            r.rolled_back > 0 && !(r.mode == Mode::NonSticky && forgotten)
        })
        .map(|r| format!("{} / {}: {}", r.mode.name(), r.fault.name(), r.rolled_back))
        .collect();
    assert!(
        rolled_back.is_empty(),
        "changes rolled back: {rolled_back:?}"
    );
}
