//! The benchmark's settings, read from the environment.

use std::path::PathBuf;
use std::time::Duration;

use crate::common::tomcat::Variant;
use crate::mode::{Jar, Mode, line_names, parse_line};
use crate::wrk::Load;

/// JVM flags of every Tomcat unless `JVM_OPTS` says otherwise.
const DEFAULT_JVM_OPTS: &str = "-Xms512m -Xmx512m -XX:+UseParallelGC";

/// Modes run unless `MODES` says otherwise.
const DEFAULT_MODES: &str = "standard msm-sticky-async sticky-async";

/// Mixes run unless `WRITE_PERCENT` says otherwise: read-only, one modifying request in five,
/// every request modifying.
const DEFAULT_MIXES: &str = "0 20 100";

/// The most 1 KiB attributes `ATTRIBUTES` may ask for: the demo application's limit.
const MAX_ATTRIBUTES: u32 = 4096;

/// What to run and for how long.
#[derive(Debug)]
pub struct Settings {
    /// Load on each Tomcat before measuring (its JIT needs 100-200 s), shared among the mixes;
    /// zero skips it.
    pub warmup: Duration,
    /// Length of each measured wrk run.
    pub duration: Duration,
    /// Rounds per mix; each runs every mode once.
    pub rounds: u32,
    /// wrk threads.
    pub threads: u32,
    /// wrk connections, a multiple of `threads`.
    pub connections: u32,
    /// Sessions per connection.
    pub sessions: u32,
    /// The mixes: each a share of requests that modify the session (`GET /`), in percent.
    pub mixes: Vec<u32>,
    /// Attributes of 1 KiB each benchmark session holds, one of which each modifying request
    /// replaces; 0 for the small session of the counter alone.
    pub attributes: u32,
    /// memcached nodes.
    pub nodes: u32,
    /// The Tomcat line of the modes without an `@tomcat` suffix.
    pub line: Variant,
    /// Flags of every Tomcat JVM, as given.
    pub jvm_opts: String,
    /// The Tomcats to run; the first is the baseline of the ratios.
    pub modes: Vec<Mode>,
    /// The jar the `@baseline` modes run, when one does.
    pub baseline_jar: Option<PathBuf>,
    /// Requests per kind in the table of memcached operations per request.
    pub ops_requests: u32,
}

impl Settings {
    /// Reads `WARMUP`, `DURATION`, `ROUNDS`, `THREADS`, `CONNECTIONS`, `SESSIONS`,
    /// `WRITE_PERCENT`, `ATTRIBUTES`, `NODES`, `TOMCAT`, `JVM_OPTS`, `MODES`, `BASELINE_JAR` and
    /// `OPS_REQUESTS`; an error says which one is wrong.
    pub fn from_env() -> Result<Self, String> {
        let mixes = mixes(&text("WRITE_PERCENT", DEFAULT_MIXES))?;
        let attributes = number("ATTRIBUTES", 1, 0)?;
        if attributes > MAX_ATTRIBUTES {
            return Err(format!(
                "ATTRIBUTES must be at most {MAX_ATTRIBUTES}, not {attributes}"
            ));
        }
        let threads = number("THREADS", 2, 1)?;
        let connections = number("CONNECTIONS", 16, 1)?;
        if connections % threads != 0 {
            return Err(format!(
                "CONNECTIONS ({connections}) must be a multiple of THREADS ({threads}): wrk gives \
                 each thread the same number of connections"
            ));
        }
        let line_text = text("TOMCAT", "9");
        let line = parse_line(line_text.trim()).ok_or_else(|| {
            format!(
                "TOMCAT must be a Tomcat line ({}), not '{line_text}'",
                line_names()
            )
        })?;
        let modes = modes(&text("MODES", DEFAULT_MODES), line)?;
        let baseline_jar = baseline_jar(&modes)?;
        Ok(Settings {
            warmup: Duration::from_secs(number("WARMUP", 120, 0)?.into()),
            duration: Duration::from_secs(number("DURATION", 20, 1)?.into()),
            rounds: number("ROUNDS", 3, 1)?,
            threads,
            connections,
            sessions: number("SESSIONS", 64, 1)?,
            mixes,
            attributes,
            nodes: number("NODES", 2, 1)?,
            line,
            jvm_opts: text("JVM_OPTS", DEFAULT_JVM_OPTS),
            modes,
            baseline_jar,
            ops_requests: number("OPS_REQUESTS", 100, 1)?,
        })
    }

    /// The load of every wrk run of the mix `write_percent`.
    pub fn load(&self, write_percent: u32) -> Load {
        Load {
            threads: self.threads,
            connections: self.connections,
            sessions: self.sessions,
            write_percent,
            attributes: self.attributes,
        }
    }

    /// Sessions a wrk run holds: `SESSIONS` per connection.
    pub fn total_sessions(&self) -> u64 {
        u64::from(self.connections) * u64::from(self.sessions)
    }

    /// The path of a modifying request: `/`, or `/?attributes=N` for sessions of N 1 KiB
    /// attributes (the demo application's parameter). Every `GET /` of the benchmark uses it,
    /// `session.lua` builds the same, so that every session measured holds them.
    pub fn modifying_path(&self) -> String {
        if self.attributes == 0 {
            "/".to_owned()
        } else {
            format!("/?attributes={}", self.attributes)
        }
    }

    /// The JVM flags, one argument each.
    pub fn jvm_flags(&self) -> Vec<String> {
        self.jvm_opts
            .split_whitespace()
            .map(str::to_owned)
            .collect()
    }

    /// Width of the mode column: the longest name of a mode run.
    pub fn name_width(&self) -> usize {
        self.modes
            .iter()
            .map(|mode| mode.name().len())
            .max()
            .unwrap_or_default()
            .max("mode".len())
    }
}

/// The variable `name`, or `default` when unset.
fn text(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_owned())
}

/// The whole number in `name`, at least `min`; `default` when unset.
fn number(name: &str, default: u32, min: u32) -> Result<u32, String> {
    let Ok(value) = std::env::var(name) else {
        return Ok(default);
    };
    match value.trim().parse() {
        Ok(n) if n >= min => Ok(n),
        _ if min == 0 => Err(format!("{name} must be a whole number, not '{value}'")),
        _ => Err(format!(
            "{name} must be a whole number of at least {min}, not '{value}'"
        )),
    }
}

/// The mixes of `WRITE_PERCENT`: percentages from 0 to 100, separated by spaces, each at most
/// once.
fn mixes(list: &str) -> Result<Vec<u32>, String> {
    distinct("WRITE_PERCENT", list, "mix", |word| {
        word.parse()
            .ok()
            .filter(|percent| *percent <= 100)
            .ok_or_else(|| {
                format!("WRITE_PERCENT must list percentages from 0 to 100, not '{word}'")
            })
    })
}

/// The modes named in `list`, separated by spaces, each at most once; those without an
/// `@tomcat` suffix on `line`.
fn modes(list: &str, line: Variant) -> Result<Vec<Mode>, String> {
    distinct("MODES", list, "mode", |name| Mode::parse(name, line))
}

/// The words of `list`, the value of `variable`, each read by `parse`: at least one (`what`
/// names one in the error), none twice.
fn distinct<T: PartialEq>(
    variable: &str,
    list: &str,
    what: &str,
    parse: impl Fn(&str) -> Result<T, String>,
) -> Result<Vec<T>, String> {
    let mut all = Vec::new();
    for word in list.split_whitespace() {
        let item = parse(word)?;
        if all.contains(&item) {
            return Err(format!("{variable} names {word} twice"));
        }
        all.push(item);
    }
    if all.is_empty() {
        return Err(format!("{variable} names no {what}"));
    }
    Ok(all)
}

/// `BASELINE_JAR` made absolute, which must name a file when a mode of `modes` runs it; `None`
/// when none does.
fn baseline_jar(modes: &[Mode]) -> Result<Option<PathBuf>, String> {
    let Some(user) = modes.iter().find(|mode| mode.jar == Jar::Baseline) else {
        return Ok(None);
    };
    let jar = text("BASELINE_JAR", "");
    let path = PathBuf::from(&jar)
        .canonicalize()
        .ok()
        .filter(|path| path.is_file());
    path.map(Some).ok_or_else(|| {
        format!(
            "mode {} runs BASELINE_JAR, which must name a jar, not '{jar}'",
            user.name()
        )
    })
}
