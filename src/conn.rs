//! One client connection: the only code that reads from or writes to a client socket.
//!
//! A connection moves through [`Phase`]s — idle → reading a head → reading a
//! body → sending → (idle | next head | lingering close) — driven by
//! [`Conn::drive`], which loops until the socket would block, the per-wakeup
//! send budget is spent, or the connection must close. A phase that completes
//! falls straight through to the next one without waiting for another event.
//!
//! Everything a request needs while it is in flight — buffers, the decoded body,
//! the response body being sent — lives in an [`Exchange`] leased from a pool
//! when bytes arrive and given back as soon as nothing is in flight, so an idle
//! keep-alive connection is just its socket, its address and its timer link.

use std::fs::File;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::os::unix::fs::FileExt;
use std::panic::{catch_unwind, AssertUnwindSafe};

use mio::net::TcpStream;
use mio::Interest;

use crate::access_log::PendingLine;
use crate::body::BodyDecoder;
use crate::config::Config;
use crate::date::DateCache;
use crate::files;
use crate::head::{self, HeadWriter, Persistence};
use crate::parse::{self, BodyLength, HeadError, RequestHead};
use crate::pool::Pool;
use crate::request::{HeaderSpan, Headers, Method, Request, Rewrites, Version};
use crate::response::{Body, Multipart, Response, Segment};
use crate::router::Router;
use crate::stats::Counters;
use crate::status::Status;
use crate::timer::{once_a_second, Clock, Link, Linked, Millis, TimerKind};

/// Bytes a lingering close reads and drops before giving up on the client.
const MAX_LINGER_BYTES: u64 = 1024 * 1024;
/// File bodies with at least this much left go out with sendfile(2) once the
/// head (and the first chunk copied after it) is written; smaller ones are
/// copied through the write buffer.
const SENDFILE_MIN: u64 = 16 * 1024;
/// Bodies in memory up to this size are copied behind their head, so that a
/// pipelined batch goes out in one write (and a lone response in one `send`,
/// which costs less than a two-part `sendmsg`); larger ones are sent from where
/// they are, with the head in front of them.
const COPY_MAX: usize = 4096;
/// Another pipelined response is answered into the write buffer only while this
/// much room is left (a small file's response fits; a larger one streams).
const COALESCE_ROOM: usize = 4096;
/// Room kept in the read buffer beyond the largest head, for reading a body.
const BODY_READ_ROOM: usize = 4096;
/// Most request-body bytes read from one connection per wakeup, so that one fast
/// upload cannot hold up the others (as `Config::send_budget` does for sending).
const BODY_READ_BUDGET: usize = 256 * 1024;
/// A pooled exchange keeps at most this much request-body capacity.
const KEEP_BODY_CAPACITY: usize = 64 * 1024;
/// The interim response sent before reading a body the client waits to send.
const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

/// What the server shares with every connection while driving one.
pub(crate) struct Shared {
    pub config: Config,
    pub router: Router,
    /// Spare in-flight states, with their buffers.
    pub exchanges: Pool<Box<Exchange>>,
    pub date: DateCache,
    /// The server's clock (`now` is its last tick).
    pub clock: Clock,
    pub now: Millis,
    /// Graceful shutdown has begun: finish the current response, then close.
    pub draining: bool,
    /// Reused for percent-decoding request paths.
    pub decoded: Vec<u8>,
    /// Paths middleware computed for the request being answered.
    pub rewrites: Rewrites,
    /// Bytes of request bodies held now, against `Config::max_body_memory`.
    pub bodies_held: usize,
    /// When a body was last refused for want of that memory (logged once a second).
    pub bodies_refused_logged: Option<Millis>,
    /// When reading a response body from its file last failed (logged once a second:
    /// a file truncated under many downloads fails them all at once).
    pub file_errors_logged: Option<Millis>,
    pub counters: std::sync::Arc<Counters>,
}

/// Where a connection is in its request/response cycle.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Keep-alive, waiting for the first byte of the next request. Nothing held.
    Idle,
    /// Reading (then parsing) a request head.
    Head,
    /// Reading and decoding a request body.
    Body,
    /// Holding a delayed response until its time comes.
    Delay,
    /// Sending a response.
    Send,
    /// Closing after a response: reading and dropping what the client still sends,
    /// so that closing does not reset the connection before the response arrives.
    Linger,
}

/// What the server should do with a connection after driving it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Flow {
    /// Wait for readiness (or a deadline).
    Wait,
    /// Close it now.
    Close,
}

/// Response body bytes still to go out after the write buffer.
#[derive(Debug, Default)]
enum Out {
    #[default]
    None,
    Static(&'static [u8]),
    Bytes(Vec<u8>, usize),
    Shared(std::sync::Arc<[u8]>, usize),
    File {
        file: BodyFile,
        offset: u64,
        left: u64,
    },
    Multipart(Multipart),
}

/// The file a body is read from: the response's own, or one shared with others.
#[derive(Debug)]
enum BodyFile {
    Owned(File),
    Shared(std::sync::Arc<File>),
}

impl std::ops::Deref for BodyFile {
    type Target = File;

    fn deref(&self) -> &File {
        match self {
            BodyFile::Owned(file) => file,
            BodyFile::Shared(file) => file,
        }
    }
}

/// The state of a connection while a request is in flight; pooled.
#[derive(Debug, Default)]
pub(crate) struct Exchange {
    /// Read buffer (full length once allocated), with unconsumed bytes in `rpos..rend`.
    rbuf: Vec<u8>,
    rpos: u32,
    rend: u32,
    /// Bytes of `rbuf[rpos..rend]` already scanned for the end of the head.
    scanned: u32,
    /// The request being read or answered; its head is at `rpos`.
    request: Option<RequestHead>,
    /// Where its header fields lie in its head.
    spans: Vec<HeaderSpan>,
    /// Its body, decoded; and the decoder while the body is still arriving.
    body: Vec<u8>,
    /// Bytes of `Shared::bodies_held` that are this body's: its declared length,
    /// or what a chunked body has brought so far.
    body_held: usize,
    decoder: Option<BodyDecoder>,
    /// Body bytes received in the current body-deadline window.
    body_window: u64,
    /// Response bytes waiting to be written, `wbuf[wpos..]`, then `out`.
    wbuf: Vec<u8>,
    wpos: u32,
    out: Out,
    lingered: u64,
    /// A response held back until `delay_until` (see [`Response::with_delay`]).
    delayed: Option<Response>,
    delay_until: Option<Millis>,
    /// Bytes written to the socket since the exchange was taken.
    sent: u64,
    /// Access-log lines of responses not yet all sent: where each body starts in
    /// the output counted by `sent`, its length, and the line, written once the
    /// body is out or the connection closes.
    logs: std::collections::VecDeque<(u64, u64, Box<PendingLine>)>,
}

impl Exchange {
    /// Whether nothing is in flight: no input buffered, no output pending, no request open.
    fn is_empty(&self) -> bool {
        self.rpos == self.rend && !self.sending() && self.request.is_none() && self.delayed.is_none()
    }

    /// Forgets everything in flight, keeping (bounded) buffer memory.
    fn reset(&mut self, shared: &mut Shared) {
        self.rpos = 0;
        self.rend = 0;
        self.scanned = 0;
        self.request = None;
        self.spans.clear();
        self.drop_body(shared);
        self.decoder = None;
        self.body_window = 0;
        self.wbuf.clear();
        self.wpos = 0;
        self.out = Out::None;
        self.lingered = 0;
        self.delayed = None;
        self.delay_until = None;
        self.sent = 0;
    }

    /// Counts `n` more bytes written to the socket, and logs the responses
    /// they completed.
    #[inline]
    fn wrote(&mut self, n: usize) {
        self.sent += n as u64;
        if !self.logs.is_empty() {
            self.log_sent();
        }
    }

    /// Writes the access-log lines of the responses whose bodies are all sent.
    fn log_sent(&mut self) {
        while let Some(&(start, len, _)) = self.logs.front() {
            if start + len > self.sent {
                return;
            }
            if let Some((_, _, line)) = self.logs.pop_front() {
                line.finish(len);
            }
        }
    }

    /// Writes every access-log line still waiting, with the body bytes that went
    /// out (the connection is closing); a delayed response never sent counts none.
    #[inline]
    fn log_unsent(&mut self) {
        if !self.logs.is_empty() || self.delayed.is_some() {
            self.log_cut_short();
        }
    }

    #[cold]
    fn log_cut_short(&mut self) {
        while let Some((start, len, line)) = self.logs.pop_front() {
            line.finish(len.min(self.sent.saturating_sub(start)));
        }
        if let Some(line) = self.delayed.as_mut().and_then(|r| r.pending_log.take()) {
            line.finish(0);
        }
    }

    /// Unconsumed input.
    fn input(&self) -> &[u8] {
        self.rbuf.get(self.rpos as usize..self.rend as usize).unwrap_or_default()
    }

    /// Whether output is still to be written.
    fn sending(&self) -> bool {
        (self.wpos as usize) < self.wbuf.len() || !matches!(self.out, Out::None)
    }

    /// Whether the response body left is a file big enough for sendfile(2).
    fn sends_file(&self) -> bool {
        matches!(self.out, Out::File { left, .. } if left >= SENDFILE_MIN)
    }

    /// Whether the response body left is held in memory.
    fn has_body_in_memory(&self) -> bool {
        matches!(self.out, Out::Static(_) | Out::Bytes(..) | Out::Shared(..))
    }

    /// The rest of a response body held in memory.
    fn body_in_memory(&self) -> Option<&[u8]> {
        match &self.out {
            Out::Static(bytes) => Some(bytes),
            Out::Bytes(bytes, pos) => bytes.get(*pos..),
            Out::Shared(bytes, pos) => bytes.get(*pos..),
            _ => None,
        }
    }

    /// Marks `n` more bytes of the body in memory as sent.
    fn sent_from_memory(&mut self, n: usize) {
        let done = match &mut self.out {
            Out::Static(bytes) => {
                *bytes = bytes.get(n..).unwrap_or_default();
                bytes.is_empty()
            }
            Out::Bytes(bytes, pos) => {
                *pos += n;
                *pos >= bytes.len()
            }
            Out::Shared(bytes, pos) => {
                *pos += n;
                *pos >= bytes.len()
            }
            _ => true,
        };
        if done {
            self.out = Out::None;
        }
    }

    /// Drops the empty lines (CR and LF bytes) ahead of the next request, which
    /// RFC 9112 §2.2 asks a server to ignore: some clients end a body with one.
    fn skip_empty_lines(&mut self) {
        // Checked inline: the next byte is nearly always a method's first letter.
        if self.rpos < self.rend && matches!(self.rbuf.get(self.rpos as usize), Some(b'\r' | b'\n')) {
            self.drop_empty_lines();
        }
    }

    #[cold]
    fn drop_empty_lines(&mut self) {
        if self.request.is_some() {
            return;
        }
        self.rpos += parse::empty_lines_len(self.input()) as u32;
        self.scanned = 0;
    }

    /// Where the current request's head ends in `rbuf`.
    fn head_end(&self) -> usize {
        self.rpos as usize + self.request.map_or(0, |r| r.len)
    }

    /// Drops the body, and what it held of `Config::max_body_memory`; a large
    /// body's memory goes with it (what counted is then free).
    fn drop_body(&mut self, shared: &mut Shared) {
        shared.bodies_held -= self.body_held;
        self.body_held = 0;
        self.body.clear();
        if self.body.capacity() > KEEP_BODY_CAPACITY {
            self.body = Vec::new();
        }
    }

    /// Gives back the buffers while a delayed answer waits with nothing else to
    /// send: the write buffer, and the read buffer unless a pipelined request
    /// follows the current one in it (nothing is read meanwhile). Either is
    /// allocated again when next needed. The current request's head goes with
    /// the read buffer (its spans are not used past the handler).
    fn release_buffers(&mut self) {
        if self.sending() {
            return;
        }
        (self.wbuf, self.wpos) = (Vec::new(), 0);
        if self.head_end() != self.rend as usize {
            return;
        }
        if let Some(head) = &mut self.request {
            (head.len, head.target, head.method_span) = (0, (0, 0), (0, 0));
        }
        (self.rpos, self.rend, self.scanned) = (0, 0, 0);
        self.rbuf = Vec::new();
    }
}

/// One client connection.
pub(crate) struct Conn {
    stream: TcpStream,
    peer: SocketAddr,
    pub(crate) link: Link,
    /// Present while a request is in flight.
    exchange: Option<Box<Exchange>>,
    pub(crate) gen: u16,
    phase: Phase,
    /// A read may return data (no `WouldBlock` seen since the last readable event).
    read_ready: bool,
    /// A write may make progress.
    write_ready: bool,
    /// WRITABLE interest is registered.
    write_interest: bool,
    /// Keep the connection open after the current response.
    keep_alive: bool,
    /// In `Linger`: the client may still be sending, so wait for its EOF.
    linger_wait: bool,
    /// The client closed its sending side.
    peer_eof: bool,
    /// An event reported the client's EOF (perhaps not read yet).
    read_hup: bool,
    /// Register the socket again even with the same interest: a connection that
    /// stopped reading for the others' sake is then reported readable once more.
    reregister: bool,
    /// A timer the server should (re-)arm after this drive.
    pub(crate) arm: Option<TimerKind>,
}

impl Linked for Conn {
    fn link(&self) -> &Link {
        &self.link
    }
    fn link_mut(&mut self) -> &mut Link {
        &mut self.link
    }
}

impl Conn {
    /// A new connection, about to read its first request.
    pub(crate) fn new(stream: TcpStream, peer: SocketAddr, gen: u16) -> Conn {
        Conn {
            stream,
            peer,
            link: Link::default(),
            exchange: None,
            gen,
            phase: Phase::Head,
            read_ready: true,
            write_ready: true,
            write_interest: false,
            keep_alive: true,
            linger_wait: false,
            peer_eof: false,
            read_hup: false,
            reregister: false,
            arm: Some(TimerKind::Header),
        }
    }

    /// The socket, for (re)registration.
    pub(crate) fn stream(&mut self) -> &mut TcpStream {
        &mut self.stream
    }

    /// The current phase.
    pub(crate) fn phase(&self) -> Phase {
        self.phase
    }

    /// Whether the connection is between requests with nothing in flight.
    pub(crate) fn is_idle(&self) -> bool {
        matches!(self.phase, Phase::Idle | Phase::Head) && self.exchange.as_ref().is_none_or(|x| x.is_empty())
    }

    /// Records readiness from an event (`read_closed`: the peer's EOF is pending).
    pub(crate) fn ready(&mut self, readable: bool, writable: bool, read_closed: bool) {
        self.read_ready |= readable;
        self.write_ready |= writable;
        self.read_hup |= read_closed;
    }

    /// Whether the connection waits for its socket to become writable.
    fn wants_write(&self) -> bool {
        !self.write_ready
            && matches!(self.phase, Phase::Send | Phase::Body | Phase::Delay)
            && self.exchange.as_ref().is_some_and(|x| x.sending())
    }

    /// The interest to register the connection with for the first time.
    pub(crate) fn register_interest(&mut self) -> Interest {
        self.write_interest = self.wants_write();
        if self.write_interest {
            Interest::READABLE | Interest::WRITABLE
        } else {
            Interest::READABLE
        }
    }

    /// The interest the connection needs now, if it differs from what is registered.
    pub(crate) fn interest_change(&mut self) -> Option<Interest> {
        let forced = std::mem::take(&mut self.reregister);
        if !forced && self.wants_write() == self.write_interest {
            return None;
        }
        Some(self.register_interest())
    }

    /// Gives the in-flight state back to the pool (before the connection is dropped,
    /// or when nothing is in flight any more).
    pub(crate) fn recycle(&mut self, shared: &mut Shared) {
        if let Some(mut x) = self.exchange.take() {
            x.log_unsent();
            x.reset(shared);
            shared.exchanges.give(x);
        }
    }

    /// Stops keeping the connection alive (graceful shutdown).
    pub(crate) fn stop_keep_alive(&mut self) {
        self.keep_alive = false;
    }

    /// Runs the state machine until it must wait, yield or close.
    pub(crate) fn drive(&mut self, shared: &mut Shared) -> Flow {
        let mut x = self.exchange.take().unwrap_or_else(|| shared.exchanges.take(Box::default));
        // At least one write per wakeup: a zero budget would re-poll forever.
        let mut budget = shared.config.send_budget.max(1);
        let mut read_budget = BODY_READ_BUDGET;
        let mut progressed = false;
        let flow = loop {
            let step = match self.phase {
                Phase::Idle | Phase::Head => self.read_head(&mut x, shared),
                Phase::Body => self.read_body(&mut x, shared, &mut read_budget),
                Phase::Send => self.send(&mut x, shared, &mut budget, &mut progressed),
                Phase::Linger => self.linger(&mut x),
                Phase::Delay => Some(self.wait_delay(&mut x, shared, &mut budget, &mut progressed)),
            };
            if let Some(flow) = step {
                break flow;
            }
        };
        let done = flow == Flow::Close || x.is_empty();
        self.exchange = Some(x);
        if done {
            self.recycle(shared);
        }
        flow
    }

    /// The time a delayed response is due, to be handed to the server's delay
    /// queue once (taken).
    pub(crate) fn take_delay_deadline(&mut self) -> Option<Millis> {
        self.exchange.as_mut().and_then(|x| x.delay_until.take())
    }

    /// Sends the delayed response whose time has come, then carries on.
    pub(crate) fn delay_over(&mut self, shared: &mut Shared) -> Flow {
        let Some(mut x) = self.exchange.take() else { return Flow::Close };
        if let Some(mut response) = x.delayed.take() {
            let head_only = x.request.is_some_and(|r| r.method == Method::Head);
            self.write_response(&mut x, &mut response, head_only, shared);
        }
        self.exchange = Some(x);
        self.drive(shared)
    }

    /// Handles an expired deadline of `kind`.
    pub(crate) fn timed_out(&mut self, kind: TimerKind, shared: &mut Shared) -> Flow {
        let Some(mut x) = self.exchange.take() else {
            log::debug!("{}: {kind:?} timeout in {:?}", self.peer, self.phase);
            return Flow::Close;
        };
        let answer = match (kind, self.phase) {
            // A head that never completed: answer 408 while the client may still read it.
            (TimerKind::Header, Phase::Head) => !x.input().is_empty(),
            (TimerKind::Body, Phase::Body) => {
                let window_ms = crate::timer::duration_ms(shared.config.body_timeout);
                let needed = (shared.config.body_min_rate.saturating_mul(window_ms) / 1000).max(1);
                if x.body_window >= needed {
                    // Enough progress in this window: give the body another one.
                    x.body_window = 0;
                    self.arm = Some(TimerKind::Body);
                    self.exchange = Some(x);
                    return Flow::Wait;
                }
                true
            }
            _ => false,
        };
        log::debug!("{}: {kind:?} timeout in {:?}", self.peer, self.phase);
        if !answer {
            self.exchange = Some(x);
            return Flow::Close;
        }
        self.refuse(&mut x, Status::REQUEST_TIMEOUT, shared);
        self.exchange = Some(x);
        self.drive(shared)
    }

    // ---- reading a request --------------------------------------------------------

    /// One step of `Idle`/`Head`: parse a buffered head, or read.
    fn read_head(&mut self, x: &mut Exchange, shared: &mut Shared) -> Option<Flow> {
        x.skip_empty_lines();
        if x.rpos < x.rend {
            if self.phase == Phase::Idle {
                // The first byte of the next request: it has the header timeout from now.
                self.phase = Phase::Head;
                self.arm = Some(TimerKind::Header);
            }
            let input = &x.rbuf[x.rpos as usize..x.rend as usize];
            if parse::holds_head(input, x.scanned as usize) {
                match parse::parse_head(input, shared.config.max_header_bytes, &mut x.spans) {
                    Ok(Some(head)) => {
                        self.start_request(x, head, shared);
                        return None;
                    }
                    Ok(None) => {}
                    Err(HeadError::NewerMinor { minor }) => {
                        // Answered as HTTP/1.1 (RFC 9110 §2.5): parsed again as that.
                        x.rbuf[x.rpos as usize + minor] = b'1';
                        return None;
                    }
                    Err(e) => {
                        log::debug!("{}: bad request head: {e:?}", self.peer);
                        self.refuse(x, e.status(), shared);
                        return None;
                    }
                }
            }
            if parse::has_bare_cr(input, x.scanned as usize) {
                // Never the end of a head (RFC 9112 §2.2): refuse now, not at the timeout.
                log::debug!("{}: bad request head: bare CR", self.peer);
                self.refuse(x, Status::BAD_REQUEST, shared);
                return None;
            }
            let len = input.len();
            x.scanned = len.saturating_sub(3) as u32;
            if len >= shared.config.max_header_bytes {
                let e = parse::incomplete_error(x.input());
                log::debug!("{}: request head too large: {e:?}", self.peer);
                self.refuse(x, e.status(), shared);
                return None;
            }
        }
        if x.sending() {
            // Coalesced responses are still queued: send them before waiting for more.
            self.phase = Phase::Send;
            return None;
        }
        let Some(n) = self.read_some(x, shared) else { return Some(Flow::Wait) };
        match n {
            0 => {
                if x.rpos < x.rend {
                    log::debug!("{}: closed in the middle of a request head", self.peer);
                }
                Some(Flow::Close)
            }
            _ => None,
        }
    }

    /// Starts on a complete, valid head: answer now, or read its body first.
    fn start_request(&mut self, x: &mut Exchange, head: RequestHead, shared: &mut Shared) {
        x.request = Some(head);
        x.scanned = 0;
        self.arm = Some(TimerKind::None);
        self.keep_alive = head.keep_alive && !shared.draining;
        let decoder = match head.body {
            BodyLength::None => return self.dispatch(x, shared),
            BodyLength::Fixed(n) if n > max_body(&shared.config) as u64 => {
                // Refused before reading it; the lingering close drains what is sent anyway.
                log::debug!("{}: request body of {n} bytes is too large", self.peer);
                return self.refuse(x, Status::CONTENT_TOO_LARGE, shared);
            }
            length => BodyDecoder::new(length),
        };
        x.drop_body(shared);
        if let BodyLength::Fixed(n) = head.body {
            // Counted whole from the start: the client has said it is coming.
            let n = n as usize;
            if !hold_body(&mut x.body_held, n, shared) {
                return self.refuse_body(x, shared);
            }
            x.body.reserve_exact(n);
        }
        x.decoder = decoder;
        x.body_window = 0;
        if head.expect_continue && head.minor_version == 1 {
            prepare_write_buffer(x, &shared.config);
            x.wbuf.extend_from_slice(CONTINUE);
        }
        self.phase = Phase::Body;
        self.arm = Some(TimerKind::Body);
    }

    /// One step of `Body`: send a pending `100 Continue`, decode buffered body
    /// bytes, or read (while `budget`, this wakeup's share, lasts).
    fn read_body(&mut self, x: &mut Exchange, shared: &mut Shared, budget: &mut usize) -> Option<Flow> {
        if x.sending() {
            // Responses coalesced before this request, then the interim 100, go first.
            return match self.write_some(x, shared) {
                Ok(true) => None,
                Ok(false) => Some(Flow::Wait),
                Err(flow) => Some(flow),
            };
        }
        let start = x.head_end();
        if start < x.rend as usize {
            let Some(decoder) = &mut x.decoder else { return Some(Flow::Close) };
            let input = &x.rbuf[start..x.rend as usize];
            let step = match decoder.decode(input) {
                Ok(step) => step,
                Err(e) => {
                    log::debug!("{}: bad request body: {}", self.peer, e.0);
                    self.refuse(x, Status::BAD_REQUEST, shared);
                    return None;
                }
            };
            let data = &input[step.data.0..step.data.1];
            // A chunk declared larger than what is left is refused at its size line.
            let at_least = (x.body.len() + data.len()) as u64 + decoder.chunk_pending();
            if at_least > max_body(&shared.config) as u64 {
                log::debug!("{}: chunked request body is too large", self.peer);
                self.refuse(x, Status::CONTENT_TOO_LARGE, shared);
                return None;
            }
            if !hold_body(&mut x.body_held, x.body.len() + data.len(), shared) {
                self.refuse_body(x, shared);
                return None;
            }
            x.body.extend_from_slice(data);
            x.body_window += step.consumed as u64;
            let done = decoder.is_done();
            x.rbuf.copy_within(start + step.consumed..x.rend as usize, start);
            x.rend -= step.consumed as u32;
            if done {
                x.decoder = None;
                self.dispatch(x, shared);
                return None;
            }
            if step.consumed > 0 {
                return None;
            }
        }
        if *budget == 0 && self.read_ready {
            // What was read is decoded: let the other connections have their turn,
            // and be reported again by the poller (registered anew, it reports
            // the socket at once if bytes are waiting).
            self.read_ready = false;
            self.reregister = true;
            return Some(Flow::Wait);
        }
        let Some(n) = self.read_some(x, shared) else { return Some(Flow::Wait) };
        *budget = budget.saturating_sub(n);
        match n {
            0 => {
                log::debug!("{}: closed in the middle of a request body", self.peer);
                Some(Flow::Close)
            }
            _ => None,
        }
    }

    /// Reads once into the read buffer (allocating it on first use), moving
    /// unconsumed bytes to the front first. Returns the byte count (0 at EOF or on
    /// an error), or `None` when the read would block. A full buffer reads
    /// nothing and reports 1 so that the caller looks at it again.
    fn read_some(&mut self, x: &mut Exchange, shared: &Shared) -> Option<usize> {
        if self.peer_eof {
            return Some(0);
        }
        if !self.read_ready {
            return None;
        }
        if x.rbuf.is_empty() {
            x.rbuf = vec![0; shared.config.max_header_bytes + BODY_READ_ROOM];
        }
        if x.rpos > 0 {
            x.rbuf.copy_within(x.rpos as usize..x.rend as usize, 0);
            x.rend -= x.rpos;
            x.rpos = 0;
        }
        let Some(space) = x.rbuf.get_mut(x.rend as usize..).filter(|s| !s.is_empty()) else {
            return Some(1);
        };
        loop {
            match self.stream.read(space) {
                Ok(0) => {
                    self.peer_eof = true;
                    return Some(0);
                }
                Ok(n) => {
                    // A read that did not fill the space drained the socket: the next
                    // bytes (or EOF) will come with a new readiness event, so skip the
                    // read that would only say WouldBlock. Not when the peer's EOF
                    // arrived with this event already: that needs the read to see it.
                    if n < space.len() && !self.read_hup {
                        self.read_ready = false;
                    }
                    x.rend += n as u32;
                    return Some(n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.read_ready = false;
                    return None;
                }
                Err(e) => {
                    log_io_error(self.peer, "reading", &e, &shared.counters);
                    return Some(0);
                }
            }
        }
    }

    // ---- answering ----------------------------------------------------------------

    /// Answers the current request, whose head and body are complete.
    fn dispatch(&mut self, x: &mut Exchange, shared: &mut Shared) {
        let Some(head) = x.request else { return };
        let start = x.rpos as usize + head.target.0;
        let split = target_split(x);
        let decoded = split.is_some_and(|(path, _)| {
            files::percent_decode(&x.rbuf[start + path.0..start + path.1], &mut shared.decoded).is_some()
        });
        let head_only = head.method == Method::Head;
        if head.method == Method::Other || !decoded {
            let target = x.rbuf.get(start..x.rpos as usize + head.target.1);
            let mut response = unroutable(head.method, target.unwrap_or_default(), &shared.router);
            {
                let req = build_request(x, split, &shared.decoded, decoded, &shared.rewrites, self.peer);
                shared.router.finish(&req, &mut response);
            }
            return self.write_response(x, &mut response, head_only, shared);
        }
        // The handler's response is written out where it was made: a `Response` is
        // large, and taking it out of `catch_unwind` copied it.
        prepare_write_buffer(x, &shared.config);
        let (written, mut answered) = (x.wbuf.len(), false);
        let handled = catch_unwind(AssertUnwindSafe(|| {
            let mut req = build_request(x, split, &shared.decoded, decoded, &shared.rewrites, self.peer);
            let mut response = shared.router.respond(&mut req);
            answered = true;
            self.write_response(x, &mut response, head_only, shared);
        }));
        shared.rewrites.clear();
        if handled.is_ok() {
            return;
        }
        let mut response = Response::status(Status::INTERNAL_SERVER_ERROR).with_close();
        {
            let req = build_request(x, split, &shared.decoded, decoded, &shared.rewrites, self.peer);
            if answered {
                log::error!("{}: writing the response to {} {} panicked", self.peer, req.method_str(), req.target());
            } else {
                log::error!("{}: handler panicked on {} {}", self.peer, req.method_str(), req.target());
                shared.counters.handler_panic();
            }
            shared.router.finish(&req, &mut response);
        }
        // Whatever of this response was written is dropped; earlier ones stay.
        x.wbuf.truncate(written);
        x.out = Out::None;
        self.write_response(x, &mut response, head_only, shared);
    }

    /// Answers with an error page and closes: a request that cannot be parsed, read
    /// or waited for any longer. Middleware sees the response.
    fn refuse(&mut self, x: &mut Exchange, status: Status, shared: &mut Shared) {
        self.keep_alive = false;
        self.linger_wait = true;
        self.arm = Some(TimerKind::None);
        x.decoder = None;
        // A HEAD request gets no body even when the rest of its head is unusable.
        let head_only = match x.request {
            Some(head) => head.method == Method::Head,
            None => x.input().starts_with(b"HEAD "),
        };
        let unparsed = x.request.is_none();
        if unparsed {
            x.request = Some(RequestHead::UNPARSED);
            x.spans.clear();
        }
        let mut response = Response::status(status);
        if status == Status::SERVICE_UNAVAILABLE {
            response.set_header("Retry-After", "1");
        }
        {
            let mut req = build_request(x, target_split(x), &[], false, &shared.rewrites, self.peer);
            if unparsed {
                let (_, line) = parse::request_line(x.input());
                req.raw_line = &line[..line.len().min(RAW_LINE_MAX)];
            }
            shared.router.finish(&req, &mut response);
        }
        self.write_response(x, &mut response, head_only, shared);
    }

    /// Refuses a request whose body would take request-body memory beyond
    /// `Config::max_body_memory`: 503, to be tried again shortly.
    fn refuse_body(&mut self, x: &mut Exchange, shared: &mut Shared) {
        if once_a_second(&mut shared.bodies_refused_logged, shared.now) {
            log::warn!(
                "request bodies in memory reach the limit ({} bytes): refusing new ones (503)",
                shared.config.max_body_memory
            );
        }
        x.drop_body(shared);
        self.refuse(x, Status::SERVICE_UNAVAILABLE, shared);
    }

    /// Writes `response` into the write buffer and starts sending it.
    /// Taken by reference: a `Response` is large, and moving it showed in profiles.
    fn write_response(&mut self, x: &mut Exchange, response: &mut Response, head_only: bool, shared: &mut Shared) {
        if let Some(delay) = response.take_delay() {
            x.delay_until = Some(shared.now.saturating_add(crate::timer::duration_ms(delay)));
            x.delayed = Some(std::mem::replace(response, Response::new(Status::OK)));
            self.phase = Phase::Delay;
            // The delay is its own deadline: a body's (or any earlier) one goes.
            self.arm = Some(TimerKind::None);
            return;
        }
        let status = response.status_code();
        shared.counters.response(status);
        if response.closes() {
            self.keep_alive = false;
        }
        let minor_version = x.request.map_or(1, |r| r.minor_version);
        let persistence = if !self.keep_alive {
            Persistence::Close
        } else if minor_version == 0 {
            Persistence::KeepAlive
        } else {
            Persistence::Default
        };
        prepare_write_buffer(x, &shared.config);
        // Where this response starts in the exchange's output.
        let head_at = x.wbuf.len();
        let queued = x.sent + (head_at - x.wpos as usize) as u64;
        let mut w = HeadWriter::new(&mut x.wbuf, status, shared.date.fields());
        let (shared_fields, own_fields) = response.fields();
        if let Some(fields) = shared_fields {
            w.encoded_fields(fields.encoded());
        }
        for (name, value) in own_fields {
            if !w.field(name, value) {
                log::error!("{}: dropping invalid response header field {:?}", self.peer, name.as_str());
            }
        }
        let body_len = response.body().len();
        if status.allows_body() {
            w.content_length(body_len);
        } else if status == Status::RESET_CONTENT {
            w.content_length(0);
        }
        w.finish(persistence);
        let body_at = queued + (x.wbuf.len() - head_at) as u64;
        let body_sent = if head_only || !status.allows_body() { 0 } else { body_len };
        let body = response.take_body();
        x.out = match body {
            _ if head_only || !status.allows_body() => Out::None,
            Body::Empty => Out::None,
            Body::Static(bytes) => Out::Static(bytes),
            Body::Bytes(bytes) => Out::Bytes(bytes, 0),
            Body::Shared(bytes) => Out::Shared(bytes, 0),
            Body::Page(status) => {
                head::write_page(&mut x.wbuf, status);
                Out::None
            }
            Body::File { file, offset, len } => Out::File { file: BodyFile::Owned(file), offset, left: len },
            Body::SharedFile { file, offset, len } => Out::File { file: BodyFile::Shared(file), offset, left: len },
            Body::Multipart(parts) => Out::Multipart(parts),
        };
        // Small bodies join the head in the write buffer: one write. A file for
        // sendfile(2) follows the head without a copy (the head is sent with
        // MSG_MORE), and so does a larger body in memory (with writev).
        if !x.sends_file() && (body_len <= COPY_MAX as u64 || !x.has_body_in_memory()) {
            if let Err(e) = fill(x) {
                log_file_error(self.peer, &e, shared);
                self.keep_alive = false;
            }
        }
        if let Some(line) = response.pending_log.take() {
            x.logs.push_back((body_at, body_sent, line));
        }
        self.phase = Phase::Send;
    }

    // ---- sending ----------------------------------------------------------------------

    /// One step of `Send`: coalesce the next pipelined response, or write.
    fn send(
        &mut self,
        x: &mut Exchange,
        shared: &mut Shared,
        budget: &mut usize,
        progressed: &mut bool,
    ) -> Option<Flow> {
        if matches!(x.out, Out::None)
            && self.keep_alive
            && x.request.is_some()
            && x.wbuf.len() - x.wpos as usize + COALESCE_ROOM <= x.wbuf.capacity()
            && next_head_complete(x)
        {
            // Answer the next pipelined request into the same buffer: one write for the batch.
            self.finish_request(x, shared);
            return None;
        }
        if let Some(flow) = self.write_out(x, shared, budget, progressed) {
            return Some(flow);
        }
        self.finish_request(x, shared);
        None
    }

    /// One step of `Delay`: the answers to requests pipelined ahead of the delayed
    /// one go out meanwhile; once they have, the buffers go back until it is due.
    fn wait_delay(&mut self, x: &mut Exchange, shared: &mut Shared, budget: &mut usize, progressed: &mut bool) -> Flow {
        if let Some(flow) = self.write_out(x, shared, budget, progressed) {
            return flow;
        }
        if (self.read_hup || self.peer_eof) && self.peer_closed() {
            // The client gave up before its answer was due (as a proxy's timeout
            // does): the connection goes now, not when the delay ends.
            if let Some(line) = x.delayed.as_mut().and_then(|r| r.pending_log.take()) {
                line.client_gone();
            }
            self.keep_alive = false;
            return Flow::Close;
        }
        if self.link.armed().0 == TimerKind::Send {
            // Nothing stalls any more: the send deadline set meanwhile goes.
            self.arm = Some(TimerKind::None);
        }
        // The handler has read the body: it goes too.
        x.drop_body(shared);
        x.release_buffers();
        Flow::Wait
    }

    /// Whether the peer has closed its side: the socket reads as end of stream
    /// (or fails) with no request bytes left unread ahead of that.
    fn peer_closed(&self) -> bool {
        match self.stream.peek(&mut [0u8; 1]) {
            Ok(n) => n == 0,
            Err(e) => !matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted),
        }
    }

    /// Writes what is pending within this wakeup's `budget`: `None` once all of it
    /// is written, otherwise how to wait (or that the connection must close).
    #[inline]
    fn write_out(
        &mut self,
        x: &mut Exchange,
        shared: &mut Shared,
        budget: &mut usize,
        progressed: &mut bool,
    ) -> Option<Flow> {
        while x.sending() {
            if *budget == 0 && self.write_ready {
                // This wakeup's share is spent. Ask the poller again rather than
                // queueing ourselves: it reports the socket only once it has room
                // (less unsent than the low-water mark, `Config::send_lowat`), so
                // a fast sender never fills it and every sending connection gets
                // an equal turn per loop.
                self.write_ready = false;
                self.write_interest = false;
                self.arm = Some(TimerKind::Send);
                return Some(Flow::Wait);
            }
            let before = shared.counters.bytes_sent();
            match self.write_some(x, shared) {
                Ok(true) => {
                    let sent = (shared.counters.bytes_sent() - before) as usize;
                    *budget = budget.saturating_sub(sent);
                    *progressed |= sent > 0;
                }
                Ok(false) => {
                    self.arm = if *progressed || self.link.armed().0 != TimerKind::Send {
                        Some(TimerKind::Send)
                    } else {
                        // Stalled since the send deadline was set: it stands, whatever a
                        // response coalesced meanwhile asked for (no timer, or a head's).
                        None
                    };
                    return Some(Flow::Wait);
                }
                Err(flow) => return Some(flow),
            }
        }
        None
    }

    /// Makes one step of output: refills the write buffer or writes it once.
    /// `Ok(false)` when the socket would block.
    fn write_some(&mut self, x: &mut Exchange, shared: &mut Shared) -> Result<bool, Flow> {
        if x.has_body_in_memory() {
            return self.write_with_body(x, shared);
        }
        if x.wpos as usize == x.wbuf.len() {
            if let Out::File { file, offset, left } = &mut x.out {
                if *left >= SENDFILE_MIN {
                    return self.send_file(file, offset, left, &mut x.sent, shared).map(|(sent, done)| {
                        if done {
                            x.out = Out::None;
                        }
                        x.log_sent();
                        sent
                    });
                }
            }
            x.wbuf.clear();
            x.wpos = 0;
            if let Err(e) = fill(x) {
                log_file_error(self.peer, &e, shared);
                return Err(Flow::Close);
            }
            return Ok(true);
        }
        if !self.write_ready {
            return Ok(false);
        }
        let pending = &x.wbuf[x.wpos as usize..];
        // A head followed by a file goes out with MSG_MORE so that it shares a
        // segment with the file's first bytes; not a large batch of coalesced
        // responses, which could then sit unsent above the socket's low-water
        // mark while sendfile(2) waits for room.
        let lowat = shared.config.send_lowat;
        let more_max = if lowat == 0 { MORE_MAX } else { MORE_MAX.min(lowat / 2) };
        let more = x.sends_file() && pending.len() <= more_max;
        let written = if more { send_more(&self.stream, pending) } else { self.stream.write(pending) };
        let Some(n) = self.written(written, shared)? else { return Ok(false) };
        x.wpos += n as u32;
        x.wrote(n);
        Ok(true)
    }

    /// [`Conn::write_some`] for a body in memory: what is left in the write buffer
    /// and up to a send budget of the body, in one writev(2), without copying the body.
    fn write_with_body(&mut self, x: &mut Exchange, shared: &mut Shared) -> Result<bool, Flow> {
        if !self.write_ready {
            return Ok(false);
        }
        let pending = x.wbuf.get(x.wpos as usize..).unwrap_or_default();
        let body = x.body_in_memory().unwrap_or_default();
        let body = &body[..body.len().min(shared.config.send_budget.max(COPY_MAX))];
        let written = send_both(&self.stream, pending, body);
        let pending = pending.len();
        let Some(n) = self.written(written, shared)? else { return Ok(false) };
        let from_buffer = n.min(pending);
        x.wpos += from_buffer as u32;
        x.sent_from_memory(n - from_buffer);
        x.wrote(n);
        Ok(true)
    }

    /// What a write to the socket came to: the bytes written (counted), `None`
    /// when it would block, or the flow after an error (logged).
    #[inline]
    fn written(&mut self, result: io::Result<usize>, shared: &mut Shared) -> Result<Option<usize>, Flow> {
        match result {
            Ok(n) => {
                shared.counters.sent(n as u64);
                Ok(Some(n))
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                self.write_ready = false;
                Ok(None)
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(Some(0)),
            Err(e) => {
                log_io_error(self.peer, "writing", &e, &shared.counters);
                Err(Flow::Close)
            }
        }
    }

    /// Sends up to a send budget of `file` from `offset` with sendfile(2): the
    /// bytes go from the page cache to the socket without passing through us.
    /// Returns (progress possible, all sent).
    fn send_file(
        &mut self,
        file: &File,
        offset: &mut u64,
        left: &mut u64,
        sent: &mut u64,
        shared: &mut Shared,
    ) -> Result<(bool, bool), Flow> {
        use std::os::fd::AsRawFd;
        if !self.write_ready {
            return Ok((false, false));
        }
        let count =
            usize::try_from(*left).unwrap_or(usize::MAX).min(shared.config.send_budget.max(SENDFILE_MIN as usize));
        let mut off: libc::off64_t = i64::try_from(*offset).unwrap_or(i64::MAX);
        // SAFETY: both descriptors are open for the duration of the call; `off` is a
        // valid 64-bit offset (sendfile64: files past 2 GiB where off_t is 32 bits).
        let n = unsafe { libc::sendfile64(self.stream.as_raw_fd(), file.as_raw_fd(), &mut off, count) };
        match n {
            n if n > 0 => {
                let n = n as u64;
                *offset += n;
                *left -= n;
                *sent += n;
                shared.counters.sent(n);
                Ok((true, *left == 0))
            }
            0 => {
                let shrank = io::Error::new(io::ErrorKind::UnexpectedEof, "file shrank while being sent");
                log_file_error(self.peer, &shrank, shared);
                Err(Flow::Close)
            }
            _ => {
                let e = io::Error::last_os_error();
                match e.kind() {
                    io::ErrorKind::WouldBlock => {
                        self.write_ready = false;
                        Ok((false, false))
                    }
                    io::ErrorKind::Interrupted => Ok((true, false)),
                    _ => {
                        log_io_error(self.peer, "sending a file", &e, &shared.counters);
                        Err(Flow::Close)
                    }
                }
            }
        }
    }

    /// The current request is answered (or queued): move to the next phase.
    fn finish_request(&mut self, x: &mut Exchange, shared: &mut Shared) {
        if let Some(head) = x.request.take() {
            shared.counters.request();
            x.rpos += head.len as u32;
        }
        x.scanned = 0;
        x.spans.clear();
        x.drop_body(shared);
        x.skip_empty_lines();
        if !self.keep_alive {
            if !x.sending() {
                self.phase = Phase::Linger;
            }
            return;
        }
        if x.rpos < x.rend {
            self.phase = Phase::Head;
            self.arm = Some(TimerKind::Header);
        } else {
            self.phase = Phase::Idle;
            self.arm = Some(TimerKind::Idle);
        }
    }

    // ---- closing ------------------------------------------------------------------------

    /// One step of `Linger`: drop what the client sends until it stops or closes.
    fn linger(&mut self, x: &mut Exchange) -> Option<Flow> {
        x.rpos = 0;
        x.rend = 0;
        x.request = None;
        if self.peer_eof {
            return Some(Flow::Close);
        }
        if self.read_ready {
            let mut scratch = [0u8; 512];
            let buf = if x.rbuf.is_empty() { &mut scratch[..] } else { &mut x.rbuf[..] };
            match self.stream.read(buf) {
                Ok(0) => return Some(Flow::Close),
                Ok(n) => {
                    x.lingered += n as u64;
                    self.linger_wait = true;
                    return (x.lingered > MAX_LINGER_BYTES).then_some(Flow::Close);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.read_ready = false,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => return None,
                Err(_) => return Some(Flow::Close),
            }
        }
        if !self.linger_wait {
            // Nothing more is coming: close now.
            return Some(Flow::Close);
        }
        if self.link.armed().0 != TimerKind::Linger {
            // Tell the client we are done; it closes, we see EOF and close too.
            let _ = self.stream.shutdown(Shutdown::Write);
            self.arm = Some(TimerKind::Linger);
        }
        Some(Flow::Wait)
    }
}

/// Most bytes written with MSG_MORE ahead of a file (see `write_some`).
const MORE_MAX: usize = 4096;

/// Writes `buf` with MSG_MORE: the kernel holds a partial segment back for the
/// sendfile(2) data that follows, so head and body share packets.
fn send_more(stream: &TcpStream, buf: &[u8]) -> io::Result<usize> {
    use std::os::fd::AsRawFd;
    // SAFETY: `buf` is valid for `buf.len()` bytes; the descriptor is open.
    let n =
        unsafe { libc::send(stream.as_raw_fd(), buf.as_ptr().cast(), buf.len(), libc::MSG_MORE | libc::MSG_NOSIGNAL) };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

/// Writes `first` then `second` (either may be empty) with one sendmsg(2), no
/// SIGPIPE; bytes written.
fn send_both(stream: &TcpStream, first: &[u8], second: &[u8]) -> io::Result<usize> {
    use std::os::fd::AsRawFd;
    let mut iov = [first, second].map(|s| libc::iovec { iov_base: s.as_ptr().cast_mut().cast(), iov_len: s.len() });
    // SAFETY: msghdr is plain data; all-zero is a valid empty header.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = iov.as_mut_ptr();
    msg.msg_iovlen = iov.len() as _;
    // SAFETY: every iovec points into a slice that outlives the call and is only
    // read; the descriptor is open.
    let n = unsafe { libc::sendmsg(stream.as_raw_fd(), &msg, libc::MSG_NOSIGNAL) };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

/// Makes sure the write buffer is allocated, and empties it once it is all sent.
fn prepare_write_buffer(x: &mut Exchange, config: &Config) {
    if x.wbuf.capacity() == 0 {
        x.wbuf = Vec::with_capacity(config.write_buffer_bytes);
    } else if x.wpos as usize == x.wbuf.len() {
        x.wbuf.clear();
        x.wpos = 0;
    }
}

/// The largest body accepted: `Config::max_body_bytes`, unless the memory for
/// all bodies is less (a body that could never fit is too large, not to be
/// tried again).
fn max_body(config: &Config) -> usize {
    config.max_body_bytes.min(config.max_body_memory)
}

/// Counts a body of `len` bytes against `Config::max_body_memory`, growing
/// what it holds (`held`) to `len`: false, counting nothing, when that would go over.
fn hold_body(held: &mut usize, len: usize, shared: &mut Shared) -> bool {
    let more = len.saturating_sub(*held);
    if more == 0 {
        return true;
    }
    if shared.bodies_held.saturating_add(more) > shared.config.max_body_memory {
        return false;
    }
    shared.bodies_held += more;
    *held += more;
    true
}

/// Appends as much of the pending response body as fits in the write buffer.
fn fill(x: &mut Exchange) -> io::Result<()> {
    let room = x.wbuf.capacity() - x.wbuf.len();
    let done = match &mut x.out {
        Out::None => return Ok(()),
        Out::Static(bytes) => {
            let (now, rest) = bytes.split_at(room.min(bytes.len()));
            x.wbuf.extend_from_slice(now);
            *bytes = rest;
            rest.is_empty()
        }
        Out::Bytes(bytes, pos) => copy_bytes(&mut x.wbuf, bytes, pos, room),
        Out::Shared(bytes, pos) => copy_bytes(&mut x.wbuf, bytes, pos, room),
        Out::File { file, offset, left } => read_file(&mut x.wbuf, file, offset, left, room)?,
        Out::Multipart(parts) => {
            while x.wbuf.len() < x.wbuf.capacity() {
                let room = x.wbuf.capacity() - x.wbuf.len();
                let finished = match parts.segments.front_mut() {
                    None => break,
                    Some(Segment::Bytes(bytes, pos)) => copy_bytes(&mut x.wbuf, bytes, pos, room),
                    Some(Segment::Range(offset, left)) => read_file(&mut x.wbuf, &parts.file, offset, left, room)?,
                };
                if finished {
                    parts.segments.pop_front();
                }
            }
            parts.segments.is_empty()
        }
    };
    if done {
        x.out = Out::None;
    }
    Ok(())
}

/// Copies up to `room` bytes of `bytes` from `pos` into `wbuf`; whether all are copied.
fn copy_bytes(wbuf: &mut Vec<u8>, bytes: &[u8], pos: &mut usize, room: usize) -> bool {
    let end = (*pos + room).min(bytes.len());
    wbuf.extend_from_slice(&bytes[*pos..end]);
    *pos = end;
    end == bytes.len()
}

/// Reads up to `room` of the `left` bytes of `file` at `offset` into `wbuf`;
/// whether all are read. A file that shrank is an error.
fn read_file(wbuf: &mut Vec<u8>, file: &File, offset: &mut u64, left: &mut u64, room: usize) -> io::Result<bool> {
    let start = wbuf.len();
    let want = usize::try_from(*left).unwrap_or(usize::MAX).min(room);
    wbuf.resize(start + want, 0);
    let mut got = 0;
    let result = loop {
        if got == want {
            break Ok(*left == 0);
        }
        match file.read_at(&mut wbuf[start + got..], *offset) {
            Ok(0) => break Err(io::Error::new(io::ErrorKind::UnexpectedEof, "file shrank while being sent")),
            Ok(n) => {
                got += n;
                *offset += n as u64;
                *left -= n as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => break Err(e),
        }
    };
    wbuf.truncate(start + got);
    result
}

/// Most bytes of an unparsed request's first line kept for the access log.
const RAW_LINE_MAX: usize = 1024;

/// [`split_target`] of the current request's target, if there is a request.
fn target_split(x: &Exchange) -> Option<(Span, Option<Span>)> {
    let head = x.request?;
    let base = x.rpos as usize;
    x.rbuf.get(base + head.target.0..base + head.target.1).and_then(split_target)
}

/// Whether a complete head follows the current request in the read buffer.
fn next_head_complete(x: &Exchange) -> bool {
    x.rbuf.get(x.head_end()..x.rend as usize).is_some_and(|next| parse::holds_head(next, 0))
}

/// The handler's view of the current request. `split` is [`split_target`] of
/// its target; `decoded` holds the decoded path when `decoded_ok`, otherwise the
/// raw path is used; `rewrites` keeps the paths middleware computes.
fn build_request<'a>(
    x: &'a Exchange,
    split: Option<(Span, Option<Span>)>,
    decoded: &'a [u8],
    decoded_ok: bool,
    rewrites: &'a Rewrites,
    peer: SocketAddr,
) -> Request<'a> {
    let head = x.request.unwrap_or(RequestHead::UNPARSED);
    let base = x.rpos as usize;
    let text = |(a, b): (usize, usize)| x.rbuf.get(base + a..base + b).and_then(as_str).unwrap_or_default();
    let target = text(head.target);
    let (raw_path, query) = match split {
        Some((p, q)) if target.len() == head.target.1 - head.target.0 => {
            (target.get(p.0..p.1).unwrap_or_default(), q.and_then(|q| target.get(q.0..q.1)))
        }
        _ => (target, None),
    };
    let raw_path = if raw_path.is_empty() { "/" } else { raw_path };
    let (path, path_bytes) = match as_str(decoded) {
        Some(p) if decoded_ok && !p.is_empty() => (p, decoded),
        Some(_) if decoded_ok && decoded.is_empty() => ("/", &b"/"[..]),
        _ if decoded_ok => (raw_path, decoded),
        _ => (raw_path, raw_path.as_bytes()),
    };
    Request {
        method: head.method,
        method_str: text(head.method_span),
        target,
        path,
        path_bytes,
        query,
        version: if head.minor_version == 0 { Version::Http10 } else { Version::Http11 },
        headers: Headers::new(x.rbuf.get(base..).unwrap_or_default(), &x.spans),
        peer,
        body: &x.body,
        params: None,
        mount_len: 0,
        raw_line: &[],
        rewrites,
    }
}

/// The answer to a request no handler can take: its method is unknown, or its
/// target has no path (or one that does not decode).
fn unroutable(method: Method, target: &[u8], router: &Router) -> Response {
    match method {
        Method::Other => Response::status(Status::NOT_IMPLEMENTED),
        // Asterisk-form asks about the server as a whole (RFC 9110 §9.3.7): it is
        // here, and takes these methods.
        Method::Options if target == b"*" => Response::new(Status::OK).with_header("Allow", router.server_allow()),
        // Authority-form asks for a tunnel, which this server does not make.
        Method::Connect => Response::status(Status::NOT_IMPLEMENTED),
        _ => Response::status(Status::BAD_REQUEST),
    }
}

/// `bytes` as text if it is UTF-8: request targets and methods are nearly always
/// ASCII, checked inline here before the general (out-of-line) UTF-8 check.
fn as_str(bytes: &[u8]) -> Option<&str> {
    if bytes.is_ascii() {
        // SAFETY: ASCII is UTF-8.
        Some(unsafe { std::str::from_utf8_unchecked(bytes) })
    } else {
        std::str::from_utf8(bytes).ok()
    }
}

/// A range of a byte slice.
type Span = (usize, usize);

/// Splits a request target into the ranges of its path and query. Absolute-form
/// targets (`http://host/path`) are reduced to their path; `None` for other forms.
pub(crate) fn split_target(target: &[u8]) -> Option<(Span, Option<Span>)> {
    let start = match target.first() {
        Some(b'/') => 0,
        _ => {
            let scheme_end = target.windows(3).position(|w| w == b"://")?;
            let scheme = &target[..scheme_end];
            if !scheme.eq_ignore_ascii_case(b"http") && !scheme.eq_ignore_ascii_case(b"https") {
                return None;
            }
            let authority = scheme_end + 3;
            let end = target[authority..].iter().position(|&b| b == b'/' || b == b'?' || b == b'#');
            // An empty host is invalid (RFC 9110 §4.2.1), and userinfo an error (§4.2.4).
            let host = &target[authority..end.map_or(target.len(), |i| authority + i)];
            if host.is_empty() || host.starts_with(b":") || host.contains(&b'@') {
                return None;
            }
            match end {
                Some(i) if target[authority + i] == b'/' => authority + i,
                // No path: the path is "/", whatever follows is query or fragment.
                Some(i) => return Some((ROOT_PATH, query_of(target, authority + i))),
                None => return Some((ROOT_PATH, None)),
            }
        }
    };
    // One pass to the end of the path: the first `?` or `#`.
    match crate::scan::find2(&target[start..], b'?', b'#') {
        Some(i) => Some(((start, start + i), query_of(target, start + i))),
        None => Some(((start, target.len()), None)),
    }
}

/// Marks "the path is `/`" for targets without one: an empty range, decoded as `/`.
const ROOT_PATH: Span = (0, 0);

/// The query of `target` if a `?` is at `at`: up to the fragment (`#`) if any.
/// (No `#` comes before `at`.)
fn query_of(target: &[u8], at: usize) -> Option<Span> {
    if target.get(at) != Some(&b'?') {
        return None;
    }
    let end = crate::scan::find(&target[at..], b'#').map_or(target.len(), |i| at + i);
    Some((at + 1, end))
}

/// Logs a failure to read a response body from its file (the connection is
/// closed), at most once a second: a file cut short while it is sent is a change
/// of content (warn), any other failure an error.
fn log_file_error(peer: SocketAddr, e: &io::Error, shared: &mut Shared) {
    if !once_a_second(&mut shared.file_errors_logged, shared.now) {
        return;
    }
    if e.kind() == io::ErrorKind::UnexpectedEof {
        log::warn!("{peer}: {e}; closing the connection");
    } else {
        log::error!("{peer}: reading the response body: {e}; closing the connection");
    }
}

/// Logs an I/O error on a client socket at the level its cause deserves.
fn log_io_error(peer: SocketAddr, doing: &str, e: &io::Error, counters: &Counters) {
    match e.kind() {
        io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionAborted => {
            counters.client_reset();
            log::debug!("{peer}: client went away while {doing}: {e}")
        }
        _ => {
            counters.io_error();
            log::info!("{peer}: error while {doing}: {e}")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conn_stays_small() {
        // An idle keep-alive connection is this much memory (plus its slab slot).
        let size = std::mem::size_of::<Conn>();
        assert!(size <= 96, "Conn is {size} bytes");
    }

    #[test]
    fn target_forms() {
        let split = |t: &'static [u8]| split_target(t).map(|(p, q)| (&t[p.0..p.1], q.map(|q| &t[q.0..q.1])));
        assert_eq!(split(b"/a?b=c#f"), Some((&b"/a"[..], Some(&b"b=c"[..]))));
        assert_eq!(split(b"/a#f"), Some((&b"/a"[..], None)));
        assert_eq!(split(b"/a#f?x"), Some((&b"/a"[..], None)));
        assert_eq!(split(b"/a?b#c?d"), Some((&b"/a"[..], Some(&b"b"[..]))));
        assert_eq!(split(b"/?"), Some((&b"/"[..], Some(&b""[..]))));
        assert_eq!(split(b"/a/b"), Some((&b"/a/b"[..], None)));
        assert_eq!(split(b"http://h:80/x/y?q"), Some((&b"/x/y"[..], Some(&b"q"[..]))));
        assert_eq!(split(b"HTTP://h"), Some((&b""[..], None)));
        assert_eq!(split(b"http://h?q"), Some((&b""[..], Some(&b"q"[..]))));
        assert_eq!(split(b"*"), None);
        assert_eq!(split(b"ftp://h/x"), None);
        assert_eq!(split(b"h:443"), None);
    }
}
