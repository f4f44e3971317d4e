//! Broadcast session events through the C face (`sessionEvents="broadcast"`), on one real
//! memcached: C hosts (`tests/c/msm_test.c` in its `broadcast-publish` and `broadcast-listen`
//! modes, through `msm_manager_publish` and `msm_manager_poll_event`) and a Rust manager of the
//! same context (the same node and storage key prefix). What one publishes the others hear, once,
//! in order, with names and values, ids without their route; arguments that do not fit are
//! refused with a message saying why, and publish nothing.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{Memcached, TempDir, compile_c, hear, manager, node_list, stat};
use msm::runtime::block_on;
use msm::{EventKind, SessionEvent, SessionId, SessionManager};

/// The context's storage key prefix, which the C hosts and the Rust manager share.
const PREFIX: &str = "broadcast-c:";
/// Seconds a C host listens: the events arrive within the first; the rest shows that nothing
/// is heard twice.
const LISTEN_SECONDS: u64 = 5;

/// Compiles `tests/c/msm_test.c` into `dir`.
fn compile(dir: &TempDir) -> PathBuf {
    let output = dir.path.join("msm_test");
    compile_c("tests/c/msm_test.c", &[], &output);
    output
}

/// The configuration attributes the C hosts take after their node list.
fn attributes() -> Vec<String> {
    vec![
        format!("storageKeyPrefix={PREFIX}"),
        "broadcastPollInterval=100".to_owned(),
        "operationTimeout=300".to_owned(),
    ]
}

/// A C host in one mode, its output going to files; killed when dropped.
struct Host {
    child: Child,
    stdout: PathBuf,
    stderr: PathBuf,
}

impl Host {
    /// Starts `program` with `args` then [`attributes`], its standard input piped.
    fn spawn(program: &Path, args: &[&str], dir: &TempDir, name: &str) -> Self {
        let stdout = dir.path.join(format!("{name}.out"));
        let stderr = dir.path.join(format!("{name}.err"));
        let child = Command::new(program)
            .args(args)
            .args(attributes())
            .env_remove("LD_LIBRARY_PATH")
            .stdin(Stdio::piped())
            .stdout(std::fs::File::create(&stdout).unwrap())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .spawn()
            .expect("cannot start the C host");
        Host {
            child,
            stdout,
            stderr,
        }
    }

    fn output(&self) -> String {
        std::fs::read_to_string(&self.stdout).unwrap_or_default()
    }

    /// Its output, and error output, for messages.
    fn report(&self) -> String {
        let errors = std::fs::read_to_string(&self.stderr).unwrap_or_default();
        format!("{}{errors}", self.output())
    }

    /// Waits until it printed a line starting with `READY`; that line.
    fn ready(&self) -> String {
        let started = Instant::now();
        loop {
            if let Some(line) = self.output().lines().find(|l| l.starts_with("READY")) {
                return line.to_owned();
            }
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "the C host did not start: {}",
                self.report()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits for its end; its output, which must end with a line starting with `last`.
    fn finish(mut self, last: &str) -> String {
        let limit = Instant::now() + Duration::from_secs(LISTEN_SECONDS + 30);
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            assert!(Instant::now() < limit, "the C host hung: {}", self.report());
            std::thread::sleep(Duration::from_millis(20));
        };
        let output = self.output();
        assert!(
            status.success() && output.lines().last().is_some_and(|l| l.starts_with(last)),
            "the C host ended with {status}:\n{}",
            self.report()
        );
        output
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A C host listening for [`LISTEN_SECONDS`], once its manager is made (polling every 100 ms).
fn listener(program: &Path, nodes: &str, dir: &TempDir) -> Host {
    let seconds = LISTEN_SECONDS.to_string();
    let host = Host::spawn(
        program,
        &["broadcast-listen", &seconds, nodes],
        dir,
        "listener",
    );
    assert_eq!(
        host.ready(),
        "READY 100",
        "msm_manager_broadcast_poll_interval_ms"
    );
    host
}

/// Runs a C host publishing `lines` (`<kind> <id> <name> <value>`); what it printed for each
/// line (`OK` or `ERROR ...`), and the count of events it published.
fn publish(program: &Path, nodes: &str, lines: &[String], dir: &TempDir) -> (Vec<String>, u64) {
    let mut host = Host::spawn(
        program,
        &["broadcast-publish", nodes, "broadcastValues=true"],
        dir,
        "publisher",
    );
    let mut stdin = host.child.stdin.take().unwrap();
    for line in lines {
        writeln!(stdin, "{line}").unwrap();
    }
    drop(stdin);
    let output = host.finish("PUBLISHED ");
    let mut printed: Vec<String> = output.lines().map(str::to_owned).collect();
    let published = printed.pop().unwrap();
    assert_eq!(printed.remove(0), "READY", "{output}");
    assert_eq!(printed.len(), lines.len(), "one answer per line: {output}");
    let published = published["PUBLISHED ".len()..].parse().expect(&output);
    (printed, published)
}

/// Lowercase hex, as the C hosts print values.
fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The line a C host publishes `event` from, under the id `id` (`event.id`, maybe routed).
fn line(event: &SessionEvent, id: &str) -> String {
    format!(
        "{} {id} {} {}",
        event.kind as i32,
        event.name.as_deref().unwrap_or("-"),
        event
            .value
            .as_deref()
            .map_or("-".to_owned(), |v| format!("0x{}", hex(v)))
    )
}

/// The events a C host printed (`EVENT <kind> <id> <name> <value>`), as the core's events.
fn heard(output: &str) -> Vec<SessionEvent> {
    output
        .lines()
        .filter_map(|l| l.strip_prefix("EVENT "))
        .map(|l| {
            let fields: Vec<&str> = l.split(' ').collect();
            let [kind, id, name, value] = fields[..] else {
                panic!("not an event: {l}");
            };
            let value = match value {
                "-" => None,
                value => {
                    let digits = value.strip_prefix("0x").expect(l);
                    let bytes = (0..digits.len())
                        .step_by(2)
                        .map(|i| u8::from_str_radix(&digits[i..i + 2], 16).expect(l))
                        .collect();
                    Some(bytes)
                }
            };
            SessionEvent {
                kind: EventKind::from_number(kind.parse().expect(l)).expect(l),
                id: SessionId::parse(id).expect(l),
                name: (name != "-").then(|| name.to_owned()),
                value,
            }
        })
        .collect()
}

/// A Rust manager of the C hosts' context.
fn rust_manager(server: &Memcached) -> std::sync::Arc<SessionManager> {
    manager(
        &[server],
        &[
            ("sessionEvents", "broadcast"),
            ("storageKeyPrefix", PREFIX),
            ("broadcastPollInterval", "100"),
            ("broadcastValues", "true"),
        ],
    )
}

fn event(
    kind: EventKind,
    id: &SessionId,
    name: Option<&str>,
    value: Option<&[u8]>,
) -> SessionEvent {
    SessionEvent {
        kind,
        id: id.clone(),
        name: name.map(str::to_owned),
        value: value.map(<[u8]>::to_vec),
    }
}

#[test]
fn events_one_host_publishes_the_others_hear_once_in_order() {
    let dir = TempDir::new("broadcast-c-host");
    let program = compile(&dir);
    let server = Memcached::start();
    let nodes = node_list(&[&server]);
    let listening = listener(&program, &nodes, &dir);
    let rust = rust_manager(&server);

    let routed = block_on(rust.new_session_id(Some("r1"))).unwrap();
    let id = routed.with_route(None).unwrap();
    let blob: &[u8] = &[0x00, 0x01, 0x00, 0xff, b'x', b'\r', b'\n'];
    let published = vec![
        event(EventKind::Created, &id, None, None),
        event(EventKind::AttributeAdded, &id, Some("cart"), Some(blob)),
        event(EventKind::AttributeReplaced, &id, Some("cart"), Some(b"")),
        event(EventKind::AttributeAdded, &id, Some("user"), Some(b"alice")),
        event(EventKind::AttributeRemoved, &id, Some("cart"), None),
        event(EventKind::Destroyed, &id, None, None),
    ];
    // The first under the id the request carried, with its route.
    let lines: Vec<String> = published
        .iter()
        .enumerate()
        .map(|(n, e)| {
            line(
                e,
                &if n == 0 {
                    routed.to_string()
                } else {
                    id.to_string()
                },
            )
        })
        .collect();
    let (answers, count) = publish(&program, &nodes, &lines, &dir);
    assert!(answers.iter().all(|a| a == "OK"), "{answers:?}");
    assert_eq!(count, published.len() as u64, "one publication per event");

    // A Rust manager hears the C host's events, and publishes one the C listener hears last.
    assert_eq!(hear(&rust, published.len()), published, "the Rust manager");
    let from_rust = event(
        EventKind::AttributeAdded,
        &id,
        Some("from-rust"),
        Some(b"\x00rust"),
    );
    msm::runtime::handle().block_on(rust.publish(std::slice::from_ref(&from_rust)));

    let output = listening.finish("LISTENED ");
    let mut expected = published.clone();
    expected.push(from_rust);
    assert_eq!(heard(&output), expected, "the C listener:\n{output}");
    assert_eq!(
        output.lines().last(),
        Some(format!("LISTENED {}", expected.len()).as_str())
    );
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        block_on(rust.broadcast_events()).unwrap().is_empty(),
        "nothing heard twice, nor its own event"
    );
    assert_eq!(stat(&rust, "broadcast_records_refused"), 0);
}

#[test]
fn arguments_that_do_not_fit_are_refused_and_publish_nothing() {
    let dir = TempDir::new("broadcast-c-host-refused");
    let program = compile(&dir);
    let server = Memcached::start();
    let nodes = node_list(&[&server]);
    let listening = listener(&program, &nodes, &dir);
    let rust = rust_manager(&server);
    let id = block_on(rust.new_session_id(None)).unwrap();

    // Each line, and what the answer must hold.
    let refused = [
        (
            format!("5 {id} - -"),
            "INVALID_ARGUMENT `kind` 5 is not an msm_event_kind",
        ),
        (format!("-1 {id} - -"), "INVALID_ARGUMENT `kind` -1 is not"),
        (
            format!("2 {id} - 0x01"),
            "INVALID_ARGUMENT `name` is NULL, but a MSM_EVENT_KIND_ATTRIBUTE_ADDED event names its attribute",
        ),
        (
            format!("4 {id} - -"),
            "INVALID_ARGUMENT `name` is NULL, but a MSM_EVENT_KIND_ATTRIBUTE_REMOVED",
        ),
        (
            format!("0 {id} cart -"),
            "INVALID_ARGUMENT `name` is given, but a MSM_EVENT_KIND_CREATED event names no attribute",
        ),
        (
            format!("1 {id} - 0x01"),
            "INVALID_ARGUMENT `value` is given, but a MSM_EVENT_KIND_DESTROYED event",
        ),
        (
            "0 ../../etc/passwd - -".to_owned(),
            "INVALID_ID `id`: invalid session id",
        ),
        (
            format!("0 {id}\rflush_all - -"),
            "INVALID_ID `id`: invalid session id",
        ),
        (format!("3 {id}.r1.r2 cart -"), "INVALID_ID"),
        ("0 - - -".to_owned(), "INVALID_ARGUMENT `id` is NULL"),
    ];
    let good = event(
        EventKind::AttributeReplaced,
        &id,
        Some("cart"),
        Some(b"\x02"),
    );
    let mut lines: Vec<String> = refused.iter().map(|(line, _)| line.clone()).collect();
    lines.push(line(&good, &id.to_string()));

    let (answers, count) = publish(&program, &nodes, &lines, &dir);
    for ((line, wanted), answer) in refused.iter().zip(&answers) {
        let wanted = format!("ERROR MSM_STATUS_{wanted}");
        assert!(
            answer.starts_with(&wanted),
            "{line:?}: {answer:?} does not start with {wanted:?}"
        );
    }
    assert_eq!(answers.last().map(String::as_str), Some("OK"));
    assert_eq!(count, 1, "only the event that fits is published");

    assert_eq!(hear(&rust, 1), vec![good.clone()], "the Rust manager");
    let output = listening.finish("LISTENED ");
    assert_eq!(heard(&output), vec![good], "the C listener:\n{output}");
    assert_eq!(stat(&rust, "broadcast_records_refused"), 0);
}
