//! Test support: a server on a background thread or as the built binary, and a
//! raw-socket HTTP client whose every read has a timeout.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use mio::{Token, Waker};
use spindle::{Config, Control, EventLoop, Router, Server, StaticFiles, StatsHandle};

/// Upper bound for any single client read or write in tests.
pub const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// A server running in-process on its own thread; stopped when dropped.
pub struct TestServer {
    pub addr: SocketAddr,
    waker: Arc<Waker>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl TestServer {
    /// Serves the files under `root` with `config` on 127.0.0.1:0.
    pub fn start(root: &Path, config: Config) -> TestServer {
        TestServer::with_router(Router::new().fallback(StaticFiles::new(root).expect("root")), config)
    }

    /// Serves `router` with `config` on 127.0.0.1:0.
    pub fn with_router(router: Router, config: Config) -> TestServer {
        TestServer::with_stats(router, config, StatsHandle::new())
    }

    /// Serves `router` with `config` on 127.0.0.1:0, counting into `stats`.
    pub fn with_stats(router: Router, config: Config, stats: StatsHandle) -> TestServer {
        let mut server = Server::with_stats(config, router, stats);
        let addr = server.bind("127.0.0.1:0".parse().unwrap()).expect("bind");
        let mut event_loop = EventLoop::new(server).expect("event loop");
        let waker = Arc::new(Waker::new(event_loop.registry(), Token(1)).expect("waker"));
        let stop = Arc::new(AtomicBool::new(false));
        let stop_flag = stop.clone();
        let thread = std::thread::spawn(move || {
            event_loop
                .run(|_| if stop_flag.load(Ordering::SeqCst) { Control::Stop } else { Control::Continue })
                .expect("event loop failed");
        });
        TestServer { addr, waker, stop, thread: Some(thread) }
    }

    /// Serves `root` with the default configuration.
    pub fn with_root(root: &Path) -> TestServer {
        TestServer::start(root, Config::default())
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = self.waker.wake();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The built `spindle` binary, running; killed when dropped.
pub struct Spawned {
    pub child: Child,
    pub addrs: Vec<SocketAddr>,
    /// Everything the process wrote to stderr so far.
    pub stderr: Arc<Mutex<String>>,
    /// Everything the process wrote to stdout so far (the access log by default).
    pub stdout: Arc<Mutex<String>>,
}

impl Spawned {
    /// Starts the binary with `args` and waits (bounded) for its "listening on" lines,
    /// `listeners` of them.
    pub fn start(args: &[&str], listeners: usize) -> Spawned {
        Spawned::start_with(Command::new(env!("CARGO_BIN_EXE_spindle")).args(args), listeners)
    }

    /// Like [`start`](Spawned::start) with a prepared command.
    pub fn start_with(cmd: &mut Command, listeners: usize) -> Spawned {
        let mut child = cmd
            .env("RUST_LOG", std::env::var("SPINDLE_TEST_LOG").unwrap_or_else(|_| "info".into()))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn spindle");
        let stdout = Arc::new(Mutex::new(String::new()));
        let out_sink = stdout.clone();
        let out_pipe = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(out_pipe).lines().map_while(Result::ok) {
                let mut s = out_sink.lock().unwrap();
                s.push_str(&line);
                s.push('\n');
            }
        });
        let stderr = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let sink = stderr.clone();
        let pipe = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                // Kept before it is announced: once `start_with` has the address,
                // `stderr()` holds the line that gave it.
                {
                    let mut s = sink.lock().unwrap();
                    s.push_str(&line);
                    s.push('\n');
                }
                if let Some(rest) = line.split("listening on http://").nth(1) {
                    let addr = rest.split('/').next().unwrap_or("");
                    let _ = tx.send(addr.parse::<SocketAddr>().ok());
                }
            }
        });
        let mut addrs = Vec::new();
        let deadline = Instant::now() + IO_TIMEOUT;
        while addrs.len() < listeners {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(Some(addr)) => addrs.push(addr),
                _ => {
                    let _ = child.kill();
                    panic!("spindle did not start: {}", stderr.lock().unwrap());
                }
            }
        }
        Spawned { child, addrs, stderr, stdout }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addrs[0]
    }

    /// Sends `signal` (e.g. `libc::SIGTERM`) to the process.
    pub fn signal(&self, signal: i32) {
        // SAFETY: kill(2) on our own child's pid.
        let rc = unsafe { libc::kill(self.child.id() as i32, signal) };
        assert_eq!(rc, 0, "kill failed");
    }

    /// Waits (bounded) for the process to exit and returns its exit code.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<i32> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code();
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    pub fn stdout(&self) -> String {
        self.stdout.lock().unwrap().clone()
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `cond` every 10 ms until it holds or `limit` passes; returns whether it held.
pub fn wait_for(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A connected client socket with read and write timeouts set.
pub fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    s.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
    s
}

/// A parsed response.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    /// Header names lower-cased, in order.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers.iter().find(|(n, _)| *n == name).map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// One persistent client connection (TCP_NODELAY): responses are read through a
/// buffer, every read bounded by the socket's timeout.
pub struct Client {
    /// The connection, read through a buffer.
    pub reader: BufReader<TcpStream>,
    /// Run on every response read: a test file's checks common to all responses.
    check: fn(&Response),
}

impl Client {
    /// Connects to `addr`.
    pub fn new(addr: SocketAddr) -> Client {
        Client::from_stream(connect(addr))
    }

    /// A client on the connected `stream`.
    pub fn from_stream(stream: TcpStream) -> Client {
        stream.set_nodelay(true).unwrap();
        Client { reader: BufReader::new(stream), check: |_| {} }
    }

    /// Runs `check` on every response read from now on.
    pub fn checking(mut self, check: fn(&Response)) -> Client {
        self.check = check;
        self
    }

    /// The socket.
    pub fn stream(&mut self) -> &mut TcpStream {
        self.reader.get_mut()
    }

    /// Sends `raw` as is.
    pub fn send(&mut self, raw: impl AsRef<[u8]>) {
        self.stream().write_all(raw.as_ref()).expect("sending request");
    }

    /// Reads one response to a request other than HEAD.
    #[track_caller]
    pub fn recv(&mut self) -> Response {
        let r = read_response(&mut self.reader, false);
        (self.check)(&r);
        r
    }

    /// Reads one response to a HEAD request (no body).
    #[track_caller]
    pub fn recv_head(&mut self) -> Response {
        let r = read_response(&mut self.reader, true);
        (self.check)(&r);
        r
    }

    /// Sends `raw` and reads one response.
    #[track_caller]
    pub fn exchange(&mut self, raw: impl AsRef<[u8]>) -> Response {
        self.send(raw);
        self.recv()
    }

    /// Sends `raw` (a HEAD request) and reads one response without a body.
    #[track_caller]
    pub fn exchange_head(&mut self, raw: impl AsRef<[u8]>) -> Response {
        self.send(raw);
        self.recv_head()
    }

    /// `GET path` on this connection, kept alive.
    #[track_caller]
    pub fn get(&mut self, path: &str) -> Response {
        self.exchange(format!("GET {path} HTTP/1.1\r\nHost: test\r\n\r\n"))
    }

    /// Everything still to come (buffered or not) until the connection ends.
    pub fn rest(&mut self) -> (Vec<u8>, End) {
        let buffered = self.reader.buffer().to_vec();
        self.reader.consume(buffered.len());
        let (more, end) = read_until_end(self.stream());
        ([buffered, more].concat(), end)
    }

    /// Asserts that the server closes the connection with nothing more sent.
    #[track_caller]
    pub fn expect_eof(&mut self) {
        let (rest, end) = self.rest();
        assert!(rest.is_empty(), "bytes after the last response: {:?}", String::from_utf8_lossy(&rest));
        assert_eq!(end, End::Eof, "the server did not close the connection");
    }
}

/// Reads one response from `r`. `head_request`: the request was HEAD (no body follows).
/// Panics on timeout, EOF before a complete response, or a response without framing.
pub fn read_response<R: BufRead>(r: &mut R, head_request: bool) -> Response {
    let mut line = String::new();
    r.read_line(&mut line).expect("reading status line");
    assert!(line.starts_with("HTTP/1.1 "), "bad status line {line:?}");
    let status: u16 = line[9..12].parse().expect("status code");
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        r.read_line(&mut h).expect("reading header");
        assert!(h.ends_with("\r\n"), "header line not CRLF-terminated: {h:?}");
        if h == "\r\n" {
            break;
        }
        let (name, value) = h.trim_end().split_once(':').expect("header colon");
        headers.push((name.to_ascii_lowercase(), value.trim().to_string()));
    }
    let mut resp = Response { status, headers, body: Vec::new() };
    if !head_request && status != 304 && status != 204 {
        let len: usize = resp.header("content-length").expect("Content-Length").parse().unwrap();
        resp.body = vec![0; len];
        r.read_exact(&mut resp.body).expect("reading body");
    }
    resp
}

/// Asserts `r` is the built-in HTML page for `status`.
pub fn assert_error_page(r: &Response, status: u16) {
    assert_eq!(r.status, status, "{r:?}");
    let ct = r.header("content-type").unwrap_or("");
    assert!(ct.starts_with("text/html"), "Content-Type {ct:?} for {status}");
    let text = r.text();
    assert!(text.contains("<html") && text.contains(&status.to_string()), "page for {status}: {text:?}");
}

/// Sends `raw` on a new connection and reads one response.
pub fn request(addr: SocketAddr, raw: &[u8]) -> Response {
    let mut s = connect(addr);
    s.write_all(raw).unwrap();
    let head = raw.starts_with(b"HEAD ");
    read_response(&mut BufReader::new(s), head)
}

/// `GET path` with `Host` and `Connection: close`.
pub fn get(addr: SocketAddr, path: &str) -> Response {
    request(addr, format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n").as_bytes())
}

/// Reads until EOF (bounded by the socket timeout); returns what arrived, and whether
/// EOF (rather than a timeout or reset) ended it.
pub fn read_to_end(s: &mut TcpStream) -> (Vec<u8>, bool) {
    let mut out = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return (out, true),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(_) => return (out, false),
        }
    }
}

/// How a connection ended when read to the end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    Eof,
    Reset,
    TimedOut,
}

/// Reads until the connection ends or the read timeout passes.
pub fn read_until_end(s: &mut TcpStream) -> (Vec<u8>, End) {
    let mut out = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return (out, End::Eof),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                return (out, End::TimedOut)
            }
            Err(_) => return (out, End::Reset),
        }
    }
}

/// A fresh temporary directory holding a small site.
pub fn site() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::write(root.join("index.html"), "<!DOCTYPE html><title>home</title>hello\n").unwrap();
    std::fs::write(root.join("style.css"), "body { color: black }\n").unwrap();
    std::fs::write(root.join("data.bin"), [0u8, 1, 2, 3, 255]).unwrap();
    std::fs::create_dir(root.join("sub")).unwrap();
    std::fs::write(root.join("sub/index.html"), "sub index\n").unwrap();
    std::fs::write(root.join("sub/page.txt"), "sub page\n").unwrap();
    dir
}

/// Creates a sparse file of `len` bytes at `path` (reads back as zeros, except
/// for a marker written at every MiB boundary so corruption is detectable).
pub fn big_file(path: &Path, len: u64) -> PathBuf {
    use std::os::unix::fs::FileExt;
    let f = std::fs::File::create(path).unwrap();
    f.set_len(len).unwrap();
    let mut off = 0;
    while off + 8 <= len {
        f.write_at(&off.to_be_bytes(), off).unwrap();
        off += 1 << 20;
    }
    path.to_path_buf()
}
