//! Property tests: a resolved path never leaves the root (through the resolver
//! and through a real server), a request split across reads gets the same
//! response as in one piece, chunked bodies decode to what was encoded however
//! they are read, and satisfiable ranges are disjoint, within the file and in the order asked.
//!
//! Case counts are modest so that the file runs in a few seconds in release mode;
//! the fuzz targets in `fuzz/` search the same ground much longer.

mod common;

use common::*;

use std::cell::Cell;
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::path::Path;
use std::time::Duration;

use proptest::prelude::*;
use proptest::test_runner::{Config as Cases, TestCaseError, TestRunner};
use spindle::fuzz_api::{self, BodyDecoder, Ranges, Resolved, Root};
use spindle::{Config, Request, Router, Status};

const SECRET: &[u8] = b"secret just outside the root";

/// A runner for `cases` cases that leaves no regression files behind.
fn runner(cases: u32) -> TestRunner {
    TestRunner::new(Cases { cases, failure_persistence: None, max_shrink_iters: 256, ..Cases::default() })
}

// ---- paths ------------------------------------------------------------------------------

/// A site whose root sits next to a secret, with symlinks inside pointing at it
/// (relative and absolute, to the file and to its directory), a symlink within
/// the root, a symlink loop and a dotfile. Returns the temporary directory and the root.
fn escape_site() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path();
    let root = base.join("root");
    std::fs::create_dir_all(root.join("sub")).unwrap();
    std::fs::create_dir_all(base.join("outside")).unwrap();
    std::fs::write(base.join("secret.txt"), SECRET).unwrap();
    std::fs::write(base.join("outside/secret.txt"), SECRET).unwrap();
    std::fs::write(base.join("outside/index.html"), SECRET).unwrap();
    std::fs::write(root.join("index.html"), "home").unwrap();
    std::fs::write(root.join("a.txt"), "a").unwrap();
    std::fs::write(root.join("sub/index.html"), "sub").unwrap();
    std::fs::write(root.join(".hidden"), "dotfile").unwrap();
    let link = |to: &Path, at: &str| std::os::unix::fs::symlink(to, root.join(at)).unwrap();
    link(Path::new("../secret.txt"), "up");
    link(&base.join("secret.txt"), "abs");
    link(Path::new("../outside"), "updir");
    link(&base.join("outside"), "absdir");
    link(Path::new("a.txt"), "inner");
    link(Path::new("loop"), "loop");
    (dir, root)
}

/// Request targets built from path segments that try to climb out: `..` plain,
/// encoded and with backslashes, empty segments, NUL, encoded slashes, the
/// symlinks of [`escape_site`], in origin or absolute form, with a query.
fn hostile_target() -> impl Strategy<Value = Vec<u8>> {
    let segment = prop::sample::select(vec![
        "..",
        "%2e%2e",
        "%2E%2e",
        ".%2e",
        "%2e.",
        ".",
        "%2e",
        "",
        "%2f..",
        "..%2f..",
        "%5c..",
        "..\\..",
        "%00",
        "a.txt%00",
        "%2fsecret.txt",
        "up",
        "abs",
        "updir",
        "absdir",
        "inner",
        "loop",
        "sub",
        "a.txt",
        "index.html",
        "secret.txt",
        "outside",
        "root",
        ".hidden",
        "%2ehidden",
    ]);
    let prefix = prop::sample::select(vec!["/", "//", "/./", "http://h/", "HTTP://h//", "/sub/"]);
    let query = prop::sample::select(vec!["", "?x=../..", "#frag", "?%2e%2e"]);
    (prefix, prop::collection::vec(segment, 0..8), prop::bool::ANY, query).prop_map(
        |(prefix, segments, slash, query)| {
            let mut t = prefix.to_string();
            t.push_str(&segments.join("/"));
            if slash {
                t.push('/');
            }
            t.push_str(query);
            t.into_bytes()
        },
    )
}

#[test]
fn resolved_paths_stay_under_the_root() {
    let (_dir, root_path) = escape_site();
    let root = Root::open(&root_path).unwrap();
    let opened = Cell::new(0);
    runner(2000)
        .run(&hostile_target(), |target| {
            let (mut decoded, mut scratch) = (Vec::new(), Vec::new());
            let shown = String::from_utf8_lossy(&target).into_owned();
            let file = match root.resolve_target(&target, &mut decoded, &mut scratch) {
                Ok(Resolved::File(f)) => f,
                Ok(Resolved::Directory(d)) => d,
                Ok(Resolved::AddSlash) | Err(_) => return Ok(()),
            };
            opened.set(opened.get() + 1);
            let real = std::fs::read_link(format!("/proc/self/fd/{}", file.as_raw_fd())).unwrap();
            prop_assert!(real.starts_with(root.path()), "{shown} opened {real:?}");
            prop_assert!(!scratch.split(|&b| b == b'/').any(|s| s == b".."), "{shown} normalised to {scratch:?}");
            if let Ok(meta) = file.metadata() {
                if meta.is_file() {
                    let mut contents = Vec::new();
                    let _ = (&file).read_to_end(&mut contents);
                    prop_assert_ne!(contents, SECRET, "{} served the secret", shown);
                }
            }
            Ok(())
        })
        .unwrap();
    assert!(opened.get() > 0, "no generated target opened anything: the property checked nothing");
}

#[test]
fn the_server_never_returns_a_file_from_outside_the_root() {
    let (_dir, root) = escape_site();
    let server = TestServer::with_root(&root);
    let ok = Cell::new(0);
    runner(150)
        .run(&hostile_target(), |target| {
            let mut raw = b"GET ".to_vec();
            raw.extend_from_slice(&target);
            raw.extend_from_slice(b" HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
            let r = request(server.addr, &raw);
            let shown = String::from_utf8_lossy(&target).into_owned();
            prop_assert!(!r.body.windows(SECRET.len()).any(|w| w == SECRET), "{} served the secret", shown);
            ok.set(ok.get() + usize::from(r.status == 200));
            Ok(())
        })
        .unwrap();
    assert!(ok.get() > 0, "no generated target was served: the property checked nothing");
}

// ---- requests split across reads ----------------------------------------------------------

/// Everything the server saw of a request, as the response body.
fn seen(req: &Request<'_>) -> spindle::Response {
    let mut out = format!("{} {} path={:?} query={:?}\n", req.method_str(), req.target(), req.path(), req.query());
    for (name, value) in req.headers().iter() {
        out.push_str(&format!("{name}: {:?}\n", String::from_utf8_lossy(value)));
    }
    let mut body = out.into_bytes();
    body.extend_from_slice(b"body:");
    body.extend_from_slice(req.body());
    spindle::Response::new(Status::OK).with_body(body)
}

/// A request with `Connection: close`: GET or POST to the echo route, a few header
/// fields, and a body sent with Content-Length or chunked (any chunk sizes,
/// extensions, trailers), or none.
fn any_request() -> impl Strategy<Value = Vec<u8>> {
    let header = (
        prop::sample::select(vec!["X-A", "accept", "X-Long-Header-Name", "user-agent"]),
        "[ -~]{0,40}".prop_map(|v| v.trim().to_string()),
    );
    let body = prop::collection::vec(any::<u8>(), 0..600);
    let framing = prop_oneof![Just(0u8), Just(1u8), Just(2u8)];
    let chunks = prop::collection::vec(1usize..200, 1..6);
    let lf_only = prop::bool::weighted(0.2);
    (prop::collection::vec(header, 0..5), body, framing, chunks, lf_only, "[a-z0-9=&%]{0,20}").prop_map(
        |(headers, body, framing, chunks, lf_only, query)| {
            let method = if framing == 0 && body.is_empty() { "GET" } else { "POST" };
            let mut raw = format!("{method} /echo?{query} HTTP/1.1\r\nHost: test\r\n");
            for (name, value) in headers {
                raw.push_str(&format!("{name}: {value}\r\n"));
            }
            raw.push_str("Connection: close\r\n");
            match framing {
                0 => raw.push_str(&format!("Content-Length: {}\r\n", body.len())),
                1 => raw.push_str("Transfer-Encoding: chunked\r\n"),
                _ => {}
            }
            raw.push_str("\r\n");
            if lf_only && framing != 1 {
                raw = raw.replace("\r\n", "\n");
            }
            let mut raw = raw.into_bytes();
            match framing {
                0 => raw.extend_from_slice(&body),
                1 => raw.extend_from_slice(&encode_chunked(&body, &chunks, true)),
                _ => {}
            }
            raw
        },
    )
}

/// `body` as a chunked body with chunk sizes cycled from `sizes`; with
/// `decorate`, some chunks carry extensions and the body ends with a trailer.
fn encode_chunked(body: &[u8], sizes: &[usize], decorate: bool) -> Vec<u8> {
    let mut out = Vec::new();
    let mut rest = body;
    for (i, &size) in sizes.iter().cycle().enumerate() {
        if rest.is_empty() {
            break;
        }
        let (chunk, tail) = rest.split_at(size.max(1).min(rest.len()));
        let ext = if decorate && i % 2 == 1 { ";name=value" } else { "" };
        out.extend_from_slice(format!("{:X}{ext}\r\n", chunk.len()).as_bytes());
        out.extend_from_slice(chunk);
        out.extend_from_slice(b"\r\n");
        rest = tail;
    }
    out.extend_from_slice(if decorate { b"0\r\nX-Trailer: t\r\n\r\n" } else { b"0\r\n\r\n" });
    out
}

/// Sends `raw` in pieces ending at `cuts` (then the rest) and returns the whole
/// response up to the server's close, without its Date header.
fn exchange(addr: std::net::SocketAddr, raw: &[u8], cuts: &[usize]) -> Vec<u8> {
    let mut s = connect(addr);
    s.set_nodelay(true).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut at = 0;
    for &cut in cuts.iter().chain([&raw.len()]) {
        s.write_all(&raw[at..cut]).unwrap();
        s.flush().unwrap();
        if cut < raw.len() {
            // Not synchronisation (nothing waits on it): a pause so that the server
            // usually reads the piece on its own rather than with the next one.
            std::thread::sleep(Duration::from_millis(1));
        }
        at = cut;
    }
    let (response, eof) = read_to_end(&mut s);
    assert!(eof, "no close after the response: {:?}", String::from_utf8_lossy(&response));
    without_date(&response)
}

fn without_date(response: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(response.len());
    let mut rest = response;
    while let Some(nl) = rest.iter().position(|&b| b == b'\n') {
        let (line, tail) = rest.split_at(nl + 1);
        if !line.to_ascii_lowercase().starts_with(b"date:") {
            out.extend_from_slice(line);
        }
        if line == b"\r\n" {
            out.extend_from_slice(tail);
            return out;
        }
        rest = tail;
    }
    out.extend_from_slice(rest);
    out
}

#[test]
fn a_request_split_across_reads_gets_the_same_response() {
    let router = Router::new().get("/echo", seen).post("/echo", seen);
    // Short deadlines: a split the server mishandles ends in a quick 408, not a hang.
    let config =
        Config { header_timeout: Duration::from_secs(2), body_timeout: Duration::from_secs(2), ..Config::default() };
    let server = TestServer::with_router(router, config);
    let strategy = any_request().prop_flat_map(|raw| {
        let len = raw.len();
        (Just(raw), prop::collection::vec(1..len, 1..4))
    });
    runner(60)
        .run(&strategy, |(raw, mut cuts)| {
            cuts.sort_unstable();
            cuts.dedup();
            let whole = exchange(server.addr, &raw, &[]);
            prop_assert!(whole.starts_with(b"HTTP/1.1 200 "), "{}", String::from_utf8_lossy(&whole));
            let split = exchange(server.addr, &raw, &cuts);
            prop_assert_eq!(
                String::from_utf8_lossy(&split),
                String::from_utf8_lossy(&whole),
                "cuts {:?} of {:?}",
                cuts,
                String::from_utf8_lossy(&raw)
            );
            Ok(())
        })
        .unwrap();
}

// ---- the chunked decoder ----------------------------------------------------------------

/// Decodes `wire` arriving in reads of the sizes cycled from `reads`, as the
/// connection feeds the decoder; returns the data, the bytes consumed, and whether
/// the body ended.
fn decode(wire: &[u8], reads: &[usize]) -> Result<(Vec<u8>, usize, bool), &'static str> {
    let mut d = BodyDecoder::chunked().unwrap();
    let (mut data, mut consumed, mut arrived) = (Vec::new(), 0, 0);
    let mut sizes = reads.iter().cycle();
    while arrived < wire.len() && !d.is_done() {
        arrived = (arrived + sizes.next().copied().unwrap_or(wire.len()).max(1)).min(wire.len());
        loop {
            let input = &wire[consumed..arrived];
            let step = d.decode(input)?;
            data.extend_from_slice(&input[step.data.0..step.data.1]);
            consumed += step.consumed;
            if step.consumed == 0 || d.is_done() {
                break;
            }
        }
    }
    Ok((data, consumed, d.is_done()))
}

#[test]
fn chunked_bodies_decode_to_what_was_encoded_however_they_are_read() {
    let strategy = (
        prop::collection::vec(any::<u8>(), 0..3000),
        prop::collection::vec(1usize..700, 1..8),
        prop::bool::ANY,
        prop::collection::vec(1usize..64, 1..8),
        prop::collection::vec(any::<u8>(), 0..16),
    );
    runner(300)
        .run(&strategy, |(body, chunks, decorate, reads, after)| {
            let mut wire = encode_chunked(&body, &chunks, decorate);
            let end = wire.len();
            // Whatever follows the body (a pipelined request) is not consumed.
            wire.extend_from_slice(&after);
            let (data, consumed, done) = decode(&wire, &reads).map_err(TestCaseError::fail)?;
            prop_assert!(done, "the body did not end");
            prop_assert_eq!(consumed, end);
            prop_assert_eq!(data, body);
            Ok(())
        })
        .unwrap();
}

// ---- ranges -----------------------------------------------------------------------------

/// One range spec: `a-b`, `a-` or `-n`, with values around `len`.
fn range_spec(len: u64) -> impl Strategy<Value = (Option<u64>, Option<u64>)> {
    let around = move || prop_oneof![0..=len.saturating_add(10), Just(len), Just(len.saturating_sub(1))];
    prop_oneof![
        (around(), prop_oneof![0u64..3, 0..=len.saturating_add(10)]).prop_map(|(a, n)| (Some(a), Some(a + n))),
        around().prop_map(|a| (Some(a), None)),
        around().prop_map(|n| (None, Some(n))),
    ]
}

#[test]
fn satisfiable_ranges_are_disjoint_within_the_file_and_in_the_order_asked() {
    // Mostly small files, where ranges meet, overlap and touch.
    let strategy = prop_oneof![3 => 0u64..24, 1 => 0u64..3000].prop_flat_map(|len| {
        (Just(len), prop::collection::vec(range_spec(len), 1..=fuzz_api::MAX_RANGES), any::<bool>())
    });
    runner(1000)
        .run(&strategy, |(len, specs, spaces)| {
            let sep = if spaces { " , " } else { "," };
            let value = specs
                .iter()
                .map(|s| match s {
                    (Some(a), Some(b)) => format!("{a}-{b}"),
                    (Some(a), None) => format!("{a}-"),
                    (None, Some(n)) => format!("-{n}"),
                    (None, None) => unreachable!(),
                })
                .collect::<Vec<_>>()
                .join(sep);
            let value = format!("bytes={value}");
            // The bytes each spec asks for that exist (RFC 9110 §14.1.2), as a set,
            // and for each byte the first spec that asks for it.
            let mut wanted = vec![false; len as usize];
            let mut first_asked = vec![usize::MAX; len as usize];
            for (k, s) in specs.iter().enumerate() {
                let (from, to) = match *s {
                    (Some(a), Some(b)) => (a, b.saturating_add(1)),
                    (Some(a), None) => (a, len),
                    (None, Some(n)) => (len.saturating_sub(n), len),
                    (None, None) => unreachable!(),
                };
                for i in from..to.min(len) {
                    wanted[i as usize] = true;
                    first_asked[i as usize] = first_asked[i as usize].min(k);
                }
            }
            match fuzz_api::parse_range(value.as_bytes(), len) {
                Ranges::Ranges(ranges) => {
                    let mut got = vec![false; len as usize];
                    let mut by_start = ranges.clone();
                    by_start.sort_unstable();
                    let mut prev_end = None;
                    for &(start, end) in &by_start {
                        prop_assert!(start < end && end <= len, "{value}: {start}..{end} of {len}");
                        prop_assert!(prev_end.is_none_or(|p| start > p), "{value}: {ranges:?} overlap or touch");
                        prev_end = Some(end);
                        got[start as usize..end as usize].iter_mut().for_each(|b| *b = true);
                    }
                    prop_assert!(got == wanted, "{value} of {len}: {ranges:?} is not the bytes asked for");
                    // RFC 9110 §15.3.7.2: parts in the order asked, a merged one where
                    // its first part was asked for.
                    let order: Vec<usize> = ranges
                        .iter()
                        .map(|&(s, e)| first_asked[s as usize..e as usize].iter().copied().min().unwrap())
                        .collect();
                    prop_assert!(order.windows(2).all(|w| w[0] < w[1]), "{value}: {ranges:?} out of order ({order:?})");
                }
                Ranges::Unsatisfiable => prop_assert!(!wanted.contains(&true), "{value} of {len}: 416"),
                Ranges::Whole => prop_assert!(false, "{value} of {len}: a valid range set ignored"),
            }
            Ok(())
        })
        .unwrap();
}

// ---- found while fuzzing ------------------------------------------------------------------

/// A site on tmpfs (which, unlike ext4, keeps any modification time) holding
/// `dir/far.txt`, last modified in the year 10000; `None` without /dev/shm.
fn far_future_site() -> Option<tempfile::TempDir> {
    let dir = tempfile::tempdir_in("/dev/shm").ok()?;
    std::fs::create_dir(dir.path().join("dir")).unwrap();
    let file = std::fs::File::create(dir.path().join("dir/far.txt")).unwrap();
    (&file).write_all(b"far").unwrap();
    file.set_modified(std::time::UNIX_EPOCH + Duration::from_secs(253_402_300_800)).unwrap();
    Some(dir)
}

#[test]
fn a_file_modified_after_year_9999_is_served() {
    let Some(site) = far_future_site() else { return };
    let server = TestServer::with_root(site.path());
    let r = get(server.addr, "/dir/far.txt");
    assert_eq!((r.status, r.text().as_str()), (200, "far"), "{r:?}");
    // In the future, so not sent (RFC 9110 §8.8.2.1).
    assert_eq!(r.header("last-modified"), None, "{r:?}");
}

#[test]
fn a_listing_with_a_file_modified_after_year_9999_is_served() {
    let Some(site) = far_future_site() else { return };
    let files = spindle::StaticFiles::new(site.path()).unwrap().listing(true);
    let server = TestServer::with_router(Router::new().fallback(files), Config::default());
    let r = get(server.addr, "/dir/");
    assert_eq!(r.status, 200, "{r:?}");
    assert!(r.text().contains("far.txt"));
}
