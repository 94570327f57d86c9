//! The open-file cache: hot small files come from memory, yet a changed or
//! removed file is noticed at once (default) or within the validity interval.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use spindle::{Config, Middleware, Request, Response as Reply, Router, StaticFiles};

fn serve(files: StaticFiles) -> TestServer {
    TestServer::with_router(Router::new().fallback(files), Config::default())
}

#[test]
fn changes_are_served_at_once_by_default() {
    let root = site();
    let server = serve(StaticFiles::new(root.path()).unwrap());
    let path = root.path().join("style.css");
    for round in 0..5 {
        // Sizes differ: two writes within one file-timestamp tick (a few ms) with
        // equal sizes are indistinguishable by stat, for nginx's cache as for this one.
        let body = format!("round {}\n", "x".repeat(round));
        std::fs::write(&path, &body).unwrap();
        // Twice: the first request may fill the cache, the second must come from it.
        assert_eq!(get(server.addr, "/style.css").text(), body);
        assert_eq!(get(server.addr, "/style.css").text(), body);
    }
    std::fs::remove_file(&path).unwrap();
    assert_eq!(get(server.addr, "/style.css").status, 404);
    // Replaced by a directory: no stale file.
    std::fs::create_dir(&path).unwrap();
    assert_eq!(get(server.addr, "/style.css").status, 301);
}

#[test]
fn a_validity_interval_serves_changes_within_it() {
    let root = site();
    let server = serve(StaticFiles::new(root.path()).unwrap().revalidate_after(Duration::from_millis(300)));
    let path = root.path().join("index.html");
    let before = get(server.addr, "/").text();
    assert_eq!(get(server.addr, "/").text(), before);
    std::fs::write(&path, "changed\n").unwrap();
    let fresh = wait_for(Duration::from_secs(3), || get(server.addr, "/").text() == "changed\n");
    assert!(fresh, "the change was not served within the validity interval");
}

/// Longer than any test takes: cached files are not checked again.
const HOUR: Duration = Duration::from_secs(3600);

/// Changes a file that is cached for an hour: answers with the old contents
/// show that they came from the cache.
fn changed_behind_the_cache(path: &std::path::Path) {
    std::fs::write(path, "changed behind the cache\n").unwrap();
}

/// The header fields of a response other than `Date`, in order.
fn fields(r: &Response) -> Vec<(String, String)> {
    r.headers.iter().filter(|(n, _)| n != "date").cloned().collect()
}

#[test]
fn answers_from_the_cache_carry_the_fields_of_answers_from_the_file() {
    let root = site();
    let files = StaticFiles::new(root.path()).unwrap().cache_control("max-age=60").revalidate_after(HOUR);
    let server = serve(files);
    // The first request reads the file (and fills the cache), the second is answered from memory.
    let from_file = get(server.addr, "/style.css");
    changed_behind_the_cache(&root.path().join("style.css"));
    let from_cache = get(server.addr, "/style.css");
    assert_eq!(from_file.status, 200);
    assert_eq!(from_cache.text(), from_file.text(), "not answered from the cache");
    assert_eq!(fields(&from_cache), fields(&from_file));
    let names: Vec<&str> = from_file.headers.iter().map(|(n, _)| n.as_str()).collect();
    for name in ["content-type", "etag", "last-modified", "cache-control", "accept-ranges", "content-length"] {
        assert_eq!(names.iter().filter(|n| **n == name).count(), 1, "{name} in {names:?}");
    }
    // Revalidation (304) from the cache: the validators, no type.
    let etag = from_file.header("etag").unwrap();
    let raw = format!("GET /style.css HTTP/1.1\r\nHost: test\r\nIf-None-Match: {etag}\r\nConnection: close\r\n\r\n");
    let not_modified = request(server.addr, raw.as_bytes());
    assert_eq!(not_modified.status, 304);
    assert_eq!(not_modified.header("etag"), Some(etag));
    assert_eq!(not_modified.header("last-modified"), from_file.header("last-modified"));
    assert_eq!(not_modified.header("cache-control"), Some("max-age=60"));
    assert_eq!(not_modified.header("content-type"), None);
}

/// Lists the fields of every response it sees, then replaces one and adds one.
struct Rewrite {
    seen: Arc<Mutex<Vec<Vec<String>>>>,
}

impl Middleware for Rewrite {
    fn on_response(&self, _: &Request<'_>, response: &mut Reply) {
        self.seen.lock().unwrap().push(response.headers().map(|(n, v)| format!("{n}: {v}")).collect());
        response.set_header("content-type", "text/x-rewritten");
        response.append_header("X-Extra", "1");
    }
}

#[test]
fn middleware_sees_and_changes_the_fields_of_answers_from_the_cache() {
    let root = site();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let files = StaticFiles::new(root.path()).unwrap().revalidate_after(HOUR);
    let router = Router::new().fallback(files).wrap(Rewrite { seen: seen.clone() });
    let server = TestServer::with_router(router, Config::default());
    let from_file = get(server.addr, "/style.css");
    changed_behind_the_cache(&root.path().join("style.css"));
    let answers = [from_file, get(server.addr, "/style.css")];
    for r in &answers {
        assert_eq!(r.status, 200);
        assert_eq!(r.text(), "body { color: black }\n");
        let types: Vec<_> = r.headers.iter().filter(|(n, _)| n == "content-type").collect();
        assert_eq!(types, [&("content-type".to_string(), "text/x-rewritten".to_string())], "{r:?}");
        assert_eq!(r.header("x-extra"), Some("1"));
    }
    assert_eq!(fields(&answers[0]), fields(&answers[1]));
    assert!(answers[1].header("etag").is_some());
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[0], seen[1], "the middleware saw different fields from the file and from the cache");
    assert!(seen[1].iter().any(|f| f.starts_with("ETag: ")), "{:?}", seen[1]);
    assert!(seen[1].iter().any(|f| f.starts_with("Content-Type: text/css")), "{:?}", seen[1]);
}

#[test]
fn without_the_cache_files_are_read_each_time() {
    let root = site();
    let server = serve(StaticFiles::new(root.path()).unwrap().file_cache(false));
    let path = root.path().join("sub/page.txt");
    for round in 0..3 {
        let body = "y".repeat(round);
        std::fs::write(&path, &body).unwrap();
        assert_eq!(get(server.addr, "/sub/page.txt").text(), body);
    }
}

#[test]
fn cached_listings_follow_the_directory_and_the_validity_interval() {
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir(root.path().join("d")).unwrap();
    std::fs::write(root.path().join("d/a.txt"), "a").unwrap();
    let files = StaticFiles::new(root.path()).unwrap().listing(true).revalidate_after(Duration::from_secs(3600));
    let server = serve(files);
    let first = get(server.addr, "/d/");
    assert_eq!(first.status, 200);
    assert!(first.text().contains("a.txt"));
    // Served from the cache now: same bytes.
    assert_eq!(get(server.addr, "/d/").text(), first.text());
    // An entry added changes the directory: listed at once, despite the long interval.
    std::fs::write(root.path().join("d/b.txt"), "b").unwrap();
    assert!(get(server.addr, "/d/").text().contains("b.txt"), "a new entry was not listed");
    // Options are cached apart: JSON is not served the HTML and vice versa.
    let json = get(server.addr, "/d/?format=json");
    assert_eq!(json.header("content-type"), Some("application/json"));
    assert!(json.text().starts_with('['), "{}", json.text());
    assert!(get(server.addr, "/d/").text().starts_with("<!DOCTYPE html>"));
}

#[test]
fn listings_are_fresh_on_every_request_by_default() {
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir(root.path().join("d")).unwrap();
    let file = root.path().join("d/a.txt");
    std::fs::write(&file, "a").unwrap();
    let server = serve(StaticFiles::new(root.path()).unwrap().listing(true));
    let size = |text: String| text.contains(r#""size":1,"#);
    assert!(size(get(server.addr, "/d/?format=json").text()));
    // A size change does not touch the directory's own metadata.
    std::fs::write(&file, "abc").unwrap();
    assert!(get(server.addr, "/d/?format=json").text().contains(r#""size":3,"#), "stale listing");

    let server =
        serve(StaticFiles::new(root.path()).unwrap().listing(true).revalidate_after(Duration::from_millis(300)));
    assert!(get(server.addr, "/d/?format=json").text().contains(r#""size":3,"#));
    std::fs::write(&file, "abcde").unwrap();
    let fresh =
        wait_for(Duration::from_secs(3), || get(server.addr, "/d/?format=json").text().contains(r#""size":5,"#));
    assert!(fresh, "the size change was not listed within the validity interval");
}

/// Above the size whose contents are cached: such files are kept open instead.
const LARGE: usize = 200 * 1024;

/// Whether `r` is a 200 with `len` bytes of `byte`.
fn all_of(r: &Response, byte: u8, len: usize) -> bool {
    r.status == 200 && r.body.len() == len && r.body.iter().all(|&b| b == byte)
}

/// Replaces `path` with a new file (a new inode) of `len` bytes of `byte`.
fn replace(path: &std::path::Path, byte: u8, len: usize) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, vec![byte; len]).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

#[test]
fn large_files_are_kept_open_yet_changes_are_served_at_once_by_default() {
    let root = site();
    let server = serve(StaticFiles::new(root.path()).unwrap());
    let path = root.path().join("big.bin");
    // The same length each time: the file's identity tells the versions apart.
    for byte in [b'a', b'b', b'c'] {
        replace(&path, byte, LARGE);
        for _ in 0..2 {
            assert!(all_of(&get(server.addr, "/big.bin"), byte, LARGE), "stale or corrupt body");
        }
    }
    // A range of it, and a HEAD, beside the cached descriptor.
    let raw = "GET /big.bin HTTP/1.1\r\nHost: test\r\nRange: bytes=10-19\r\nConnection: close\r\n\r\n";
    let range = request(server.addr, raw.as_bytes());
    assert_eq!((range.status, range.text()), (206, "c".repeat(10)));
    let head = request(server.addr, b"HEAD /big.bin HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
    assert_eq!((head.status, head.header("content-length"), head.body.len()), (200, Some("204800"), 0));
    // Rewritten in place (the same inode) to a new length.
    std::fs::write(&path, vec![b'd'; LARGE + 1]).unwrap();
    assert!(all_of(&get(server.addr, "/big.bin"), b'd', LARGE + 1), "stale after a write in place");
    std::fs::remove_file(&path).unwrap();
    assert_eq!(get(server.addr, "/big.bin").status, 404);
}

/// Whether the test process holds a descriptor of `path` (the server runs in it).
fn held_open(path: &std::path::Path) -> bool {
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|fd| std::fs::read_link(fd.ok()?.path()).ok())
        .any(|target| target.as_os_str().as_encoded_bytes().starts_with(path.as_os_str().as_encoded_bytes()))
}

#[test]
fn within_the_validity_interval_a_large_file_is_sent_from_its_open_descriptor_until_a_quiet_spell() {
    let root = site();
    let server = serve(StaticFiles::new(root.path()).unwrap().revalidate_after(HOUR));
    let path = root.path().join("big.bin");
    replace(&path, b'a', LARGE);
    assert!(all_of(&get(server.addr, "/big.bin"), b'a', LARGE));
    // Replaced: the new file is not looked at within the interval; the old one,
    // gone from the directory, is still sent from the descriptor kept open.
    replace(&path, b'b', LARGE);
    assert!(all_of(&get(server.addr, "/big.bin"), b'a', LARGE), "not sent from the cached descriptor");
    assert!(held_open(&path));
    // Once the server is quiet it closes the descriptor, freeing the old file's space.
    assert!(wait_for(Duration::from_secs(5), || !held_open(&path)), "the replaced file is still held open");
    assert!(all_of(&get(server.addr, "/big.bin"), b'b', LARGE), "the new file was not opened");
}

#[test]
fn responses_sharing_a_cached_descriptor_each_get_the_whole_file() {
    let root = site();
    let server = serve(StaticFiles::new(root.path()).unwrap().revalidate_after(HOUR));
    let len = 4 << 20;
    let path = big_file(&root.path().join("big.bin"), len);
    let expected = std::fs::read(&path).unwrap();
    assert_eq!(get(server.addr, "/big.bin").body, expected);
    // Both asked before either reads: the server interleaves the two sends.
    let mut clients: Vec<_> = (0..2)
        .map(|_| {
            let mut c = Client::new(server.addr);
            c.send("GET /big.bin HTTP/1.1\r\nHost: test\r\n\r\n");
            c
        })
        .collect();
    for c in &mut clients {
        let r = c.recv();
        assert_eq!(r.status, 200);
        assert!(r.body == expected, "corrupt body from a shared descriptor");
    }
}

/// A GET of `path` from a client that accepts compressed codings, as browsers do.
fn get_compressible(addr: std::net::SocketAddr, path: &str) -> Response {
    get_with(addr, path, "Accept-Encoding: gzip, deflate, br\r\n")
}

#[test]
fn clients_that_accept_codings_are_answered_from_the_cache_when_there_is_no_sibling() {
    let root = site();
    let server = serve(StaticFiles::new(root.path()).unwrap().revalidate_after(HOUR));
    let from_file = get_compressible(server.addr, "/style.css");
    changed_behind_the_cache(&root.path().join("style.css"));
    let from_cache = get_compressible(server.addr, "/style.css");
    assert_eq!(from_cache.text(), from_file.text(), "not answered from the cache");
    assert_eq!(fields(&from_cache), fields(&from_file));
    assert_eq!(from_cache.header("vary"), None, "nothing to negotiate, yet Vary");
    assert_eq!(from_cache.header("content-encoding"), None);
}

#[test]
fn clients_that_accept_a_coding_get_its_sibling_from_the_cache() {
    let root = site();
    let (gzip, brotli) = (root.path().join("style.css.gz"), root.path().join("style.css.br"));
    std::fs::write(&gzip, b"pretend gzip").unwrap();
    std::fs::write(&brotli, b"pretend brotli").unwrap();
    let uncached = serve(StaticFiles::new(root.path()).unwrap().file_cache(false));
    let server = serve(StaticFiles::new(root.path()).unwrap().revalidate_after(HOUR));
    let (accepts_gzip, accepts_both) = ("Accept-Encoding: gzip\r\n", "Accept-Encoding: gzip, deflate, br\r\n");
    let expected: Vec<_> = [accepts_gzip, accepts_both, ""].map(|h| get_with(uncached.addr, "/style.css", h)).into();
    for (i, h) in [accepts_gzip, accepts_both, ""].into_iter().enumerate() {
        assert_eq!(get_with(server.addr, "/style.css", h).body, expected[i].body);
    }
    for file in [&gzip, &brotli, &root.path().join("style.css")] {
        changed_behind_the_cache(file);
    }
    // Each client still gets what it got before, with the same fields: from the cache.
    for (i, h) in [accepts_gzip, accepts_both, ""].into_iter().enumerate() {
        let from_cache = get_with(server.addr, "/style.css", h);
        assert_eq!(from_cache.body, expected[i].body, "not answered from the cache ({h:?})");
        assert_eq!(fields(&from_cache), fields(&expected[i]));
    }
    assert_eq!(expected[0].header("content-encoding"), Some("gzip"));
    assert_eq!(expected[1].header("content-encoding"), Some("br"));
    // A revalidation of the sibling sent is answered from its entry too.
    let etag = expected[1].header("etag").unwrap();
    let not_modified = get_with(server.addr, "/style.css", &format!("{accepts_both}If-None-Match: {etag}\r\n"));
    assert_eq!((not_modified.status, not_modified.header("etag")), (304, Some(etag)));
    assert_eq!(not_modified.header("vary"), Some("Accept-Encoding"));
}

#[test]
fn a_sibling_that_changes_appears_or_goes_is_noticed_at_once_by_default() {
    let root = site();
    let server = serve(StaticFiles::new(root.path()).unwrap());
    let brotli = root.path().join("style.css.br");
    std::fs::write(&brotli, b"pretend brotli").unwrap();
    for _ in 0..2 {
        assert_eq!(get_compressible(server.addr, "/style.css").body, b"pretend brotli");
    }
    // Rewritten in place, then replaced by a new file.
    std::fs::write(&brotli, b"rewritten brotli").unwrap();
    assert_eq!(get_compressible(server.addr, "/style.css").body, b"rewritten brotli");
    replace(&brotli, b'b', 20);
    assert_eq!(get_compressible(server.addr, "/style.css").body, vec![b'b'; 20]);
    // Gone: the next sibling the client accepts, then the file itself.
    std::fs::write(root.path().join("style.css.gz"), b"pretend gzip").unwrap();
    std::fs::remove_file(&brotli).unwrap();
    let gzip = get_compressible(server.addr, "/style.css");
    assert_eq!((gzip.header("content-encoding"), gzip.body.as_slice()), (Some("gzip"), &b"pretend gzip"[..]));
    std::fs::remove_file(root.path().join("style.css.gz")).unwrap();
    let identity = get_compressible(server.addr, "/style.css");
    assert_eq!((identity.header("content-encoding"), identity.text().as_str()), (None, "body { color: black }\n"));
}

#[test]
fn a_sibling_that_appears_or_goes_is_noticed_at_once_by_default() {
    let root = site();
    let server = serve(StaticFiles::new(root.path()).unwrap());
    let identity = get_compressible(server.addr, "/style.css");
    assert_eq!((identity.header("content-encoding"), identity.text().as_str()), (None, "body { color: black }\n"));
    // Cached now, for clients with and without codings.
    assert_eq!(get_compressible(server.addr, "/style.css").text(), identity.text());
    let sibling = root.path().join("style.css.gz");
    std::fs::write(&sibling, b"pretend gzip").unwrap();
    let gzip = get_compressible(server.addr, "/style.css");
    assert_eq!((gzip.header("content-encoding"), gzip.body.as_slice()), (Some("gzip"), &b"pretend gzip"[..]));
    assert_eq!(get_compressible(server.addr, "/style.css").header("content-encoding"), Some("gzip"));
    // Clients without codings are still answered with the file itself.
    assert_eq!(get(server.addr, "/style.css").text(), identity.text());
    std::fs::remove_file(&sibling).unwrap();
    let again = get_compressible(server.addr, "/style.css");
    assert_eq!((again.header("content-encoding"), again.text()), (None, identity.text()));
}

#[test]
fn vary_follows_the_siblings_for_every_client() {
    let root = site();
    let server = serve(StaticFiles::new(root.path()).unwrap());
    let varies = |r: &Response| r.header("vary") == Some("Accept-Encoding");
    let plain = || get(server.addr, "/style.css");
    // Cached without a sibling: no Vary for either kind of client.
    for _ in 0..2 {
        assert!(!varies(&plain()));
        assert!(!varies(&get_compressible(server.addr, "/style.css")));
    }
    // A sibling appears: clients that accept no coding (whose answers a shared
    // cache may store) get Vary within a second, without another client's help.
    let sibling = root.path().join("style.css.gz");
    std::fs::write(&sibling, b"pretend gzip").unwrap();
    assert!(wait_for(Duration::from_secs(5), || varies(&plain())), "no Vary beside a new sibling");
    let r = plain();
    assert_eq!((r.header("content-encoding"), r.text()), (None, "body { color: black }\n".into()));
    let tag = r.header("etag").unwrap().to_owned();
    let not_modified = get_with(server.addr, "/style.css", &format!("If-None-Match: {tag}\r\n"));
    assert_eq!((not_modified.status, varies(&not_modified)), (304, true), "the 304 lacks its 200's Vary");
    let gzip = get_compressible(server.addr, "/style.css");
    assert_eq!((gzip.header("content-encoding"), varies(&gzip)), (Some("gzip"), true));
    // Gone again: Vary goes within a second for plain clients, at once for the others.
    std::fs::remove_file(&sibling).unwrap();
    assert!(wait_for(Duration::from_secs(5), || !varies(&plain())), "Vary stayed without a sibling");
    std::fs::write(&sibling, b"pretend gzip").unwrap();
    assert!(wait_for(Duration::from_secs(5), || varies(&plain())));
    std::fs::remove_file(&sibling).unwrap();
    let identity = get_compressible(server.addr, "/style.css");
    assert_eq!((identity.header("content-encoding"), varies(&identity)), (None, false));
}

/// Descriptors of this process (the server runs in it) open on `path`, deleted.
fn held_open_deleted(path: &std::path::Path) -> usize {
    let deleted = format!("{} (deleted)", path.display());
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter(|target| target.to_string_lossy() == deleted)
        .count()
}

#[test]
fn a_deleted_sibling_is_not_held_open() {
    let root = site();
    std::fs::write(root.path().join("style.css.gz"), b"pretend gzip").unwrap();
    let brotli = root.path().canonicalize().unwrap().join("style.css.br");
    replace(&brotli, b'b', LARGE);
    let server = serve(StaticFiles::new(root.path()).unwrap());
    for _ in 0..2 {
        assert_eq!(get_compressible(server.addr, "/style.css").header("content-encoding"), Some("br"));
    }
    std::fs::remove_file(&brotli).unwrap();
    for _ in 0..2 {
        assert_eq!(get_compressible(server.addr, "/style.css").header("content-encoding"), Some("gzip"));
    }
    assert_eq!(held_open_deleted(&brotli), 0, "the deleted sibling's descriptor is still cached");
}

#[test]
fn vary_follows_the_siblings_within_a_validity_interval() {
    let root = site();
    let server = serve(StaticFiles::new(root.path()).unwrap().revalidate_after(Duration::from_millis(300)));
    let varies = || get(server.addr, "/style.css").header("vary") == Some("Accept-Encoding");
    assert!(!varies());
    assert!(!varies());
    let sibling = root.path().join("style.css.gz");
    std::fs::write(&sibling, b"pretend gzip").unwrap();
    assert!(wait_for(Duration::from_secs(5), varies), "no Vary beside a new sibling");
    std::fs::remove_file(&sibling).unwrap();
    assert!(wait_for(Duration::from_secs(5), || !varies()), "Vary stayed without a sibling");
}

#[test]
fn vary_is_trusted_as_long_as_the_file() {
    let root = site();
    let server = serve(StaticFiles::new(root.path()).unwrap().revalidate_after(HOUR));
    let before = get(server.addr, "/style.css");
    assert_eq!(before.header("vary"), None);
    std::fs::write(root.path().join("style.css.gz"), b"pretend gzip").unwrap();
    // Within the hour both clients get the cached answer: the file, without Vary.
    for r in [get(server.addr, "/style.css"), get_compressible(server.addr, "/style.css")] {
        assert_eq!(fields(&r), fields(&before));
        assert_eq!(r.text(), before.text());
    }
}

/// A GET of `path` with these extra header lines.
fn get_with(addr: std::net::SocketAddr, path: &str, extra: &str) -> Response {
    request(addr, format!("GET {path} HTTP/1.1\r\nHost: test\r\n{extra}Connection: close\r\n\r\n").as_bytes())
}

/// The header fields of a response other than `Date`, sorted.
fn sorted_fields(r: &Response) -> Vec<(String, String)> {
    let mut f = fields(r);
    f.sort();
    f
}

#[test]
fn single_ranges_of_a_large_file_are_sent_from_its_open_descriptor() {
    let root = site();
    let path = root.path().join("big.bin");
    replace(&path, b'a', LARGE);
    let uncached = serve(StaticFiles::new(root.path()).unwrap().file_cache(false));
    let from_file = get_with(uncached.addr, "/big.bin", "Range: bytes=10-19\r\n");
    let server = serve(StaticFiles::new(root.path()).unwrap().revalidate_after(HOUR));
    assert!(all_of(&get(server.addr, "/big.bin"), b'a', LARGE));
    let etag = from_file.header("etag").unwrap().to_string();
    replace(&path, b'b', LARGE);
    // From the descriptor kept open: the old file's bytes, with a 206's fields.
    let part = get_with(server.addr, "/big.bin", "Range: bytes=10-19\r\n");
    assert_eq!((part.status, part.text()), (206, "a".repeat(10)), "not sent from the cached descriptor");
    assert_eq!(part.header("content-range"), Some("bytes 10-19/204800"));
    assert_eq!(sorted_fields(&part), sorted_fields(&from_file));
    let suffix = get_with(server.addr, "/big.bin", &format!("Range: bytes=-5\r\nIf-Range: {etag}\r\n"));
    assert_eq!((suffix.status, suffix.header("content-range")), (206, Some("bytes 204795-204799/204800")));
    // If-Range not matching: the whole file, still from the descriptor.
    let whole = get_with(server.addr, "/big.bin", "Range: bytes=0-0\r\nIf-Range: \"other\"\r\n");
    assert!(all_of(&whole, b'a', LARGE));
    // Several ranges, or none satisfiable: answered from the file system as before.
    let multi = get_with(server.addr, "/big.bin", "Range: bytes=0-0,5-5\r\n");
    assert_eq!(multi.status, 206);
    assert!(multi.header("content-type").is_some_and(|t| t.starts_with("multipart/byteranges")));
    let beyond = get_with(server.addr, "/big.bin", "Range: bytes=999999-\r\n");
    assert_eq!((beyond.status, beyond.header("content-range")), (416, Some("bytes */204800")));
}

#[test]
fn a_rewrite_of_the_same_size_with_its_time_set_back_is_served_at_once_by_default() {
    let root = site();
    let server = serve(StaticFiles::new(root.path()).unwrap());
    let path = root.path().join("style.css");
    let before = get(server.addr, "/style.css").text();
    let modified = std::fs::metadata(&path).unwrap().modified().unwrap();
    // As `cp -p` or `touch -d` leave it: new bytes, same size, same modification time.
    let after = before.replace("black", "white");
    std::fs::write(&path, &after).unwrap();
    std::fs::File::options().write(true).open(&path).unwrap().set_modified(modified).unwrap();
    assert_eq!(std::fs::metadata(&path).unwrap().modified().unwrap(), modified);
    assert_eq!(get(server.addr, "/style.css").text(), after, "stale contents from the cache");
}

/// Points the symlink `link` at `target` in one step, as deploy tools do.
fn switch_symlink(link: &std::path::Path, target: &str) {
    let tmp = link.with_extension("tmp");
    std::os::unix::fs::symlink(target, &tmp).unwrap();
    std::fs::rename(&tmp, link).unwrap();
}

#[test]
fn a_root_path_that_comes_to_name_another_directory_is_followed() {
    let tmp = tempfile::tempdir().unwrap();
    for release in ["v1", "v2"] {
        std::fs::create_dir(tmp.path().join(release)).unwrap();
        std::fs::write(tmp.path().join(release).join("index.html"), format!("{release}\n")).unwrap();
        std::fs::write(tmp.path().join(release).join("a.txt"), format!("a of {release}\n")).unwrap();
    }
    let current = tmp.path().join("current");
    std::os::unix::fs::symlink("v1", &current).unwrap();
    // Cached files trusted for a minute: the root is looked up again all the same.
    let files = StaticFiles::new(&current).unwrap().revalidate_after(Duration::from_secs(60));
    let server = serve(files);
    for _ in 0..3 {
        assert_eq!(get(server.addr, "/").text(), "v1\n");
        assert_eq!(get(server.addr, "/a.txt").text(), "a of v1\n");
    }

    // A release switched by moving the symlink: served within a couple of seconds.
    switch_symlink(&current, "v2");
    let switched = wait_for(Duration::from_secs(5), || {
        get(server.addr, "/a.txt").text() == "a of v2\n" && get(server.addr, "/").text() == "v2\n"
    });
    assert!(switched, "still serving {:?} after the symlink moved", get(server.addr, "/").text());

    // The directory removed and made again.
    std::fs::remove_dir_all(tmp.path().join("v2")).unwrap();
    std::fs::create_dir(tmp.path().join("v2")).unwrap();
    std::fs::write(tmp.path().join("v2/index.html"), "v2 again\n").unwrap();
    let recreated = wait_for(Duration::from_secs(5), || get(server.addr, "/").text() == "v2 again\n");
    assert!(recreated, "serving {:?} after the root was made again", get(server.addr, "/"));

    // While the path names nothing, the directory already open is served.
    std::fs::remove_file(&current).unwrap();
    std::thread::sleep(Duration::from_millis(1100)); // past the lookup interval
    assert_eq!(get(server.addr, "/").text(), "v2 again\n");
}
