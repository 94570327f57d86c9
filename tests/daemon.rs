//! The binary as a daemon: workers, inherited listeners (systemd socket
//! activation, `--fd`), restarts on a held socket, the access-log file and
//! SIGHUP, the status page.

mod common;

use std::io::{BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::process::Command;
use std::time::Duration;

use common::*;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn path_str(dir: &tempfile::TempDir) -> &str {
    dir.path().to_str().unwrap()
}

/// Sends `req` on a kept connection and reads one response.
fn ask(c: &mut BufReader<TcpStream>, req: &[u8]) -> Response {
    c.get_mut().write_all(req).unwrap();
    read_response(c, false)
}

/// A command running the binary with the listener `listener` as descriptor 3.
/// With `systemd`, `LISTEN_FDS=1` and `LISTEN_PID` set as systemd would (through
/// a shell that execs the binary, so that `$$` is its pid).
fn with_inherited(listener: &TcpListener, systemd: bool, args: &[&str]) -> Command {
    let fd = listener.as_raw_fd();
    let mut cmd = if systemd {
        let mut c = Command::new("sh");
        c.arg("-c").arg("LISTEN_PID=$$ LISTEN_FDS=1 exec \"$0\" \"$@\"").arg(env!("CARGO_BIN_EXE_spindle"));
        c
    } else {
        Command::new(env!("CARGO_BIN_EXE_spindle"))
    };
    cmd.args(args);
    // SAFETY: only async-signal-safe calls (dup2, fcntl) between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            if fd == 3 {
                let flags = libc::fcntl(3, libc::F_GETFD);
                libc::fcntl(3, libc::F_SETFD, flags & !libc::FD_CLOEXEC);
            } else if libc::dup2(fd, 3) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    cmd
}

fn local_listener() -> (TcpListener, SocketAddr) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    (listener, addr)
}

/// Listening sockets on `port` in /proc/net/tcp (state 0A = LISTEN).
fn listening_sockets(port: u16) -> usize {
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap();
    let local = format!(":{port:04X}");
    table
        .lines()
        .skip(1)
        .filter(|l| {
            let fields: Vec<&str> = l.split_whitespace().collect();
            fields.len() > 3 && fields[1].ends_with(&local) && fields[3] == "0A"
        })
        .count()
}

fn threads_of(pid: u32) -> usize {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status.lines().find_map(|l| l.strip_prefix("Threads:")).unwrap().trim().parse().unwrap()
}

#[test]
fn workers_each_listen_on_the_address_and_drain_on_sigterm() {
    let root = site();
    big_file(&root.path().join("big.bin"), 32 * 1024 * 1024);
    let mut p = Spawned::start(
        &["--listen", "127.0.0.1:0", "--workers", "2", "--status", "/status", "--access-log", "off", path_str(&root)],
        1,
    );
    let addr = p.addr();
    assert_eq!(listening_sockets(addr.port()), 2, "one SO_REUSEPORT socket per worker");
    assert!(threads_of(p.child.id()) >= 2, "workers are threads of the process");

    let mut clients: Vec<_> = (0..40).map(|_| BufReader::new(connect(addr))).collect();
    for c in &mut clients {
        c.get_mut().write_all(b"GET /style.css HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
    }
    for c in &mut clients {
        assert_eq!(read_response(c, false).status, 200);
    }
    let status = get(addr, "/status").text();
    assert!(status.contains("\"workers\":2"), "{status}");
    assert!(
        status.contains("\"2xx\":40") || status.contains("\"2xx\":41"),
        "requests of both workers summed: {status}"
    );

    // A download in flight when SIGTERM comes is finished; then the process exits.
    let mut download = connect(addr);
    download.write_all(b"GET /big.bin HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
    let mut first = [0u8; 4096];
    let n = download.read(&mut first).unwrap();
    assert!(first[..n].starts_with(b"HTTP/1.1 200"));
    p.signal(libc::SIGTERM);
    let mut rest = Vec::new();
    download.read_to_end(&mut rest).unwrap();
    let head_end = first[..n].windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    assert_eq!(n - head_end + rest.len(), 32 * 1024 * 1024, "download cut short by the shutdown");
    assert_eq!(p.wait_exit(Duration::from_secs(10)), Some(0), "{}", p.stderr());
}

#[test]
fn systemd_socket_activation_serves_the_inherited_socket() {
    let root = site();
    let (listener, addr) = local_listener();
    let p = Spawned::start_with(&mut with_inherited(&listener, true, &["--access-log", "off", path_str(&root)]), 1);
    assert_eq!(p.addr(), addr, "serves the inherited socket, not a default address: {}", p.stderr());
    assert_eq!(get(addr, "/style.css").status, 200);
    // No default listener was bound beside it.
    assert_eq!(p.stderr().matches("listening on").count(), 1, "{}", p.stderr());
}

#[test]
fn restart_on_a_held_socket_refuses_no_connection() {
    let root = site();
    let (listener, addr) = local_listener();
    let args = ["--fd", "3", "--access-log", "off", path_str(&root)];
    let mut first = Spawned::start_with(&mut with_inherited(&listener, false, &args), 1);
    assert_eq!(first.addr(), addr);
    assert_eq!(get(addr, "/style.css").status, 200);
    first.signal(libc::SIGTERM);
    assert_eq!(first.wait_exit(Duration::from_secs(10)), Some(0));

    // Between the two processes the socket stays open (held here, as systemd
    // holds it): a client connects and sends its request into the backlog...
    let mut waiting = connect(addr);
    waiting.write_all(b"GET /style.css HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n").unwrap();
    // ... and the next process answers it.
    let _second = Spawned::start_with(&mut with_inherited(&listener, false, &args), 1);
    let r = read_response(&mut BufReader::new(waiting), false);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("text/css; charset=utf-8"));
}

#[test]
fn fd_that_is_not_a_listening_socket_is_refused() {
    let root = site();
    let out = Command::new(env!("CARGO_BIN_EXE_spindle"))
        .args(["--fd", "0", path_str(&root)])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--fd 0"), "{stderr}");
}

#[test]
fn sighup_and_sigusr1_reopen_the_access_log_after_rotation_and_sigusr2_is_harmless() {
    let root = site();
    let logs = tempfile::tempdir().unwrap();
    let log = logs.path().join("access.log");
    let rotated = logs.path().join("access.log.1");
    let p = Spawned::start(&["--listen", "127.0.0.1:0", "--access-log", log.to_str().unwrap(), path_str(&root)], 1);
    let addr = p.addr();
    let read = |path: &std::path::Path| std::fs::read_to_string(path).unwrap_or_default();

    // A client stays connected throughout: rotation must not disturb it.
    let mut keep = BufReader::new(connect(addr));
    assert_eq!(ask(&mut keep, b"GET /style.css?before HTTP/1.1\r\nHost: t\r\n\r\n").status, 200);
    // Written out within about a second, without any further traffic.
    assert!(wait_for(ms(3000), || read(&log).contains("/style.css?before")), "not flushed: {:?}", read(&log));

    std::fs::rename(&log, &rotated).unwrap();
    p.signal(libc::SIGHUP);
    assert!(wait_for(ms(3000), || log.exists()), "log not reopened: {}", p.stderr());
    let after = ask(&mut keep, b"GET /style.css?after HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(after.status, 200, "connection dropped by SIGHUP");
    assert!(wait_for(ms(3000), || read(&log).contains("/style.css?after")), "new file: {:?}", read(&log));
    assert!(!read(&rotated).contains("?after"), "line went to the rotated file");
    assert!(read(&rotated).contains("?before"));
    assert!(p.stderr().contains("reopening the access log"), "{}", p.stderr());

    // SIGUSR1 does the same (nginx's signal for it, in many logrotate configurations).
    let rotated2 = logs.path().join("access.log.2");
    std::fs::rename(&log, &rotated2).unwrap();
    p.signal(libc::SIGUSR1);
    assert!(wait_for(ms(3000), || log.exists()), "log not reopened on SIGUSR1: {}", p.stderr());
    assert_eq!(
        ask(
            &mut keep,
            b"GET /style.css?usr1 HTTP/1.1
Host: t

"
        )
        .status,
        200
    );
    assert!(wait_for(ms(3000), || read(&log).contains("?usr1")), "new file: {:?}", read(&log));
    assert!(!read(&rotated2).contains("?usr1"), "line went to the rotated file");

    // SIGUSR2 (nginx's binary upgrade) is ignored rather than fatal.
    p.signal(libc::SIGUSR2);
    assert!(wait_for(ms(3000), || p.stderr().contains("SIGUSR2 received")), "{}", p.stderr());
    assert_eq!(
        ask(
            &mut keep,
            b"GET /style.css?usr2 HTTP/1.1
Host: t

"
        )
        .status,
        200
    );
}

#[test]
fn status_page_counts_responses_timeouts_and_connections() {
    let root = site();
    let p = Spawned::start(
        &["--listen", "127.0.0.1:0", "--status", "/status", "--header-timeout", "300ms", path_str(&root)],
        1,
    );
    let addr = p.addr();
    assert_eq!(get(addr, "/style.css").status, 200);
    assert_eq!(get(addr, "/missing").status, 404);
    // A request head that never completes: 408 and a header timeout.
    let mut slow = BufReader::new(connect(addr));
    assert_eq!(ask(&mut slow, b"GET / HTTP/1.1\r\nHost").status, 408);
    // An idle keep-alive connection, open while the page is read.
    let mut idle = BufReader::new(connect(addr));
    assert_eq!(ask(&mut idle, b"GET /style.css HTTP/1.1\r\nHost: t\r\n\r\n").status, 200);

    let r = get(addr, "/status");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.header("cache-control"), Some("no-store"));
    let json = r.text();
    for field in [
        "\"workers\":1",
        "\"idle\":1",
        "\"reading_head\":1",
        "\"accepted\":5",
        "\"2xx\":2",
        "\"4xx\":2",
        "\"header\":1",
        "\"handler_panics\":0",
    ] {
        assert!(json.contains(field), "{field} not in {json}");
    }

    let prom = request(addr, b"GET /status HTTP/1.1\r\nHost: t\r\nAccept: text/plain\r\nConnection: close\r\n\r\n");
    assert!(prom.header("content-type").unwrap().starts_with("text/plain; version=0.0.4"));
    let text = prom.text();
    for line in ["spindle_responses_total{class=\"4xx\"} 2", "spindle_timeouts_total{kind=\"header\"} 1"] {
        assert!(text.lines().any(|l| l == line), "{line} not in\n{text}");
    }
}
