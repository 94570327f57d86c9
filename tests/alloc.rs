//! The request path allocates nothing per request once warm: a counting global
//! allocator watches a keep-alive client's requests (whose own buffers are
//! allocated up front) for static files (small ones from memory, a larger one
//! from its cached descriptor, a precompressed sibling for a client that
//! accepts it), a routed handler and an error page. It also counts the heap a
//! connection holds while its answer is delayed.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::{Read, Write};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use common::*;
use spindle::{
    AccessLog, Body, Config, LogFile, LogFormat, Request, Response, Router, StaticFiles, StatsHandle, Status,
};

struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);
/// Bytes allocated and not yet freed.
static LIVE: AtomicI64 = AtomicI64::new(0);
/// The counts are process-wide: one test at a time.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

// SAFETY: forwards to the system allocator; only counts calls and bytes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        LIVE.fetch_add(layout.size() as i64, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as i64, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        LIVE.fetch_add(new_size as i64 - layout.size() as i64, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Reads one response (head and `Content-Length` body) into `buf` without
/// allocating; returns its status code.
fn read_one(stream: &mut std::net::TcpStream, buf: &mut [u8]) -> u16 {
    let mut got = 0;
    loop {
        let n = stream.read(&mut buf[got..]).unwrap();
        assert!(n > 0, "connection closed");
        got += n;
        let Some(end) = buf[..got].windows(4).position(|w| w == b"\r\n\r\n") else { continue };
        let head = std::str::from_utf8(&buf[..end]).unwrap();
        let len: usize =
            head.lines().find_map(|l| l.strip_prefix("Content-Length: ")).map_or(0, |v| v.parse().unwrap());
        if got >= end + 4 + len {
            assert_eq!(got, end + 4 + len, "more than one response");
            return head[9..12].parse().unwrap();
        }
    }
}

#[test]
fn keep_alive_requests_do_not_allocate() {
    let per_case = allocations_per_request_kind(None);
    // A few may come from the Date header's once-a-second refresh.
    let allocations: u64 = per_case.iter().sum();
    assert!(allocations <= 10, "{allocations} allocations for 3000 requests: {per_case:?}");
}

#[test]
fn keep_alive_requests_with_an_access_log_do_not_allocate() {
    let logs = tempfile::tempdir().unwrap();
    let file = LogFile::open(&logs.path().join("access.log")).unwrap();
    let per_case = allocations_per_request_kind(Some(AccessLog::to_file(LogFormat::Combined, file.writer())));
    // The lines' buffers are reused; the log file's thread allocates a little
    // per round of writing (a few a second).
    let allocations: u64 = per_case.iter().sum();
    assert!(allocations <= 30, "{allocations} allocations for 3000 logged requests: {per_case:?}");
    drop(file);
    let written = std::fs::read_to_string(logs.path().join("access.log")).unwrap();
    assert!(written.lines().count() >= 3600, "{} lines", written.lines().count());
}

/// Allocations during 500 keep-alive requests of each of six kinds (after 100 of
/// each to warm up), with `access_log` around the router if given.
fn allocations_per_request_kind(access_log: Option<AccessLog>) -> Vec<u64> {
    let _alone = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let root = site();
    let mut router = Router::new()
        .get("/hello", |_: &Request<'_>| Response::new(Status::OK).with_body(Body::Static(b"hello")))
        .fallback(StaticFiles::new(root.path()).unwrap());
    if let Some(log) = access_log {
        router = router.wrap(log);
    }
    std::fs::write(root.path().join("large.bin"), vec![7u8; 100 * 1024]).unwrap();
    std::fs::write(root.path().join("app.js"), "let x = 1;\n").unwrap();
    std::fs::write(root.path().join("app.js.gz"), b"pretend gzip").unwrap();
    let server = TestServer::with_router(router, Config::default());
    let mut stream = connect(server.addr);
    let mut buf = vec![0u8; 128 * 1024];
    let etag = get(server.addr, "/style.css").header("etag").expect("ETag").to_string();
    let revalidate = format!("GET /style.css HTTP/1.1\r\nHost: t\r\nIf-None-Match: {etag}\r\n\r\n");
    let cases: [(&[u8], u16); 6] = [
        (b"GET /style.css HTTP/1.1\r\nHost: t\r\n\r\n", 200),
        (b"GET /large.bin HTTP/1.1\r\nHost: t\r\n\r\n", 200),
        (b"GET /app.js HTTP/1.1\r\nHost: t\r\nAccept-Encoding: gzip, deflate, br\r\n\r\n", 200),
        (revalidate.as_bytes(), 304),
        (b"GET /hello HTTP/1.1\r\nHost: t\r\n\r\n", 200),
        (b"GET /missing HTTP/1.1\r\nHost: t\r\n\r\n", 404),
    ];
    let mut run = |times: usize| {
        let mut per_case = Vec::with_capacity(cases.len());
        for (request, status) in cases {
            let before = ALLOCATIONS.load(Ordering::SeqCst);
            for _ in 0..times {
                stream.write_all(request).unwrap();
                assert_eq!(read_one(&mut stream, &mut buf), status);
            }
            per_case.push(ALLOCATIONS.load(Ordering::SeqCst) - before);
        }
        per_case
    };
    run(100);
    let per_case = run(500);
    let names: Vec<_> = cases.iter().map(|(r, _)| String::from_utf8_lossy(&r[..r.len() - 4]).into_owned()).collect();
    eprintln!("allocations during 500 keep-alive requests each of {names:?}: {per_case:?}");
    per_case
}

#[test]
fn a_delayed_answer_holds_little_memory_while_it_waits() {
    let _alone = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    const CLIENTS: usize = 200;
    let stats = StatsHandle::new();
    let server = TestServer::with_stats(Router::new().load_test_endpoints(), Config::default(), stats.clone());
    // Warm: the loop's own structures, and a pooled exchange.
    assert_eq!(get(server.addr, "/delay/0").status, 200);
    let mut clients = Vec::with_capacity(CLIENTS);
    let before = LIVE.load(Ordering::SeqCst);
    for _ in 0..CLIENTS {
        let mut c = connect(server.addr);
        c.write_all(b"GET /delay/3000 HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
        clients.push(c);
    }
    assert!(
        wait_for(Duration::from_millis(2500), || stats.read().sending == CLIENTS),
        "not all delayed: {:?}",
        stats.read()
    );
    let held = (LIVE.load(Ordering::SeqCst) - before) / CLIENTS as i64;
    eprintln!("heap held per connection with a delayed answer: {held} bytes");
    // The read buffer alone is 12 KiB; the connection, its exchange and the
    // response that waits take about 1 KiB.
    assert!(held < 3 * 1024, "{held} bytes held per waiting connection");
    let mut buf = vec![0u8; 4096];
    for c in &mut clients {
        assert_eq!(read_one(c, &mut buf), 200);
    }
}

#[test]
fn a_large_body_is_not_kept_after_its_request() {
    let _alone = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let router = Router::new().post("/len", |req: &Request<'_>| Response::text(req.body().len().to_string()));
    let server = TestServer::with_router(router, Config::default());
    let mut stream = connect(server.addr);
    let mut buf = vec![0u8; 4096];
    // The start of a next head follows the body at once, so the connection never
    // goes idle and its exchange is not pooled: the body's memory must go all the same.
    let mut message = format!("POST /len HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n", 512 * 1024).into_bytes();
    message.extend(std::iter::repeat_n(b'b', 512 * 1024));
    message.extend_from_slice(b"GET /len HTTP/1.1\r\nHo");
    let before = LIVE.load(Ordering::SeqCst);
    stream.write_all(&message).unwrap();
    assert_eq!(read_one(&mut stream, &mut buf), 200);
    let mut held = i64::MAX;
    let freed = wait_for(Duration::from_secs(2), || {
        held = LIVE.load(Ordering::SeqCst) - before;
        held < 128 * 1024
    });
    assert!(freed, "{held} bytes still held after a 512 KiB body was answered");
}
