//! The client against a memcached that lies: a real TCP server on loopback answering with
//! garbage, truncated replies, values for other keys, lengths beyond every limit, a reply that
//! drips a byte a second, replies nobody asked for, a close in the middle of a value. The client
//! never waits past its deadline, never allocates beyond its limits, never hands one request's
//! reply to another, and never reuses the connection.

use std::cell::Cell;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use msm::Error;
use msm::client::NodeClient;

/// Counts the largest single allocation of the current thread, so a test can check that no
/// announced length was trusted. `#[tokio::test]` runs the client on the test's own thread.
struct Largest;

thread_local! {
    static LARGEST: Cell<usize> = const { Cell::new(0) };
}

// SAFETY: every call is forwarded unchanged to the system allocator.
unsafe impl std::alloc::GlobalAlloc for Largest {
    unsafe fn alloc(&self, layout: std::alloc::Layout) -> *mut u8 {
        let _ = LARGEST.try_with(|l| l.set(l.get().max(layout.size())));
        // SAFETY: the caller's layout is passed on as received.
        unsafe { std::alloc::System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: std::alloc::Layout) {
        // SAFETY: `ptr` came from `System.alloc` with this layout.
        unsafe { std::alloc::System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: std::alloc::Layout, size: usize) -> *mut u8 {
        let _ = LARGEST.try_with(|l| l.set(l.get().max(size)));
        // SAFETY: as received from the caller, for memory `System` allocated.
        unsafe { std::alloc::System.realloc(ptr, layout, size) }
    }
}

#[global_allocator]
static ALLOCATOR: Largest = Largest;

/// What the server does with one request line (the data block of a storage command is read
/// already) on its connection.
type Script = dyn Fn(&str, &mut TcpStream) + Send + Sync;

/// A server on a loopback port that answers every request with its script.
struct Liar {
    address: String,
    connections: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
}

impl Liar {
    fn start(script: impl Fn(&str, &mut TcpStream) + Send + Sync + 'static) -> Liar {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
        listener.set_nonblocking(true).unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let connections = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let script: Arc<Script> = Arc::new(script);
        let (count, stopped) = (connections.clone(), stop.clone());
        std::thread::spawn(move || {
            while !stopped.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        count.fetch_add(1, Ordering::Relaxed);
                        let script = script.clone();
                        std::thread::spawn(move || serve(stream, &*script));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Liar {
            address,
            connections,
            stop,
        }
    }

    fn connections(&self) -> usize {
        self.connections.load(Ordering::Relaxed)
    }

    fn client(&self, timeout: Duration, max_value: usize) -> NodeClient {
        NodeClient::new("liar", &self.address, timeout, 1, Duration::ZERO, max_value)
    }
}

impl Drop for Liar {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Reads requests (with their data blocks) and runs the script on each until the client goes.
fn serve(stream: TcpStream, script: &Script) {
    stream.set_nodelay(true).unwrap();
    let mut writer = stream.try_clone().unwrap();
    let mut reader = BufReader::new(stream);
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let line = line.trim_end();
        let words: Vec<&str> = line.split(' ').collect();
        if matches!(words[0], "set" | "add" | "cas") {
            let len: usize = words[4].parse().unwrap();
            let mut data = vec![0; len + 2];
            if reader.read_exact(&mut data).is_err() {
                return;
            }
        }
        script(line, &mut writer);
    }
}

fn send(stream: &mut TcpStream, bytes: &[u8]) {
    let _ = stream.write_all(bytes);
}

/// Runs `f` and checks it returned within the deadline (with slack for a slow machine).
async fn within<T>(deadline: Duration, f: impl std::future::Future<Output = T>) -> T {
    let start = Instant::now();
    let out = f.await;
    let took = start.elapsed();
    assert!(
        took < deadline + Duration::from_millis(500),
        "took {took:?}, deadline {deadline:?}"
    );
    out
}

const DEADLINE: Duration = Duration::from_millis(300);

#[tokio::test]
async fn garbage_is_a_protocol_error_and_the_connection_is_dropped() {
    let liar = Liar::start(|_, s| send(s, b"HTTP/1.1 400 Bad Request\r\n"));
    let client = liar.client(DEADLINE, 1024);
    for _ in 0..2 {
        let error = within(DEADLINE, client.get("k")).await.unwrap_err();
        assert!(matches!(error, Error::Protocol { .. }), "{error:?}");
        assert!(error.is_node_failure());
    }
    assert_eq!(liar.connections(), 2, "a failed connection is never reused");
}

#[tokio::test]
async fn a_value_for_another_key_is_never_handed_over() {
    let liar = Liar::start(|_, s| send(s, b"VALUE other 0 6\r\nsecret\r\nEND\r\n"));
    let client = liar.client(DEADLINE, 1024);
    let error = client.get("mine").await.unwrap_err();
    assert!(matches!(&error, Error::Protocol { detail, .. } if detail.contains("not asked for")));
    let error = client.get_multi(&["a", "b"]).await.unwrap_err();
    assert!(matches!(error, Error::Protocol { .. }), "{error:?}");
}

#[tokio::test]
async fn a_truncated_reply_waits_no_longer_than_the_deadline() {
    let liar = Liar::start(|_, s| send(s, b"VALUE k 0 10\r\nabc"));
    let client = liar.client(DEADLINE, 1024);
    let error = within(DEADLINE, client.get("k")).await.unwrap_err();
    assert!(matches!(error, Error::Timeout { .. }), "{error:?}");
    assert!(error.is_node_failure());
}

#[tokio::test]
async fn a_close_in_the_middle_of_a_value_is_an_io_error() {
    let liar = Liar::start(|_, s| {
        send(s, b"VALUE k 0 10\r\nabc");
        let _ = s.shutdown(std::net::Shutdown::Both);
    });
    let client = liar.client(DEADLINE, 1024);
    let error = within(DEADLINE, client.get("k")).await.unwrap_err();
    assert!(matches!(error, Error::Io { .. }), "{error:?}");
    assert!(error.is_node_failure());
    assert_eq!(liar.connections(), 2, "one retry on a fresh connection");
}

#[tokio::test]
async fn a_length_beyond_every_limit_is_refused_unallocated() {
    for length in [
        "1073741824",
        "18446744073709551615",
        "99999999999999999999999",
    ] {
        let reply = format!("VALUE k 0 {length}\r\nxx");
        let liar = Liar::start(move |_, s| send(s, reply.as_bytes()));
        let client = liar.client(DEADLINE, 1 << 20);
        LARGEST.with(|l| l.set(0));
        let error = within(DEADLINE, client.get("k")).await.unwrap_err();
        let largest = LARGEST.with(Cell::get);
        assert!(largest < 1 << 20, "{length}: allocated {largest} bytes");
        // A length that fits the client's arithmetic is a value too large, which says nothing
        // about the node; a length no memcached can send is a broken node.
        if length.len() <= 20 {
            assert!(matches!(error, Error::Corrupt(_)), "{length}: {error:?}");
        } else {
            assert!(
                matches!(error, Error::Protocol { .. }),
                "{length}: {error:?}"
            );
        }
    }
}

#[tokio::test]
async fn an_endless_line_is_refused_at_its_limit() {
    let liar = Liar::start(|_, s| send(s, &[b'A'; 1 << 20]));
    let client = liar.client(DEADLINE, 1024);
    LARGEST.with(|l| l.set(0));
    let error = within(DEADLINE, client.version()).await.unwrap_err();
    assert!(matches!(&error, Error::Protocol { detail, .. } if detail.contains("longer than")));
    let largest = LARGEST.with(Cell::get);
    assert!(largest < 64 * 1024, "allocated {largest} bytes");
}

#[tokio::test]
async fn a_reply_dripping_a_byte_a_second_ends_at_the_deadline() {
    let liar = Liar::start(|_, s| {
        for &b in b"VALUE k 0 5\r\nhello\r\nEND\r\n".iter().cycle().take(30) {
            send(s, &[b]);
            std::thread::sleep(Duration::from_secs(1));
        }
    });
    let client = liar.client(DEADLINE, 1024);
    let error = within(DEADLINE, client.get("k")).await.unwrap_err();
    assert!(matches!(error, Error::Timeout { .. }), "{error:?}");
}

#[tokio::test]
async fn an_extra_reply_fails_the_request_that_received_it() {
    let liar = Liar::start(|line, s| {
        if line.starts_with("set") {
            send(s, b"STORED\r\nSTORED\r\n");
        } else {
            send(s, b"NOT_FOUND\r\n");
        }
    });
    let client = liar.client(DEADLINE, 1024);
    let error = client.set("k", b"v", 0).await.unwrap_err();
    assert!(
        matches!(&error, Error::Protocol { detail, .. } if detail.contains("after the last reply"))
    );
    assert!(!client.delete("k").await.unwrap());
    assert_eq!(liar.connections(), 2);
}

#[tokio::test]
async fn a_late_unsolicited_reply_is_never_taken_for_the_next_ones() {
    let liar = Liar::start(|line, s| {
        if line.starts_with("set") {
            send(s, b"STORED\r\n");
            std::thread::sleep(Duration::from_millis(20));
            send(s, b"DELETED\r\n");
        } else {
            send(s, b"NOT_FOUND\r\n");
        }
    });
    let client = liar.client(DEADLINE, 1024);
    client.set("k", b"v", 0).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    // The pooled connection holds `DELETED`: the delete must be answered on a fresh one.
    assert!(!client.delete("k").await.unwrap());
    assert_eq!(liar.connections(), 2);
}

/// A manager whose only node is the liar, probed every 50 ms.
fn manager_over(liar: &Liar) -> std::sync::Arc<msm::SessionManager> {
    let nodes = format!("n1:{}", liar.address);
    let config = msm::Config::from_pairs([
        ("memcachedNodes", nodes.as_str()),
        ("operationTimeout", "300"),
        ("nodeProbeInterval", "50"),
        ("sharedNodeList", "false"),
        ("storageKeyPrefix", "liar:"),
    ])
    .unwrap();
    msm::SessionManager::new(config).unwrap()
}

fn stat(manager: &msm::SessionManager, name: &str) -> u64 {
    let text = manager.stats_text();
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in {text}"))
}

const ID: &str = "0123456789ABCDEF0123456789ABCDEF-n1";

#[test]
fn a_value_beyond_every_limit_counts_as_corrupt() {
    let liar = Liar::start(|line, s| {
        let key = line.split(' ').nth(1).unwrap_or("k").to_owned();
        if line.starts_with("get") {
            send(s, format!("VALUE {key} 0 1073741824\r\nxx").as_bytes());
        } else {
            send(s, b"VERSION 1.6.18\r\n");
        }
    });
    let m = manager_over(&liar);
    let id = msm::SessionId::parse(ID).unwrap();
    let error = msm::runtime::block_on(m.load(&id)).unwrap_err();
    assert!(matches!(error, Error::Corrupt(_)), "{error:?}");
    assert_eq!(stat(&m, "corrupt_values"), 1);
    assert_eq!(stat(&m, "corrupt_malformed"), 1);
    assert_eq!(
        stat(&m, "nodes_marked_down"),
        0,
        "a bad value, not a bad node"
    );
}

/// A server that answers the probe (`version`) but fails every real operation would come back
/// up at each probe and fail the next request: the wait before its next probe doubles each
/// time it fails again soon after coming back, so it flaps a few times, not every probe.
#[test]
fn a_server_that_answers_probes_but_lies_on_reads_is_probed_less_and_less() {
    let liar = Liar::start(|line, s| {
        if line == "version" {
            send(s, b"VERSION 1.6.18\r\n");
        } else {
            send(s, b"\x01\x02 garbage\r\n");
        }
    });
    let m = manager_over(&liar);
    let id = msm::SessionId::parse(ID).unwrap();
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(3) {
        let _ = msm::runtime::block_on(m.load(&id));
        std::thread::sleep(Duration::from_millis(5));
    }
    // Without the backoff: one recovery per 50 ms probe, about 60. With it, the waits double
    // from 50 ms to 1.6 s: at most 6 recoveries in 3 s.
    let recovered = stat(&m, "nodes_recovered");
    assert!((1..=7).contains(&recovered), "{recovered} recoveries");
}
