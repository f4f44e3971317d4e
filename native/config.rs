//! The configuration vocabulary, shared by both faces.
//!
//! Tomcat's `context.xml` attributes and a C host's `name=value` pairs go through the same
//! parser, so the names, defaults and error messages are the same everywhere. Every refusal names
//! the attribute and the value.

use std::time::Duration;

use regex::Regex;

use crate::error::{Error, Result};
use crate::ids::is_valid_name;
use crate::keys::{KeyScheme, is_valid_prefix};

/// One memcached server of the cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeConfig {
    /// The id encoded in session ids (`n1`).
    pub id: String,
    /// Host name or address.
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// A failover node is used only when no other node is available.
    pub failover: bool,
}

impl NodeConfig {
    /// `host:port`, as used to connect.
    pub fn address(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// `id:host:port`, as written in `memcachedNodes` (IPv6 hosts in brackets).
    pub fn entry(&self) -> String {
        format!("{}:{}", self.id, self.address())
    }
}

/// A node list in `memcachedNodes` syntax, which [`parse_node_list`] reads back (failover flags
/// are not part of it).
pub fn format_node_list(nodes: &[NodeConfig]) -> String {
    nodes
        .iter()
        .map(NodeConfig::entry)
        .collect::<Vec<_>>()
        .join(" ")
}

/// Which requests of a non-sticky session take the session lock.
#[derive(Clone, Debug)]
pub enum LockingMode {
    /// Never lock.
    None,
    /// Lock every request that uses the session.
    All,
    /// Lock requests that are not known to be read-only.
    Auto,
    /// Lock requests whose URI matches the pattern.
    UriPattern(Regex),
}

impl PartialEq for LockingMode {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (LockingMode::UriPattern(a), LockingMode::UriPattern(b)) => a.as_str() == b.as_str(),
            _ => std::mem::discriminant(self) == std::mem::discriminant(other),
        }
    }
}

/// Where the integrity keys are read from; never the keys themselves, so they stay out of
/// configuration files. The source holds one key per line (see [`crate::envelope::KeyRing`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeySource {
    /// A file holding the keys.
    File(String),
    /// An environment variable holding the keys.
    Env(String),
}

impl std::fmt::Display for KeySource {
    /// The source as configured (`file:<path>`, `env:<VARIABLE>`).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeySource::File(path) => write!(f, "file:{path}"),
            KeySource::Env(var) => write!(f, "env:{var}"),
        }
    }
}

/// TLS to every memcached node (`tls` and the `tls...` attributes). The files are read when the
/// manager starts; the client key is a secret, so it is named like the integrity keys, never
/// given.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsConfig {
    /// PEM file of the certificate authorities a server's certificate must chain to
    /// (`tlsCaFile`).
    pub ca_file: String,
    /// The name a server's certificate must carry (`tlsServerName`); by default each node's
    /// host as written in `memcachedNodes` (a DNS name or an IP address).
    pub server_name: Option<String>,
    /// PEM file of this client's certificate chain, for servers that ask for one
    /// (`tlsClientCertificateFile`).
    pub client_certificate_file: Option<String>,
    /// Where this client's PEM private key is read from (`tlsClientKey`).
    pub client_key: Option<KeySource>,
}

/// Whether stored sessions are encrypted (`encryption`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Encryption {
    /// Sessions are signed (with keys) or checksummed, not encrypted.
    #[default]
    None,
    /// Sessions are encrypted with AES-256-GCM under a key derived from the first integrity key.
    Aes256Gcm,
}

/// What a changed session's write sends (`updateGranularity`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum UpdateGranularity {
    /// The whole session, in one item.
    #[default]
    Session,
    /// Only the attributes that changed: each attribute is an item of its own, and the
    /// session's item holds its metadata and an index of its attributes.
    Attribute,
}

/// Which distributed session events the manager keeps the bookkeeping of (`sessionEvents`):
/// see [`crate::events`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SessionEvents {
    /// None: no event costs a memcached command.
    #[default]
    Off,
    /// Sessions that end by expiry are handed, each exactly once, to one manager of the
    /// context ([`crate::SessionManager::expired_sessions`]), even when no host holds them.
    Expiry,
    /// As [`SessionEvents::Expiry`], and every manager of the context hears the session events
    /// the others publish ([`crate::SessionManager::broadcast_events`]).
    Broadcast,
}

impl SessionEvents {
    /// Whether expired sessions are handed over (`expiry` and `broadcast`).
    pub fn expiry(self) -> bool {
        self != SessionEvents::Off
    }

    /// Whether session events are broadcast to every manager of the context.
    pub fn broadcast(self) -> bool {
        self == SessionEvents::Broadcast
    }
}

/// A validated configuration.
#[derive(Clone, Debug)]
pub struct Config {
    /// The memcached nodes as configured at start, in the order given (failover nodes flagged);
    /// the running list may be replaced since (`SessionManager::set_nodes`).
    pub nodes: Vec<NodeConfig>,
    /// Sticky sessions (Tomcat memory is the primary copy) or non-sticky (memcached is).
    pub sticky: bool,
    /// Locking of non-sticky sessions.
    pub locking_mode: LockingMode,
    /// How long a session lock lives in memcached if its holder never releases it.
    pub lock_expiration: Duration,
    /// How long a request waits for a session lock before giving up.
    pub lock_max_wait: Duration,
    /// What a request does when it could not take the session lock in time: `false` proceeds
    /// without it, `true` is refused (Tomcat answers 503).
    pub lock_failure_refuses: bool,
    /// First pause between lock attempts; it doubles up to `lock_backoff_max`.
    pub lock_backoff_initial: Duration,
    /// Longest pause between lock attempts.
    pub lock_backoff_max: Duration,
    /// Deadline of every memcached operation, retries included.
    pub operation_timeout: Duration,
    /// Extra attempts, on a fresh connection, after a connection failure (within the deadline).
    pub operation_retries: u32,
    /// Pause between probes of a node that is marked down.
    pub node_probe_interval: Duration,
    /// Whether the manager follows the node list shared in the cluster (see `membership`).
    pub shared_node_list: bool,
    /// How often the shared node list is read again in the background; `None`: only at start,
    /// for ids naming a node this manager does not know, and on request.
    pub node_list_refresh_interval: Option<Duration>,
    /// The key prefix of this context.
    pub keys: KeyScheme,
    /// Sticky mode: back up sessions asynchronously after the request.
    pub session_backup_async: bool,
    /// Sticky mode with synchronous backup: how long a request waits for its backup.
    pub session_backup_timeout: Duration,
    /// Default lifetime of an idle session, in seconds; 0 or less means never expires.
    pub max_inactive_interval: i32,
    /// Largest encoded session accepted for storing or decoding.
    pub max_session_size: usize,
    /// Source of the integrity keys; without one, values carry a checksum.
    pub integrity_key: Option<KeySource>,
    /// Whether sessions are encrypted (with keys derived from `integrity_key`'s).
    pub encryption: Encryption,
    /// Session bodies of at least this many bytes are compressed; 0: never.
    pub compression_threshold: usize,
    /// `updateGranularity`: what a changed session's write sends.
    pub update_granularity: UpdateGranularity,
    /// Requests whose URI matches never touch memcached (static resources).
    pub request_uri_ignore_pattern: Option<Regex>,
    /// Only attributes whose name matches are stored; all when unset.
    pub session_attribute_filter: Option<Regex>,
    /// When false the manager keeps sessions in memory only, like Tomcat's default.
    pub enabled: bool,
    /// Most asynchronous backups in flight; past it a backup is written synchronously.
    pub backup_queue_size: usize,
    /// Most session copies the near cache keeps (0: no near cache).
    pub near_cache_max_sessions: usize,
    /// Most bytes of session copies the near cache keeps.
    pub near_cache_max_bytes: usize,
    /// Pause before retrying an operation on a fresh connection.
    pub operation_retry_backoff: Duration,
    /// TLS to memcached; `None`: plain TCP.
    pub tls: Option<TlsConfig>,
    /// Where the credentials of memcached's ASCII authentication (`user:password`) are read
    /// from (`memcachedCredentials`); `None`: no authentication.
    pub credentials: Option<KeySource>,
    /// Which distributed session events are kept (`sessionEvents`).
    pub session_events: SessionEvents,
    /// How often a manager sweeps for expired sessions, and the width of the time buckets
    /// their expiries are indexed by (`eventSweepInterval`, seconds): the same on every manager
    /// of a context, as it numbers the buckets.
    pub event_sweep_interval: Duration,
    /// With `sessionEvents="broadcast"`, how often a host asks for the events the others
    /// published (`broadcastPollInterval`, milliseconds): the delay with which it hears them.
    pub broadcast_poll_interval: Duration,
    /// With `sessionEvents="broadcast"`, whether attribute events carry the attribute's value
    /// (`broadcastValues`, default false: names only, nothing serialized for them).
    pub broadcast_values: bool,
}

impl Config {
    /// Seconds that memcached keeps a session's copies beyond their usual lifetime, so that the
    /// sweep that finds the session expired still reads its last data: a bucket's width, the
    /// delay before it is swept, a poll missed and a sweeper's lapsed claim, with margin (0
    /// without events).
    pub fn event_grace(&self) -> u64 {
        match self.session_events {
            SessionEvents::Off => 0,
            SessionEvents::Expiry | SessionEvents::Broadcast => {
                4 * self.event_sweep_interval.as_secs() + 10
            }
        }
    }

    /// Whether a request for `uri` must leave memcached alone (`requestUriIgnorePattern`).
    pub fn ignores_uri(&self, uri: &str) -> bool {
        self.request_uri_ignore_pattern
            .as_ref()
            .is_some_and(|p| p.is_match(uri))
    }

    /// Whether the attribute `name` is stored (`sessionAttributeFilter`).
    pub fn stores_attribute(&self, name: &str) -> bool {
        self.session_attribute_filter
            .as_ref()
            .is_none_or(|p| p.is_match(name))
    }

    /// Parses `name=value` pairs; see [`ConfigBuilder::set`].
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Result<Config> {
        let mut builder = ConfigBuilder::default();
        for (name, value) in pairs {
            builder.set(name, value)?;
        }
        builder.build()
    }
}

/// Collects attributes one at a time (as Tomcat's setters and the C API deliver them) and
/// validates the whole at [`ConfigBuilder::build`].
#[derive(Clone, Debug, Default)]
pub struct ConfigBuilder {
    nodes: Option<String>,
    failover_nodes: Option<String>,
    context: Option<(String, String)>,
    prefix: Option<String>,
    sticky: Option<bool>,
    locking_mode: Option<LockingMode>,
    lock_expiration: Option<u64>,
    lock_max_wait: Option<u64>,
    lock_failure_refuses: Option<bool>,
    lock_backoff_initial: Option<u64>,
    lock_backoff_max: Option<u64>,
    operation_timeout: Option<u64>,
    operation_retries: Option<u64>,
    node_probe_interval: Option<u64>,
    shared_node_list: Option<bool>,
    node_list_refresh_interval: Option<u64>,
    session_backup_async: Option<bool>,
    session_backup_timeout: Option<u64>,
    max_inactive_interval: Option<i32>,
    max_session_size: Option<u64>,
    integrity_key: Option<KeySource>,
    encryption: Option<Encryption>,
    compression_threshold: Option<u64>,
    update_granularity: Option<UpdateGranularity>,
    request_uri_ignore_pattern: Option<Regex>,
    session_attribute_filter: Option<Regex>,
    enabled: Option<bool>,
    backup_queue_size: Option<u64>,
    near_cache_max_sessions: Option<u64>,
    near_cache_max_bytes: Option<u64>,
    operation_retry_backoff: Option<u64>,
    tls: Option<bool>,
    tls_ca_file: Option<String>,
    tls_server_name: Option<String>,
    tls_client_certificate_file: Option<String>,
    tls_client_key: Option<KeySource>,
    credentials: Option<KeySource>,
    session_events: Option<SessionEvents>,
    event_sweep_interval: Option<u64>,
    broadcast_poll_interval: Option<u64>,
    broadcast_values: Option<bool>,
}

/// Every attribute name the parser knows, in documentation order.
pub const ATTRIBUTES: &[&str] = &[
    "memcachedNodes",
    "failoverNodes",
    "sticky",
    "lockingMode",
    "lockExpiration",
    "lockMaxWait",
    "lockFailure",
    "lockBackoffInitial",
    "lockBackoffMax",
    "operationTimeout",
    "operationRetries",
    "operationRetryBackoff",
    "nodeProbeInterval",
    "tls",
    "tlsCaFile",
    "tlsServerName",
    "tlsClientCertificateFile",
    "tlsClientKey",
    "memcachedCredentials",
    "sharedNodeList",
    "nodeListRefreshInterval",
    "storageKeyPrefix",
    "sessionBackupAsync",
    "sessionBackupTimeout",
    "maxInactiveInterval",
    "maxSessionSize",
    "integrityKey",
    "encryption",
    "compressionThreshold",
    "updateGranularity",
    "requestUriIgnorePattern",
    "sessionAttributeFilter",
    "enabled",
    "backupQueueSize",
    "nearCacheMaxSessions",
    "nearCacheMaxBytes",
    "sessionEvents",
    "eventSweepInterval",
    "broadcastPollInterval",
    "broadcastValues",
];

fn parse_bool(name: &str, value: &str) -> Result<bool> {
    match value.trim() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(Error::config(name, value, "expected `true` or `false`")),
    }
}

fn parse_ranged(name: &str, value: &str, min: u64, max: u64) -> Result<u64> {
    let n: u64 = value
        .trim()
        .parse()
        .map_err(|_| Error::config(name, value, "expected a whole number"))?;
    if (min..=max).contains(&n) {
        Ok(n)
    } else {
        Err(Error::config(
            name,
            value,
            format!("expected a number from {min} to {max}"),
        ))
    }
}

fn parse_locking_mode(name: &str, value: &str) -> Result<LockingMode> {
    match value.trim() {
        "none" => Ok(LockingMode::None),
        "all" => Ok(LockingMode::All),
        "auto" => Ok(LockingMode::Auto),
        other => match other.strip_prefix("uriPattern:") {
            Some(pattern) => Regex::new(pattern)
                .map(LockingMode::UriPattern)
                .map_err(|e| Error::config(name, value, format!("bad regular expression: {e}"))),
            None => Err(Error::config(
                name,
                value,
                "expected `none`, `all`, `auto` or `uriPattern:<regex>`",
            )),
        },
    }
}

/// A regular expression matched against whole strings; empty means none.
fn parse_pattern(name: &str, value: &str) -> Result<Option<Regex>> {
    if value.is_empty() {
        return Ok(None);
    }
    Regex::new(&format!("^(?:{value})$"))
        .map(Some)
        .map_err(|e| Error::config(name, value, format!("bad regular expression: {e}")))
}

/// A file path: not empty, no control characters.
fn parse_path(name: &str, value: &str) -> Result<String> {
    let path = value.trim();
    if path.is_empty() || path.chars().any(char::is_control) {
        return Err(Error::config(name, value, "expected the path of a file"));
    }
    Ok(path.to_owned())
}

fn parse_key_source(name: &str, value: &str) -> Result<KeySource> {
    let value = value.trim();
    if let Some(path) = value.strip_prefix("file:").filter(|p| !p.is_empty()) {
        Ok(KeySource::File(path.to_owned()))
    } else if let Some(var) = value.strip_prefix("env:").filter(|v| !v.is_empty()) {
        Ok(KeySource::Env(var.to_owned()))
    } else {
        // Never echo what might be a key pasted in clear.
        Err(Error::config(
            name,
            "<hidden>",
            "expected `file:<path>` or `env:<VARIABLE>`; secrets are never written in the configuration",
        ))
    }
}

/// The refusal of `encryption="aes-256-gcm"` without `integrityKey`.
pub(crate) fn encryption_without_keys() -> Error {
    Error::config(
        "encryption",
        "aes-256-gcm",
        "requires integrityKey: the encryption keys are derived from its keys",
    )
}

/// Splits a list on spaces and commas, dropping empty entries.
fn list(value: &str) -> impl Iterator<Item = &str> {
    value
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|s| !s.is_empty())
}

/// Splits `id:host` (or `host`, `id:[v6]`, `[v6]`) into the optional id and the host.
fn split_id(rest: &str) -> Option<(Option<&str>, &str)> {
    match rest.find('[') {
        Some(0) => Some((None, rest.strip_prefix('[')?.strip_suffix(']')?)),
        Some(open) => Some((
            Some(rest[..open].strip_suffix(':')?),
            rest[open + 1..].strip_suffix(']')?,
        )),
        None => Some(match rest.split_once(':') {
            Some((id, host)) => (Some(id), host),
            None => (None, rest),
        }),
    }
}

/// Parses a `memcachedNodes` value and flags the nodes named in a `failoverNodes` value; used at
/// start and when the node list is replaced at runtime.
pub fn parse_node_list(nodes: &str, failover: Option<&str>) -> Result<Vec<NodeConfig>> {
    let mut nodes = parse_nodes(nodes)?;
    if let Some(failover) = failover {
        for id in list(failover) {
            let node = nodes.iter_mut().find(|n| n.id == id).ok_or_else(|| {
                Error::config(
                    "failoverNodes",
                    failover,
                    format!("node `{id}` is not in memcachedNodes"),
                )
            })?;
            node.failover = true;
        }
        if nodes.iter().all(|n| n.failover) {
            return Err(Error::config(
                "failoverNodes",
                failover,
                "every node is a failover node; at least one regular node is required",
            ));
        }
    }
    Ok(nodes)
}

fn parse_nodes(value: &str) -> Result<Vec<NodeConfig>> {
    const NAME: &str = "memcachedNodes";
    let entries: Vec<&str> = list(value).collect();
    if entries.is_empty() {
        return Err(Error::config(NAME, value, "at least one node is required"));
    }
    let mut nodes: Vec<NodeConfig> = Vec::with_capacity(entries.len());
    for entry in &entries {
        let (rest, port) = entry
            .rsplit_once(':')
            .ok_or_else(|| Error::config(NAME, entry, "expected `id:host:port`"))?;
        let port: u16 = port
            .parse()
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| Error::config(NAME, entry, "bad port"))?;
        let (id, host) = split_id(rest).ok_or_else(|| Error::config(NAME, entry, "bad host"))?;
        if id.is_none() && entries.len() > 1 {
            return Err(Error::config(
                NAME,
                entry,
                "with several nodes every entry needs an id: `id:host:port`",
            ));
        }
        let id = id.unwrap_or("n1");
        if !is_valid_name(id) {
            return Err(Error::config(
                NAME,
                entry,
                "node ids are 1 to 32 of [A-Za-z0-9_]",
            ));
        }
        // A bracket left in a host would not print back as the same node (found by fuzzing).
        let stray = |c: char| c.is_whitespace() || c.is_control() || c == '[' || c == ']';
        if host.is_empty() || host.chars().any(stray) {
            return Err(Error::config(NAME, entry, "bad host"));
        }
        if nodes.iter().any(|n| n.id == id) {
            return Err(Error::config(
                NAME,
                entry,
                format!("duplicate node id `{id}`"),
            ));
        }
        nodes.push(NodeConfig {
            id: id.to_owned(),
            host: host.to_owned(),
            port,
            failover: false,
        });
    }
    Ok(nodes)
}

impl ConfigBuilder {
    /// Sets one attribute by its name; unknown names and malformed values are refused here,
    /// naming the attribute and the value.
    pub fn set(&mut self, name: &str, value: &str) -> Result<&mut Self> {
        let ranged = |min, max| parse_ranged(name, value, min, max);
        match name {
            "memcachedNodes" => self.nodes = Some(value.to_owned()),
            "failoverNodes" => self.failover_nodes = Some(value.to_owned()),
            "sticky" => self.sticky = Some(parse_bool(name, value)?),
            "lockingMode" => self.locking_mode = Some(parse_locking_mode(name, value)?),
            "lockExpiration" => self.lock_expiration = Some(ranged(1, 3600)?),
            "lockMaxWait" => self.lock_max_wait = Some(ranged(0, 600_000)?),
            "lockFailure" => {
                self.lock_failure_refuses = Some(match value.trim() {
                    "proceed" => false,
                    "refuse" => true,
                    _ => return Err(Error::config(name, value, "expected `proceed` or `refuse`")),
                });
            }
            "lockBackoffInitial" => self.lock_backoff_initial = Some(ranged(1, 10_000)?),
            "lockBackoffMax" => self.lock_backoff_max = Some(ranged(1, 60_000)?),
            "operationTimeout" => self.operation_timeout = Some(ranged(1, 600_000)?),
            "operationRetries" => self.operation_retries = Some(ranged(0, 10)?),
            "nodeProbeInterval" => self.node_probe_interval = Some(ranged(10, 3_600_000)?),
            "sharedNodeList" => self.shared_node_list = Some(parse_bool(name, value)?),
            "nodeListRefreshInterval" => {
                let interval = ranged(0, 86_400_000)?;
                if (1..1000).contains(&interval) {
                    return Err(Error::config(
                        name,
                        value,
                        "expected 0 (never) or at least 1000 milliseconds",
                    ));
                }
                self.node_list_refresh_interval = Some(interval);
            }
            "storageKeyPrefix" => {
                if !is_valid_prefix(value) {
                    return Err(Error::config(
                        name,
                        value,
                        "expected at most 64 of [A-Za-z0-9_.:-]",
                    ));
                }
                self.prefix = Some(value.to_owned());
            }
            "sessionBackupAsync" => self.session_backup_async = Some(parse_bool(name, value)?),
            "sessionBackupTimeout" => self.session_backup_timeout = Some(ranged(1, 600_000)?),
            "maxInactiveInterval" => {
                let n: i32 = value.trim().parse().map_err(|_| {
                    Error::config(name, value, "expected a whole number of seconds")
                })?;
                self.max_inactive_interval = Some(n);
            }
            "maxSessionSize" => self.max_session_size = Some(ranged(1024, 1 << 30)?),
            "integrityKey" => self.integrity_key = Some(parse_key_source(name, value)?),
            "encryption" => {
                self.encryption = Some(match value.trim() {
                    "none" => Encryption::None,
                    "aes-256-gcm" => Encryption::Aes256Gcm,
                    _ => {
                        return Err(Error::config(
                            name,
                            value,
                            "expected `none` or `aes-256-gcm`",
                        ));
                    }
                });
            }
            "compressionThreshold" => self.compression_threshold = Some(ranged(0, 1 << 30)?),
            "updateGranularity" => {
                self.update_granularity = Some(match value.trim() {
                    "session" => UpdateGranularity::Session,
                    "attribute" => UpdateGranularity::Attribute,
                    _ => {
                        return Err(Error::config(
                            name,
                            value,
                            "expected `session` or `attribute`",
                        ));
                    }
                });
            }
            "requestUriIgnorePattern" => {
                self.request_uri_ignore_pattern = parse_pattern(name, value)?;
            }
            "sessionAttributeFilter" => self.session_attribute_filter = parse_pattern(name, value)?,
            "enabled" => self.enabled = Some(parse_bool(name, value)?),
            "backupQueueSize" => self.backup_queue_size = Some(ranged(1, 1_000_000)?),
            "nearCacheMaxSessions" => self.near_cache_max_sessions = Some(ranged(0, 10_000_000)?),
            "nearCacheMaxBytes" => self.near_cache_max_bytes = Some(ranged(1024, 1 << 40)?),
            "operationRetryBackoff" => self.operation_retry_backoff = Some(ranged(0, 60_000)?),
            "tls" => self.tls = Some(parse_bool(name, value)?),
            "tlsCaFile" => self.tls_ca_file = Some(parse_path(name, value)?),
            "tlsServerName" => {
                let server_name = value.trim();
                if rustls_pki_types::ServerName::try_from(server_name).is_err() {
                    return Err(Error::config(
                        name,
                        value,
                        "expected a DNS name or an IP address",
                    ));
                }
                self.tls_server_name = Some(server_name.to_owned());
            }
            "tlsClientCertificateFile" => {
                self.tls_client_certificate_file = Some(parse_path(name, value)?);
            }
            "tlsClientKey" => self.tls_client_key = Some(parse_key_source(name, value)?),
            "memcachedCredentials" => self.credentials = Some(parse_key_source(name, value)?),
            "sessionEvents" => {
                self.session_events = Some(match value {
                    "off" => SessionEvents::Off,
                    "expiry" => SessionEvents::Expiry,
                    "broadcast" => SessionEvents::Broadcast,
                    _ => {
                        return Err(Error::config(
                            name,
                            value,
                            "expected `off`, `expiry` or `broadcast`",
                        ));
                    }
                })
            }
            "eventSweepInterval" => self.event_sweep_interval = Some(ranged(1, 3600)?),
            "broadcastPollInterval" => self.broadcast_poll_interval = Some(ranged(50, 60_000)?),
            "broadcastValues" => self.broadcast_values = Some(parse_bool(name, value)?),
            _ => {
                return Err(Error::config(
                    name,
                    value,
                    format!(
                        "unknown attribute; known attributes: {}",
                        ATTRIBUTES.join(", ")
                    ),
                ));
            }
        }
        Ok(self)
    }

    /// Names the webapp whose sessions these are; the default key prefix is derived from it.
    pub fn context(&mut self, host: &str, context: &str) -> &mut Self {
        self.context = Some((host.to_owned(), context.to_owned()));
        self
    }

    /// Checks the attributes together and produces the configuration.
    pub fn build(&self) -> Result<Config> {
        let node_list = self
            .nodes
            .as_deref()
            .ok_or_else(|| Error::config("memcachedNodes", "", "the attribute is required"))?;
        let nodes = parse_node_list(node_list, self.failover_nodes.as_deref())?;
        let ms = Duration::from_millis;
        let lock_backoff_initial = ms(self.lock_backoff_initial.unwrap_or(5));
        let lock_backoff_max = ms(self.lock_backoff_max.unwrap_or(200));
        if lock_backoff_max < lock_backoff_initial {
            return Err(Error::config(
                "lockBackoffMax",
                &lock_backoff_max.as_millis().to_string(),
                "must not be smaller than lockBackoffInitial",
            ));
        }
        let encryption = self.encryption.unwrap_or_default();
        if encryption == Encryption::Aes256Gcm && self.integrity_key.is_none() {
            return Err(encryption_without_keys());
        }
        let tls = self.tls_config()?;
        let keys = match (&self.prefix, &self.context) {
            (Some(prefix), _) => KeyScheme::with_prefix(prefix),
            (None, Some((host, context))) => KeyScheme::for_context(host, context),
            (None, None) => KeyScheme::for_context("", ""),
        };
        Ok(Config {
            nodes,
            sticky: self.sticky.unwrap_or(true),
            locking_mode: self.locking_mode.clone().unwrap_or(LockingMode::None),
            lock_expiration: Duration::from_secs(self.lock_expiration.unwrap_or(5)),
            lock_max_wait: ms(self.lock_max_wait.unwrap_or(3_000)),
            lock_failure_refuses: self.lock_failure_refuses.unwrap_or(false),
            lock_backoff_initial,
            lock_backoff_max,
            operation_timeout: ms(self.operation_timeout.unwrap_or(1_000)),
            operation_retries: self.operation_retries.unwrap_or(1) as u32,
            node_probe_interval: ms(self.node_probe_interval.unwrap_or(1_000)),
            shared_node_list: self.shared_node_list.unwrap_or(true),
            node_list_refresh_interval: match self.node_list_refresh_interval.unwrap_or(60_000) {
                0 => None,
                interval => Some(ms(interval)),
            },
            keys,
            session_backup_async: self.session_backup_async.unwrap_or(true),
            session_backup_timeout: ms(self.session_backup_timeout.unwrap_or(100)),
            max_inactive_interval: self.max_inactive_interval.unwrap_or(1800),
            max_session_size: self.max_session_size.unwrap_or(8 << 20) as usize,
            integrity_key: self.integrity_key.clone(),
            encryption,
            compression_threshold: self.compression_threshold.unwrap_or(0) as usize,
            update_granularity: self.update_granularity.unwrap_or_default(),
            request_uri_ignore_pattern: self.request_uri_ignore_pattern.clone(),
            session_attribute_filter: self.session_attribute_filter.clone(),
            enabled: self.enabled.unwrap_or(true),
            backup_queue_size: self.backup_queue_size.unwrap_or(4096) as usize,
            near_cache_max_sessions: self.near_cache_max_sessions.unwrap_or(10_000) as usize,
            near_cache_max_bytes: self.near_cache_max_bytes.unwrap_or(64 << 20) as usize,
            operation_retry_backoff: ms(self.operation_retry_backoff.unwrap_or(0)),
            tls,
            credentials: self.credentials.clone(),
            session_events: self.session_events.unwrap_or_default(),
            event_sweep_interval: Duration::from_secs(self.event_sweep_interval.unwrap_or(60)),
            broadcast_poll_interval: ms(self.broadcast_poll_interval.unwrap_or(1000)),
            broadcast_values: self.broadcast_values.unwrap_or(false),
        })
    }

    /// The TLS attributes together: `tls="true"` needs a CA file, the other `tls...` attributes
    /// need `tls="true"`, and a client certificate comes with its key.
    fn tls_config(&self) -> Result<Option<TlsConfig>> {
        let set: Vec<&str> = [
            ("tlsCaFile", self.tls_ca_file.is_some()),
            ("tlsServerName", self.tls_server_name.is_some()),
            (
                "tlsClientCertificateFile",
                self.tls_client_certificate_file.is_some(),
            ),
            ("tlsClientKey", self.tls_client_key.is_some()),
        ]
        .into_iter()
        .filter_map(|(name, set)| set.then_some(name))
        .collect();
        if self.tls != Some(true) {
            return match set.first() {
                Some(name) => Err(Error::config(name, "", "only applies with tls=\"true\"")),
                None => Ok(None),
            };
        }
        let ca_file = self.tls_ca_file.clone().ok_or_else(|| {
            Error::config(
                "tlsCaFile",
                "",
                "required with tls=\"true\": the certificate authorities memcached's certificate is verified against",
            )
        })?;
        match (&self.tls_client_certificate_file, &self.tls_client_key) {
            (Some(_), None) => {
                return Err(Error::config(
                    "tlsClientKey",
                    "",
                    "required with tlsClientCertificateFile",
                ));
            }
            (None, Some(_)) => {
                return Err(Error::config(
                    "tlsClientCertificateFile",
                    "",
                    "required with tlsClientKey",
                ));
            }
            _ => {}
        }
        Ok(Some(TlsConfig {
            ca_file,
            server_name: self.tls_server_name.clone(),
            client_certificate_file: self.tls_client_certificate_file.clone(),
            client_key: self.tls_client_key.clone(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(pairs: &[(&str, &str)]) -> String {
        Config::from_pairs(pairs.iter().copied())
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn parses_nodes_in_every_documented_form() {
        let c = Config::from_pairs([
            (
                "memcachedNodes",
                "n1:localhost:11211, n2:10.0.0.2:11212 n3:[::1]:11213",
            ),
            ("failoverNodes", "n3"),
        ])
        .unwrap();
        let ids: Vec<_> = c
            .nodes
            .iter()
            .map(|n| (n.id.as_str(), n.failover))
            .collect();
        assert_eq!(ids, [("n1", false), ("n2", false), ("n3", true)]);
        assert_eq!(c.nodes[2].address(), "[::1]:11213");
        assert_eq!(c.nodes[1].address(), "10.0.0.2:11212");

        let single = Config::from_pairs([("memcachedNodes", "127.0.0.1:11211")]).unwrap();
        assert_eq!(single.nodes[0].id, "n1");
        assert_eq!(single.nodes[0].port, 11211);
    }

    #[test]
    fn a_formatted_node_list_parses_back() {
        let nodes =
            parse_node_list("n1:localhost:11211, n2:[::1]:11212 n3:::2:11213", None).unwrap();
        assert_eq!(
            format_node_list(&nodes),
            "n1:localhost:11211 n2:[::1]:11212 n3:[::2]:11213"
        );
        assert_eq!(
            parse_node_list(&format_node_list(&nodes), None).unwrap(),
            nodes
        );
        // A host keeping a bracket would print as another entry; refused.
        for entry in ["[[1]:11", "n1:[1]]:11", "n1:a]b:11", "n1:[a[b]:11"] {
            assert!(parse_node_list(entry, None).is_err(), "{entry}");
        }
    }

    #[test]
    fn the_shared_node_list_is_on_by_default_and_read_every_minute() {
        let n = ("memcachedNodes", "n1:h:1");
        let c = Config::from_pairs([n]).unwrap();
        assert!(c.shared_node_list);
        assert_eq!(c.node_list_refresh_interval, Some(Duration::from_secs(60)));
        let c = Config::from_pairs([
            n,
            ("sharedNodeList", "false"),
            ("nodeListRefreshInterval", "0"),
        ])
        .unwrap();
        assert!(!c.shared_node_list);
        assert_eq!(c.node_list_refresh_interval, None);
        let message = err(&[n, ("nodeListRefreshInterval", "10")]);
        assert!(message.contains("`nodeListRefreshInterval`"), "{message}");
        assert!(message.contains("at least 1000"), "{message}");
    }

    #[test]
    fn defaults() {
        let c = Config::from_pairs([("memcachedNodes", "n1:h:1")]).unwrap();
        assert!(c.sticky);
        assert_eq!(c.locking_mode, LockingMode::None);
        assert_eq!(c.operation_timeout, Duration::from_millis(1000));
        assert_eq!(c.max_inactive_interval, 1800);
        assert!(c.session_backup_async);
        assert_eq!(c.integrity_key, None);
        assert_eq!(c.encryption, Encryption::None);
        assert_eq!(c.compression_threshold, 0);
        assert_eq!(c.session_events, SessionEvents::Off);
        assert_eq!(c.event_sweep_interval, Duration::from_secs(60));
        assert_eq!(c.event_grace(), 0);
        assert_eq!(c.broadcast_poll_interval, Duration::from_millis(1000));
        assert!(!c.broadcast_values);
    }

    #[test]
    fn session_events() {
        let c = Config::from_pairs([
            ("memcachedNodes", "n1:h:1"),
            ("sessionEvents", "expiry"),
            ("eventSweepInterval", "5"),
        ])
        .unwrap();
        assert_eq!(c.session_events, SessionEvents::Expiry);
        assert_eq!(c.event_sweep_interval, Duration::from_secs(5));
        assert_eq!(c.event_grace(), 30);
        let c = Config::from_pairs([
            ("memcachedNodes", "n1:h:1"),
            ("sessionEvents", "broadcast"),
            ("broadcastPollInterval", "250"),
            ("broadcastValues", "true"),
        ])
        .unwrap();
        assert!(c.broadcast_values);
        assert!(c.session_events.expiry() && c.session_events.broadcast());
        assert_eq!(c.broadcast_poll_interval, Duration::from_millis(250));
        let e = err(&[("memcachedNodes", "n1:h:1"), ("sessionEvents", "all")]);
        assert!(e.contains("sessionEvents") && e.contains("all"), "{e}");
        assert!(e.contains("`off`, `expiry` or `broadcast`"), "{e}");
        for bad in ["49", "60001", "1s"] {
            let e = err(&[("memcachedNodes", "n1:h:1"), ("broadcastPollInterval", bad)]);
            assert!(
                e.contains("broadcastPollInterval") && e.contains(bad),
                "{e}"
            );
        }
        for bad in ["0", "3601", "-1", "1m"] {
            let e = err(&[("memcachedNodes", "n1:h:1"), ("eventSweepInterval", bad)]);
            assert!(e.contains("eventSweepInterval") && e.contains(bad), "{e}");
        }
        let e = err(&[("memcachedNodes", "n1:h:1"), ("sessionEvent", "expiry")]);
        assert!(
            e.contains("unknown attribute") && e.contains("sessionEvents"),
            "{e}"
        );
    }

    #[test]
    fn every_refusal_names_attribute_and_value() {
        let n = ("memcachedNodes", "n1:h:1");
        type Case<'a> = (&'a [(&'a str, &'a str)], &'a [&'a str]);
        let cases: &[Case] = &[
            (
                &[n, ("colour", "blue")],
                &["`colour`", "`blue`", "unknown attribute"],
            ),
            (&[n, ("sticky", "yes")], &["`sticky`", "`yes`"]),
            (
                &[n, ("operationTimeout", "fast")],
                &["`operationTimeout`", "`fast`"],
            ),
            (
                &[n, ("operationTimeout", "0")],
                &["`operationTimeout`", "from 1"],
            ),
            (
                &[n, ("lockingMode", "sometimes")],
                &["`lockingMode`", "`sometimes`"],
            ),
            (
                &[n, ("lockingMode", "uriPattern:(")],
                &["`lockingMode`", "regular expression"],
            ),
            (
                &[n, ("failoverNodes", "n9")],
                &["`failoverNodes`", "`n9`", "not in memcachedNodes"],
            ),
            (
                &[n, ("failoverNodes", "n1")],
                &["`failoverNodes`", "every node"],
            ),
            (
                &[n, ("storageKeyPrefix", "a b")],
                &["`storageKeyPrefix`", "`a b`"],
            ),
            (
                &[("memcachedNodes", "n1:a:1 n1:b:2")],
                &["`memcachedNodes`", "duplicate node id `n1`"],
            ),
            (
                &[("memcachedNodes", "a:1 b:2")],
                &["`memcachedNodes`", "`a:1`", "needs an id"],
            ),
            (
                &[("memcachedNodes", "n1:h:99999")],
                &["`n1:h:99999`", "bad port"],
            ),
            (&[("memcachedNodes", "n-1:h:1")], &["`n-1:h:1`", "node ids"]),
            (
                &[("memcachedNodes", "")],
                &["`memcachedNodes`", "at least one"],
            ),
            (&[("sticky", "true")], &["`memcachedNodes`", "required"]),
            (
                &[n, ("maxInactiveInterval", "1h")],
                &["`maxInactiveInterval`", "`1h`"],
            ),
            (
                &[n, ("encryption", "aes-128-cbc")],
                &["`encryption`", "`aes-128-cbc`", "`none` or `aes-256-gcm`"],
            ),
            (
                &[n, ("encryption", "aes-256-gcm")],
                &["`encryption`", "`aes-256-gcm`", "requires integrityKey"],
            ),
            (
                &[n, ("updateGranularity", "delta")],
                &["`updateGranularity`", "`delta`", "`session` or `attribute`"],
            ),
            (
                &[n, ("compressionThreshold", "16k")],
                &["`compressionThreshold`", "`16k`", "whole number"],
            ),
            (
                &[n, ("compressionThreshold", "2147483648")],
                &["`compressionThreshold`", "`2147483648`", "from 0"],
            ),
        ];
        for (pairs, needles) in cases {
            let message = err(pairs);
            for needle in *needles {
                assert!(message.contains(needle), "{message:?} lacks {needle:?}");
            }
        }
    }

    #[test]
    fn integrity_keys_are_referenced_never_given() {
        let n = ("memcachedNodes", "n1:h:1");
        let c = Config::from_pairs([n, ("integrityKey", "env:MSM_KEY")]).unwrap();
        assert_eq!(c.integrity_key, Some(KeySource::Env("MSM_KEY".into())));
        let c = Config::from_pairs([n, ("integrityKey", "file:/etc/msm.key")]).unwrap();
        assert_eq!(
            c.integrity_key,
            Some(KeySource::File("/etc/msm.key".into()))
        );
        let message = err(&[n, ("integrityKey", "s3cr3t-in-clear")]);
        assert!(!message.contains("s3cr3t"), "{message}");
        assert!(message.contains("`integrityKey`"));
    }

    #[test]
    fn tls_and_credentials_are_referenced_never_given() {
        let n = ("memcachedNodes", "n1:h:1");
        let c = Config::from_pairs([n]).unwrap();
        assert_eq!((c.tls, c.credentials), (None, None));
        let c = Config::from_pairs([
            n,
            ("tls", "true"),
            ("tlsCaFile", "/etc/msm/ca.pem"),
            ("tlsServerName", "cache.example.com"),
            ("tlsClientCertificateFile", "/etc/msm/client.pem"),
            ("tlsClientKey", "env:MSM_TLS_KEY"),
            ("memcachedCredentials", "file:/etc/msm/memcached.auth"),
        ])
        .unwrap();
        let tls = c.tls.unwrap();
        assert_eq!(tls.ca_file, "/etc/msm/ca.pem");
        assert_eq!(tls.server_name.as_deref(), Some("cache.example.com"));
        assert_eq!(tls.client_key, Some(KeySource::Env("MSM_TLS_KEY".into())));
        assert_eq!(
            c.credentials,
            Some(KeySource::File("/etc/msm/memcached.auth".into()))
        );
        type Case<'a> = (&'a [(&'a str, &'a str)], &'a [&'a str]);
        let cases: &[Case] = &[
            (&[("tls", "true")], &["`tlsCaFile`", "required"]),
            (
                &[("tlsCaFile", "/ca.pem")],
                &["`tlsCaFile`", "tls=\"true\""],
            ),
            (&[("tls", "yes")], &["`tls`", "`yes`"]),
            (
                &[
                    ("tls", "true"),
                    ("tlsCaFile", "/ca"),
                    ("tlsClientKey", "file:/k"),
                ],
                &["`tlsClientCertificateFile`", "required with tlsClientKey"],
            ),
            (
                &[
                    ("tls", "true"),
                    ("tlsCaFile", "/ca"),
                    ("tlsServerName", "a b"),
                ],
                &["`tlsServerName`", "`a b`"],
            ),
        ];
        for (pairs, needles) in cases {
            let message = err(&[&[n], *pairs].concat());
            for needle in *needles {
                assert!(message.contains(needle), "{message:?} lacks {needle:?}");
            }
        }
        for name in ["tlsClientKey", "memcachedCredentials"] {
            let message = err(&[n, (name, "alice:s3cr3t")]);
            assert!(!message.contains("s3cr3t"), "{message}");
            assert!(message.contains(&format!("`{name}`")), "{message}");
        }
    }

    #[test]
    fn encryption_and_compression() {
        let n = ("memcachedNodes", "n1:h:1");
        let c = Config::from_pairs([
            n,
            ("integrityKey", "env:MSM_KEY"),
            ("encryption", "aes-256-gcm"),
            ("compressionThreshold", "16384"),
        ])
        .unwrap();
        assert_eq!(c.encryption, Encryption::Aes256Gcm);
        assert_eq!(c.compression_threshold, 16384);
        let c =
            Config::from_pairs([n, ("encryption", "none"), ("compressionThreshold", "0")]).unwrap();
        assert_eq!(c.encryption, Encryption::None);
        assert_eq!(c.compression_threshold, 0);
    }

    #[test]
    fn uri_and_attribute_patterns_match_whole_strings() {
        let n = ("memcachedNodes", "n1:h:1");
        let c = Config::from_pairs([
            n,
            ("requestUriIgnorePattern", r".*\.(png|css|js)"),
            ("sessionAttributeFilter", "user|cart.*"),
        ])
        .unwrap();
        assert!(c.ignores_uri("/static/app.js"));
        assert!(!c.ignores_uri("/app.jsp"));
        assert!(c.stores_attribute("user"));
        assert!(c.stores_attribute("cart.items"));
        assert!(!c.stores_attribute("username"));
        let all = Config::from_pairs([n]).unwrap();
        assert!(!all.ignores_uri("/x.png") && all.stores_attribute("anything"));
        assert!(err(&[n, ("sessionAttributeFilter", "(")]).contains("`sessionAttributeFilter`"));
    }

    #[test]
    fn locking_modes() {
        let n = ("memcachedNodes", "n1:h:1");
        let c = Config::from_pairs([n, ("lockingMode", "uriPattern:^/cart/.*")]).unwrap();
        match c.locking_mode {
            LockingMode::UriPattern(re) => assert!(re.is_match("/cart/add")),
            other => panic!("unexpected {other:?}"),
        }
    }
}
