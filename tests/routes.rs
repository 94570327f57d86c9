//! The library's routing layer over real sockets: route matching, 404/405/OPTIONS
//! and automatic HEAD, mounts, what handlers see of a request and what they can put
//! in a response, middleware, handler panics, the binary's router-level options
//! (access log, extra header fields, health check), and embedding a `Server` in a
//! host's own `mio` loop.

mod common;

use common::*;

use std::collections::HashMap;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::os::fd::AsRawFd;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token, Waker};
use spindle::{
    Body, Config, Handler, HeaderValue, Method, Middleware, Request, Response as Reply, Router, Server, SetHeaders,
    StaticFiles, Stats, Status, Version,
};

const INDEX: &str = "<!DOCTYPE html><title>home</title>hello\n";
const CSS: &str = "body { color: black }\n";

// ---- helpers ------------------------------------------------------------------------

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// `GET path` with `Host`; the connection persists.
fn get_req(path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: test\r\n\r\n")
}

/// A request of `method` for `path` with `Host`; the connection persists.
fn req(method: &str, path: &str) -> String {
    format!("{method} {path} HTTP/1.1\r\nHost: test\r\n\r\n")
}

/// Sends `raw` on a new connection and returns every byte until the server closes it.
fn raw_exchange(addr: SocketAddr, raw: &[u8]) -> Vec<u8> {
    let mut s = connect(addr);
    s.write_all(raw).unwrap();
    let (data, eof) = read_to_end(&mut s);
    assert!(eof, "connection not closed after {:?}; got {:?}", String::from_utf8_lossy(raw), lossy(&data));
    data
}

/// Parses the first response in `raw`.
fn parse(raw: &[u8], head_request: bool) -> Response {
    let mut r = raw;
    read_response(&mut r, head_request)
}

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// How many fields called `name` (lower case) `r` has.
fn count(r: &Response, name: &str) -> usize {
    r.headers.iter().filter(|(n, _)| n == name).count()
}

/// Every value of the field `name` (lower case), in order.
fn all(r: &Response, name: &str) -> Vec<String> {
    r.headers.iter().filter(|(n, _)| n == name).map(|(_, v)| v.clone()).collect()
}

fn text(body: &str) -> impl Fn(&Request<'_>) -> Reply + Send + 'static {
    let body = body.to_string();
    move |_: &Request<'_>| Reply::text(body.clone())
}

fn path_str(dir: &tempfile::TempDir) -> &str {
    dir.path().to_str().unwrap()
}

// ---- route matching -----------------------------------------------------------------

fn matching_router() -> Router {
    Router::new()
        .get("/", text("root"))
        .get("/a", text("a"))
        .get("/users/:id", |r: &Request<'_>| {
            Reply::text(format!("user {} query {:?}", r.param("id").unwrap_or("?"), r.query()))
        })
        .get("/users/me", text("literal me"))
        .get("/users/:id/posts/:post", |r: &Request<'_>| {
            Reply::text(format!("user {} post {}", r.param("id").unwrap_or("?"), r.param("post").unwrap_or("?")))
        })
        .get("/dup", text("first"))
        .get("/dup", text("second"))
}

#[test]
fn routes_match_exact_paths_and_named_segments() {
    let server = TestServer::with_router(matching_router(), Config::default());
    let mut c = Client::new(server.addr);
    let cases: &[(&str, u16, &str)] = &[
        ("/", 200, "root"),
        ("/a", 200, "a"),
        ("/users/42", 200, "user 42 query None"),
        ("/users/42/posts/7", 200, "user 42 post 7"),
        // First registered wins, even over a more specific literal registered later.
        ("/users/me", 200, "user me query None"),
        ("/dup", 200, "first"),
        // Percent-decoded before matching.
        ("/users/a%20b", 200, "user a b query None"),
        ("/%61", 200, "a"),
        // The query string takes no part in matching.
        ("/users/7?x=1", 200, "user 7 query Some(\"x=1\")"),
        ("/?q=2", 200, "root"),
    ];
    for &(path, status, body) in cases {
        let r = c.get(path);
        assert_eq!(r.status, status, "GET {path}: {r:?}");
        assert_eq!(r.text(), body, "GET {path}");
    }
    // `/` matches only `/`; trailing slashes and missing or extra segments do not match.
    for path in
        ["/nothing", "/a/", "/users", "/users/", "/users/42/", "/users/42/posts", "/users/42/posts/", "/users//posts/7"]
    {
        let r = c.get(path);
        assert_error_page(&r, 404);
    }
}

#[test]
fn unrouted_paths_get_the_builtin_404_page() {
    let server = TestServer::with_router(Router::new().get("/only", text("only")), Config::default());
    let mut c = Client::new(server.addr);
    for path in ["/", "/nope", "/only/", "/onlyx"] {
        assert_error_page(&c.get(path), 404);
    }
    // POST to an unknown path is a 404 too (no route matches the path at all).
    let r = c.exchange("POST /nope HTTP/1.1\r\nHost: test\r\nContent-Length: 0\r\n\r\n");
    assert_error_page(&r, 404);
    assert_eq!(c.get("/only").text(), "only", "connection still usable after 404s");
}

/// Counts `on_idle` calls.
struct IdleCounter(Arc<AtomicUsize>);

impl Handler for IdleCounter {
    fn handle(&self, _: &Request<'_>) -> Reply {
        Reply::text("busy")
    }

    fn on_idle(&self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn handlers_hear_once_per_quiet_spell_that_the_server_is_idle() {
    let idle = Arc::new(AtomicUsize::new(0));
    let router = Router::new().get("/work", IdleCounter(idle.clone())).mount("/files", IdleCounter(idle.clone()));
    let server = TestServer::with_router(router, Config::default());
    let mut c = Client::new(server.addr);
    assert_eq!(c.get("/work").text(), "busy");
    let start = Instant::now();
    // Both the route's and the mount's handler are told, about half a second after the request.
    assert!(wait_for(ms(5000), || idle.load(Ordering::SeqCst) >= 2), "on_idle never called");
    assert!(start.elapsed() >= ms(300), "on_idle came while requests were just answered");
    // Nothing more while nothing happens: once per quiet spell, not a polling loop.
    thread::sleep(ms(1500));
    assert_eq!(idle.load(Ordering::SeqCst), 2);
    assert_eq!(c.get("/files/x").text(), "busy", "the kept connection still works");
    assert!(wait_for(ms(5000), || idle.load(Ordering::SeqCst) >= 4), "no on_idle after the second request");
}

fn methods_router() -> Router {
    Router::new()
        .get("/thing", |_: &Request<'_>| Reply::text("thing body").with_header("X-Handler", "thing"))
        .post("/thing", text("posted"))
        .post("/only-post", text("posted"))
        .get("/custom", text("custom get"))
        .route(Method::Options, "/custom", |_: &Request<'_>| {
            Reply::text("custom options").with_header("Allow", "GET, OPTIONS, BREW")
        })
        .fallback(|r: &Request<'_>| Reply::text(format!("fallback {}", r.path())))
}

#[test]
fn other_methods_on_a_routed_path_get_405_with_allow() {
    let server = TestServer::with_router(methods_router(), Config::default());
    let mut c = Client::new(server.addr);
    for method in ["DELETE", "PUT", "PATCH"] {
        let r = c.exchange(req(method, "/thing"));
        assert_error_page(&r, 405);
        assert_eq!(r.header("allow"), Some("GET, HEAD, POST, OPTIONS"), "{method} /thing: {r:?}");
        assert!(!r.text().contains("fallback"), "a 405 fell through to the fallback mount");
    }
    let r = c.exchange(req("GET", "/only-post"));
    assert_error_page(&r, 405);
    assert_eq!(r.header("allow"), Some("POST, OPTIONS"));
    let r = c.exchange_head(req("HEAD", "/only-post"));
    assert_eq!(r.status, 405);
    assert_eq!(r.header("allow"), Some("POST, OPTIONS"));
    // OPTIONS * names the methods some route or mount takes.
    let r = c.exchange(req("OPTIONS", "*"));
    assert_eq!((r.status, r.header("allow")), (200, Some("GET, HEAD, POST, OPTIONS")), "{r:?}");
    // Sanity: the routes themselves and the fallback still answer.
    assert_eq!(c.exchange("POST /thing HTTP/1.1\r\nHost: test\r\nContent-Length: 0\r\n\r\n").text(), "posted");
    assert_eq!(c.get("/elsewhere").text(), "fallback /elsewhere");
}

#[test]
fn head_is_answered_automatically_for_get_routes() {
    let server = TestServer::with_router(methods_router(), Config::default());
    let mut c = Client::new(server.addr);
    let get = c.get("/thing");
    assert_eq!(get.status, 200);
    assert_eq!(get.text(), "thing body");
    let head = c.exchange_head(req("HEAD", "/thing"));
    assert_eq!(head.status, 200, "{head:?}");
    assert_eq!(head.header("content-length"), Some("10"), "HEAD must carry the GET body's length: {head:?}");
    let strip = |r: &Response| -> Vec<(String, String)> {
        r.headers.iter().filter(|(n, _)| n != "date").cloned().collect::<Vec<_>>()
    };
    assert_eq!(strip(&head), strip(&get), "HEAD and GET heads differ");
    // No body followed the HEAD response: the next response parses cleanly.
    let next = c.get("/thing");
    assert_eq!(next.text(), "thing body");
}

#[test]
fn options_is_answered_with_allow_unless_routed() {
    let server = TestServer::with_router(methods_router(), Config::default());
    let mut c = Client::new(server.addr);
    let r = c.exchange(req("OPTIONS", "/thing"));
    assert_eq!(r.status, 204, "{r:?}");
    assert_eq!(r.header("allow"), Some("GET, HEAD, POST, OPTIONS"));
    assert_eq!(c.exchange(req("OPTIONS", "/only-post")).header("allow"), Some("POST, OPTIONS"));
    // An explicit OPTIONS route wins over the automatic answer.
    let r = c.exchange(req("OPTIONS", "/custom"));
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.text(), "custom options");
    assert_eq!(r.header("allow"), Some("GET, OPTIONS, BREW"));
    // The 204s carried no body: the connection is still in step.
    assert_eq!(c.get("/custom").text(), "custom get");
}

// ---- mounts -------------------------------------------------------------------------------

#[test]
fn static_files_mounted_under_a_prefix() {
    let root = site();
    let router = Router::new()
        .get("/static/data.bin", text("route wins"))
        .mount("/static", StaticFiles::new(root.path()).unwrap())
        .mount("/static/deep", |r: &Request<'_>| Reply::text(format!("deep {}", lossy(r.mounted_path_bytes()))));
    let server = TestServer::with_router(router, Config::default());
    let mut c = Client::new(server.addr);

    let r = c.get("/static/style.css");
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.text(), CSS);
    assert!(r.header("content-type").unwrap_or("").starts_with("text/css"), "{r:?}");
    assert_eq!(c.get("/static/").text(), INDEX);
    assert_eq!(c.get("/static/sub/page.txt").text(), "sub page\n");

    let r = c.get("/static/sub");
    assert_eq!(r.status, 301, "{r:?}");
    assert_eq!(r.header("location"), Some("/static/sub/"));

    // Not under the mount: a prefix must end at a segment boundary.
    assert_error_page(&c.get("/staticfoo"), 404);
    assert_error_page(&c.get("/style.css"), 404);
    assert_error_page(&c.get("/static/missing.css"), 404);

    // A route beats the mount on the same path.
    assert_eq!(c.get("/static/data.bin").text(), "route wins");
    // The longest mount prefix wins, whatever the registration order.
    assert_eq!(c.get("/static/deep/x/y").text(), "deep /x/y");
    // The mount point itself, without its slash: the remainder is empty.
    assert_eq!(c.get("/static/deep").text(), "deep ");
    // A mount answers any method; StaticFiles itself refuses non-GET.
    let r = c.exchange("POST /static/style.css HTTP/1.1\r\nHost: test\r\nContent-Length: 0\r\n\r\n");
    assert_eq!(r.status, 405, "{r:?}");
}

#[test]
fn a_static_mount_prefix_without_its_slash_redirects() {
    let root = site();
    let router = Router::new().mount("/static", StaticFiles::new(root.path()).unwrap());
    let server = TestServer::with_router(router, Config::default());
    let mut c = Client::new(server.addr);
    // Like any directory asked for without its trailing slash (relative links in
    // the index page would otherwise resolve against `/`).
    let r = c.get("/static");
    assert_eq!(r.status, 301, "GET /static: {r:?}");
    assert_eq!(r.header("location"), Some("/static/"));
    let r = c.get("/static?v=1");
    assert_eq!(r.status, 301, "GET /static?v=1: {r:?}");
    assert_eq!(r.header("location"), Some("/static/?v=1"));
}

#[test]
fn a_fallback_gets_everything_else() {
    let root = site();
    let router = Router::new()
        .get("/api", text("api"))
        .mount("/static", StaticFiles::new(root.path()).unwrap())
        .fallback(|r: &Request<'_>| Reply::text(format!("fallback {} {}", r.method_str(), r.path())));
    let server = TestServer::with_router(router, Config::default());
    let mut c = Client::new(server.addr);
    assert_eq!(c.get("/api").text(), "api");
    assert_eq!(c.get("/static/style.css").text(), CSS);
    assert_eq!(c.get("/staticfoo").text(), "fallback GET /staticfoo");
    assert_eq!(c.get("/").text(), "fallback GET /");
    assert_eq!(c.get("/x/y/z").text(), "fallback GET /x/y/z");
    assert_eq!(c.exchange(req("DELETE", "/anything")).text(), "fallback DELETE /anything");
    // The mount still takes its own misses (no falling through to the fallback).
    assert_error_page(&c.get("/static/missing"), 404);
}

// ---- what handlers see --------------------------------------------------------------------

/// Reports everything a handler sees of a request, one `key=value` per line.
fn inspect(r: &Request<'_>) -> Reply {
    let multi: Vec<String> = r.headers().get_all("x-multi").map(lossy).collect();
    let version = match r.version() {
        Version::Http10 => "1.0",
        Version::Http11 => "1.1",
    };
    Reply::text(format!(
        "method={:?}\nmethod_str={}\ntarget={}\npath={}\nquery={}\nversion={version}\ncustom={}\nmulti={}\n\
         peer={}\nbody={}\n",
        r.method(),
        r.method_str(),
        r.target(),
        r.path(),
        r.query().unwrap_or("-"),
        r.header("x-custom").unwrap_or("-"),
        multi.join("|"),
        r.peer().ip(),
        lossy(r.body()),
    ))
}

fn fields(r: &Response) -> HashMap<String, String> {
    r.text().lines().filter_map(|l| l.split_once('=')).map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

#[test]
fn handlers_see_the_request() {
    let router = Router::new()
        .post("/echo", |r: &Request<'_>| Reply::new(Status::OK).with_body(r.body().to_vec()))
        .fallback(inspect);
    let server = TestServer::with_router(router, Config::default());
    let addr = server.addr;

    let r = request(
        addr,
        b"GET http://test/in%20spect/x?q=1&r=%20 HTTP/1.1\r\nHost: test\r\nX-CUSTOM: hello\r\n\
          X-Multi: a\r\nx-multi: b\r\nX-MULTI: c\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(r.status, 200, "{r:?}");
    let f = fields(&r);
    assert_eq!(f["method"], "Get");
    assert_eq!(f["method_str"], "GET");
    assert_eq!(f["target"], "http://test/in%20spect/x?q=1&r=%20", "target is raw");
    assert_eq!(f["path"], "/in spect/x", "path is decoded");
    assert_eq!(f["query"], "q=1&r=%20", "query is undecoded");
    assert_eq!(f["version"], "1.1");
    assert_eq!(f["custom"], "hello", "header lookup is case-insensitive");
    assert_eq!(f["multi"], "a|b|c", "get_all returns every field of the name, in order");
    assert_eq!(f["peer"], "127.0.0.1");

    let r = request(addr, b"PATCH /v HTTP/1.0\r\nContent-Length: 0\r\n\r\n");
    assert_eq!(r.status, 200, "{r:?}");
    let f = fields(&r);
    assert_eq!(f["method"], "Patch");
    assert_eq!(f["method_str"], "PATCH");
    assert_eq!(f["version"], "1.0");
    assert_eq!(f["query"], "-");
    assert_eq!(f["custom"], "-");
    assert_eq!(f["multi"], "");

    let body = "hello body \u{e9}\r\n";
    let mut c = Client::new(addr);
    let r = c.exchange(format!("POST /echo HTTP/1.1\r\nHost: test\r\nContent-Length: {}\r\n\r\n{body}", body.len()));
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.text(), body);
    // The fallback sees a POST body too.
    let r = c.exchange("PUT /put HTTP/1.1\r\nHost: test\r\nContent-Length: 5\r\n\r\nabcde");
    let f = fields(&r);
    assert_eq!((f["method"].as_str(), f["body"].as_str()), ("Put", "abcde"));
}

// ---- what handlers can answer -------------------------------------------------------------

fn builders_router(root: &std::path::Path) -> Router {
    let css = root.join("style.css");
    Router::new()
        .get("/text", |_: &Request<'_>| Reply::text("plain"))
        .get("/html", |_: &Request<'_>| Reply::html("<p>hi</p>"))
        .get("/json", |_: &Request<'_>| Reply::json(r#"{"a":1}"#))
        .get("/teapot", |_: &Request<'_>| Reply::status(Status(418)))
        .get("/created", |_: &Request<'_>| Reply::new(Status(201)).with_body("made"))
        .get("/headers", |_: &Request<'_>| {
            let mut r = Reply::text("h").with_header("X-One", "1").with_header("x-one", "2");
            r.set_header("X-Two", "a");
            r.set_header("X-TWO", "b");
            r.append_header("X-Multi", "m1");
            r.append_header("x-multi", "m2");
            r
        })
        .get("/static-body", |_: &Request<'_>| Reply::new(Status::OK).with_body(Body::Static(b"static bytes")))
        .get("/file", move |_: &Request<'_>| {
            Reply::file(std::fs::File::open(&css).unwrap()).unwrap().with_header("Content-Type", "text/css")
        })
        .get("/close", |_: &Request<'_>| Reply::text("bye").with_close())
        .get("/managed", |_: &Request<'_>| {
            Reply::text("managed body")
                .with_header("Content-Length", "999")
                .with_header("Connection", "close")
                .with_header("Date", "yesterday")
                .with_header("Server", "evil/6.6.6")
                .with_header("Transfer-Encoding", "chunked")
        })
        .get("/inject", |_: &Request<'_>| {
            let mut r = Reply::text("safe")
                .with_header("X-Bad", String::from("ok\r\nInjected-One: yes"))
                .with_header("X-Bad-Lf", String::from("ok\nInjected-Two: yes"));
            r.append_header(HeaderValue::from(String::from("X-Evil\r\nInjected-Three: yes")), "v");
            r.append_header("X-Static", "ok\r\nInjected-Four: yes");
            r.append_header("X-Shared", HeaderValue::from(std::sync::Arc::<str>::from("ok\nInjected-Five: yes")));
            r.set_header("X-Good", "fine");
            r
        })
}

#[test]
fn response_builders_set_types_and_bodies() {
    let root = site();
    let server = TestServer::with_router(builders_router(root.path()), Config::default());
    let mut c = Client::new(server.addr);
    for (path, ctype, body) in [
        ("/text", "text/plain; charset=utf-8", "plain"),
        ("/html", "text/html; charset=utf-8", "<p>hi</p>"),
        ("/json", "application/json", r#"{"a":1}"#),
    ] {
        let r = c.get(path);
        assert_eq!(r.status, 200, "{path}: {r:?}");
        assert_eq!(r.header("content-type"), Some(ctype), "{path}");
        assert_eq!(r.text(), body, "{path}");
        assert_eq!(r.header("content-length"), Some(body.len().to_string().as_str()), "{path}");
    }
    let r = c.get("/teapot");
    assert_eq!(r.status, 418, "{r:?}");
    assert!(r.text().contains("418") && r.text().contains("<html"), "{r:?}");
    let r = c.get("/created");
    assert_eq!((r.status, r.text().as_str()), (201, "made"));

    let r = c.get("/headers");
    assert_eq!(all(&r, "x-one"), ["2"], "with_header replaces case-insensitively: {r:?}");
    assert_eq!(all(&r, "x-two"), ["b"], "set_header replaces case-insensitively: {r:?}");
    assert_eq!(all(&r, "x-multi"), ["m1", "m2"], "append_header keeps both: {r:?}");

    let r = c.get("/static-body");
    assert_eq!((r.status, r.text().as_str()), (200, "static bytes"));
    let r = c.get("/file");
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.text(), CSS);
    assert_eq!(r.header("content-length"), Some(CSS.len().to_string().as_str()));
    assert_eq!(r.header("content-type"), Some("text/css"));
    // Still in step after a streamed file body.
    assert_eq!(c.get("/text").text(), "plain");
}

#[test]
fn with_close_closes_the_connection() {
    let root = site();
    let server = TestServer::with_router(builders_router(root.path()), Config::default());
    let mut c = Client::new(server.addr);
    assert_eq!(c.get("/text").header("connection"), None, "a keep-alive answer needs no Connection field");
    let r = c.get("/close");
    assert_eq!(r.text(), "bye");
    assert_eq!(r.header("connection").map(str::to_ascii_lowercase).as_deref(), Some("close"), "{r:?}");
    c.expect_eof();
}

#[test]
fn handler_set_managed_fields_are_ignored() {
    let root = site();
    let server = TestServer::with_router(builders_router(root.path()), Config::default());
    // The handler's `Connection: close` is ignored: the connection persists.
    let mut c = Client::new(server.addr);
    let r = c.get("/managed");
    assert_eq!(r.text(), "managed body");
    assert_eq!(r.header("connection"), None, "{r:?}");
    assert_eq!(c.get("/text").text(), "plain", "the handler's Connection: close was obeyed");

    let raw = raw_exchange(server.addr, b"GET /managed HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
    let r = parse(&raw, false);
    assert_eq!(r.text(), "managed body");
    for name in ["content-length", "connection", "date", "server"] {
        assert_eq!(count(&r, name), 1, "{name} in {r:?}");
    }
    assert_eq!(r.header("content-length"), Some("12"));
    assert_eq!(r.header("connection"), Some("close"));
    assert_ne!(r.header("date"), Some("yesterday"));
    assert!(httpdate::parse_http_date(r.header("date").unwrap()).is_ok(), "{r:?}");
    assert_ne!(r.header("server"), Some("evil/6.6.6"));
    assert_eq!(count(&r, "transfer-encoding"), 0, "{r:?}");
    // Nothing after the 12-byte body.
    let head_end = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    assert_eq!(&raw[head_end..], b"managed body");
}

#[test]
fn header_values_with_line_breaks_are_dropped() {
    let root = site();
    let server = TestServer::with_router(builders_router(root.path()), Config::default());
    let raw = raw_exchange(server.addr, b"GET /inject HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
    let text = lossy(&raw);
    assert!(!text.contains("Injected"), "a handler injected a header line:\n{text}");
    let r = parse(&raw, false);
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.text(), "safe");
    assert_eq!(r.header("x-good"), Some("fine"));
    assert_eq!(count(&r, "x-bad"), 0, "{r:?}");
    assert_eq!(count(&r, "x-bad-lf"), 0, "{r:?}");
}

/// Re-uses the values of a file response's own fields as field names.
struct ValuesAsNames;

impl Middleware for ValuesAsNames {
    fn on_response(&self, _: &Request<'_>, response: &mut Reply) {
        // The value is one the server built too ("bytes"): a pair of two such
        // values must not skip the checks a name gets.
        let Some(bytes) = response.header("Accept-Ranges").cloned() else { return };
        for name in ["Last-Modified", "Content-Type", "ETag"] {
            if let Some(value) = response.header(name).cloned() {
                response.append_header(value, bytes.clone());
            }
        }
    }
}

#[test]
fn values_the_server_built_are_still_checked_when_used_as_names() {
    let root = site();
    let router = Router::new().mount("/static", StaticFiles::new(root.path()).unwrap()).wrap(ValuesAsNames);
    let server = TestServer::with_router(router, Config::default());
    let raw = raw_exchange(server.addr, b"GET /static/style.css HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
    let r = parse(&raw, false);
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.text(), CSS);
    let text = lossy(&raw);
    // None of those values is a token (a date, a media type with '/', a quoted tag).
    assert_eq!(text.matches(": bytes\r\n").count(), 1, "a value was written as a field name:\n{text}");
    assert_eq!(r.header("accept-ranges"), Some("bytes"));
}

// ---- middleware ---------------------------------------------------------------------------

type Log = Arc<Mutex<Vec<String>>>;

/// Records its hooks (and the status each `on_response` saw) in a shared log.
struct Recorder {
    name: &'static str,
    log: Log,
}

impl Middleware for Recorder {
    fn on_request(&self, _req: &mut Request<'_>) -> Option<Reply> {
        self.log.lock().unwrap().push(format!("req:{}", self.name));
        None
    }

    fn on_response(&self, _req: &Request<'_>, response: &mut Reply) {
        self.log.lock().unwrap().push(format!("resp:{}:{}", self.name, response.status_code().code()));
    }
}

/// Answers 401 itself when `Authorization` is missing.
struct Auth {
    log: Log,
}

impl Middleware for Auth {
    fn on_request(&self, req: &mut Request<'_>) -> Option<Reply> {
        self.log.lock().unwrap().push("req:auth".into());
        match req.header("authorization") {
            Some(_) => None,
            None => Some(Reply::status(Status(401)).with_header("WWW-Authenticate", "Basic")),
        }
    }

    fn on_response(&self, _req: &Request<'_>, response: &mut Reply) {
        self.log.lock().unwrap().push(format!("resp:auth:{}", response.status_code().code()));
    }
}

fn take(log: &Log) -> Vec<String> {
    std::mem::take(&mut *log.lock().unwrap())
}

#[test]
fn middleware_runs_in_order_around_the_handler() {
    let log: Log = Arc::default();
    let handler_log = log.clone();
    let router = Router::new()
        .get("/x", move |_: &Request<'_>| {
            handler_log.lock().unwrap().push("handler".into());
            Reply::text("x")
        })
        .wrap(Recorder { name: "a", log: log.clone() })
        .wrap(Recorder { name: "b", log: log.clone() })
        .wrap(Recorder { name: "c", log: log.clone() });
    let server = TestServer::with_router(router, Config::default());
    let mut c = Client::new(server.addr);
    assert_eq!(c.get("/x").text(), "x");
    assert_eq!(take(&log), ["req:a", "req:b", "req:c", "handler", "resp:c:200", "resp:b:200", "resp:a:200"]);
    // A 404 goes through the whole chain too.
    assert_eq!(c.get("/missing").status, 404);
    assert_eq!(take(&log), ["req:a", "req:b", "req:c", "resp:c:404", "resp:b:404", "resp:a:404"]);
}

#[test]
fn an_early_answer_skips_later_middleware_and_the_handler() {
    let log: Log = Arc::default();
    let calls = Arc::new(AtomicUsize::new(0));
    let handler_calls = calls.clone();
    let router = Router::new()
        .get("/secret", move |_: &Request<'_>| {
            handler_calls.fetch_add(1, Ordering::SeqCst);
            Reply::text("secret")
        })
        .wrap(Recorder { name: "outer", log: log.clone() })
        .wrap(Auth { log: log.clone() })
        .wrap(Recorder { name: "inner", log: log.clone() });
    let server = TestServer::with_router(router, Config::default());
    let mut c = Client::new(server.addr);

    let r = c.get("/secret");
    assert_error_page(&r, 401);
    assert_eq!(r.header("www-authenticate"), Some("Basic"));
    assert_eq!(calls.load(Ordering::SeqCst), 0, "the handler ran despite the early answer");
    assert_eq!(take(&log), ["req:outer", "req:auth", "resp:auth:401", "resp:outer:401"]);

    let r = c.exchange("GET /secret HTTP/1.1\r\nHost: test\r\nAuthorization: Basic eDp5\r\n\r\n");
    assert_eq!((r.status, r.text().as_str()), (200, "secret"));
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert_eq!(take(&log), ["req:outer", "req:auth", "req:inner", "resp:inner:200", "resp:auth:200", "resp:outer:200"]);
}

/// Reroutes `/old` to `/new` and tags every response.
struct Rewrite;

impl Middleware for Rewrite {
    fn on_request(&self, req: &mut Request<'_>) -> Option<Reply> {
        if req.path() == "/old" {
            req.set_path("/new");
        }
        None
    }

    fn on_response(&self, req: &Request<'_>, response: &mut Reply) {
        response.set_header("X-Routed-Path", req.path().to_string());
    }
}

/// Clean URLs: `/page` is served from `page.txt`, a path computed per request.
struct CleanUrls;

impl Middleware for CleanUrls {
    fn on_request(&self, req: &mut Request<'_>) -> Option<Reply> {
        let last = req.path().rsplit('/').next().unwrap_or_default();
        if !last.is_empty() && !last.contains('.') {
            req.set_path(format!("{}.txt", req.path()));
        }
        None
    }
}

#[test]
fn middleware_can_reroute_to_a_path_it_computes() {
    let root = site();
    let router = Router::new().fallback(StaticFiles::new(root.path()).unwrap()).wrap(CleanUrls);
    let server = TestServer::with_router(router, Config::default());
    let mut c = Client::new(server.addr);
    for _ in 0..3 {
        let r = c.get("/sub/page");
        assert_eq!((r.status, r.text().as_str()), (200, "sub page\n"));
        assert_eq!(r.header("content-type"), Some("text/plain; charset=utf-8"));
        // Paths with an extension (and each request's own path) are left alone.
        assert_eq!(c.get("/style.css").text(), "body { color: black }\n");
        assert_eq!(c.get("/sub/missing").status, 404);
    }
    // Pipelined: each request is rewritten from its own path.
    c.send("GET /sub/page HTTP/1.1\r\nHost: t\r\n\r\nGET /style.css HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(c.recv().text(), "sub page\n");
    assert_eq!(c.recv().text(), "body { color: black }\n");
}

#[test]
fn middleware_can_reroute_and_add_fields() {
    let router = Router::new()
        .get("/old", text("old page"))
        .get("/new", |r: &Request<'_>| Reply::text(format!("new page for {}", r.target())))
        .wrap(Rewrite);
    let server = TestServer::with_router(router, Config::default());
    let mut c = Client::new(server.addr);
    let r = c.get("/old");
    assert_eq!(r.text(), "new page for /old", "set_path did not reroute");
    assert_eq!(r.header("x-routed-path"), Some("/new"));
    let r = c.get("/new");
    assert_eq!(r.text(), "new page for /new");
    let r = c.get("/gone");
    assert_eq!(r.status, 404);
    assert_eq!(r.header("x-routed-path"), Some("/gone"), "on_response did not see the 404");
}

#[test]
fn set_headers_adds_fields_the_handler_did_not_set() {
    let router = Router::new()
        .get("/plain", text("plain"))
        .get("/own", |_: &Request<'_>| Reply::text("own").with_header("cache-control", "no-store"))
        .wrap(SetHeaders::new().header("Cache-Control", "max-age=60").header("X-Frame-Options", "DENY"));
    let server = TestServer::with_router(router, Config::default());
    let mut c = Client::new(server.addr);
    let r = c.get("/plain");
    assert_eq!(all(&r, "cache-control"), ["max-age=60"]);
    assert_eq!(all(&r, "x-frame-options"), ["DENY"]);
    let r = c.get("/own");
    assert_eq!(all(&r, "cache-control"), ["no-store"], "SetHeaders overrode or duplicated the handler's field");
    assert_eq!(all(&r, "x-frame-options"), ["DENY"]);
    let r = c.get("/missing");
    assert_eq!(r.status, 404);
    assert_eq!(all(&r, "cache-control"), ["max-age=60"]);
}

/// Records the status of every response it sees and tags them.
struct Statuses(Arc<Mutex<Vec<u16>>>);

impl Middleware for Statuses {
    fn on_response(&self, _req: &Request<'_>, response: &mut Reply) {
        self.0.lock().unwrap().push(response.status_code().code());
        response.set_header("X-Seen", "yes");
    }
}

#[test]
fn protocol_errors_pass_through_on_response() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let router = Router::new().get("/", text("root")).wrap(Statuses(seen.clone()));
    let server = TestServer::with_router(router, Config::default());

    let r = parse(&raw_exchange(server.addr, b"\x01\x02 garbage\r\n\r\n"), false);
    assert_eq!(r.status, 400, "{r:?}");
    assert_eq!(r.header("x-seen"), Some("yes"), "on_response did not see the 400");
    let r = parse(&raw_exchange(server.addr, b"BREW / HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n"), false);
    assert_eq!(r.status, 501, "{r:?}");
    assert_eq!(r.header("x-seen"), Some("yes"), "on_response did not see the 501");
    let r = get(server.addr, "/");
    assert_eq!(r.header("x-seen"), Some("yes"));
    assert_eq!(*seen.lock().unwrap(), [400, 501, 200]);
}

// ---- handler panics -----------------------------------------------------------------------

#[test]
fn a_panicking_handler_gets_500_and_the_server_carries_on() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let router = Router::new()
        .get("/panic", |r: &Request<'_>| -> Reply { panic!("test handler panics on purpose ({})", r.path()) })
        .get("/ok", text("ok"))
        .wrap(Statuses(seen.clone()));
    let server = TestServer::with_router(router, Config::default());
    let addr = server.addr;
    // A bystander connection opened before the panics keeps working.
    let mut bystander = Client::new(addr);
    assert_eq!(bystander.get("/ok").text(), "ok");

    for round in 0..2 {
        let mut c = Client::new(addr);
        assert_eq!(c.get("/ok").text(), "ok");
        let r = c.get("/panic");
        assert_error_page(&r, 500);
        assert_eq!(r.header("connection").map(str::to_ascii_lowercase).as_deref(), Some("close"), "round {round}");
        c.expect_eof();
        assert_eq!(get(addr, "/ok").text(), "ok", "server stopped serving after panic {round}");
        assert_eq!(bystander.get("/ok").text(), "ok", "bystander broken after panic {round}");
    }
    // Pipelined behind answered requests (coalesced into one write): those answers
    // go out whole, then the 500, then the connection closes.
    let mut c = Client::new(addr);
    c.send("GET /ok HTTP/1.1\r\nHost: t\r\n\r\nGET /ok HTTP/1.1\r\nHost: t\r\n\r\nGET /panic HTTP/1.1\r\nHost: t\r\n\r\nGET /ok HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(c.recv().text(), "ok");
    assert_eq!(c.recv().text(), "ok");
    assert_error_page(&c.recv(), 500);
    c.expect_eof();
    let seen = seen.lock().unwrap();
    assert_eq!(seen.iter().filter(|&&s| s == 500).count(), 3, "on_response did not see the 500s: {seen:?}");
}

// ---- the binary's router options ----------------------------------------------------------

#[test]
fn binary_combined_access_log_has_referer_and_user_agent() {
    let root = site();
    let p = Spawned::start(&["--listen", "127.0.0.1:0", "--log-format", "combined", path_str(&root)], 1);
    let r = request(
        p.addr(),
        b"GET /style.css HTTP/1.1\r\nHost: test\r\nReferer: http://ref.example/page\r\n\
          User-Agent: routes-test/1.0 (\"quoted\")\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(r.status, 200);
    let r = get(p.addr(), "/nope");
    assert_eq!(r.status, 404);
    let expected = [
        format!(
            "\"GET /style.css HTTP/1.1\" 200 {} \"http://ref.example/page\" \"routes-test/1.0 (\\x22quoted\\x22)\"",
            CSS.len()
        ),
        "\"GET /nope HTTP/1.1\" 404 ".to_string(),
    ];
    let logged = wait_for(ms(5000), || expected.iter().all(|e| p.stdout().contains(e.as_str())));
    let stdout = p.stdout();
    assert!(logged, "expected {expected:?} in:\n{stdout}");
    let nope = stdout.lines().find(|l| l.contains("\"GET /nope HTTP/1.1\" 404 ")).unwrap();
    assert!(nope.ends_with(" \"-\" \"-\""), "absent Referer/User-Agent not logged as \"-\": {nope}");
}

#[test]
fn binary_access_log_off_writes_no_lines() {
    let root = site();
    let mut p = Spawned::start(&["--listen", "127.0.0.1:0", "--access-log", "off", path_str(&root)], 1);
    assert_eq!(get(p.addr(), "/style.css").status, 200);
    assert_eq!(get(p.addr(), "/nope").status, 404);
    // Everything logged before the exit is in the pipe before the shutdown line.
    p.signal(libc::SIGTERM);
    assert_eq!(p.wait_exit(Duration::from_secs(10)), Some(0));
    assert!(wait_for(ms(5000), || p.stderr().contains("shut down")), "no shutdown line:\n{}", p.stderr());
    let (stderr, stdout) = (p.stderr(), p.stdout());
    assert!(
        !stderr.contains("\"GET /") && !stdout.contains("\"GET /"),
        "access lines with --access-log off:\n{stderr}\n{stdout}"
    );
}

#[test]
fn binary_header_option_adds_fields_to_every_response() {
    let root = site();
    let p = Spawned::start(
        &[
            "--listen",
            "127.0.0.1:0",
            "--header",
            "Cache-Control: max-age=60",
            "--header",
            "X-Extra:yes",
            path_str(&root),
        ],
        1,
    );
    for (path, status) in [("/style.css", 200), ("/nope", 404), ("/sub", 301)] {
        let r = get(p.addr(), path);
        assert_eq!(r.status, status, "{path}: {r:?}");
        assert_eq!(all(&r, "cache-control"), ["max-age=60"], "{path}: {r:?}");
        assert_eq!(all(&r, "x-extra"), ["yes"], "{path}: {r:?}");
    }
}

#[test]
fn binary_health_endpoint_only_when_asked() {
    let root = site();
    let p = Spawned::start(&["--listen", "127.0.0.1:0", "--health", "/healthz", path_str(&root)], 1);
    let r = get(p.addr(), "/healthz");
    assert_eq!(r.status, 200, "{r:?}");
    assert!(r.header("content-type").unwrap_or("").starts_with("application/json"), "{r:?}");
    assert!(r.text().contains(r#""status":"ok""#), "{}", r.text());
    // The files are still served beside it.
    assert_eq!(get(p.addr(), "/style.css").text(), CSS);
    drop(p);

    let p = Spawned::start(&["--listen", "127.0.0.1:0", path_str(&root)], 1);
    assert_error_page(&get(p.addr(), "/healthz"), 404);
}

#[test]
fn binary_rejects_a_header_without_colon() {
    let root = site();
    let mut child = Command::new(env!("CARGO_BIN_EXE_spindle"))
        .args(["--listen", "127.0.0.1:0", "--header", "nocolon", path_str(&root)])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut status = None;
    let exited = wait_for(Duration::from_secs(10), || {
        status = child.try_wait().unwrap();
        status.is_some()
    });
    if !exited {
        let _ = child.kill();
        let _ = child.wait();
        panic!("spindle kept running with --header nocolon");
    }
    let mut stderr = String::new();
    child.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
    let status = status.unwrap();
    assert!(!status.success(), "exit status {status:?}");
    assert!(stderr.contains("nocolon"), "error does not name the field: {stderr}");
    assert!(!stderr.contains("listening on"), "{stderr}");
}

// ---- embedding in a host's own loop -------------------------------------------------------

const UDP: Token = Token(0);
const WAKE: Token = Token(1);
const SIDE: Token = Token(2);
const SERVER: Token = Token(1000);
/// The host's own wakeup interval: long, so the server's timers only run on time
/// when the host honours `poll_timeout`.
const HOST_TICK: Duration = Duration::from_secs(30);

enum Cmd {
    Stats(mpsc::Sender<Stats>),
    Shutdown,
    Stop,
}

/// A program with its own `mio` loop (a UDP echo service and a TCP listener of its
/// own) that embeds a `spindle::Server`, as examples/embed.rs does.
struct Host {
    http: SocketAddr,
    udp: SocketAddr,
    side: SocketAddr,
    cmds: mpsc::Sender<Cmd>,
    waker: Arc<Waker>,
    drained: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Host {
    fn start(config: Config, router: Router) -> Host {
        let poll = Poll::new().unwrap();
        let mut server = Server::new(config, router);
        let http = server.bind("127.0.0.1:0".parse().unwrap()).unwrap();
        server.register(poll.registry(), SERVER).unwrap();
        let mut udp = mio::net::UdpSocket::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let udp_addr = udp.local_addr().unwrap();
        poll.registry().register(&mut udp, UDP, Interest::READABLE).unwrap();
        let side = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        side.set_nonblocking(true).unwrap();
        let side_addr = side.local_addr().unwrap();
        poll.registry().register(&mut SourceFd(&side.as_raw_fd()), SIDE, Interest::READABLE).unwrap();
        let waker = Arc::new(Waker::new(poll.registry(), WAKE).unwrap());
        let (tx, rx) = mpsc::channel();
        let drained = Arc::new(AtomicBool::new(false));
        let flag = drained.clone();
        let thread = thread::spawn(move || host_loop(poll, server, udp, side, rx, flag));
        Host { http, udp: udp_addr, side: side_addr, cmds: tx, waker, drained, thread: Some(thread) }
    }

    fn send(&self, cmd: Cmd) {
        self.cmds.send(cmd).expect("host loop gone");
        self.waker.wake().unwrap();
    }

    fn stats(&self) -> Stats {
        let (tx, rx) = mpsc::channel();
        self.send(Cmd::Stats(tx));
        rx.recv_timeout(IO_TIMEOUT).expect("no stats from the host loop")
    }

    fn shutdown(&self) {
        self.send(Cmd::Shutdown);
    }

    fn is_drained(&self) -> bool {
        self.drained.load(Ordering::SeqCst)
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        let _ = self.cmds.send(Cmd::Stop);
        let _ = self.waker.wake();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn host_loop(
    mut poll: Poll,
    mut server: Server,
    udp: mio::net::UdpSocket,
    side: std::net::TcpListener,
    cmds: mpsc::Receiver<Cmd>,
    drained: Arc<AtomicBool>,
) {
    let mut events = Events::with_capacity(256);
    let mut buf = [0u8; 2048];
    loop {
        let timeout = server.poll_timeout().map_or(HOST_TICK, |t| t.min(HOST_TICK));
        match poll.poll(&mut events, Some(timeout)) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => panic!("poll: {e}"),
        }
        let registry = poll.registry();
        for event in events.iter() {
            let token = event.token();
            if server.owns(token) {
                server.handle_event(registry, event);
                continue;
            }
            match token {
                UDP => loop {
                    match udp.recv_from(&mut buf) {
                        Ok((n, from)) => {
                            let _ = udp.send_to(&buf[..n], from);
                        }
                        Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                        Err(e) => panic!("udp: {e}"),
                    }
                },
                SIDE => loop {
                    match side.accept() {
                        Ok((stream, _)) => server.accept_stream(registry, stream).expect("accept_stream"),
                        Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                        Err(e) => panic!("accept: {e}"),
                    }
                },
                WAKE => {}
                other => panic!("event for unknown token {other:?}"),
            }
        }
        let mut stop = false;
        while let Ok(cmd) = cmds.try_recv() {
            match cmd {
                Cmd::Stats(tx) => {
                    let _ = tx.send(server.stats());
                }
                Cmd::Shutdown => server.shutdown(registry),
                Cmd::Stop => stop = true,
            }
        }
        server.handle_timeouts(registry);
        drained.store(server.is_drained(), Ordering::SeqCst);
        if stop {
            server.close_all();
            return;
        }
    }
}

fn embed_router() -> Router {
    Router::new()
        .get("/hello", |r: &Request<'_>| Reply::text(format!("hello {}", r.peer().ip())))
        .get("/panic", |_: &Request<'_>| -> Reply { panic!("test handler panics on purpose") })
}

fn udp_client() -> UdpSocket {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    s
}

fn udp_echo(s: &UdpSocket, to: SocketAddr, msg: &[u8]) {
    s.send_to(msg, to).unwrap();
    let mut buf = [0u8; 2048];
    let (n, from) = s.recv_from(&mut buf).expect("no UDP echo");
    assert_eq!(from, to);
    assert_eq!(&buf[..n], msg);
}

#[test]
fn host_loop_serves_http_and_its_own_udp_source_together() {
    let host = Host::start(Config::default(), embed_router());
    let http = host.http;
    let web = thread::spawn(move || {
        let mut c = Client::new(http);
        for i in 0..50 {
            let r = c.get("/hello");
            assert_eq!(r.text(), "hello 127.0.0.1", "request {i}");
        }
    });
    let u = udp_client();
    for i in 0..50u32 {
        udp_echo(&u, host.udp, format!("ping {i}").as_bytes());
    }
    web.join().expect("HTTP client failed");
    // Interleaved on one keep-alive connection.
    let mut c = Client::new(host.http);
    for i in 0..5u32 {
        assert_eq!(c.get("/hello").status, 200);
        udp_echo(&u, host.udp, format!("pong {i}").as_bytes());
    }
}

#[test]
fn host_hands_accepted_streams_to_the_server() {
    let host = Host::start(Config::default(), embed_router());
    // The host's own listener: connections it accepts are handed over with accept_stream.
    let mut c = Client::new(host.side);
    let r = c.get("/hello");
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.text(), "hello 127.0.0.1");
    assert_eq!(c.get("/missing").status, 404, "handed-over connection not kept alive");
    let mut other = Client::new(host.side);
    assert_eq!(other.get("/hello").status, 200);
    assert_eq!(get(host.http, "/hello").status, 200, "the server's own listener");
}

#[test]
fn stats_count_requests_bytes_and_idle_connections() {
    let config = Config { idle_timeout: Duration::from_secs(30), ..Config::default() };
    let host = Host::start(config, embed_router());
    let before = host.stats();
    assert_eq!((before.requests, before.bytes_sent, before.connections()), (0, 0, 0), "{before:?}");

    const N: u64 = 7;
    let mut c = Client::new(host.http);
    let mut body_bytes = 0;
    for _ in 0..N {
        let r = c.get("/hello");
        assert_eq!(r.status, 200);
        body_bytes += r.body.len() as u64;
    }
    let mut stats = host.stats();
    let settled = wait_for(ms(5000), || {
        stats = host.stats();
        stats.requests >= N && stats.idle >= 1
    });
    assert!(settled, "after {N} requests on a keep-alive connection: {stats:?}");
    assert!(stats.bytes_sent > body_bytes, "bytes_sent {} not above the {body_bytes} body bytes", stats.bytes_sent);
    assert_eq!(stats.connections(), 1, "{stats:?}");
    assert_eq!(stats.handler_panics, 0);

    let mut p = Client::new(host.http);
    assert_eq!(p.get("/panic").status, 500);
    p.expect_eof();
    let counted = wait_for(ms(5000), || {
        stats = host.stats();
        stats.handler_panics == 1 && stats.requests > N
    });
    assert!(counted, "panic not counted: {stats:?}");

    drop(c);
    drop(p);
    let closed = wait_for(ms(5000), || {
        stats = host.stats();
        stats.connections() == 0
    });
    assert!(closed, "closed connections still counted: {stats:?}");
}

#[test]
fn host_loop_runs_the_server_timers_through_poll_timeout() {
    let config = Config { idle_timeout: ms(300), ..Config::default() };
    let host = Host::start(config, embed_router());
    let mut c = Client::new(host.http);
    assert_eq!(c.get("/hello").status, 200);
    let started = Instant::now();
    let (rest, end) = c.rest();
    let waited = started.elapsed();
    assert!(end == End::Eof && rest.is_empty(), "idle connection not closed cleanly: {end:?}, {:?}", lossy(&rest));
    assert!(waited >= ms(200), "closed after {waited:?}, before the idle timeout");
    assert!(waited < ms(5000), "idle timeout took {waited:?}: the host did not honour poll_timeout");
}

#[test]
fn host_initiated_shutdown_drains() {
    let host = Host::start(Config::default(), embed_router());
    let mut idle = Client::new(host.http);
    assert_eq!(idle.get("/hello").status, 200);
    let mut handed = Client::new(host.side);
    assert_eq!(handed.get("/hello").status, 200);
    assert!(!host.is_drained());

    host.shutdown();
    assert!(wait_for(Duration::from_secs(5), || host.is_drained()), "server not drained: {:?}", host.stats());
    idle.expect_eof();
    handed.expect_eof();
    assert_eq!(host.stats().connections(), 0);
    // The server's listener is gone; the host's own sources still work.
    match TcpStream::connect_timeout(&host.http, IO_TIMEOUT) {
        Err(e) => assert_eq!(e.kind(), ErrorKind::ConnectionRefused, "{e}"),
        Ok(mut s) => {
            s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
            let _ = s.write_all(get_req("/hello").as_bytes());
            let (data, _) = read_to_end(&mut s);
            panic!("a drained server answered a new connection: {:?}", lossy(&data));
        }
    }
    udp_echo(&udp_client(), host.udp, b"still here");
}

#[test]
fn a_drained_server_asks_the_host_for_no_wakeup() {
    for grace in [ms(0), ms(60_000)] {
        let poll = Poll::new().unwrap();
        let mut server = Server::new(Config { grace_period: grace, ..Config::default() }, Router::new());
        server.bind("127.0.0.1:0".parse().unwrap()).unwrap();
        server.register(poll.registry(), SERVER).unwrap();
        server.shutdown(poll.registry());
        server.handle_timeouts(poll.registry());
        assert!(server.is_drained());
        // A host that keeps running its own sources must not be woken (or spin) for it.
        assert_eq!(server.poll_timeout(), None, "grace period {grace:?}");
    }
}

#[test]
fn the_token_range_is_checked_and_claimed_only_once_registered() {
    let poll = Poll::new().unwrap();
    let registry = poll.registry();
    let mut server = Server::new(Config::default(), Router::new());
    let http = server.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    assert!(!server.owns(Token(0)) && !server.owns(SERVER), "tokens claimed before register");

    let host_side = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let _client = TcpStream::connect(host_side.local_addr().unwrap()).unwrap();
    let (stream, _) = host_side.accept().unwrap();
    let e = server.accept_stream(registry, stream).expect_err("a connection taken before register");
    assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");

    let e = server.register(registry, Token(usize::MAX - 10)).expect_err("a range past usize::MAX");
    assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
    assert!(!server.owns(Token(usize::MAX - 5)) && !server.owns(Token(5)));

    server.register(registry, SERVER).unwrap();
    assert!(server.owns(SERVER) && server.owns(Token(SERVER.0 + spindle::TOKEN_SPAN - 1)));
    assert!(!server.owns(Token(SERVER.0 - 1)) && !server.owns(Token(SERVER.0 + spindle::TOKEN_SPAN)));
    let e = server.register(registry, Token(0)).expect_err("registered twice");
    assert_eq!(e.kind(), ErrorKind::AlreadyExists, "{e}");
    assert!(server.owns(SERVER) && !server.owns(Token(0)), "a failed second register moved the range");
    let e = server.bind("127.0.0.1:0".parse().unwrap()).expect_err("a listener added after register");
    assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
    assert_eq!(server.local_addrs(), vec![http]);
}

#[test]
fn a_connection_handed_over_after_the_grace_period_is_refused() {
    let poll = Poll::new().unwrap();
    let mut server = Server::new(Config { grace_period: ms(0), ..Config::default() }, Router::new());
    server.register(poll.registry(), SERVER).unwrap();
    server.shutdown(poll.registry());
    let host_side = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let _client = TcpStream::connect(host_side.local_addr().unwrap()).unwrap();
    let (stream, _) = host_side.accept().unwrap();
    let e = server.accept_stream(poll.registry(), stream).expect_err("served after shutting down");
    assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
    assert_eq!(server.stats().accepted, 0);
}

#[test]
fn options_asterisk_lists_only_what_the_routes_take() {
    // No mount, one POST route: the server as a whole takes POST and OPTIONS.
    let router = Router::new().post("/in", text("posted"));
    let server = TestServer::with_router(router, Config::default());
    let r = Client::new(server.addr).exchange(req("OPTIONS", "*"));
    assert_eq!((r.status, r.header("allow")), (200, Some("POST, OPTIONS")), "{r:?}");
}
