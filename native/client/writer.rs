//! Requests answered by single lines (stores, touches, deletes, the lock's `add`), from many
//! callers at once, sent together on one connection per server.
//!
//! Each such request on a connection of its own cost a system call to send it, another to read
//! its reply, and a wake-up of a runtime thread in between: under load most of what a session
//! write costs. One task per server takes every request waiting when it is free, sends them in
//! one write and reads their replies in order, so the writes of many sessions share those costs
//! (the original msm's single I/O thread does the same). A caller waits for its own outcome, up
//! to its own deadline; one that gave up before its turn is not sent.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio::time::{Instant, timeout_at};

use super::connection::{Connection, Failure};
use super::reply::Reply;
use super::security::Security;
use crate::runtime;

/// Bytes of requests sent together at most (more wait for the next round trip).
const MAX_BATCH: usize = 256 * 1024;

/// A caller's requests, waiting for their turn.
pub(super) struct Queued {
    /// The encoded requests.
    pub(super) request: Arc<[u8]>,
    /// How many one-line replies they ask for.
    pub(super) lines: usize,
    /// Where the outcome goes.
    pub(super) done: oneshot::Sender<Result<Vec<Reply>, Failure>>,
}

/// Where and how the writer connects.
pub(super) struct Target {
    pub(super) address: String,
    pub(super) host: String,
    pub(super) security: Arc<Security>,
    pub(super) timeout: Duration,
}

/// Starts the writer of a server on the shared runtime; it stops when the sender is dropped.
pub(super) fn start(target: Target) -> mpsc::UnboundedSender<Queued> {
    let (sender, receiver) = mpsc::unbounded_channel();
    runtime::handle().spawn(run(target, receiver));
    sender
}

async fn run(target: Target, mut receiver: mpsc::UnboundedReceiver<Queued>) {
    let mut connection: Option<Connection> = None;
    let mut batch = Vec::new();
    let mut requests = Vec::new();
    while let Some(first) = receiver.recv().await {
        batch.push(first);
        let mut bytes = batch[0].request.len();
        while bytes < MAX_BATCH {
            let Ok(next) = receiver.try_recv() else {
                break;
            };
            bytes += next.request.len();
            batch.push(next);
        }
        // A caller that gave up (its deadline passed) is not sent: its outcome is unknown to
        // it already, and a later request may have replaced what it wrote.
        batch.retain(|queued| !queued.done.is_closed());
        if batch.is_empty() {
            continue;
        }
        requests.clear();
        for queued in &batch {
            requests.extend_from_slice(&queued.request);
        }
        let lines: Vec<usize> = batch.iter().map(|queued| queued.lines).collect();
        let deadline = Instant::now() + target.timeout;
        let outcomes = timeout_at(
            deadline,
            exchange(&target, &mut connection, &requests, &lines, deadline),
        )
        .await;
        let outcomes = outcomes.unwrap_or_else(|_| {
            connection = None;
            lines.iter().map(|_| Err(Failure::TimedOut)).collect()
        });
        for (queued, outcome) in batch.drain(..).zip(outcomes) {
            let _ = queued.done.send(outcome);
        }
    }
}

/// Sends a batch on the writer's connection (a new one when it has none, or the server closed
/// or wrote to it), which is dropped after a failure that leaves it out of step.
async fn exchange(
    target: &Target,
    connection: &mut Option<Connection>,
    requests: &[u8],
    lines: &[usize],
    deadline: Instant,
) -> Vec<Result<Vec<Reply>, Failure>> {
    if !connection.as_mut().is_some_and(Connection::is_quiet) {
        match Connection::open(&target.address, &target.host, &target.security, deadline).await {
            Ok(opened) => *connection = Some(opened),
            Err(failure) => {
                *connection = None;
                return spread(failure, lines.len());
            }
        }
    }
    let Some(open) = connection.as_mut() else {
        unreachable!("opened above");
    };
    let (outcomes, usable) = open.exchange_lines(requests, lines).await;
    if !usable {
        *connection = None;
    }
    outcomes
}

/// A failure to connect, for every caller of a batch: the first gets it, the others an I/O
/// failure they may retry (a set-up failure of the server is theirs too).
fn spread(failure: Failure, callers: usize) -> Vec<Result<Vec<Reply>, Failure>> {
    let again = |failure: &Failure| match failure {
        Failure::Setup(detail) => Failure::Setup(detail.clone()),
        Failure::Io(e) => Failure::Io(std::io::Error::new(e.kind(), e.to_string())),
        other => Failure::Io(std::io::Error::other(format!("{other:?}"))),
    };
    let mut outcomes: Vec<_> = (1..callers).map(|_| Err(again(&failure))).collect();
    outcomes.insert(0, Err(failure));
    outcomes
}
