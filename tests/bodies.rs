//! Request bodies over real sockets: Content-Length and chunked framing echoed
//! exactly however the bytes are split, pipelining with bodies, the body size
//! limit, `Expect: 100-continue`, request smuggling attempts, the body deadline
//! and clients that leave in the middle of a body.

mod common;

use common::*;

use std::io::{ErrorKind, Read, Write};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use spindle::{Config, Request, Router, StaticFiles, StatsHandle, Status};

/// A request that must never be answered when it hides inside (or after) a body.
const SMUGGLED: &str = "GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n";
/// Read timeout of the test clients: short, so that a server bug fails fast.
const READ_TIMEOUT: Duration = Duration::from_secs(3);

// ---- the server under test --------------------------------------------------------------

/// An in-process server with the body-testing routes, and how often `/smuggled` was hit.
struct Echo {
    server: TestServer,
    smuggled: Arc<AtomicUsize>,
    /// The static files' root; removed after the server stops.
    _site: tempfile::TempDir,
}

impl Echo {
    fn addr(&self) -> SocketAddr {
        self.server.addr
    }

    fn smuggled(&self) -> usize {
        self.smuggled.load(Ordering::SeqCst)
    }
}

fn echo(req: &Request<'_>) -> spindle::Response {
    spindle::Response::new(Status::OK).with_body(req.body().to_vec())
}

fn body_len(req: &Request<'_>) -> spindle::Response {
    spindle::Response::text(req.body().len().to_string())
}

/// Routes: `POST|PUT /echo` echo the body, `GET|POST /len` report its length,
/// `GET /hello` says hello, `GET|POST /smuggled` count their hits; static files
/// from a small site for everything else.
fn start(config: Config) -> Echo {
    start_counting(config, StatsHandle::new())
}

/// [`start`], counting into `stats`.
fn start_counting(config: Config, stats: StatsHandle) -> Echo {
    let smuggled = Arc::new(AtomicUsize::new(0));
    let (hits_get, hits_post) = (smuggled.clone(), smuggled.clone());
    let site = site();
    let files = StaticFiles::new(site.path()).expect("static files");
    let router = Router::new()
        .post("/echo", echo)
        .put("/echo", echo)
        .get("/len", body_len)
        .post("/len", body_len)
        .get("/hello", |_: &Request<'_>| spindle::Response::text("hello"))
        .get("/smuggled", move |_: &Request<'_>| {
            hits_get.fetch_add(1, Ordering::SeqCst);
            spindle::Response::text("smuggled")
        })
        .post("/smuggled", move |_: &Request<'_>| {
            hits_post.fetch_add(1, Ordering::SeqCst);
            spindle::Response::text("smuggled")
        })
        .fallback(files);
    Echo { server: TestServer::with_stats(router, config, stats), smuggled, _site: site }
}

/// Short timeouts, so that a connection the server wrongly keeps open ends soon.
fn config() -> Config {
    Config {
        header_timeout: Duration::from_secs(2),
        idle_timeout: Duration::from_secs(2),
        body_timeout: Duration::from_secs(2),
        send_timeout: Duration::from_secs(2),
        linger_timeout: Duration::from_secs(1),
        ..Config::default()
    }
}

// ---- requests ---------------------------------------------------------------------------

/// `POST path` with a Content-Length body.
fn post(path: &str, body: &[u8]) -> Vec<u8> {
    let mut raw = format!("POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n", body.len()).into_bytes();
    raw.extend_from_slice(body);
    raw
}

/// `POST path` with a chunked body made of `wire` (chunks, last chunk and trailers).
fn post_chunked(path: &str, wire: &[u8]) -> Vec<u8> {
    let mut raw = format!("POST {path} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n").into_bytes();
    raw.extend_from_slice(wire);
    raw
}

/// `data` as one chunk (lower-case hex size).
fn chunk(data: &[u8]) -> Vec<u8> {
    let mut c = format!("{:x}\r\n", data.len()).into_bytes();
    c.extend_from_slice(data);
    c.extend_from_slice(b"\r\n");
    c
}

/// `data` split into chunks of at most `size` bytes, then the last chunk.
fn chunked(data: &[u8], size: usize) -> Vec<u8> {
    let mut wire: Vec<u8> = data.chunks(size).flat_map(chunk).collect();
    wire.extend_from_slice(b"0\r\n\r\n");
    wire
}

/// `n` deterministic bytes covering every byte value.
fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i.wrapping_mul(31) ^ (i >> 8)) as u8).collect()
}

/// Binary bytes that look like framing and requests: NULs, CRs, LFs, a last
/// chunk, an empty line and a whole request.
fn tricky_bytes() -> Vec<u8> {
    let mut b: Vec<u8> = (0..=255u8).collect();
    b.extend_from_slice(b"\0\0\r\n\r\n0\r\n\r\n");
    b.extend_from_slice(SMUGGLED.as_bytes());
    b.extend_from_slice(b"\r\r\n\n\0\r");
    b
}

fn shown(raw: &[u8]) -> String {
    let text = String::from_utf8_lossy(&raw[..raw.len().min(160)]).into_owned();
    if raw.len() > 160 {
        format!("{text:?}... ({} bytes)", raw.len())
    } else {
        format!("{text:?}")
    }
}

// ---- the client -------------------------------------------------------------------------

/// A client whose reads wait at most `READ_TIMEOUT`.
fn client(addr: SocketAddr) -> Client {
    let mut c = Client::new(addr);
    c.stream().set_read_timeout(Some(READ_TIMEOUT)).unwrap();
    c
}

/// Splits `bytes` into complete responses (1xx, 204 and 304 have no body).
fn parse_responses(mut bytes: &[u8]) -> Result<Vec<Response>, String> {
    let mut out = Vec::new();
    while !bytes.is_empty() {
        let Some(end) = bytes.windows(4).position(|w| w == b"\r\n\r\n") else {
            return Err(format!("incomplete response head {}", shown(bytes)));
        };
        let head = std::str::from_utf8(&bytes[..end]).map_err(|_| format!("non-UTF-8 head {}", shown(bytes)))?;
        let mut lines = head.split("\r\n");
        let line = lines.next().unwrap_or_default();
        let status = line
            .strip_prefix("HTTP/1.1 ")
            .and_then(|s| s.get(..3))
            .and_then(|s| s.parse::<u16>().ok())
            .ok_or_else(|| format!("bad status line {line:?}"))?;
        let mut headers = Vec::new();
        for h in lines {
            let (name, value) = h.split_once(':').ok_or_else(|| format!("bad header line {h:?}"))?;
            headers.push((name.to_ascii_lowercase(), value.trim().to_string()));
        }
        let mut r = Response { status, headers, body: Vec::new() };
        let len = if status < 200 || status == 204 || status == 304 {
            0
        } else {
            r.header("content-length")
                .and_then(|v| v.parse::<usize>().ok())
                .ok_or_else(|| format!("no Content-Length in {head:?}"))?
        };
        let rest = &bytes[end + 4..];
        if rest.len() < len {
            return Err(format!("truncated body of {status}: {} of {len} bytes", rest.len()));
        }
        r.body = rest[..len].to_vec();
        out.push(r);
        bytes = &rest[len..];
    }
    Ok(out)
}

fn closes(r: &Response) -> bool {
    r.header("connection").is_some_and(|v| v.eq_ignore_ascii_case("close"))
}

fn statuses(rs: &[Response]) -> Vec<u16> {
    rs.iter().map(|r| r.status).collect()
}

/// Sends `raw` in one write on a new connection and reads until the connection ends.
fn send_and_read_all(addr: SocketAddr, raw: &[u8]) -> (Vec<u8>, End) {
    let mut c = client(addr);
    if let Err(e) = c.stream().write_all(raw) {
        return (format!("<write failed: {e}>").into_bytes(), End::Reset);
    }
    c.rest()
}

/// Sends `raw` (which carries [`SMUGGLED`] after or inside its body) and checks that
/// exactly one response with `status` and `Connection: close` comes back, followed by
/// the server closing the connection.
fn check_refused(addr: SocketAddr, label: &str, raw: &[u8], status: u16) -> Result<(), String> {
    let (bytes, end) = send_and_read_all(addr, raw);
    let fail = |why: String| Err(format!("{label}: sent {}\n    {why}", shown(raw)));
    let responses = match parse_responses(&bytes) {
        Ok(rs) => rs,
        Err(e) => return fail(format!("unparsable answer ({e}); connection ended by {end:?}")),
    };
    match responses.as_slice() {
        [r] if r.status == status && closes(r) && end == End::Eof => Ok(()),
        [r] if r.status == status && end == End::Eof => {
            fail(format!("{status} without Connection: close (headers {:?})", r.headers))
        }
        [r] if r.status == status => fail(format!("{status}, then the connection ended by {end:?}, not EOF")),
        rs => fail(format!(
            "expected exactly one {status} then EOF; got responses {:?} then {end:?} (bodies {:?})",
            statuses(rs),
            rs.iter().map(|r| r.text()).collect::<Vec<_>>()
        )),
    }
}

/// Runs every refusal case on its own connection, all at once, then checks that
/// nothing smuggled was ever answered and that the server still works.
fn check_all_refused(cases: Vec<(&str, Vec<u8>, u16)>) {
    let srv = start(config());
    let addr = srv.addr();
    let failures: Vec<String> = thread::scope(|s| {
        let handles: Vec<_> = cases
            .iter()
            .map(|(label, raw, status)| s.spawn(move || check_refused(addr, label, raw, *status)))
            .collect();
        handles.into_iter().filter_map(|h| h.join().expect("case thread").err()).collect()
    });
    let smuggled = srv.smuggled();
    assert!(
        failures.is_empty(),
        "{} of {} cases failed (/smuggled answered {smuggled} times):\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
    assert_eq!(smuggled, 0, "a smuggled request was answered");
    // The server still works, and the counting route does count.
    let mut c = client(addr);
    let r = c.exchange(SMUGGLED);
    assert_eq!((r.status, r.text()), (200, "smuggled".to_string()));
    assert_eq!(srv.smuggled(), 1);
}

// ---- exact echoes -----------------------------------------------------------------------

#[test]
fn content_length_bodies_are_echoed_exactly() {
    let srv = start(config());
    let mut c = client(srv.addr());
    let bodies = [Vec::new(), b"x".to_vec(), pattern(1000), pattern(100_000), tricky_bytes(), vec![0u8; 3000]];
    for body in &bodies {
        let r = c.exchange(post("/echo", body));
        assert_eq!(r.status, 200, "echo of {} bytes: {r:?}", body.len());
        assert_eq!(r.body.len(), body.len(), "echo length");
        assert!(r.body == *body, "echo of {} bytes differs", body.len());
        // The connection persists, and the next request sees no body.
        let r = c.exchange("GET /len HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_eq!(r.text(), "0", "body leaked into the next request after {} bytes", body.len());
    }
    // PUT too; leading zeros are decimal (a repeated Content-Length is refused, see below).
    let r = c.exchange(b"PUT /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nput");
    assert_eq!((r.status, r.text()), (200, "put".to_string()));
    let r = c.exchange(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 0005\r\n\r\nfive!");
    assert_eq!((r.status, r.text()), (200, "five!".to_string()));
    let r = c.exchange(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: \t 6 \r\n\r\nspaced");
    assert_eq!((r.status, r.text()), (200, "spaced".to_string()));
    assert_eq!(srv.smuggled(), 0, "a request inside a body was answered");
}

#[test]
fn chunked_bodies_are_echoed_exactly() {
    let srv = start(config());
    let mut c = client(srv.addr());
    let alphabet: Vec<u8> = (b'a'..=b'z').collect();
    let big = pattern(100_000);
    let cases: Vec<(&str, Vec<u8>, Vec<u8>)> = vec![
        ("two chunks", b"4\r\nWiki\r\n5\r\npedia\r\n0\r\n\r\n".to_vec(), b"Wikipedia".to_vec()),
        ("empty body", b"0\r\n\r\n".to_vec(), Vec::new()),
        (
            "extensions",
            b"4;a=b\r\nWiki\r\n5;a=b;flag\r\npedia\r\n3;q=\"x y;z\"\r\n in\r\n0;last=1\r\n\r\n".to_vec(),
            b"Wikipedia in".to_vec(),
        ),
        ("uppercase hex", [b"1A\r\n".to_vec(), alphabet.clone(), b"\r\n0\r\n\r\n".to_vec()].concat(), alphabet.clone()),
        ("mixed-case hex", [b"1a\r\n".to_vec(), alphabet.clone(), b"\r\n0\r\n\r\n".to_vec()].concat(), alphabet),
        ("leading zeros", b"0005\r\nhello\r\n000\r\n\r\n".to_vec(), b"hello".to_vec()),
        (
            "trailer fields",
            b"5\r\nhello\r\n0\r\nX-Checksum: abc\r\nX-Other: GET /smuggled HTTP/1.1\r\n\r\n".to_vec(),
            b"hello".to_vec(),
        ),
        ("binary chunk", chunked(&tricky_bytes(), 10_000), tricky_bytes()),
        ("binary in tiny chunks", chunked(&tricky_bytes(), 1), tricky_bytes()),
        ("big body", chunked(&big, 3000), big.clone()),
        ("big chunk", chunked(&big, 100_000), big),
    ];
    for (label, wire, expect) in &cases {
        let r = c.exchange(post_chunked("/echo", wire));
        assert_eq!(r.status, 200, "{label}: {r:?}");
        assert!(r.body == *expect, "{label}: echo {} differs from {}", shown(&r.body), shown(expect));
        let r = c.exchange("GET /len HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_eq!(r.text(), "0", "{label}: body leaked into the next request");
    }
    // Transfer-Encoding is case-insensitive, and an empty list element is no coding.
    let r = c.exchange(b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: Chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n");
    assert_eq!((r.status, r.text()), (200, "ok".to_string()));
    assert_eq!(srv.smuggled(), 0, "a request inside a body was answered");
}

#[test]
fn handler_sees_an_empty_body_unless_one_was_sent() {
    let srv = start(config());
    let mut c = client(srv.addr());
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("GET without body", b"GET /len HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(), "0"),
        ("POST with body", post("/len", b"abc"), "3"),
        ("GET after a body", b"GET /len HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(), "0"),
        ("chunked POST", post_chunked("/len", b"4\r\nabcd\r\n0\r\n\r\n"), "4"),
        ("POST without body", b"POST /len HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(), "0"),
        ("POST with Content-Length: 0", b"POST /len HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n".to_vec(), "0"),
        ("GET with a body", b"GET /len HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi".to_vec(), "2"),
        (
            "HTTP/1.0 POST",
            b"POST /len HTTP/1.0\r\nConnection: keep-alive\r\nContent-Length: 5\r\n\r\nhello".to_vec(),
            "5",
        ),
        ("GET at last", b"GET /len HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".to_vec(), "0"),
    ];
    for (label, raw, len) in &cases {
        let r = c.exchange(raw);
        assert_eq!((r.status, r.text()), (200, len.to_string()), "{label}");
    }
    c.expect_eof();
}

// ---- arbitrary splits -------------------------------------------------------------------

/// Sends `request` followed by a pipelined `GET /len` (closing) in two writes split at
/// every position; each time the echo must be exact and the GET answered.
fn check_every_split(request: &[u8], echo: &[u8]) {
    let srv = start(config());
    let follow = b"GET /len HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    let full = [request, follow].concat();
    for at in 1..full.len() {
        let mut c = client(srv.addr());
        c.send(&full[..at]);
        // Long enough for the server to read the first part on its own.
        thread::sleep(Duration::from_millis(1));
        c.send(&full[at..]);
        let r = c.recv();
        assert_eq!(r.status, 200, "split at {at} {}|{}: {r:?}", shown(&full[..at]), shown(&full[at..]));
        assert!(r.body == echo, "split at {at}: echo {} differs from {}", shown(&r.body), shown(echo));
        let r = c.recv();
        assert_eq!((r.status, r.text()), (200, "0".to_string()), "split at {at}: the pipelined GET");
        let (rest, end) = c.rest();
        assert!(rest.is_empty() && end == End::Eof, "split at {at}: {end:?} after {}", shown(&rest));
    }
    assert_eq!(srv.smuggled(), 0);
}

/// Sends `request` and a pipelined `GET /len` one byte per write.
fn check_byte_by_byte(request: &[u8], echo: &[u8]) {
    // Deadlines far beyond the ~0.1 s this takes, even on a loaded machine.
    let srv =
        start(Config { header_timeout: Duration::from_secs(10), body_timeout: Duration::from_secs(10), ..config() });
    let full = [request, b"GET /len HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"].concat();
    let mut c = client(srv.addr());
    for b in &full {
        c.send([*b]);
        thread::sleep(Duration::from_micros(500));
    }
    let r = c.recv();
    assert_eq!(r.status, 200, "{r:?}");
    assert!(r.body == echo, "echo {} differs from {}", shown(&r.body), shown(echo));
    let r = c.recv();
    assert_eq!((r.status, r.text()), (200, "0".to_string()), "the pipelined GET");
    c.expect_eof();
    assert_eq!(srv.smuggled(), 0);
}

const SPLIT_BODY: &[u8] = b"a\r\nb\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\n\r\n";

fn split_chunked() -> (Vec<u8>, Vec<u8>) {
    let wire = b"3;x=y\r\nabc\r\n1\r\n\r\r\nA\r\n0\r\n\r\nGET /\r\n0\r\nX-T: 1\r\n\r\n".to_vec();
    (post_chunked("/echo", &wire), b"abc\r0\r\n\r\nGET /".to_vec())
}

#[test]
fn content_length_body_split_at_every_byte_is_echoed() {
    check_every_split(&post("/echo", SPLIT_BODY), SPLIT_BODY);
}

#[test]
fn chunked_body_split_at_every_byte_is_echoed() {
    let (request, echo) = split_chunked();
    check_every_split(&request, &echo);
}

#[test]
fn chunked_body_one_byte_per_write_is_echoed() {
    let (request, echo) = split_chunked();
    check_byte_by_byte(&request, &echo);
}

#[test]
fn content_length_body_one_byte_per_write_is_echoed() {
    check_byte_by_byte(&post("/echo", SPLIT_BODY), SPLIT_BODY);
}

// ---- pipelining -------------------------------------------------------------------------

#[test]
fn pipelined_requests_with_bodies_are_answered_in_order() {
    let srv = start(config());
    let big = pattern(20_000);
    let thousand = pattern(1000);
    let steps: Vec<(Vec<u8>, u16, Vec<u8>)> = vec![
        (post("/echo", b"alpha"), 200, b"alpha".to_vec()),
        (b"GET /len HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(), 200, b"0".to_vec()),
        (post_chunked("/echo", b"2\r\nbe\r\n2;e=1\r\nta\r\n0\r\nT: v\r\n\r\n"), 200, b"beta".to_vec()),
        (post("/len", &thousand), 200, b"1000".to_vec()),
        (b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(), 200, b"hello".to_vec()),
        (post("/echo", &tricky_bytes()), 200, tricky_bytes()),
        (post_chunked("/echo", &chunked(&big, 7000)), 200, big.clone()),
        (post("/echo", &big), 200, big),
        (post("/echo", b""), 200, Vec::new()),
        (post_chunked("/len", b"0\r\n\r\n"), 200, b"0".to_vec()),
        (post("/echo", SMUGGLED.as_bytes()), 200, SMUGGLED.as_bytes().to_vec()),
        (
            b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nConnection: close\r\n\r\nomega".to_vec(),
            200,
            b"omega".to_vec(),
        ),
        // After Connection: close: never answered.
        (SMUGGLED.as_bytes().to_vec(), 0, Vec::new()),
    ];
    let batch: Vec<u8> = steps.iter().flat_map(|(raw, _, _)| raw.clone()).collect();
    let mut c = client(srv.addr());
    c.send(&batch);
    for (i, (raw, status, body)) in steps.iter().enumerate().filter(|(_, s)| s.1 != 0) {
        let r = c.recv();
        assert_eq!(r.status, *status, "response {i} to {}: {r:?}", shown(raw));
        assert!(
            r.body == *body,
            "response {i} to {}: body {} differs from {}",
            shown(raw),
            shown(&r.body),
            shown(body)
        );
    }
    c.expect_eof();
    assert_eq!(srv.smuggled(), 0, "a request inside a body (or after close) was answered");
}

#[test]
fn many_small_pipelined_posts_in_one_write() {
    let srv = start(config());
    let mut batch = Vec::new();
    for i in 0..200 {
        let body = format!("body number {i}\r\n\r\n");
        if i % 2 == 0 {
            batch.extend(post("/echo", body.as_bytes()));
        } else {
            batch.extend(post_chunked("/echo", &chunked(body.as_bytes(), 5)));
        }
    }
    batch.extend_from_slice(b"GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    let mut c = client(srv.addr());
    c.send(&batch);
    for i in 0..200 {
        let r = c.recv();
        assert_eq!((r.status, r.text()), (200, format!("body number {i}\r\n\r\n")), "response {i}");
    }
    assert_eq!(c.recv().text(), "hello");
    c.expect_eof();
}

// ---- the body size limit ----------------------------------------------------------------

fn limited() -> Echo {
    start(Config { max_body_bytes: 1000, ..config() })
}

/// Sends only `head` and expects a 413 with `Connection: close` before any body is sent,
/// then the connection closed with nothing more.
fn expect_413_before_body(addr: SocketAddr, head: &[u8]) {
    let mut c = client(addr);
    let sent = Instant::now();
    c.send(head);
    let r = c.recv();
    assert_eq!(r.status, 413, "{}: {r:?}", shown(head));
    assert!(closes(&r), "{}: 413 without Connection: close: {r:?}", shown(head));
    assert!(sent.elapsed() < Duration::from_secs(1), "the 413 took {:?}", sent.elapsed());
    c.expect_eof();
}

#[test]
fn content_length_at_the_limit_is_read_and_one_over_is_refused_before_the_body() {
    let srv = limited();
    let body = pattern(1000);
    let mut c = client(srv.addr());
    let r = c.exchange(post("/echo", &body));
    assert_eq!(r.status, 200, "{r:?}");
    assert!(r.body == body, "echo of the 1000-byte body differs");
    assert!(!closes(&r), "keep-alive after a body at the limit");
    let r = c.exchange("GET /len HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert_eq!(r.text(), "0");
    c.expect_eof();

    expect_413_before_body(srv.addr(), b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1001\r\n\r\n");
    // 19 digits still parse (and are far too large), whatever the route.
    expect_413_before_body(srv.addr(), b"PUT /len HTTP/1.1\r\nHost: x\r\nContent-Length: 9999999999999999999\r\n\r\n");
    expect_413_before_body(srv.addr(), b"POST /nowhere HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\n");
    // A chunk declared too large is refused at its size line, not once its bytes came:
    // 1001 bytes, the largest size, and a chunk that fits followed by one that does not.
    let chunk_512 = format!("200\r\n{}\r\n", "x".repeat(0x200));
    for chunks in [
        "3e9\r\n".to_string(),
        "ffffffffffffffff\r\n".into(),
        format!("{chunk_512}1ff\r\n"),
        format!("{chunk_512}1ff\r\nxy"),
    ] {
        let head = format!("POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n{chunks}");
        expect_413_before_body(srv.addr(), head.as_bytes());
    }

    // Refused with the body (and a request) following: neither is ever answered.
    let mut raw = b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1001\r\n\r\n".to_vec();
    raw.extend(std::iter::repeat_n(b'x', 1001));
    raw.extend_from_slice(SMUGGLED.as_bytes());
    check_refused(srv.addr(), "1001 bytes sent anyway", &raw, 413).unwrap();
    assert_eq!(srv.smuggled(), 0);
}

#[test]
fn bodies_held_at_once_are_limited_and_the_memory_comes_back() {
    // Room for two bodies of 1,000 bytes, not three.
    let stats = StatsHandle::new();
    let srv = start_counting(Config { max_body_bytes: 1000, max_body_memory: 2500, ..config() }, stats.clone());
    let half = pattern(500);
    // Two clients declare 1,000 bytes each and send half: both held.
    let mut waiting: Vec<Client> = (0..2)
        .map(|_| {
            let mut c = client(srv.addr());
            let mut raw = b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n".to_vec();
            raw.extend_from_slice(&half);
            c.send(raw);
            c
        })
        .collect();
    assert!(wait_for(Duration::from_secs(2), || stats.read().reading_body == 2), "{:?}", stats.read());
    // A third declared body would go over: 503 with Retry-After, before its body.
    let mut third = client(srv.addr());
    let started = Instant::now();
    third.send(b"POST /len HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n");
    let r = third.recv();
    assert_eq!((r.status, r.header("retry-after")), (503, Some("1")), "{r:?}");
    assert!(closes(&r), "503 without Connection: close: {r:?}");
    assert!(started.elapsed() < Duration::from_secs(1), "the 503 took {:?}", started.elapsed());
    third.expect_eof();
    // So would a chunked one, once it grows past what is left (500 bytes).
    let mut chunked_client = client(srv.addr());
    let r = chunked_client.exchange(post_chunked("/len", &chunked(&pattern(600), 100)));
    assert_eq!((r.status, r.header("retry-after")), (503, Some("1")), "{r:?}");
    // Bodies without a route to read them are held too, but a request without one is not refused.
    assert_eq!(client(srv.addr()).exchange("GET /hello HTTP/1.1\r\nHost: x\r\n\r\n").status, 200);
    // The two finish and are answered; then their memory is free for others.
    for c in &mut waiting {
        c.send(&half);
        let r = c.recv();
        assert_eq!(r.status, 200, "{r:?}");
        assert!(r.body == pattern(500).repeat(2), "echo differs");
    }
    for _ in 0..2 {
        let mut c = client(srv.addr());
        let r = c.exchange(post("/len", &pattern(1000)));
        assert_eq!((r.status, r.text()), (200, "1000".to_string()));
        let r = c.exchange(post_chunked("/len", &chunked(&pattern(1000), 300)));
        assert_eq!((r.status, r.text()), (200, "1000".to_string()));
    }
    // A client that leaves in the middle of its body gives its share back too.
    for _ in 0..3 {
        let mut c = client(srv.addr());
        c.send(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\nabc");
        drop(c);
    }
    // A body larger than all the memory for bodies could never be taken: 413.
    let small = start(Config { max_body_bytes: 1000, max_body_memory: 600, ..config() });
    let r = client(small.addr()).exchange(post("/len", &pattern(700)));
    assert_eq!(r.status, 413, "{r:?}");
    let r = client(small.addr()).exchange(post_chunked("/len", &chunked(&pattern(700), 100)));
    assert_eq!(r.status, 413, "{r:?}");
    assert_eq!(client(small.addr()).exchange(post("/len", &pattern(600))).text(), "600");
    let mut admitted = false;
    assert!(
        wait_for(Duration::from_secs(2), || {
            let r = client(srv.addr()).exchange(post("/len", &pattern(1000)));
            admitted = r.status == 200;
            admitted
        }),
        "bodies of clients that left are still counted"
    );
}

#[test]
fn chunked_body_growing_past_the_limit_is_refused() {
    let srv = limited();
    let body = pattern(1000);
    let mut c = client(srv.addr());
    for size in [1000, 400, 7] {
        let r = c.exchange(post_chunked("/echo", &chunked(&body, size)));
        assert_eq!(r.status, 200, "1000 bytes in chunks of {size}: {r:?}");
        assert!(r.body == body, "echo differs (chunks of {size})");
    }
    // With a trailer: trailer bytes are not body bytes.
    let mut wire = chunk(&body);
    wire.extend_from_slice(format!("0\r\nX-Long: {}\r\n\r\n", "t".repeat(2000)).as_bytes());
    let r = c.exchange(post_chunked("/len", &wire));
    assert_eq!((r.status, r.text()), (200, "1000".to_string()));

    let over = pattern(1001);
    let mut cases = vec![
        ("600 + 600", [chunk(&over[..600]), chunk(&pattern(600)), b"0\r\n\r\n".to_vec()].concat()),
        ("1001 in chunks of 100", chunked(&over, 100)),
        ("1000 then 1", [chunk(&body), chunk(b"!"), b"0\r\n\r\n".to_vec()].concat()),
    ];
    for (label, wire) in &mut cases {
        wire.extend_from_slice(SMUGGLED.as_bytes());
        check_refused(srv.addr(), label, &post_chunked("/echo", wire), 413).unwrap();
    }
    // A chunk declared far larger than the limit: refused once 1001 bytes of it are
    // in, without waiting for the rest of the chunk.
    let mut c = client(srv.addr());
    c.send(post_chunked("/echo", &[b"fffff\r\n".to_vec(), over].concat()));
    let r = c.recv();
    assert_eq!(r.status, 413, "{r:?}");
    assert!(closes(&r), "{r:?}");
    c.expect_eof();
    assert_eq!(srv.smuggled(), 0);
}

#[test]
fn max_body_flag_on_the_binary_is_honoured() {
    let root = site();
    let p = Spawned::start(
        &["--listen", "127.0.0.1:0", "--access-log", "off", "--max-body", "1K", root.path().to_str().unwrap()],
        1,
    );
    let addr = p.addr();
    // 1K is 1024 bytes: accepted (and read: the static files answer POST with 405,
    // and the connection goes on).
    let mut c = client(addr);
    for raw in [post("/", &pattern(1024)), post_chunked("/", &chunked(&pattern(1024), 300))] {
        let r = c.exchange(&raw);
        assert_eq!(r.status, 405, "{}: {r:?}", shown(&raw));
        assert!(!closes(&r), "{r:?}");
    }
    let r = c.exchange("GET /style.css HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert_eq!((r.status, r.text()), (200, "body { color: black }\n".to_string()));
    c.expect_eof();

    expect_413_before_body(addr, b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1025\r\n\r\n");
    let wire = [chunked(&pattern(1025), 500), b"GET /style.css HTTP/1.1\r\nHost: x\r\n\r\n".to_vec()].concat();
    check_refused(addr, "chunked 1025 bytes", &post_chunked("/", &wire), 413).unwrap();
}

#[test]
fn a_fast_upload_does_not_hold_up_other_clients() {
    // The server reads a body a slice per wakeup, like it sends: a client that
    // never runs out of bytes to send gets no more than its turn. One-byte chunks
    // make the body slow to decode, so that bytes keep waiting in the socket.
    const PIECES: usize = 64;
    const CHUNKS_PER_PIECE: usize = 1 << 17;
    const LEN: usize = PIECES * CHUNKS_PER_PIECE;
    let echo = start(Config { max_body_bytes: LEN, ..config() });
    let addr = echo.addr();
    let started = Arc::new(AtomicBool::new(false));
    let uploader = {
        let started = started.clone();
        thread::spawn(move || {
            let mut c = connect(addr);
            c.write_all(b"POST /len HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n").unwrap();
            let piece = b"1\r\nu\r\n".repeat(CHUNKS_PER_PIECE);
            for i in 0..PIECES {
                c.write_all(&piece).unwrap();
                if i == 1 {
                    started.store(true, Ordering::SeqCst);
                }
            }
            c.write_all(b"0\r\n\r\n").unwrap();
            let mut reader = std::io::BufReader::new(c);
            read_response(&mut reader, false)
        })
    };
    assert!(wait_for(Duration::from_secs(10), || started.load(Ordering::SeqCst)), "upload did not start");
    let mut probe = client(addr);
    let (mut slowest, mut probes) = (Duration::ZERO, 0);
    while !uploader.is_finished() {
        let t = Instant::now();
        assert_eq!(probe.get("/hello").text(), "hello");
        slowest = slowest.max(t.elapsed());
        probes += 1;
    }
    let r = uploader.join().unwrap();
    assert_eq!((r.status, r.text()), (200, LEN.to_string()));
    assert!(slowest < Duration::from_millis(150), "a GET took {slowest:?} next to the upload ({probes} probes)");
}

// ---- Expect: 100-continue ---------------------------------------------------------------

const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

/// Reads exactly `CONTINUE.len()` bytes (the body has not been sent yet).
fn read_continue(c: &mut Client, what: &str) {
    let mut got = vec![0u8; CONTINUE.len()];
    match c.reader.read_exact(&mut got) {
        Ok(()) => assert_eq!(got, CONTINUE, "{what}: expected 100 Continue, got {}", shown(&got)),
        Err(e) => panic!("{what}: no 100 Continue before the body was sent: {e}"),
    }
}

#[test]
fn expect_100_continue_is_answered_before_the_body_is_sent() {
    let srv = limited();
    let mut c = client(srv.addr());
    c.send("POST /echo HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 11\r\n\r\n");
    read_continue(&mut c, "Content-Length 11");
    let r = c.exchange("hello world");
    assert_eq!((r.status, r.text()), (200, "hello world".to_string()));

    // Chunked, with the token in another case; the connection went on.
    c.send("POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nExpect: 100-Continue\r\n\r\n");
    read_continue(&mut c, "chunked");
    let r = c.exchange("3\r\nabc\r\n0\r\n\r\n");
    assert_eq!((r.status, r.text()), (200, "abc".to_string()));

    // At the limit exactly.
    c.send("POST /len HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 1000\r\n\r\n");
    read_continue(&mut c, "Content-Length 1000");
    let r = c.exchange(pattern(1000));
    assert_eq!((r.status, r.text()), (200, "1000".to_string()));

    // No body, no 100: the final response comes first.
    let r = c.exchange("POST /len HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 0\r\n\r\n");
    assert_eq!((r.status, r.text()), (200, "0".to_string()));
    let r = c.exchange("GET /len HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert_eq!(r.text(), "0");
    c.expect_eof();
}

#[test]
fn expect_100_continue_over_the_limit_gets_413_without_100() {
    let srv = limited();
    // `recv` insists on a final status line: a 100 first would fail it.
    expect_413_before_body(
        srv.addr(),
        b"POST /echo HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 5000\r\n\r\n",
    );
    // Even when the client sends the body anyway, nothing but the 413 comes back.
    let mut raw = b"POST /echo HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 1001\r\n\r\n".to_vec();
    raw.extend_from_slice(&pattern(1001));
    raw.extend_from_slice(SMUGGLED.as_bytes());
    check_refused(srv.addr(), "Expect, 1001 bytes sent anyway", &raw, 413).unwrap();
    assert_eq!(srv.smuggled(), 0);
}

#[test]
fn expect_100_continue_in_http10_gets_no_100() {
    let srv = limited();
    let mut c = client(srv.addr());
    c.send("POST /echo HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n");
    // Nothing may arrive before the body is sent.
    c.stream().set_read_timeout(Some(Duration::from_millis(300))).unwrap();
    let mut one = [0u8; 1];
    match c.reader.read(&mut one) {
        Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
        other => panic!("HTTP/1.0 with Expect: something arrived before the body: {other:?} {one:?}"),
    }
    c.stream().set_read_timeout(Some(READ_TIMEOUT)).unwrap();
    let r = c.exchange("hello");
    assert_eq!((r.status, r.text()), (200, "hello".to_string()));
    assert!(closes(&r), "HTTP/1.0 without keep-alive: {r:?}");
    c.expect_eof();
}

// ---- request smuggling ------------------------------------------------------------------

/// `POST /echo` HTTP/1.1 with `fields` and then `body`, where `body` carries SMUGGLED.
fn with_fields(fields: &str, body: &str) -> Vec<u8> {
    format!("POST /echo HTTP/1.1\r\nHost: x\r\n{fields}\r\n{body}").into_bytes()
}

#[test]
fn conflicting_or_invalid_content_length_is_refused() {
    let s = SMUGGLED;
    let n = s.len();
    let body = format!("0\r\n\r\n{s}");
    let cases: Vec<(&str, Vec<u8>, u16)> = vec![
        (
            "CL then TE",
            with_fields(&format!("Content-Length: {}\r\nTransfer-Encoding: chunked\r\n", body.len()), &body),
            400,
        ),
        (
            "TE then CL",
            with_fields(&format!("Transfer-Encoding: chunked\r\nContent-Length: {}\r\n", body.len()), &body),
            400,
        ),
        ("CL 0 and TE", with_fields("Content-Length: 0\r\nTransfer-Encoding: chunked\r\n", &body), 400),
        ("differing CLs", with_fields(&format!("Content-Length: {n}\r\nContent-Length: 0\r\n"), s), 400),
        ("differing CLs, other order", with_fields(&format!("Content-Length: 0\r\nContent-Length: {n}\r\n"), s), 400),
        ("CL list 1, 2", with_fields("Content-Length: 1, 2\r\n", &format!("x{s}")), 400),
        ("CL list of equal values", with_fields(&format!("Content-Length: {n}, {n}\r\n"), s), 400),
        ("equal CLs on two lines", with_fields(&format!("Content-Length: {n}\r\nContent-Length: {n}\r\n"), s), 400),
        ("CL +5", with_fields("Content-Length: +5\r\n", &format!("hello{s}")), 400),
        ("CL 0x5", with_fields("Content-Length:  0x5\r\n", &format!("hello{s}")), 400),
        ("CL 5 5", with_fields("Content-Length: 5 5\r\n", &format!("hello{s}")), 400),
        ("CL -1", with_fields("Content-Length: -1\r\n", s), 400),
        ("CL 20 digits", with_fields("Content-Length: 18446744073709551616\r\n", s), 400),
        (
            "CL 20 digits, leading zeros",
            with_fields("Content-Length: 00000000000000000005\r\n", &format!("hello{s}")),
            400,
        ),
        ("CL 40 digits", with_fields(&format!("Content-Length: {}\r\n", "9".repeat(40)), s), 400),
        ("CL empty", with_fields("Content-Length:\r\n", s), 400),
        ("CL 5.0", with_fields("Content-Length: 5.0\r\n", &format!("hello{s}")), 400),
        ("CL obs-fold", with_fields("Content-Length: 5\r\n 0\r\n", &format!("hello{s}")), 400),
        ("CL space before colon", with_fields("Content-Length : 5\r\n", &format!("hello{s}")), 400),
        ("CL 19 digits", with_fields("Content-Length: 9999999999999999999\r\n", s), 413),
    ];
    check_all_refused(cases);
}

#[test]
fn bad_transfer_encoding_is_refused() {
    let s = SMUGGLED;
    let body = format!("0\r\n\r\n{s}");
    let te = |v: &str| with_fields(&format!("Transfer-Encoding: {v}\r\n"), &body);
    let cases: Vec<(&str, Vec<u8>, u16)> = vec![
        ("chunked, identity", te("chunked, identity"), 400),
        ("chunked, chunked", te("chunked, chunked"), 400),
        (
            "chunked in two fields",
            with_fields("Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n", &body),
            400,
        ),
        (
            "chunked then identity field",
            with_fields("Transfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n", &body),
            400,
        ),
        ("gzip, chunked", te("gzip, chunked"), 501),
        ("identity", te("identity"), 501),
        ("xchunked", te("xchunked"), 501),
        ("chunkedx", te("chunkedx"), 501),
        ("quoted chunked", te("\"chunked\""), 501),
        ("empty", te(""), 400),
        (
            "HTTP/1.0 chunked",
            format!("POST /echo HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n{body}").into_bytes(),
            400,
        ),
        ("obs-fold continuation", with_fields("Transfer-Encoding: identity\r\n chunked\r\n", &body), 400),
        ("obs-fold value", with_fields("Transfer-Encoding:\r\n chunked\r\n", &body), 400),
        ("space before colon", with_fields("Transfer-Encoding : chunked\r\n", &body), 400),
        ("tab before colon", with_fields("Transfer-Encoding\t: chunked\r\n", &body), 400),
        ("vertical tab", with_fields("Transfer-Encoding: \x0bchunked\r\n", &body), 400),
    ];
    check_all_refused(cases);
}

#[test]
fn bad_chunked_framing_is_refused() {
    let s = SMUGGLED;
    let c = |wire: &str| post_chunked("/echo", wire.as_bytes());
    let cases: Vec<(&str, Vec<u8>, u16)> = vec![
        ("size zz", c(&format!("zz\r\n{s}")), 400),
        ("size -1", c(&format!("-1\r\n{s}")), 400),
        ("size +5", c(&format!("+5\r\nhello\r\n0\r\n\r\n{s}")), 400),
        ("size 0x5", c(&format!("0x5\r\nhello\r\n0\r\n\r\n{s}")), 400),
        ("size 17 hex digits", c(&format!("10000000000000005\r\nhello\r\n0\r\n\r\n{s}")), 400),
        ("size 20 f", c(&format!("ffffffffffffffffffff\r\n{s}")), 400),
        ("empty size line", c(&format!("\r\nhello\r\n0\r\n\r\n{s}")), 400),
        ("space before size", c(&format!(" 5\r\nhello\r\n0\r\n\r\n{s}")), 400),
        ("missing CRLF after data", c(&format!("5\r\nhello{s}")), 400),
        ("data longer than size", c(&format!("3\r\nhello\r\n0\r\n\r\n{s}")), 400),
        ("bare LF after size", c(&format!("5\nhello\r\n0\r\n\r\n{s}")), 400),
        ("bare LF after data", c(&format!("5\r\nhello\n0\r\n\r\n{s}")), 400),
        ("bare CR after data", c(&format!("5\r\nhello\r0\r\n\r\n{s}")), 400),
        ("bare LF after last chunk size", c(&format!("5\r\nhello\r\n0\n\r\n{s}")), 400),
        ("bare LFs throughout", c(&format!("5\nhello\n0\n\n{s}")), 400),
        ("bare LF ending the body", c(&format!("5\r\nhello\r\n0\r\n\n{s}")), 400),
        ("bare LF ending a trailer field", c(&format!("5\r\nhello\r\n0\r\nX-T: v\n\r\n{s}")), 400),
        ("bare LF inside the trailer section", c(&format!("0\r\nX-T: v\nX-U: w\r\n\r\n{s}")), 400),
        ("control byte in extension", c(&format!("5;a\x01\r\nhello\r\n0\r\n\r\n{s}")), 400),
        ("LF in extension", c(&format!("5;a=b\nhello\r\n0\r\n\r\n{s}")), 400),
    ];
    check_all_refused(cases);
}

#[test]
fn chunk_extension_and_trailer_limits() {
    // Within the limits (src/body.rs: 1024 extension bytes per chunk, 8192 trailer bytes).
    let srv = start(config());
    let mut c = client(srv.addr());
    let ext = format!(";{}", "e".repeat(1022)); // 1023 bytes with the ';'
    let ok = format!("5{ext}\r\nhello\r\n1{ext}\r\n!\r\n0{ext}\r\n\r\n");
    let r = c.exchange(post_chunked("/echo", ok.as_bytes()));
    assert_eq!((r.status, r.text()), (200, "hello!".to_string()), "1023-byte extensions");
    let trailer = format!("0\r\n{}\r\n", "X-T: 0123456789abcdef\r\n".repeat(300)); // 7200 bytes
    let r = c.exchange(post_chunked("/echo", format!("5\r\nhello\r\n{trailer}").as_bytes()));
    assert_eq!((r.status, r.text()), (200, "hello".to_string()), "a 7200-byte trailer section");
    drop(srv);

    let s = SMUGGLED;
    let long_ext = format!(";{}", "e".repeat(1025));
    let cases: Vec<(&str, Vec<u8>, u16)> = vec![
        ("long extension", post_chunked("/echo", format!("5{long_ext}\r\nhello\r\n0\r\n\r\n{s}").as_bytes()), 400),
        ("long extension on the last chunk", post_chunked("/echo", format!("0{long_ext}\r\n\r\n{s}").as_bytes()), 400),
        (
            "long trailer field",
            post_chunked("/echo", format!("5\r\nhello\r\n0\r\nX-T: {}\r\n\r\n{s}", "t".repeat(9000)).as_bytes()),
            400,
        ),
        (
            "many trailer fields",
            post_chunked("/echo", format!("0\r\n{}\r\n{s}", "X-T: 0123456789abcdef\r\n".repeat(400)).as_bytes()),
            400,
        ),
    ];
    check_all_refused(cases);
}

// ---- the body deadline ------------------------------------------------------------------

fn deadline_config() -> Config {
    Config { body_timeout: Duration::from_millis(300), body_min_rate: 1000, ..config() }
}

#[test]
fn body_trickled_below_the_minimum_rate_gets_408_while_others_are_served() {
    let srv = start(deadline_config());
    let addr = srv.addr();
    let mut slow = client(addr);
    slow.send("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 10000\r\n\r\n");
    let started = Instant::now();
    let mut writer = slow.stream().try_clone().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let trickle = {
        let stop = stop.clone();
        thread::spawn(move || {
            let mut sent = 0;
            // A slow client: one byte every 20 ms.
            while sent < 10_000 && !stop.load(Ordering::SeqCst) && writer.write_all(b"x").is_ok() {
                sent += 1;
                thread::sleep(Duration::from_millis(20));
            }
            sent
        })
    };
    // Another client is served while the slow one trickles.
    let mut other = client(addr);
    for i in 0..3 {
        let r = other.exchange(post("/echo", format!("quick {i}").as_bytes()));
        assert_eq!((r.status, r.text()), (200, format!("quick {i}")));
    }
    let served = started.elapsed();
    assert!(served < Duration::from_millis(250), "the other client waited {served:?}");

    let r = slow.recv();
    let answered = started.elapsed();
    stop.store(true, Ordering::SeqCst);
    assert_eq!(r.status, 408, "{r:?}");
    assert!(closes(&r), "408 without Connection: close: {r:?}");
    assert!(
        answered >= Duration::from_millis(250) && answered <= Duration::from_millis(1000),
        "408 after {answered:?}, with a 300 ms window"
    );
    slow.expect_eof();
    let sent = trickle.join().unwrap();
    assert!(sent < 100, "{sent} bytes trickled before the 408 arrived");
    let r = other.exchange(post("/echo", b"still here"));
    assert_eq!(r.text(), "still here");
}

#[test]
fn body_stalling_after_progress_gets_408_in_a_later_window() {
    let srv = start(deadline_config());
    let mut c = client(srv.addr());
    let started = Instant::now();
    // 2500 bytes at once (enough for a window), then nothing.
    c.send([b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 10000\r\n\r\n".to_vec(), pattern(2500)].concat());
    let r = c.recv();
    let answered = started.elapsed();
    assert_eq!(r.status, 408, "{r:?}");
    assert!(closes(&r), "{r:?}");
    assert!(
        answered >= Duration::from_millis(450) && answered <= Duration::from_millis(1500),
        "408 after {answered:?}: the first 300 ms window had progress, the second none"
    );
    c.expect_eof();
}

#[test]
fn body_sent_faster_than_the_minimum_rate_may_take_longer_than_one_window() {
    // 1 s windows: a client stalled for most of a second by a loaded machine still passes.
    let srv = start(Config { body_timeout: Duration::from_secs(1), ..deadline_config() });
    let body = pattern(10_000);
    for chunked_body in [false, true] {
        let mut c = client(srv.addr());
        let started = Instant::now();
        let (head, wire) = if chunked_body {
            (post_chunked("/echo", b""), chunked(&body, 2500))
        } else {
            (
                format!("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n", body.len()).into_bytes(),
                body.clone(),
            )
        };
        c.send(head);
        // Four pieces, 400 ms apart: about 1.2 s in all, more than one window.
        let pieces: Vec<&[u8]> = wire.chunks(wire.len().div_ceil(4)).collect();
        for (i, piece) in pieces.iter().enumerate() {
            if i > 0 {
                thread::sleep(Duration::from_millis(400));
            }
            c.send(piece);
        }
        let r = c.recv();
        let took = started.elapsed();
        assert_eq!(r.status, 200, "chunked {chunked_body}: {r:?} after {took:?}");
        assert!(r.body == body, "chunked {chunked_body}: echo differs");
        assert!(took >= Duration::from_millis(1100), "the body should have taken > 1 window: {took:?}");
        let r = c.exchange("GET /len HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        assert_eq!(r.text(), "0");
        c.expect_eof();
    }
}

// ---- clients that leave -----------------------------------------------------------------

#[test]
fn client_closing_in_the_middle_of_a_body_does_not_disturb_the_server() {
    let srv = start(config());
    let addr = srv.addr();
    let mut steady = client(addr);
    assert_eq!(steady.exchange(post("/echo", b"before")).text(), "before");

    let halves: Vec<Vec<u8>> = vec![
        [b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n".to_vec(), pattern(500)].concat(),
        post_chunked("/echo", b"3e8\r\nhalf a chunk"),
        post_chunked("/echo", b"5\r\nhello\r\n0\r\nX-Trailer: incompl"),
        [b"POST /echo HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 100\r\n\r\n".to_vec()].concat(),
    ];
    for reset in [false, true] {
        for half in &halves {
            let mut s = connect(addr);
            s.write_all(half).unwrap();
            if reset {
                socket2::SockRef::from(&s).set_linger(Some(Duration::ZERO)).unwrap();
            } else {
                s.shutdown(std::net::Shutdown::Write).unwrap();
                // The server sees EOF in the middle of the body: it closes without answering
                // (or answers with an error), never with an echo.
                s.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
                let (out, end) = read_until_end(&mut s);
                assert_ne!(end, End::TimedOut, "{}: the server kept a half-closed body open", shown(half));
                let rs = parse_responses(&out).unwrap_or_default();
                assert!(
                    rs.iter().all(|r| r.status != 200),
                    "{}: an incomplete body was answered 200: {:?}",
                    shown(half),
                    statuses(&rs)
                );
            }
            drop(s);
        }
    }
    // New and old connections are served.
    let mut c = client(addr);
    assert_eq!(c.exchange(post("/echo", b"after")).text(), "after");
    assert_eq!(steady.exchange(post_chunked("/echo", &chunked(b"steady", 2))).text(), "steady");
    assert_eq!(srv.smuggled(), 0);
}
