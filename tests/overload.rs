//! Overload, against the built binary: a burst of 20,000 connections into a small
//! connection table, a table full of idle keep-alive connections taken over by many
//! more clients, and running out of file descriptors. Each test checks that the
//! server stays responsive, sheds the oldest idle connections first, logs pressure
//! at most once a second, keeps its memory bounded, and recovers when the load ends.
//!
//! The tests run one at a time (they measure the server's descriptors and memory,
//! and the burst needs most of this process's descriptors).

mod common;
mod process;

use common::*;
use process::*;

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::process::CommandExt;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use mio::{Events, Interest, Poll, Token};
use slab::Slab;

const BIN: &str = env!("CARGO_BIN_EXE_spindle");

/// How long a client may wait for an answer, or for being refused, under overload.
const PROMPT: Duration = Duration::from_secs(2);

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn path_str(dir: &tempfile::TempDir) -> &str {
    dir.path().to_str().unwrap()
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut)
}

/// The body of `/index.html` in [`site`].
const INDEX_BODY: &str = "<!DOCTYPE html><title>home</title>hello\n";

/// How one fresh connection with a `Connection: close` GET fared.
#[derive(Debug, Clone)]
enum Probe {
    /// A complete response with this status.
    Answered(u16),
    /// Refused: connection refused, or closed or reset before any response byte.
    Refused(String),
    /// Neither within the time allowed.
    Late(String),
}

impl std::fmt::Display for Probe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Probe::Answered(status) => write!(f, "answered {status}"),
            Probe::Refused(how) => write!(f, "refused ({how})"),
            Probe::Late(what) => write!(f, "late ({what})"),
        }
    }
}

/// A `GET path` on a new connection, each step bounded by `limit`; how it went and
/// how long it took.
fn probe(addr: SocketAddr, path: &str, limit: Duration) -> (Probe, Duration) {
    let t = Instant::now();
    let outcome = (|| {
        let mut s = match TcpStream::connect_timeout(&addr, limit) {
            Ok(s) => s,
            Err(e) if is_timeout(&e) => return Probe::Late(format!("connect: {e}")),
            Err(e) => return Probe::Refused(format!("connect: {e}")),
        };
        let left = limit.saturating_sub(t.elapsed()).max(ms(1));
        s.set_read_timeout(Some(left)).unwrap();
        s.set_write_timeout(Some(left)).unwrap();
        let req = format!("GET {path} HTTP/1.1\r\nHost: probe\r\nConnection: close\r\n\r\n");
        if let Err(e) = s.write_all(req.as_bytes()) {
            return if is_timeout(&e) {
                Probe::Late(format!("write: {e}"))
            } else {
                Probe::Refused(format!("write: {e}"))
            };
        }
        let mut data = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            match s.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => data.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if is_timeout(&e) => return Probe::Late(format!("read after {} bytes: {e}", data.len())),
                Err(e) if data.is_empty() => return Probe::Refused(format!("read: {e}")),
                Err(e) => return Probe::Late(format!("reset after {} bytes: {e}", data.len())),
            }
        }
        if data.is_empty() {
            return Probe::Refused("closed without a response".into());
        }
        match response_len(&data) {
            Some(len) if len == data.len() => {
                Probe::Answered(std::str::from_utf8(&data[9..12]).unwrap().parse().unwrap())
            }
            _ => Probe::Late(format!("incomplete response: {:?}", String::from_utf8_lossy(&data))),
        }
    })();
    (outcome, t.elapsed())
}

/// The length of the complete response at the start of `data`, once its head and
/// its `Content-Length` body have arrived.
fn response_len(data: &[u8]) -> Option<usize> {
    let head_end = data.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let head = std::str::from_utf8(&data[..head_end]).ok()?;
    let len: usize = head
        .lines()
        .find_map(|l| l.split_once(':').filter(|(n, _)| n.eq_ignore_ascii_case("content-length")))?
        .1
        .trim()
        .parse()
        .ok()?;
    (data.len() >= head_end + len).then_some(head_end + len)
}

/// A keep-alive GET on an open connection.
fn keep_alive_get(c: &mut BufReader<TcpStream>, path: &str) -> io::Result<Response> {
    c.get_mut().write_all(format!("GET {path} HTTP/1.1\r\nHost: test\r\n\r\n").as_bytes())?;
    if c.fill_buf()?.is_empty() {
        return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "closed instead of answering"));
    }
    Ok(read_response(c, false))
}

/// A new keep-alive connection that has completed one GET of `/index.html` and is now idle.
fn idle_connection(addr: SocketAddr) -> BufReader<TcpStream> {
    let mut c = BufReader::new(connect(addr));
    let r = keep_alive_get(&mut c, "/index.html").expect("first GET on a new connection");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("connection"), None, "the server did not keep the connection alive");
    c
}

/// Whether the server has closed `c` (EOF or reset), waiting up to `limit`; `false`
/// if it is still open. Unexpected bytes fail the test.
fn closed_by_server(c: &mut BufReader<TcpStream>, limit: Duration) -> bool {
    c.get_mut().set_read_timeout(Some(limit)).unwrap();
    let mut buf = [0u8; 512];
    match c.read(&mut buf) {
        Ok(0) => true,
        Ok(n) => panic!("unsolicited bytes on an idle connection: {:?}", String::from_utf8_lossy(&buf[..n])),
        Err(e) if is_timeout(&e) => false,
        Err(_) => true,
    }
}

/// The server's open descriptors once it has settled after a warm-up request:
/// the count before any connection, which the warm-up must leave unchanged.
fn settled_baseline(p: &Spawned) -> usize {
    let pid = p.child.id();
    let before = fd_count(pid);
    assert!(before > 0, "cannot count the server's file descriptors");
    assert_eq!(get(p.addr(), "/index.html").status, 200);
    assert!(
        wait_for(PROMPT, || fd_count(pid) <= before),
        "server fds {} after one GET, {before} before",
        fd_count(pid)
    );
    before
}

/// The server's pressure warnings in `stderr`: fails if two share a (one-second)
/// timestamp; returns how many there are.
fn assert_pressure_rate_limited(stderr: &str, needle: &str) -> usize {
    let per_second = warnings_per_second(stderr, needle);
    let crowded: Vec<_> = per_second.iter().filter(|(_, &n)| n > 1).collect();
    assert!(crowded.is_empty(), "more than one {needle:?} warning in a second: {crowded:?}\n{stderr}");
    per_second.values().sum()
}

// ---- a burst of 20,000 connections ---------------------------------------------------------

const BURST: usize = 20_000;
const BURST_TABLE: usize = 1000;

/// Burst clients in flight at once (connecting, or waiting for an answer or to be
/// cut off): below the listen backlog (1024), so that the kernel never drops a
/// handshake and every wait is the server's doing.
const BURST_IN_FLIGHT: usize = 512;

/// What a burst client does once connected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// One keep-alive GET, then stays open (idle) until the server closes it.
    KeepAlive,
    /// One GET with `Connection: close`.
    Close,
    /// Sends half a request head and waits to be cut off (Slowloris).
    Partial,
}

fn kind_of(i: usize) -> Kind {
    match i % 10 {
        0..=5 => Kind::KeepAlive,
        6 => Kind::Partial,
        _ => Kind::Close,
    }
}

fn request_of(kind: Kind) -> &'static [u8] {
    match kind {
        Kind::KeepAlive => b"GET /index.html HTTP/1.1\r\nHost: burst\r\n\r\n",
        Kind::Close => b"GET /index.html HTTP/1.1\r\nHost: burst\r\nConnection: close\r\n\r\n",
        Kind::Partial => b"GET /index.html HTTP/1.1\r\nHost: burst\r\nX-Slow: ",
    }
}

/// What happened to one burst client.
#[derive(Clone, Copy, Debug, Default)]
struct Outcome {
    started: Option<Instant>,
    answered: Option<Instant>,
    /// The server closed (EOF) or reset the connection; `true` for a reset.
    ended: Option<(Instant, bool)>,
}

impl Outcome {
    /// Whether the client no longer waits for anything from the server.
    fn settled(&self, kind: Kind) -> bool {
        match kind {
            Kind::KeepAlive => self.answered.is_some() || self.ended.is_some(),
            Kind::Close | Kind::Partial => self.ended.is_some(),
        }
    }
}

struct Client {
    index: usize,
    stream: mio::net::TcpStream,
    sent: bool,
    got: Vec<u8>,
}

/// Opens [`BURST`] client connections as fast as the server takes them (at most
/// [`BURST_IN_FLIGHT`] unsettled, at most `open_cap` open) and drives them. Returns
/// the outcomes, the clients still open at the end (answered keep-alive
/// connections), and a failure description if `limit` ran out first.
fn run_burst(addr: SocketAddr, open_cap: usize, limit: Duration) -> (Vec<Outcome>, Slab<Client>, Option<String>) {
    let mut poll = Poll::new().unwrap();
    let mut events = Events::with_capacity(4096);
    let mut clients: Slab<Client> = Slab::with_capacity(open_cap);
    let mut outcomes = vec![Outcome::default(); BURST];
    let mut next = 0;
    let mut in_flight = 0;
    let began = Instant::now();
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        while next < BURST && clients.len() < open_cap && in_flight < BURST_IN_FLIGHT {
            let mut stream = match mio::net::TcpStream::connect(addr) {
                Ok(s) => s,
                Err(e) => panic!("connect #{next} failed locally: {e}"),
            };
            let key = clients.vacant_key();
            poll.registry().register(&mut stream, Token(key), Interest::READABLE | Interest::WRITABLE).unwrap();
            clients.insert(Client { index: next, stream, sent: false, got: Vec::new() });
            outcomes[next].started = Some(Instant::now());
            next += 1;
            in_flight += 1;
        }
        poll.poll(&mut events, Some(ms(5))).unwrap();
        let now = Instant::now();
        for ev in events.iter() {
            let key = ev.token().0;
            let Some(c) = clients.get_mut(key) else { continue };
            let index = c.index;
            let kind = kind_of(index);
            let was_settled = outcomes[index].settled(kind);
            let mut ended = None;
            if ev.is_writable() && !c.sent {
                match c.stream.take_error() {
                    Ok(Some(_)) | Err(_) => ended = Some(true),
                    Ok(None) if c.stream.peer_addr().is_ok() => {
                        let req = request_of(kind);
                        match c.stream.write(req) {
                            Ok(n) => {
                                assert_eq!(n, req.len(), "a short write of a small request");
                                c.sent = true;
                            }
                            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                            Err(_) => ended = Some(true),
                        }
                    }
                    Ok(None) => {} // still connecting
                }
            }
            if ended.is_none() && (ev.is_readable() || ev.is_read_closed() || ev.is_error()) {
                loop {
                    match c.stream.read(&mut buf) {
                        Ok(0) => {
                            ended = Some(false);
                            break;
                        }
                        Ok(n) => {
                            c.got.extend_from_slice(&buf[..n]);
                            if outcomes[c.index].answered.is_none() && kind != Kind::Partial {
                                if let Some(len) = response_len(&c.got) {
                                    assert!(
                                        c.got.starts_with(b"HTTP/1.1 200 ")
                                            && c.got[..len].ends_with(INDEX_BODY.as_bytes()),
                                        "burst client {} got {:?}",
                                        c.index,
                                        String::from_utf8_lossy(&c.got)
                                    );
                                    outcomes[c.index].answered = Some(now);
                                }
                            }
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(_) => {
                            ended = Some(true);
                            break;
                        }
                    }
                }
            }
            if kind == Kind::Partial && !c.got.is_empty() {
                assert!(
                    c.got.starts_with(b"HTTP/1.1 408 "),
                    "Slowloris client got {:?}",
                    String::from_utf8_lossy(&c.got)
                );
            }
            if let Some(reset) = ended {
                outcomes[c.index].ended = Some((now, reset));
                let mut c = clients.remove(key);
                let _ = poll.registry().deregister(&mut c.stream);
            }
            if !was_settled && outcomes[index].settled(kind) {
                in_flight -= 1;
            }
        }
        if next == BURST && in_flight == 0 {
            return (outcomes, clients, None);
        }
        if began.elapsed() > limit {
            let failure = format!("after {limit:?}: {next} of {BURST} opened, {in_flight} still waiting");
            return (outcomes, clients, Some(failure));
        }
    }
}

#[test]
fn burst_of_20000_connections_is_answered_promptly_with_bounded_memory_and_full_recovery() {
    let _serial = serial();
    let nofile = raise_nofile();
    if nofile < 4096 {
        eprintln!("SKIPPED: RLIMIT_NOFILE hard limit {nofile} is below 4096; cannot run a burst");
        return;
    }
    // The server is another process; this one needs a descriptor per open client.
    let open_cap = (nofile as usize - 256).min(BURST);

    let root = site();
    let table = BURST_TABLE.to_string();
    let p = Spawned::start(
        &[
            "--listen",
            "127.0.0.1:0",
            "--max-connections",
            &table,
            "--header-timeout",
            "1",
            "--idle-timeout",
            "30",
            "--access-log",
            "off",
            path_str(&root),
        ],
        1,
    );
    let addr = p.addr();
    let pid = p.child.id();
    let baseline_fds = settled_baseline(&p);
    let baseline_rss = rss_kib(pid);

    // The probe: a fresh connection with one GET every 100 ms while the burst lasts.
    let stop = Arc::new(AtomicBool::new(false));
    let prober = {
        let stop = stop.clone();
        thread::spawn(move || {
            let mut seen = Vec::new();
            while !stop.load(Ordering::SeqCst) {
                seen.push(probe(addr, "/style.css", PROMPT + ms(500)));
                thread::sleep(ms(100));
            }
            seen
        })
    };
    // The server's descriptors, sampled like its memory.
    let fd_peak = {
        let stop = stop.clone();
        thread::spawn(move || {
            let mut peak = 0;
            while !stop.load(Ordering::SeqCst) {
                peak = peak.max(fd_count(pid));
                thread::sleep(ms(20));
            }
            peak
        })
    };
    let rss = RssSampler::start(pid);

    let began = Instant::now();
    let (outcomes, clients, failure) = run_burst(addr, open_cap, Duration::from_secs(30));
    let took = began.elapsed();
    stop.store(true, Ordering::SeqCst);
    let probes = prober.join().unwrap();
    let fd_peak = fd_peak.join().unwrap();
    let rss_peak = rss.peak();
    // VmHWM can lag behind a peak that has passed: take the larger of it and the samples.
    let hwm = hwm_kib(pid).max(rss_peak);

    // Latencies, from starting to connect to the answer (or to being cut off).
    let latency = |o: &Outcome, at: Instant| at.duration_since(o.started.unwrap());
    let mut answered: Vec<Duration> = Vec::new();
    let mut refused = 0;
    let mut slow_cut: Vec<Duration> = Vec::new();
    for (i, o) in outcomes.iter().enumerate() {
        match (kind_of(i), o.answered, o.ended) {
            (Kind::Partial, _, Some((at, _))) => slow_cut.push(latency(o, at)),
            (_, Some(at), _) => answered.push(latency(o, at)),
            (_, None, Some(_)) => refused += 1,
            _ => {}
        }
    }
    answered.sort();
    slow_cut.sort();
    let pct = |v: &[Duration], p: usize| v.get((v.len() * p / 100).min(v.len().saturating_sub(1))).copied();
    let still_open = clients.len();
    let evicted =
        outcomes.iter().enumerate().filter(|(i, o)| kind_of(*i) == Kind::KeepAlive && o.ended.is_some()).count();
    let probe_max = probes.iter().map(|(_, d)| *d).max().unwrap_or_default();
    let probes_answered = probes.iter().filter(|(o, _)| matches!(o, Probe::Answered(200))).count();
    let stderr = p.stderr();
    let pressure = warnings_per_second(&stderr, "connection limit reached").values().sum::<usize>();
    eprintln!(
        "burst: {BURST} connections in {took:?} (table {BURST_TABLE}); answered {} (p50 {:?}, p99 {:?}, max {:?}), \
         refused {refused}, Slowloris cut off {} (max {:?}), evicted idle {evicted}, open at end {still_open}; \
         probes {} answered of {} (max {probe_max:?}); server fds {baseline_fds} -> peak {fd_peak}; \
         RSS {baseline_rss} KiB -> peak sampled {rss_peak} KiB, VmHWM {hwm} KiB; pressure warnings {pressure}",
        answered.len(),
        pct(&answered, 50),
        pct(&answered, 99),
        answered.last(),
        slow_cut.len(),
        slow_cut.last(),
        probes_answered,
        probes.len(),
    );
    if let Some(failure) = failure {
        panic!("burst did not settle: {failure}\n{stderr}");
    }

    // Every client that asked was answered, promptly; none was left hanging.
    let requesters = (0..BURST).filter(|&i| kind_of(i) != Kind::Partial).count();
    assert_eq!(answered.len() + refused, requesters, "requests neither answered nor refused");
    let late = answered.iter().filter(|d| **d > PROMPT).count();
    assert_eq!(late, 0, "{late} burst requests answered after more than {PROMPT:?} (max {:?})", answered.last());
    // Slowloris clients are cut off at the header deadline (1 s), give or take the wait
    // to be accepted. The server arms deadlines from its clock as read at the start of
    // a wakeup, so under a burst one can fire a wakeup's length early (55 ms seen).
    assert_eq!(slow_cut.len(), BURST / 10, "Slowloris clients not cut off");
    assert!(
        slow_cut[0] >= ms(500) && slow_cut.last().is_some_and(|d| *d <= PROMPT + ms(1000)),
        "Slowloris clients cut off after {:?} to {:?}",
        slow_cut[0],
        slow_cut.last()
    );
    // The probe never waited for long, and was mostly answered rather than refused.
    for (outcome, took) in &probes {
        assert!(!matches!(outcome, Probe::Late(_)) && *took <= PROMPT, "probe: {outcome} after {took:?}");
    }
    assert!(probes_answered * 10 >= probes.len() * 9, "probes answered: {probes_answered} of {}", probes.len());

    // The table never grew past the limit; idle connections were shed oldest first:
    // every evicted one went idle before (within the client's event lag) every one left.
    assert!(fd_peak <= baseline_fds + BURST_TABLE + 8, "server fds peaked at {fd_peak}, baseline {baseline_fds}");
    assert!(evicted > 0, "no idle keep-alive connection was closed to make room");
    let newest_evicted = outcomes
        .iter()
        .enumerate()
        .filter(|(i, o)| kind_of(*i) == Kind::KeepAlive && o.ended.is_some())
        .filter_map(|(_, o)| o.answered)
        .max()
        .unwrap();
    let oldest_kept = clients.iter().filter_map(|(_, c)| outcomes[c.index].answered).min();
    if let Some(oldest_kept) = oldest_kept {
        assert!(
            newest_evicted <= oldest_kept + ms(250),
            "an idle connection answered {:?} after the oldest survivor was closed first",
            newest_evicted.duration_since(oldest_kept)
        );
    }

    // Memory: an idle keep-alive connection is under 100 bytes (say 1 KiB with its
    // slab slot and epoll entry); a connection with a request in flight holds a
    // 12 KiB read buffer (8 KiB head + 4 KiB) and, while sending, a 32 KiB write
    // buffer; at most BURST_IN_FLIGHT are in flight and the pool keeps 64 spares.
    // Twice that, for the allocator, is the bound above the idle server.
    let budget_kib = (BURST_TABLE + BURST_IN_FLIGHT * 12 + 64 * 44) as u64;
    assert!(
        hwm <= baseline_rss + 2 * budget_kib,
        "peak RSS {hwm} KiB; baseline {baseline_rss} KiB, budget {budget_kib} KiB (x2 allowed)"
    );

    // At most one pressure warning a second, and the burst did hit the limit.
    let warned = assert_pressure_rate_limited(&stderr, "connection limit reached");
    assert!(warned >= 1, "no warning about the connection limit:\n{stderr}");
    assert!(warned as u64 <= took.as_secs() + 2, "{warned} pressure warnings in {took:?}");
    let errors = error_lines(&stderr);
    assert!(errors.is_empty(), "errors logged during the burst:\n{}", errors.join("\n"));

    // Recovery: with every client gone, the server is back to its baseline descriptors.
    drop(clients);
    assert!(
        wait_for(Duration::from_secs(10), || fd_count(pid) <= baseline_fds),
        "server fds {} after the burst, baseline {baseline_fds}",
        fd_count(pid)
    );
    let r = get(addr, "/index.html");
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), INDEX_BODY);
}

// ---- a full table of idle keep-alive connections --------------------------------------

#[test]
fn full_table_of_idle_connections_makes_room_oldest_first_for_many_more_clients() {
    let _serial = serial();
    const TABLE: usize = 50;
    let root = site();
    let table = TABLE.to_string();
    let p = Spawned::start(
        &["--listen", "127.0.0.1:0", "--max-connections", &table, "--idle-timeout", "30", path_str(&root)],
        1,
    );
    let addr = p.addr();
    let pid = p.child.id();
    let baseline = settled_baseline(&p);

    // A full table, gone idle in order.
    let mut first: Vec<_> = (0..TABLE).map(|_| idle_connection(addr)).collect();
    assert_eq!(fd_count(pid), baseline + TABLE);

    // Each newcomer takes the place of the oldest idle connection, and is served at once.
    let mut newcomers = Vec::new();
    for k in 0..30 {
        let t = Instant::now();
        let c = idle_connection(addr);
        assert!(t.elapsed() < PROMPT, "newcomer {k} served after {:?}", t.elapsed());
        assert!(closed_by_server(&mut first[k], PROMPT), "idle connection {k} not closed for newcomer {k}");
        if k + 1 < TABLE {
            assert!(!is_closed_now(&first[k + 1]), "idle connection {} closed out of turn", k + 1);
        }
        newcomers.push(c);
    }
    // The 20 that were not the oldest still work.
    for (k, c) in first.iter_mut().enumerate().skip(30) {
        c.get_mut().set_read_timeout(Some(PROMPT)).unwrap();
        let r = keep_alive_get(c, "/style.css").unwrap_or_else(|e| panic!("idle connection {k}: {e}"));
        assert_eq!(r.status, 200);
    }

    // Then ten times the table at once, from four threads: all served promptly.
    let crowd: Vec<_> = (0..4)
        .map(|_| {
            thread::spawn(move || {
                (0..TABLE * 10 / 4)
                    .map(|_| {
                        let t = Instant::now();
                        let c = idle_connection(addr);
                        (c, t.elapsed())
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut crowd: Vec<_> = crowd.into_iter().flat_map(|t| t.join().expect("a crowd client failed")).collect();
    let slowest = crowd.iter().map(|(_, d)| *d).max().unwrap();
    assert!(slowest < PROMPT, "a crowd client waited {slowest:?}");

    // Everything older than the crowd is gone, and only a table's worth is left open.
    assert!(first.iter_mut().chain(newcomers.iter_mut()).all(|c| closed_by_server(c, PROMPT)));
    let mut open = 0;
    let settled = wait_for(PROMPT, || {
        open = crowd.iter_mut().filter(|(c, _)| !is_closed_now(c)).count();
        open <= TABLE
    });
    assert!(settled, "{open} crowd connections still open, table {TABLE}");
    assert!(open >= TABLE / 2, "only {open} crowd connections left open, table {TABLE}");
    assert!(fd_count(pid) <= baseline + TABLE, "server fds {}, baseline {baseline}", fd_count(pid));

    let warned = assert_pressure_rate_limited(&p.stderr(), "connection limit reached");
    assert!(warned >= 1, "no pressure warning:\n{}", p.stderr());

    drop(crowd);
    assert!(wait_for(PROMPT, || fd_count(pid) <= baseline), "server fds {} after, baseline {baseline}", fd_count(pid));
    assert_eq!(get(addr, "/index.html").status, 200);
}

#[test]
fn at_the_limit_connections_that_send_nothing_give_way_and_slow_requests_are_kept() {
    let _serial = serial();
    const TABLE: usize = 20;
    let root = site();
    let table = TABLE.to_string();
    let p = Spawned::start(
        &["--listen", "127.0.0.1:0", "--max-connections", &table, "--header-timeout", "30", path_str(&root)],
        1,
    );
    let addr = p.addr();
    let pid = p.child.id();
    let baseline = settled_baseline(&p);
    // The oldest connections have sent part of a request; the rest of the table and
    // more send nothing at all (and are handed over when TCP_DEFER_ACCEPT gives up).
    let mut busy: Vec<_> = (0..4).map(|_| busy_connection(addr)).collect();
    let _silent: Vec<_> = (0..TABLE + 10).map(|_| connect(addr)).collect();
    assert!(
        wait_for(Duration::from_secs(10), || fd_count(pid) >= baseline + TABLE),
        "table not full: {} fds, baseline {baseline}",
        fd_count(pid)
    );
    // A newcomer is answered once a silent connection has held its place for a
    // second, not refused until the 30 s header timeout; then each one at once.
    let (first, _) = wait_until_answered(addr);
    assert!(matches!(first, Probe::Answered(200)), "newcomer at a table of silent connections: {first}");
    for k in 0..10 {
        let (outcome, took) = probe(addr, "/style.css", PROMPT);
        assert!(matches!(outcome, Probe::Answered(200)), "newcomer {k}: {outcome} after {took:?}");
    }
    // The slow requests were passed over, and are answered when they end.
    for (i, c) in busy.iter_mut().enumerate() {
        c.get_mut().write_all(b"\r\n").unwrap();
        c.get_mut().set_read_timeout(Some(PROMPT)).unwrap();
        let r = read_response(c, false);
        assert_eq!((r.status, r.text().as_str()), (200, INDEX_BODY), "slow request {i}");
    }
    let warned = assert_pressure_rate_limited(&p.stderr(), "closing the connection that has sent nothing longest");
    assert!(warned >= 1, "{}", p.stderr());
}

/// Probes until a probe is answered or five seconds have passed: the last outcome.
fn wait_until_answered(addr: SocketAddr) -> (Probe, Duration) {
    let start = Instant::now();
    loop {
        let (outcome, took) = probe(addr, "/style.css", PROMPT);
        if matches!(outcome, Probe::Answered(200)) || start.elapsed() > Duration::from_secs(5) {
            return (outcome, took);
        }
        thread::sleep(ms(50));
    }
}

/// Whether the server has closed `c` (EOF or reset) by now, without waiting.
fn is_closed_now(c: &BufReader<TcpStream>) -> bool {
    let s = c.get_ref();
    s.set_nonblocking(true).unwrap();
    let mut buf = [0u8; 512];
    let closed = match (&*s).read(&mut buf) {
        Ok(0) => true,
        Ok(n) => panic!("unsolicited bytes on an idle connection: {:?}", String::from_utf8_lossy(&buf[..n])),
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => false,
        Err(_) => true,
    };
    s.set_nonblocking(false).unwrap();
    closed
}

// ---- running out of file descriptors ----------------------------------------------------

/// The descriptor limit the server runs with in these tests.
const FD_LIMIT: u64 = 64;

/// Starts the binary with RLIMIT_NOFILE (soft and hard) at [`FD_LIMIT`] on a site with a
/// 1 MiB `/big.bin` (too big for its contents to be cached: its first GET opens it,
/// and the descriptor is then kept open).
fn start_with_few_fds(extra: &[&str]) -> (Spawned, tempfile::TempDir) {
    let root = site();
    big_file(&root.path().join("big.bin"), 1 << 20);
    let mut cmd = Command::new(BIN);
    cmd.args(["--listen", "127.0.0.1:0"]).args(extra).arg(root.path());
    // SAFETY: setrlimit is async-signal-safe, and the closure allocates nothing.
    unsafe {
        cmd.pre_exec(|| {
            let limit = libc::rlimit { rlim_cur: FD_LIMIT, rlim_max: FD_LIMIT };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
    (Spawned::start_with(&mut cmd, 1), root)
}

/// Opens `n` connections that each send a keep-alive GET and never read.
fn flood(addr: SocketAddr, n: usize) -> Vec<TcpStream> {
    (0..n)
        .map(|_| {
            let mut s = connect(addr);
            s.write_all(b"GET /index.html HTTP/1.1\r\nHost: flood\r\n\r\n").unwrap();
            s
        })
        .collect()
}

/// A connection that has sent part of a request head: busy, never idle.
fn busy_connection(addr: SocketAddr) -> BufReader<TcpStream> {
    let mut s = connect(addr);
    s.write_all(b"GET /index.html HTTP/1.1\r\nHost: busy\r\n").unwrap();
    BufReader::new(s)
}

#[test]
fn out_of_file_descriptors_idle_connections_make_room_busy_ones_are_kept_and_newcomers_refused() {
    let _serial = serial();
    let (p, _root) = start_with_few_fds(&["--idle-timeout", "30", "--header-timeout", "30"]);
    let addr = p.addr();
    let pid = p.child.id();
    let baseline = settled_baseline(&p);
    // Busy connections, mid-request: never taken to make room.
    let mut held: Vec<_> = (0..4).map(|_| busy_connection(addr)).collect();

    // Three times more keep-alive clients than descriptors, each asking once and
    // then idle: each is answered promptly, the oldest idle ones closed to make room.
    let t = Instant::now();
    let flood: Vec<_> = flood(addr, 3 * FD_LIMIT as usize).into_iter().map(BufReader::new).collect();
    for (i, mut c) in flood.into_iter().enumerate() {
        c.get_mut().set_read_timeout(Some(PROMPT)).unwrap();
        let r = read_response(&mut c, false);
        assert_eq!((r.status, r.text().as_str()), (200, INDEX_BODY), "flood client {i}");
    }
    eprintln!("out of descriptors: {} keep-alive clients answered in {:?}", 3 * FD_LIMIT, t.elapsed());
    assert!(t.elapsed() < 2 * PROMPT, "the flood took {:?}", t.elapsed());
    for (i, c) in held.iter_mut().enumerate() {
        // The end of the head: the request these connections were in the middle of.
        c.get_mut().write_all(b"\r\n").unwrap();
        assert!(!c.fill_buf().unwrap().is_empty(), "busy connection {i} was closed");
        let r = read_response(c, false);
        assert_eq!((r.status, r.text().as_str()), (200, INDEX_BODY), "busy connection {i}");
    }

    // Every descriptor held by a busy connection: a newcomer is refused at once, with a 503.
    let busy: Vec<_> = (0..FD_LIMIT as usize).map(|_| busy_connection(addr)).collect();
    assert!(
        wait_for(PROMPT, || fd_count(pid) as u64 >= FD_LIMIT - 1),
        "not saturated: {} fds of {FD_LIMIT}",
        fd_count(pid)
    );
    for _ in 0..5 {
        let (outcome, took) = probe(addr, "/style.css", PROMPT);
        assert!(matches!(outcome, Probe::Answered(503)), "newcomer while saturated: {outcome} after {took:?}");
    }
    // Saturated and with no newcomers, the server sleeps.
    let cpu_before = cpu_time(pid);
    let quiet = Instant::now();
    thread::sleep(ms(1000));
    let cpu = cpu_time(pid) - cpu_before;
    assert!(
        cpu * 10 <= quiet.elapsed(),
        "server used {cpu:?} of CPU in {:?} while out of descriptors",
        quiet.elapsed()
    );

    let stderr = p.stderr();
    for needle in ["closing the oldest idle connection", "refusing new connections"] {
        let warned = assert_pressure_rate_limited(&stderr, needle);
        assert!(warned >= 1, "no warning {needle:?}:\n{stderr}");
    }
    let errors = error_lines(&stderr);
    assert!(errors.is_empty(), "errors logged while out of descriptors:\n{}", errors.join("\n"));

    // Once the busy clients leave, newcomers are served and the descriptors come back.
    drop(busy);
    let (outcome, _) = probe(addr, "/style.css", PROMPT);
    assert!(matches!(outcome, Probe::Answered(200)), "after the busy clients left: {outcome}");
    // The first connections were idle after their request when the busy ones came:
    // closed to make room.
    for (i, c) in held.iter_mut().enumerate() {
        assert!(closed_by_server(c, PROMPT), "idle connection {i} kept while newcomers were refused");
    }
    drop(held);
    assert!(
        wait_for(Duration::from_secs(5), || fd_count(pid) <= baseline),
        "server fds {} at the end, baseline {baseline}",
        fd_count(pid)
    );
}

#[test]
fn out_of_file_descriptors_a_new_client_is_answered_or_refused_promptly() {
    let _serial = serial();
    let (p, _root) = start_with_few_fds(&["--idle-timeout", "10"]);
    let addr = p.addr();
    let pid = p.child.id();
    // Every descriptor taken by a keep-alive connection that has been answered and is idle.
    let clients = flood(addr, 2 * FD_LIMIT as usize);
    assert!(
        wait_for(PROMPT, || fd_count(pid) as u64 >= FD_LIMIT - 1 && p.stderr().contains("out of file descriptors")),
        "not saturated: {} fds of {FD_LIMIT}\n{}",
        fd_count(pid),
        p.stderr()
    );
    // The startup warning promises that connections beyond the limit "will be refused";
    // the issue asks for an answer or a refusal, promptly, with the oldest idle
    // keep-alive connections closed first.
    let (outcome, took) = probe(addr, "/style.css", PROMPT);
    assert!(
        !matches!(outcome, Probe::Late(_)) && took <= PROMPT,
        "new client out of descriptors: {outcome} after {took:?} (idle timeout 10 s)"
    );
    drop(clients);
}

#[test]
fn out_of_file_descriptors_a_file_that_cannot_be_opened_is_answered_503_and_logged() {
    let _serial = serial();
    let (p, _root) = start_with_few_fds(&["--idle-timeout", "30", "--header-timeout", "30"]);
    let addr = p.addr();
    let pid = p.child.id();
    // Accepted while descriptors are left, in the middle of a request for a file
    // too big for the file cache (answering it opens the file).
    let mut asking = connect(addr);
    asking.write_all(b"GET /big.bin HTTP/1.1\r\nHost: late\r\n").unwrap();
    // Every other descriptor held by a busy connection.
    let busy: Vec<_> = (0..FD_LIMIT as usize).map(|_| busy_connection(addr)).collect();
    assert!(
        wait_for(PROMPT, || fd_count(pid) as u64 >= FD_LIMIT),
        "not saturated: {} fds of {FD_LIMIT}",
        fd_count(pid)
    );
    for _ in 0..3 {
        asking.write_all(b"\r\n").unwrap();
        let r = read_response(&mut BufReader::new(&asking), false);
        assert_error_page(&r, 503);
        asking.write_all(b"GET /big.bin HTTP/1.1\r\nHost: late\r\n").unwrap();
    }
    let stderr = p.stderr();
    let warned = assert_pressure_rate_limited(&stderr, "out of file descriptors opening \"big.bin\"; answering 503");
    assert!(warned >= 1, "the 503s were not logged:\n{stderr}");
    let errors = error_lines(&stderr);
    assert!(errors.is_empty(), "errors logged while out of descriptors:\n{}", errors.join("\n"));
    // With descriptors back, the same connection is served.
    drop(busy);
    assert!(wait_for(PROMPT, || fd_count(pid) as u64 <= FD_LIMIT / 2), "descriptors not released: {}", fd_count(pid));
    asking.write_all(b"\r\n").unwrap();
    let r = read_response(&mut BufReader::new(&asking), false);
    assert_eq!((r.status, r.body.len()), (200, 1 << 20));
}

#[test]
fn out_of_file_descriptors_cached_descriptors_make_room_for_another_file() {
    let _serial = serial();
    let (p, root) = start_with_few_fds(&["--idle-timeout", "30", "--header-timeout", "30"]);
    big_file(&root.path().join("other.bin"), 1 << 19);
    let addr = p.addr();
    let pid = p.child.id();
    let mut asking = BufReader::new(connect(addr));
    // Served once: its descriptor is kept open.
    asking.get_mut().write_all(b"GET /big.bin HTTP/1.1\r\nHost: late\r\n\r\n").unwrap();
    assert_eq!(read_response(&mut asking, false).status, 200);
    asking.get_mut().write_all(b"GET /other.bin HTTP/1.1\r\nHost: late\r\n").unwrap();
    let busy: Vec<_> = (0..FD_LIMIT as usize).map(|_| busy_connection(addr)).collect();
    assert!(
        wait_for(PROMPT, || fd_count(pid) as u64 >= FD_LIMIT),
        "not saturated: {} fds of {FD_LIMIT}",
        fd_count(pid)
    );
    // Asked at once (before a quiet spell would close the cached descriptor anyway).
    asking.get_mut().write_all(b"\r\n").unwrap();
    let r = read_response(&mut asking, false);
    assert_eq!((r.status, r.body.len()), (200, 1 << 19), "the cached descriptor did not make room");
    drop(busy);
    let stderr = p.stderr();
    assert!(!stderr.contains("out of file descriptors opening"), "{stderr}");
}
