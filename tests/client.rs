//! The memcached client against real servers, directly and through twemproxy.

mod common;

use std::time::Duration;

use common::{Memcached, Twemproxy, command_counters};
use msm::Error;
use msm::client::{Answer, CasOutcome, Command, NodeClient};

fn client(port: u16, timeout_ms: u64) -> NodeClient {
    NodeClient::new(
        "n1",
        &format!("127.0.0.1:{port}"),
        Duration::from_millis(timeout_ms),
        1,
        Duration::ZERO,
        1 << 20,
    )
}

async fn exercise_every_command(c: &NodeClient, supports_cas: bool) {
    assert_eq!(c.get("k1").await.unwrap(), None);
    c.set("k1", b"one", 0).await.unwrap();
    assert_eq!(c.get("k1").await.unwrap().as_deref(), Some(&b"one"[..]));
    assert!(!c.add("k1", b"again", 0).await.unwrap());
    assert!(c.add("k2", b"two", 0).await.unwrap());

    let found = c.get_multi(&["k1", "k2", "absent"]).await.unwrap();
    assert_eq!(found.len(), 2);
    assert_eq!(found["k2"], b"two");

    let (value, cas) = c.gets("k1").await.unwrap().unwrap();
    assert_eq!(value, b"one");
    if supports_cas {
        assert_eq!(
            c.cas("k1", b"uno", 0, cas).await.unwrap(),
            CasOutcome::Stored
        );
        assert_eq!(
            c.cas("k1", b"eins", 0, cas).await.unwrap(),
            CasOutcome::Exists
        );
        assert_eq!(
            c.cas("nope", b"x", 0, 1).await.unwrap(),
            CasOutcome::NotFound
        );
        assert_eq!(c.get("k1").await.unwrap().as_deref(), Some(&b"uno"[..]));
    }

    assert!(c.touch("k1", 100).await.unwrap());
    assert!(!c.touch("absent", 100).await.unwrap());

    c.set("n", b"41", 0).await.unwrap();
    assert_eq!(c.incr("n", 1).await.unwrap(), Some(42));
    assert_eq!(c.incr("absent", 1).await.unwrap(), None);

    assert!(c.delete("k1").await.unwrap());
    assert!(!c.delete("k1").await.unwrap());
    assert!(c.version().await.unwrap().starts_with("1."));

    // `append` adds bytes to an item, and stores nothing where there is none.
    assert!(c.add("list", b"", 0).await.unwrap());
    let appends = [
        Command::Append {
            key: "list",
            value: b"a ",
        },
        Command::Append {
            key: "list",
            value: b"b ",
        },
        Command::Append {
            key: "no-list",
            value: b"c ",
        },
    ];
    let answers = c.pipeline(&appends).await.unwrap();
    assert_eq!(answers, [Answer::Stored, Answer::Stored, Answer::NotStored]);
    assert_eq!(c.get("list").await.unwrap().as_deref(), Some(&b"a b "[..]));
    assert_eq!(c.get("no-list").await.unwrap(), None);

    // Binary values with CRLF inside survive.
    let binary: Vec<u8> = (0..=255u8).chain(*b"\r\nEND\r\n").collect();
    c.set("bin", &binary, 0).await.unwrap();
    assert_eq!(c.get("bin").await.unwrap(), Some(binary));
}

#[tokio::test]
async fn every_command_against_memcached() {
    let server = Memcached::start();
    exercise_every_command(&client(server.port, 1000), true).await;
}

#[tokio::test]
async fn every_command_through_twemproxy() {
    let server = Memcached::start();
    let proxy = Twemproxy::start(&[&server]);
    exercise_every_command(&client(proxy.port, 1000), true).await;
    // The proxy really forwarded to our server.
    assert_eq!(server.get("bin").map(|v| v.len()), Some(263));
}

#[tokio::test]
async fn hostile_keys_never_reach_the_server() {
    let server = Memcached::start();
    let c = client(server.port, 1000);
    let before = server.stats();
    for key in ["", "a b", "a\r\nflush_all", "x\0", "é", &"k".repeat(251)] {
        assert!(
            matches!(c.get(key).await, Err(Error::InvalidKey(_))),
            "{key:?}"
        );
        assert!(matches!(
            c.set(key, b"v", 0).await,
            Err(Error::InvalidKey(_))
        ));
        assert!(matches!(c.delete(key).await, Err(Error::InvalidKey(_))));
        assert!(matches!(c.touch(key, 1).await, Err(Error::InvalidKey(_))));
    }
    let after = server.stats();
    // Exact counters of every command the server parsed: none of ours arrived.
    assert_eq!(command_counters(&after), command_counters(&before));
}

#[tokio::test]
async fn oversized_value_is_a_clear_error_and_the_connection_recovers() {
    let server = Memcached::start();
    let c = client(server.port, 5000);
    let big = vec![b'x'; 2 << 20];
    let error = c.set("big", &big, 0).await.unwrap_err();
    assert!(matches!(error, Error::TooLarge { .. }), "{error:?}");
    let message = error.to_string();
    assert!(message.contains("item size limit"), "{message}");
    assert_eq!(c.get("big").await.unwrap(), None);
    c.set("small", b"ok", 0).await.unwrap();
    assert_eq!(c.get("small").await.unwrap().as_deref(), Some(&b"ok"[..]));
}

#[tokio::test]
async fn a_hung_server_times_out_and_its_connection_is_never_reused() {
    let mut server = Memcached::start();
    let c = client(server.port, 200);
    c.set("a", b"first", 0).await.unwrap();
    c.set("b", b"second", 0).await.unwrap();
    server.pause();
    let error = c.get("a").await.unwrap_err();
    assert!(matches!(error, Error::Timeout { .. }), "{error:?}");
    server.resume();
    // A reused connection would now read the late reply to `get a`.
    assert_eq!(c.get("b").await.unwrap().as_deref(), Some(&b"second"[..]));
}

#[tokio::test]
async fn a_restarted_server_is_reached_on_a_fresh_connection() {
    let mut server = Memcached::start();
    let c = client(server.port, 1000);
    c.set("a", b"1", 0).await.unwrap();
    server.restart();
    // The pooled connection is dead; the retry connects afresh within the same deadline.
    assert_eq!(c.get("a").await.unwrap(), None);
    c.set("a", b"2", 0).await.unwrap();
    assert_eq!(server.get("a").as_deref(), Some(&b"2"[..]));
}

#[tokio::test]
async fn a_dead_server_is_an_io_error() {
    let mut server = Memcached::start();
    let c = client(server.port, 1000);
    server.kill();
    let error = c.get("a").await.unwrap_err();
    assert!(matches!(error, Error::Io { .. }), "{error:?}");
    assert!(error.is_node_failure());
}

#[tokio::test]
async fn an_oversized_stored_value_is_refused_unread_and_the_node_stays_usable() {
    let server = Memcached::start();
    server.set("huge", &vec![b'x'; 4096]);
    let c = NodeClient::new(
        "n1",
        &server.address(),
        Duration::from_secs(1),
        1,
        Duration::ZERO,
        1024,
    );
    let error = c.get("huge").await.unwrap_err();
    assert!(matches!(error, Error::Corrupt(_)), "{error:?}");
    assert!(!error.is_node_failure());
    c.set("small", b"ok", 0).await.unwrap();
    assert_eq!(c.get("small").await.unwrap().as_deref(), Some(&b"ok"[..]));
}

/// A client whose single-line requests go to the server's writer, sent with other callers'.
fn together(port: u16, timeout_ms: u64) -> NodeClient {
    client(port, timeout_ms).together(true)
}

#[tokio::test]
async fn every_command_sent_together() {
    let server = Memcached::start();
    exercise_every_command(&together(server.port, 1000), true).await;
}

/// Concurrent callers share the writer's connection and round trips, and each gets its own
/// reply: of two `add`s of each key exactly one stores, and a value too large fails alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callers_sent_together_each_get_their_own_reply() {
    let server = Memcached::start();
    let c = std::sync::Arc::new(together(server.port, 5000));
    c.set("warm", b"up", 0).await.unwrap();
    let connections = server.stat("total_connections");
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..400 {
        let c = std::sync::Arc::clone(&c);
        tasks.spawn(async move {
            let key = format!("k{}", i % 200);
            (i, c.add(&key, format!("v{i}").as_bytes(), 0).await)
        });
    }
    let big = std::sync::Arc::clone(&c);
    let too_large = tokio::spawn(async move { big.set("big", &vec![b'x'; 2 << 20], 0).await });
    let mut stored = vec![None; 200];
    while let Some(joined) = tasks.join_next().await {
        let (i, added) = joined.unwrap();
        if added.expect("an add of a small value") {
            assert!(
                stored[i % 200].replace(i).is_none(),
                "k{} stored twice",
                i % 200
            );
        }
    }
    let error = too_large.await.unwrap().unwrap_err();
    assert!(matches!(error, Error::TooLarge { .. }), "{error:?}");
    for (key, i) in stored.iter().enumerate() {
        let i = i.unwrap_or_else(|| panic!("k{key} never stored"));
        let value = c.get(&format!("k{key}")).await.unwrap();
        assert_eq!(value, Some(format!("v{i}").into_bytes()));
    }
    assert!(
        server.stat("total_connections") - connections <= 2,
        "{} connections for 401 concurrent requests",
        server.stat("total_connections") - connections
    );
}

#[tokio::test]
async fn sent_together_a_hung_server_times_out_and_a_restarted_one_is_reached_again() {
    let mut server = Memcached::start();
    let c = together(server.port, 200);
    c.set("a", b"first", 0).await.unwrap();
    server.pause();
    let error = c.set("b", b"second", 0).await.unwrap_err();
    assert!(matches!(error, Error::Timeout { .. }), "{error:?}");
    server.resume();
    // A kept connection would now read the late reply to `set b` as this one's.
    assert!(c.add("c", b"third", 0).await.unwrap());
    assert!(!c.add("c", b"again", 0).await.unwrap());
    server.restart();
    c.set("a", b"after", 0).await.unwrap();
    assert_eq!(server.get("a").as_deref(), Some(&b"after"[..]));
    server.kill();
    let error = c.set("a", b"dead", 0).await.unwrap_err();
    assert!(matches!(error, Error::Io { .. }), "{error:?}");
    assert!(error.is_node_failure());
}

/// Runs `future` as a host thread waiting for it does (`msm::runtime::wait`): the client then
/// reads and writes blocking connections of its own on this thread.
fn waited<T>(future: impl std::future::Future<Output = T>) -> T {
    msm::runtime::wait(future).expect("a host thread, not a runtime's")
}

#[test]
fn every_command_from_a_waiting_host_thread() {
    let server = Memcached::start();
    let c = client(server.port, 1000);
    // Each query of the server's statistics is a connection of its own.
    let opened = |since: u64, queries: u64| server.stat("total_connections") - since - queries;
    let connections = server.stat("total_connections");
    waited(exercise_every_command(&c, true));
    assert_eq!(
        opened(connections, 1),
        1,
        "one blocking connection, kept between commands"
    );
    waited(async {
        assert!(msm::runtime::host_waits());
        c.set("from", b"host", 0).await.unwrap();
    });
    // The runtime's callers have connections of their own.
    let on_runtime = msm::runtime::handle().block_on(async {
        assert!(!msm::runtime::host_waits());
        c.get("from").await.unwrap()
    });
    assert_eq!(on_runtime.as_deref(), Some(&b"host"[..]));
    assert_eq!(opened(connections, 2), 2);
}

#[test]
fn from_a_waiting_host_thread_a_hung_server_times_out_and_a_restarted_one_is_reached_again() {
    let mut server = Memcached::start();
    let c = client(server.port, 200);
    waited(async {
        c.set("a", b"first", 0).await.unwrap();
        c.set("b", b"second", 0).await.unwrap();
    });
    server.pause();
    let error = waited(c.get("a")).unwrap_err();
    assert!(matches!(error, Error::Timeout { .. }), "{error:?}");
    server.resume();
    // A reused connection would now read the late reply to `get a`.
    assert_eq!(waited(c.get("b")).unwrap().as_deref(), Some(&b"second"[..]));
    server.restart();
    // The pooled connection is dead; the retry connects afresh within the same deadline.
    assert_eq!(waited(c.get("a")).unwrap(), None);
    waited(c.set("a", b"after", 0)).unwrap();
    assert_eq!(server.get("a").as_deref(), Some(&b"after"[..]));
    server.kill();
    let error = waited(c.get("a")).unwrap_err();
    assert!(matches!(error, Error::Io { .. }), "{error:?}");
    assert!(error.is_node_failure());
}
