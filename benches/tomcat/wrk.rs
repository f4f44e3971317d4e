//! wrk, the load generator: one run against one Tomcat with `session.lua`, and what it reports.

use std::process::Command;
use std::time::Duration;

/// Where Debian's `wrk` package installs it.
pub const PROGRAM: &str = "/usr/bin/wrk";

/// The wrk script: sessions in turn on every connection, every answer checked.
const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/tomcat/session.lua");

/// The load wrk puts on a Tomcat.
#[derive(Clone, Copy, Debug)]
pub struct Load {
    /// Threads; wrk keeps one Lua state per thread, which holds the sessions of the thread's
    /// connections.
    pub threads: u32,
    /// Connections, a multiple of `threads`.
    pub connections: u32,
    /// Sessions per connection.
    pub sessions: u32,
    /// Share of requests that modify the session, in percent.
    pub write_percent: u32,
    /// Attributes of 1 KiB in each session (`/?attributes=N`); 0 for none.
    pub attributes: u32,
}

/// What one wrk run measured.
#[derive(Clone, Debug, Default)]
pub struct Outcome {
    /// Requests per second.
    pub requests_per_second: f64,
    /// 99th percentile latency, in milliseconds.
    pub p99_ms: f64,
    /// Requests completed.
    pub requests: u64,
    /// Non-2xx or 3xx responses plus socket errors.
    pub errors: u64,
    /// What the script saw of the sessions.
    pub sessions: Sessions,
}

/// The script's totals over all threads (its `SESSIONCHECK` line).
#[derive(Clone, Copy, Debug, Default)]
pub struct Sessions {
    /// Sessions created: the first of each the run holds, and one for each lost.
    pub created: u64,
    /// Sessions whose id changed with their content kept (a new cookie, the counter going on).
    pub changed: u64,
    /// Modifying requests answered.
    pub writes: u64,
    /// Reading requests answered.
    pub reads: u64,
    /// Sessions lost: an answer without the session, or with a new one in its place.
    pub lost: u64,
    /// Answers of the session whose counter was not the one expected (a write lost, or an old
    /// copy read).
    pub mismatches: u64,
    /// Answers with a status other than 200, or for no session the script holds.
    pub failures: u64,
}

impl Sessions {
    /// Whether the run created its `sessions` once each, kept them all, and every counter was
    /// right.
    pub fn kept(&self, sessions: u64) -> bool {
        self.created == sessions
            && self.changed == 0
            && self.lost == 0
            && self.mismatches == 0
            && self.failures == 0
    }
}

/// Runs wrk against `127.0.0.1:port` for `length`; panics with wrk's output when it fails.
pub fn run(port: u16, length: Duration, load: Load) -> Outcome {
    let per_thread = load.connections / load.threads * load.sessions;
    let output = Command::new(PROGRAM)
        .args(["-t", &load.threads.to_string()])
        .args(["-c", &load.connections.to_string()])
        .arg(format!("-d{}s", length.as_secs()))
        .args(["--timeout", "10s", "--latency", "-s", SCRIPT])
        .arg(format!("http://127.0.0.1:{port}/"))
        .args([
            "--",
            &load.write_percent.to_string(),
            &load.attributes.to_string(),
            &per_thread.to_string(),
        ])
        .output()
        .unwrap_or_else(|e| panic!("cannot run {PROGRAM}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    match parse(&text) {
        Some(outcome) if output.status.success() => outcome,
        _ => panic!(
            "wrk against port {port} failed ({}):\n{text}",
            output.status
        ),
    }
}

/// Reads wrk's report; `None` without a `Requests/sec` or `SESSIONCHECK` line.
fn parse(text: &str) -> Option<Outcome> {
    let mut outcome = Outcome::default();
    let mut rate = None;
    let mut check = None;
    for line in text.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["Requests/sec:", value] => rate = value.parse().ok(),
            ["99%", value] => outcome.p99_ms = milliseconds(value)?,
            [count, "requests", "in", ..] => outcome.requests = count.parse().ok()?,
            ["Non-2xx", "or", "3xx", "responses:", count] => {
                outcome.errors += count.parse::<u64>().ok()?
            }
            ["Socket", "errors:", ..] => outcome.errors += socket_errors(line)?,
            ["SESSIONCHECK", fields @ ..] => check = Some(sessions(fields)?),
            _ => {}
        }
    }
    outcome.requests_per_second = rate?;
    outcome.sessions = check?;
    Some(outcome)
}

/// A wrk duration (`812.00us`, `1.25ms`, `2.00s`, `1.50m`, `1.00h`) in milliseconds.
fn milliseconds(value: &str) -> Option<f64> {
    let digits = value.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let number: f64 = digits.parse().ok()?;
    let scale = match &value[digits.len()..] {
        "us" => 0.001,
        "ms" => 1.0,
        "s" => 1_000.0,
        "m" => 60_000.0,
        "h" => 3_600_000.0,
        _ => return None,
    };
    Some(number * scale)
}

/// The sum of `Socket errors: connect 0, read 0, write 0, timeout 0`.
fn socket_errors(line: &str) -> Option<u64> {
    let (_, counts) = line.split_once(':')?;
    counts
        .split(',')
        .map(|count| count.split_whitespace().nth(1)?.parse::<u64>().ok())
        .sum()
}

/// The `name=value` fields of the script's `SESSIONCHECK` line.
fn sessions(fields: &[&str]) -> Option<Sessions> {
    let field = |name: &str| -> Option<u64> {
        fields
            .iter()
            .find_map(|field| field.strip_prefix(name)?.strip_prefix('='))?
            .parse()
            .ok()
    };
    Some(Sessions {
        created: field("sessions")?,
        changed: field("changed")?,
        writes: field("writes")?,
        reads: field("reads")?,
        lost: field("lost")?,
        mismatches: field("mismatches")?,
        failures: field("failures")?,
    })
}
