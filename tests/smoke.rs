//! The shortest path through the server: one GET, in-process and as the binary.

mod common;

use common::*;

#[test]
fn in_process_get() {
    let root = site();
    let server = TestServer::with_root(root.path());
    let r = get(server.addr, "/");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
    assert!(r.text().contains("hello"));
}

#[test]
fn binary_get_and_sigterm_exits_zero() {
    let root = site();
    let mut p = Spawned::start(&["--listen", "127.0.0.1:0", root.path().to_str().unwrap()], 1);
    let r = get(p.addr(), "/style.css");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("text/css; charset=utf-8"));
    p.signal(libc::SIGTERM);
    assert_eq!(p.wait_exit(IO_TIMEOUT), Some(0));
    // The access log (stdout by default) is written out on exit.
    let logged = wait_for(std::time::Duration::from_secs(5), || p.stdout().contains("\"GET /style.css HTTP/1.1\" 200"));
    assert!(logged, "no access line on stdout: {:?}\nstderr: {}", p.stdout(), p.stderr());
}
