//! The benchmark's settings, read from the environment.

use std::path::PathBuf;
use std::time::Duration;

use crate::mode::{Jar, Manager, Mode};
use crate::wrk::Load;

/// JVM flags of every Tomcat unless `JVM_OPTS` says otherwise.
const DEFAULT_JVM_OPTS: &str = "-Xms512m -Xmx512m -XX:+UseParallelGC";

/// Modes run unless `MODES` says otherwise.
const DEFAULT_MODES: &str = "standard sticky-async sticky-sync";

/// The most 1 KiB attributes `ATTRIBUTES` may ask for: the demo application's limit.
const MAX_ATTRIBUTES: u32 = 4096;

/// What to run and for how long.
#[derive(Debug)]
pub struct Settings {
    /// Load on each Tomcat before measuring (its JIT needs 100-200 s); zero skips it.
    pub warmup: Duration,
    /// Length of each measured wrk run.
    pub duration: Duration,
    /// Rounds; each runs every mode once.
    pub rounds: u32,
    /// wrk connections, and as many wrk threads: one connection, one session each.
    pub connections: u32,
    /// Share of requests that modify the session (`GET /`), in percent.
    pub write_percent: u32,
    /// Attributes of 1 KiB each benchmark session holds, one of which each modifying request
    /// replaces; 0 for the small session of the counter alone.
    pub attributes: u32,
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
    /// Reads `WARMUP`, `DURATION`, `ROUNDS`, `CONNECTIONS`, `WRITE_PERCENT`, `ATTRIBUTES`,
    /// `JVM_OPTS`, `MODES`, `BASELINE_JAR` and `OPS_REQUESTS`; an error says which one is wrong.
    pub fn from_env() -> Result<Self, String> {
        let write_percent = number("WRITE_PERCENT", 20, 0)?;
        if write_percent > 100 {
            return Err(format!(
                "WRITE_PERCENT must be at most 100, not {write_percent}"
            ));
        }
        let attributes = number("ATTRIBUTES", 0, 0)?;
        if attributes > MAX_ATTRIBUTES {
            return Err(format!(
                "ATTRIBUTES must be at most {MAX_ATTRIBUTES}, not {attributes}"
            ));
        }
        let modes = modes(&text("MODES", DEFAULT_MODES))?;
        let baseline_jar = baseline_jar(&modes)?;
        Ok(Settings {
            warmup: Duration::from_secs(number("WARMUP", 120, 0)?.into()),
            duration: Duration::from_secs(number("DURATION", 30, 1)?.into()),
            rounds: number("ROUNDS", 3, 1)?,
            connections: number("CONNECTIONS", 8, 1)?,
            write_percent,
            attributes,
            jvm_opts: text("JVM_OPTS", DEFAULT_JVM_OPTS),
            modes,
            baseline_jar,
            ops_requests: number("OPS_REQUESTS", 100, 1)?,
        })
    }

    /// The load of every wrk run.
    pub fn load(&self) -> Load {
        Load {
            connections: self.connections,
            write_percent: self.write_percent,
            attributes: self.attributes,
        }
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

/// The modes named in `list`, separated by spaces, each at most once.
fn modes(list: &str) -> Result<Vec<Mode>, String> {
    let mut modes = Vec::new();
    for name in list.split_whitespace() {
        let mode = Mode::parse(name).ok_or_else(|| {
            let known: Vec<_> = Manager::ALL.iter().map(|m| m.name()).collect();
            format!(
                "unknown mode {name} ({}, each also with @baseline)",
                known.join(" ")
            )
        })?;
        if modes.contains(&mode) {
            return Err(format!("mode {name} is named twice in MODES"));
        }
        modes.push(mode);
    }
    if modes.is_empty() {
        return Err("MODES names no mode".to_owned());
    }
    Ok(modes)
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
