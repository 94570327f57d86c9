//! Connection lifecycle over real sockets: the header, idle and send deadlines, the
//! connection limit, graceful shutdown on SIGTERM/SIGINT, running out of file
//! descriptors, the binary's command line, startup line and access log, and
//! connections churned fast enough to leave stale events behind.

mod common;

use common::*;

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use spindle::Config;

const MIB: u64 = 1 << 20;
const BIN: &str = env!("CARGO_BIN_EXE_spindle");

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut)
}

/// How a read loop ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    /// The peer closed cleanly.
    Eof,
    /// An error other than a timeout (reset, broken pipe).
    Reset,
    /// The read timeout expired with the connection still open.
    Timeout,
}

/// Reads until EOF, an error or the read timeout; returns the first `keep` bytes,
/// the total byte count, and how it ended.
fn drain<R: Read>(r: &mut R, keep: usize) -> (Vec<u8>, u64, End) {
    let mut kept = Vec::new();
    let mut total = 0u64;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match r.read(&mut buf) {
            Ok(0) => return (kept, total, End::Eof),
            Ok(n) => {
                total += n as u64;
                let room = keep.saturating_sub(kept.len()).min(n);
                kept.extend_from_slice(&buf[..room]);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if is_timeout(&e) => return (kept, total, End::Timeout),
            Err(_) => return (kept, total, End::Reset),
        }
    }
}

/// Reads a response head, leaving the body unread in `r`. Returns the status and
/// the lower-cased headers.
fn read_head<R: BufRead>(r: &mut R) -> (u16, Vec<(String, String)>) {
    let mut line = String::new();
    r.read_line(&mut line).expect("reading status line");
    assert!(line.starts_with("HTTP/1.1 "), "bad status line {line:?}");
    let status = line[9..12].parse().expect("status code");
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        r.read_line(&mut h).expect("reading header");
        if h == "\r\n" || h.is_empty() {
            break;
        }
        let (name, value) = h.trim_end().split_once(':').expect("header colon");
        headers.push((name.to_ascii_lowercase(), value.trim().to_string()));
    }
    (status, headers)
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
}

/// A keep-alive GET on an open connection.
fn keep_alive_get(c: &mut BufReader<TcpStream>, path: &str) -> Response {
    c.get_mut().write_all(format!("GET {path} HTTP/1.1\r\nHost: test\r\n\r\n").as_bytes()).unwrap();
    read_response(c, false)
}

/// Like [`keep_alive_get`], but fails with a message naming the connection (`what`)
/// if the server closed it instead of answering.
fn keep_alive_get_on(c: &mut BufReader<TcpStream>, path: &str, what: &str) -> Response {
    let sent = c.get_mut().write_all(format!("GET {path} HTTP/1.1\r\nHost: test\r\n\r\n").as_bytes());
    match c.fill_buf() {
        Ok([]) => panic!("{what} was closed by the server instead of answering GET {path}"),
        Err(e) => panic!("{what} failed instead of answering GET {path}: {e} (write: {sent:?})"),
        Ok(_) => read_response(c, false),
    }
}

/// A new keep-alive connection that has completed one GET and is now idle.
fn idle_connection(addr: SocketAddr, path: &str) -> BufReader<TcpStream> {
    let mut c = BufReader::new(connect(addr));
    let r = keep_alive_get(&mut c, path);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("connection"), None, "the server did not keep the connection alive");
    c
}

/// Waits for the server to close an open connection that sent nothing since its
/// last response, with `limit` as the read timeout: how it ended and what arrived.
fn wait_closed(c: &mut BufReader<TcpStream>, limit: Duration) -> (Vec<u8>, End) {
    c.get_mut().set_read_timeout(Some(limit)).unwrap();
    let (data, _, end) = drain(c, 4096);
    (data, end)
}

/// A GET with `Connection: close` on a fresh connection that reports failure
/// instead of panicking: the status and the body.
fn try_get(addr: SocketAddr, path: &str, limit: Duration) -> Result<(u16, Vec<u8>), String> {
    let mut s = TcpStream::connect_timeout(&addr, limit).map_err(|e| format!("connect: {e}"))?;
    s.set_read_timeout(Some(limit)).unwrap();
    s.set_write_timeout(Some(limit)).unwrap();
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n").as_bytes())
        .map_err(|e| format!("write: {e}"))?;
    let (data, _, end) = drain(&mut s, usize::MAX);
    if end != End::Eof {
        return Err(format!("response ended with {end:?} after {} bytes", data.len()));
    }
    let split = data.windows(4).position(|w| w == b"\r\n\r\n").ok_or("no complete head")?;
    if !data.starts_with(b"HTTP/1.1 ") || data.len() < 12 {
        return Err(format!("bad response {:?}", String::from_utf8_lossy(&data)));
    }
    let status = std::str::from_utf8(&data[9..12]).ok().and_then(|s| s.parse().ok()).ok_or("bad status code")?;
    Ok((status, data[split + 4..].to_vec()))
}

/// Whether a new connection to `addr` is refused, or closed without any response.
fn refused(addr: SocketAddr) -> Result<(), String> {
    let Ok(mut s) = TcpStream::connect_timeout(&addr, ms(1000)) else { return Ok(()) };
    s.set_read_timeout(Some(ms(1000))).unwrap();
    let _ = s.write_all(b"GET /index.html HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
    match drain(&mut s, 4096) {
        (data, 0, End::Eof | End::Reset) => {
            assert!(data.is_empty());
            Ok(())
        }
        (data, _, end) => Err(format!("connection accepted: {end:?} after {:?}", String::from_utf8_lossy(&data))),
    }
}

/// Whether `chunk`, found at offset `pos` of a body made by [`big_file`], is intact.
fn big_file_bytes_ok(pos: u64, chunk: &[u8]) -> bool {
    chunk.iter().enumerate().all(|(i, &b)| {
        let at = pos + i as u64;
        let in_mib = at % MIB;
        let want = if in_mib < 8 { (at - in_mib).to_be_bytes()[in_mib as usize] } else { 0 };
        b == want
    })
}

/// Reads a [`big_file`] body from `r` until EOF, checking every byte from offset
/// `pos` on; returns where the body ended and how.
fn read_big_body<R: Read>(r: &mut R, mut pos: u64) -> (u64, End) {
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        match r.read(&mut buf) {
            Ok(0) => return (pos, End::Eof),
            Ok(n) => {
                assert!(big_file_bytes_ok(pos, &buf[..n]), "corrupt body bytes in {pos}..{}", pos + n as u64);
                pos += n as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if is_timeout(&e) => return (pos, End::Timeout),
            Err(_) => return (pos, End::Reset),
        }
    }
}

/// A site with a sparse file of `len` bytes at `/big.bin`.
fn site_with_big_file(len: u64) -> tempfile::TempDir {
    let root = site();
    big_file(&root.path().join("big.bin"), len);
    root
}

fn path_str(dir: &tempfile::TempDir) -> &str {
    dir.path().to_str().unwrap()
}

/// Open file descriptors of process `pid`.
fn fd_count(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map(|d| d.count()).unwrap_or(0)
}

/// The result of running the binary to completion.
struct Output {
    /// Exit code; `None` if it did not exit within the limit (it is then killed).
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

/// Runs the binary with `args` and waits (bounded) for it to exit.
fn run_cli(args: &[&str]) -> Output {
    let mut child = Command::new(BIN)
        .args(args)
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn spindle");
    let collect = |mut pipe: Box<dyn Read + Send>| {
        thread::spawn(move || {
            let mut s = Vec::new();
            let _ = pipe.read_to_end(&mut s);
            String::from_utf8_lossy(&s).into_owned()
        })
    };
    let stdout = collect(Box::new(child.stdout.take().unwrap()));
    let stderr = collect(Box::new(child.stderr.take().unwrap()));
    let mut code = None;
    let exited = wait_for(ms(5000), || match child.try_wait().unwrap() {
        Some(status) => {
            code = status.code();
            true
        }
        None => false,
    });
    if !exited {
        let _ = child.kill();
        let _ = child.wait();
    }
    Output { code, stdout: stdout.join().unwrap(), stderr: stderr.join().unwrap() }
}

// ---- the header deadline ------------------------------------------------------------

/// What one trickling client saw.
struct Trickle {
    /// From connecting to the first sign of the server cutting it off.
    cut_at: Duration,
    /// Head bytes sent before that.
    sent: usize,
    /// Everything the server sent.
    received: Vec<u8>,
    end: End,
}

/// Sends a long request head one byte every 50 ms until the server answers or closes.
fn trickle(addr: SocketAddr) -> Trickle {
    let head = format!("GET /index.html HTTP/1.1\r\nHost: test\r\nX-Pad: {}\r\n\r\n", "a".repeat(200));
    let started = Instant::now();
    let mut s = connect(addr);
    // The read timeout paces the trickle: one byte, then up to 50 ms of listening.
    s.set_read_timeout(Some(ms(50))).unwrap();
    let mut buf = [0u8; 4096];
    for (sent, &b) in head.as_bytes().iter().enumerate() {
        assert!(started.elapsed() < ms(3000), "still trickling after {:?} ({sent} bytes)", started.elapsed());
        if s.write_all(&[b]).is_err() {
            return Trickle { cut_at: started.elapsed(), sent, received: Vec::new(), end: End::Reset };
        }
        match s.read(&mut buf) {
            Err(e) if is_timeout(&e) => {}
            Ok(0) => return Trickle { cut_at: started.elapsed(), sent: sent + 1, received: Vec::new(), end: End::Eof },
            Ok(n) => {
                let cut_at = started.elapsed();
                s.set_read_timeout(Some(ms(2000))).unwrap();
                let (rest, _, end) = drain(&mut s, usize::MAX);
                let received = [&buf[..n], &rest[..]].concat();
                return Trickle { cut_at, sent: sent + 1, received, end };
            }
            Err(_) => {
                return Trickle { cut_at: started.elapsed(), sent: sent + 1, received: Vec::new(), end: End::Reset }
            }
        }
    }
    panic!("the whole {}-byte head trickled in without the server cutting it off", head.len());
}

#[test]
fn slowloris_is_cut_off_at_the_absolute_header_deadline_while_others_are_served() {
    let root = site();
    let header_timeout = ms(500);
    let config = Config { header_timeout, linger_timeout: ms(300), ..Config::default() };
    let server = TestServer::start(root.path(), config);
    let addr = server.addr;
    let attackers: Vec<_> = (0..3).map(|_| thread::spawn(move || trickle(addr))).collect();

    let started = Instant::now();
    let mut served = 0;
    while started.elapsed() < ms(800) {
        let t = Instant::now();
        let r = get(addr, "/style.css");
        let took = t.elapsed();
        assert_eq!(r.status, 200);
        assert_eq!(r.text(), "body { color: black }\n");
        assert!(took < ms(250), "a normal GET took {took:?} during the slowloris attack");
        served += 1;
        thread::sleep(ms(25)); // a normal client's think time
    }
    assert!(served >= 5, "only {served} normal GETs completed during the attack");

    for attacker in attackers {
        let t = attacker.join().expect("trickling client");
        let text = String::from_utf8_lossy(&t.received).to_ascii_lowercase();
        assert!(t.sent >= 5, "cut off after only {} bytes at {:?}: {text:?}", t.sent, t.cut_at);
        assert!(
            t.cut_at >= header_timeout - ms(50) && t.cut_at <= header_timeout * 2,
            "trickling client cut off after {:?} ({} bytes sent); header_timeout is {header_timeout:?}",
            t.cut_at,
            t.sent
        );
        if !t.received.is_empty() {
            assert!(text.starts_with("http/1.1 408 "), "expected 408 or EOF, got {text:?}");
            assert!(text.contains("\r\nconnection: close\r\n"), "408 without Connection: close: {text:?}");
            assert_ne!(t.end, End::Timeout, "the connection stayed open after the 408");
        } else {
            assert_ne!(t.end, End::Timeout);
        }
    }
}

#[test]
fn silent_connection_is_closed_after_header_timeout() {
    let root = site();
    let header_timeout = ms(300);
    let server = TestServer::start(root.path(), Config { header_timeout, ..Config::default() });
    let started = Instant::now();
    let mut s = connect(server.addr);
    s.set_read_timeout(Some(ms(2000))).unwrap();
    let (data, _, end) = drain(&mut s, 4096);
    let took = started.elapsed();
    assert_eq!(end, End::Eof, "silent connection not closed cleanly within 2 s");
    assert!(
        data.is_empty() || data.starts_with(b"HTTP/1.1 408 "),
        "unexpected response to a silent connection: {:?}",
        String::from_utf8_lossy(&data)
    );
    // Deferred accept: the kernel holds a connection that sent nothing for about a
    // second (or until a SYN-ACK retransmission is answered) before the server
    // sees it and starts its header deadline.
    assert!(
        took >= header_timeout - ms(30) && took <= header_timeout * 2 + ms(3000),
        "silent connection closed after {took:?}; header_timeout is {header_timeout:?}"
    );
}

// ---- the idle deadline --------------------------------------------------------------

#[test]
fn idle_keep_alive_connection_is_closed_after_idle_timeout() {
    let root = site();
    let idle_timeout = ms(200);
    let config = Config { idle_timeout, header_timeout: ms(2000), ..Config::default() };
    let server = TestServer::start(root.path(), config);
    let mut c = idle_connection(server.addr, "/index.html");
    let idle_since = Instant::now();
    let (data, end) = wait_closed(&mut c, ms(3000));
    let took = idle_since.elapsed();
    assert_eq!(end, End::Eof, "idle connection not closed cleanly");
    assert!(data.is_empty(), "idle connection got unsolicited bytes: {:?}", String::from_utf8_lossy(&data));
    assert!(
        took >= idle_timeout - ms(10) && took < ms(1000),
        "idle connection closed after {took:?}: idle_timeout is {idle_timeout:?}, header_timeout 2 s"
    );
}

#[test]
fn busy_keep_alive_connection_outlives_idle_timeout() {
    let root = site();
    let idle_timeout = ms(200);
    let config = Config { idle_timeout, header_timeout: ms(2000), ..Config::default() };
    let server = TestServer::start(root.path(), config);
    let started = Instant::now();
    let mut c = idle_connection(server.addr, "/index.html");
    for i in 0..8 {
        thread::sleep(ms(100)); // a client pausing between requests, below idle_timeout
        let r = keep_alive_get(&mut c, "/sub/page.txt");
        assert_eq!(r.status, 200, "request {i} at {:?}", started.elapsed());
        assert_eq!(r.body, b"sub page\n");
    }
    assert!(started.elapsed() >= idle_timeout * 3);
    // Once it stops, the idle deadline still applies.
    let (_, end) = wait_closed(&mut c, ms(2000));
    assert_eq!(end, End::Eof, "connection not closed after going idle");
}

// ---- the send deadline ----------------------------------------------------------------

#[test]
fn send_timeout_closes_a_client_that_stops_reading() {
    let len = 64 * MIB;
    let root = site_with_big_file(len);
    let p = Spawned::start(&["--listen", "127.0.0.1:0", "--send-timeout", "500ms", path_str(&root)], 1);
    let addr = p.addr();
    let pid = p.child.id();
    // Read to EOF, so that the server has closed this connection before counting.
    assert_eq!(try_get(addr, "/index.html", ms(2000)).map(|r| r.0), Ok(200));
    let baseline = fd_count(pid);
    assert!(baseline > 0, "cannot count the server's file descriptors");

    let mut stalled = connect(addr);
    stalled.write_all(b"GET /big.bin HTTP/1.1\r\nHost: test\r\n\r\n").unwrap();
    let requested = Instant::now();
    // The server holds the connection and the open file while it is stuck.
    assert!(
        wait_for(ms(2000), || fd_count(pid) >= baseline + 2),
        "server fds: {} (baseline {baseline}) while sending",
        fd_count(pid)
    );
    // Another client is served while the first one stalls.
    let t = Instant::now();
    let r = get(addr, "/style.css");
    assert_eq!(r.status, 200);
    assert!(t.elapsed() < ms(300), "GET took {:?} next to a stalled download", t.elapsed());
    assert!(fd_count(pid) >= baseline + 2, "the stalled connection was closed before another client was served");

    // After send_timeout without progress, the server lets go of the connection and the file.
    assert!(
        wait_for(ms(5000), || fd_count(pid) <= baseline),
        "stalled connection still open after 5 s: {} fds, baseline {baseline}",
        fd_count(pid)
    );
    let closed_after = requested.elapsed();
    assert!(
        closed_after >= ms(450) && closed_after < ms(3000),
        "stalled download closed after {closed_after:?}; send_timeout is 500 ms"
    );

    // Draining now yields the part of the response that was buffered, then the end.
    stalled.set_read_timeout(Some(ms(3000))).unwrap();
    let (start, total, end) = drain(&mut stalled, 16);
    assert!(start.starts_with(b"HTTP/1.1 200 "), "{:?}", String::from_utf8_lossy(&start));
    assert!(total < len, "the whole {total}-byte file arrived although the client did not read");
    assert_ne!(end, End::Timeout, "the stalled connection is still open on the client side");
}

#[test]
fn send_timeout_closes_a_client_that_stops_reading_a_body_in_memory() {
    use spindle::{Body, Request, Response, Router, StatsHandle, Status};
    let len = 32 * MIB;
    let body: Arc<[u8]> = vec![7u8; len as usize].into();
    let router = Router::new()
        .get("/big", move |_: &Request<'_>| Response::new(Status::OK).with_body(Body::Shared(body.clone())));
    let stats = StatsHandle::new();
    let config = Config { send_timeout: ms(300), ..Config::default() };
    let server = TestServer::with_stats(router, config, stats.clone());
    let mut stalled = connect(server.addr);
    stalled.write_all(b"GET /big HTTP/1.1\r\nHost: test\r\n\r\n").unwrap();
    // Sent from memory until the socket is full, then given up on after send_timeout.
    assert!(wait_for(ms(5000), || stats.read().timeouts.send == 1), "no send timeout: {:?}", stats.read());
    assert!(wait_for(ms(2000), || stats.read().connections() == 0), "still open: {:?}", stats.read());
    stalled.set_read_timeout(Some(ms(3000))).unwrap();
    let (start, total, end) = drain(&mut stalled, 16);
    assert!(start.starts_with(b"HTTP/1.1 200 "), "{:?}", String::from_utf8_lossy(&start));
    assert!(total < len, "the whole {total}-byte body arrived although the client did not read");
    assert_ne!(end, End::Timeout, "the stalled connection is still open on the client side");
}

#[test]
fn send_timeout_closes_a_pipelining_client_that_stops_reading() {
    // Requests keep arriving while the responses cannot be written: answering
    // them must neither drop nor postpone the send deadline.
    use spindle::{Router, StaticFiles, StatsHandle};
    let root = site();
    std::fs::write(root.path().join("4k.txt"), vec![b'x'; 4096]).unwrap();
    let stats = StatsHandle::new();
    let config = Config { send_timeout: ms(400), ..Config::default() };
    let router = Router::new().fallback(StaticFiles::new(root.path()).unwrap());
    let server = TestServer::with_stats(router, config, stats.clone());
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    socket.connect(&server.addr.into()).unwrap();
    let mut stalled: std::net::TcpStream = socket.into();
    stalled.set_write_timeout(Some(ms(200))).unwrap();
    let started = Instant::now();
    // Thousands of requests at once, never reading the answers: the server takes
    // in more of them whenever it has room to answer, until the client's window is
    // full and the responses queued in the server cannot be written.
    let batch = b"GET /4k.txt HTTP/1.1\r\nHost: test\r\n\r\n".repeat(3000);
    let _ = stalled.write_all(&batch);
    assert!(
        wait_for(ms(4000), || stats.read().timeouts.send > 0),
        "no send timeout after {:?}: {:?}",
        started.elapsed(),
        stats.read()
    );
    let given_up = started.elapsed();
    assert_eq!(stats.read().timeouts.send, 1, "no send timeout after {given_up:?}: {:?}", stats.read());
    assert!(given_up < ms(2000), "send timeout after {given_up:?}; send_timeout is 400 ms");
    assert!(wait_for(ms(2000), || stats.read().connections() == 0), "still open: {:?}", stats.read());
}

// ---- the connection limit ---------------------------------------------------------------

#[test]
fn max_connections_closes_the_oldest_idle_connection_for_a_new_one() {
    let root = site();
    let config = Config { max_connections: 2, idle_timeout: ms(5000), ..Config::default() };
    let server = TestServer::start(root.path(), config);
    let mut oldest = idle_connection(server.addr, "/index.html");
    let mut newer = idle_connection(server.addr, "/style.css");

    let t = Instant::now();
    let mut third = BufReader::new(connect(server.addr));
    let r = keep_alive_get_on(&mut third, "/sub/page.txt", "the third connection");
    assert_eq!(r.status, 200);
    assert_eq!(r.body, b"sub page\n");
    assert!(t.elapsed() < ms(1000), "third connection served after {:?}", t.elapsed());

    let (data, end) = wait_closed(&mut oldest, ms(2000));
    assert!(data.is_empty(), "{:?}", String::from_utf8_lossy(&data));
    assert_eq!(end, End::Eof, "the oldest idle connection was not closed to make room");

    newer.get_mut().set_read_timeout(Some(ms(2000))).unwrap();
    let r = keep_alive_get_on(&mut newer, "/index.html", "the newer idle connection");
    assert_eq!(r.status, 200, "the newer idle connection stopped working");
    let r = keep_alive_get_on(&mut third, "/style.css", "the third connection");
    assert_eq!(r.status, 200);
}

#[test]
fn max_connections_refuses_a_new_client_with_503_while_every_connection_is_busy() {
    let root = site();
    let config = Config { max_connections: 1, header_timeout: ms(5000), ..Config::default() };
    let server = TestServer::start(root.path(), config);
    let mut busy = connect(server.addr);
    busy.write_all(b"GET /index.html HTTP/1.1\r\nHost: test\r\n").unwrap();

    // Refused at once, with an answer rather than a wait in the backlog.
    let t = Instant::now();
    let mut refused = connect(server.addr);
    refused.write_all(b"GET /style.css HTTP/1.1\r\nHost: test\r\n\r\n").unwrap();
    let (data, _, end) = drain(&mut refused, usize::MAX);
    let text = String::from_utf8_lossy(&data);
    assert!(text.starts_with("HTTP/1.1 503 "), "beyond max_connections 1 while busy: {text:?}");
    assert!(text.contains("Retry-After: 1\r\n"), "{text:?}");
    assert_eq!(end, End::Eof);
    assert!(t.elapsed() < ms(1000), "refused after {:?}", t.elapsed());

    // The busy connection was not disturbed.
    busy.write_all(b"Connection: close\r\n\r\n").unwrap();
    let (data, _, end) = drain(&mut busy, usize::MAX);
    assert!(data.starts_with(b"HTTP/1.1 200 "), "{:?}", String::from_utf8_lossy(&data));
    assert_eq!(end, End::Eof);
    // With room again, a newcomer is served.
    let ok = wait_for(ms(3000), || try_get(server.addr, "/style.css", ms(1000)).is_ok_and(|(s, _)| s == 200));
    assert!(ok, "no newcomer served once the busy connection closed");
}

#[test]
fn max_connections_takes_room_from_a_busy_connection_once_it_goes_idle() {
    let root = site();
    let config = Config { max_connections: 1, header_timeout: ms(5000), idle_timeout: ms(30_000), ..Config::default() };
    let server = TestServer::start(root.path(), config);
    let mut busy = BufReader::new(connect(server.addr));
    busy.get_mut().write_all(b"GET /index.html HTTP/1.1\r\nHost: test\r\n").unwrap();
    let first = try_get(server.addr, "/style.css", ms(2000));
    assert!(matches!(first, Ok((503, _))), "while busy: {first:?}");

    // The busy connection completes its request and stays open, idle: it is now the
    // oldest idle keep-alive connection, which the limit says to close for a new one.
    busy.get_mut().write_all(b"\r\n").unwrap();
    assert_eq!(read_response(&mut busy, false).status, 200);
    let t = Instant::now();
    let second = try_get(server.addr, "/style.css", ms(2000));
    assert!(matches!(second, Ok((200, _))), "once the other went idle: {second:?}");
    assert!(t.elapsed() < ms(1000), "served after {:?}", t.elapsed());
    let mut byte = [0u8; 1];
    busy.get_mut().set_read_timeout(Some(ms(2000))).unwrap();
    assert_eq!(busy.get_mut().read(&mut byte).unwrap(), 0, "the idle connection was not closed for the newcomer");
}

#[test]
fn sigterm_finishes_in_flight_download_closes_idle_and_exits_zero() {
    let len = 256 * MIB;
    let root = site_with_big_file(len);
    let mut p = Spawned::start(&["--listen", "127.0.0.1:0", path_str(&root)], 1);
    let addr = p.addr();

    let mut download = BufReader::new(connect(addr));
    download.get_mut().write_all(b"GET /big.bin HTTP/1.1\r\nHost: test\r\n\r\n").unwrap();
    let (status, headers) = read_head(&mut download);
    assert_eq!(status, 200);
    assert_eq!(header(&headers, "content-length"), Some(len.to_string().as_str()));
    let mut first = vec![0u8; MIB as usize];
    download.read_exact(&mut first).unwrap();
    assert!(big_file_bytes_ok(0, &first));

    let mut idle = idle_connection(addr, "/index.html");

    p.signal(libc::SIGTERM);
    let signalled = Instant::now();
    let (data, end) = wait_closed(&mut idle, ms(3000));
    assert_eq!(end, End::Eof, "idle connection not closed on SIGTERM");
    assert!(data.is_empty());
    assert!(signalled.elapsed() < ms(1000), "idle connection closed {:?} after SIGTERM", signalled.elapsed());

    // The idle connection was closed by the shutdown, so the listener is gone too.
    if let Err(e) = refused(addr) {
        panic!("new connection after SIGTERM: {e}");
    }

    let (end_at, end) = read_big_body(&mut download, MIB);
    assert_eq!(end_at, len, "in-flight download cut short by the shutdown ({end:?})");
    assert_eq!(end, End::Eof, "connection not closed after the last response");
    assert_eq!(p.wait_exit(ms(5000)), Some(0), "exit after draining; stderr:\n{}", p.stderr());
    assert!(p.stderr().contains("SIGTERM"), "{}", p.stderr());
}

#[test]
fn grace_period_bounds_shutdown_with_a_client_that_stops_reading() {
    let root = site_with_big_file(256 * MIB);
    let mut p = Spawned::start(&["--listen", "127.0.0.1:0", "--grace-period", "0.3", path_str(&root)], 1);
    let mut stalled = BufReader::new(connect(p.addr()));
    stalled.get_mut().write_all(b"GET /big.bin HTTP/1.1\r\nHost: test\r\n\r\n").unwrap();
    let (status, _) = read_head(&mut stalled);
    assert_eq!(status, 200);

    p.signal(libc::SIGTERM);
    let signalled = Instant::now();
    assert_eq!(p.wait_exit(ms(5000)), Some(0), "stderr:\n{}", p.stderr());
    let took = signalled.elapsed();
    assert!(
        took >= ms(250) && took < ms(1500),
        "exited {took:?} after SIGTERM with a stalled download; grace period 0.3 s"
    );
    stalled.get_mut().set_read_timeout(Some(ms(3000))).unwrap();
    let (_, total, end) = drain(&mut stalled, 0);
    assert!(total < 256 * MIB, "the stalled download completed");
    assert_ne!(end, End::Timeout);
}

#[test]
fn sigint_and_sigquit_exit_zero_promptly_when_idle() {
    // SIGQUIT is nginx's graceful stop; its default action would dump core.
    for (signal, name) in [(libc::SIGINT, "SIGINT"), (libc::SIGQUIT, "SIGQUIT")] {
        let root = site();
        let mut p = Spawned::start(&["--listen", "127.0.0.1:0", path_str(&root)], 1);
        let mut idle = idle_connection(p.addr(), "/index.html");
        p.signal(signal);
        let signalled = Instant::now();
        assert_eq!(p.wait_exit(ms(5000)), Some(0), "{name}: stderr:\n{}", p.stderr());
        // The default grace period is 10 s: an idle keep-alive connection must not use it.
        assert!(signalled.elapsed() < ms(1500), "exit took {:?} after {name}", signalled.elapsed());
        let (_, end) = wait_closed(&mut idle, ms(1000));
        assert_ne!(end, End::Timeout);
        assert!(p.stderr().contains(name), "{}", p.stderr());
    }
}

// ---- file descriptors ---------------------------------------------------------------------

#[test]
fn running_out_of_file_descriptors_makes_room_and_recovers() {
    let root = site();
    let mut cmd = Command::new(BIN);
    cmd.args(["--listen", "127.0.0.1:0", path_str(&root)]);
    // SAFETY: setrlimit is async-signal-safe, and the closure allocates nothing.
    unsafe {
        cmd.pre_exec(|| {
            let limit = libc::rlimit { rlim_cur: 32, rlim_max: 32 };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut p = Spawned::start_with(&mut cmd, 1);
    let addr = p.addr();

    let mut clients = Vec::new();
    for _ in 0..60 {
        let mut s = connect(addr);
        s.write_all(b"GET /index.html HTTP/1.1\r\nHost: test\r\n\r\n").unwrap();
        clients.push(s);
    }
    assert!(
        wait_for(ms(5000), || p.stderr().contains("out of file descriptors")),
        "no warning about running out of descriptors with 60 connections and 32 fds:\n{}",
        p.stderr()
    );
    drop(clients);

    let mut last = Err(String::new());
    let recovered = wait_for(ms(10_000), || {
        last = try_get(addr, "/index.html", ms(2000));
        matches!(&last, Ok((200, _)))
    });
    assert!(recovered, "no 200 after the connections closed: last {last:?}\n{}", p.stderr());
    assert!(p.child.try_wait().unwrap().is_none(), "server exited:\n{}", p.stderr());
    assert!(!p.stderr().contains("panicked"), "{}", p.stderr());
}

// ---- the command line ---------------------------------------------------------------------

#[test]
fn cli_help_prints_usage_and_exits_zero() {
    let out = run_cli(&["--help"]);
    assert_eq!(out.code, Some(0), "stderr: {}", out.stderr);
    assert!(out.stdout.contains("Usage"), "{}", out.stdout);
    assert!(out.stdout.contains("--listen"), "{}", out.stdout);
}

#[test]
fn cli_version_prints_name_and_version() {
    let out = run_cli(&["--version"]);
    assert_eq!(out.code, Some(0), "stderr: {}", out.stderr);
    assert_eq!(out.stdout.trim(), format!("spindle {}", env!("CARGO_PKG_VERSION")));
}

#[test]
fn cli_usage_errors_name_the_option() {
    let root = site();
    for (args, expected) in [
        (&["--max-connections", "-1"][..], "--max-connections"),
        (&["--header-timeout", "0"], "--header-timeout: a timeout must be more than 0"),
        (&["--send-timeout", "0ms"], "--send-timeout"),
        (&["--cache-control", "max-age=1\r\nX-Evil: 1"], "--cache-control: invalid value"),
        (&["--header", "X-A: a\u{1}b"], "--header: invalid header field"),
        (&["--health", "health"], "--health: takes a path"),
        (&["--workers", "5000"], "--workers: at most 256"),
        (&["--header", "server: hidden"], "--header: server is written by the server itself"),
        (&["--header", "Content-Length: 1"], "--header: Content-Length is written by the server itself"),
    ] {
        let out = run_cli(&[args, &[path_str(&root)]].concat());
        assert_eq!(out.code, Some(2), "{args:?}: stderr {:?}", out.stderr);
        assert!(out.stderr.contains(expected), "{args:?}: {:?} lacks {expected:?}", out.stderr);
    }
}

#[test]
fn cli_rejects_an_unknown_flag_and_a_bad_value() {
    let out = run_cli(&["--no-such-flag"]);
    assert!(matches!(out.code, Some(c) if c != 0), "exit {:?}", out.code);
    assert!(out.stderr.contains("--no-such-flag"), "message does not name the flag: {:?}", out.stderr);

    let out = run_cli(&["--idle-timeout", "soon", "--listen", "127.0.0.1:0"]);
    assert!(matches!(out.code, Some(c) if c != 0), "exit {:?}, stderr {:?}", out.code, out.stderr);
    assert!(out.stderr.contains("soon"), "message does not name the value: {:?}", out.stderr);
}

#[test]
fn cli_repeated_listen_serves_on_every_address() {
    let root = site();
    let second = if std::net::TcpListener::bind("[::1]:0").is_ok() { "[::1]:0" } else { "127.0.0.1:0" };
    let p = Spawned::start(&["--listen", "127.0.0.1:0", "--listen", second, path_str(&root)], 2);
    assert_eq!(p.addrs.len(), 2);
    assert!(p.addrs[0].is_ipv4());
    assert_eq!(p.addrs[1].is_ipv6(), second.starts_with('['));
    assert_ne!(p.addrs[0], p.addrs[1]);
    for &addr in &p.addrs {
        let r = get(addr, "/index.html");
        assert_eq!(r.status, 200, "on {addr}");
        assert!(r.text().contains("hello"));
    }
}

#[test]
fn cli_address_in_use_exits_nonzero_naming_it() {
    let root = site();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = run_cli(&["--listen", &addr, path_str(&root)]);
    assert!(matches!(out.code, Some(c) if c != 0), "exit {:?}; stderr {:?}", out.code, out.stderr);
    assert!(out.stderr.contains(&addr), "stderr does not name {addr}: {:?}", out.stderr);
}

#[test]
fn cli_workers_do_not_share_a_port_with_another_instance() {
    let root = site();
    let first = Spawned::start(&["--listen", "127.0.0.1:0", "--workers", "2", path_str(&root)], 1);
    let addr = first.addr().to_string();
    // Both set SO_REUSEPORT, which would let the second join the first's port.
    let out = run_cli(&["--listen", &addr, "--workers", "2", path_str(&root)]);
    assert!(matches!(out.code, Some(c) if c != 0), "exit {:?}; stderr {:?}", out.code, out.stderr);
    assert!(out.stderr.contains(&addr), "stderr does not name {addr}: {:?}", out.stderr);
    assert_eq!(get(first.addr(), "/style.css").status, 200);
}

#[test]
fn cli_missing_root_exits_nonzero_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such-root");
    let missing = missing.to_str().unwrap();
    let out = run_cli(&["--listen", "127.0.0.1:0", missing]);
    assert!(matches!(out.code, Some(c) if c != 0), "exit {:?}; stderr {:?}", out.code, out.stderr);
    assert!(out.stderr.contains(missing), "stderr does not name {missing}: {:?}", out.stderr);
    // Said even with logging turned off.
    let quiet = Command::new(BIN).args(["--listen", "127.0.0.1:0", missing]).env("RUST_LOG", "off").output().unwrap();
    let stderr = String::from_utf8_lossy(&quiet.stderr);
    assert_eq!(quiet.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains(missing), "RUST_LOG=off: stderr does not name {missing}: {stderr:?}");
}

#[test]
fn startup_line_names_the_address_and_the_root() {
    let root = site();
    let p = Spawned::start(&["--listen", "127.0.0.1:0", path_str(&root)], 1);
    let addr = p.addr();
    assert!(addr.ip().is_loopback() && addr.port() != 0);
    let wanted = format!("listening on http://{addr}/");
    // `Spawned` hands over the address just before it records the line itself.
    wait_for(ms(2000), || p.stderr().contains(&wanted));
    let stderr = p.stderr();
    let line =
        stderr.lines().find(|l| l.contains(&wanted)).unwrap_or_else(|| panic!("no startup line for {addr}:\n{stderr}"));
    let canonical = root.path().canonicalize().unwrap();
    assert!(line.contains(canonical.to_str().unwrap()), "startup line does not name the root: {line}");
}

#[test]
fn startup_warns_when_running_as_root() {
    let root = site();
    let p = Spawned::start(&["--listen", "127.0.0.1:0", path_str(&root)], 1);
    // SAFETY: geteuid has no preconditions.
    let as_root = unsafe { libc::geteuid() } == 0;
    let warned = wait_for(ms(2000), || p.stderr().contains("running as root"));
    assert_eq!(warned, as_root, "euid 0: {as_root}; stderr:\n{}", p.stderr());
}

// ---- the access log -------------------------------------------------------------------------

/// The byte count of the first access-log line in `stdout` that contains `needle`.
fn logged_bytes(stdout: &str, needle: &str) -> Option<String> {
    let line = stdout.lines().find(|l| l.contains(needle))?;
    line.rsplit(' ').next().map(str::to_string)
}

#[test]
fn access_log_counts_the_body_bytes_that_went_out() {
    let len = 8 * MIB;
    let root = site_with_big_file(len);
    let p = Spawned::start(&["--listen", "127.0.0.1:0", "--grace-period", "300ms", path_str(&root)], 1);
    let addr = p.addr();

    // Whole, and with nothing to send.
    let mut whole = connect(addr);
    whole.write_all(b"GET /big.bin?whole HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n").unwrap();
    let (_, total, end) = drain(&mut whole, 0);
    assert_eq!(end, End::Eof);
    assert!(total > len, "{total} bytes");
    assert_eq!(request(addr, b"HEAD /big.bin?head HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n").status, 200);

    // A client that reads a little of it and goes away.
    let mut quitter = connect(addr);
    quitter.write_all(b"GET /big.bin?quit HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
    let mut some = vec![0u8; 64 * 1024];
    quitter.read_exact(&mut some).unwrap();
    drop(quitter);

    // One still downloading when a shutdown's grace period ends.
    let mut stalled = connect(addr);
    stalled.write_all(b"GET /big.bin?graced HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
    stalled.read_exact(&mut some).unwrap();
    let logged = |needle: &str| logged_bytes(&p.stdout(), needle);
    assert!(wait_for(ms(5000), || logged("?quit").is_some()), "no line for the quitter:\n{}", p.stdout());
    p.signal(libc::SIGTERM);
    // Not reading on: the grace period ends it.
    assert!(wait_for(ms(5000), || logged("?graced").is_some()), "no line for the cut download:\n{}", p.stdout());
    let _ = drain(&mut stalled, 0);

    assert_eq!(logged("?whole").as_deref(), Some(len.to_string().as_str()), "{}", p.stdout());
    assert_eq!(logged("?head").as_deref(), Some("-"), "{}", p.stdout());
    for cut in ["?quit", "?graced"] {
        let bytes: u64 = logged(cut).and_then(|b| b.parse().ok()).unwrap_or_else(|| panic!("{}", p.stdout()));
        assert!(bytes >= 64 * 1024 - 4096 && bytes < len, "{cut}: {bytes} of {len} bytes logged\n{}", p.stdout());
    }
}

#[test]
fn access_log_records_requests_without_control_bytes() {
    let root = site();
    let p = Spawned::start(&["--listen", "127.0.0.1:0", path_str(&root)], 1);
    let addr = p.addr();

    let mut s = connect(addr);
    s.write_all(b"GET /style.css HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n").unwrap();
    let (data, _, end) = drain(&mut s, usize::MAX);
    assert_eq!(end, End::Eof);
    assert!(data.starts_with(b"HTTP/1.1 200 "));
    // Common Log Format: the byte count is the body's.
    let body_len = std::fs::metadata(root.path().join("style.css")).unwrap().len();
    let ok_line = "127.0.0.1 - - [".to_string();
    let ok_request = format!("\"GET /style.css HTTP/1.1\" 200 {body_len}\n");

    // A percent-encoded ESC, logged as sent (still encoded).
    let escape = request(addr, b"GET /%1b[31mred HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
    // Bytes the parser lets through raw: quote, backslash and a C1 control (CSI, U+009B).
    let raw = request(addr, b"GET /q\"uote\\\xc2\x9b31m HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
    // A raw ESC is refused by the parser: the line is logged as it came, escaped.
    let rejected = request(addr, b"GET /\x1b[31m HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
    assert_eq!(rejected.status, 400);
    // A well-formed request line with a bad header: the line is logged.
    let headless = request(addr, b"GET /no-host HTTP/1.1\r\nConnection: close\r\n\r\n");
    assert_eq!(headless.status, 400);

    let expected = [
        ok_line,
        ok_request,
        format!("\"GET /%1b[31mred HTTP/1.1\" {} ", escape.status),
        format!("\"GET /q\\x22uote\\x5c\\xc2\\x9b31m HTTP/1.1\" {} ", raw.status),
        "\"GET /\\x1b[31m HTTP/1.1\" 400 ".to_string(),
        "\"GET /no-host HTTP/1.1\" 400 ".to_string(),
    ];
    let all_logged = wait_for(ms(5000), || expected.iter().all(|e| p.stdout().contains(e.as_str())));
    let stdout = p.stdout();
    assert!(all_logged, "access lines missing; expected {expected:?} on stdout:\n{stdout}");
    let access: Vec<&str> = stdout.lines().collect();
    assert_eq!(access.len(), 5, "one line per request expected on stdout:\n{stdout}");
    assert!(!p.stderr().contains("\"GET /"), "access lines on stderr:\n{}", p.stderr());
    for line in &access {
        assert!(
            line.bytes().all(|b| (0x20..0x7f).contains(&b)),
            "access line with control or non-ASCII bytes: {:?}",
            line
        );
    }
}

// ---- stale events -------------------------------------------------------------------------

#[test]
fn churned_connections_do_not_disturb_a_keep_alive_client() {
    let root = site();
    big_file(&root.path().join("mid.bin"), 4 * MIB);
    let server = TestServer::start(root.path(), Config::default());
    let addr = server.addr;
    let stop = Arc::new(AtomicBool::new(false));
    let served = Arc::new(AtomicU32::new(0));
    let steady = {
        let (stop, served) = (stop.clone(), served.clone());
        thread::spawn(move || {
            let mut c = BufReader::new(connect(addr));
            while !stop.load(Ordering::SeqCst) {
                let r = keep_alive_get(&mut c, "/sub/page.txt");
                let n = served.load(Ordering::SeqCst);
                assert_eq!(r.status, 200, "keep-alive GET {n} failed");
                assert_eq!(r.body, b"sub page\n", "keep-alive GET {n}");
                served.fetch_add(1, Ordering::SeqCst);
            }
        })
    };
    assert!(wait_for(IO_TIMEOUT, || served.load(Ordering::SeqCst) > 0), "keep-alive client never served");
    let before = served.load(Ordering::SeqCst);

    let mut buf = [0u8; 4096];
    for i in 0..500 {
        let mut s = connect(addr);
        match i % 5 {
            // Dropped mid-response with unread data: the server's writes meet a reset.
            0 => {
                s.write_all(b"GET /mid.bin HTTP/1.1\r\nHost: test\r\n\r\n").unwrap();
                assert!(s.read(&mut buf).unwrap() > 0);
            }
            // Request sent, response never read.
            1 => s.write_all(b"GET /index.html HTTP/1.1\r\nHost: test\r\n\r\n").unwrap(),
            // Pipelined requests, then gone.
            2 => s.write_all(&b"GET /style.css HTTP/1.1\r\nHost: test\r\n\r\n".repeat(3)).unwrap(),
            // Half a head.
            3 => s.write_all(b"GET /index.html HTTP/1.1\r\nHo").unwrap(),
            // Nothing at all.
            _ => {}
        }
    }

    let during = served.load(Ordering::SeqCst) - before;
    stop.store(true, Ordering::SeqCst);
    steady.join().expect("the keep-alive client failed while connections churned");
    assert!(during > 0, "no keep-alive GET completed during the churn");
    let r = get(addr, "/index.html");
    assert_eq!(r.status, 200, "server unhealthy after the churn");
}
