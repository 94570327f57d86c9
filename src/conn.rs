//! One client connection: the only code that reads from or writes to a client socket.
//!
//! A connection moves through [`Phase`]s — idle → reading a head → sending →
//! (idle | next head | lingering close) — driven by [`Conn::drive`], which loops
//! until the socket would block, the per-wakeup send budget is spent, or the
//! connection must close. A phase that completes falls straight through to the
//! next one without waiting for another readiness event.
//!
//! Buffers are leased from the server's pools only while bytes are in flight: an
//! idle keep-alive connection holds none.

use std::fs::File;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::os::unix::fs::FileExt;

use mio::net::TcpStream;
use mio::Interest;

use crate::access_log;
use crate::body::BodyDecoder;
use crate::bufpool::BufPool;
use crate::config::Config;
use crate::date::DateCache;
use crate::files::{self, Found, StaticFiles};
use crate::parse::{self, Method, RequestHead};
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
    pub read_pool: BufPool,
    pub write_pool: BufPool,
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

/// One client connection.
pub(crate) struct Conn {
    stream: TcpStream,
    peer: SocketAddr,
    pub(crate) link: Link,
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
    /// Read buffer (full length while leased, empty otherwise), with unconsumed
    /// bytes in `rpos..rend`.
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
            gen,
            phase: Phase::Head,
            read_ready: true,
            write_ready: true,
            write_interest: false,
            keep_alive: true,
            linger_wait: false,
            peer_eof: false,
            arm: Some(TimerKind::Header),
            rbuf: Vec::new(),
            rpos: 0,
            rend: 0,
            scanned: 0,
            head_len: 0,
            wbuf: Vec::new(),
            wpos: 0,
            file: None,
            skip: None,
            current: None,
            lingered: 0,
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

    /// Whether the connection is between requests with nothing buffered.
    pub(crate) fn is_idle(&self) -> bool {
        self.phase == Phase::Idle || (self.phase == Phase::Head && self.rpos == self.rend && self.skip.is_none())
    }

    /// Records readiness from an event.
    pub(crate) fn ready(&mut self, readable: bool, writable: bool) {
        self.read_ready |= readable;
        self.write_ready |= writable;
    }

    /// The interest the connection needs now, and whether it differs from what is registered.
    pub(crate) fn interest_change(&mut self) -> Option<Interest> {
        let want_write = self.phase == Phase::Send && !self.write_ready;
        if want_write == self.write_interest {
            return None;
        }
        self.write_interest = want_write;
        Some(if want_write { Interest::READABLE | Interest::WRITABLE } else { Interest::READABLE })
    }

    /// Gives the buffers back to the pools before the connection is dropped.
    pub(crate) fn recycle(&mut self, shared: &mut Shared) {
        self.rpos = self.rend;
        self.wpos = self.wbuf.len() as u32;
        self.file = None;
        self.release_buffers(shared);
    }

    /// Stops keeping the connection alive (graceful shutdown).
    pub(crate) fn stop_keep_alive(&mut self) {
        self.keep_alive = false;
    }

    /// Runs the state machine until it must wait, yield or close.
    pub(crate) fn drive(&mut self, shared: &mut Shared) -> Flow {
        let mut budget = shared.config.send_budget;
        let mut progressed = false;
        loop {
            let step = match self.phase {
                Phase::Idle | Phase::Head => self.read_head(shared),
                Phase::Send => self.send(shared, &mut budget, &mut progressed),
                Phase::Linger => self.linger(shared),
            };
            if let Some(flow) = step {
                if flow == Flow::Close {
                    self.log_aborted(shared);
                }
                return flow;
            }
        }
    }

    /// Handles an expired deadline of `kind`.
    pub(crate) fn timed_out(&mut self, kind: TimerKind, shared: &mut Shared) -> Flow {
        if kind == TimerKind::Header && self.phase == Phase::Head && self.rpos < self.rend && self.skip.is_none() {
            log::debug!("{}: request head timed out", self.peer);
            self.fail(Status::REQUEST_TIMEOUT, shared);
            return self.drive(shared);
        }
        log::debug!("{}: {kind:?} timeout in {:?}", self.peer, self.phase);
        self.log_aborted(shared);
        Flow::Close
    }

    // ---- reading a request head -------------------------------------------------

    /// One step of `Idle`/`Head`: skip body bytes, parse a head, or read.
    fn read_head(&mut self, shared: &mut Shared) -> Option<Flow> {
        if self.rpos < self.rend {
            if let Some(skip) = &mut self.skip {
                let (start, end) = (self.rpos as usize, self.rend as usize);
                match skip.decode(&self.rbuf[start..end]) {
                    Ok(step) => self.rpos += step.consumed as u32,
                    Err(e) => {
                        log::debug!("{}: bad request body: {}", self.peer, e.0);
                        return Some(Flow::Close);
                    }
                }
                if skip.is_done() {
                    self.skip = None;
                }
                return None;
            }
            let avail = &self.rbuf[self.rpos as usize..self.rend as usize];
            if parse::find_head_end(avail, self.scanned as usize).is_some() {
                match parse::parse_head(avail, shared.config.max_header_bytes) {
                    Ok(Some(head)) => {
                        self.dispatch(head, shared);
                        return None;
                    }
                    Ok(None) => {}
                    Err(e) => {
                        log::debug!("{}: bad request head: {e:?}", self.peer);
                        self.fail(e.status(), shared);
                        return None;
                    }
                }
            }
            self.scanned = avail.len().saturating_sub(3) as u32;
            if avail.len() >= shared.config.max_header_bytes.min(self.rbuf.len()) {
                let e = parse::incomplete_error(avail);
                log::debug!("{}: request head too large: {e:?}", self.peer);
                self.fail(e.status(), shared);
                return None;
            }
        }
        if self.wpos < self.wbuf.len() as u32 || self.file.is_some() {
            // Coalesced responses are still queued: send them before waiting for more.
            self.phase = Phase::Send;
            return None;
        }
        if self.peer_eof {
            return Some(Flow::Close);
        }
        if !self.read_ready {
            self.release_buffers(shared);
            return Some(Flow::Wait);
        }
        match self.read(shared) {
            Ok(0) => {
                self.peer_eof = true;
                if self.rpos < self.rend && self.skip.is_none() {
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
                self.release_buffers(shared);
                Some(Flow::Wait)
            }
            Err(e) => {
                log_io_error(self.peer, "reading", &e);
                Some(Flow::Close)
            }
        }
    }

    /// Reads once into the read buffer (leasing it first), compacting as needed.
    /// `Ok(0)` is EOF; a full buffer reads nothing and reports `WouldBlock`-free `Ok(1)`.
    fn read(&mut self, shared: &mut Shared) -> io::Result<usize> {
        if self.rbuf.is_empty() {
            self.rbuf = shared.read_pool.take();
            self.rpos = 0;
            self.rend = 0;
        }
        if self.rpos > 0 {
            self.rbuf.copy_within(self.rpos as usize..self.rend as usize, 0);
            self.rend -= self.rpos;
            self.rpos = 0;
        }
        let Some(space) = self.rbuf.get_mut(self.rend as usize..).filter(|s| !s.is_empty()) else {
            return Ok(1);
        };
        loop {
            match self.stream.read(space) {
                Ok(n) => {
                    self.rend += n as u32;
                    return Ok(n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// Returns buffers that hold nothing to the pools.
    fn release_buffers(&mut self, shared: &mut Shared) {
        if self.rpos == self.rend && !self.rbuf.is_empty() {
            shared.read_pool.give(std::mem::take(&mut self.rbuf));
            self.rpos = 0;
            self.rend = 0;
            self.scanned = 0;
        }
        if self.wpos as usize == self.wbuf.len() && self.file.is_none() && self.wbuf.capacity() > 0 {
            shared.write_pool.give(std::mem::take(&mut self.wbuf));
            self.wpos = 0;
        }
    }

    // ---- answering ----------------------------------------------------------------

    /// Starts answering a complete, valid request head.
    fn dispatch(&mut self, head: RequestHead, shared: &mut Shared) {
        self.head_len = head.len as u32;
        self.scanned = 0;
        self.arm = Some(TimerKind::None);
        self.current = Some(Current {
            method: (head.method_span.0 as u32, head.method_span.1 as u32),
            target: (head.target.0 as u32, head.target.1 as u32),
            minor_version: head.minor_version,
            status: 0,
            bytes: 0,
            started_us: shared.clock.now_us(),
        });
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
            self.skip = Some(body);
        }
        let persistence = if !self.keep_alive {
            Persistence::Close
        } else if head.minor_version == 0 {
            Persistence::KeepAlive
        } else {
            Persistence::Default
        };
        self.take_write_buffer(shared);
        let send_body = head.method != Method::Head;
        match head.method {
            Method::Get | Method::Head => self.serve_file(&head, persistence, send_body, shared),
            Method::Other => self.page(Status::NOT_IMPLEMENTED, persistence, send_body, shared),
            _ => {
                let mut w = self.head(Status::METHOD_NOT_ALLOWED, shared);
                w.header("Allow", b"GET, HEAD");
                self.finish_page(Status::METHOD_NOT_ALLOWED, persistence, send_body);
            }
        }
        self.phase = Phase::Send;
    }

    /// Answers GET/HEAD from the static files.
    fn serve_file(&mut self, head: &RequestHead, persistence: Persistence, send_body: bool, shared: &mut Shared) {
        let base = self.rpos as usize;
        let target = (base + head.target.0, base + head.target.1);
        let Some((path, query)) = split_target(&self.rbuf[target.0..target.1]) else {
            return self.page(Status::BAD_REQUEST, persistence, send_body, shared);
        };
        let path = (target.0 + path.0, target.0 + path.1);
        let query = query.map(|q| (target.0 + q.0, target.0 + q.1));
        if files::percent_decode(&self.rbuf[path.0..path.1], &mut shared.decoded).is_none() {
            return self.page(Status::BAD_REQUEST, persistence, send_body, shared);
        }
        if shared.decoded.is_empty() {
            shared.decoded.push(b'/');
        }
        match shared.files.resolve(&shared.decoded, &mut shared.path) {
            Ok(Found::File(file)) => {
                HeadWriter::new(&mut self.wbuf, Status::OK, shared.date.value())
                    .content_type(file.mime, file.text)
                    .content_length(file.len)
                    .finish(persistence);
                self.set_response(Status::OK, if send_body { file.len } else { 0 });
                if send_body && file.len > 0 {
                    self.file = Some(FileBody { file: file.file, offset: 0, left: file.len });
                    if let Err(e) = self.fill_from_file() {
                        log::error!("{}: reading {:?}: {e}", self.peer, String::from_utf8_lossy(&shared.path));
                        self.keep_alive = false;
                    }
                }
            }
            Ok(Found::AddSlash) => {
                // The query is copied verbatim: httparse admits no CR, LF or spaces in it.
                let query = query.map(|q| &self.rbuf[q.0..q.1]);
                HeadWriter::new(&mut self.wbuf, Status::MOVED_PERMANENTLY, shared.date.value())
                    .location(&shared.path, query);
                self.finish_page(Status::MOVED_PERMANENTLY, persistence, send_body);
            }
            Err(e) => {
                if let files::FileError::Io(io) = &e {
                    log::error!("{}: opening {:?}: {io}", self.peer, String::from_utf8_lossy(&shared.path));
                }
                self.page(e.status(), persistence, send_body, shared);
            }
        }
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

    /// Answers a request that cannot be parsed or waited for any longer, then closes.
    fn fail(&mut self, status: Status, shared: &mut Shared) {
        self.keep_alive = false;
        self.linger_wait = true;
        self.head_len = 0;
        self.current = Some(Current {
            method: (0, 0),
            target: (0, 0),
            minor_version: 1,
            status: 0,
            bytes: 0,
            started_us: shared.clock.now_us(),
        });
        self.take_write_buffer(shared);
        self.page(status, Persistence::Close, true, shared);
        self.arm = Some(TimerKind::None);
        self.phase = Phase::Send;
    }

    fn take_write_buffer(&mut self, shared: &mut Shared) {
        if self.wbuf.capacity() == 0 {
            self.wbuf = shared.write_pool.take();
            self.wbuf.clear();
            self.wpos = 0;
        }
        if let Some(c) = &mut self.current {
            c.bytes = self.wbuf.len() as u64;
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

    // ---- sending ----------------------------------------------------------------------

    /// One step of `Send`: coalesce the next pipelined response, or write.
    fn send(&mut self, shared: &mut Shared, budget: &mut usize, progressed: &mut bool) -> Option<Flow> {
        if self.file.is_none() && self.keep_alive && self.current.is_some() && self.next_request_buffered() {
            let half = self.wbuf.capacity() / 2;
            if self.wbuf.len() - self.wpos as usize <= half {
                // Answer the next pipelined request into the same buffer: one write for the batch.
                self.finish_request(shared);
                return None;
            }
        }
        while self.wpos < self.wbuf.len() as u32 || self.file.is_some() {
            if self.wpos == self.wbuf.len() as u32 {
                self.wbuf.clear();
                self.wpos = 0;
                if let Err(e) = self.fill_from_file() {
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
            match self.stream.write(&self.wbuf[self.wpos as usize..]) {
                Ok(n) => {
                    self.wpos += n as u32;
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
        self.finish_request(shared);
        None
    }

    /// Whether another complete head follows the current one in the read buffer
    /// (and no body of the current one stands in between).
    fn next_request_buffered(&self) -> bool {
        let next = (self.rpos + self.head_len) as usize;
        !matches!(self.skip, Some(s) if !s.is_done())
            && next < self.rend as usize
            && parse::find_head_end(&self.rbuf[next..self.rend as usize], 0).is_some()
    }

    /// The current request is answered (or queued): log it and move to the next phase.
    fn finish_request(&mut self, shared: &mut Shared) {
        if let Some(current) = self.current.take() {
            shared.requests += 1;
            self.log(&current, current.bytes, shared);
        }
        self.rpos += self.head_len;
        self.head_len = 0;
        self.scanned = 0;
        let sent_all = self.wpos as usize == self.wbuf.len() && self.file.is_none();
        if !self.keep_alive {
            if sent_all {
                self.phase = Phase::Linger;
            }
            return;
        }
        if self.rpos < self.rend || self.skip.is_some() {
            self.phase = Phase::Head;
            self.arm = Some(TimerKind::Header);
        } else {
            self.phase = Phase::Idle;
            self.arm = Some(TimerKind::Idle);
            if sent_all {
                self.release_buffers(shared);
            }
        }
    }

    // ---- closing ------------------------------------------------------------------------

    /// One step of `Linger`: drop what the client sends until it stops or closes.
    fn linger(&mut self, shared: &mut Shared) -> Option<Flow> {
        self.rpos = self.rend;
        self.skip = None;
        if self.peer_eof {
            return Some(Flow::Close);
        }
        if self.read_ready {
            match self.read(shared) {
                Ok(0) => return Some(Flow::Close),
                Ok(n) => {
                    self.rpos = self.rend;
                    self.lingered += n as u64;
                    self.linger_wait = true;
                    return (self.lingered > MAX_LINGER_BYTES).then_some(Flow::Close);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.read_ready = false,
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
            self.release_buffers(shared);
        }
        Some(Flow::Wait)
    }

    /// Logs an unfinished request of a connection that is being closed.
    fn log_aborted(&mut self, shared: &Shared) {
        if let Some(current) = self.current.take() {
            let unsent = (self.wbuf.len() - self.wpos as usize) as u64 + self.file.as_ref().map_or(0, |f| f.left);
            self.log(&current, current.bytes.saturating_sub(unsent), shared);
        }
    }

    fn log(&self, current: &Current, bytes: u64, shared: &Shared) {
        if !access_log::enabled() {
            return;
        }
        let base = self.rpos as usize;
        let slice = |(a, b): (u32, u32)| self.rbuf.get(base + a as usize..base + b as usize).unwrap_or(b"");
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
        let size = std::mem::size_of::<Conn>();
        assert!(size <= 256, "Conn is {size} bytes");
        eprintln!("size_of::<Conn>() = {size}");
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
