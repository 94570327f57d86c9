//! HTTP semantics of the static-file handler over real sockets (RFC 9110):
//! validators (`ETag`, `Last-Modified`), conditional requests (`If-None-Match`,
//! `If-Modified-Since`, `If-Match`, `If-Unmodified-Since`, `If-Range`), byte ranges
//! (single, multipart, unsatisfiable, ignored), precompressed siblings with
//! `Accept-Encoding` negotiation, and `Cache-Control` — in-process and through the binary.

mod common;

use common::*;

use std::io::{Cursor, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use spindle::{Config, Router, StaticFiles};

const MIB: u64 = 1 << 20;
/// The modification time given to the fixture files: whole seconds...
const T0: u64 = 1_700_000_000;
/// ...plus these nanoseconds (Last-Modified has whole seconds only).
const T0_NANOS: u32 = 123_456_789;
/// `T0` as an IMF-fixdate.
const T0_HTTP: &str = "Tue, 14 Nov 2023 22:13:20 GMT";
/// Length of `pattern.bin` (bytes 0..=255 repeating).
const PATTERN_LEN: u64 = 10_000;

const CSS: &[u8] = b"body { color: black }\n";
const CSS_GZ: &[u8] = b"\x1f\x8bFAKE-GZIP-BYTES-OF-STYLE";
const CSS_BR: &[u8] = b"FAKE-BROTLI";
const JS: &[u8] = b"console.log('app');\n";
const JS_GZ: &[u8] = b"\x1f\x8bFAKE-GZIP-OF-APP-JS-WITH-SOME-LENGTH";

// ---- fixtures -----------------------------------------------------------------------

fn at(secs: u64, nanos: u32) -> SystemTime {
    UNIX_EPOCH + Duration::new(secs, nanos)
}

fn set_mtime(path: &Path, t: SystemTime) {
    std::fs::File::options().write(true).open(path).unwrap().set_modified(t).unwrap();
}

fn pattern(len: u64) -> Vec<u8> {
    (0..len).map(|i| (i % 256) as u8).collect()
}

/// A temporary root with files of known content and modification time.
struct Site {
    _tmp: tempfile::TempDir,
    root: PathBuf,
}

impl Site {
    fn new() -> Site {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("www");
        std::fs::create_dir(&root).unwrap();
        let site = Site { _tmp: tmp, root };
        let t = at(T0, T0_NANOS);
        site.write("pattern.bin", &pattern(PATTERN_LEN), t);
        site.write("empty.txt", b"", t);
        site.write("style.css", CSS, t);
        site.write("style.css.gz", CSS_GZ, t);
        site.write("style.css.br", CSS_BR, t);
        site.write("app.js", JS, t);
        site.write("app.js.gz", JS_GZ, t);
        site
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }

    fn write(&self, rel: &str, content: &[u8], mtime: SystemTime) -> PathBuf {
        let path = self.path(rel);
        std::fs::write(&path, content).unwrap();
        set_mtime(&path, mtime);
        path
    }

    /// In-process server with `StaticFiles` as configured by `configure`.
    fn serve_with(&self, configure: impl FnOnce(StaticFiles) -> StaticFiles) -> TestServer {
        let files = configure(StaticFiles::new(&self.root).expect("root"));
        TestServer::with_router(Router::new().fallback(files), Config::default())
    }

    fn serve(&self) -> TestServer {
        self.serve_with(|f| f)
    }

    fn root_str(&self) -> &str {
        self.root.to_str().unwrap()
    }
}

// ---- client helpers -----------------------------------------------------------------

/// Sends `method path` with `headers` and `Connection: close`, reads until EOF and
/// parses one response; asserts that nothing follows it (so a 304 or a HEAD
/// response carried no body, and other bodies are exactly `Content-Length` long).
fn send(addr: SocketAddr, method: &str, path: &str, headers: &[(&str, &str)]) -> Response {
    let mut raw = format!("{method} {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n");
    for (name, value) in headers {
        raw.push_str(name);
        raw.push_str(": ");
        raw.push_str(value);
        raw.push_str("\r\n");
    }
    raw.push_str("\r\n");
    let mut s = connect(addr);
    s.write_all(raw.as_bytes()).unwrap();
    let (bytes, eof) = read_to_end(&mut s);
    assert!(eof, "{method} {path} {headers:?}: connection not closed after the response ({} bytes)", bytes.len());
    let mut cursor = Cursor::new(&bytes[..]);
    let resp = read_response(&mut cursor, method == "HEAD");
    let rest = &bytes[cursor.position() as usize..];
    assert!(
        rest.is_empty(),
        "{method} {path} {headers:?}: {} unexpected bytes after the response {}: {:?}",
        rest.len(),
        summary(&resp),
        String::from_utf8_lossy(&rest[..rest.len().min(80)])
    );
    resp
}

fn get(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> Response {
    send(addr, "GET", path, headers)
}

fn head(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> Response {
    send(addr, "HEAD", path, headers)
}

/// Status and headers (not the body) for assertion messages.
fn summary(r: &Response) -> String {
    format!("{} {:?} (+{} body bytes)", r.status, r.headers, r.body.len())
}

/// `GET` and `HEAD` with the same headers: both must answer `status`, with the same
/// validators and framing, the HEAD without a body. Returns the GET response.
fn get_and_head(addr: SocketAddr, path: &str, headers: &[(&str, &str)], status: u16) -> Response {
    let g = get(addr, path, headers);
    assert_eq!(g.status, status, "GET {path} {headers:?}: {}", summary(&g));
    let h = head(addr, path, headers);
    assert_eq!(h.status, status, "HEAD {path} {headers:?}: {}", summary(&h));
    assert!(h.body.is_empty());
    for name in ["etag", "last-modified", "content-length", "content-range", "content-type", "content-encoding"] {
        assert_eq!(g.header(name), h.header(name), "{name} of GET vs HEAD {path} {headers:?}");
    }
    g
}

fn etag(r: &Response) -> String {
    r.header("etag").unwrap_or_else(|| panic!("no ETag: {}", summary(r))).to_string()
}

/// A strong entity-tag: `"etagc*"`, no `W/`.
fn assert_strong_etag(r: &Response) {
    let tag = etag(r);
    assert!(!tag.starts_with("W/"), "weak ETag {tag:?}");
    assert!(tag.len() >= 2 && tag.starts_with('"') && tag.ends_with('"'), "unquoted ETag {tag:?}");
    let inner = &tag[1..tag.len() - 1];
    assert!(inner.bytes().all(|b| b == 0x21 || (0x23..=0x7e).contains(&b) || b >= 0x80), "bad etagc in {tag:?}");
}

/// Whether the `Vary` field lists `accept-encoding`.
fn varies_on_encoding(r: &Response) -> bool {
    r.headers
        .iter()
        .filter(|(n, _)| n == "vary")
        .flat_map(|(_, v)| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case("accept-encoding"))
}

/// `bytes a-b/len` → (a, b, len).
fn content_range(value: &str) -> (u64, u64, u64) {
    let rest = value.strip_prefix("bytes ").unwrap_or_else(|| panic!("Content-Range {value:?}"));
    let (range, len) = rest.split_once('/').unwrap_or_else(|| panic!("Content-Range {value:?}"));
    let (a, b) = range.split_once('-').unwrap_or_else(|| panic!("Content-Range {value:?}"));
    (a.parse().unwrap(), b.parse().unwrap(), len.parse().unwrap())
}

/// Asserts `r` is a single-part 206 for bytes `a..=b` of `content` with its type.
fn assert_single_range(r: &Response, content: &[u8], a: u64, b: u64, what: &str) {
    assert_eq!(r.status, 206, "{what}: {}", summary(r));
    assert_eq!(r.header("content-range"), Some(format!("bytes {a}-{b}/{}", content.len()).as_str()), "{what}");
    assert_eq!(r.header("content-length"), Some((b - a + 1).to_string().as_str()), "{what}");
    assert_eq!(r.body, &content[a as usize..=b as usize], "{what}: body");
    assert!(!r.header("content-type").unwrap_or("").starts_with("multipart/"), "{what}: {}", summary(r));
}

/// One part of a `multipart/byteranges` body.
#[derive(Debug)]
struct Part {
    content_type: Option<String>,
    range: (u64, u64, u64),
    data: Vec<u8>,
}

/// Parses a `multipart/byteranges` response body strictly: every part's data is as
/// long as its `Content-Range` says and is followed by a delimiter; the closing
/// delimiter is present.
fn parse_multipart(r: &Response) -> Vec<Part> {
    let ct = r.header("content-type").unwrap_or_else(|| panic!("no Content-Type: {}", summary(r)));
    let mut params = ct.split(';').map(str::trim);
    assert!(params.next().unwrap().eq_ignore_ascii_case("multipart/byteranges"), "Content-Type {ct:?}");
    let boundary = params
        .find_map(|p| p.strip_prefix("boundary="))
        .unwrap_or_else(|| panic!("no boundary in {ct:?}"))
        .trim_matches('"')
        .to_string();
    assert!(!boundary.is_empty() && boundary.len() <= 70, "boundary {boundary:?}");
    let body = &r.body[..];
    let first = format!("--{boundary}");
    let delimiter = format!("\r\n--{boundary}");
    // A preamble is allowed before the first delimiter (RFC 2046 §5.1.1).
    let mut pos = if body.starts_with(first.as_bytes()) {
        first.len()
    } else {
        find(body, delimiter.as_bytes()).expect("no first boundary") + delimiter.len()
    };
    let mut parts = Vec::new();
    loop {
        if body[pos..].starts_with(b"--") {
            pos += 2;
            break;
        }
        assert!(body[pos..].starts_with(b"\r\n"), "no CRLF after a boundary at {pos}");
        pos += 2;
        let end = pos + find(&body[pos..], b"\r\n\r\n").expect("part headers not terminated");
        let mut content_type = None;
        let mut range = None;
        if end > pos {
            for line in std::str::from_utf8(&body[pos..end]).unwrap().split("\r\n") {
                let (name, value) = line.split_once(':').unwrap_or_else(|| panic!("part header {line:?}"));
                match name.trim().to_ascii_lowercase().as_str() {
                    "content-type" => content_type = Some(value.trim().to_string()),
                    "content-range" => range = Some(content_range(value.trim())),
                    _ => {}
                }
            }
        }
        pos = end + 4;
        let range = range.expect("part without Content-Range");
        let n = (range.1 - range.0 + 1) as usize;
        assert!(pos + n <= body.len(), "part data truncated");
        let data = body[pos..pos + n].to_vec();
        pos += n;
        assert!(body[pos..].starts_with(delimiter.as_bytes()), "no delimiter after part {range:?}");
        pos += delimiter.len();
        parts.push(Part { content_type, range, data });
    }
    let epilogue = &body[pos..];
    assert!(epilogue.is_empty() || epilogue == b"\r\n", "unexpected epilogue {:?}", String::from_utf8_lossy(epilogue));
    parts
}

/// Request header fields for a table of cases.
type Headers<'a> = &'a [(&'a str, &'a str)];

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn http_date(secs: u64) -> String {
    httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_secs(secs))
}

// ---- validators ---------------------------------------------------------------------

#[test]
fn every_file_response_has_strong_etag_and_last_modified() {
    let site = Site::new();
    let server = site.serve_with(|f| f.cache_control("max-age=60"));
    let addr = server.addr;
    let ok = get_and_head(addr, "/pattern.bin", &[], 200);
    assert_eq!(ok.body, pattern(PATTERN_LEN));
    let tag = etag(&ok);
    let partial = get_and_head(addr, "/pattern.bin", &[("Range", "bytes=1-2")], 206);
    let multi = get_and_head(addr, "/pattern.bin", &[("Range", "bytes=1-2,5-6")], 206);
    let not_modified = get_and_head(addr, "/pattern.bin", &[("If-None-Match", &tag)], 304);
    for (what, r) in [("200", &ok), ("206", &partial), ("206 multipart", &multi), ("304", &not_modified)] {
        assert_strong_etag(r);
        assert_eq!(etag(r), tag, "{what}: same representation, same ETag");
        assert_eq!(r.header("last-modified"), Some(T0_HTTP), "{what}: {}", summary(r));
        let lm = httpdate::parse_http_date(r.header("last-modified").unwrap()).unwrap();
        assert_eq!(lm, at(T0, 0), "{what}: Last-Modified is the mtime truncated to seconds");
    }
    // A text file and a precompressed variant too.
    let css = get_and_head(addr, "/style.css", &[], 200);
    assert_strong_etag(&css);
    assert_eq!(css.header("last-modified"), Some(T0_HTTP));
    let gz = get_and_head(addr, "/style.css", &[("Accept-Encoding", "gzip")], 200);
    assert_strong_etag(&gz);
    assert_eq!(gz.header("last-modified"), Some(T0_HTTP));
}

#[test]
fn last_modified_follows_an_explicit_mtime() {
    let site = Site::new();
    let server = site.serve();
    for secs in [0u64, 86_399, 951_782_400 /* 2000-02-29 */, 1_234_567_890, 1_767_225_599 /* 2025-12-31 */] {
        site.write("dated.txt", b"dated\n", at(secs, 999_999_999));
        let r = get(server.addr, "/dated.txt", &[]);
        assert_eq!(r.status, 200);
        assert_eq!(r.header("last-modified"), Some(http_date(secs).as_str()), "mtime {secs}.999999999");
    }
    site.write("dated.txt", b"dated\n", at(T0, 0));
    let r = get(server.addr, "/dated.txt", &[]);
    assert_eq!(r.header("last-modified"), Some(T0_HTTP));
}

#[test]
fn a_modification_time_in_the_future_gives_no_last_modified() {
    let site = Site::new();
    let server = site.serve();
    let later = SystemTime::now() + Duration::from_secs(30 * 86_400);
    site.write("future.txt", b"ahead\n", later);
    for round in 0..2 {
        // Twice: the second answer comes from the open-file cache.
        let r = get(server.addr, "/future.txt", &[]);
        assert_eq!((r.status, r.header("last-modified")), (200, None), "round {round}: {}", summary(&r));
        // Date conditions are ignored (there is no date to hold them against) ...
        let date = r.header("date").unwrap().to_string();
        let r2 = get(server.addr, "/future.txt", &[("If-Modified-Since", &date)]);
        assert_eq!(r2.status, 200, "round {round}: {}", summary(&r2));
        let r2 = get(server.addr, "/future.txt", &[("If-Unmodified-Since", "Thu, 01 Jan 1970 00:00:00 GMT")]);
        assert_eq!(r2.status, 200, "round {round}: {}", summary(&r2));
        // ... and the entity tag, from the file's own time, validates.
        let again = get(server.addr, "/future.txt", &[("If-None-Match", &etag(&r))]);
        assert_eq!(again.status, 304, "round {round}: {}", summary(&again));
    }
}

#[test]
fn etag_is_stable_across_server_instances() {
    let site = Site::new();
    let first = {
        let server = site.serve();
        get(server.addr, "/pattern.bin", &[])
    };
    let second = {
        let server = site.serve();
        get(server.addr, "/pattern.bin", &[])
    };
    let binary = Spawned::start(&["--listen", "127.0.0.1:0", site.root_str()], 1);
    let third = get(binary.addr(), "/pattern.bin", &[]);
    for r in [&first, &second, &third] {
        assert_eq!(r.status, 200);
        assert_strong_etag(r);
    }
    assert_eq!(etag(&first), etag(&second), "ETag changed across a restart");
    assert_eq!(etag(&first), etag(&third), "ETag differs between the library and the binary");
    assert_eq!(first.header("last-modified"), second.header("last-modified"));
    // A validator from before the restart still validates.
    let r = get(binary.addr(), "/pattern.bin", &[("If-None-Match", &etag(&first))]);
    assert_eq!(r.status, 304, "{}", summary(&r));
}

#[test]
fn etag_changes_with_size_or_mtime() {
    let site = Site::new();
    let server = site.serve();
    let addr = server.addr;
    let t = at(T0, T0_NANOS);
    let path = site.write("v.txt", b"version one\n", t);
    let v1 = etag(&get(addr, "/v.txt", &[]));

    // Same content and mtime (rewritten): same tag.
    site.write("v.txt", b"version one\n", t);
    assert_eq!(etag(&get(addr, "/v.txt", &[])), v1);

    // Different size, same mtime.
    site.write("v.txt", b"version one, longer\n", t);
    let v2 = etag(&get(addr, "/v.txt", &[]));
    assert_ne!(v2, v1, "size changed, ETag did not");

    // Same size, mtime one second later.
    set_mtime(&path, at(T0 + 1, T0_NANOS));
    let r = get(addr, "/v.txt", &[]);
    let v3 = etag(&r);
    assert_ne!(v3, v2, "mtime changed by a second, ETag did not");
    assert_eq!(r.header("last-modified"), Some(http_date(T0 + 1).as_str()));

    // Same size, mtime changed within the same second.
    set_mtime(&path, at(T0 + 1, T0_NANOS + 1));
    let v4 = etag(&get(addr, "/v.txt", &[]));
    assert_ne!(v4, v3, "sub-second mtime change, ETag did not change");

    for (n, r) in [v1, v2, v3].iter().enumerate() {
        let resp = get(addr, "/v.txt", &[("If-None-Match", r)]);
        assert_eq!(resp.status, 200, "stale tag #{n} {r} must not validate: {}", summary(&resp));
        assert_eq!(resp.body, b"version one, longer\n");
    }
    assert_eq!(get(addr, "/v.txt", &[("If-None-Match", &v4)]).status, 304);
}

// ---- If-None-Match / If-Modified-Since ------------------------------------------------

#[test]
fn if_none_match() {
    let site = Site::new();
    let server = site.serve_with(|f| f.cache_control("max-age=60"));
    let addr = server.addr;
    let ok = get(addr, "/style.css", &[]);
    assert_eq!(ok.status, 200);
    let tag = etag(&ok);

    let r = get_and_head(addr, "/style.css", &[("If-None-Match", &tag)], 304);
    assert!(r.body.is_empty());
    assert!(r.header("content-length").is_none() || r.header("content-length") == ok.header("content-length"));
    assert!(r.header("date").is_some(), "304 without Date");
    for name in ["etag", "cache-control", "vary", "last-modified"] {
        assert!(ok.header(name).is_some(), "200 without {name}: {}", summary(&ok));
        assert_eq!(r.header(name), ok.header(name), "{name} of the 304 vs the 200");
    }
    // Nothing about the representation beyond what updates a cached copy
    // (RFC 9110 §15.4.5), for the identity and the precompressed variant alike.
    let gz = get(addr, "/style.css", &[("Accept-Encoding", "gzip")]);
    assert_eq!(gz.header("content-encoding"), Some("gzip"));
    for _ in 0..2 {
        // (Answered as the file is opened, then from the cache.)
        for (accept, tag) in [("identity", &tag), ("gzip", &etag(&gz))] {
            let r = get_and_head(addr, "/style.css", &[("If-None-Match", tag), ("Accept-Encoding", accept)], 304);
            for name in ["content-encoding", "accept-ranges", "content-type"] {
                assert_eq!(r.header(name), None, "{name} on the 304 for {accept}: {}", summary(&r));
            }
            assert_eq!(r.header("vary"), Some("Accept-Encoding"), "{accept}");
        }
    }

    for matching in [
        format!("\"a\", {tag}"),
        format!("{tag}, \"b\""),
        format!("\"a\",{tag} , \"c\""),
        "*".to_string(),
        format!("W/{tag}"),
        format!("\"x\", W/{tag}"),
    ] {
        let r = get_and_head(addr, "/style.css", &[("If-None-Match", &matching)], 304);
        assert_eq!(etag(&r), tag, "If-None-Match: {matching}");
    }
    let other = format!("\"{}\"", tag.trim_matches('"').to_owned() + "x");
    for different in ["\"other\"", "W/\"other\"", other.as_str(), "\"a\", \"b\""] {
        let r = get_and_head(addr, "/style.css", &[("If-None-Match", different)], 200);
        assert_eq!(r.body, CSS, "If-None-Match: {different}");
        assert_eq!(etag(&r), tag);
    }
}

#[test]
fn if_modified_since() {
    let site = Site::new();
    let server = site.serve();
    let addr = server.addr;
    let not_modified = [
        T0_HTTP.to_string(),
        http_date(T0 + 1),
        http_date(T0 + 86_400),
        // Recipients must accept the obsolete formats too (RFC 9110 §5.6.7).
        "Tuesday, 14-Nov-23 22:13:20 GMT".to_string(),
        "Tue Nov 14 22:13:20 2023".to_string(),
    ];
    for date in &not_modified {
        let r = get_and_head(addr, "/pattern.bin", &[("If-Modified-Since", date)], 304);
        assert!(r.body.is_empty());
        assert_eq!(r.header("last-modified"), Some(T0_HTTP));
    }
    for date in [http_date(T0 - 1), http_date(0), "garbage".to_string(), "14 Nov 2023".to_string(), String::new()] {
        let r = get_and_head(addr, "/pattern.bin", &[("If-Modified-Since", &date)], 200);
        assert_eq!(r.body, pattern(PATTERN_LEN), "If-Modified-Since: {date:?}");
    }
}

#[test]
fn if_none_match_takes_precedence_over_if_modified_since() {
    let site = Site::new();
    let server = site.serve();
    let addr = server.addr;
    let tag = etag(&get(addr, "/style.css", &[]));
    let r = get_and_head(addr, "/style.css", &[("If-None-Match", "\"other\""), ("If-Modified-Since", T0_HTTP)], 200);
    assert_eq!(r.body, CSS);
    let r =
        get_and_head(addr, "/style.css", &[("If-Modified-Since", &http_date(T0 - 3600)), ("If-None-Match", &tag)], 304);
    assert_eq!(etag(&r), tag);
}

// ---- If-Match / If-Unmodified-Since --------------------------------------------------

#[test]
fn if_match() {
    let site = Site::new();
    let server = site.serve();
    let addr = server.addr;
    let tag = etag(&get(addr, "/style.css", &[]));
    for matching in [tag.clone(), "*".to_string(), format!("\"a\", {tag}")] {
        let r = get_and_head(addr, "/style.css", &[("If-Match", &matching)], 200);
        assert_eq!(r.body, CSS, "If-Match: {matching}");
    }
    for failing in ["\"other\"".to_string(), format!("W/{tag}"), "\"a\", \"b\"".to_string()] {
        let r = get_and_head(addr, "/style.css", &[("If-Match", &failing)], 412);
        assert!(!r.body.starts_with(CSS), "If-Match: {failing}: the file was sent with the 412");
    }
}

#[test]
fn if_unmodified_since() {
    let site = Site::new();
    let server = site.serve();
    let addr = server.addr;
    for date in [http_date(T0 - 1), http_date(0)] {
        get_and_head(addr, "/style.css", &[("If-Unmodified-Since", &date)], 412);
    }
    for date in [T0_HTTP.to_string(), http_date(T0 + 1), http_date(T0 + 86_400)] {
        let r = get_and_head(addr, "/style.css", &[("If-Unmodified-Since", &date)], 200);
        assert_eq!(r.body, CSS, "If-Unmodified-Since: {date}");
    }
    // An invalid date is ignored.
    let r = get_and_head(addr, "/style.css", &[("If-Unmodified-Since", "garbage")], 200);
    assert_eq!(r.body, CSS);
}

#[test]
fn precondition_failed_takes_precedence_over_not_modified() {
    let site = Site::new();
    let server = site.serve();
    let addr = server.addr;
    let tag = etag(&get(addr, "/style.css", &[]));
    get_and_head(addr, "/style.css", &[("If-Match", "\"other\""), ("If-None-Match", &tag)], 412);
    get_and_head(addr, "/style.css", &[("If-None-Match", &tag), ("If-Match", "\"other\"")], 412);
    get_and_head(
        addr,
        "/style.css",
        &[("If-Unmodified-Since", &http_date(T0 - 1)), ("If-Modified-Since", T0_HTTP)],
        412,
    );
    // And both passing: the 304.
    get_and_head(addr, "/style.css", &[("If-Match", &tag), ("If-None-Match", &tag)], 304);
    // 412 before a range too.
    get_and_head(addr, "/pattern.bin", &[("If-Match", "\"other\""), ("Range", "bytes=0-9")], 412);
    // 304 before a range.
    let ptag = etag(&get(addr, "/pattern.bin", &[]));
    let r = get_and_head(addr, "/pattern.bin", &[("If-None-Match", &ptag), ("Range", "bytes=0-9")], 304);
    assert!(r.header("content-range").is_none(), "{}", summary(&r));
}

// ---- ranges -------------------------------------------------------------------------

#[test]
fn identity_responses_advertise_byte_ranges() {
    let site = Site::new();
    let server = site.serve();
    for path in ["/pattern.bin", "/style.css", "/empty.txt"] {
        let r = get_and_head(server.addr, path, &[], 200);
        assert_eq!(r.header("accept-ranges"), Some("bytes"), "{path}: {}", summary(&r));
    }
    let r = get(server.addr, "/empty.txt", &[]);
    assert_eq!(r.header("content-length"), Some("0"));
}

#[test]
fn single_ranges() {
    let site = Site::new();
    let server = site.serve();
    let content = pattern(PATTERN_LEN);
    let last = PATTERN_LEN - 1;
    let cases: &[(&str, u64, u64)] = &[
        ("bytes=0-0", 0, 0),
        ("bytes=0-9", 0, 9),
        ("bytes=250-260", 250, 260),
        ("bytes=9999-9999", last, last),
        ("bytes=5000-", 5000, last),
        ("bytes=0-", 0, last),
        ("bytes=-1", last, last),
        ("bytes=-300", PATTERN_LEN - 300, last),
        ("bytes=-10000", 0, last),
        ("bytes=-20000", 0, last),
        ("bytes=9990-20000", 9990, last),
        ("bytes=0-9999", 0, last),
        ("bytes=0-10000", 0, last),
    ];
    for &(spec, a, b) in cases {
        let r = get_and_head(server.addr, "/pattern.bin", &[("Range", spec)], 206);
        assert_single_range(&r, &content, a, b, spec);
        assert_eq!(r.header("content-type"), Some("application/octet-stream"), "{spec}");
        assert_strong_etag(&r);
    }
    // A text file keeps its type (with charset) on a 206.
    let r = get(server.addr, "/style.css", &[("Range", "bytes=0-3")]);
    assert_single_range(&r, CSS, 0, 3, "style.css 0-3");
    assert_eq!(r.header("content-type"), Some("text/css; charset=utf-8"));
}

#[test]
fn unsatisfiable_ranges() {
    let site = Site::new();
    let server = site.serve();
    for spec in ["bytes=10000-", "bytes=10000-10005", "bytes=20000-30000", "bytes=10000-,12000-"] {
        let r = get_and_head(server.addr, "/pattern.bin", &[("Range", spec)], 416);
        assert_eq!(r.header("content-range"), Some("bytes */10000"), "{spec}: {}", summary(&r));
        assert_ne!(r.body.len() as u64, PATTERN_LEN, "{spec}: file sent with the 416");
    }
    for spec in ["bytes=0-0", "bytes=0-", "bytes=-5"] {
        let r = get_and_head(server.addr, "/empty.txt", &[("Range", spec)], 416);
        assert_eq!(r.header("content-range"), Some("bytes */0"), "empty file, {spec}: {}", summary(&r));
    }
}

#[test]
fn multipart_byteranges() {
    let site = Site::new();
    let server = site.serve();
    let content = pattern(PATTERN_LEN);
    let whole = get(server.addr, "/pattern.bin", &[]);
    let file_type = whole.header("content-type").unwrap().to_string();

    let cases: &[(&str, &[(u64, u64)])] = &[
        ("bytes=0-9,20-29", &[(0, 9), (20, 29)]),
        ("bytes=0-0,-1", &[(0, 0), (9999, 9999)]),
        ("bytes=100-199, 5000-5099, 9900-", &[(100, 199), (5000, 5099), (9900, 9999)]),
        ("bytes=0-9,20-29,20000-30000", &[(0, 9), (20, 29)]),
        // RFC 9110 §15.3.7.2: in the order asked, a coalesced part where it was first asked.
        ("bytes=20-29,0-9", &[(20, 29), (0, 9)]),
        ("bytes=9900-,100-199,150-250", &[(9900, 9999), (100, 250)]),
        // A first byte beyond a u64 is past the end; a last byte there is the end.
        ("bytes=99999999999999999999-,0-4,9990-99999999999999999999", &[(0, 4), (9990, 9999)]),
    ];
    for &(spec, expected) in cases {
        let r = get(server.addr, "/pattern.bin", &[("Range", spec)]);
        assert_eq!(r.status, 206, "{spec}: {}", summary(&r));
        assert!(r.header("content-range").is_none(), "{spec}: Content-Range on a multipart response");
        assert_eq!(r.header("content-length"), Some(r.body.len().to_string().as_str()));
        assert_strong_etag(&r);
        let parts = parse_multipart(&r);
        let got: Vec<(u64, u64)> = parts.iter().map(|p| (p.range.0, p.range.1)).collect();
        assert_eq!(got, expected, "{spec}");
        for p in &parts {
            assert_eq!(p.content_type.as_deref(), Some(file_type.as_str()), "{spec}: part type");
            assert_eq!(p.range.2, PATTERN_LEN, "{spec}: complete length");
            assert_eq!(p.data, &content[p.range.0 as usize..=p.range.1 as usize], "{spec}: part {:?}", p.range);
        }
        // HEAD: the same head, the same length, no body.
        let h = head(server.addr, "/pattern.bin", &[("Range", spec)]);
        assert_eq!(h.status, 206);
        assert_eq!(h.header("content-length"), r.header("content-length"), "{spec}: HEAD length");
        assert_eq!(h.header("content-type"), r.header("content-type"), "{spec}: HEAD type");
    }

    // A text file: parts carry its full type.
    let r = get(server.addr, "/style.css", &[("Range", "bytes=0-3,10-12")]);
    assert_eq!(r.status, 206);
    let parts = parse_multipart(&r);
    assert_eq!(parts.len(), 2);
    for p in &parts {
        assert_eq!(p.content_type.as_deref(), Some("text/css; charset=utf-8"));
        assert_eq!(p.data, &CSS[p.range.0 as usize..=p.range.1 as usize]);
    }
}

#[test]
fn overlapping_and_adjacent_ranges_are_coalesced() {
    let site = Site::new();
    let server = site.serve();
    let content = pattern(PATTERN_LEN);
    let cases: &[(&str, u64, u64)] = &[
        ("bytes=0-9,5-14", 0, 14),
        ("bytes=5-14,0-9", 0, 14),
        ("bytes=0-9,10-19", 0, 19),
        ("bytes=0-99,10-19", 0, 99),
        ("bytes=9990-,-5", 9990, 9999),
        ("bytes=0-9,5-14,15-20", 0, 20),
    ];
    for &(spec, a, b) in cases {
        let r = get_and_head(server.addr, "/pattern.bin", &[("Range", spec)], 206);
        assert_single_range(&r, &content, a, b, spec);
    }
}

#[test]
fn too_many_ranges_send_the_whole_file() {
    let site = Site::new();
    let server = site.serve();
    let content = pattern(PATTERN_LEN);
    let specs = |n: u64| (0..n).map(|i| format!("{}-{}", i * 100, i * 100 + 9)).collect::<Vec<_>>().join(",");

    let sixteen = format!("bytes={}", specs(16));
    let r = get(server.addr, "/pattern.bin", &[("Range", &sixteen)]);
    assert_eq!(r.status, 206, "16 ranges: {}", summary(&r));
    let parts = parse_multipart(&r);
    assert_eq!(parts.len(), 16);
    for p in &parts {
        assert_eq!(p.data, &content[p.range.0 as usize..=p.range.1 as usize]);
    }

    let seventeen = format!("bytes={}", specs(17));
    let r = get_and_head(server.addr, "/pattern.bin", &[("Range", &seventeen)], 200);
    assert_eq!(r.body, content, "17 ranges");
    assert!(r.header("content-range").is_none());
    let many = format!("bytes={}", specs(80));
    let r = get(server.addr, "/pattern.bin", &[("Range", &many)]);
    assert_eq!(r.status, 200, "80 ranges");
    assert_eq!(r.body, content);
}

#[test]
fn malformed_ranges_are_ignored() {
    let site = Site::new();
    let server = site.serve();
    let content = pattern(PATTERN_LEN);
    for spec in ["bytes=5-2", "bytes=x", "items=0-1", "bytes=", "bytes", "bytes=1", "bytes=a-b", "bytes=--1", "0-1"] {
        let r = get_and_head(server.addr, "/pattern.bin", &[("Range", spec)], 200);
        assert_eq!(r.body, content, "Range: {spec}");
        assert!(r.header("content-range").is_none(), "Range: {spec}: {}", summary(&r));
        assert_eq!(r.header("accept-ranges"), Some("bytes"));
    }
    // Range is one value: sent on two lines, it is invalid (RFC 9110 §5.3), from the cache too.
    for _ in 0..2 {
        let r = get_and_head(server.addr, "/pattern.bin", &[("Range", "bytes=0-0"), ("Range", "bytes=5-9")], 200);
        assert_eq!(r.body, content, "{}", summary(&r));
    }
}

#[test]
fn head_with_range() {
    let site = Site::new();
    let server = site.serve();
    let r = head(server.addr, "/pattern.bin", &[("Range", "bytes=100-199")]);
    assert_eq!(r.status, 206, "{}", summary(&r));
    assert_eq!(r.header("content-range"), Some("bytes 100-199/10000"));
    assert_eq!(r.header("content-length"), Some("100"));
    assert!(r.body.is_empty());
}

/// Byte `i` of a file made by `common::big_file`.
fn big_byte(i: u64) -> u8 {
    let in_mib = i % MIB;
    if in_mib < 8 {
        (i - in_mib).to_be_bytes()[in_mib as usize]
    } else {
        0
    }
}

#[test]
fn range_of_a_large_sparse_file() {
    let site = Site::new();
    let len = 64 * MIB;
    big_file(&site.path("big.bin"), len);
    let server = site.serve();

    // Crossing the marker at 63 MiB, to the end.
    let start = len - MIB - 100;
    let r = get(server.addr, "/big.bin", &[("Range", &format!("bytes={start}-"))]);
    assert_eq!(r.status, 206, "{}", summary(&r));
    assert_eq!(r.header("content-range"), Some(format!("bytes {start}-{}/{len}", len - 1).as_str()));
    assert_eq!(r.header("content-length"), Some((MIB + 100).to_string().as_str()));
    assert_eq!(r.body.len() as u64, MIB + 100);
    if let Some(bad) = (0..r.body.len()).find(|&i| r.body[i] != big_byte(start + i as u64)) {
        panic!("byte {} of the file wrong: {}", start + bad as u64, r.body[bad]);
    }
    assert!(r.body.iter().any(|&b| b != 0), "the marker at 63 MiB is missing");

    // Exactly a marker.
    let m = 63 * MIB;
    let r = get(server.addr, "/big.bin", &[("Range", &format!("bytes={m}-{}", m + 7))]);
    assert_eq!(r.status, 206);
    assert_eq!(r.body, m.to_be_bytes());

    // Two far-apart parts.
    let spec = format!("bytes={}-{},{}-{}", MIB, MIB + 7, len - 8, len - 1);
    let r = get(server.addr, "/big.bin", &[("Range", &spec)]);
    assert_eq!(r.status, 206);
    let parts = parse_multipart(&r);
    assert_eq!(parts.len(), 2);
    assert_eq!(parts[0].data, MIB.to_be_bytes());
    assert_eq!(parts[0].range, (MIB, MIB + 7, len));
    assert_eq!(parts[1].data, [0u8; 8]);
    assert_eq!(parts[1].range, (len - 8, len - 1, len));
}

// ---- If-Range -----------------------------------------------------------------------

#[test]
fn if_range() {
    let site = Site::new();
    let server = site.serve();
    let addr = server.addr;
    let content = pattern(PATTERN_LEN);
    let tag = etag(&get(addr, "/pattern.bin", &[]));
    let range = ("Range", "bytes=10-19");

    for honoured in [tag.clone(), T0_HTTP.to_string()] {
        let r = get_and_head(addr, "/pattern.bin", &[range, ("If-Range", &honoured)], 206);
        assert_single_range(&r, &content, 10, 19, &format!("If-Range: {honoured}"));
    }
    for ignored in [
        "\"other\"".to_string(),
        format!("W/{tag}"),
        http_date(T0 - 1),
        http_date(T0 + 1),
        http_date(T0 + 86_400),
        "garbage".to_string(),
    ] {
        let r = get_and_head(addr, "/pattern.bin", &[range, ("If-Range", &ignored)], 200);
        assert_eq!(r.body, content, "If-Range: {ignored}");
        assert!(r.header("content-range").is_none(), "If-Range: {ignored}");
    }
    // Multipart honoured the same way; If-Range without Range does nothing.
    let r = get(addr, "/pattern.bin", &[("Range", "bytes=0-0,5-5"), ("If-Range", &tag)]);
    assert_eq!(r.status, 206);
    assert_eq!(parse_multipart(&r).len(), 2);
    let r = get(addr, "/pattern.bin", &[("If-Range", &tag)]);
    assert_eq!(r.status, 200);
    assert_eq!(r.body, content);
}

// ---- precompressed siblings ---------------------------------------------------------

/// Asserts `r` is the 200 for `style.css` in `coding` (None: identity) with `body`.
fn assert_css_variant(r: &Response, coding: Option<&str>, body: &[u8], what: &str) {
    assert_eq!(r.status, 200, "{what}: {}", summary(r));
    assert_eq!(r.header("content-encoding"), coding, "{what}: {}", summary(r));
    assert_eq!(r.body, body, "{what}: body");
    assert_eq!(r.header("content-length"), Some(body.len().to_string().as_str()), "{what}");
    assert_eq!(r.header("content-type"), Some("text/css; charset=utf-8"), "{what}");
    assert!(varies_on_encoding(r), "{what}: no Vary: Accept-Encoding: {}", summary(r));
    assert_strong_etag(r);
}

#[test]
fn precompressed_siblings_are_negotiated() {
    let site = Site::new();
    let server = site.serve();
    let addr = server.addr;

    let identity = get(addr, "/style.css", &[]);
    assert_css_variant(&identity, None, CSS, "no Accept-Encoding");
    assert_eq!(identity.header("accept-ranges"), Some("bytes"));
    let gz = get(addr, "/style.css", &[("Accept-Encoding", "gzip")]);
    assert_css_variant(&gz, Some("gzip"), CSS_GZ, "gzip");
    let br = get(addr, "/style.css", &[("Accept-Encoding", "br")]);
    assert_css_variant(&br, Some("br"), CSS_BR, "br");
    let (t_id, t_gz, t_br) = (etag(&identity), etag(&gz), etag(&br));
    assert_ne!(t_gz, t_id, "the .gz has the identity's ETag");
    assert_ne!(t_br, t_id, "the .br has the identity's ETag");
    assert_ne!(t_br, t_gz, "the .br has the .gz's ETag");

    let cases: &[(&str, Option<&str>)] = &[
        ("gzip", Some("gzip")),
        ("br, gzip", Some("br")),
        ("gzip, br", Some("br")),
        ("gzip, deflate, br", Some("br")),
        ("br;q=0.5, gzip", Some("gzip")),
        ("gzip;q=0.9, br;q=0.8", Some("gzip")),
        ("br;q=0, gzip", Some("gzip")),
        ("gzip;q=0", None),
        ("gzip;q=0, br;q=0", None),
        ("*", Some("br")),
        ("*;q=0.5, br;q=0", Some("gzip")),
        ("identity", None),
        ("deflate", None),
        ("", None),
        ("GZIP", Some("gzip")),
    ];
    for &(accept, coding) in cases {
        let r = get_and_head(addr, "/style.css", &[("Accept-Encoding", accept)], 200);
        let (body, tag) = match coding {
            None => (CSS, &t_id),
            Some("gzip") => (CSS_GZ, &t_gz),
            _ => (CSS_BR, &t_br),
        };
        assert_css_variant(&r, coding, body, &format!("Accept-Encoding: {accept}"));
        assert_eq!(&etag(&r), tag, "Accept-Encoding: {accept}: ETag of the variant");
        assert_eq!(r.header("last-modified"), Some(T0_HTTP));
    }

    // The compressed variants themselves are ordinary files too.
    let r = get(addr, "/style.css.gz", &[]);
    assert_eq!(r.status, 200);
    assert_eq!(r.body, CSS_GZ);
}

#[test]
fn only_gzip_sibling_present() {
    let site = Site::new();
    let server = site.serve();
    for accept in ["br, gzip", "br", "br;q=1, gzip;q=0.1", "*"] {
        let r = get(server.addr, "/app.js", &[("Accept-Encoding", accept)]);
        assert_eq!(r.status, 200, "{accept}");
        let expected: (Option<&str>, &[u8]) = if accept == "br" { (None, JS) } else { (Some("gzip"), JS_GZ) };
        assert_eq!(r.header("content-encoding"), expected.0, "Accept-Encoding: {accept}: {}", summary(&r));
        assert_eq!(r.body, expected.1, "Accept-Encoding: {accept}");
        assert!(varies_on_encoding(&r), "Accept-Encoding: {accept}");
        assert!(r.header("content-type").unwrap().contains("javascript"), "{}", summary(&r));
    }
}

#[test]
fn ranges_are_never_served_compressed() {
    let site = Site::new();
    let server = site.serve();
    let addr = server.addr;
    let identity_tag = etag(&get(addr, "/style.css", &[]));
    for accept in ["gzip", "br", "br, gzip", "*"] {
        let r = get_and_head(addr, "/style.css", &[("Accept-Encoding", accept), ("Range", "bytes=0-3")], 206);
        assert_single_range(&r, CSS, 0, 3, &format!("Accept-Encoding: {accept} with a range"));
        assert!(r.header("content-encoding").is_none(), "{accept}: {}", summary(&r));
        assert_eq!(etag(&r), identity_tag, "{accept}: the 206 is of the identity");
        assert!(varies_on_encoding(&r), "{accept}: the 206 depends on Accept-Encoding too");
    }
    let r = get(addr, "/style.css", &[("Accept-Encoding", "gzip"), ("Range", "bytes=0-1,4-5")]);
    assert_eq!(r.status, 206);
    assert!(r.header("content-encoding").is_none());
    for p in parse_multipart(&r) {
        assert_eq!(p.range.2, CSS.len() as u64);
        assert_eq!(p.data, &CSS[p.range.0 as usize..=p.range.1 as usize]);
    }
}

#[test]
fn conditional_requests_use_the_selected_variant() {
    let site = Site::new();
    let server = site.serve_with(|f| f.cache_control("max-age=60"));
    let addr = server.addr;
    let identity = get(addr, "/style.css", &[]);
    let gz = get(addr, "/style.css", &[("Accept-Encoding", "gzip")]);
    let (t_id, t_gz) = (etag(&identity), etag(&gz));

    let r = get_and_head(addr, "/style.css", &[("Accept-Encoding", "gzip"), ("If-None-Match", &t_gz)], 304);
    assert_eq!(etag(&r), t_gz);
    assert!(varies_on_encoding(&r), "304 without the Vary of its 200");
    assert_eq!(r.header("cache-control"), Some("max-age=60"));
    // Both tags listed (a cache holding both variants): 304 for either.
    let both = format!("{t_id}, {t_gz}");
    get_and_head(addr, "/style.css", &[("Accept-Encoding", "gzip"), ("If-None-Match", &both)], 304);
    get_and_head(addr, "/style.css", &[("If-None-Match", &both)], 304);
    // The identity's tag does not validate the gzip variant, and the other way round.
    let r = get_and_head(addr, "/style.css", &[("Accept-Encoding", "gzip"), ("If-None-Match", &t_id)], 200);
    assert_css_variant(&r, Some("gzip"), CSS_GZ, "identity tag, gzip accepted");
    let r = get_and_head(addr, "/style.css", &[("If-None-Match", &t_gz)], 200);
    assert_css_variant(&r, None, CSS, "gzip tag, no Accept-Encoding");
    // If-Match with the variant's tag.
    get_and_head(addr, "/style.css", &[("Accept-Encoding", "gzip"), ("If-Match", &t_gz)], 200);
    get_and_head(addr, "/style.css", &[("Accept-Encoding", "gzip"), ("If-Match", &t_id)], 412);
}

#[test]
fn variants_have_distinct_etags_even_with_equal_size_and_mtime() {
    // `gzip -k` keeps the original's mtime; a variant of the same length then
    // must still not share the identity's strong ETag (RFC 9110 §8.8.1, §8.8.3).
    let site = Site::new();
    let t = at(T0, T0_NANOS);
    site.write("same.txt", b"0123456789", t);
    site.write("same.txt.gz", b"GZGZGZGZGZ", t);
    let server = site.serve();
    let identity = get(server.addr, "/same.txt", &[]);
    let gz = get(server.addr, "/same.txt", &[("Accept-Encoding", "gzip")]);
    assert_eq!(identity.body, b"0123456789");
    assert_eq!(gz.body, b"GZGZGZGZGZ");
    assert_eq!(gz.header("content-encoding"), Some("gzip"));
    assert_ne!(etag(&identity), etag(&gz), "two representations share one strong ETag");
}

#[test]
fn vary_only_where_a_sibling_exists() {
    let site = Site::new();
    for server in [site.serve(), site.serve_with(|f| f.file_cache(false))] {
        let addr = server.addr;
        // Twice each: from the file, then from the cache when there is one.
        for _ in 0..2 {
            for accept in [None, Some("gzip, deflate, br")] {
                let mut headers: Vec<(&str, &str)> = accept.map(|a| ("Accept-Encoding", a)).into_iter().collect();
                let r = get_and_head(addr, "/pattern.bin", &headers, 200);
                assert!(!varies_on_encoding(&r), "{accept:?}: Vary with no sibling: {}", summary(&r));
                let tag = etag(&r);
                headers.push(("If-None-Match", &tag));
                let r = get_and_head(addr, "/pattern.bin", &headers, 304);
                assert!(!varies_on_encoding(&r), "{accept:?}: 304: {}", summary(&r));
                headers.pop();
                headers.push(("Range", "bytes=0-3"));
                let r = get_and_head(addr, "/pattern.bin", &headers, 206);
                assert!(!varies_on_encoding(&r), "{accept:?}: 206: {}", summary(&r));
                headers.pop();
                headers.push(("Range", "bytes=0-1,4-5"));
                let r = get_and_head(addr, "/pattern.bin", &headers, 206);
                assert!(!varies_on_encoding(&r), "{accept:?}: multipart 206: {}", summary(&r));
                let r = get_and_head(addr, "/style.css", &headers, 206);
                assert!(varies_on_encoding(&r), "{accept:?}: multipart 206 of style.css: {}", summary(&r));
                // A file with a sibling varies for every client, whatever it is sent.
                let r = get_and_head(addr, "/app.js", &headers[..headers.len() - 1], 200);
                assert!(varies_on_encoding(&r), "{accept:?}: app.js: {}", summary(&r));
            }
        }
    }
}

#[test]
fn a_directory_named_like_a_sibling_is_not_one() {
    let site = Site::new();
    std::fs::create_dir(site.root.join("pattern.bin.gz")).unwrap();
    for server in [site.serve(), site.serve_with(|f| f.file_cache(false))] {
        for _ in 0..2 {
            let r = get_and_head(server.addr, "/pattern.bin", &[("Accept-Encoding", "gzip")], 200);
            assert_eq!(r.body, pattern(PATTERN_LEN));
            assert!(r.header("content-encoding").is_none(), "{}", summary(&r));
            assert!(!varies_on_encoding(&r), "Vary for a directory: {}", summary(&r));
        }
    }
}

#[test]
fn precompressed_off_serves_identity_without_vary() {
    let site = Site::new();
    let server = site.serve_with(|f| f.precompressed(false));
    for accept in [None, Some("gzip"), Some("br, gzip"), Some("*")] {
        let headers: Vec<(&str, &str)> = accept.map(|a| ("Accept-Encoding", a)).into_iter().collect();
        let r = get_and_head(server.addr, "/style.css", &headers, 200);
        assert_eq!(r.body, CSS, "{accept:?}");
        assert!(r.header("content-encoding").is_none(), "{accept:?}: {}", summary(&r));
        assert!(r.header("vary").is_none(), "{accept:?}: Vary without negotiation: {}", summary(&r));
        assert_eq!(r.header("accept-ranges"), Some("bytes"));
    }
    let tag = etag(&get(server.addr, "/style.css", &[]));
    let r = get_and_head(server.addr, "/style.css", &[("Accept-Encoding", "gzip"), ("If-None-Match", &tag)], 304);
    assert!(r.header("vary").is_none());
}

// ---- Cache-Control ------------------------------------------------------------------

#[test]
fn cache_control_on_file_responses() {
    let site = Site::new();
    let server = site.serve_with(|f| f.cache_control("max-age=60"));
    let addr = server.addr;
    let tag = etag(&get(addr, "/pattern.bin", &[]));
    let gz_tag = etag(&get(addr, "/style.css", &[("Accept-Encoding", "gzip")]));
    let cases: &[(&str, Headers, u16)] = &[
        ("/pattern.bin", &[], 200),
        ("/pattern.bin", &[("Range", "bytes=0-9")], 206),
        ("/pattern.bin", &[("Range", "bytes=0-9,20-29")], 206),
        ("/pattern.bin", &[("If-None-Match", &tag)], 304),
        ("/pattern.bin", &[("If-Modified-Since", T0_HTTP)], 304),
        ("/pattern.bin", &[("Range", "bytes=0-9"), ("If-Range", &tag)], 206),
        ("/style.css", &[("Accept-Encoding", "gzip")], 200),
        ("/style.css", &[("Accept-Encoding", "gzip"), ("If-None-Match", &gz_tag)], 304),
        ("/empty.txt", &[], 200),
    ];
    for &(path, headers, status) in cases {
        let r = get_and_head(addr, path, headers, status);
        assert_eq!(r.header("cache-control"), Some("max-age=60"), "{path} {headers:?}: {}", summary(&r));
        let n = r.headers.iter().filter(|(n, _)| n == "cache-control").count();
        assert_eq!(n, 1, "{path} {headers:?}: Cache-Control repeated");
    }
    // Error responses (what the handler does today): no Cache-Control on 404.
    let r = get_and_head(addr, "/missing.txt", &[], 404);
    assert!(r.header("cache-control").is_none(), "404: {}", summary(&r));

    // Without the option: none at all.
    let plain = site.serve();
    let r = get_and_head(plain.addr, "/pattern.bin", &[], 200);
    assert!(r.header("cache-control").is_none(), "{}", summary(&r));
}

// ---- the binary ---------------------------------------------------------------------

#[test]
fn binary_cache_control_flag() {
    let site = Site::new();
    let p = Spawned::start(&["--listen", "127.0.0.1:0", "--cache-control", "public, max-age=3600", site.root_str()], 1);
    let addr = p.addr();
    let ok = get_and_head(addr, "/style.css", &[], 200);
    assert_eq!(ok.body, CSS);
    let tag = etag(&ok);
    let gz = get_and_head(addr, "/style.css", &[("Accept-Encoding", "gzip")], 200);
    assert_css_variant(&gz, Some("gzip"), CSS_GZ, "binary, gzip (precompressed on by default)");
    let cases: &[(Headers, u16)] = &[(&[], 200), (&[("Range", "bytes=0-3")], 206), (&[("If-None-Match", &tag)], 304)];
    for &(headers, status) in cases {
        let r = get_and_head(addr, "/style.css", headers, status);
        assert_eq!(r.header("cache-control"), Some("public, max-age=3600"), "{headers:?}: {}", summary(&r));
    }
    assert_eq!(gz.header("cache-control"), Some("public, max-age=3600"));
}

#[test]
fn binary_no_precompressed_flag() {
    let site = Site::new();
    let p = Spawned::start(&["--listen", "127.0.0.1:0", "--no-precompressed", site.root_str()], 1);
    for accept in ["gzip", "br, gzip", "*"] {
        let r = get_and_head(p.addr(), "/style.css", &[("Accept-Encoding", accept)], 200);
        assert_eq!(r.body, CSS, "{accept}");
        assert!(r.header("content-encoding").is_none(), "{accept}: {}", summary(&r));
        assert!(!varies_on_encoding(&r), "{accept}: {}", summary(&r));
        assert!(r.header("cache-control").is_none(), "no --cache-control given: {}", summary(&r));
    }
}
