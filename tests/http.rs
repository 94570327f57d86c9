//! HTTP/1.1 protocol behaviour over real sockets: persistence, pipelining, HEAD,
//! the headers every response carries, request targets, unused request bodies,
//! error responses, size limits and hostile input.

mod common;

use common::*;

use std::io::Write;
use std::net::{Shutdown, SocketAddr};
use std::time::{Duration, Instant, SystemTime};

use spindle::Config;

const INDEX: &str = "<!DOCTYPE html><title>home</title>hello\n";
const CSS: &str = "body { color: black }\n";
const PAGE: &str = "sub page\n";

// ---- helpers ------------------------------------------------------------------------

/// `GET path` with `Host`; the connection persists.
fn get_req(path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: test\r\n\r\n")
}

/// `GET path` with `Host` and `Connection: close`.
fn get_close(path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n")
}

/// The body the test site holds at `path`, or `None` where it has nothing (404).
fn expected_body(path: &str) -> Option<&'static str> {
    match path {
        "/" | "/index.html" => Some(INDEX),
        "/style.css" => Some(CSS),
        "/sub/page.txt" => Some(PAGE),
        _ => None,
    }
}

/// Asserts `r` is the right answer to `GET path`.
fn assert_serves(r: &Response, path: &str) {
    match expected_body(path) {
        Some(body) => {
            assert_eq!(r.status, 200, "GET {path}: {r:?}");
            assert_eq!(r.text(), body, "GET {path}");
        }
        None => assert_eq!(r.status, 404, "GET {path}: {r:?}"),
    }
}

/// The `Connection` header, lower-cased.
fn connection(r: &Response) -> Option<String> {
    r.header("connection").map(str::to_ascii_lowercase)
}

/// Checks what every response must carry: exactly one `Date` (a current IMF-fixdate),
/// one non-empty `Server` and one numeric `Content-Length`.
fn check_common(r: &Response) {
    for name in ["date", "server", "content-length"] {
        let n = r.headers.iter().filter(|(h, _)| h == name).count();
        assert_eq!(n, 1, "{n} {name} headers in {r:?}");
    }
    let date = r.header("date").unwrap();
    let when = httpdate::parse_http_date(date).unwrap_or_else(|e| panic!("Date {date:?}: {e}"));
    assert_eq!(httpdate::fmt_http_date(when), date, "Date is not an IMF-fixdate");
    let skew = SystemTime::now().duration_since(when).unwrap_or_else(|e| e.duration());
    assert!(skew < Duration::from_secs(60), "Date {date} is {skew:?} off");
    assert!(!r.header("server").unwrap().is_empty(), "empty Server header");
    let len = r.header("content-length").unwrap();
    assert!(len.parse::<u64>().is_ok(), "Content-Length {len:?}");
}

/// A client that checks the fields every response must have.
fn client(addr: SocketAddr) -> Client {
    Client::new(addr).checking(check_common)
}

/// Sends `raw` on a new connection, expects one response with `Connection: close`,
/// then the server closing the connection.
fn exchange_and_close(addr: SocketAddr, raw: &[u8]) -> Response {
    let mut c = client(addr);
    c.send(raw);
    let r = c.recv();
    assert_eq!(connection(&r).as_deref(), Some("close"), "{:?} -> {r:?}", String::from_utf8_lossy(raw));
    c.expect_eof();
    r
}

/// A `GET /` head of exactly `len` bytes (padded by an `X-Pad` field) that closes the connection.
fn head_of_len(len: usize) -> String {
    let bare = "GET / HTTP/1.1\r\nHost: test\r\nConnection: close\r\nX-Pad: \r\n\r\n".len();
    assert!(len >= bare);
    let head =
        format!("GET / HTTP/1.1\r\nHost: test\r\nConnection: close\r\nX-Pad: {}\r\n\r\n", "p".repeat(len - bare));
    assert_eq!(head.len(), len);
    head
}

/// `data` as one chunk of a chunked body.
fn chunk(data: &str) -> String {
    format!("{:x}\r\n{data}\r\n", data.len())
}

/// A deterministic xorshift64 generator.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Fragments hostile requests are made of.
const PIECES: &[&[u8]] = &[
    b"GET",
    b"HEAD",
    b"POST",
    b"FOO",
    b" ",
    b"  ",
    b"/",
    b"/style.css",
    b"/%zz",
    b"/%",
    b"/%00",
    b"/../../etc/passwd",
    b"?q=1",
    b"#frag",
    b"http://x/",
    b"*",
    b"HTTP/1.1",
    b"HTTP/1.0",
    b"HTTP/2.0",
    b"HTTP/9",
    b"HTTP/",
    b"\r\n",
    b"\r\n\r\n",
    b"\r",
    b"\n",
    b"\0",
    b"\0\0\0\0",
    b"\xff\xfe",
    b"\x80\x81",
    b"\x7f",
    b"\t",
    b":",
    b"Host: x",
    b"Host:",
    b"Host: a\r\nHost: b",
    b"Content-Length: ",
    b"Content-Length: 5",
    b"Transfer-Encoding: chunked",
    b"Transfer-Encoding: gzip",
    b"Connection: close",
    b"Connection: keep-alive",
    b"Expect: 100-continue",
    b"99999999999999999999999999",
    b"18446744073709551616",
    b"-1",
    b"0x10",
    b"ffffffffffffffffffff\r\n",
    b"5\r\nhello\r\n",
    b"0\r\n\r\n",
];

/// One hostile byte string.
fn garbage(rng: &mut Rng) -> Vec<u8> {
    let mut out = Vec::new();
    let mode = rng.below(6);
    if mode == 2 {
        out.extend_from_slice(b"GET / HTTP/1.1\r\nHost: x\r\n");
    }
    match mode {
        0 => {
            let n = 1 + rng.below(300);
            out.extend((0..n).map(|_| rng.next() as u8));
        }
        1..=3 => {
            let n = 1 + rng.below(40);
            for _ in 0..n {
                out.extend_from_slice(PIECES[rng.below(PIECES.len())]);
            }
            if mode == 3 {
                for _ in 0..1 + rng.below(4) {
                    let at = rng.below(out.len());
                    out[at] = rng.next() as u8;
                }
            }
        }
        4 => {
            // A valid request with garbage in its framing, followed by more.
            let len = PIECES[rng.below(PIECES.len())];
            out.extend_from_slice(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: ");
            out.extend_from_slice(len);
            out.extend_from_slice(b"\r\n\r\n");
            for _ in 0..rng.below(10) {
                out.extend_from_slice(PIECES[rng.below(PIECES.len())]);
            }
        }
        _ => {
            // Larger than the head buffer.
            let piece = PIECES[rng.below(PIECES.len())];
            out.extend_from_slice(b"GET /");
            while out.len() < 9000 + rng.below(4000) {
                out.extend_from_slice(piece);
            }
        }
    }
    out
}

// ---- persistence --------------------------------------------------------------------

#[test]
fn http11_connection_persists_by_default() {
    let root = site();
    let server = TestServer::with_root(root.path());
    let mut c = client(server.addr);
    for path in ["/", "/style.css", "/sub/page.txt", "/missing", "/style.css"] {
        let r = c.exchange(get_req(path));
        assert_serves(&r, path);
        assert_ne!(connection(&r).as_deref(), Some("close"), "{path}: {r:?}");
    }
    let r = c.exchange(get_close("/"));
    assert_serves(&r, "/");
}

#[test]
fn connection_close_from_client_closes_after_the_response() {
    let root = site();
    let server = TestServer::with_root(root.path());
    let mut c = client(server.addr);
    assert_serves(&c.exchange(get_req("/sub/page.txt")), "/sub/page.txt");
    let r = c.exchange(get_close("/style.css"));
    assert_serves(&r, "/style.css");
    assert_eq!(connection(&r).as_deref(), Some("close"));
    c.expect_eof();
    // Also with other options in the list and odd case.
    let r = exchange_and_close(server.addr, b"GET / HTTP/1.1\r\nHost: test\r\nConnection: foo, CLOSE\r\n\r\n");
    assert_serves(&r, "/");
    let r = exchange_and_close(
        server.addr,
        b"GET / HTTP/1.1\r\nHost: test\r\nConnection: keep-alive\r\nConnection: close\r\n\r\n",
    );
    assert_serves(&r, "/");
}

#[test]
fn http10_closes_unless_keep_alive_is_asked_for() {
    let root = site();
    let server = TestServer::with_root(root.path());

    let r = exchange_and_close(server.addr, b"GET /style.css HTTP/1.0\r\n\r\n");
    assert_serves(&r, "/style.css");

    let mut c = client(server.addr);
    let r = c.exchange("GET /style.css HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    assert_serves(&r, "/style.css");
    assert_eq!(connection(&r).as_deref(), Some("keep-alive"), "{r:?}");
    let r = c.exchange("GET /sub/page.txt HTTP/1.0\r\nHost: test\r\nConnection: Keep-Alive\r\n\r\n");
    assert_serves(&r, "/sub/page.txt");
    assert_eq!(connection(&r).as_deref(), Some("keep-alive"), "{r:?}");
    // Without the option the next HTTP/1.0 request ends the connection.
    let r = c.exchange("GET / HTTP/1.0\r\n\r\n");
    assert_serves(&r, "/");
    assert_eq!(connection(&r).as_deref(), Some("close"), "{r:?}");
    c.expect_eof();
}

// ---- pipelining ---------------------------------------------------------------------

#[test]
fn ten_pipelined_requests_in_one_write_are_answered_in_order() {
    let root = site();
    let server = TestServer::with_root(root.path());
    let paths = [
        "/",
        "/style.css",
        "/sub/page.txt",
        "/missing",
        "/style.css",
        "/",
        "/sub/nope",
        "/sub/page.txt",
        "/",
        "/style.css",
    ];
    let mut batch = String::new();
    for (i, path) in paths.iter().enumerate() {
        batch.push_str(&if i + 1 == paths.len() { get_close(path) } else { get_req(path) });
    }
    let mut c = client(server.addr);
    c.send(&batch);
    for path in paths {
        assert_serves(&c.recv(), path);
    }
    c.expect_eof();
}

#[test]
fn pipelined_responses_with_bodies_sent_from_memory_arrive_whole_and_in_order() {
    let root = site();
    // Kept in memory by the file cache, and too large to be copied behind its head:
    // sent from the cache in the same writev as the head (and the heads before it).
    let big: Vec<u8> = (0..48 * 1024).map(|i| (i % 251) as u8).collect();
    std::fs::write(root.path().join("big.bin"), &big).unwrap();
    let server = TestServer::with_root(root.path());
    let paths = ["/big.bin", "/style.css", "/big.bin", "/big.bin", "/style.css"];
    let mut batch = String::new();
    for (i, path) in paths.iter().enumerate() {
        batch.push_str(&if i + 1 == paths.len() { get_close(path) } else { get_req(path) });
    }
    // Twice: the first batch fills the cache, the second is answered from it.
    for round in 0..2 {
        // A small receive buffer: the server's writes stop part-way, in heads and bodies.
        let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        socket.set_recv_buffer_size(4096).unwrap();
        socket.connect(&server.addr.into()).unwrap();
        let mut c = Client::from_stream(socket.into());
        c.send(&batch);
        for path in paths {
            let r = c.recv();
            assert_eq!(r.status, 200, "round {round}: {path}");
            if path == "/big.bin" {
                assert!(r.body == big, "round {round}: corrupt body of {} bytes", r.body.len());
            } else {
                assert_serves(&r, path);
            }
        }
        c.expect_eof();
    }
}

#[test]
fn pipelined_batch_split_anywhere_is_completed_by_the_next_write() {
    let root = site();
    let server = TestServer::with_root(root.path());
    let reqs = [get_req("/"), get_req("/sub/page.txt"), get_close("/style.css")];
    let paths = ["/", "/sub/page.txt", "/style.css"];
    let batch = reqs.concat();
    let mut ends = Vec::new();
    for r in &reqs {
        ends.push(ends.last().copied().unwrap_or(0) + r.len());
    }
    for split in 1..batch.len() {
        let mut c = client(server.addr);
        c.send(&batch[..split]);
        // Answers to the requests that are complete arrive before the rest is sent.
        let complete = ends.iter().filter(|&&e| e <= split).count();
        for path in &paths[..complete] {
            assert_serves(&c.recv(), path);
        }
        c.send(&batch[split..]);
        for path in &paths[complete..] {
            assert_serves(&c.recv(), path);
        }
        c.expect_eof();
    }
}

#[test]
fn pipelined_requests_after_connection_close_are_not_answered() {
    let root = site();
    let server = TestServer::with_root(root.path());
    let mut c = client(server.addr);
    c.send(get_req("/") + &get_close("/style.css") + &get_req("/missing") + &get_req("/sub/page.txt"));
    assert_serves(&c.recv(), "/");
    let r = c.recv();
    assert_serves(&r, "/style.css");
    assert_eq!(connection(&r).as_deref(), Some("close"));
    c.expect_eof();
}

#[test]
fn pipelined_requests_after_a_malformed_one_are_not_answered() {
    let root = site();
    let server = TestServer::with_root(root.path());
    let mut c = client(server.addr);
    c.send(get_req("/style.css") + "GET / HTTP/1.1\r\nHost: test\r\nNo colon here\r\n\r\n" + &get_req("/"));
    assert_serves(&c.recv(), "/style.css");
    let r = c.recv();
    assert_error_page(&r, 400);
    assert_eq!(connection(&r).as_deref(), Some("close"));
    c.expect_eof();
}

#[test]
fn two_hundred_pipelined_requests_in_one_write() {
    let root = site();
    let server = TestServer::with_root(root.path());
    let cycle = ["/", "/style.css", "/sub/page.txt", "/missing", "/index.html"];
    let paths: Vec<&str> = (0..200).map(|i| cycle[i % cycle.len()]).collect();
    let mut batch = String::new();
    for (i, path) in paths.iter().enumerate() {
        let connection = if i + 1 == paths.len() { "close" } else { "keep-alive" };
        batch.push_str(&format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: {connection}\r\n\r\n"));
    }
    assert!(batch.len() > 8192, "the batch should exceed one read buffer");
    let mut c = client(server.addr);
    c.send(&batch);
    for (i, path) in paths.iter().enumerate() {
        let r = c.recv();
        assert_serves(&r, path);
        if i + 1 < paths.len() {
            assert_ne!(connection(&r).as_deref(), Some("close"), "response {i}");
        }
    }
    c.expect_eof();
}

#[test]
fn pipelined_responses_larger_than_the_write_buffer_stay_in_order() {
    let root = site();
    let big: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(root.path().join("big.bin"), &big).unwrap();
    let small = Config { write_buffer_bytes: 4096, send_budget: 8192, ..Config::default() };
    // A zero budget still sends (one write per wakeup) rather than re-polling forever.
    let zero = Config { send_budget: 0, send_lowat: 0, ..Config::default() };
    for config in [Config::default(), small, zero] {
        let server = TestServer::start(root.path(), config.clone());
        let mut c = client(server.addr);
        c.send(
            get_req("/big.bin")
                + &get_req("/style.css")
                + "HEAD /big.bin HTTP/1.1\r\nHost: test\r\n\r\n"
                + &get_req("/big.bin?again")
                + &get_req("/missing")
                + &get_close("/sub/page.txt"),
        );
        let r = c.recv();
        assert_eq!(r.status, 200);
        assert!(r.body == big, "first big body differs ({config:?})");
        assert_serves(&c.recv(), "/style.css");
        let head = c.recv_head();
        assert_eq!(head.header("content-length"), Some("300000"));
        let r = c.recv();
        assert!(r.status == 200 && r.body == big, "second big body differs ({config:?})");
        assert_serves(&c.recv(), "/missing");
        assert_serves(&c.recv(), "/sub/page.txt");
        c.expect_eof();
    }
}

#[test]
fn empty_lines_before_a_request_line_are_ignored() {
    let root = site();
    let server = TestServer::with_root(root.path());
    let mut c = client(server.addr);
    c.send("\r\n".to_string() + &get_req("/style.css") + "\r\n" + &get_close("/sub/page.txt"));
    assert_serves(&c.recv(), "/style.css");
    assert_serves(&c.recv(), "/sub/page.txt");
    c.expect_eof();
}

#[test]
fn an_empty_line_after_a_request_leaves_the_connection_idle() {
    // Some clients end a body with CRLF: that is no request, and must not earn a
    // 408 at the header timeout; the connection just idles out (RFC 9112 §2.2).
    let root = site();
    let config = Config {
        header_timeout: Duration::from_millis(300),
        idle_timeout: Duration::from_millis(1500),
        ..Config::default()
    };
    let server = TestServer::start(root.path(), config);
    let mut c = client(server.addr);
    c.send("POST /style.css HTTP/1.1\r\nHost: test\r\nContent-Length: 3\r\n\r\nabc\r\n");
    assert_eq!(c.recv().status, 405);
    let started = Instant::now();
    let (rest, end) = c.rest();
    assert!(rest.is_empty(), "sent after the 405: {:?}", String::from_utf8_lossy(&rest));
    assert_eq!(end, End::Eof);
    assert!(
        started.elapsed() >= Duration::from_millis(1000),
        "closed before the idle timeout: {:?}",
        started.elapsed()
    );
    // Empty lines on their own, then a request: served.
    let mut c = client(server.addr);
    c.send("\r\n\r\n");
    assert_serves(&c.exchange(get_req("/style.css")), "/style.css");
}

#[test]
fn a_bare_cr_in_a_head_is_refused_at_once() {
    let root = site();
    let config = Config { header_timeout: Duration::from_secs(60), ..Config::default() };
    let server = TestServer::start(root.path(), config);
    for raw in [&b"GET / HTTP/1.1\r\nHost: test\r\n\r\r\n"[..], b"GET / HTTP/1.1\rHost: test\r\r"] {
        let started = Instant::now();
        let r = exchange_and_close(server.addr, raw);
        assert_error_page(&r, 400);
        assert!(started.elapsed() < Duration::from_secs(5), "{:?} waited {:?}", raw, started.elapsed());
    }
}

// ---- HEAD -----------------------------------------------------------------------------

#[test]
fn head_has_the_headers_of_get_and_no_body() {
    let root = site();
    let server = TestServer::with_root(root.path());
    let mut c = client(server.addr);
    let mut batch = String::new();
    for path in ["/style.css", "/missing", "/"] {
        batch.push_str(&format!("HEAD {path} HTTP/1.1\r\nHost: test\r\n\r\n"));
        batch.push_str(&get_req(path));
    }
    batch.push_str("HEAD /sub/page.txt HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
    c.send(&batch);
    for path in ["/style.css", "/missing", "/"] {
        // Any body after the HEAD response would be misread as the GET response's status line.
        let head = c.recv_head();
        let get = c.recv();
        assert_serves(&get, path);
        assert_eq!(head.status, get.status, "{path}");
        assert_eq!(head.header("content-length"), Some(get.body.len().to_string().as_str()), "HEAD {path}");
        let without_date = |r: &Response| r.headers.iter().filter(|(n, _)| n != "date").cloned().collect::<Vec<_>>();
        assert_eq!(without_date(&head), without_date(&get), "HEAD vs GET {path}");
    }
    let head = c.recv_head();
    assert_eq!(head.status, 200);
    assert_eq!(head.header("content-length"), Some(PAGE.len().to_string().as_str()));
    assert_eq!(connection(&head).as_deref(), Some("close"));
    c.expect_eof();
}

#[test]
fn head_of_a_refused_request_gets_no_body() {
    let root = site();
    let server = TestServer::with_root(root.path());
    for raw in [
        &b"HEAD /style.css HTTP/1.1\r\n\r\n"[..],
        b"HEAD /style.css HTTP/1.1\r\nHost: test\r\nExpect: something-else\r\n\r\n",
        b"HEAD /style.css HTTP/1.1\r\nHost: test\r\nContent-Length: -1\r\n\r\n",
    ] {
        let mut c = client(server.addr);
        c.send(raw);
        let r = c.recv_head();
        assert!(r.status >= 400, "{r:?}");
        assert_ne!(r.header("content-length"), Some("0"), "Content-Length should be the page's, as for GET");
        assert_eq!(connection(&r).as_deref(), Some("close"));
        // RFC 9110 §9.3.2: no content in a response to HEAD, whatever the status.
        let (rest, end) = c.rest();
        assert!(
            rest.is_empty(),
            "{:?} -> {}: body sent after the head: {:?}",
            String::from_utf8_lossy(raw),
            r.status,
            String::from_utf8_lossy(&rest)
        );
        assert_eq!(end, End::Eof);
    }
}

// ---- headers every response carries --------------------------------------------------

#[test]
fn every_response_has_date_server_and_content_length() {
    let root = site();
    std::fs::write(root.path().join(".hidden"), "secret").unwrap();
    let server = TestServer::with_root(root.path());
    let cases: &[(&[u8], u16)] = &[
        (b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n", 200),
        (b"GET /data.bin HTTP/1.0\r\n\r\n", 200),
        (b"GET /sub HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n", 301),
        (b"GET /.hidden HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n", 403),
        (b"GET /missing HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n", 404),
        (b"DELETE / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n", 405),
        (b"FOO / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n", 501),
        (b"GET / HTTP/1.1\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: t\r\nExpect: nope\r\n\r\n", 417),
        (b"GET / HTTP/2.0\r\nHost: t\r\n\r\n", 505),
    ];
    for &(raw, status) in cases {
        // exchange_and_close checks Date, Server and Content-Length on the way.
        let r = exchange_and_close(server.addr, raw);
        assert_eq!(r.status, status, "{:?}", String::from_utf8_lossy(raw));
        assert_eq!(r.header("content-length"), Some(r.body.len().to_string().as_str()));
    }
    let r = exchange_and_close(server.addr, head_of_len(9000).as_bytes());
    assert_eq!(r.status, 431);
}

// ---- Host -------------------------------------------------------------------------------

#[test]
fn host_is_required_once_in_http11_and_optional_in_http10() {
    let root = site();
    let server = TestServer::with_root(root.path());
    for raw in [
        &b"GET /style.css HTTP/1.1\r\n\r\n"[..],
        b"GET /style.css HTTP/1.1\r\nAccept: */*\r\n\r\n",
        b"GET /style.css HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
        b"GET /style.css HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n",
        b"GET /style.css HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n",
    ] {
        let r = exchange_and_close(server.addr, raw);
        assert_error_page(&r, 400);
    }
    let r = exchange_and_close(server.addr, b"GET /style.css HTTP/1.0\r\n\r\n");
    assert_serves(&r, "/style.css");
}

#[test]
fn valid_head_syntax_variants_are_accepted() {
    let root = site();
    let server = TestServer::with_root(root.path());
    let mut c = client(server.addr);
    for raw in [
        &b"GET /style.css HTTP/1.1\r\nhOsT: test\r\n\r\n"[..],
        b"GET /style.css HTTP/1.1\r\nHost:test\r\n\r\n",
        b"GET /style.css HTTP/1.1\r\nHost: test:8080   \r\n\r\n",
        b"GET /style.css HTTP/1.1\r\nHost: test\r\nX-Text: caf\xe9\tau lait\r\n\r\n",
        b"GET /style.css HTTP/1.1\r\nHost: test\r\nX-Empty:\r\n\r\n",
        b"GET /style.css HTTP/1.1\r\nHost: test\r\nContent-Length: 0\r\n\r\n",
        b"GET /style.css HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: CHUNKED\r\n\r\n0\r\n\r\n",
        b"GET /style.css HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n",
        b"GET /style.css HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
        b"GET /style.css HTTP/1.1\r\nHost: xn--caf-dma.example_1~%41\r\n\r\n",
        b"GET /style.css HTTP/1.1\r\nHost:\r\n\r\n",
        // RFC 9110 §2.5: a higher minor version of HTTP/1 is answered as HTTP/1.1.
        b"GET /style.css HTTP/1.2\r\nHost: test\r\n\r\n",
        b"\r\nGET /style.css HTTP/1.9\r\nHost: test\r\n\r\n",
    ] {
        let r = c.exchange(raw);
        assert_eq!(r.status, 200, "{:?}: {r:?}", String::from_utf8_lossy(raw));
        assert_eq!(r.text(), CSS);
    }
}

// ---- request targets ----------------------------------------------------------------

#[test]
fn absolute_form_target_is_served_by_its_path() {
    let root = site();
    let server = TestServer::with_root(root.path());
    let mut c = client(server.addr);
    let r = c.exchange("GET http://example.com/style.css HTTP/1.1\r\nHost: example.com\r\n\r\n");
    assert_serves(&r, "/style.css");
    assert_eq!(r.header("content-type"), Some("text/css; charset=utf-8"));
    let r = c.exchange("GET http://example.com:8080/sub/page.txt?x=1 HTTP/1.1\r\nHost: example.com\r\n\r\n");
    assert_serves(&r, "/sub/page.txt");
    let r = c.exchange("GET http://example.com HTTP/1.1\r\nHost: example.com\r\nConnection: close\r\n\r\n");
    assert_serves(&r, "/");
    c.expect_eof();
    // No host, or userinfo: invalid (RFC 9110 §4.2.1, §4.2.4).
    for target in
        ["http:///style.css", "http://:80/style.css", "http://", "http://user@example.com/style.css", "http://u:p@x?q"]
    {
        let r = request(server.addr, format!("GET {target} HTTP/1.1\r\nHost: example.com\r\n\r\n").as_bytes());
        assert_eq!(r.status, 400, "{target}");
    }
}

#[test]
fn query_string_is_ignored_for_files() {
    let root = site();
    let server = TestServer::with_root(root.path());
    let mut c = client(server.addr);
    for (target, path) in [
        ("/style.css?v=1", "/style.css"),
        ("/style.css?", "/style.css"),
        ("/sub/page.txt?a=b&c=/../x", "/sub/page.txt"),
        ("/?q", "/"),
        ("/missing?style.css", "/missing"),
    ] {
        assert_serves(&c.exchange(get_req(target)), path);
    }
}

#[test]
fn percent_decoding_happens_exactly_once() {
    let root = site();
    let server = TestServer::with_root(root.path());
    let mut c = client(server.addr);
    assert_serves(&c.exchange(get_req("/sub/page%2etxt")), "/sub/page.txt");
    assert_serves(&c.exchange(get_req("/%73tyle.css")), "/style.css");
    assert_serves(&c.exchange(get_req("/%73%74%79%6C%65%2E%63%73%73")), "/style.css");
    // %25 decodes to '%', which must not be decoded again.
    let r = c.exchange(get_req("/style%252ecss"));
    assert_eq!(r.status, 404, "{r:?}");
    for bad in ["/%zz", "/style.css%", "/style.css%2", "/%g0.css"] {
        let mut c = client(server.addr);
        let r = c.exchange(get_close(bad));
        assert_error_page(&r, 400);
        c.expect_eof();
    }
}

// ---- unused request bodies --------------------------------------------------------------

#[test]
fn unused_content_length_body_is_skipped_not_parsed() {
    let root = site();
    let server = TestServer::with_root(root.path());
    let smuggled = "GET /missing HTTP/1.1\r\nHost: test\r\n\r\n";
    for (method, status) in [("GET", 200), ("POST", 405), ("HEAD", 200)] {
        let mut c = client(server.addr);
        let first =
            format!("{method} / HTTP/1.1\r\nHost: test\r\nContent-Length: {}\r\n\r\n{smuggled}", smuggled.len());
        c.send(first + &get_close("/style.css"));
        let r = if method == "HEAD" { c.recv_head() } else { c.recv() };
        assert_eq!(r.status, status, "{method}: {r:?}");
        if method == "POST" {
            assert_error_page(&r, 405);
            let allow = r.header("allow").unwrap_or("");
            assert!(allow.contains("GET") && allow.contains("HEAD"), "Allow {allow:?}");
        }
        assert_serves(&c.recv(), "/style.css");
        c.expect_eof();
    }
    // The spec's example: a 20-byte body that starts like a request line.
    let mut c = client(server.addr);
    c.send(
        "GET / HTTP/1.1\r\nHost: test\r\nContent-Length: 20\r\n\r\nGET /missing HTTP/1.".to_string()
            + &get_close("/sub/page.txt"),
    );
    assert_serves(&c.recv(), "/");
    assert_serves(&c.recv(), "/sub/page.txt");
    c.expect_eof();
}

#[test]
fn unused_chunked_body_is_skipped_not_parsed() {
    let root = site();
    let server = TestServer::with_root(root.path());
    let body = chunk("GET /missing HTTP/1.1\r\n")
        + &chunk("Host: test\r\n\r\n")
        + &chunk("0\r\n\r\n")
        + "0;ext=\"GET /missing HTTP/1.1\"\r\n"
        + "X-Trailer: GET /missing HTTP/1.1\r\n"
        + "\r\n";
    for (method, status) in [("GET", 200), ("POST", 405)] {
        let mut c = client(server.addr);
        c.send(format!("{method} / HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\n{body}"));
        c.send(get_close("/style.css"));
        assert_eq!(c.recv().status, status, "{method}");
        assert_serves(&c.recv(), "/style.css");
        c.expect_eof();
    }
}

#[test]
fn unused_body_arriving_in_several_writes_is_skipped() {
    let root = site();
    let server = TestServer::with_root(root.path());
    let smuggled = "GET /missing HTTP/1.1\r\nHost: test\r\n\r\n".repeat(3);
    let chunked = chunk(&smuggled) + &chunk("GET /missing HTTP/1.1\r\n\r\n") + "0\r\n\r\n";
    let cases = [
        (format!("POST / HTTP/1.1\r\nHost: test\r\nContent-Length: {}\r\n\r\n", smuggled.len()), smuggled.clone()),
        ("POST / HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\n".to_string(), chunked),
    ];
    for (head, body) in cases {
        for piece in [1, 3, 7, 16] {
            let mut c = client(server.addr);
            // The body is read (in pieces) before the request is answered.
            c.send(&head);
            for part in body.as_bytes().chunks(piece) {
                c.send(part);
            }
            assert_eq!(c.recv().status, 405, "{head:?}");
            c.send(get_req("/sub/page.txt"));
            assert_serves(&c.recv(), "/sub/page.txt");
            assert_serves(&c.exchange(get_close("/style.css")), "/style.css");
            c.expect_eof();
        }
    }
}

#[test]
fn unused_large_body_is_never_parsed_as_requests() {
    let root = site();
    let server = TestServer::with_root(root.path());
    let smuggled = "GET /missing HTTP/1.1\r\nHost: test\r\n\r\n".repeat(100);
    let declared = 2_000_000;
    let mut c = client(server.addr);
    c.send(format!("POST / HTTP/1.1\r\nHost: test\r\nContent-Length: {declared}\r\n\r\n{smuggled}"));
    // Over the 1 MiB body limit: refused before it is read, and the connection closed.
    let r = c.recv();
    assert_error_page(&r, 413);
    assert_eq!(connection(&r).as_deref(), Some("close"));
    c.expect_eof();
}

#[test]
fn bad_chunked_body_ends_the_connection_without_answering_what_follows() {
    let root = site();
    let server = TestServer::with_root(root.path());
    for bad in ["zz\r\n", "5\r\nhelloX\r\n", "ffffffffffffffffffff\r\n", "5\nhello\r\n0\r\n\r\n"] {
        let mut c = client(server.addr);
        c.send(format!("POST / HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\n{bad}"));
        c.send(get_req("/missing") + &get_req("/style.css"));
        // An error for the broken body, never an answer to the requests after it.
        assert_error_page(&c.recv(), 400);
        let (rest, end) = c.rest();
        assert_eq!(end, End::Eof, "{bad:?}: connection not closed");
        assert!(rest.is_empty(), "{bad:?}: more after the 400: {:?}", String::from_utf8_lossy(&rest));
    }
}

#[test]
fn expect_100_continue_is_not_an_error() {
    let root = site();
    let server = TestServer::with_root(root.path());
    let mut c = client(server.addr);
    let r = c.exchange("GET /style.css HTTP/1.1\r\nHost: test\r\nExpect: 100-Continue\r\n\r\n");
    assert_serves(&r, "/style.css");
    assert_serves(&c.exchange(get_close("/")), "/");
    c.expect_eof();
}

#[test]
fn pipelined_requests_with_unused_bodies_in_one_write() {
    let root = site();
    let server = TestServer::with_root(root.path());
    let smuggled = "GET /missing HTTP/1.1\r\nHost: test\r\n\r\n";
    let mut batch = String::new();
    let mut expect = Vec::new();
    for i in 0..160 {
        match i % 4 {
            0 => {
                batch +=
                    &format!("POST / HTTP/1.1\r\nHost: test\r\nContent-Length: {}\r\n\r\n{smuggled}", smuggled.len());
                expect.push(405);
            }
            1 => {
                batch += &format!("GET /style.css HTTP/1.1\r\nHost: test\r\nContent-Length: {i}\r\n\r\n");
                batch += &"G".repeat(i);
                expect.push(200);
            }
            2 => {
                batch += "PUT / HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\n";
                batch += &(chunk(smuggled) + &chunk(&"\r\n".repeat(i)) + "0\r\n\r\n");
                expect.push(405);
            }
            _ => {
                batch += &get_req("/sub/page.txt");
                expect.push(200);
            }
        }
    }
    batch += &get_close("/");
    expect.push(200);
    assert!(batch.len() > 2 * 8192, "the batch should span several read buffers: {}", batch.len());
    let mut c = client(server.addr);
    c.send(&batch);
    for (i, status) in expect.iter().enumerate() {
        let r = c.recv();
        assert_eq!(r.status, *status, "response {i}: {r:?}");
    }
    c.expect_eof();
}

// ---- errors -------------------------------------------------------------------------------

#[test]
fn protocol_errors_get_an_html_page_and_the_connection_closed() {
    let root = site();
    let server = TestServer::with_root(root.path());
    // A client that was there before the errors, and must be served after them.
    let mut bystander = client(server.addr);
    assert_serves(&bystander.exchange(get_req("/")), "/");

    let long_uri = format!("GET /{} HTTP/1.1\r\nHost: test\r\n\r\n", "a".repeat(9000));
    let many_headers = format!("GET / HTTP/1.1\r\nHost: test\r\n{}\r\n", "X-Filler: 0123456789\r\n".repeat(500));
    let too_many = format!("GET / HTTP/1.1\r\nHost: test\r\n{}\r\n", "X: y\r\n".repeat(150));
    let cases: Vec<(&str, Vec<u8>, u16)> = vec![
        ("no target", b"GET\r\n\r\n".to_vec(), 400),
        ("no version", b"GET /\r\n\r\n".to_vec(), 400),
        ("double space", b"GET  / HTTP/1.1\r\nHost: test\r\n\r\n".to_vec(), 400),
        ("extra token", b"GET / HTTP/1.1 x\r\nHost: test\r\n\r\n".to_vec(), 400),
        ("control bytes", b"\x01\x02 / HTTP/1.1\r\nHost: test\r\n\r\n".to_vec(), 400),
        ("not a version", b"GET / FOO/1.1\r\nHost: test\r\n\r\n".to_vec(), 400),
        ("header without colon", b"GET / HTTP/1.1\r\nHost: test\r\nNoColonHere\r\n\r\n".to_vec(), 400),
        ("space before colon", b"GET / HTTP/1.1\r\nHost : test\r\n\r\n".to_vec(), 400),
        ("uri too long", long_uri.into_bytes(), 414),
        ("one huge header", head_of_len(9000).into_bytes(), 431),
        ("headers total", many_headers.into_bytes(), 431),
        ("te gzip", b"POST / HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: gzip\r\n\r\n".to_vec(), 501),
        ("te gzip get", b"GET / HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: gzip\r\n\r\n".to_vec(), 501),
        ("space in target", b"GET /a b HTTP/1.1\r\nHost: test\r\n\r\n".to_vec(), 400),
        ("no minor version", b"GET / HTTP/1\r\nHost: test\r\n\r\n".to_vec(), 400),
        ("two-digit minor", b"GET / HTTP/1.10\r\nHost: test\r\n\r\n".to_vec(), 400),
        ("host with space", b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n".to_vec(), 400),
        ("host with path", b"GET / HTTP/1.1\r\nHost: a/b\r\n\r\n".to_vec(), 400),
        ("host with userinfo", b"GET / HTTP/1.1\r\nHost: user@a\r\n\r\n".to_vec(), 400),
        ("host not ascii", b"GET / HTTP/1.1\r\nHost: caf\xe9\r\n\r\n".to_vec(), 400),
        ("http/2.0", b"GET / HTTP/2.0\r\nHost: test\r\n\r\n".to_vec(), 505),
        ("http/3.0", b"GET / HTTP/3.0\r\nHost: test\r\n\r\n".to_vec(), 505),
        (
            "cl and te",
            b"POST / HTTP/1.1\r\nHost: test\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
                .to_vec(),
            400,
        ),
        (
            "te and cl",
            b"POST / HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n"
                .to_vec(),
            400,
        ),
        (
            "differing cls",
            b"POST / HTTP/1.1\r\nHost: test\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!".to_vec(),
            400,
        ),
        (
            "equal cls, as nginx",
            b"POST / HTTP/1.1\r\nHost: test\r\nContent-Length: 3\r\ncontent-length: 3\r\n\r\nabc".to_vec(),
            400,
        ),
        ("cl -1", b"POST / HTTP/1.1\r\nHost: test\r\nContent-Length: -1\r\n\r\n".to_vec(), 400),
        ("cl hex", b"POST / HTTP/1.1\r\nHost: test\r\nContent-Length: 0x10\r\n\r\n".to_vec(), 400),
        ("cl +5", b"GET / HTTP/1.1\r\nHost: test\r\nContent-Length: +5\r\n\r\nhello".to_vec(), 400),
        ("cl huge", b"GET / HTTP/1.1\r\nHost: test\r\nContent-Length: 99999999999999999999\r\n\r\n".to_vec(), 400),
        ("cl empty", b"GET / HTTP/1.1\r\nHost: test\r\nContent-Length:\r\n\r\n".to_vec(), 400),
        ("expect", b"GET / HTTP/1.1\r\nHost: test\r\nExpect: something-else\r\n\r\n".to_vec(), 417),
        ("obs-fold", b"GET / HTTP/1.1\r\nHost: test\r\nX-Folded: a\r\n b\r\n\r\n".to_vec(), 400),
        ("too many fields", too_many.into_bytes(), 431),
    ];
    for (name, raw, status) in &cases {
        let mut c = client(server.addr);
        c.send(raw);
        let r = c.recv();
        assert_eq!(r.status, *status, "{name}: {r:?}");
        assert_error_page(&r, *status);
        assert_eq!(connection(&r).as_deref(), Some("close"), "{name}: {r:?}");
        c.expect_eof();
    }

    assert_serves(&bystander.exchange(get_close("/style.css")), "/style.css");
    bystander.expect_eof();
    assert_serves(&get(server.addr, "/sub/page.txt"), "/sub/page.txt");
}

#[test]
fn unknown_method_gets_501() {
    let root = site();
    let server = TestServer::with_root(root.path());
    let mut c = client(server.addr);
    let r = c.exchange("FOO / HTTP/1.1\r\nHost: test\r\n\r\n");
    assert_error_page(&r, 501);
    if connection(&r).as_deref() == Some("close") {
        c.expect_eof();
    } else {
        assert_serves(&c.exchange(get_close("/style.css")), "/style.css");
        c.expect_eof();
    }
    // Methods are case-sensitive: "get" is not GET.
    let mut c = client(server.addr);
    let r = c.exchange("get / HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
    assert_error_page(&r, 501);
    c.expect_eof();
}

#[test]
fn asterisk_and_authority_form_targets() {
    let root = site();
    let server = TestServer::with_root(root.path());
    let mut c = client(server.addr);
    // OPTIONS * asks about the server as a whole (RFC 9112 §3.2.4, RFC 9110 §9.3.7).
    let r = c.exchange("OPTIONS * HTTP/1.1\r\nHost: test\r\n\r\n");
    assert_eq!((r.status, r.header("content-length"), r.body.len()), (200, Some("0"), 0), "{r:?}");
    assert_eq!(r.header("allow"), Some("GET, HEAD, OPTIONS"), "{r:?}");
    assert_ne!(connection(&r).as_deref(), Some("close"), "{r:?}");
    assert_serves(&c.exchange(get_close("/style.css")), "/style.css");
    c.expect_eof();
    // The asterisk is a target for OPTIONS only.
    for method in ["GET", "POST", "DELETE"] {
        let r = client(server.addr).exchange(format!("{method} * HTTP/1.1\r\nHost: test\r\n\r\n"));
        assert_error_page(&r, 400);
    }
    let r = client(server.addr).exchange_head("HEAD * HTTP/1.1\r\nHost: test\r\n\r\n");
    assert_eq!((r.status, r.body.len()), (400, 0), "{r:?}");
    // CONNECT asks for a tunnel, which this server does not make.
    let r = client(server.addr).exchange("CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n");
    assert_error_page(&r, 501);
    // Authority-form with any other method is malformed.
    let r = client(server.addr).exchange("GET example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n");
    assert_error_page(&r, 400);
}

// ---- hostile clients ------------------------------------------------------------------------

#[test]
fn garbage_never_kills_the_server() {
    let root = site();
    let config = Config {
        header_timeout: Duration::from_millis(300),
        idle_timeout: Duration::from_millis(300),
        linger_timeout: Duration::from_millis(300),
        ..Config::default()
    };
    let server = TestServer::start(root.path(), config);
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let cases: Vec<Vec<u8>> = (0..200).map(|_| garbage(&mut rng)).collect();
    // All connections at once, so the server's timeouts run in parallel.
    let mut conns = Vec::new();
    for (i, case) in cases.iter().enumerate() {
        let mut s = connect(server.addr);
        // The server may already have answered and closed: errors are fine here.
        let _ = s.write_all(case);
        if i % 2 == 0 {
            let _ = s.shutdown(Shutdown::Write);
        }
        conns.push(s);
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    for (i, (mut s, case)) in conns.into_iter().zip(&cases).enumerate() {
        let left = deadline.saturating_duration_since(Instant::now()).max(Duration::from_millis(100));
        s.set_read_timeout(Some(left)).unwrap();
        let (out, end) = read_until_end(&mut s);
        let shown = String::from_utf8_lossy(&case[..case.len().min(300)]).into_owned();
        assert_ne!(end, End::TimedOut, "case {i} {shown:?}: connection neither answered and closed nor closed");
        if !out.is_empty() {
            assert!(
                out.starts_with(b"HTTP/1.1 ") && out.len() >= 13 && out[9..12].iter().all(u8::is_ascii_digit),
                "case {i} {shown:?}: not an HTTP/1.1 response: {:?}",
                String::from_utf8_lossy(&out[..out.len().min(200)])
            );
        }
    }
    assert_serves(&get(server.addr, "/style.css"), "/style.css");
}

#[test]
fn clients_leaving_mid_request_do_not_disturb_the_server() {
    let root = site();
    let server = TestServer::with_root(root.path());
    let mut steady = client(server.addr);
    assert_serves(&steady.exchange(get_req("/")), "/");

    // Half a request line, then gone.
    let mut s = connect(server.addr);
    s.write_all(b"GET /style.css HTT").unwrap();
    drop(s);
    // Half a body, then gone (the server has already answered into a closing socket).
    let mut s = connect(server.addr);
    s.write_all(b"POST / HTTP/1.1\r\nHost: test\r\nContent-Length: 100\r\n\r\nhalf").unwrap();
    drop(s);
    // Half a head, then reset.
    let mut s = connect(server.addr);
    s.write_all(b"GET / HTTP/1.1\r\nHost: te").unwrap();
    socket2::SockRef::from(&s).set_linger(Some(Duration::ZERO)).unwrap();
    drop(s);
    // A pipelined batch whose responses nobody reads, then reset.
    let mut s = connect(server.addr);
    s.write_all(get_req("/").repeat(50).as_bytes()).unwrap();
    socket2::SockRef::from(&s).set_linger(Some(Duration::ZERO)).unwrap();
    drop(s);
    // Half a head, then a half-close: the server must close its side too.
    let mut s = connect(server.addr);
    s.write_all(b"GET /sub/page.txt HTTP/1.1\r\nHo").unwrap();
    s.shutdown(Shutdown::Write).unwrap();
    let (out, end) = read_until_end(&mut s);
    assert_eq!(end, End::Eof, "server did not close a half-closed connection with a partial head");
    assert!(out.is_empty() || out.starts_with(b"HTTP/1.1 "), "{:?}", String::from_utf8_lossy(&out));

    assert_serves(&steady.exchange(get_req("/sub/page.txt")), "/sub/page.txt");
    assert_serves(&get(server.addr, "/style.css"), "/style.css");
    assert_serves(&steady.exchange(get_close("/style.css")), "/style.css");
    steady.expect_eof();
}

// ---- head size limit ----------------------------------------------------------------------

/// Checks the 1024-byte head limit of a server at `addr`.
fn check_head_limit_1024(addr: SocketAddr) {
    for len in [900, 1024] {
        let r = exchange_and_close(addr, head_of_len(len).as_bytes());
        assert_serves(&r, "/");
    }
    for len in [1025, 2048] {
        let r = exchange_and_close(addr, head_of_len(len).as_bytes());
        assert_error_page(&r, 431);
    }
    let long_line = format!("GET /{} HTTP/1.1\r\nHost: test\r\n\r\n", "a".repeat(2048));
    let r = exchange_and_close(addr, long_line.as_bytes());
    assert_error_page(&r, 414);
    assert_serves(&get(addr, "/style.css"), "/style.css");
}

#[test]
fn max_header_bytes_config_is_honoured() {
    let root = site();
    let server = TestServer::start(root.path(), Config { max_header_bytes: 1024, ..Config::default() });
    check_head_limit_1024(server.addr);
}

#[test]
fn max_header_bytes_flag_is_honoured() {
    let root = site();
    let p =
        Spawned::start(&["--listen", "127.0.0.1:0", "--max-header-bytes", "1024", root.path().to_str().unwrap()], 1);
    check_head_limit_1024(p.addr());
}
