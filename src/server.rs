//! The server object: listeners, connections and deadlines, driven by a `Poll`
//! that someone else owns.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::io;
use std::net::SocketAddr;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::Duration;

use mio::event::Event;
use mio::net::{TcpListener, TcpStream};
use mio::{Interest, Registry, Token};
use slab::Slab;

use crate::config::Config;
use crate::conn::{Conn, Flow, Phase, Shared};
use crate::date::DateCache;
use crate::pool::Pool;
use crate::request::Rewrites;
use crate::router::Router;
use crate::stats::{Stats, StatsHandle};
use crate::timer::{duration_ms, once_a_second, Clock, Linked, Millis, TimerKind, Timers};

/// Tokens reserved for listeners, from the first token on.
const LISTENER_TOKENS: usize = 64;
/// Bits of a connection token that hold the slab key, and above them the bits of
/// its generation (narrower where `usize` is 32 bits, so that the span fits).
#[cfg(target_pointer_width = "64")]
const KEY_BITS: u32 = 32;
#[cfg(target_pointer_width = "64")]
const GEN_BITS: u32 = 16;
#[cfg(not(target_pointer_width = "64"))]
const KEY_BITS: u32 = 20;
#[cfg(not(target_pointer_width = "64"))]
const GEN_BITS: u32 = 8;
/// How long accepting pauses after running out of file descriptors.
const ACCEPT_BACKOFF_MS: Millis = 100;
/// How long a connection may go without sending a byte of its request before,
/// at the connection or descriptor limit, it gives way to a newcomer: a client's
/// request arrives at once, one that has sent nothing this long holds a place
/// it is not using.
const SILENT_MS: Millis = 1000;
/// How many of the connections waiting longest for a request head are looked at
/// for a silent one.
const SILENT_LOOKED_AT: usize = 64;
/// The answer to a client accepted only to be refused (no room at the connection
/// limit, or no file descriptor).
const REFUSAL: &[u8] =
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\nRetry-After: 1\r\n\r\n";
/// Spare in-flight states (with their buffers) kept under load.
const POOL_SPARE: usize = 64;
/// Spares kept when the pool is trimmed under traffic, and how often that is.
/// (After a quiet spell none is kept.)
const POOL_SPARE_TRIMMED: usize = 4;
const POOL_TRIM_MS: Millis = 5000;
/// After this long without an event the server gives back memory held for speed:
/// long enough that steady traffic never pays for it, short enough that memory
/// read a second after the last request is already the idle figure.
const QUIET_TRIM_MS: Millis = 500;
/// Events handled on one reading of the clock (a wakeup's first event reads it,
/// then every this many): reading it per event showed in profiles of many
/// keep-alive clients. Deadlines armed on an older reading are early by the time
/// the events since took (typically a fraction of a millisecond, the clock's
/// resolution).
const EVENTS_PER_READING: u32 = 16;

/// An HTTP/1.1 server that runs on a host's `mio::Poll`, answering requests with
/// a [`Router`].
///
/// # Embedding
/// The host reserves the tokens `first_token .. first_token + TOKEN_SPAN` and
/// calls [`register`](Server::register) once; then, from its own loop:
/// - every event whose token the server [`owns`](Server::owns) goes to
///   [`handle_event`](Server::handle_event);
/// - its poll timeout is at most [`poll_timeout`](Server::poll_timeout);
/// - after each wakeup it calls [`handle_timeouts`](Server::handle_timeouts).
///
/// Connections the host accepted itself can be handed over with
/// [`accept_stream`](Server::accept_stream). [`shutdown`](Server::shutdown) begins a
/// graceful stop; [`is_drained`](Server::is_drained) says when it is over.
///
/// The server never creates a `Poll` or `Waker`, never blocks, spawns no threads,
/// installs no signal handlers and does not initialise a logger: it logs through
/// the `log` facade only. [`EventLoop`](crate::EventLoop) is a ready-made host.
pub struct Server {
    listeners: Vec<Listener>,
    conns: Slab<Conn>,
    timers: Timers,
    shared: Shared,
    /// The first of the server's tokens, once [`register`](Server::register)ed.
    first_token: Option<usize>,
    next_gen: u16,
    /// Accepting is paused after EMFILE/ENFILE until this time.
    accept_paused_until: Option<Millis>,
    /// A descriptor held in reserve: out of descriptors with no idle connection to
    /// close, it is given up for a moment to accept a client and refuse it (503)
    /// rather than leave it waiting in the backlog.
    reserve_fd: Option<std::fs::File>,
    /// Try the listeners again at the end of this turn.
    accept_resume: bool,
    /// When each kind of pressure was last logged.
    last_pressure_warning: [Option<Millis>; PRESSURE_KINDS],
    /// Delayed responses by due time: (due, slab key, generation).
    delays: BinaryHeap<Reverse<(Millis, usize, u16)>>,
    /// When the buffer pools are next trimmed.
    next_pool_trim: Millis,
    /// When to give back memory unless another event comes first.
    quiet_trim_at: Option<Millis>,
    /// Events that may still use the last reading of the clock: zero after each
    /// wakeup (`handle_timeouts`), so the first event of the next reads it anew.
    events_per_reading: u32,
    /// Graceful shutdown: everything still open is closed at this time.
    drain_deadline: Option<Millis>,
}

struct Listener {
    socket: TcpListener,
    addr: SocketAddr,
}

/// The number of tokens a server uses, starting at the first token given to
/// [`Server::register`]: the host must not use any of them for its own sources.
/// It is 2^48 + 64 where `usize` has 64 bits (2^28 + 64 where it has 32), so the
/// range belongs low in the token space: `Token(1 << 20)` leaves the host the
/// tokens below it and everything from `1 << 20` plus the span up.
pub const TOKEN_SPAN: usize = LISTENER_TOKENS + (1 << (KEY_BITS + GEN_BITS));

impl Server {
    /// A server answering with `router` under the limits of `config`, with no
    /// listeners yet.
    pub fn new(config: Config, router: Router) -> Server {
        Server::with_stats(config, router, StatsHandle::new())
    }

    /// Like [`new`](Server::new), counting into `stats` (see [`StatsHandle`]).
    pub fn with_stats(config: Config, router: Router, stats: StatsHandle) -> Server {
        let timers = Timers::new([
            config.header_timeout,
            config.idle_timeout,
            config.send_timeout,
            config.linger_timeout,
            config.body_timeout,
        ]);
        let shared = Shared {
            router,
            exchanges: Pool::new(POOL_SPARE),
            date: DateCache::new(),
            now: 0,
            clock: Clock::new(),
            draining: false,
            decoded: Vec::new(),
            rewrites: Rewrites::default(),
            bodies_held: 0,
            bodies_refused_logged: None,
            file_errors_logged: None,
            counters: stats.0,
            config,
        };
        Server {
            listeners: Vec::new(),
            conns: Slab::new(),
            timers,
            shared,
            first_token: None,
            next_gen: 0,
            accept_paused_until: None,
            reserve_fd: std::fs::File::open("/dev/null").ok(),
            accept_resume: false,
            last_pressure_warning: [None; PRESSURE_KINDS],
            next_pool_trim: POOL_TRIM_MS,
            quiet_trim_at: None,
            events_per_reading: 0,
            delays: BinaryHeap::new(),
            drain_deadline: None,
        }
    }

    /// The configuration the server runs with.
    pub fn config(&self) -> &Config {
        &self.shared.config
    }

    /// Binds a listening socket on `addr` (IPv6 sockets are IPv6-only, so `[::]`
    /// and `0.0.0.0` can both be bound) and returns its local address, which tells
    /// the port chosen for port 0. Only before [`register`](Server::register):
    /// afterwards it fails with `InvalidInput`.
    pub fn bind(&mut self, addr: SocketAddr) -> io::Result<SocketAddr> {
        self.add_listener(crate::listen::bind(addr, false)?)
    }

    /// Adds an already bound and listening socket (for example one inherited from
    /// a supervisor). Only before [`register`](Server::register): afterwards it
    /// fails with `InvalidInput`, as it does beyond 64 listeners.
    pub fn add_listener(&mut self, listener: std::net::TcpListener) -> io::Result<SocketAddr> {
        if self.first_token.is_some() {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "listeners are added before register"));
        }
        if self.listeners.len() >= LISTENER_TOKENS {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "too many listeners"));
        }
        listener.set_nonblocking(true)?;
        // Linux hands TCP_NODELAY down to accepted sockets: one setsockopt here
        // instead of one per connection.
        socket2::SockRef::from(&listener).set_nodelay(true)?;
        crate::listen::defer_accept(&listener);
        crate::listen::notsent_lowat(&listener, self.shared.config.send_lowat);
        let addr = listener.local_addr()?;
        self.listeners.push(Listener { socket: TcpListener::from_std(listener), addr });
        Ok(addr)
    }

    /// The addresses of the listening sockets.
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.listeners.iter().map(|l| l.addr).collect()
    }

    /// Registers the listeners on `registry`, once, before any connection is
    /// handed over with [`accept_stream`](Server::accept_stream). From then on the
    /// server uses the tokens `first_token .. first_token + TOKEN_SPAN`.
    ///
    /// Fails with `InvalidInput` when that range does not fit in a `usize`, with
    /// `AlreadyExists` when called again, and with the registry's error if a
    /// listener cannot be registered; the server is then left unregistered.
    pub fn register(&mut self, registry: &Registry, first_token: Token) -> io::Result<()> {
        if self.first_token.is_some() {
            return Err(io::Error::new(io::ErrorKind::AlreadyExists, "the server is registered already"));
        }
        if first_token.0.checked_add(TOKEN_SPAN).is_none() {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "first_token + TOKEN_SPAN overflows a usize"));
        }
        for i in 0..self.listeners.len() {
            let token = Token(first_token.0 + i);
            if let Err(e) = registry.register(&mut self.listeners[i].socket, token, Interest::READABLE) {
                for l in &mut self.listeners[..i] {
                    let _ = registry.deregister(&mut l.socket);
                }
                return Err(e);
            }
        }
        self.first_token = Some(first_token.0);
        Ok(())
    }

    /// Whether `token` is one of this server's: false for every token until the
    /// server is [`register`](Server::register)ed.
    pub fn owns(&self, token: Token) -> bool {
        self.first_token.is_some_and(|first| token.0.wrapping_sub(first) < TOKEN_SPAN)
    }

    /// Handles one readiness event for a token this server [`owns`](Server::owns)
    /// (any other event is ignored). Events for connections that have since
    /// closed are ignored too.
    pub fn handle_event(&mut self, registry: &Registry, event: &Event) {
        let Some(index) = self.first_token.and_then(|first| event.token().0.checked_sub(first)) else { return };
        if index >= TOKEN_SPAN {
            return;
        }
        match self.events_per_reading.checked_sub(1) {
            Some(left) => self.events_per_reading = left,
            None => {
                self.tick_busy();
                self.events_per_reading = EVENTS_PER_READING;
            }
        }
        if index < LISTENER_TOKENS {
            self.accept_from(registry, index);
        } else {
            let id = index - LISTENER_TOKENS;
            let key = id & ((1 << KEY_BITS) - 1);
            let gen = (id >> KEY_BITS) as u16;
            let Some(conn) = self.conns.get_mut(key).filter(|c| c.gen == gen) else { return };
            let before = conn.phase();
            conn.ready(
                event.is_readable() || event.is_read_closed() || event.is_error(),
                event.is_writable() || event.is_write_closed() || event.is_error(),
                event.is_read_closed() || event.is_error(),
            );
            let flow = conn.drive(&mut self.shared);
            self.settle(registry, key, flow, before);
        }
        self.resume_accepting(registry);
    }

    /// How long the host may sleep before [`handle_timeouts`](Server::handle_timeouts)
    /// has work: `None` when nothing is scheduled (as once a shutdown has drained).
    pub fn poll_timeout(&self) -> Option<Duration> {
        if self.accept_resume {
            return Some(Duration::ZERO);
        }
        let next_delay = self.delays.peek().map(|Reverse((at, _, _))| *at);
        let next = [
            self.timers.next_deadline(&self.conns),
            self.accept_paused_until,
            // The grace period's end matters only while something is left to close.
            self.drain_deadline.filter(|_| !self.conns.is_empty()),
            next_delay,
            self.quiet_trim_at,
        ]
        .into_iter()
        .flatten()
        .min()?;
        Some(Duration::from_millis(next.saturating_sub(self.shared.clock.peek())))
    }

    /// Expires deadlines and resumes deferred work. Call after every wakeup: it
    /// also marks the end of one, so that the next event reads the clock anew.
    pub fn handle_timeouts(&mut self, registry: &Registry) {
        let now = self.tick();
        self.events_per_reading = 0;
        for kind in Timers::ALL {
            while let Some(key) = self.timers.pop_expired(&mut self.conns, kind, now) {
                let Some(conn) = self.conns.get_mut(key) else { continue };
                self.shared.counters.timeout(kind);
                let before = conn.phase();
                let flow = conn.timed_out(kind, &mut self.shared);
                self.settle(registry, key, flow, before);
            }
        }
        while let Some(&Reverse((at, key, gen))) = self.delays.peek() {
            if at > now {
                break;
            }
            self.delays.pop();
            let Some(conn) = self.conns.get_mut(key).filter(|c| c.gen == gen) else { continue };
            let before = conn.phase();
            let flow = conn.delay_over(&mut self.shared);
            self.settle(registry, key, flow, before);
        }
        if self.accept_paused_until.is_some_and(|t| t <= now) {
            self.accept_paused_until = None;
            self.accept_resume = true;
        }
        if now >= self.next_pool_trim {
            // Give back the memory a burst left in the pools.
            self.next_pool_trim = now + POOL_TRIM_MS;
            self.shared.exchanges.trim(POOL_SPARE_TRIMMED);
        }
        if self.quiet_trim_at.is_some_and(|t| t <= now) {
            self.quiet_trim_at = None;
            self.release_memory();
        }
        if self.drain_deadline.is_some_and(|t| t <= now) && !self.conns.is_empty() {
            log::info!("grace period over: closing {} connections", self.conns.len());
            self.close_all();
        }
        self.resume_accepting(registry);
    }

    /// Begins a graceful shutdown: stops accepting, closes idle connections, and
    /// lets in-flight responses finish within the configured grace period, after
    /// which [`handle_timeouts`](Server::handle_timeouts) closes what is left.
    /// A connection closes after the response in flight (with `Connection:
    /// close`): requests pipelined behind it get no answer, which tells the
    /// client to retry them elsewhere (RFC 9112 §9.3.2).
    pub fn shutdown(&mut self, registry: &Registry) {
        if self.drain_deadline.is_some() {
            return;
        }
        let now = self.tick();
        self.drain_deadline = Some(now.saturating_add(duration_ms(self.shared.config.grace_period)));
        self.shared.draining = true;
        for mut l in self.listeners.drain(..) {
            let _ = registry.deregister(&mut l.socket);
        }
        let keys: Vec<usize> = self.conns.iter().map(|(k, _)| k).collect();
        for key in keys {
            let Some(conn) = self.conns.get_mut(key) else { continue };
            if conn.is_idle() {
                self.close(key);
            } else {
                conn.stop_keep_alive();
            }
        }
    }

    /// Closes every connection at once.
    pub fn close_all(&mut self) {
        let keys: Vec<usize> = self.conns.iter().map(|(k, _)| k).collect();
        for key in keys {
            self.close(key);
        }
    }

    /// Whether a shutdown has begun and every connection is closed.
    pub fn is_drained(&self) -> bool {
        self.drain_deadline.is_some() && self.conns.is_empty()
    }

    /// The server's counters now: open connections by phase, totals of accepted
    /// connections, requests, responses by class, bytes, timeouts and errors.
    pub fn stats(&self) -> Stats {
        self.stats_handle().read()
    }

    /// A handle for reading the counters from elsewhere (another thread, a
    /// status page); it stays valid after the server is dropped.
    pub fn stats_handle(&self) -> StatsHandle {
        StatsHandle(self.shared.counters.clone())
    }

    /// Takes over a connection the host accepted itself. It is served like one
    /// from the server's own listeners (and counts against `max_connections`
    /// only as far as it is open; it is never refused). A `mio::net::TcpStream`
    /// converts with `.into()`.
    ///
    /// Fails with `InvalidInput` before [`register`](Server::register), and once
    /// a shutdown's grace period is over (during it, the connection is served
    /// one response and closed).
    pub fn accept_stream(&mut self, registry: &Registry, stream: std::net::TcpStream) -> io::Result<()> {
        if self.first_token.is_none() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "register the server before handing it connections",
            ));
        }
        if self.drain_deadline.is_some_and(|t| t <= self.shared.clock.peek()) {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "the server has shut down"));
        }
        stream.set_nonblocking(true)?;
        let peer = stream.peer_addr()?;
        self.tick_busy();
        let _ = stream.set_nodelay(true);
        crate::listen::notsent_lowat(&stream, self.shared.config.send_lowat);
        self.add_connection(registry, TcpStream::from_std(stream), peer);
        Ok(())
    }

    /// After a quiet spell: drops the spare in-flight states and their buffers
    /// (the next request allocates them again), lets the handlers drop what they
    /// hold for speed, and, if configured, hands the allocator's free pages back
    /// to the system (glibc keeps them otherwise), so that memory a burst took
    /// is returned once it is over.
    fn release_memory(&mut self) {
        self.shared.exchanges.trim(0);
        let router = &self.shared.router;
        if catch_unwind(AssertUnwindSafe(|| router.on_idle())).is_err() {
            log::error!("a handler panicked in on_idle");
        }
        #[cfg(all(target_os = "linux", target_env = "gnu"))]
        if self.shared.config.trim_allocator {
            // SAFETY: malloc_trim only releases free memory of glibc's allocator.
            unsafe {
                libc::malloc_trim(0);
            }
        }
    }

    /// [`tick`](Server::tick) for traffic: also puts off the quiet-time trim.
    fn tick_busy(&mut self) {
        self.tick();
        self.quiet_trim_at = Some(self.shared.now + QUIET_TRIM_MS);
    }

    fn tick(&mut self) -> Millis {
        let now = self.shared.clock.tick();
        self.shared.now = now;
        self.shared.date.update(now);
        now
    }

    /// Applies the outcome of driving connection `key`: close it, or update its
    /// interest and deadline.
    /// `before` is the phase the connection was in (and counted in) before it was driven.
    fn settle(&mut self, registry: &Registry, key: usize, flow: Flow, before: Phase) {
        let Some(conn) = self.conns.get_mut(key) else { return };
        self.shared.counters.moved(before, conn.phase());
        if flow == Flow::Close {
            return self.close(key);
        }
        let gen = conn.gen;
        if let Some(interest) = conn.interest_change() {
            let token = conn_token(self.first_token, key, gen);
            if let Err(e) = registry.reregister(conn.stream(), token, interest) {
                log::error!("reregistering a connection: {e}");
                return self.close(key);
            }
        }
        if let Some(at) = conn.take_delay_deadline() {
            self.delays.push(Reverse((at, key, gen)));
        }
        if let Some(kind) = conn.arm.take() {
            self.timers.arm(&mut self.conns, key, kind, self.shared.now);
        }
    }

    fn close(&mut self, key: usize) {
        self.timers.unlink(&mut self.conns, key);
        if let Some(mut conn) = self.conns.try_remove(key) {
            self.shared.counters.closed(conn.phase());
            conn.recycle(&mut self.shared);
        }
    }

    fn resume_accepting(&mut self, registry: &Registry) {
        if !std::mem::take(&mut self.accept_resume) {
            return;
        }
        for index in 0..self.listeners.len() {
            self.accept_from(registry, index);
        }
    }

    /// Accepts from listener `index` until it would block or file descriptors run
    /// out. At the connection limit, the oldest idle keep-alive connection is closed
    /// for a newcomer; with none idle, the newcomer is refused with a 503.
    fn accept_from(&mut self, registry: &Registry, index: usize) {
        while self.accept_paused_until.is_none() {
            let Some(listener) = self.listeners.get(index) else { return };
            let addr = listener.addr;
            match listener.socket.accept() {
                Ok((stream, peer)) => {
                    if self.conns.len() >= self.shared.config.max_connections {
                        let why = format_args!("connection limit reached: closing the oldest idle connection");
                        if !self.evict_oldest_idle(Pressure::TableEvict, why) && !self.evict_silent() {
                            self.pressure(
                                Pressure::TableFull,
                                format_args!("connection limit reached, none idle: refusing new connections (503)"),
                            );
                            self.shared.counters.refused();
                            refuse(stream);
                            continue;
                        }
                    }
                    if !cfg!(target_os = "linux") {
                        let _ = stream.set_nodelay(true);
                    }
                    self.add_connection(registry, stream, peer);
                }
                Err(e) => match e.raw_os_error() {
                    _ if e.kind() == io::ErrorKind::WouldBlock => return,
                    Some(libc::EINTR | libc::ECONNABORTED | libc::EPROTO | libc::EPERM) => {}
                    Some(libc::EMFILE | libc::ENFILE) => {
                        self.shared.counters.accept_error();
                        match self.out_of_descriptors(index) {
                            Room::Made => {}
                            Room::NoneWaiting => return,
                            Room::None => {
                                self.pressure(
                                    Pressure::AcceptPaused,
                                    format_args!("accept on {addr}: {e}; pausing accepts"),
                                );
                                self.accept_paused_until = Some(self.shared.now + ACCEPT_BACKOFF_MS);
                            }
                        }
                    }
                    Some(libc::ENOBUFS | libc::ENOMEM) => {
                        self.shared.counters.accept_error();
                        self.pressure(Pressure::AcceptPaused, format_args!("accept on {addr}: {e}; pausing accepts"));
                        self.accept_paused_until = Some(self.shared.now + ACCEPT_BACKOFF_MS);
                    }
                    _ => {
                        self.shared.counters.accept_error();
                        log::error!("accept on {addr}: {e}");
                        self.accept_paused_until = Some(self.shared.now + ACCEPT_BACKOFF_MS);
                    }
                },
            }
        }
    }

    /// Closes the oldest idle keep-alive connection to make room, logging `why`;
    /// false when no connection is idle.
    fn evict_oldest_idle(&mut self, kind: Pressure, why: std::fmt::Arguments<'_>) -> bool {
        let Some(oldest) = self.timers.oldest(TimerKind::Idle) else { return false };
        self.evict(oldest, kind, why);
        true
    }

    /// Closes connection `key` to make room, logging `why` and counting it.
    fn evict(&mut self, key: usize, kind: Pressure, why: std::fmt::Arguments<'_>) {
        self.pressure(kind, why);
        self.shared.counters.evicted();
        self.close(key);
    }

    /// Closes the connection that has waited longest for a request without
    /// sending a byte of it, if that is `SILENT_MS` or more; false when there is
    /// none. At a limit, clients that connect and send nothing then keep others
    /// out for a second, not for the whole header timeout. (Those that have sent
    /// part of a request are kept: they may be slow, not idle.)
    fn evict_silent(&mut self) -> bool {
        let header_ms = duration_ms(self.shared.config.header_timeout);
        let waited = |c: &Conn| self.shared.now.saturating_sub(c.link().armed().1.saturating_sub(header_ms));
        let silent = self
            .timers
            .in_order(&self.conns, TimerKind::Header)
            .take(SILENT_LOOKED_AT)
            .take_while(|(_, c)| waited(c) >= SILENT_MS)
            .find(|(_, c)| c.is_idle())
            .map(|(key, _)| key);
        let Some(key) = silent else { return false };
        let why = format_args!("at a limit: closing the connection that has sent nothing longest");
        self.evict(key, Pressure::SilentEvict, why);
        true
    }

    /// Out of file descriptors while a client may be waiting on listener `index`:
    /// makes room by closing the oldest idle keep-alive connection, or else accepts
    /// the client on the reserve descriptor and refuses it with a 503.
    fn out_of_descriptors(&mut self, index: usize) -> Room {
        let why = format_args!("out of file descriptors: closing the oldest idle connection");
        if self.evict_oldest_idle(Pressure::FdEvict, why) || self.evict_silent() {
            return Room::Made;
        }
        let Some(reserve) = self.reserve_fd.take() else { return Room::None };
        drop(reserve);
        let accepted = self.listeners.get(index).map(|l| l.socket.accept());
        let waiting = !matches!(&accepted, Some(Err(e)) if e.kind() == io::ErrorKind::WouldBlock);
        let refused = match accepted {
            Some(Ok((stream, _))) => {
                refuse(stream);
                true
            }
            _ => false,
        };
        // The refused socket is closed by now: its descriptor becomes the reserve again.
        self.reserve_fd = std::fs::File::open("/dev/null").ok();
        if refused {
            self.pressure(Pressure::FdRefuse, format_args!("out of file descriptors: refusing new connections (503)"));
            self.shared.counters.refused();
        }
        match (refused, self.reserve_fd.is_some()) {
            (true, true) => Room::Made,
            // Nobody in the backlog: the next one arrives with a readiness event.
            (false, true) if !waiting => Room::NoneWaiting,
            _ => Room::None,
        }
    }

    /// Serves a new connection at once (its request has usually arrived with it)
    /// and registers it only if it has to wait: a connection answered and closed
    /// in one go never touches epoll.
    fn add_connection(&mut self, registry: &Registry, stream: TcpStream, peer: SocketAddr) {
        let gen = self.next_gen;
        self.next_gen = gen.wrapping_add(1) & GEN_MASK;
        let key = self.conns.insert(Conn::new(stream, peer, gen));
        let Some(conn) = self.conns.get_mut(key) else { return };
        let before = conn.phase();
        self.shared.counters.accepted(before);
        if key >> KEY_BITS != 0 {
            // More connections than a token can name (only where usize is 32 bits).
            self.pressure(Pressure::TableFull, format_args!("too many connections for the token space: closing"));
            return self.close(key);
        }
        let flow = conn.drive(&mut self.shared);
        if flow == Flow::Close {
            self.shared.counters.moved(before, conn.phase());
            return self.close(key);
        }
        let interest = conn.register_interest();
        if let Err(e) = registry.register(conn.stream(), conn_token(self.first_token, key, gen), interest) {
            log::error!("registering a connection from {peer}: {e}");
            self.shared.counters.moved(before, conn.phase());
            return self.close(key);
        }
        self.settle(registry, key, flow, before);
    }

    /// Logs resource pressure at warn level, at most once per second.
    fn pressure(&mut self, kind: Pressure, message: std::fmt::Arguments<'_>) {
        if once_a_second(&mut self.last_pressure_warning[kind as usize], self.shared.now) {
            log::warn!("{message}");
        }
    }
}

/// Answers a client accepted only to be refused with a 503, and closes it.
fn refuse(mut stream: TcpStream) {
    // Best effort: the socket is new, so its send buffer has room for this.
    // Reading what the request sent so far keeps the close from resetting the
    // connection before the answer is read.
    let _ = io::Read::read(&mut stream, &mut [0; 2048]);
    let _ = io::Write::write(&mut stream, REFUSAL);
    let _ = stream.shutdown(std::net::Shutdown::Write);
}

/// Kinds of resource pressure, each logged at most once a second.
#[derive(Clone, Copy)]
enum Pressure {
    TableFull,
    TableEvict,
    AcceptPaused,
    FdEvict,
    FdRefuse,
    SilentEvict,
}
const PRESSURE_KINDS: usize = 6;

/// What running out of file descriptors left room for.
enum Room {
    /// A descriptor was freed, or the waiting client refused: accept again.
    Made,
    /// No client is waiting: wait for the listener's next event.
    NoneWaiting,
    /// Nothing could be done: pause accepting for a while.
    None,
}

/// The largest generation (they count up from 0 and wrap).
const GEN_MASK: u16 = ((1u32 << GEN_BITS) - 1) as u16;

/// The token of connection `key` in its `gen`eration, for a registered server.
fn conn_token(first_token: Option<usize>, key: usize, gen: u16) -> Token {
    Token(first_token.unwrap_or_default() + LISTENER_TOKENS + (usize::from(gen) << KEY_BITS | key))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_quiet_spell_drops_every_spare_in_flight_state() {
        let mut server = Server::new(Config::default(), Router::new());
        for _ in 0..POOL_SPARE_TRIMMED + 3 {
            server.shared.exchanges.give(Box::default());
        }
        server.shared.exchanges.trim(POOL_SPARE_TRIMMED);
        assert_eq!(server.shared.exchanges.spare(), POOL_SPARE_TRIMMED, "trimmed under traffic");
        server.release_memory();
        assert_eq!(server.shared.exchanges.spare(), 0, "kept after a quiet spell");
    }
}
