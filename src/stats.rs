//! A server's counters, readable from any thread through a [`StatsHandle`].

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

use crate::conn::Phase;
use crate::status::Status;
use crate::timer::TimerKind;

/// A snapshot of a server's counters. Totals count since the server started;
/// connection counts are the connections open at the time of the snapshot.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Keep-alive connections waiting for their next request.
    pub idle: usize,
    /// Connections reading a request head (including new ones that sent nothing yet).
    pub reading_head: usize,
    /// Connections reading a request body.
    pub reading_body: usize,
    /// Connections sending (or holding back a delayed) response.
    pub sending: usize,
    /// Connections in a lingering close.
    pub closing: usize,
    /// Connections accepted (including ones handed over with `accept_stream`).
    pub accepted: u64,
    /// Requests answered.
    pub requests: u64,
    /// Final responses by status class: `[1xx, 2xx, 3xx, 4xx, 5xx]`.
    pub responses: [u64; 5],
    /// Bytes written to clients.
    pub bytes_sent: u64,
    /// Deadlines that expired, by kind.
    pub timeouts: Timeouts,
    /// Idle keep-alive connections closed to make room (at the connection limit,
    /// or out of file descriptors).
    pub evicted: u64,
    /// Connections refused with a 503: at the connection limit with none idle, or
    /// out of file descriptors.
    pub refused: u64,
    /// Handlers that panicked (each answered with 500).
    pub handler_panics: u64,
    /// Connections the client reset or abandoned mid-exchange.
    pub client_resets: u64,
    /// Other I/O errors on connections (each logged).
    pub io_errors: u64,
    /// Failed `accept` calls other than "would block", out of file descriptors included.
    pub accept_errors: u64,
}

/// Expired deadlines by kind.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Timeouts {
    /// A request head did not arrive in time (answered 408 when it had begun).
    pub header: u64,
    /// A request body made too little progress (answered 408).
    pub body: u64,
    /// A keep-alive connection sat idle too long (closed).
    pub idle: u64,
    /// A client stopped reading a response (closed).
    pub send: u64,
    /// A lingering close waited too long for the client (closed).
    pub linger: u64,
}

impl Stats {
    /// All open connections.
    pub fn connections(&self) -> usize {
        self.idle + self.reading_head + self.reading_body + self.sending + self.closing
    }

    /// Adds `other` into `self`, for a total over several servers (workers).
    pub fn merge(&mut self, other: &Stats) {
        self.idle += other.idle;
        self.reading_head += other.reading_head;
        self.reading_body += other.reading_body;
        self.sending += other.sending;
        self.closing += other.closing;
        self.accepted += other.accepted;
        self.requests += other.requests;
        for (a, b) in self.responses.iter_mut().zip(other.responses) {
            *a += b;
        }
        self.bytes_sent += other.bytes_sent;
        let (t, o) = (&mut self.timeouts, other.timeouts);
        t.header += o.header;
        t.body += o.body;
        t.idle += o.idle;
        t.send += o.send;
        t.linger += o.linger;
        self.evicted += other.evicted;
        self.refused += other.refused;
        self.handler_panics += other.handler_panics;
        self.client_resets += other.client_resets;
        self.io_errors += other.io_errors;
        self.accept_errors += other.accept_errors;
    }
}

/// Shared access to a server's counters, for other threads (a status page on
/// another worker, a metrics exporter). Reading never blocks the server.
///
/// A handle made with [`new`](StatsHandle::new) and given to
/// [`Server::with_stats`](crate::Server::with_stats) before the server exists lets
/// a handler in that server's own router report it. Servers given the same handle
/// count into the same totals; servers on different threads should each have
/// their own (and be summed with [`Stats::merge`]), so that they do not contend
/// for the counters' cache lines on every request.
#[derive(Clone, Debug, Default)]
pub struct StatsHandle(pub(crate) Arc<Counters>);

impl StatsHandle {
    /// Counters at zero, not yet attached to a server.
    pub fn new() -> StatsHandle {
        StatsHandle::default()
    }

    /// The counters as they are now. Each is read atomically, but not all at the
    /// same instant: a snapshot taken mid-request may count its response and not
    /// yet its request.
    pub fn read(&self) -> Stats {
        self.0.snapshot()
    }
}

/// Phase gauges: idle, head, body, sending, closing.
const PHASES: usize = 5;

fn phase_slot(phase: Phase) -> usize {
    match phase {
        Phase::Idle => 0,
        Phase::Head => 1,
        Phase::Body => 2,
        Phase::Send | Phase::Delay => 3,
        Phase::Linger => 4,
    }
}

/// The counters themselves: relaxed atomics, written by the server's thread.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    accepted: AtomicU64,
    requests: AtomicU64,
    responses: [AtomicU64; 5],
    bytes_sent: AtomicU64,
    timeouts: [AtomicU64; 5],
    evicted: AtomicU64,
    refused: AtomicU64,
    handler_panics: AtomicU64,
    client_resets: AtomicU64,
    io_errors: AtomicU64,
    accept_errors: AtomicU64,
    /// Open connections by phase (wrapping arithmetic: a slot is inc'd before it is dec'd).
    phases: [AtomicU64; PHASES],
}

/// Adds `n` to a counter (wrapping: `u64::MAX` subtracts one).
fn bump(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Relaxed);
}

impl Counters {
    pub(crate) fn accepted(&self, phase: Phase) {
        bump(&self.accepted, 1);
        self.opened(phase);
    }

    pub(crate) fn request(&self) {
        bump(&self.requests, 1);
    }

    pub(crate) fn response(&self, status: Status) {
        let class = usize::from(status.code() / 100).clamp(1, 5) - 1;
        if let Some(c) = self.responses.get(class) {
            bump(c, 1);
        }
    }

    pub(crate) fn sent(&self, n: u64) {
        bump(&self.bytes_sent, n);
    }

    /// Bytes sent so far (for measuring a write against the send budget).
    pub(crate) fn bytes_sent(&self) -> u64 {
        self.bytes_sent.load(Relaxed)
    }

    pub(crate) fn timeout(&self, kind: TimerKind) {
        if let Some(c) = self.timeouts.get(kind as usize) {
            bump(c, 1);
        }
    }

    pub(crate) fn evicted(&self) {
        bump(&self.evicted, 1);
    }

    pub(crate) fn refused(&self) {
        bump(&self.refused, 1);
    }

    pub(crate) fn handler_panic(&self) {
        bump(&self.handler_panics, 1);
    }

    pub(crate) fn client_reset(&self) {
        bump(&self.client_resets, 1);
    }

    pub(crate) fn io_error(&self) {
        bump(&self.io_errors, 1);
    }

    pub(crate) fn accept_error(&self) {
        bump(&self.accept_errors, 1);
    }

    /// A connection entered `phase`.
    pub(crate) fn opened(&self, phase: Phase) {
        bump(&self.phases[phase_slot(phase)], 1);
    }

    /// A connection in `phase` closed.
    pub(crate) fn closed(&self, phase: Phase) {
        bump(&self.phases[phase_slot(phase)], u64::MAX);
    }

    /// A connection moved from phase `from` to `to`.
    pub(crate) fn moved(&self, from: Phase, to: Phase) {
        let (a, b) = (phase_slot(from), phase_slot(to));
        if a != b {
            bump(&self.phases[a], u64::MAX);
            bump(&self.phases[b], 1);
        }
    }

    fn snapshot(&self) -> Stats {
        let get = |c: &AtomicU64| c.load(Relaxed);
        let gauge = |slot: usize| get(&self.phases[slot]).min(isize::MAX as u64) as usize;
        let timeout = |kind: TimerKind| get(&self.timeouts[kind as usize]);
        Stats {
            idle: gauge(0),
            reading_head: gauge(1),
            reading_body: gauge(2),
            sending: gauge(3),
            closing: gauge(4),
            accepted: get(&self.accepted),
            requests: get(&self.requests),
            responses: [0, 1, 2, 3, 4].map(|i| get(&self.responses[i])),
            bytes_sent: get(&self.bytes_sent),
            timeouts: Timeouts {
                header: timeout(TimerKind::Header),
                body: timeout(TimerKind::Body),
                idle: timeout(TimerKind::Idle),
                send: timeout(TimerKind::Send),
                linger: timeout(TimerKind::Linger),
            },
            evicted: get(&self.evicted),
            refused: get(&self.refused),
            handler_panics: get(&self.handler_panics),
            client_resets: get(&self.client_resets),
            io_errors: get(&self.io_errors),
            accept_errors: get(&self.accept_errors),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phases_move_and_close() {
        let c = Counters::default();
        c.accepted(Phase::Head);
        c.moved(Phase::Head, Phase::Send);
        c.moved(Phase::Send, Phase::Delay);
        c.moved(Phase::Delay, Phase::Idle);
        c.accepted(Phase::Head);
        let s = c.snapshot();
        assert_eq!((s.idle, s.reading_head, s.sending, s.connections(), s.accepted), (1, 1, 0, 2, 2));
        c.closed(Phase::Idle);
        c.closed(Phase::Head);
        assert_eq!(c.snapshot().connections(), 0);
    }

    #[test]
    fn responses_by_class() {
        let c = Counters::default();
        for code in [100, 200, 204, 304, 404, 503, 599] {
            c.response(Status(code));
        }
        assert_eq!(c.snapshot().responses, [1, 2, 1, 1, 2]);
    }

    #[test]
    fn merge_adds_everything() {
        let c = Counters::default();
        c.accepted(Phase::Idle);
        c.timeout(TimerKind::Send);
        c.response(Status(200));
        let one = c.snapshot();
        let mut total = one;
        total.merge(&one);
        assert_eq!((total.idle, total.accepted, total.timeouts.send, total.responses[1]), (2, 2, 2, 2));
    }
}
