//! Soak test (opt-in, not run in CI): for `SPINDLE_SOAK_SECS` (default 120) the built
//! binary serves a mix of well-behaved and misbehaving clients at once:
//!
//! - well-behaved, every response checked byte for byte: keep-alive clients,
//!   pipelined clients (16 requests per write), slow but steady readers of a large
//!   file, and large downloads;
//! - misbehaving, each checked to be cut off as configured: Slowloris clients
//!   (one head byte every 250 ms, cut at the 2 s header deadline), readers that
//!   stop reading (cut at the 3 s send deadline), and clients that reset the
//!   connection mid-response (SO_LINGER 0, then close).
//!
//! At the end: every well-behaved request answered correctly; the server's open
//! descriptors back to the baseline (exactly) and its RSS back within
//! [`RSS_TOLERANCE_KIB`] of what it was before the load (the server gives memory
//! back once it is quiet); and nothing logged that is
//! the server's fault. "The server's fault" is an `ERROR` line or a panic: by the
//! house style `error` means a bug or a host failure, while clients that time out,
//! reset or go away are logged at `info`/`debug`, and resource pressure at `warn`
//! (both fine here).
//!
//! Run: `SPINDLE_SOAK_SECS=180 cargo test --release --test soak -- --ignored --nocapture`

mod common;
mod process;

use common::*;
use process::*;

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// RSS growth allowed from the start to the end of the run (after the server's
/// quiet-time trim): a leak of even 2 bytes per exchange over the ~2 x 10^6
/// exchanges of a 180 s run would exceed it. (Measured: 11 MiB at the peak, back
/// to 4.4 MiB from 2.4 MiB at the start, in a 45 s run.)
const RSS_TOLERANCE_KIB: u64 = 4 * 1024;

const SMALL_FILES: u64 = 16;
/// Sizes of the large files: below and well above the socket buffers.
const LARGE_SIZES: [u64; 2] = [4 << 20, 24 << 20];

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut)
}

/// Byte `at` of the file made from `seed`: checkable anywhere without the file.
fn byte_at(seed: u64, at: u64) -> u8 {
    let mut z = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ (at / 8);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    (z ^ (z >> 31)).to_le_bytes()[(at % 8) as usize]
}

/// A file of the soak site: its URL path, seed and length.
#[derive(Clone, Copy, Debug)]
struct File {
    path: &'static str,
    seed: u64,
    len: u64,
}

fn small(i: u64) -> File {
    const PATHS: [&str; SMALL_FILES as usize] = [
        "/s/0.bin",
        "/s/1.bin",
        "/s/2.bin",
        "/s/3.bin",
        "/s/4.bin",
        "/s/5.bin",
        "/s/6.bin",
        "/s/7.bin",
        "/s/8.bin",
        "/s/9.bin",
        "/s/10.bin",
        "/s/11.bin",
        "/s/12.bin",
        "/s/13.bin",
        "/s/14.bin",
        "/s/15.bin",
    ];
    // From 1 byte to just under the 64 KiB file-cache limit.
    File { path: PATHS[i as usize], seed: i, len: 1 + i * i * 250 }
}

fn large(i: usize) -> File {
    File { path: ["/l/0.bin", "/l/1.bin"][i], seed: 100 + i as u64, len: LARGE_SIZES[i] }
}

fn write_site(root: &Path) {
    std::fs::create_dir(root.join("s")).unwrap();
    std::fs::create_dir(root.join("l")).unwrap();
    let files = (0..SMALL_FILES).map(small).chain((0..LARGE_SIZES.len()).map(large));
    for f in files {
        let bytes: Vec<u8> = (0..f.len).map(|at| byte_at(f.seed, at)).collect();
        std::fs::write(root.join(&f.path[1..]), bytes).unwrap();
    }
}

/// A small xorshift generator, so that each client thread picks differently.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// Counters for one kind of client, and the first few failures in detail.
#[derive(Default)]
struct Tally {
    ok: AtomicU64,
    failed: AtomicU64,
    failures: Mutex<Vec<String>>,
}

impl Tally {
    fn record(&self, result: Result<(), String>) {
        match result {
            Ok(()) => {
                self.ok.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                self.failed.fetch_add(1, Ordering::Relaxed);
                let mut f = self.failures.lock().unwrap();
                if f.len() < 10 {
                    f.push(e);
                }
            }
        }
    }
}

fn connect_to(addr: SocketAddr) -> Result<TcpStream, String> {
    let s = TcpStream::connect_timeout(&addr, IO_TIMEOUT).map_err(|e| format!("connect: {e}"))?;
    s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    s.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
    Ok(s)
}

fn get_request(f: File, close: bool) -> String {
    let connection = if close { "Connection: close\r\n" } else { "" };
    format!("GET {} HTTP/1.1\r\nHost: soak\r\n{connection}\r\n", f.path)
}

/// Reads a response head: the status and the Content-Length.
fn read_head<R: BufRead>(r: &mut R) -> Result<(u16, u64), String> {
    let mut line = String::new();
    r.read_line(&mut line).map_err(|e| format!("status line: {e}"))?;
    if !line.starts_with("HTTP/1.1 ") || line.len() < 12 {
        return Err(format!("bad status line {line:?}"));
    }
    let status = line[9..12].parse().map_err(|_| format!("bad status line {line:?}"))?;
    let mut len = None;
    loop {
        let mut h = String::new();
        r.read_line(&mut h).map_err(|e| format!("header: {e}"))?;
        if h == "\r\n" {
            break;
        }
        if h.is_empty() {
            return Err("EOF in the head".into());
        }
        if let Some((name, value)) = h.split_once(':') {
            if name.eq_ignore_ascii_case("content-length") {
                len = value.trim().parse().ok();
            }
        }
    }
    Ok((status, len.ok_or("no Content-Length")?))
}

/// Asks for file `f` on a kept connection and checks the whole response.
fn fetch(c: &mut BufReader<TcpStream>, f: File) -> Result<(), String> {
    c.get_mut().write_all(get_request(f, false).as_bytes()).map_err(|e| format!("write: {e}"))?;
    read_file_response(c, f, None)
}

/// Reads the response to a GET of `f` and checks every byte; `pace` (bytes, delay)
/// makes it a slow reader.
fn read_file_response<R: BufRead>(r: &mut R, f: File, pace: Option<(usize, Duration)>) -> Result<(), String> {
    let (status, len) = read_head(r)?;
    if status != 200 || len != f.len {
        return Err(format!("{}: status {status}, length {len} (want 200, {})", f.path, f.len));
    }
    let chunk = pace.map_or(256 * 1024, |(n, _)| n);
    let mut buf = vec![0u8; chunk];
    let mut at = 0;
    while at < len {
        let want = chunk.min((len - at) as usize);
        let n = r.read(&mut buf[..want]).map_err(|e| format!("{} at {at}: {e}", f.path))?;
        if n == 0 {
            return Err(format!("{}: EOF at {at} of {len}", f.path));
        }
        if let Some(bad) = (0..n).find(|&i| buf[i] != byte_at(f.seed, at + i as u64)) {
            return Err(format!("{}: wrong byte at {}", f.path, at + bad as u64));
        }
        at += n as u64;
        if let Some((_, delay)) = pace {
            thread::sleep(delay);
        }
    }
    Ok(())
}

/// Reads a connection the server should cut off until it ends or `limit` passes
/// without data: its first bytes, how many in all, and how it ended (`"eof"`,
/// `"reset"` or `"timeout"`).
fn wait_cut(s: &mut TcpStream, limit: Duration) -> (Vec<u8>, u64, &'static str) {
    s.set_read_timeout(Some(limit)).unwrap();
    let mut got = Vec::new();
    let mut total = 0;
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return (got, total, "eof"),
            Ok(n) => {
                total += n as u64;
                if got.len() < 64 {
                    got.extend_from_slice(&buf[..n.min(64)]);
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if is_timeout(&e) => return (got, total, "timeout"),
            Err(_) => return (got, total, "reset"),
        }
    }
}

// ---- the client kinds ------------------------------------------------------------------

fn keep_alive_client(addr: SocketAddr, until: Instant, rng: &mut Rng, tally: &Tally) {
    while Instant::now() < until {
        let Ok(s) = connect_to(addr).map_err(|e| tally.record(Err(e))) else { continue };
        let mut c = BufReader::new(s);
        for _ in 0..1 + rng.below(50) {
            let f = small(rng.below(SMALL_FILES));
            let result = fetch(&mut c, f);
            let failed = result.is_err();
            tally.record(result);
            if failed || Instant::now() >= until {
                break;
            }
        }
    }
}

fn pipelined_client(addr: SocketAddr, until: Instant, rng: &mut Rng, tally: &Tally) {
    while Instant::now() < until {
        let Ok(s) = connect_to(addr).map_err(|e| tally.record(Err(e))) else { continue };
        let mut c = BufReader::new(s);
        'conn: for _ in 0..5 {
            let files: Vec<File> = (0..16).map(|_| small(rng.below(SMALL_FILES))).collect();
            let batch: String = files.iter().map(|&f| get_request(f, false)).collect();
            if let Err(e) = c.get_mut().write_all(batch.as_bytes()) {
                tally.record(Err(format!("pipelined write: {e}")));
                break;
            }
            for &f in &files {
                let result = read_file_response(&mut c, f, None);
                let failed = result.is_err();
                tally.record(result);
                if failed {
                    break 'conn;
                }
            }
        }
    }
}

/// Reads a 4 MiB file at ~1.6 MB/s (64 KiB every 40 ms): slow, but never stalled
/// for the send deadline, so it must get every byte.
fn slow_reader(addr: SocketAddr, until: Instant, tally: &Tally) {
    while Instant::now() < until {
        let f = large(0);
        let result = connect_to(addr).and_then(|mut s| {
            // A small receive buffer, so that the slow reader really holds the server back.
            socket2::SockRef::from(&s).set_recv_buffer_size(64 * 1024).map_err(|e| format!("SO_RCVBUF: {e}"))?;
            s.write_all(get_request(f, true).as_bytes()).map_err(|e| format!("write: {e}"))?;
            read_file_response(&mut BufReader::with_capacity(4096, s), f, Some((64 * 1024, ms(40))))
        });
        tally.record(result);
    }
}

/// Full downloads of both large files on one keep-alive connection.
fn large_downloads(addr: SocketAddr, until: Instant, tally: &Tally) {
    while Instant::now() < until {
        let Ok(s) = connect_to(addr).map_err(|e| tally.record(Err(e))) else { continue };
        let mut c = BufReader::with_capacity(256 * 1024, s);
        for f in [large(1), large(0)] {
            let result = fetch(&mut c, f);
            let failed = result.is_err();
            tally.record(result);
            if failed {
                break;
            }
        }
    }
}

/// Four connections at a time trickling a long head, one byte each per 250 ms:
/// each must be cut off (408 or a close) at the 2 s header deadline.
fn slowloris(addr: SocketAddr, until: Instant, tally: &Tally) {
    let head = format!("GET /s/1.bin HTTP/1.1\r\nHost: soak\r\nX-Pad: {}\r\n\r\n", "a".repeat(100));
    while Instant::now() < until {
        let started = Instant::now();
        let mut conns: Vec<Option<TcpStream>> = (0..4).map(|_| connect_to(addr).ok()).collect();
        let mut sent = 0;
        while conns.iter().any(Option::is_some) && sent < head.len() {
            for slot in conns.iter_mut() {
                let Some(s) = slot else { continue };
                if s.write_all(&head.as_bytes()[sent..sent + 1]).is_err() {
                    *slot = None;
                    tally.record(check_cut(started.elapsed(), b"", "write failed"));
                }
            }
            sent += 1;
            thread::sleep(ms(250));
            for slot in conns.iter_mut() {
                let Some(s) = slot else { continue };
                s.set_nonblocking(true).unwrap();
                let mut buf = [0u8; 256];
                let cut = match s.read(&mut buf) {
                    Ok(0) => Some((Vec::new(), "eof")),
                    Ok(n) => {
                        s.set_nonblocking(false).unwrap();
                        let (rest, _, end) = wait_cut(s, ms(2000));
                        Some(([&buf[..n], &rest[..]].concat(), end))
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => None,
                    Err(_) => Some((Vec::new(), "reset")),
                };
                if let Some((got, end)) = cut {
                    tally.record(check_cut(started.elapsed(), &got, end));
                    *slot = None;
                } else {
                    s.set_nonblocking(false).unwrap();
                }
            }
        }
        if conns.iter().any(Option::is_some) {
            tally.record(Err(format!("Slowloris heads sent whole ({sent} bytes) without a cut")));
        }
    }
}

fn check_cut(after: Duration, got: &[u8], end: &str) -> Result<(), String> {
    if after < ms(1900) || after > ms(4000) {
        return Err(format!("Slowloris client cut off after {after:?}; header deadline 2 s"));
    }
    if !got.is_empty() && !got.starts_with(b"HTTP/1.1 408 ") {
        return Err(format!("Slowloris client got {:?}", String::from_utf8_lossy(got)));
    }
    if end == "timeout" {
        return Err("Slowloris connection left open after the 408".into());
    }
    Ok(())
}

/// Asks for the 24 MiB file and stops reading: cut off at the 3 s send deadline.
fn stalled_reader(addr: SocketAddr, until: Instant, tally: &Tally) {
    while Instant::now() < until {
        let result = connect_to(addr).and_then(|mut s| {
            s.write_all(get_request(large(1), false).as_bytes()).map_err(|e| format!("write: {e}"))?;
            let asked = Instant::now();
            // Not reading: the server fills the socket buffers, then stalls.
            thread::sleep(ms(4500));
            let (got, total, end) = wait_cut(&mut s, ms(5000));
            let took = asked.elapsed();
            if !got.starts_with(b"HTTP/1.1 200 ") {
                return Err(format!("stalled reader got {:?}", String::from_utf8_lossy(&got)));
            }
            if end == "timeout" || total >= large(1).len {
                return Err(format!("stalled reader still connected after {took:?}; send deadline 3 s"));
            }
            Ok(())
        });
        tally.record(result);
    }
}

/// Asks for a large file, reads a little, and resets the connection.
fn resetter(addr: SocketAddr, until: Instant, rng: &mut Rng, tally: &Tally) {
    while Instant::now() < until {
        let result = connect_to(addr).and_then(|mut s| {
            let f = large(rng.below(2) as usize);
            s.write_all(get_request(f, false).as_bytes()).map_err(|e| format!("write: {e}"))?;
            let mut buf = vec![0u8; 1 + rng.below(256 * 1024) as usize];
            s.read(&mut buf).map_err(|e| format!("read: {e}"))?;
            socket2::SockRef::from(&s).set_linger(Some(Duration::ZERO)).map_err(|e| format!("SO_LINGER: {e}"))?;
            Ok(())
        });
        tally.record(result);
        thread::sleep(ms(rng.below(20)));
    }
}

// ---- the run ---------------------------------------------------------------------------

#[test]
#[ignore = "soak: run with SPINDLE_SOAK_SECS=180 cargo test --release --test soak -- --ignored"]
fn soak_mixed_clients_leave_no_leaks_and_no_server_errors() {
    let secs: u64 = std::env::var("SPINDLE_SOAK_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(120);
    let root = tempfile::tempdir().unwrap();
    write_site(root.path());
    let mut p = Spawned::start(
        &[
            "--listen",
            "127.0.0.1:0",
            "--header-timeout",
            "2",
            "--idle-timeout",
            "2",
            "--send-timeout",
            "3",
            "--access-log",
            "off",
            root.path().to_str().unwrap(),
        ],
        1,
    );
    let addr = p.addr();
    let pid = p.child.id();
    let start_fds = fd_count(pid);
    let start_rss = rss_kib(pid);

    let kinds = ["keep-alive", "pipelined", "slow reader", "large download", "Slowloris", "stalled reader", "reset"];
    let tallies: Arc<Vec<Tally>> = Arc::new(kinds.iter().map(|_| Tally::default()).collect());
    let began = Instant::now();
    let until = began + Duration::from_secs(secs);
    // (kind, threads)
    let plan = [(0, 3), (1, 2), (2, 1), (3, 1), (4, 2), (5, 1), (6, 1)];
    let mut threads = Vec::new();
    for (kind, n) in plan {
        for t in 0..n {
            let tallies = tallies.clone();
            threads.push(thread::spawn(move || {
                let mut rng = Rng(0x2545_f491_4f6c_dd1d ^ ((kind * 16 + t + 1) as u64) << 20);
                let tally = &tallies[kind];
                match kind {
                    0 => keep_alive_client(addr, until, &mut rng, tally),
                    1 => pipelined_client(addr, until, &mut rng, tally),
                    2 => slow_reader(addr, until, tally),
                    3 => large_downloads(addr, until, tally),
                    4 => slowloris(addr, until, tally),
                    5 => stalled_reader(addr, until, tally),
                    _ => resetter(addr, until, &mut rng, tally),
                }
            }));
        }
    }

    // Sample the server while the clients run, with a progress line every 30 s.
    let (mut peak_fds, mut peak_rss, mut warm_rss) = (start_fds, start_rss, None);
    let mut next_report = began + Duration::from_secs(30);
    while Instant::now() < until {
        thread::sleep(ms(250));
        let fds = fd_count(pid);
        peak_fds = peak_fds.max(fds);
        let rss = rss_kib(pid);
        peak_rss = peak_rss.max(rss);
        // Warmed up: the pools and the allocator have reached their working size
        // (in a 180 s run RSS climbs for the first minute, then stays level).
        if warm_rss.is_none() && began.elapsed() >= Duration::from_secs(secs / 3) {
            warm_rss = Some(rss);
        }
        if Instant::now() >= next_report {
            next_report += Duration::from_secs(30);
            let answered: u64 = tallies.iter().map(|t| t.ok.load(Ordering::Relaxed)).sum();
            eprintln!("  {:>4} s: {answered} exchanges, server fds {fds}, RSS {rss} KiB", began.elapsed().as_secs());
        }
        assert!(p.child.try_wait().unwrap().is_none(), "server exited:\n{}", p.stderr());
    }
    for t in threads {
        t.join().expect("a client thread panicked");
    }
    let clients_done = began.elapsed();

    // Quiet: every connection closes (the longest deadline is 3 s).
    let fds_back = wait_for(Duration::from_secs(10), || fd_count(pid) <= start_fds);
    let end_fds = fd_count(pid);
    // The server gives memory back a second after its last event and trims its
    // pools every 5 s, which nothing outside it can observe: wait for both.
    thread::sleep(ms(5500));
    let warm_rss = warm_rss.unwrap_or(start_rss);
    let end_rss = rss_kib(pid);
    let rss_back = end_rss <= start_rss + RSS_TOLERANCE_KIB;
    let hwm = hwm_kib(pid);
    let r = get(addr, "/s/3.bin");

    eprintln!("soak: {secs} s requested, clients done after {clients_done:?}");
    for (kind, tally) in kinds.iter().zip(tallies.iter()) {
        eprintln!(
            "  {kind:<15} ok {:>8}  failed {:>3}  {:?}",
            tally.ok.load(Ordering::Relaxed),
            tally.failed.load(Ordering::Relaxed),
            tally.failures.lock().unwrap()
        );
    }
    eprintln!("  fds: start {start_fds}, peak {peak_fds}, end {end_fds}");
    eprintln!("  RSS KiB: start {start_rss}, warm {warm_rss}, peak {peak_rss} (VmHWM {hwm}), end {end_rss}");
    let stderr = p.stderr();
    let warnings = stderr.lines().filter(|l| l.contains(" WARN ")).count();
    let infos = stderr.lines().filter(|l| l.contains(" INFO ")).count();
    eprintln!("  log lines: {warnings} WARN, {infos} INFO");

    for (kind, tally) in kinds.iter().zip(tallies.iter()) {
        assert!(tally.ok.load(Ordering::Relaxed) > 0, "no {kind} client completed");
        let failures = tally.failures.lock().unwrap();
        assert!(failures.is_empty(), "{kind} failures ({}): {failures:?}", tally.failed.load(Ordering::Relaxed));
    }
    assert!(fds_back, "server fds {end_fds} after the run, {start_fds} at the start");
    assert!(
        rss_back,
        "server RSS {end_rss} KiB after the run: warmed up {warm_rss} KiB, start {start_rss} KiB, \
         tolerance {RSS_TOLERANCE_KIB} KiB"
    );
    let errors = error_lines(&stderr);
    assert!(errors.is_empty(), "{} errors logged:\n{}", errors.len(), errors.join("\n"));
    assert_eq!(r.status, 200, "server unhealthy after the run");
    assert_eq!(r.body.len() as u64, small(3).len);
}
