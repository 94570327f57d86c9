//! One client connection: the only code that reads from or writes to a client socket.
//!
//! A connection moves through [`Phase`]s — idle → reading a head → sending →
//! (idle | next head | lingering close) — driven by [`Conn::drive`], which loops
//! until the socket would block, the per-wakeup send budget is spent, or the
//! connection must close. A phase that completes falls straight through to the
//! next one without waiting for another readiness event.
//!
//! Everything a request needs while it is in flight — buffers, the file being
//! sent, the body being skipped — lives in an [`Exchange`] leased from a pool
//! when bytes arrive and given back as soon as nothing is in flight, so an idle
//! keep-alive connection is just its socket, its address and its timer link.

use std::fs::File;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::os::unix::fs::FileExt;

use mio::net::TcpStream;
use mio::Interest;

use crate::access_log;
use crate::body::BodyDecoder;
use crate::config::Config;
use crate::date::DateCache;
use crate::files::{self, Found, StaticFiles};
use crate::parse::{self, Method, RequestHead};
use crate::pool::Pool;
use crate::response::{self, HeadWriter, Persistence};
use crate::status::Status;
use crate::timer::{Clock, Link, Linked, Millis, TimerKind};

/// Unused request bodies up to this size are read and discarded so the connection
/// can be kept alive; larger ones close it after the response.
const MAX_DISCARD: u64 = 1024 * 1024;
/// Bytes a lingering close reads and drops before giving up on the client.
const MAX_LINGER_BYTES: u64 = 1024 * 1024;

/// What the server shares with every connection while driving one.
pub(crate) struct Shared {
    pub config: Config,
    pub files: StaticFiles,
    /// Spare in-flight states, with their buffers.
    pub exchanges: Pool<Box<Exchange>>,
    pub date: DateCache,
    pub now: Millis,
    /// The server's clock (`now` is its last tick).
    pub clock: Clock,
    /// Graceful shutdown has begun: finish the current response, then close.
    pub draining: bool,
    /// Reused for percent-decoding request paths.
    pub decoded: Vec<u8>,
    /// Reused for normalised request paths.
    pub path: Vec<u8>,
    /// Requests answered so far.
    pub requests: u64,
}

/// Where a connection is in its request/response cycle.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Keep-alive, waiting for the first byte of the next request. No buffers held.
    Idle,
    /// Reading (and skipping the unused body of the previous request, then parsing) a head.
    Head,
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
    /// The send budget for this wakeup is spent; drive again on the next loop turn.
    Yield,
    /// Close it now.
    Close,
}

/// A file body being streamed through the write buffer.
#[derive(Debug)]
struct FileBody {
    file: File,
    offset: u64,
    left: u64,
}

/// The request being answered, for the access log and the response.
#[derive(Clone, Copy, Debug)]
struct Current {
    /// Method and target as ranges of the read buffer, relative to `rpos`.
    method: (u32, u32),
    target: (u32, u32),
    minor_version: u8,
    status: u16,
    /// Bytes of the whole response (head and body).
    bytes: u64,
    /// When the head was complete, in microseconds.
    started_us: u64,
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
    /// Length of the head being answered, at `rpos`.
    head_len: u32,
    /// Response bytes waiting to be written, `wbuf[wpos..]`.
    wbuf: Vec<u8>,
    wpos: u32,
    file: Option<FileBody>,
    /// The unused body of the request being answered, still to be skipped.
    skip: Option<BodyDecoder>,
    current: Option<Current>,
    lingered: u64,
}

impl Exchange {
    /// Whether nothing is in flight: no input buffered, no output pending, no request open.
    fn is_empty(&self) -> bool {
        self.rpos == self.rend
            && self.wpos as usize == self.wbuf.len()
            && self.file.is_none()
            && self.skip.is_none()
            && self.current.is_none()
    }

    /// Forgets everything in flight, keeping the buffers' memory.
    fn reset(&mut self) {
        self.rpos = 0;
        self.rend = 0;
        self.scanned = 0;
        self.head_len = 0;
        self.wbuf.clear();
        self.wpos = 0;
        self.file = None;
        self.skip = None;
        self.current = None;
        self.lingered = 0;
    }

    /// Unconsumed input.
    fn input(&self) -> &[u8] {
        self.rbuf.get(self.rpos as usize..self.rend as usize).unwrap_or_default()
    }

    /// Whether output is still to be written.
    fn sending(&self) -> bool {
        (self.wpos as usize) < self.wbuf.len() || self.file.is_some()
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

    /// Records readiness from an event.
    pub(crate) fn ready(&mut self, readable: bool, writable: bool) {
        self.read_ready |= readable;
        self.write_ready |= writable;
    }

    /// The interest the connection needs now, if it differs from what is registered.
    pub(crate) fn interest_change(&mut self) -> Option<Interest> {
        let want_write = self.phase == Phase::Send && !self.write_ready;
        if want_write == self.write_interest {
            return None;
        }
        self.write_interest = want_write;
        Some(if want_write { Interest::READABLE | Interest::WRITABLE } else { Interest::READABLE })
    }

    /// Gives the in-flight state back to the pool before the connection is dropped,
    /// logging a request that did not finish.
    pub(crate) fn recycle(&mut self, shared: &mut Shared) {
        if let Some(mut x) = self.exchange.take() {
            self.log_aborted(&mut x, shared);
            x.reset();
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
        let mut budget = shared.config.send_budget;
        let mut progressed = false;
        let flow = loop {
            let step = match self.phase {
                Phase::Idle | Phase::Head => self.read_head(&mut x, shared),
                Phase::Send => self.send(&mut x, shared, &mut budget, &mut progressed),
                Phase::Linger => self.linger(&mut x),
            };
            if let Some(flow) = step {
                break flow;
            }
        };
        self.exchange = Some(x);
        if flow == Flow::Close || self.exchange.as_ref().is_some_and(|x| x.is_empty()) {
            self.recycle(shared);
        }
        flow
    }

    /// Handles an expired deadline of `kind`.
    pub(crate) fn timed_out(&mut self, kind: TimerKind, shared: &mut Shared) -> Flow {
        let unanswered = self.exchange.as_ref().is_some_and(|x| !x.input().is_empty() && x.skip.is_none());
        if kind == TimerKind::Header && self.phase == Phase::Head && unanswered {
            log::debug!("{}: request head timed out", self.peer);
            if let Some(mut x) = self.exchange.take() {
                self.fail(&mut x, Status::REQUEST_TIMEOUT, shared);
                self.exchange = Some(x);
            }
            return self.drive(shared);
        }
        log::debug!("{}: {kind:?} timeout in {:?}", self.peer, self.phase);
        Flow::Close
    }

    // ---- reading a request head -------------------------------------------------

    /// One step of `Idle`/`Head`: skip body bytes, parse a head, or read.
    fn read_head(&mut self, x: &mut Exchange, shared: &mut Shared) -> Option<Flow> {
        if x.rpos < x.rend {
            let input = &x.rbuf[x.rpos as usize..x.rend as usize];
            if let Some(skip) = &mut x.skip {
                match skip.decode(input) {
                    Ok(step) => x.rpos += step.consumed as u32,
                    Err(e) => {
                        log::debug!("{}: bad request body: {}", self.peer, e.0);
                        return Some(Flow::Close);
                    }
                }
                if skip.is_done() {
                    x.skip = None;
                }
                return None;
            }
            if parse::find_head_end(input, x.scanned as usize).is_some() {
                match parse::parse_head(input, shared.config.max_header_bytes) {
                    Ok(Some(head)) => {
                        self.dispatch(x, head, shared);
                        return None;
                    }
                    Ok(None) => {}
                    Err(e) => {
                        log::debug!("{}: bad request head: {e:?}", self.peer);
                        self.fail(x, e.status(), shared);
                        return None;
                    }
                }
            }
            let len = input.len();
            x.scanned = len.saturating_sub(3) as u32;
            if len >= shared.config.max_header_bytes {
                let e = parse::incomplete_error(x.input());
                log::debug!("{}: request head too large: {e:?}", self.peer);
                self.fail(x, e.status(), shared);
                return None;
            }
        }
        if x.sending() {
            // Coalesced responses are still queued: send them before waiting for more.
            self.phase = Phase::Send;
            return None;
        }
        if self.peer_eof {
            return Some(Flow::Close);
        }
        if !self.read_ready {
            return Some(Flow::Wait);
        }
        match self.read(x, shared) {
            Ok(0) => {
                self.peer_eof = true;
                if x.rpos < x.rend && x.skip.is_none() {
                    log::debug!("{}: closed in the middle of a request head", self.peer);
                }
                Some(Flow::Close)
            }
            Ok(_) => {
                if self.phase == Phase::Idle {
                    self.phase = Phase::Head;
                    self.arm = Some(TimerKind::Header);
                }
                None
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                self.read_ready = false;
                Some(Flow::Wait)
            }
            Err(e) => {
                log_io_error(self.peer, "reading", &e);
                Some(Flow::Close)
            }
        }
    }

    /// Reads once into the read buffer (allocating it on first use), moving
    /// unconsumed bytes to the front first. `Ok(0)` is EOF; a full buffer reads
    /// nothing and reports `Ok(1)` so that the caller looks at it again.
    fn read(&mut self, x: &mut Exchange, shared: &Shared) -> io::Result<usize> {
        if x.rbuf.is_empty() {
            x.rbuf = vec![0; shared.config.max_header_bytes];
        }
        if x.rpos > 0 {
            x.rbuf.copy_within(x.rpos as usize..x.rend as usize, 0);
            x.rend -= x.rpos;
            x.rpos = 0;
        }
        let Some(space) = x.rbuf.get_mut(x.rend as usize..).filter(|s| !s.is_empty()) else {
            return Ok(1);
        };
        loop {
            match self.stream.read(space) {
                Ok(n) => {
                    x.rend += n as u32;
                    return Ok(n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }

    // ---- answering ----------------------------------------------------------------

    /// Starts answering a complete, valid request head.
    fn dispatch(&mut self, x: &mut Exchange, head: RequestHead, shared: &mut Shared) {
        x.head_len = head.len as u32;
        x.scanned = 0;
        self.arm = Some(TimerKind::None);
        self.keep_alive = head.keep_alive && !shared.draining;
        if let Some(body) = BodyDecoder::new(head.body) {
            // We answer without reading the body. A small one is skipped before the
            // next request; a large one, or one the client waits for a 100 Continue
            // to send, ends the connection (the lingering close drains it).
            let large = matches!(head.body, parse::BodyLength::Fixed(n) if n > MAX_DISCARD);
            if large || head.expect_continue {
                self.keep_alive = false;
                self.linger_wait = true;
            }
            x.skip = Some(body);
        }
        let persistence = if !self.keep_alive {
            Persistence::Close
        } else if head.minor_version == 0 {
            Persistence::KeepAlive
        } else {
            Persistence::Default
        };
        x.start_response(&head, shared);
        let send_body = head.method != Method::Head;
        match head.method {
            Method::Get | Method::Head => self.serve_file(x, &head, persistence, send_body, shared),
            Method::Other => x.page(Status::NOT_IMPLEMENTED, persistence, send_body, shared),
            _ => {
                x.head(Status::METHOD_NOT_ALLOWED, shared).header("Allow", b"GET, HEAD");
                x.finish_page(Status::METHOD_NOT_ALLOWED, persistence, send_body);
            }
        }
        self.phase = Phase::Send;
    }

    /// Answers GET/HEAD from the static files.
    fn serve_file(
        &mut self,
        x: &mut Exchange,
        head: &RequestHead,
        persistence: Persistence,
        send_body: bool,
        shared: &mut Shared,
    ) {
        let base = x.rpos as usize;
        let target = (base + head.target.0, base + head.target.1);
        let Some((path, query)) = split_target(&x.rbuf[target.0..target.1]) else {
            return x.page(Status::BAD_REQUEST, persistence, send_body, shared);
        };
        let path = (target.0 + path.0, target.0 + path.1);
        let query = query.map(|q| (target.0 + q.0, target.0 + q.1));
        if files::percent_decode(&x.rbuf[path.0..path.1], &mut shared.decoded).is_none() {
            return x.page(Status::BAD_REQUEST, persistence, send_body, shared);
        }
        if shared.decoded.is_empty() {
            shared.decoded.push(b'/');
        }
        match shared.files.resolve(&shared.decoded, &mut shared.path) {
            Ok(Found::File(file)) => {
                x.head(Status::OK, shared)
                    .content_type(file.mime, file.text)
                    .content_length(file.len)
                    .finish(persistence);
                x.set_response(Status::OK, if send_body { file.len } else { 0 });
                if send_body && file.len > 0 {
                    x.file = Some(FileBody { file: file.file, offset: 0, left: file.len });
                    if let Err(e) = x.fill_from_file() {
                        log::error!("{}: reading {:?}: {e}", self.peer, String::from_utf8_lossy(&shared.path));
                        self.keep_alive = false;
                    }
                }
            }
            Ok(Found::AddSlash) => {
                // The query is copied verbatim: httparse admits no CR, LF or spaces in it.
                let query = query.map(|q| &x.rbuf[q.0..q.1]);
                HeadWriter::new(&mut x.wbuf, Status::MOVED_PERMANENTLY, shared.date.value())
                    .location(&shared.path, query);
                x.finish_page(Status::MOVED_PERMANENTLY, persistence, send_body);
            }
            Err(e) => {
                if let files::FileError::Io(io) = &e {
                    log::error!("{}: opening {:?}: {io}", self.peer, String::from_utf8_lossy(&shared.path));
                }
                x.page(e.status(), persistence, send_body, shared);
            }
        }
    }

    /// Answers a request that cannot be parsed or waited for any longer, then closes.
    fn fail(&mut self, x: &mut Exchange, status: Status, shared: &mut Shared) {
        self.keep_alive = false;
        self.linger_wait = true;
        self.arm = Some(TimerKind::None);
        x.head_len = 0;
        // A HEAD request gets no body even when the rest of its head is unusable.
        let send_body = !x.input().starts_with(b"HEAD ");
        x.start_response(&RequestHead::UNPARSED, shared);
        x.page(status, Persistence::Close, send_body, shared);
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
        if x.file.is_none()
            && self.keep_alive
            && x.current.is_some()
            && x.wbuf.len() - x.wpos as usize <= x.wbuf.capacity() / 2
            && x.next_request_buffered()
        {
            // Answer the next pipelined request into the same buffer: one write for the batch.
            self.finish_request(x, shared);
            return None;
        }
        while x.sending() {
            if x.wpos as usize == x.wbuf.len() {
                x.wbuf.clear();
                x.wpos = 0;
                if let Err(e) = x.fill_from_file() {
                    log::error!("{}: reading file body: {e}", self.peer);
                    return Some(Flow::Close);
                }
                continue;
            }
            if !self.write_ready {
                if *progressed || self.link.armed().0 != TimerKind::Send {
                    self.arm = Some(TimerKind::Send);
                }
                return Some(Flow::Wait);
            }
            if *budget == 0 {
                return Some(Flow::Yield);
            }
            match self.stream.write(&x.wbuf[x.wpos as usize..]) {
                Ok(n) => {
                    x.wpos += n as u32;
                    *budget = budget.saturating_sub(n);
                    *progressed = true;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.write_ready = false,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    log_io_error(self.peer, "writing", &e);
                    return Some(Flow::Close);
                }
            }
        }
        self.finish_request(x, shared);
        None
    }

    /// The current request is answered (or queued): log it and move to the next phase.
    fn finish_request(&mut self, x: &mut Exchange, shared: &mut Shared) {
        if let Some(current) = x.current.take() {
            shared.requests += 1;
            self.log(x, &current, current.bytes, shared);
        }
        x.rpos += x.head_len;
        x.head_len = 0;
        x.scanned = 0;
        if !self.keep_alive {
            if !x.sending() {
                self.phase = Phase::Linger;
            }
            return;
        }
        if x.rpos < x.rend || x.skip.is_some() {
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
        x.skip = None;
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

    /// Logs an unfinished request of a connection that is being closed.
    fn log_aborted(&self, x: &mut Exchange, shared: &Shared) {
        if let Some(current) = x.current.take() {
            let unsent = (x.wbuf.len() - x.wpos as usize) as u64 + x.file.as_ref().map_or(0, |f| f.left);
            self.log(x, &current, current.bytes.saturating_sub(unsent), shared);
        }
    }

    fn log(&self, x: &Exchange, current: &Current, bytes: u64, shared: &Shared) {
        if !access_log::enabled() {
            return;
        }
        let base = x.rpos as usize;
        let slice = |(a, b): (u32, u32)| x.rbuf.get(base + a as usize..base + b as usize).unwrap_or(b"");
        access_log::Entry {
            peer: self.peer,
            method: slice(current.method),
            target: slice(current.target),
            minor_version: current.minor_version,
            status: current.status,
            bytes,
            micros: shared.clock.peek_us().saturating_sub(current.started_us),
        }
        .log();
    }
}

impl Exchange {
    /// Opens the response to `head`: the write buffer is ready and the request recorded.
    fn start_response(&mut self, head: &RequestHead, shared: &Shared) {
        if self.wbuf.capacity() == 0 {
            self.wbuf = Vec::with_capacity(shared.config.write_buffer_bytes);
        }
        self.current = Some(Current {
            method: (head.method_span.0 as u32, head.method_span.1 as u32),
            target: (head.target.0 as u32, head.target.1 as u32),
            minor_version: head.minor_version,
            status: 0,
            bytes: self.wbuf.len() as u64,
            started_us: shared.clock.now_us(),
        });
    }

    /// Starts a response head in the write buffer.
    fn head(&mut self, status: Status, shared: &Shared) -> HeadWriter<'_> {
        HeadWriter::new(&mut self.wbuf, status, shared.date.value())
    }

    /// A complete built-in page response.
    fn page(&mut self, status: Status, persistence: Persistence, send_body: bool, shared: &Shared) {
        self.head(status, shared);
        self.finish_page(status, persistence, send_body);
    }

    /// Ends a head already started with the page's headers, then the page itself.
    fn finish_page(&mut self, status: Status, persistence: Persistence, send_body: bool) {
        let len = response::page_len(status);
        HeadWriter::resume(&mut self.wbuf).content_type("text/html", true).content_length(len).finish(persistence);
        self.set_response(status, if send_body { len } else { 0 });
        if send_body {
            response::write_page(&mut self.wbuf, status);
        }
    }

    /// Records status and total length of the current response, whose head has just
    /// been finished (until now `bytes` held where in the write buffer it started).
    fn set_response(&mut self, status: Status, body: u64) {
        let written = self.wbuf.len() as u64;
        if let Some(c) = &mut self.current {
            c.status = status.code();
            c.bytes = written.saturating_sub(c.bytes) + body;
        }
    }

    /// Appends as much of the file body as fits in the write buffer.
    fn fill_from_file(&mut self) -> io::Result<()> {
        let Some(body) = &mut self.file else { return Ok(()) };
        let start = self.wbuf.len();
        let room = self.wbuf.capacity() - start;
        let want = usize::try_from(body.left).unwrap_or(usize::MAX).min(room);
        if want == 0 {
            return Ok(());
        }
        self.wbuf.resize(start + want, 0);
        let mut got = 0;
        while got < want {
            match body.file.read_at(&mut self.wbuf[start + got..], body.offset) {
                Ok(0) => break,
                Ok(n) => {
                    got += n;
                    body.offset += n as u64;
                    body.left -= n as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.wbuf.truncate(start + got);
                    self.file = None;
                    return Err(e);
                }
            }
        }
        self.wbuf.truncate(start + got);
        if got < want {
            self.file = None;
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "file shrank while being sent"));
        }
        if body.left == 0 {
            self.file = None;
        }
        Ok(())
    }

    /// Whether another complete head follows the current one in the read buffer
    /// (and no body of the current one stands in between).
    fn next_request_buffered(&self) -> bool {
        let next = (self.rpos + self.head_len) as usize;
        self.skip.is_none_or(|s| s.is_done())
            && next < self.rend as usize
            && parse::find_head_end(&self.rbuf[next..self.rend as usize], 0).is_some()
    }
}

/// A range of a byte slice.
type Span = (usize, usize);

/// Splits a request target into the ranges of its path and query. Absolute-form
/// targets (`http://host/path`) are reduced to their path; `None` for other forms.
fn split_target(target: &[u8]) -> Option<(Span, Option<Span>)> {
    let start = match target.first() {
        Some(b'/') => 0,
        _ => {
            let scheme_end = target.windows(3).position(|w| w == b"://")?;
            let scheme = &target[..scheme_end];
            if !scheme.eq_ignore_ascii_case(b"http") && !scheme.eq_ignore_ascii_case(b"https") {
                return None;
            }
            let authority = scheme_end + 3;
            match target[authority..].iter().position(|&b| b == b'/' || b == b'?' || b == b'#') {
                Some(i) if target[authority + i] == b'/' => authority + i,
                // No path: the path is "/", whatever follows is query or fragment.
                Some(i) => return Some((ROOT_PATH, query_of(target, authority + i))),
                None => return Some((ROOT_PATH, None)),
            }
        }
    };
    let end = target.iter().position(|&b| b == b'#').unwrap_or(target.len());
    match target[start..end].iter().position(|&b| b == b'?') {
        Some(i) => Some(((start, start + i), Some((start + i + 1, end)))),
        None => Some(((start, end), None)),
    }
}

/// Marks "the path is `/`" for targets without one: an empty range, decoded as `/`.
const ROOT_PATH: Span = (0, 0);

fn query_of(target: &[u8], at: usize) -> Option<Span> {
    if target.get(at) != Some(&b'?') {
        return None;
    }
    let end = target.iter().position(|&b| b == b'#').unwrap_or(target.len());
    Some((at + 1, end))
}

/// Logs an I/O error on a client socket at the level its cause deserves.
fn log_io_error(peer: SocketAddr, doing: &str, e: &io::Error) {
    match e.kind() {
        io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionAborted => {
            log::debug!("{peer}: client went away while {doing}: {e}")
        }
        _ => log::info!("{peer}: error while {doing}: {e}"),
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
        assert_eq!(split(b"http://h:80/x/y?q"), Some((&b"/x/y"[..], Some(&b"q"[..]))));
        assert_eq!(split(b"HTTP://h"), Some((&b""[..], None)));
        assert_eq!(split(b"http://h?q"), Some((&b""[..], Some(&b"q"[..]))));
        assert_eq!(split(b"*"), None);
        assert_eq!(split(b"ftp://h/x"), None);
        assert_eq!(split(b"h:443"), None);
    }
}
