//! The core's log records, queued for a host to collect.
//!
//! The core logs through `tracing`. A host that wants the records in its own log (Tomcat's JULI)
//! installs this collector once and has a thread of its own drain the queue: the core never calls
//! into the host. The queue is bounded; when the host falls behind, the oldest records are dropped
//! and counted.

use std::collections::VecDeque;
use std::fmt::Write;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Metadata, Subscriber};

/// Most records kept waiting for the host.
const CAPACITY: usize = 10_000;

/// One log record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogRecord {
    /// Severity.
    pub level: Level,
    /// The module that logged it.
    pub target: String,
    /// The message followed by its fields as `name=value`.
    pub message: String,
}

struct Queue {
    records: Mutex<VecDeque<LogRecord>>,
    ready: Condvar,
    dropped: AtomicU64,
}

struct Collector {
    max_level: Level,
    queue: &'static Queue,
}

fn queue() -> &'static Queue {
    static QUEUE: OnceLock<Queue> = OnceLock::new();
    QUEUE.get_or_init(|| Queue {
        records: Mutex::new(VecDeque::new()),
        ready: Condvar::new(),
        dropped: AtomicU64::new(0),
    })
}

/// Installs the collector as the process's `tracing` subscriber, keeping records at `max_level`
/// and above. Returns false when another subscriber was installed first (records then go there).
pub fn install(max_level: Level) -> bool {
    static INSTALLED: OnceLock<bool> = OnceLock::new();
    *INSTALLED.get_or_init(|| {
        let collector = Collector {
            max_level,
            queue: queue(),
        };
        tracing::subscriber::set_global_default(collector).is_ok()
    })
}

/// Takes up to `max` queued records, waiting up to `timeout` for the first one.
pub fn drain(max: usize, timeout: Duration) -> Vec<LogRecord> {
    let queue = queue();
    let deadline = Instant::now() + timeout;
    let mut records = queue.records.lock();
    while records.is_empty() {
        if queue.ready.wait_until(&mut records, deadline).timed_out() {
            break;
        }
    }
    let n = records.len().min(max);
    records.drain(..n).collect()
}

/// Records dropped because the host did not drain them in time.
pub fn dropped() -> u64 {
    queue().dropped.load(Ordering::Relaxed)
}

struct MessageVisitor(String);

impl Visit for MessageVisitor {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let fields = std::mem::take(&mut self.0);
            let _ = write!(self.0, "{value:?}{fields}");
        } else {
            let _ = write!(self.0, " {}={value:?}", field.name());
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.0.insert_str(0, value);
        } else {
            let _ = write!(self.0, " {}={value}", field.name());
        }
    }
}

impl Subscriber for Collector {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.is_event() && *metadata.level() <= self.max_level
    }

    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }

    fn record(&self, _: &Id, _: &Record<'_>) {}

    fn record_follows_from(&self, _: &Id, _: &Id) {}

    fn event(&self, event: &Event<'_>) {
        let mut visitor = MessageVisitor(String::new());
        event.record(&mut visitor);
        let record = LogRecord {
            level: *event.metadata().level(),
            target: event.metadata().target().to_owned(),
            message: visitor.0,
        };
        let mut records = self.queue.records.lock();
        if records.len() == CAPACITY {
            records.pop_front();
            self.queue.dropped.fetch_add(1, Ordering::Relaxed);
        }
        records.push_back(record);
        self.queue.ready.notify_one();
    }

    fn enter(&self, _: &Id) {}

    fn exit(&self, _: &Id) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_are_queued_with_their_fields_and_drained() {
        assert!(install(Level::INFO));
        tracing::warn!(node = "n1", "memcached node marked down");
        tracing::debug!("below the level, not kept");
        let records = drain(10, Duration::from_secs(1));
        let record = records
            .iter()
            .find(|r| r.message.starts_with("memcached node marked down"))
            .expect("record");
        assert_eq!(record.level, Level::WARN);
        assert_eq!(record.message, "memcached node marked down node=n1");
        assert!(record.target.starts_with("msm"));
        assert!(!records.iter().any(|r| r.message.contains("not kept")));
        assert!(drain(10, Duration::from_millis(1)).is_empty());
    }
}
