//! Static-file serving over real sockets: content types, directories and their
//! redirects, dotfiles, path traversal, symlinks, methods, special files, large
//! downloads (intact, interleaved, in flat memory) and fairness between clients.

mod common;

use common::*;

use std::io::{BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const MIB: u64 = 1 << 20;
/// Content of the file placed next to (outside) the served root.
const SECRET: &str = "TOP-SECRET-SIBLING-CONTENT-7f3a9c";

// ---- local helpers ------------------------------------------------------------------

/// A temporary directory `tmp` with the served root at `tmp/www` (holding the
/// common small site) and a secret at `tmp/secret.txt`, outside the root.
struct Site {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    outside: PathBuf,
    secret: PathBuf,
}

impl Site {
    fn new() -> Site {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("www");
        std::fs::create_dir(&root).unwrap();
        std::fs::write(root.join("index.html"), "<!DOCTYPE html><title>home</title>hello\n").unwrap();
        std::fs::write(root.join("style.css"), "body { color: black }\n").unwrap();
        std::fs::create_dir(root.join("sub")).unwrap();
        std::fs::write(root.join("sub/index.html"), "sub index\n").unwrap();
        std::fs::write(root.join("sub/page.txt"), "sub page\n").unwrap();
        let secret = tmp.path().join("secret.txt");
        std::fs::write(&secret, SECRET).unwrap();
        let outside = tmp.path().join("outside");
        std::fs::create_dir(&outside).unwrap();
        std::fs::write(outside.join("file.txt"), SECRET).unwrap();
        std::fs::write(outside.join("index.html"), SECRET).unwrap();
        Site { _tmp: tmp, root, outside, secret }
    }

    fn write(&self, rel: &str, content: impl AsRef<[u8]>) -> PathBuf {
        let path = self.root.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        std::fs::write(&path, content).unwrap();
        path
    }

    fn mkdir(&self, rel: &str) -> PathBuf {
        let path = self.root.join(rel);
        std::fs::create_dir_all(&path).unwrap();
        path
    }

    fn serve(&self) -> TestServer {
        TestServer::with_root(&self.root)
    }
}

/// `GET target` with the target sent byte for byte, on its own connection.
fn raw_get(addr: SocketAddr, target: &str) -> Response {
    request(addr, format!("GET {target} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n").as_bytes())
}

/// `METHOD target` on its own connection (`HEAD` reads no body).
fn method(addr: SocketAddr, method: &str, target: &str) -> Response {
    request(
        addr,
        format!("{method} {target} HTTP/1.1\r\nHost: test\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            .as_bytes(),
    )
}

/// Sends `raw` on an open keep-alive connection and reads one response.
fn exchange(conn: &mut BufReader<TcpStream>, raw: &str) -> Response {
    conn.get_mut().write_all(raw.as_bytes()).unwrap();
    read_response(conn, raw.starts_with("HEAD "))
}

fn keep_alive_get(path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: test\r\n\r\n")
}

/// Asserts that nothing of the secret leaked into `r`.
fn assert_no_secret(r: &Response, what: &str) {
    assert!(!r.text().contains(SECRET), "{what}: secret content leaked: {r:?}");
    assert!(!r.text().contains("root:x:0:0"), "{what}: /etc/passwd leaked: {r:?}");
}

/// Checks a streamed body against the content `common::big_file` writes: zeros,
/// except the big-endian offset at every MiB boundary.
struct Verifier {
    pos: u64,
    len: u64,
}

impl Verifier {
    fn new(len: u64) -> Verifier {
        Verifier { pos: 0, len }
    }

    fn feed(&mut self, mut chunk: &[u8]) {
        assert!(self.pos + chunk.len() as u64 <= self.len, "body longer than {} bytes", self.len);
        while !chunk.is_empty() {
            let in_mib = self.pos % MIB;
            let piece = chunk.len().min((MIB - in_mib) as usize);
            let (head, rest) = chunk.split_at(piece);
            let mut zeros_from = 0;
            if in_mib < 8 {
                let base = self.pos - in_mib;
                let marker = base.to_be_bytes();
                let n = ((8 - in_mib) as usize).min(head.len());
                if base + 8 <= self.len {
                    assert_eq!(
                        head[..n],
                        marker[in_mib as usize..in_mib as usize + n],
                        "marker at offset {base} corrupted (read at {})",
                        self.pos
                    );
                    zeros_from = n;
                }
            }
            if let Some(i) = head[zeros_from..].iter().position(|&b| b != 0) {
                panic!("unexpected byte {:#x} at offset {}", head[zeros_from + i], self.pos + (zeros_from + i) as u64);
            }
            self.pos += piece as u64;
            chunk = rest;
        }
    }

    fn done(&self) -> bool {
        self.pos == self.len
    }
}

/// A GET of a big file in progress on its own connection.
struct Download {
    conn: BufReader<TcpStream>,
    verifier: Verifier,
    buf: Vec<u8>,
}

impl Download {
    /// Sends the request and reads the response head.
    fn start(addr: SocketAddr, path: &str, len: u64, read_size: usize) -> Download {
        let mut s = connect(addr);
        s.write_all(format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n").as_bytes()).unwrap();
        let mut conn = BufReader::with_capacity(read_size, s);
        let head = read_response(&mut conn, true);
        assert_eq!(head.status, 200, "GET {path}: {head:?}");
        assert_eq!(head.header("content-length"), Some(len.to_string().as_str()), "GET {path}");
        assert_eq!(head.header("content-type"), Some("application/octet-stream"), "GET {path}");
        Download { conn, verifier: Verifier::new(len), buf: vec![0; read_size] }
    }

    /// Reads once (at most the read size); returns the bytes read.
    fn step(&mut self) -> usize {
        let want = (self.verifier.len - self.verifier.pos).min(self.buf.len() as u64) as usize;
        if want == 0 {
            return 0;
        }
        let n = self.conn.read(&mut self.buf[..want]).expect("reading body (timeout?)");
        assert!(n > 0, "EOF after {} of {} body bytes", self.verifier.pos, self.verifier.len);
        self.verifier.feed(&self.buf[..n]);
        n
    }

    /// Reads the rest of the body, then expects the server to close (Connection: close).
    fn finish(mut self, deadline: Instant) {
        while !self.verifier.done() {
            assert!(Instant::now() < deadline, "download too slow: {} bytes after deadline", self.verifier.pos);
            self.step();
        }
        let mut extra = Vec::new();
        let eof = self.conn.read_to_end(&mut extra);
        assert!(eof.is_ok(), "no clean EOF after the body: {eof:?}");
        assert!(extra.is_empty(), "{} bytes after the declared body", extra.len());
    }
}

/// `VmHWM` (peak resident set) of process `pid`, in KiB.
fn vm_hwm_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).expect("VmHWM in /proc/pid/status");
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

fn mkfifo(path: &Path) {
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
    // SAFETY: c is a valid NUL-terminated path.
    let rc = unsafe { libc::mkfifo(c.as_ptr(), 0o644) };
    assert_eq!(rc, 0, "mkfifo: {}", std::io::Error::last_os_error());
}

// ---- content types --------------------------------------------------------------------

#[test]
fn content_types_follow_the_extension() {
    let site = Site::new();
    let cases: &[(&str, &[u8], &str)] = &[
        ("page.html", b"<p>hi</p>", "text/html; charset=utf-8"),
        ("style.css", b"body { color: black }\n", "text/css; charset=utf-8"),
        ("notes.txt", b"plain text\n", "text/plain; charset=utf-8"),
        ("app.js", b"console.log(1);\n", "text/javascript; charset=utf-8"),
        ("logo.png", b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR", "image/png"),
        ("UPPER.PNG", b"\x89PNG\r\n\x1a\n", "image/png"),
        ("data.unknownext", b"\0\x01\x02", "application/octet-stream"),
        ("noextension", b"raw bytes", "application/octet-stream"),
        ("sub/trailing.", b"dot at end", "application/octet-stream"),
    ];
    for (name, content, _) in cases {
        site.write(name, content);
    }
    site.write("data.json", "{\"a\": 1}\n");
    site.write("icon.svg", "<svg xmlns=\"http://www.w3.org/2000/svg\"/>");
    let server = site.serve();
    for (name, content, mime) in cases {
        let r = get(server.addr, &format!("/{name}"));
        assert_eq!(r.status, 200, "/{name}");
        assert_eq!(r.header("content-type"), Some(*mime), "/{name}");
        assert_eq!(r.header("content-length"), Some(content.len().to_string().as_str()), "/{name}");
        assert_eq!(&r.body[..], *content, "/{name}");
    }

    let json = get(server.addr, "/data.json");
    assert_eq!(json.status, 200);
    let ct = json.header("content-type").unwrap();
    assert!(ct == "application/json" || ct == "application/json; charset=utf-8", "json: {ct}");
    assert_eq!(json.text(), "{\"a\": 1}\n");

    let svg = get(server.addr, "/icon.svg");
    assert_eq!(svg.status, 200);
    let ct = svg.header("content-type").unwrap();
    assert!(ct == "image/svg+xml" || ct == "image/svg+xml; charset=utf-8", "svg: {ct}");
    assert!(svg.text().starts_with("<svg"));

    // A directory's index is typed by index.html, not by the directory name.
    site.mkdir("assets.png");
    site.write("assets.png/index.html", "idx");
    let r = get(server.addr, "/assets.png/");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
}

#[test]
fn head_matches_get_without_a_body() {
    let site = Site::new();
    let server = site.serve();
    let g = get(server.addr, "/style.css");
    let mut s = connect(server.addr);
    s.write_all(b"HEAD /style.css HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n").unwrap();
    let mut conn = BufReader::new(s);
    let h = read_response(&mut conn, true);
    assert_eq!(h.status, 200);
    assert_eq!(h.header("content-type"), g.header("content-type"));
    assert_eq!(h.header("content-length"), Some(g.body.len().to_string().as_str()));
    let mut rest = Vec::new();
    conn.read_to_end(&mut rest).expect("EOF after HEAD response");
    assert!(rest.is_empty(), "HEAD response carried a body: {:?}", String::from_utf8_lossy(&rest));
}

// ---- directories and redirects ------------------------------------------------------------

#[test]
fn index_html_for_directories() {
    let site = Site::new();
    site.mkdir("empty");
    site.mkdir("a/b");
    site.write("a/b/index.html", "deep index\n");
    let server = site.serve();

    let r = get(server.addr, "/");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
    assert_eq!(r.text(), "<!DOCTYPE html><title>home</title>hello\n");

    let r = get(server.addr, "/sub/");
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "sub index\n");
    assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));

    let r = get(server.addr, "/a/b/");
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "deep index\n");

    // Query strings do not take part in the lookup.
    let r = get(server.addr, "/sub/?v=2");
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "sub index\n");

    // No index.html and listings are off: 403, never a listing.
    let r = get(server.addr, "/empty/");
    assert_eq!(r.status, 403, "{r:?}");
    let r = get(server.addr, "/a/");
    assert_eq!(r.status, 403, "{r:?}");
    assert!(!r.text().contains("b/"), "directory listing leaked: {}", r.text());
}

#[test]
fn directory_without_slash_redirects() {
    let site = Site::new();
    site.mkdir("a/b");
    site.mkdir("dir with space");
    site.write("dir with space/index.html", "spaced\n");
    site.mkdir("héllo");
    site.mkdir("q?x#y%z");
    site.mkdir("empty");
    let server = site.serve();

    let cases = [
        ("/sub", "/sub/"),
        ("/sub?x=1", "/sub/?x=1"),
        ("/sub?a=1&b=%20c", "/sub/?a=1&b=%20c"),
        ("/a/b", "/a/b/"),
        ("/a/b?", "/a/b/?"),
        ("/a", "/a/"),
        ("/empty", "/empty/"),
        ("/dir%20with%20space", "/dir%20with%20space/"),
        ("/h%C3%A9llo", "/h%C3%A9llo/"),
        ("/q%3Fx%23y%25z", "/q%3Fx%23y%25z/"),
        ("/./sub", "/sub/"),
        ("/a/./b", "/a/b/"),
        ("/a/b/../b", "/a/b/"),
    ];
    for (target, location) in cases {
        let r = raw_get(server.addr, target);
        assert_eq!(r.status, 301, "GET {target}: {r:?}");
        assert_eq!(r.header("location"), Some(location), "GET {target}");
    }

    // Following the percent-encoded redirect finds the directory's index.
    let r = raw_get(server.addr, "/dir%20with%20space/");
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "spaced\n");

    // HEAD redirects too, without a body.
    let r = method(server.addr, "HEAD", "/sub");
    assert_eq!(r.status, 301);
    assert_eq!(r.header("location"), Some("/sub/"));
}

#[test]
fn redirect_never_points_at_another_host() {
    let site = Site::new();
    let server = site.serve();
    // "//sub/" as a Location would be a scheme-relative URL for host "sub".
    for target in ["//sub", "///sub", "//sub?x=1", "/%2fsub", "/%2F%2Fsub", "/.//sub", "//./sub"] {
        let r = raw_get(server.addr, target);
        let loc = r.header("location");
        if let Some(loc) = loc {
            assert!(loc.starts_with('/') && !loc.starts_with("//"), "GET {target}: open redirect {loc:?}");
            assert!(!loc.starts_with("/\\"), "GET {target}: open redirect {loc:?}");
        }
        assert_eq!(r.status, 301, "GET {target}: {r:?}");
        assert!(loc.is_some_and(|l| l.starts_with("/sub/")), "GET {target}: {loc:?}");
    }
}

// ---- not found ----------------------------------------------------------------------------

#[test]
fn missing_files_are_404() {
    let site = Site::new();
    let server = site.serve();
    for target in [
        "/missing.txt",
        "/sub/missing.txt",
        "/nodir/file.txt",
        "/nodir/",
        "/style.css/",
        "/sub/page.txt/",
        "/index.html/x",
    ] {
        let r = raw_get(server.addr, target);
        assert_eq!(r.status, 404, "GET {target}: {r:?}");
        assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"), "GET {target}");
        assert!(r.text().contains("404"), "GET {target}: {}", r.text());
    }
    // The file itself is still there.
    assert_eq!(get(server.addr, "/style.css").status, 200);
}

// ---- dotfiles -----------------------------------------------------------------------------

#[test]
fn dotfiles_are_forbidden() {
    let site = Site::new();
    site.write(".hidden", SECRET);
    site.write(".git/config", SECRET);
    site.write(".git/index.html", SECRET);
    site.write("sub/.env", SECRET);
    site.write("sub/.cache/data.txt", SECRET);
    site.write(".well/index.html", SECRET);
    let server = site.serve();
    for target in [
        "/.hidden",
        "/.git/config",
        "/.git/",
        "/.git",
        "/sub/.env",
        "/sub/.cache/data.txt",
        "/sub/.cache/",
        "/.well/",
        "/%2ehidden",
        "/%2Egit%2Fconfig",
        "/sub/%2eenv",
        "/sub/./.env",
        "/.hidden?x=1",
    ] {
        let r = raw_get(server.addr, target);
        assert_eq!(r.status, 403, "GET {target}: {r:?}");
        assert_no_secret(&r, target);
    }
    // Missing dotfiles are no different from present ones.
    let r = raw_get(server.addr, "/.nothing-here");
    assert_eq!(r.status, 403, "{r:?}");
}

#[test]
fn the_well_known_directory_is_served_at_the_top_only() {
    let site = Site::new();
    site.write(".well-known/acme-challenge/token1", "token1.thumbprint");
    site.write(".well-known/security.txt", "Contact: mailto:security@example.com\n");
    site.write(".well-known/.secret", SECRET);
    site.write("sub/.well-known/thing", SECRET);
    let server = site.serve();
    let r = get(server.addr, "/.well-known/acme-challenge/token1");
    assert_eq!((r.status, r.text().as_str()), (200, "token1.thumbprint"), "{r:?}");
    let r = get(server.addr, "/%2ewell-known/security.txt");
    assert_eq!(r.status, 200, "{r:?}");
    assert!(r.text().starts_with("Contact:"), "{r:?}");
    for target in ["/.well-known/.secret", "/sub/.well-known/thing", "/.well-known/../.hidden", "/.well-knownx/a"] {
        let r = raw_get(server.addr, target);
        assert_eq!(r.status, 403, "GET {target}: {r:?}");
        assert_no_secret(&r, target);
    }
}

// ---- path traversal -----------------------------------------------------------------------

#[test]
fn path_traversal_is_refused() {
    let site = Site::new();
    let server = site.serve();
    let targets = [
        "/../",
        "/..",
        "/../secret.txt",
        "/../../etc/passwd",
        "/sub/../../etc/passwd",
        "/sub/../../secret.txt",
        "/%2e%2e/%2e%2e/etc/passwd",
        "/%2e%2e/secret.txt",
        "/%2E%2E%2Fetc%2Fpasswd",
        "/%2E%2E%2Fsecret.txt",
        "/..%2f..%2fetc%2fpasswd",
        "/..%2fsecret.txt",
        "/sub/..%2f..%2fsecret.txt",
        "/sub/..%5c..%5cetc%5cpasswd",
        "/sub/..%5c..%5csecret.txt",
        "/index.html%00.txt",
        "/secret.txt%00",
        "/%00",
        "/sub/%2e%2e/%2e%2e/secret.txt",
        "/./../secret.txt",
        "/sub/./../../secret.txt",
        "/outside/../../secret.txt",
    ];
    for target in targets {
        let r = raw_get(server.addr, target);
        assert_eq!(r.status, 403, "GET {target}: {r:?}");
        assert_no_secret(&r, target);
    }
    // A literal backslash may be refused by the parser (400) or the resolver (403).
    let r = raw_get(server.addr, "/..\\secret.txt");
    assert!(r.status == 400 || r.status == 403, "GET /..\\secret.txt: {r:?}");
    assert_no_secret(&r, "/..\\secret.txt");
    // The secret really is next to the root, so the refusals above mean something.
    assert_eq!(std::fs::read_to_string(&site.secret).unwrap(), SECRET);
    assert_eq!(site.root.parent().unwrap().join("secret.txt"), site.secret);

    // `..` that stays inside the root is fine.
    let r = raw_get(server.addr, "/sub/../index.html");
    assert_eq!(r.status, 200, "{r:?}");
    assert!(r.text().contains("hello"));
    let r = raw_get(server.addr, "/sub/%2e%2e/style.css");
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.text(), "body { color: black }\n");
}

#[test]
fn traversal_in_absolute_form_targets_is_refused() {
    let site = Site::new();
    let server = site.serve();
    for target in ["http://test/../secret.txt", "http://test/%2e%2e/secret.txt", "http://test/sub/../../secret.txt"] {
        let r = raw_get(server.addr, target);
        assert_eq!(r.status, 403, "GET {target}: {r:?}");
        assert_no_secret(&r, target);
    }
    let r = raw_get(server.addr, "http://test/sub/page.txt");
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.text(), "sub page\n");
}

// ---- symlinks -----------------------------------------------------------------------------

#[test]
fn symlinks_inside_the_root_are_followed() {
    let site = Site::new();
    symlink("index.html", site.root.join("link.html")).unwrap();
    symlink("../index.html", site.root.join("sub/up.html")).unwrap();
    symlink("sub", site.root.join("alias")).unwrap();
    let server = site.serve();

    let r = get(server.addr, "/link.html");
    assert_eq!(r.status, 200, "{r:?}");
    assert!(r.text().contains("hello"));
    assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));

    let r = get(server.addr, "/sub/up.html");
    assert_eq!(r.status, 200, "{r:?}");
    assert!(r.text().contains("hello"));

    let r = get(server.addr, "/alias/page.txt");
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.text(), "sub page\n");
    let r = get(server.addr, "/alias/");
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.text(), "sub index\n");
}

#[test]
fn symlinks_leading_out_of_the_root_are_forbidden() {
    let site = Site::new();
    symlink(&site.secret, site.root.join("abs.txt")).unwrap();
    symlink("../secret.txt", site.root.join("rel.txt")).unwrap();
    symlink("../../secret.txt", site.root.join("sub/rel2.txt")).unwrap();
    symlink("/etc/passwd", site.root.join("passwd")).unwrap();
    symlink(&site.outside, site.root.join("outdir")).unwrap();
    symlink("../outside", site.root.join("reldir")).unwrap();
    // A chain: an inside link pointing to a link that leads out.
    symlink("rel.txt", site.root.join("chain.txt")).unwrap();
    let server = site.serve();

    for target in [
        "/abs.txt",
        "/rel.txt",
        "/sub/rel2.txt",
        "/passwd",
        "/chain.txt",
        "/outdir/file.txt",
        "/outdir/index.html",
        "/outdir/",
        "/reldir/file.txt",
        "/reldir/",
    ] {
        let r = get(server.addr, target);
        assert_eq!(r.status, 403, "GET {target}: {r:?}");
        assert_no_secret(&r, target);
    }
    // Not even a redirect that would confirm the outside directory.
    for target in ["/outdir", "/reldir"] {
        let r = get(server.addr, target);
        assert_ne!(r.status, 200, "GET {target}: {r:?}");
        assert_no_secret(&r, target);
    }
}

// ---- methods ------------------------------------------------------------------------------

#[test]
fn other_methods_are_refused() {
    let site = Site::new();
    let server = site.serve();
    for m in ["POST", "PUT", "DELETE", "OPTIONS", "PATCH"] {
        for target in ["/index.html", "/sub/page.txt", "/"] {
            let r = method(server.addr, m, target);
            assert_eq!(r.status, 405, "{m} {target}: {r:?}");
            assert_eq!(r.header("allow"), Some("GET, HEAD"), "{m} {target}");
        }
    }
    for m in ["BREW", "FOO", "get"] {
        let r = method(server.addr, m, "/index.html");
        assert_eq!(r.status, 501, "{m}: {r:?}");
    }
    // A PUT did not change anything.
    let r = get(server.addr, "/index.html");
    assert_eq!(r.status, 200);
    assert!(r.text().contains("hello"));
}

#[test]
fn refused_method_keeps_the_connection_usable() {
    let site = Site::new();
    let server = site.serve();
    let mut conn = BufReader::new(connect(server.addr));
    let r = exchange(&mut conn, "POST /index.html HTTP/1.1\r\nHost: test\r\nContent-Length: 5\r\n\r\nhello");
    assert_eq!(r.status, 405);
    assert_eq!(r.header("allow"), Some("GET, HEAD"));
    let r = exchange(&mut conn, &keep_alive_get("/sub/page.txt"));
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "sub page\n");
}

// ---- special files ------------------------------------------------------------------------

#[test]
fn a_file_cut_short_under_several_downloads_ends_them_with_one_warning() {
    let site = Site::new();
    let big = big_file(&site.root.join("big.bin"), 16 * MIB);
    let p = Spawned::start(&["--listen", "127.0.0.1:0", site.root.to_str().unwrap()], 1);
    let mut downloads: Vec<TcpStream> = (0..4)
        .map(|_| {
            let mut c = connect(p.addr());
            c.write_all(b"GET /big.bin HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
            let mut first = [0u8; 4096];
            let n = c.read(&mut first).unwrap();
            assert!(first[..n].starts_with(b"HTTP/1.1 200 "), "{:?}", String::from_utf8_lossy(&first[..n]));
            c
        })
        .collect();
    std::fs::OpenOptions::new().write(true).open(&big).unwrap().set_len(MIB).unwrap();
    for (i, c) in downloads.iter_mut().enumerate() {
        let (rest, end) = read_until_end(c);
        assert!(rest.len() < 16 * MIB as usize, "download {i} went on past the cut ({} bytes)", rest.len());
        assert_ne!(end, End::TimedOut, "download {i} left hanging");
    }
    let told = wait_for(Duration::from_secs(2), || p.stderr().contains("file shrank"));
    assert!(told, "nothing logged:\n{}", p.stderr());
    let lines: Vec<_> = p.stderr().lines().filter(|l| l.contains("file shrank")).map(String::from).collect();
    assert!(lines.len() <= 2, "{} lines for four downloads cut at once:\n{lines:#?}", lines.len());
    assert!(lines.iter().all(|l| l.contains(" WARN ")), "{lines:#?}");
    assert_eq!(get(p.addr(), "/index.html").status, 200);
}

#[test]
fn a_file_the_server_may_not_read_is_403_and_the_operator_is_told() {
    use std::os::unix::process::CommandExt;
    let tmp = tempfile::tempdir().unwrap();
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(tmp.path().join("index.html"), "home\n").unwrap();
    let secret = tmp.path().join("noread.txt");
    std::fs::write(&secret, "private\n").unwrap();
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o000)).unwrap();
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_spindle"));
    cmd.args(["--listen", "127.0.0.1:0", tmp.path().to_str().unwrap()]);
    // Root reads anything: the server runs as nobody then, as a deployment would.
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        cmd.uid(65534).gid(65534);
    }
    let p = Spawned::start_with(&mut cmd, 1);
    assert_eq!(get(p.addr(), "/index.html").status, 200);
    for _ in 0..3 {
        assert_eq!(get(p.addr(), "/noread.txt").status, 403);
    }
    let told = wait_for(Duration::from_secs(2), || p.stderr().contains("permission denied"));
    assert!(told, "nothing logged:\n{}", p.stderr());
    let lines = p.stderr().lines().filter(|l| l.contains("permission denied")).count();
    assert!(lines <= 2, "{lines} lines for three requests within a second or so:\n{}", p.stderr());
    assert!(p.stderr().contains("noread.txt"));
}

#[test]
fn fifo_is_forbidden_without_blocking() {
    let site = Site::new();
    mkfifo(&site.root.join("pipe"));
    mkfifo(&site.root.join("sub/pipe.txt"));
    let server = site.serve();
    for target in ["/pipe", "/sub/pipe.txt"] {
        let started = Instant::now();
        let r = get(server.addr, target);
        let took = started.elapsed();
        assert_eq!(r.status, 403, "GET {target}: {r:?}");
        assert!(took < Duration::from_secs(2), "GET {target} took {took:?}");
        let r = method(server.addr, "HEAD", target);
        assert_eq!(r.status, 403, "HEAD {target}: {r:?}");
    }
    // A FIFO named index.html does not make a directory servable either.
    site.mkdir("fifodir");
    mkfifo(&site.root.join("fifodir/index.html"));
    let r = get(server.addr, "/fifodir/");
    assert_eq!(r.status, 403, "{r:?}");
    // The server is still serving.
    let r = get(server.addr, "/index.html");
    assert_eq!(r.status, 200);
    assert!(r.text().contains("hello"));
}

#[test]
fn unix_socket_is_forbidden() {
    let site = Site::new();
    let _listener = std::os::unix::net::UnixListener::bind(site.root.join("sock")).unwrap();
    let server = site.serve();
    let r = get(server.addr, "/sock");
    assert_eq!(r.status, 403, "{r:?}");
    assert_eq!(get(server.addr, "/style.css").status, 200);
}

#[test]
fn unreadable_files_are_forbidden() {
    let site = Site::new();
    let file = site.write("locked.txt", SECRET);
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o000)).unwrap();
    let dir = site.mkdir("lockeddir");
    site.write("lockeddir/file.txt", SECRET);
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o000)).unwrap();
    let server = site.serve();
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    for target in ["/locked.txt", "/lockeddir/file.txt"] {
        let r = get(server.addr, target);
        if root {
            eprintln!("running as root: not asserting 403 for {target} (got {})", r.status);
            assert!(r.status == 200 || r.status == 403, "GET {target}: {r:?}");
        } else {
            assert_eq!(r.status, 403, "GET {target}: {r:?}");
            assert_no_secret(&r, target);
        }
    }
    assert_eq!(get(server.addr, "/style.css").status, 200);
    // Let the temp dir be removed.
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
}

// ---- names ------------------------------------------------------------------------------

#[test]
fn utf8_and_percent_encoded_names() {
    let site = Site::new();
    site.write("héllo wörld.txt", "unicode content\n");
    site.write("a+b&c=d.txt", "punctuation\n");
    site.write("100%.txt", "percent\n");
    site.write("日本/語.txt", "cjk\n");
    let server = site.serve();
    let cases = [
        ("/h%C3%A9llo%20w%C3%B6rld.txt", "unicode content\n"),
        ("/h%c3%a9llo%20w%c3%b6rld.txt", "unicode content\n"),
        ("/a+b&c=d.txt", "punctuation\n"),
        ("/a%2Bb%26c%3Dd.txt", "punctuation\n"),
        ("/100%25.txt", "percent\n"),
        ("/%E6%97%A5%E6%9C%AC/%E8%AA%9E.txt", "cjk\n"),
    ];
    for (target, body) in cases {
        let r = raw_get(server.addr, target);
        assert_eq!(r.status, 200, "GET {target}: {r:?}");
        assert_eq!(r.text(), body, "GET {target}");
        assert_eq!(r.header("content-type"), Some("text/plain; charset=utf-8"), "GET {target}");
    }
    // Decoding happens once: %2520 is a literal "%20", which does not exist.
    let r = raw_get(server.addr, "/h%C3%A9llo%2520w%C3%B6rld.txt");
    assert_eq!(r.status, 404, "{r:?}");
    // A malformed escape is a bad request, not a lookup.
    let r = raw_get(server.addr, "/100%.txt");
    assert_eq!(r.status, 400, "{r:?}");
}

// ---- sizes --------------------------------------------------------------------------------

#[test]
fn zero_length_file_keeps_the_connection_alive() {
    let site = Site::new();
    site.write("empty.txt", "");
    let server = site.serve();
    let mut conn = BufReader::new(connect(server.addr));
    let r = exchange(&mut conn, &keep_alive_get("/empty.txt"));
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-length"), Some("0"));
    assert_eq!(r.header("content-type"), Some("text/plain; charset=utf-8"));
    assert!(r.body.is_empty());
    let r = exchange(&mut conn, &keep_alive_get("/empty.txt"));
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-length"), Some("0"));
    let r = exchange(&mut conn, &keep_alive_get("/sub/page.txt"));
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "sub page\n");
    let r = exchange(&mut conn, "HEAD /empty.txt HTTP/1.1\r\nHost: test\r\n\r\n");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-length"), Some("0"));
    let r = exchange(&mut conn, &keep_alive_get("/style.css"));
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "body { color: black }\n");
}

#[test]
fn file_size_not_a_multiple_of_the_buffer() {
    let site = Site::new();
    // Just over the 32 KiB write buffer (minus a head), with a non-zero pattern.
    let content: Vec<u8> = (0..100_003u32).map(|i| (i * 7 + i / 251) as u8).collect();
    site.write("odd.bin", &content);
    let server = site.serve();
    let r = get(server.addr, "/odd.bin");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-length"), Some("100003"));
    assert!(r.body == content, "body differs from the file");
}

#[test]
fn large_file_is_streamed_intact() {
    let site = Site::new();
    let len = 64 * MIB;
    big_file(&site.root.join("big.bin"), len);
    // The expected content really is the file's content.
    let mut on_disk = Verifier::new(len);
    let mut f = std::fs::File::open(site.root.join("big.bin")).unwrap();
    let mut buf = vec![0; 1 << 20];
    loop {
        let n = f.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        on_disk.feed(&buf[..n]);
    }
    assert!(on_disk.done());

    let server = site.serve();
    let deadline = Instant::now() + Duration::from_secs(30);
    Download::start(server.addr, "/big.bin", len, 64 * 1024).finish(deadline);
}

#[test]
fn verifier_detects_corruption() {
    let len = 3 * MIB + 5;
    let mut good = vec![0u8; len as usize];
    for k in 0..3u64 {
        let off = (k * MIB) as usize;
        good[off..off + 8].copy_from_slice(&(k * MIB).to_be_bytes());
    }
    let mut v = Verifier::new(len);
    for piece in good.chunks(4093) {
        v.feed(piece);
    }
    assert!(v.done());
    for bad_at in [MIB as usize + 3, MIB as usize + 100, len as usize - 1] {
        let mut bad = good.clone();
        bad[bad_at] ^= 0x40;
        let caught = std::panic::catch_unwind(|| {
            let mut v = Verifier::new(len);
            for piece in bad.chunks(65536) {
                v.feed(piece);
            }
        });
        assert!(caught.is_err(), "corruption at {bad_at} not detected");
    }
}

#[test]
fn head_on_a_large_file_has_length_and_no_body() {
    let site = Site::new();
    let len = 64 * MIB;
    big_file(&site.root.join("big.bin"), len);
    let server = site.serve();
    let mut s = connect(server.addr);
    s.write_all(b"HEAD /big.bin HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n").unwrap();
    let mut conn = BufReader::new(s);
    let r = read_response(&mut conn, true);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-length"), Some(len.to_string().as_str()));
    let mut rest = Vec::new();
    conn.read_to_end(&mut rest).expect("EOF after HEAD");
    assert!(rest.is_empty(), "HEAD sent {} body bytes", rest.len());

    // On a keep-alive connection the next response follows directly.
    let mut conn = BufReader::new(connect(server.addr));
    let r = exchange(&mut conn, "HEAD /big.bin HTTP/1.1\r\nHost: test\r\n\r\n");
    assert_eq!(r.header("content-length"), Some(len.to_string().as_str()));
    let r = exchange(&mut conn, &keep_alive_get("/sub/page.txt"));
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "sub page\n");
}

#[test]
fn interleaved_large_downloads_both_complete() {
    let site = Site::new();
    let len = 64 * MIB;
    big_file(&site.root.join("a.bin"), len);
    big_file(&site.root.join("b.bin"), len + 12345);
    let server = site.serve();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut a = Download::start(server.addr, "/a.bin", len, 256 * 1024);
    let mut b = Download::start(server.addr, "/b.bin", len + 12345, 256 * 1024);
    while !a.verifier.done() || !b.verifier.done() {
        assert!(Instant::now() < deadline, "interleaved downloads too slow: a {} b {}", a.verifier.pos, b.verifier.pos);
        a.step();
        b.step();
    }
    a.finish(deadline);
    b.finish(deadline);
}

#[test]
fn memory_stays_flat_for_a_big_download() {
    let site = Site::new();
    let len = 1024 * MIB;
    big_file(&site.root.join("huge.bin"), len);
    let p = Spawned::start(&["--listen", "127.0.0.1:0", site.root.to_str().unwrap()], 1);
    let before = vm_hwm_kib(p.child.id());
    let started = Instant::now();
    let deadline = started + Duration::from_secs(60);
    Download::start(p.addr(), "/huge.bin", len, 256 * 1024).finish(deadline);
    let hwm = vm_hwm_kib(p.child.id());
    eprintln!("1 GiB download in {:?}; server VmHWM {before} KiB before, {hwm} KiB after", started.elapsed());
    assert!(hwm < 32 * 1024, "server peak RSS {hwm} KiB >= 32 MiB after a 1 GiB download");
}

// ---- fairness -------------------------------------------------------------------------------

#[test]
fn slow_download_does_not_starve_other_clients() {
    let site = Site::new();
    let len = 256 * MIB;
    big_file(&site.root.join("big.bin"), len);
    let server = site.serve();
    let mut slow = Download::start(server.addr, "/big.bin", len, 64 * 1024);
    slow.step();
    let mut conn = BufReader::new(connect(server.addr));
    let started = Instant::now();
    for i in 0..20 {
        let r = exchange(&mut conn, &keep_alive_get("/sub/page.txt"));
        assert_eq!(r.status, 200, "request {i}");
        assert_eq!(r.text(), "sub page\n", "request {i}");
        if i % 5 == 4 {
            // The slow client reads a little, then dawdles.
            slow.step();
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    let took = started.elapsed();
    assert!(took < Duration::from_secs(5), "20 small GETs took {took:?} beside a slow download");
    // The slow download is still open and still intact (it was verified as it went).
    assert!(slow.verifier.pos < len, "the slow download finished early");
    let n = slow.step();
    assert!(n > 0);
}
