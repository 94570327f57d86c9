//! The opt-in load-testing endpoints: fixed answers, sized bodies, statuses on
//! demand, and delays timed by the event loop (never by sleeping).

mod common;

use std::io::BufReader;
use std::time::{Duration, Instant};

use common::*;
use spindle::{Config, Router, StaticFiles};

fn server() -> (TestServer, tempfile::TempDir) {
    let root = site();
    let router = Router::new().load_test_endpoints().fallback(StaticFiles::new(root.path()).unwrap());
    (TestServer::with_router(router, Config::default()), root)
}

#[test]
fn fixed_answers() {
    let (server, _root) = server();
    let r = get(server.addr, "/plaintext");
    assert_eq!((r.status, r.text().as_str()), (200, "Hello, World!"));
    assert_eq!(r.header("content-type"), Some("text/plain; charset=utf-8"));
    let r = get(server.addr, "/json");
    assert_eq!((r.status, r.text().as_str()), (200, r#"{"message":"Hello, World!"}"#));
    assert_eq!(r.header("content-type"), Some("application/json"));
    // Files are still served beside them.
    assert_eq!(get(server.addr, "/style.css").status, 200);
}

#[test]
fn sized_bodies_and_statuses() {
    let (server, _root) = server();
    for n in [0usize, 1, 1000, 100_000, 16 << 20] {
        let r = get(server.addr, &format!("/bytes/{n}"));
        assert_eq!(r.status, 200, "/bytes/{n}");
        assert_eq!(r.body.len(), n);
        assert!(r.body.iter().all(|&b| b == 0));
    }
    for bad in ["/bytes/16777217", "/bytes/-1", "/bytes/x", "/bytes/99999999999999999999"] {
        assert_eq!(get(server.addr, bad).status, 400, "{bad}");
    }
    for code in [200u16, 201, 301, 404, 418, 503, 599] {
        assert_eq!(get(server.addr, &format!("/status/{code}")).status, code);
    }
    // The fields some statuses must carry (RFC 9110 §15.5).
    for (code, field) in [(401, "www-authenticate"), (405, "allow"), (407, "proxy-authenticate"), (426, "upgrade")] {
        let r = get(server.addr, &format!("/status/{code}"));
        assert_eq!(r.status, code);
        assert!(r.header(field).is_some_and(|v| !v.is_empty()), "{code} without {field}: {r:?}");
    }
    let r = get(server.addr, "/status/204");
    assert_eq!((r.status, r.body.len()), (204, 0));
    // RFC 9110 §15.3.6: no content in a 205, and a length that says so.
    let mut c = Client::new(server.addr);
    let r = c.get("/status/205");
    assert_eq!((r.status, r.header("content-length"), r.body.len()), (205, Some("0"), 0));
    assert_eq!(c.get("/status/200").status, 200, "the connection carries on after a 205");
    for bad in ["/status/100", "/status/600", "/status/abc"] {
        assert_eq!(get(server.addr, bad).status, 400, "{bad}");
    }
}

#[test]
fn delays_are_timed_by_the_loop_and_do_not_block_others() {
    let (server, _root) = server();
    let started = Instant::now();
    // Twenty clients wait 400 ms each, at the same time.
    let mut waiting: Vec<_> = (0..20)
        .map(|_| {
            let mut c = connect(server.addr);
            std::io::Write::write_all(&mut c, b"GET /delay/400 HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
            BufReader::new(c)
        })
        .collect();
    // Meanwhile another client is answered at once.
    let quick = Instant::now();
    assert_eq!(get(server.addr, "/plaintext").status, 200);
    assert!(quick.elapsed() < Duration::from_millis(200), "blocked for {:?}", quick.elapsed());
    for c in &mut waiting {
        let r = read_response(c, false);
        assert_eq!((r.status, r.text().as_str()), (200, "delayed\n"));
    }
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(390), "answered after {took:?}");
    assert!(took < Duration::from_millis(1500), "the delays ran one after another: {took:?}");
    // The connection is kept alive after a delayed answer.
    let c = &mut waiting[0];
    std::io::Write::write_all(c.get_mut(), b"GET /delay/0 HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
    assert_eq!(read_response(c, false).status, 200);
    assert_eq!(get(server.addr, "/delay/60001").status, 400);
}

#[test]
fn pipelined_requests_around_a_delay_keep_their_order_and_the_earlier_ones_do_not_wait() {
    let (server, _root) = server();
    let mut c = Client::new(server.addr);
    c.send(concat!(
        "GET /json HTTP/1.1\r\nHost: t\r\n\r\n",
        "GET /delay/1500 HTTP/1.1\r\nHost: t\r\n\r\n",
        "HEAD /plaintext HTTP/1.1\r\nHost: t\r\n\r\n",
    ));
    let started = Instant::now();
    // The answer ahead of the delayed one goes out at once, not with it.
    assert_eq!(c.recv().text(), r#"{"message":"Hello, World!"}"#);
    assert!(started.elapsed() < Duration::from_millis(750), "held back for {:?}", started.elapsed());
    let r = c.recv();
    assert_eq!((r.status, r.text().as_str()), (200, "delayed\n"));
    assert!(started.elapsed() >= Duration::from_millis(1400), "answered after {:?}", started.elapsed());
    // The one behind it is answered after it.
    let head = c.recv_head();
    assert_eq!((head.status, head.header("content-length"), head.body.len()), (200, Some("13"), 0));
    // Requests sent one at a time after a delayed one (whose buffers went while
    // it waited) are read and answered into new ones.
    for _ in 0..3 {
        assert_eq!(c.get("/delay/0").status, 200);
        assert_eq!(c.get("/plaintext").text(), "Hello, World!");
    }
}

#[test]
fn a_delay_outlasts_the_body_deadline_of_its_request() {
    let root = site();
    let router = Router::new().load_test_endpoints().fallback(StaticFiles::new(root.path()).unwrap());
    let config = Config { body_timeout: Duration::from_millis(300), ..Config::default() };
    let server = TestServer::with_router(router, config);
    let mut c = Client::new(server.addr);
    // The body is complete: its deadline must not end the wait for the answer.
    c.send("GET /delay/900 HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\n\r\nx");
    let r = c.recv();
    assert_eq!((r.status, r.text().as_str()), (200, "delayed\n"));
    assert_eq!(c.get("/plaintext").status, 200, "kept alive");
}

#[test]
fn binary_flag_turns_them_on() {
    let root = site();
    let on = Spawned::start(&["--listen", "127.0.0.1:0", "--load-test", root.path().to_str().unwrap()], 1);
    assert_eq!(get(on.addr(), "/plaintext").status, 200);
    let off = Spawned::start(&["--listen", "127.0.0.1:0", root.path().to_str().unwrap()], 1);
    assert_eq!(get(off.addr(), "/plaintext").status, 404);
}

#[test]
fn a_client_that_gives_up_during_a_delay_is_let_go_at_once_and_logged_499() {
    let root = site();
    let args = ["--listen", "127.0.0.1:0", "--load-test", "--status", "/st", root.path().to_str().unwrap()];
    let p = Spawned::start(&args, 1);
    let addr = p.addr();
    // Twenty clients ask for a minute's wait and leave (as a proxy's timeout does).
    for i in 0..20 {
        let mut c = connect(addr);
        std::io::Write::write_all(&mut c, format!("GET /delay/60000?gone{i} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes())
            .unwrap();
    }
    // One sends its requests and closes its side: what was due is sent, the rest not waited for.
    let mut half = connect(addr);
    let pipelined =
        "GET /plaintext?before HTTP/1.1\r\nHost: t\r\n\r\nGET /delay/60000?half HTTP/1.1\r\nHost: t\r\n\r\n";
    std::io::Write::write_all(&mut half, pipelined.as_bytes()).unwrap();
    half.shutdown(std::net::Shutdown::Write).unwrap();
    let (answered, end) = read_until_end(&mut half);
    assert_eq!(end, End::Eof);
    assert!(String::from_utf8_lossy(&answered).ends_with("Hello, World!"), "{}", String::from_utf8_lossy(&answered));
    // One waits on, beside them, and is answered.
    let mut stays = Client::new(addr);
    stays.send("GET /delay/2000?stays HTTP/1.1\r\nHost: t\r\n\r\n");
    // The connections of those gone close long before their delay would end:
    // only the one that stays is still waiting.
    let sending = || get(addr, "/st").text().contains(r#""sending":1,"#);
    assert!(wait_for(Duration::from_secs(5), sending), "{}", get(addr, "/st").text());
    assert_eq!(stays.recv().text(), "delayed\n");
    let gone = |log: &str| {
        log.lines().filter(|l| l.contains("?gone") || l.contains("?half")).filter(|l| l.ends_with("\" 499 -")).count()
    };
    assert!(wait_for(Duration::from_secs(5), || gone(&p.stdout()) == 21), "{}", p.stdout());
    let answered = |log: &str| log.lines().any(|l| l.contains("?stays") && l.ends_with(" 200 8"));
    assert!(wait_for(Duration::from_secs(5), || answered(&p.stdout())), "{}", p.stdout());
}
