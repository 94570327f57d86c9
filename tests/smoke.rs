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
    assert!(p.stderr().contains("\"GET /style.css HTTP/1.1\" 200"), "{}", p.stderr());
}
