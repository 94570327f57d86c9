//! Directory listings, error pages and the SPA fallback over real sockets:
//! listings off by default, ordering and the sort options, sizes, times and the
//! parent link, hostile names escaped in text and encoded in links (every link
//! followed), UTF-8 names, hidden dotfiles, JSON listings, listings under a mount,
//! a 10,000-entry directory, configured / `404.html` / built-in error pages, the
//! SPA fallback, and the binary's `--listing`, `--error-page` and `--spa` flags.

mod common;

use common::*;

use std::ffi::OsStr;
use std::io::{BufReader, Write};
use std::net::SocketAddr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, UNIX_EPOCH};

use spindle::{Config, Router, StaticFiles, Status};

/// Content of a file placed next to (outside) the served root.
const SECRET: &str = "TOP-SECRET-SIBLING-CONTENT-b41d07";

// ---- a served tree ------------------------------------------------------------------

/// A temporary directory `tmp` with the served root at `tmp/www` and room for
/// files outside it (error pages, a secret).
struct Tree {
    tmp: tempfile::TempDir,
    root: PathBuf,
}

impl Tree {
    fn new() -> Tree {
        Tree::in_dir(tempfile::tempdir().unwrap())
    }

    /// A tree on tmpfs where there is one (creating 10,000 files on a disk file
    /// system can take seconds), else in the usual temporary directory.
    fn on_tmpfs() -> Tree {
        let shm = Path::new("/dev/shm");
        let tmp = if shm.is_dir() { tempfile::tempdir_in(shm).ok() } else { None };
        Tree::in_dir(tmp.unwrap_or_else(|| tempfile::tempdir().unwrap()))
    }

    fn in_dir(tmp: tempfile::TempDir) -> Tree {
        let root = tmp.path().join("www");
        std::fs::create_dir(&root).unwrap();
        std::fs::write(tmp.path().join("secret.txt"), SECRET).unwrap();
        Tree { tmp, root }
    }

    /// Writes `content` at `rel` below the root, creating parent directories.
    fn write(&self, rel: &str, content: impl AsRef<[u8]>) -> PathBuf {
        let path = self.root.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        std::fs::write(&path, content).unwrap();
        path
    }

    /// Writes `content` in directory `dir` (below the root) under the raw name `name`.
    fn write_raw(&self, dir: &str, name: &[u8], content: impl AsRef<[u8]>) -> PathBuf {
        let dir = self.mkdir(dir);
        let path = dir.join(OsStr::from_bytes(name));
        std::fs::write(&path, content).unwrap();
        path
    }

    fn mkdir(&self, rel: &str) -> PathBuf {
        let path = self.root.join(rel);
        std::fs::create_dir_all(&path).unwrap();
        path
    }

    /// Writes `content` at `name` beside the root (not served).
    fn outside(&self, name: &str, content: impl AsRef<[u8]>) -> PathBuf {
        let path = self.tmp.path().join(name);
        std::fs::write(&path, content).unwrap();
        path
    }

    fn files(&self) -> StaticFiles {
        StaticFiles::new(&self.root).expect("root")
    }
}

/// Serves `files` as the router's fallback.
fn serve(files: StaticFiles) -> TestServer {
    TestServer::with_router(Router::new().fallback(files), Config::default())
}

/// Sets the modification time of the file or directory at `path` to `secs` after the epoch.
fn set_mtime(path: &Path, secs: u64) {
    let f = std::fs::File::open(path).unwrap();
    f.set_modified(UNIX_EPOCH + Duration::from_secs(secs)).unwrap();
}

// ---- requests ---------------------------------------------------------------------------

/// `GET target` (sent byte for byte) with extra header lines (each ending in CRLF).
fn get_with(addr: SocketAddr, target: &str, headers: &str) -> Response {
    request(addr, format!("GET {target} HTTP/1.1\r\nHost: test\r\n{headers}Connection: close\r\n\r\n").as_bytes())
}

fn head(addr: SocketAddr, target: &str) -> Response {
    request(addr, format!("HEAD {target} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n").as_bytes())
}

fn assert_html(r: &Response, what: &str) {
    let ct = r.header("content-type").unwrap_or_default().to_ascii_lowercase();
    assert!(ct.starts_with("text/html"), "{what}: Content-Type {ct:?}");
}

fn assert_json(r: &Response, what: &str) {
    let ct = r.header("content-type").unwrap_or_default().to_ascii_lowercase();
    assert!(ct.starts_with("application/json"), "{what}: Content-Type {ct:?}");
}

/// Runs the binary with `args` to its exit (bounded); its exit code and stderr.
fn run_to_exit(args: &[&str]) -> (Option<i32>, String) {
    let child = Command::new(env!("CARGO_BIN_EXE_spindle"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn spindle");
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(IO_TIMEOUT) {
        Ok(out) => {
            let out = out.expect("waiting for spindle");
            (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
        }
        Err(_) => {
            // SAFETY: kill(2) on our own child's pid, which has not been reaped.
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
            panic!("spindle {args:?} did not exit");
        }
    }
}

// ---- HTML: anchors, link resolution ---------------------------------------------------

/// Decodes the character references an HTML serializer may produce.
fn html_unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        rest = &rest[i..];
        let Some(end) = rest.find(';').filter(|&e| e <= 12) else {
            out.push('&');
            rest = &rest[1..];
            continue;
        };
        let entity = &rest[1..end];
        let c = match entity {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            e if e.starts_with("#x") || e.starts_with("#X") => {
                u32::from_str_radix(&e[2..], 16).ok().and_then(char::from_u32)
            }
            e if e.starts_with('#') => e[1..].parse::<u32>().ok().and_then(char::from_u32),
            _ => None,
        };
        match c {
            Some(c) => {
                out.push(c);
                rest = &rest[end + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// An `<a href>` of a page, its attribute value and text unescaped, with the
/// table row (`<tr>…</tr>`) it sits in, raw.
#[derive(Debug, Clone)]
struct Anchor {
    href: String,
    text: String,
    row: String,
}

fn anchors(page: &str) -> Vec<Anchor> {
    let mut out = Vec::new();
    let mut pos = 0;
    while let Some(i) = page[pos..].find("<a ") {
        let start = pos + i;
        let tag_end = start + page[start..].find('>').expect("unterminated <a> tag");
        let tag = &page[start..tag_end];
        let href_at = tag.find("href=").expect("<a> without href");
        let quoted = &tag[href_at + 5..];
        let quote = quoted.chars().next().unwrap();
        assert!(quote == '"' || quote == '\'', "unquoted href in {tag:?}");
        let value_end = quoted[1..].find(quote).expect("unterminated href");
        let href = html_unescape(&quoted[1..1 + value_end]);
        let text_end = tag_end + page[tag_end..].find("</a>").expect("unterminated <a>");
        let text = html_unescape(&page[tag_end + 1..text_end]);
        let row_start = page[..start].rfind("<tr").unwrap_or(start);
        let row_end = page[text_end..].find("</tr>").map_or(page.len(), |e| text_end + e);
        out.push(Anchor { href, text, row: page[row_start..row_end].to_string() });
        pos = text_end;
    }
    out
}

/// RFC 3986 §5.2.4 for an absolute path.
fn remove_dot_segments(path: &str) -> String {
    let segments: Vec<&str> = path.split('/').skip(1).collect();
    let last = segments.len().saturating_sub(1);
    let mut out: Vec<&str> = Vec::new();
    for (i, s) in segments.iter().enumerate() {
        match *s {
            "." => {}
            ".." => {
                out.pop();
            }
            s => out.push(s),
        }
        if i == last && (*s == "." || *s == "..") {
            out.push("");
        }
    }
    format!("/{}", out.join("/"))
}

/// The request target `href` leads to from the page at `base` (an absolute path),
/// as a browser resolves it (RFC 3986 §5.2). Refuses anything with a scheme or
/// an authority: a listing links within the server.
fn resolve(base: &str, href: &str) -> String {
    let first_delim = href.find(['/', '?', '#']).unwrap_or(href.len());
    assert!(!href[..first_delim].contains(':'), "link {href:?} has a scheme");
    assert!(!href.starts_with("//"), "link {href:?} has an authority");
    let href = href.split('#').next().unwrap();
    let (path, query) = match href.find('?') {
        Some(q) => (&href[..q], &href[q..]),
        None => (href, ""),
    };
    let merged = if path.starts_with('/') {
        path.to_string()
    } else if path.is_empty() {
        base.to_string()
    } else {
        let dir = &base[..=base.rfind('/').unwrap()];
        format!("{dir}{path}")
    };
    format!("{}{query}", remove_dot_segments(&merged))
}

fn pct_decode(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = b.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok());
            let hex = hex.and_then(|h| u8::from_str_radix(h, 16).ok());
            out.push(hex.unwrap_or_else(|| panic!("bad escape in {s:?}")));
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    out
}

/// One entry of an HTML listing, found through its link.
#[derive(Debug, Clone)]
struct Listed {
    /// The href as written (unescaped from HTML).
    href: String,
    /// The absolute request target it resolves to.
    target: String,
    /// The raw name bytes the link leads to (percent-decoded), `/`-terminated for directories.
    name_bytes: Vec<u8>,
    /// The link's text.
    text: String,
    /// The raw HTML of the entry's row.
    row: String,
}

impl Listed {
    fn name(&self) -> String {
        String::from_utf8_lossy(&self.name_bytes).into_owned()
    }
}

/// GETs the listing at `dir` (an absolute path ending in `/`, perhaps with a query): asserts 200 HTML,
/// returns the page and its entries in order (links to the directory's children;
/// sort links, the parent link and the like are not entries).
fn listing(addr: SocketAddr, dir: &str) -> (Response, Vec<Listed>) {
    let r = get_with(addr, dir, "");
    assert_eq!(r.status, 200, "GET {dir}: {r:?}");
    assert_html(&r, dir);
    let entries = entries(&r.text(), dir.split('?').next().unwrap());
    (r, entries)
}

fn entries(page: &str, dir: &str) -> Vec<Listed> {
    let mut out = Vec::new();
    for a in anchors(page) {
        if a.href.starts_with('?') || a.href.starts_with('#') {
            continue;
        }
        let target = resolve(dir, &a.href);
        if target.len() <= dir.len() || !target.starts_with(dir) {
            continue;
        }
        let rel = &target[dir.len()..];
        assert!(!rel.contains('?'), "entry link {:?} carries a query", a.href);
        let name_bytes = pct_decode(rel);
        let slashes = name_bytes.iter().filter(|&&b| b == b'/').count();
        assert!(slashes == 0 || (slashes == 1 && name_bytes.ends_with(b"/")), "link {:?} skips a level", a.href);
        out.push(Listed { href: a.href, target, name_bytes, text: a.text, row: a.row });
    }
    out
}

fn names(entries: &[Listed]) -> Vec<String> {
    entries.iter().map(Listed::name).collect()
}

// ---- JSON: a small parser -------------------------------------------------------------

#[derive(Debug)]
enum Json {
    Null,
    Bool(bool),
    Num(String),
    Str(String),
    Arr(Vec<Json>),
    Obj(Vec<(String, Json)>),
}

/// Parses a complete JSON text (panics, with the position, on anything invalid).
fn parse_json(text: &str) -> Json {
    let mut p = JsonParser { s: text.as_bytes(), i: 0 };
    let v = p.value();
    p.ws();
    assert_eq!(p.i, p.s.len(), "trailing data after the JSON value");
    v
}

struct JsonParser<'a> {
    s: &'a [u8],
    i: usize,
}

impl JsonParser<'_> {
    fn ws(&mut self) {
        while matches!(self.s.get(self.i), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.i += 1;
        }
    }

    fn peek(&self) -> u8 {
        *self.s.get(self.i).unwrap_or_else(|| panic!("JSON ends early at {}", self.i))
    }

    fn expect(&mut self, lit: &str) {
        assert!(self.s[self.i..].starts_with(lit.as_bytes()), "expected {lit:?} at {} in JSON", self.i);
        self.i += lit.len();
    }

    fn value(&mut self) -> Json {
        self.ws();
        match self.peek() {
            b'{' => {
                self.i += 1;
                let mut fields = Vec::new();
                self.ws();
                if self.peek() == b'}' {
                    self.i += 1;
                    return Json::Obj(fields);
                }
                loop {
                    self.ws();
                    let key = self.string();
                    self.ws();
                    self.expect(":");
                    fields.push((key, self.value()));
                    self.ws();
                    match self.peek() {
                        b',' => self.i += 1,
                        b'}' => {
                            self.i += 1;
                            return Json::Obj(fields);
                        }
                        c => panic!("unexpected {:?} at {} in JSON object", c as char, self.i),
                    }
                }
            }
            b'[' => {
                self.i += 1;
                let mut items = Vec::new();
                self.ws();
                if self.peek() == b']' {
                    self.i += 1;
                    return Json::Arr(items);
                }
                loop {
                    items.push(self.value());
                    self.ws();
                    match self.peek() {
                        b',' => self.i += 1,
                        b']' => {
                            self.i += 1;
                            return Json::Arr(items);
                        }
                        c => panic!("unexpected {:?} at {} in JSON array", c as char, self.i),
                    }
                }
            }
            b'"' => Json::Str(self.string()),
            b't' => {
                self.expect("true");
                Json::Bool(true)
            }
            b'f' => {
                self.expect("false");
                Json::Bool(false)
            }
            b'n' => {
                self.expect("null");
                Json::Null
            }
            _ => {
                let start = self.i;
                while matches!(self.s.get(self.i), Some(b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9')) {
                    self.i += 1;
                }
                assert!(self.i > start, "unexpected byte {:?} at {} in JSON", self.peek() as char, self.i);
                Json::Num(String::from_utf8(self.s[start..self.i].to_vec()).unwrap())
            }
        }
    }

    fn string(&mut self) -> String {
        self.expect("\"");
        let mut out = String::new();
        loop {
            let start = self.i;
            while !matches!(self.peek(), b'"' | b'\\') {
                assert!(self.peek() >= 0x20, "raw control byte {:#x} in a JSON string at {}", self.peek(), self.i);
                self.i += 1;
            }
            out.push_str(std::str::from_utf8(&self.s[start..self.i]).expect("JSON is UTF-8"));
            if self.peek() == b'"' {
                self.i += 1;
                return out;
            }
            self.i += 1;
            let c = self.peek();
            self.i += 1;
            match c {
                b'"' => out.push('"'),
                b'\\' => out.push('\\'),
                b'/' => out.push('/'),
                b'b' => out.push('\u{8}'),
                b'f' => out.push('\u{c}'),
                b'n' => out.push('\n'),
                b'r' => out.push('\r'),
                b't' => out.push('\t'),
                b'u' => {
                    let hi = self.hex4();
                    let cp = if (0xD800..0xDC00).contains(&hi) {
                        self.expect("\\u");
                        let lo = self.hex4();
                        assert!((0xDC00..0xE000).contains(&lo), "unpaired surrogate in JSON");
                        0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00)
                    } else {
                        hi
                    };
                    out.push(char::from_u32(cp).expect("valid code point in JSON escape"));
                }
                c => panic!("bad escape \\{} in JSON", c as char),
            }
        }
    }

    fn hex4(&mut self) -> u32 {
        let digits = std::str::from_utf8(&self.s[self.i..self.i + 4]).expect("\\u escape");
        self.i += 4;
        u32::from_str_radix(digits, 16).expect("\\u escape")
    }
}

/// One object of a JSON listing.
#[derive(Debug, Clone, PartialEq, Eq)]
struct JEntry {
    name: String,
    kind: String,
    size: u64,
    mtime: u64,
}

fn json_entries(body: &str) -> Vec<JEntry> {
    let Json::Arr(items) = parse_json(body) else { panic!("JSON listing is not an array: {body}") };
    items
        .into_iter()
        .map(|item| {
            let Json::Obj(fields) = item else { panic!("JSON listing entry is not an object: {body}") };
            let field = |key: &str| {
                fields.iter().find(|(k, _)| k == key).map(|(_, v)| v).unwrap_or_else(|| panic!("entry without {key:?}"))
            };
            let string = |key: &str| match field(key) {
                Json::Str(s) => s.clone(),
                other => panic!("{key:?} is not a string: {other:?}"),
            };
            let number = |key: &str| match field(key) {
                Json::Num(n) => n.parse::<u64>().unwrap_or_else(|_| panic!("{key:?} is not an integer: {n}")),
                other => panic!("{key:?} is not a number: {other:?}"),
            };
            JEntry { name: string("name"), kind: string("type"), size: number("size"), mtime: number("mtime") }
        })
        .collect()
}

fn json_names(entries: &[JEntry]) -> Vec<String> {
    entries.iter().map(|e| e.name.clone()).collect()
}

// ---- the helpers themselves -------------------------------------------------------------

#[test]
fn helpers_resolve_unescape_and_parse() {
    assert_eq!(resolve("/a/b/", "./c%20d"), "/a/b/c%20d");
    assert_eq!(resolve("/a/b/", "../"), "/a/");
    assert_eq!(resolve("/", "../"), "/");
    assert_eq!(resolve("/a/b/", "x/"), "/a/b/x/");
    assert_eq!(resolve("/a/b/", "?sort=size"), "/a/b/?sort=size");
    assert_eq!(resolve("/a/b/", "/z"), "/z");
    assert_eq!(resolve("/a/./b/", "../c"), "/a/c");
    assert_eq!(html_unescape("&lt;a&gt; &amp;amp; &quot;&#39;&#x27;&#233; & x"), "<a> &amp; \"''é & x");
    let a = anchors("<tr><td><a href=\"./x%26y\">x&amp;y</a></td><td>5</td></tr>");
    assert_eq!((a[0].href.as_str(), a[0].text.as_str()), ("./x%26y", "x&y"));
    assert!(a[0].row.contains("<td>5</td>"));
    assert_eq!(pct_decode("a%20b%2F%e9"), b"a b/\xe9");
    assert!(
        matches!(parse_json("[true,false,null]"), Json::Arr(v) if matches!(v[..], [Json::Bool(true), Json::Bool(false), Json::Null]))
    );
    let e = json_entries(r#" [ {"name":"q\"\\\u00e9\ud83c\udf89\n","type":"file","size":5,"mtime":7} ] "#);
    assert_eq!(e, [JEntry { name: "q\"\\é🎉\n".into(), kind: "file".into(), size: 5, mtime: 7 }]);
}

// ---- listings on and off ---------------------------------------------------------------------

#[test]
fn listings_are_off_by_default() {
    let tree = Tree::new();
    tree.write("docs/a.txt", "a\n");
    tree.write("docs/secret-name.txt", "s\n");
    tree.write("site/index.html", "site index\n");
    tree.write("site/other.txt", "other\n");
    {
        let server = serve(tree.files());
        for (target, headers) in
            [("/docs/", ""), ("/docs/?format=json", ""), ("/docs/", "Accept: application/json\r\n"), ("/", "")]
        {
            let r = get_with(server.addr, target, headers);
            assert_eq!(r.status, 403, "GET {target} {headers:?}: {r:?}");
            assert!(!r.text().contains("secret-name"), "GET {target}: a listing leaked: {}", r.text());
            assert!(!r.text().contains("a.txt"), "GET {target}: a listing leaked: {}", r.text());
        }
        let r = get_with(server.addr, "/site/", "");
        assert_eq!((r.status, r.text().as_str()), (200, "site index\n"));
    }
    let server = serve(tree.files().listing(true));
    let (r, entries) = listing(server.addr, "/docs/");
    assert!(r.header("content-type").unwrap().to_ascii_lowercase().contains("charset=utf-8"), "{r:?}");
    // HTML or JSON by `Accept`: caches are told so (RFC 9110 §12.5.5).
    assert_eq!(r.header("vary"), Some("Accept"), "{r:?}");
    let j = get_with(server.addr, "/docs/", "Accept: application/json\r\n");
    assert_json(&j, "Accept: application/json");
    assert_eq!(j.header("vary"), Some("Accept"), "{j:?}");
    assert_eq!(names(&entries), ["a.txt", "secret-name.txt"]);
    let (_, entries) = listing(server.addr, "/");
    assert_eq!(names(&entries), ["docs/", "site/"]);
    // A directory with an index still serves the index, whatever the query asks.
    for (target, headers) in [("/site/", ""), ("/site/?format=json", ""), ("/site/", "Accept: application/json\r\n")] {
        let r = get_with(server.addr, target, headers);
        assert_eq!(r.status, 200, "GET {target}: {r:?}");
        assert_eq!(r.text(), "site index\n", "GET {target} {headers:?}");
        assert_html(&r, target);
    }
}

#[test]
fn head_of_a_listing_matches_get_without_a_body() {
    let tree = Tree::new();
    tree.write("d/a.txt", "a\n");
    tree.write("d/b.txt", "bb\n");
    let server = serve(tree.files().listing(true));
    for target in ["/d/", "/d/?format=json"] {
        let g = get_with(server.addr, target, "");
        assert_eq!(g.status, 200, "{g:?}");
        // Keep-alive: a body sent after HEAD would be misread as the next response.
        let mut conn = BufReader::new(connect(server.addr));
        conn.get_mut().write_all(format!("HEAD {target} HTTP/1.1\r\nHost: test\r\n\r\n").as_bytes()).unwrap();
        let h = read_response(&mut conn, true);
        assert_eq!(h.status, 200, "HEAD {target}: {h:?}");
        assert_eq!(h.header("content-type"), g.header("content-type"), "HEAD {target}");
        assert_eq!(h.header("content-length"), Some(g.body.len().to_string().as_str()), "HEAD {target}");
        conn.get_mut().write_all(b"GET /d/a.txt HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n").unwrap();
        let next = read_response(&mut conn, false);
        assert_eq!((next.status, next.text().as_str()), (200, "a\n"), "after HEAD {target}");
    }
}

#[test]
fn binary_lists_only_with_the_listing_flag() {
    let tree = Tree::new();
    tree.write("d/listed-file.txt", "x\n");
    let root = tree.root.to_str().unwrap();
    let base = ["--listen", "127.0.0.1:0", "--access-log", "off"];
    {
        let off = Spawned::start(&[&base[..], &[root]].concat(), 1);
        let r = get(off.addr(), "/d/");
        assert_eq!(r.status, 403, "{r:?}");
        assert!(!r.text().contains("listed-file"), "{r:?}");
    }
    let on = Spawned::start(&[&base[..], &["--listing", root]].concat(), 1);
    let (_, entries) = listing(on.addr(), "/d/");
    assert_eq!(names(&entries), ["listed-file.txt"]);
    let r = get_with(on.addr(), &entries[0].target, "");
    assert_eq!((r.status, r.text().as_str()), (200, "x\n"));
}

// ---- order -------------------------------------------------------------------------------

const T0: u64 = 1_600_000_000;

/// `s/` with directories `adir/` (mtime T0+50) and `zdir/` (T0+10), and files
/// a.txt (10 bytes, T0+300), b.txt (30, T0+100), c.txt (20, T0+200), d.txt (0, T0+250).
fn sort_tree() -> Tree {
    let tree = Tree::new();
    for (name, size, mtime) in [("a.txt", 10, 300), ("b.txt", 30, 100), ("c.txt", 20, 200), ("d.txt", 0, 250)] {
        let path = tree.write(&format!("s/{name}"), "x".repeat(size));
        set_mtime(&path, T0 + mtime);
    }
    for (name, mtime) in [("adir", 50), ("zdir", 10)] {
        let path = tree.mkdir(&format!("s/{name}"));
        set_mtime(&path, T0 + mtime);
    }
    tree
}

#[test]
fn directories_first_then_files_by_name() {
    let tree = sort_tree();
    let server = serve(tree.files().listing(true));
    let (_, entries) = listing(server.addr, "/s/");
    assert_eq!(names(&entries), ["adir/", "zdir/", "a.txt", "b.txt", "c.txt", "d.txt"]);
    for (target, expected) in [
        ("/s/?sort=name", ["adir/", "zdir/", "a.txt", "b.txt", "c.txt", "d.txt"]),
        ("/s/?sort=name&order=asc", ["adir/", "zdir/", "a.txt", "b.txt", "c.txt", "d.txt"]),
        ("/s/?order=desc", ["zdir/", "adir/", "d.txt", "c.txt", "b.txt", "a.txt"]),
        ("/s/?sort=name&order=desc", ["zdir/", "adir/", "d.txt", "c.txt", "b.txt", "a.txt"]),
        // Unknown values are ignored.
        ("/s/?sort=bogus&order=sideways", ["adir/", "zdir/", "a.txt", "b.txt", "c.txt", "d.txt"]),
    ] {
        let (_, entries) = listing(server.addr, target);
        assert_eq!(names(&entries), expected, "GET {target}");
    }
}

#[test]
fn sort_by_size_and_mtime() {
    let tree = sort_tree();
    let server = serve(tree.files().listing(true));
    let files_only = |entries: &[Listed]| -> Vec<String> {
        let names = names(entries);
        let dirs = names.iter().take_while(|n| n.ends_with('/')).count();
        assert_eq!(dirs, 2, "directories first: {names:?}");
        assert!(names[dirs..].iter().all(|n| !n.ends_with('/')), "directories first: {names:?}");
        let mut d = names[..dirs].to_vec();
        d.sort();
        assert_eq!(d, ["adir/", "zdir/"]);
        names[dirs..].to_vec()
    };
    for (target, expected) in [
        ("/s/?sort=size", ["d.txt", "a.txt", "c.txt", "b.txt"]),
        ("/s/?sort=size&order=asc", ["d.txt", "a.txt", "c.txt", "b.txt"]),
        ("/s/?sort=size&order=desc", ["b.txt", "c.txt", "a.txt", "d.txt"]),
        ("/s/?order=desc&sort=size", ["b.txt", "c.txt", "a.txt", "d.txt"]),
        ("/s/?sort=mtime", ["b.txt", "c.txt", "d.txt", "a.txt"]),
        ("/s/?sort=mtime&order=desc", ["a.txt", "d.txt", "c.txt", "b.txt"]),
    ] {
        let (_, entries) = listing(server.addr, target);
        assert_eq!(files_only(&entries), expected, "GET {target}");
    }
    // Directories are ordered by their own times too (zdir is older).
    let (_, entries) = listing(server.addr, "/s/?sort=mtime");
    assert_eq!(names(&entries)[..2], ["zdir/", "adir/"]);
    let (_, entries) = listing(server.addr, "/s/?sort=mtime&order=desc");
    assert_eq!(names(&entries)[..2], ["adir/", "zdir/"]);
    // The same options order the JSON listing.
    let r = get_with(server.addr, "/s/?format=json&sort=size&order=desc", "");
    assert_eq!(r.status, 200, "{r:?}");
    let names = json_names(&json_entries(&r.text()));
    assert_eq!(names[2..], ["b.txt", "c.txt", "a.txt", "d.txt"], "{names:?}");
    // The directory without its slash redirects, keeping the options.
    let r = get_with(server.addr, "/s?sort=size&order=desc", "");
    assert_eq!(r.status, 301, "{r:?}");
    assert_eq!(r.header("location"), Some("/s/?sort=size&order=desc"));
}

// ---- rows: size, time, parent ---------------------------------------------------------

#[test]
fn rows_show_size_time_and_a_parent_link_below_the_root() {
    let tree = Tree::new();
    tree.write("top.txt", "top\n");
    let file = tree.write("sub/file.bin", vec![7u8; 1234]);
    set_mtime(&file, 1_600_000_000); // Sun, 13 Sep 2020 12:26:40 GMT
    let deeper_file = tree.write("sub/deeper/x.txt", "x\n");
    set_mtime(&deeper_file, 1_000_000_000);
    let deeper = tree.root.join("sub/deeper");
    set_mtime(&deeper, 1_500_000_000); // Fri, 14 Jul 2017 02:40:00 GMT
    let server = serve(tree.files().listing(true));

    // The root has no parent link.
    let (r, entries) = listing(server.addr, "/");
    assert_eq!(names(&entries), ["sub/", "top.txt"]);
    for a in anchors(&r.text()) {
        assert!(!a.href.contains(".."), "parent link at the root: {a:?}");
        assert!(!a.text.contains(".."), "parent link at the root: {a:?}");
    }

    let (r, entries) = listing(server.addr, "/sub/");
    assert_eq!(names(&entries), ["deeper/", "file.bin"]);
    let row = &entries[1].row;
    assert!(row.contains("1234"), "size missing from the row: {row}");
    assert!(row.contains("2020") && row.contains("12:26"), "modification time missing from the row: {row}");
    let row = &entries[0].row;
    assert!(row.contains("2017") && row.contains("02:40"), "directory time missing from the row: {row}");
    let parents: Vec<Anchor> = anchors(&r.text()).into_iter().filter(|a| a.href == "../").collect();
    assert_eq!(parents.len(), 1, "one parent link: {}", r.text());
    assert_eq!(resolve("/sub/", &parents[0].href), "/");
    let (_, up) = listing(server.addr, &resolve("/sub/", &parents[0].href));
    assert_eq!(names(&up), ["sub/", "top.txt"]);

    let (r, entries) = listing(server.addr, "/sub/deeper/");
    assert_eq!(names(&entries), ["x.txt"]);
    let parent = anchors(&r.text()).into_iter().find(|a| a.href == "../").expect("parent link");
    assert_eq!(resolve("/sub/deeper/", &parent.href), "/sub/");
    // Every entry link works.
    let r = get_with(server.addr, &entries[0].target, "");
    assert_eq!((r.status, r.text().as_str()), (200, "x\n"));
    let r = get_with(server.addr, "/sub/file.bin", "");
    assert_eq!((r.status, r.body.len()), (200, 1234));
}

// ---- escaping -----------------------------------------------------------------------------

/// Names that break naive HTML or URL handling, with the content each file gets.
fn hostile_names() -> Vec<(&'static [u8], String)> {
    // A file name cannot hold '/': U+2215 DIVISION SLASH stands in for the closing tag's.
    let names: [&[u8]; 15] = [
        "<script>alert(1)<\u{2215}script>.txt".as_bytes(),
        b"<script>alert(1).txt",
        b"x\" onmouseover=\"alert(1).txt",
        b"a\"b&c'd #e?f%g h.txt",
        b"100%.txt",
        b"%41.txt",
        b"A.txt",
        b"1+1=2.txt",
        b"x:y.txt",
        b"javascript:alert(1)",
        b"new\nline.txt",
        b"tab\there.txt",
        b"semi;colon,comma=eq@at!bang$(paren)*star~.txt",
        b"&amp;.txt",
        b"<img src=x onerror=alert(1)>",
    ];
    names.iter().enumerate().map(|(i, n)| (*n, format!("content #{i}\n"))).collect()
}

#[test]
fn hostile_names_are_escaped_in_text_and_encoded_in_links() {
    let tree = Tree::new();
    let hostile = hostile_names();
    for (name, content) in &hostile {
        tree.write_raw("esc", name, content);
    }
    let dir_name = "<b>dir & \"co\" 'q'";
    tree.write(&format!("esc/{dir_name}/inner.txt"), "inner\n");
    let server = serve(tree.files().listing(true));

    let (r, entries) = listing(server.addr, "/esc/");
    let page = r.text();
    let lower = page.to_ascii_lowercase();
    for raw in ["<script", "<img", "<b>", "onmouseover=\""] {
        assert!(!lower.contains(raw), "raw {raw:?} in the page:\n{page}");
    }
    assert!(page.contains("&lt;script&gt;"), "escaped name missing:\n{page}");
    assert_eq!(entries.len(), hostile.len() + 1, "{:#?}", names(&entries));

    for (name, content) in &hostile {
        let shown = String::from_utf8_lossy(name);
        let matching: Vec<&Listed> = entries.iter().filter(|e| e.name_bytes == *name).collect();
        assert_eq!(matching.len(), 1, "no single link leads to {shown:?}: {:#?}", names(&entries));
        let e = matching[0];
        assert_eq!(e.text, shown, "link text of {shown:?}");
        // The href is one encoded path segment: nothing a URL parser would split on.
        let href = &e.href;
        for c in [' ', '"', '#', '?', '<', '>', '\n', '\t', '\\', '`'] {
            assert!(!href.contains(c), "raw {c:?} in href {href:?}");
        }
        let bytes = href.as_bytes();
        for (i, _) in href.match_indices('%') {
            assert!(
                bytes.len() > i + 2 && bytes[i + 1].is_ascii_hexdigit() && bytes[i + 2].is_ascii_hexdigit(),
                "bare % in href {href:?}"
            );
        }
        // Following the link fetches that very file.
        let r = get_with(server.addr, &e.target, "");
        assert_eq!(r.status, 200, "GET {} (link {href:?} for {shown:?}): {r:?}", e.target);
        assert_eq!(&r.text(), content, "GET {} (link for {shown:?})", e.target);
    }
    let special = entries.iter().find(|e| e.name() == "a\"b&c'd #e?f%g h.txt").unwrap();
    for encoded in ["%23", "%3F", "%25", "%20", "%22"] {
        assert!(special.href.contains(encoded), "{encoded} missing from {:?}", special.href);
    }

    // The directory with a hostile name: escaped, linked, and its own page escapes its path.
    let d = entries.iter().find(|e| e.name() == format!("{dir_name}/")).expect("directory entry");
    assert_eq!(d.text.trim_end_matches('/'), dir_name);
    let (r, inner) = listing(server.addr, &d.target);
    assert!(!r.text().contains("<b>"), "raw directory name in its page:\n{}", r.text());
    assert!(r.text().contains("&lt;b&gt;dir &amp;"), "escaped path missing from the title:\n{}", r.text());
    assert_eq!(names(&inner), ["inner.txt"]);
    let got = get_with(server.addr, &inner[0].target, "");
    assert_eq!((got.status, got.text().as_str()), (200, "inner\n"), "GET {}", inner[0].target);

    // The JSON listing names the same entries, exactly.
    let r = get_with(server.addr, "/esc/?format=json", "");
    assert_json(&r, "json");
    let mut listed = json_names(&json_entries(&r.text()));
    listed.sort();
    let mut expected: Vec<String> = hostile.iter().map(|(n, _)| String::from_utf8_lossy(n).into_owned()).collect();
    expected.push(dir_name.to_string());
    expected.sort();
    assert_eq!(listed, expected);
}

#[test]
fn utf8_names_are_shown_and_linked() {
    let tree = Tree::new();
    let files = [
        ("héllo wörld.txt", "hello world\n"),
        ("日本語のファイル.txt", "cjk\n"),
        ("emoji 🎉.txt", "party\n"),
        ("дир/файл.txt", "cyrillic\n"),
    ];
    for (name, content) in files {
        tree.write(&format!("u/{name}"), content);
    }
    let server = serve(tree.files().listing(true));
    let (r, entries) = listing(server.addr, "/u/");
    let page = r.text();
    for name in ["héllo wörld.txt", "日本語のファイル.txt", "emoji 🎉.txt", "дир"] {
        assert!(page.contains(name), "{name:?} not shown as UTF-8 text:\n{page}");
    }
    assert_eq!(names(&entries), ["дир/", "emoji 🎉.txt", "héllo wörld.txt", "日本語のファイル.txt"]);
    for e in &entries[1..] {
        assert_eq!(e.text, e.name(), "link text");
        let content = files.iter().find(|(n, _)| *n == e.name()).unwrap().1;
        let r = get_with(server.addr, &e.target, "");
        assert_eq!(r.status, 200, "GET {} (link {:?}): {r:?}", e.target, e.href);
        assert_eq!(r.text(), content, "GET {}", e.target);
    }
    let (r, inner) = listing(server.addr, &entries[0].target);
    assert!(r.text().contains("дир"), "directory path not shown as UTF-8:\n{}", r.text());
    assert_eq!(names(&inner), ["файл.txt"]);
    let got = get_with(server.addr, &inner[0].target, "");
    assert_eq!((got.status, got.text().as_str()), (200, "cyrillic\n"));
    let r = get_with(server.addr, "/u/", "Accept: application/json\r\n");
    assert_eq!(
        json_names(&json_entries(&r.text())),
        names(&entries).iter().map(|n| n.trim_end_matches('/')).collect::<Vec<_>>()
    );
}

#[test]
fn non_utf8_names_still_link_to_the_file() {
    let tree = Tree::new();
    tree.write_raw("l", b"caf\xe9.txt", "latin-1 name\n");
    tree.write("l/cafe.txt", "plain\n");
    let server = serve(tree.files().listing(true));
    let (_, entries) = listing(server.addr, "/l/");
    assert_eq!(entries.len(), 2, "{entries:#?}");
    let e = entries.iter().find(|e| e.name_bytes == b"caf\xe9.txt").expect("a link to the raw name");
    assert!(e.text.starts_with("caf") && e.text.ends_with(".txt"), "{e:?}");
    let r = get_with(server.addr, &e.target, "");
    assert_eq!((r.status, r.text().as_str()), (200, "latin-1 name\n"), "GET {}", e.target);
    // JSON stays valid (the name is shown lossily).
    let r = get_with(server.addr, "/l/?format=json", "");
    assert_eq!(json_entries(&r.text()).len(), 2);
}

// ---- dotfiles --------------------------------------------------------------------------------

#[test]
fn dotfiles_and_dot_directories_are_hidden_and_forbidden() {
    let tree = Tree::new();
    tree.write("d/visible.txt", "visible\n");
    tree.write("d/.env", SECRET);
    tree.write("d/.hidden.txt", SECRET);
    tree.write("d/.git/config", SECRET);
    tree.write("d/.well-known/thing", SECRET);
    tree.write(".rootdot", SECRET);
    let server = serve(tree.files().listing(true));
    for dir in ["/d/", "/"] {
        let (r, entries) = listing(server.addr, dir);
        let page = r.text();
        for hidden in [".env", ".hidden", ".git", ".well-known", ".rootdot"] {
            assert!(!page.contains(hidden), "{hidden} shown in {dir}:\n{page}");
        }
        assert!(entries.iter().all(|e| !e.name().starts_with('.')), "{entries:#?}");
        let r = get_with(server.addr, &format!("{dir}?format=json"), "");
        for e in json_entries(&r.text()) {
            assert!(!e.name.starts_with('.'), "{} listed in JSON for {dir}", e.name);
        }
    }
    // A name with a backslash cannot be asked for (it is refused in paths): not listed.
    tree.write("d/back\\slash.txt", SECRET);
    let (_, entries) = listing(server.addr, "/d/");
    assert_eq!(names(&entries), ["visible.txt"]);
    for target in [
        "/d/back%5Cslash.txt",
        "/d/.env",
        "/d/.hidden.txt",
        "/d/.git/config",
        "/d/.git/",
        "/d/.git",
        "/d/.well-known/",
        "/.rootdot",
        "/d/%2eenv",
    ] {
        let r = get_with(server.addr, target, "");
        assert_eq!(r.status, 403, "GET {target}: {r:?}");
        assert!(!r.text().contains(SECRET), "GET {target}: {r:?}");
        assert!(!r.text().contains("config"), "GET {target}: listed a dot-directory: {r:?}");
    }
}

// ---- preconditions ---------------------------------------------------------------------------

#[test]
fn preconditions_on_a_listing_match_only_the_asterisk() {
    let tree = Tree::new();
    tree.write("d/visible.txt", "visible\n");
    let server = serve(tree.files().listing(true));
    // A listing has no entity tag or date: `*` matches it, nothing else does (RFC 9110 §13.1).
    for (fields, status) in [
        ("If-None-Match: *\r\n", 304),
        ("If-None-Match: \"x\"\r\n", 200),
        ("If-Match: *\r\n", 200),
        ("If-Match: \"x\"\r\n", 412),
        ("If-Match: \"x\", *\r\n", 200),
        ("If-Match: \"x\"\r\nIf-None-Match: *\r\n", 412),
        ("If-Modified-Since: Sun, 06 Nov 2044 08:49:37 GMT\r\n", 200),
        ("If-Unmodified-Since: Sun, 06 Nov 1994 08:49:37 GMT\r\n", 200),
    ] {
        let r = get_with(server.addr, "/d/", fields);
        assert_eq!(r.status, status, "{fields:?}: {r:?}");
        if status != 412 {
            assert_eq!(r.body.is_empty(), status == 304, "{fields:?}");
        }
    }
}

// ---- JSON ------------------------------------------------------------------------------------

#[test]
fn json_listing_by_query_or_accept_header() {
    let tree = Tree::new();
    let a = tree.write("j/a.txt", "hello");
    set_mtime(&a, 1_234_567_890);
    // (A name with a backslash is not listed: it cannot be asked for.)
    let quote = tree.write_raw("j", b"q\"uote.txt", "quoted\n");
    set_mtime(&quote, 1_000_000_001);
    let ctl = tree.write_raw("j", b"ctl\x01\x1f.txt", "ctl");
    set_mtime(&ctl, 1_000_000_002);
    let utf = tree.write("j/héllo.txt", "héllo");
    set_mtime(&utf, 1_000_000_003);
    tree.write("j/sub/inner.txt", "inner\n");
    set_mtime(&tree.root.join("j/sub"), 1_111_111_111);
    let server = serve(tree.files().listing(true));

    let expected_files = [
        JEntry { name: "a.txt".into(), kind: "file".into(), size: 5, mtime: 1_234_567_890 },
        JEntry { name: "ctl\u{1}\u{1f}.txt".into(), kind: "file".into(), size: 3, mtime: 1_000_000_002 },
        JEntry { name: "héllo.txt".into(), kind: "file".into(), size: 6, mtime: 1_000_000_003 },
        JEntry { name: "q\"uote.txt".into(), kind: "file".into(), size: 7, mtime: 1_000_000_001 },
    ];
    let mut bodies = Vec::new();
    for (target, headers) in [
        ("/j/?format=json", ""),
        ("/j/", "Accept: application/json\r\n"),
        ("/j/", "Accept: text/html;q=0.5, application/json\r\n"),
        ("/j/?sort=name&format=json", "Accept: text/html\r\n"),
    ] {
        let r = get_with(server.addr, target, headers);
        assert_eq!(r.status, 200, "GET {target} {headers:?}: {r:?}");
        assert_json(&r, target);
        let entries = json_entries(&r.text());
        assert_eq!(entries.len(), 5, "{entries:?}");
        let dir = &entries[0];
        assert_eq!((dir.name.as_str(), dir.kind.as_str(), dir.mtime), ("sub", "dir", 1_111_111_111), "{entries:?}");
        assert_eq!(entries[1..], expected_files[..], "GET {target} {headers:?}");
        bodies.push(r.body);
    }
    assert!(bodies.windows(2).all(|w| w[0] == w[1]), "the JSON listings differ");
    let raw = String::from_utf8(bodies[0].clone()).unwrap();
    assert!(raw.contains(r#""name":"a.txt","type":"file","size":5,"mtime":1234567890"#), "{raw}");

    // A browser's Accept gets HTML.
    let r = get_with(server.addr, "/j/", "Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\r\n");
    assert_eq!(r.status, 200);
    assert_html(&r, "browser accept");
    assert_eq!(entries(&r.text(), "/j/").len(), 5);
}

#[test]
fn accept_with_q_zero_refuses_json() {
    // RFC 9110 §12.4.2: a weight of 0 means "not acceptable".
    let tree = Tree::new();
    tree.write("j/a.txt", "hello");
    let server = serve(tree.files().listing(true));
    let r = get_with(server.addr, "/j/", "Accept: text/html, application/json;q=0\r\n");
    assert_eq!(r.status, 200, "{r:?}");
    assert_html(&r, "Accept: text/html, application/json;q=0");
}

#[test]
fn accept_media_type_is_case_insensitive() {
    // RFC 9110 §8.3.1: type and subtype names are case-insensitive.
    let tree = Tree::new();
    tree.write("j/a.txt", "hello");
    let server = serve(tree.files().listing(true));
    let r = get_with(server.addr, "/j/", "Accept: Application/JSON\r\n");
    assert_eq!(r.status, 200, "{r:?}");
    assert_json(&r, "Accept: Application/JSON");
    assert_eq!(json_names(&json_entries(&r.text())), ["a.txt"]);
}

#[test]
fn listings_reflect_changes_immediately() {
    let tree = Tree::new();
    tree.write("d/first.txt", "1\n");
    let server = serve(tree.files().listing(true));
    let (_, entries) = listing(server.addr, "/d/");
    assert_eq!(names(&entries), ["first.txt"]);
    tree.write("d/second.txt", "22\n");
    std::fs::remove_file(tree.root.join("d/first.txt")).unwrap();
    let (_, entries) = listing(server.addr, "/d/");
    assert_eq!(names(&entries), ["second.txt"]);
    let r = get_with(server.addr, "/d/?format=json", "");
    assert_eq!(
        json_entries(&r.text()).iter().map(|e| (e.name.as_str(), e.size)).collect::<Vec<_>>(),
        [("second.txt", 3)]
    );
    // Once it has an index, the directory serves it instead.
    tree.write("d/index.html", "now indexed\n");
    let r = get_with(server.addr, "/d/", "");
    assert_eq!((r.status, r.text().as_str()), (200, "now indexed\n"));
}

// ---- under a mount ---------------------------------------------------------------------------

#[test]
fn listing_under_a_mount_links_relatively() {
    let tree = Tree::new();
    tree.write("dir/a.txt", "a\n");
    tree.write("dir/b c.txt", "b c\n");
    tree.write("dir/héllo.txt", "hello\n");
    tree.write("dir/sub/inner.txt", "inner\n");
    tree.write("top.txt", "top\n");
    let router = Router::new()
        .get("/files/route-shadow", |_: &spindle::Request<'_>| spindle::Response::html("route"))
        .mount("/files", tree.files().listing(true));
    let server = TestServer::with_router(router, Config::default());

    let (r, entries) = listing(server.addr, "/files/dir/");
    assert!(r.text().contains("/files/dir/"), "title should show the URL path:\n{}", r.text());
    assert_eq!(names(&entries), ["sub/", "a.txt", "b c.txt", "héllo.txt"]);
    for e in &entries {
        assert!(!e.href.starts_with('/'), "link {:?} is not relative", e.href);
        assert!(e.target.starts_with("/files/dir/"), "{e:?}");
    }
    for e in &entries[1..] {
        let r = get_with(server.addr, &e.target, "");
        let expected = std::fs::read_to_string(tree.root.join("dir").join(e.name())).unwrap();
        assert_eq!((r.status, r.text()), (200, expected), "GET {} (link {:?})", e.target, e.href);
    }
    let (r, inner) = listing(server.addr, &entries[0].target);
    assert_eq!(names(&inner), ["inner.txt"]);
    let got = get_with(server.addr, &inner[0].target, "");
    assert_eq!((got.status, got.text().as_str()), (200, "inner\n"), "GET {}", inner[0].target);
    let parent = anchors(&r.text()).into_iter().find(|a| a.href == "../").expect("parent link");
    assert_eq!(resolve("/files/dir/sub/", &parent.href), "/files/dir/");

    // Up to the mount point, which lists the root.
    let (r, _) = listing(server.addr, "/files/dir/");
    let parent = anchors(&r.text()).into_iter().find(|a| a.href == "../").expect("parent link");
    let up = resolve("/files/dir/", &parent.href);
    assert_eq!(up, "/files/");
    let (_, top) = listing(server.addr, &up);
    assert_eq!(names(&top), ["dir/", "top.txt"]);
    let got = get_with(server.addr, &top[1].target, "");
    assert_eq!((got.status, got.text().as_str()), (200, "top\n"));

    for (target, location) in [("/files/dir", "/files/dir/"), ("/files", "/files/")] {
        let r = get_with(server.addr, target, "");
        assert_eq!((r.status, r.header("location")), (301, Some(location)), "GET {target}: {r:?}");
    }
    // The route beside the mount still answers.
    let r = get_with(server.addr, "/files/route-shadow", "");
    assert_eq!((r.status, r.text().as_str()), (200, "route"));
    let r = get_with(server.addr, "/files/dir/?format=json", "");
    assert_json(&r, "mounted json");
    assert_eq!(json_names(&json_entries(&r.text())), ["sub", "a.txt", "b c.txt", "héllo.txt"]);
}

// ---- a big directory --------------------------------------------------------------------------

#[test]
fn ten_thousand_entries_list_completely_without_blocking_others() {
    const N: usize = 10_000;
    let tree = Tree::on_tmpfs();
    let big = tree.mkdir("big");
    for i in 0..N {
        std::fs::write(big.join(format!("file-{i:05}.txt")), i.to_string()).unwrap();
    }
    tree.write("small.txt", "small\n");
    let server = serve(tree.files().listing(true));
    let expected: Vec<String> = (0..N).map(|i| format!("file-{i:05}.txt")).collect();

    let started = Instant::now();
    let r = get_with(server.addr, "/big/", "");
    let html_time = started.elapsed();
    assert_eq!(r.status, 200, "{r:?}");
    assert_html(&r, "big listing");
    let entries = entries(&r.text(), "/big/");
    assert_eq!(entries.len(), N);
    assert_eq!(names(&entries), expected);
    assert!(entries[1234].row.contains(">4<"), "size of file-01234.txt: {}", entries[1234].row);

    let started = Instant::now();
    let j = get_with(server.addr, "/big/?format=json", "");
    let json_time = started.elapsed();
    assert_eq!(j.status, 200);
    let listed = json_entries(&j.text());
    assert_eq!(json_names(&listed), expected);
    assert!(listed.iter().enumerate().all(|(i, e)| e.kind == "file" && e.size == i.to_string().len() as u64));
    eprintln!(
        "listing {N} files: HTML {:.1} ms ({} bytes), JSON {:.1} ms ({} bytes)",
        html_time.as_secs_f64() * 1e3,
        r.body.len(),
        json_time.as_secs_f64() * 1e3,
        j.body.len()
    );

    // A listing still being delivered to a client that is not reading does not
    // hold up a small request on another connection.
    let mut slow = connect(server.addr);
    // A small receive window, so the server cannot hand the whole listing to the kernel.
    let small_buffer: libc::c_int = 32 * 1024;
    // SAFETY: setsockopt on our own socket with a pointer to a live c_int of the size passed.
    let rc = unsafe {
        libc::setsockopt(
            std::os::fd::AsRawFd::as_raw_fd(&slow),
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            &small_buffer as *const libc::c_int as *const libc::c_void,
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0, "setsockopt SO_RCVBUF");
    slow.write_all(b"GET /big/ HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n").unwrap();
    let mut first = [0u8; 1];
    std::io::Read::read_exact(&mut slow, &mut first).unwrap();
    assert_eq!(&first, b"H");
    let started = Instant::now();
    let small = get(server.addr, "/small.txt");
    let small_time = started.elapsed();
    assert_eq!((small.status, small.text().as_str()), (200, "small\n"));
    let (rest, eof) = read_to_end(&mut slow);
    assert!(eof, "listing not delivered to the end");
    let mut whole = first.to_vec();
    whole.extend_from_slice(&rest);
    let whole = String::from_utf8(whole).unwrap();
    let body = &whole[whole.find("\r\n\r\n").unwrap() + 4..];
    assert_eq!(body.as_bytes(), &r.body[..], "the interleaved listing differs");
    eprintln!("small GET while a {N}-entry listing was pending: {:.1} ms", small_time.as_secs_f64() * 1e3);
    assert!(html_time < Duration::from_secs(5), "HTML listing took {html_time:?}");
}

// ---- error pages ------------------------------------------------------------------------------

const CUSTOM_404: &str = "<!DOCTYPE html><title>gone</title>custom not-found page\n";
const ROOT_404: &str = "<!DOCTYPE html><title>root 404</title>the root's 404.html\n";

#[test]
fn configured_error_page_for_404() {
    let tree = Tree::new();
    tree.write("index.html", "home\n");
    tree.write("404.html", ROOT_404);
    let page = tree.outside("custom-404.html", CUSTOM_404);
    let server = serve(tree.files().error_page(Status::NOT_FOUND, &page));
    for target in ["/missing", "/sub/dir/missing.txt", "/missing.css", "/index.html/below"] {
        let r = get_with(server.addr, target, "");
        assert_eq!(r.status, 404, "GET {target}: {r:?}");
        assert_eq!(r.text(), CUSTOM_404, "GET {target}: the configured page wins");
        assert_html(&r, target);
    }
    let r = get_with(server.addr, "/index.html", "");
    assert_eq!((r.status, r.text().as_str()), (200, "home\n"));
}

#[test]
fn error_pages_are_read_when_needed() {
    let tree = Tree::new();
    let page = tree.outside("custom-404.html", "first version\n");
    let server = serve(tree.files().error_page(Status::NOT_FOUND, &page));
    let r = get_with(server.addr, "/missing", "");
    assert_eq!((r.status, r.text().as_str()), (404, "first version\n"));
    std::fs::write(&page, "second, longer version\n").unwrap();
    let r = get_with(server.addr, "/missing", "");
    assert_eq!((r.status, r.text().as_str()), (404, "second, longer version\n"), "stale error page");
    // The root's 404.html too: absent, then present, then changed.
    let server = serve(tree.files());
    let r = get_with(server.addr, "/missing", "");
    assert!(r.text().contains("404 Not Found"), "{r:?}");
    let root_page = tree.write("404.html", ROOT_404);
    let r = get_with(server.addr, "/missing", "");
    assert_eq!((r.status, r.text().as_str()), (404, ROOT_404), "404.html added after start");
    std::fs::write(&root_page, "changed\n").unwrap();
    let r = get_with(server.addr, "/missing", "");
    assert_eq!((r.status, r.text().as_str()), (404, "changed\n"), "stale 404.html");
}

#[test]
fn error_page_content_type_follows_its_name() {
    let tree = Tree::new();
    let page = tree.outside("not-found.json", "{\"error\":\"not found\"}\n");
    let server = serve(tree.files().error_page(Status::NOT_FOUND, &page));
    let r = get_with(server.addr, "/api/thing", "");
    assert_eq!(r.status, 404, "{r:?}");
    assert_eq!(r.text(), "{\"error\":\"not found\"}\n");
    assert_json(&r, "json error page");
}

#[test]
fn root_404_html_is_used_by_default() {
    let tree = Tree::new();
    tree.write("404.html", ROOT_404);
    tree.write("sub/page.txt", "page\n");
    let server = serve(tree.files());
    for target in ["/missing", "/sub/missing.txt", "/sub/page.txt/x"] {
        let r = get_with(server.addr, target, "");
        assert_eq!(r.status, 404, "GET {target}: {r:?}");
        assert_eq!(r.text(), ROOT_404, "GET {target}");
        assert_html(&r, target);
    }
    // A dotfile stays 403, not the 404 page.
    let r = get_with(server.addr, "/.env", "");
    assert_eq!(r.status, 403, "{r:?}");
    assert!(!r.text().contains("root 404"), "{r:?}");
}

#[test]
fn built_in_page_without_a_custom_one() {
    let tree = Tree::new();
    tree.write("sub/404.html", "not the root's\n");
    let server = serve(tree.files());
    let r = get_with(server.addr, "/missing", "");
    assert_eq!(r.status, 404, "{r:?}");
    assert_html(&r, "built-in");
    assert!(r.text().contains("404 Not Found"), "{r:?}");
    assert!(!r.text().contains("not the root's"), "{r:?}");
    // A configured page that does not exist falls back to the built-in one.
    let gone = tree.tmp.path().join("no-such-page.html");
    let server = serve(tree.files().error_page(Status::NOT_FOUND, gone));
    let r = get_with(server.addr, "/missing", "");
    assert_eq!(r.status, 404, "{r:?}");
    assert!(r.text().contains("404 Not Found"), "{r:?}");
}

#[test]
fn configured_error_page_for_403() {
    let tree = Tree::new();
    tree.write(".env", SECRET);
    tree.write("nolist/a.txt", "a\n");
    tree.write("ok.txt", "ok\n");
    let page = tree.outside("forbidden.html", "<p>custom forbidden</p>\n");
    let server = serve(tree.files().error_page(Status::FORBIDDEN, &page));
    for target in ["/.env", "/.git/config", "/nolist/", "/%2e%2e/secret.txt"] {
        let r = get_with(server.addr, target, "");
        assert_eq!(r.status, 403, "GET {target}: {r:?}");
        assert_eq!(r.text(), "<p>custom forbidden</p>\n", "GET {target}");
        assert_html(&r, target);
    }
    // Other statuses keep their own pages.
    let r = get_with(server.addr, "/missing", "");
    assert_eq!(r.status, 404, "{r:?}");
    assert!(r.text().contains("404 Not Found"), "{r:?}");
    let r = get_with(server.addr, "/ok.txt", "");
    assert_eq!((r.status, r.text().as_str()), (200, "ok\n"));
}

#[test]
fn head_on_a_custom_404_sends_headers_only() {
    let tree = Tree::new();
    tree.write("ok.txt", "ok\n");
    tree.write("404.html", ROOT_404);
    let page = tree.outside("custom-404.html", CUSTOM_404);
    for (files, body) in [(tree.files().error_page(Status::NOT_FOUND, &page), CUSTOM_404), (tree.files(), ROOT_404)] {
        let server = serve(files);
        let r = head(server.addr, "/missing");
        assert_eq!(r.status, 404, "{r:?}");
        assert_eq!(r.header("content-length"), Some(body.len().to_string().as_str()), "{r:?}");
        assert_html(&r, "HEAD");
        // On a kept-alive connection the next response follows the head directly.
        let mut conn = BufReader::new(connect(server.addr));
        conn.get_mut().write_all(b"HEAD /missing HTTP/1.1\r\nHost: test\r\n\r\n").unwrap();
        let r = read_response(&mut conn, true);
        assert_eq!(r.status, 404, "{r:?}");
        conn.get_mut().write_all(b"GET /ok.txt HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n").unwrap();
        let next = read_response(&mut conn, false);
        assert_eq!((next.status, next.text().as_str()), (200, "ok\n"), "a body followed the HEAD response");
        let (rest, eof) = read_to_end(conn.get_mut());
        assert!(eof && rest.is_empty() && conn.buffer().is_empty(), "trailing bytes: {rest:?}");
    }
}

#[test]
fn listings_show_only_what_would_be_served() {
    use std::os::unix::fs::symlink;
    let tree = Tree::new();
    tree.write("d/plain.txt", "plain\n");
    tree.mkdir("d/sub");
    tree.write("shared.txt", "shared\n");
    let d = tree.root.join("d");
    symlink("plain.txt", d.join("to-plain")).unwrap();
    symlink("sub", d.join("to-sub")).unwrap();
    symlink("../shared.txt", d.join("to-shared")).unwrap();
    // Led out of ROOT (by an absolute path or by climbing), dangling, or looping:
    // each is refused when fetched, so none is listed (nor the size and time of
    // what is outside).
    symlink(tree.tmp.path().join("secret.txt"), d.join("to-secret")).unwrap();
    symlink("../../secret.txt", d.join("up-to-secret")).unwrap();
    symlink("nowhere.txt", d.join("dangling")).unwrap();
    symlink("loop", d.join("loop")).unwrap();
    let fifo = std::ffi::CString::new(d.join("fifo").as_os_str().as_bytes()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o644) }, 0, "mkfifo");
    let server = serve(tree.files().listing(true));
    let j = get_with(server.addr, "/d/", "Accept: application/json\r\n");
    assert_json(&j, "/d/");
    let entries = json_entries(&j.text());
    assert_eq!(json_names(&entries), ["sub", "to-sub", "plain.txt", "to-plain", "to-shared"], "{entries:?}");
    let shared = entries.iter().find(|e| e.name == "to-shared").unwrap();
    assert_eq!((shared.kind.as_str(), shared.size), ("file", 7));
    // Each listed entry is served; each left out is not.
    for name in ["to-plain", "to-shared", "plain.txt"] {
        assert_eq!(get(server.addr, &format!("/d/{name}")).status, 200, "{name}");
    }
    for name in ["to-secret", "up-to-secret", "dangling", "loop", "fifo"] {
        assert_ne!(get(server.addr, &format!("/d/{name}")).status, 200, "{name}");
    }
    let html = get(server.addr, "/d/").text();
    assert!(!html.contains("secret") && !html.contains("fifo") && !html.contains("dangling"), "{html}");
}

#[test]
fn listings_under_a_mount_point_show_the_symlinks_served_there() {
    use std::os::unix::fs::symlink;
    let tree = Tree::new();
    tree.write("a.txt", "a\n");
    tree.mkdir("sub");
    symlink("../a.txt", tree.root.join("sub/link")).unwrap();
    symlink(tree.tmp.path().join("secret.txt"), tree.root.join("sub/out")).unwrap();
    let server = TestServer::with_router(Router::new().mount("/static", tree.files().listing(true)), Config::default());
    assert_eq!(get(server.addr, "/static/sub/link").text(), "a\n");
    let j = get_with(server.addr, "/static/sub/", "Accept: application/json\r\n");
    assert_eq!(json_names(&json_entries(&j.text())), ["link"], "{}", j.text());
}

#[test]
fn binary_error_page_flag() {
    let tree = Tree::new();
    tree.write(".env", SECRET);
    let page = tree.outside("page.html", CUSTOM_404);
    let forbidden = tree.outside("forbidden.html", "flag forbidden\n");
    let spec = format!("404={}", page.display());
    let spec403 = format!("403={}", forbidden.display());
    let root = tree.root.to_str().unwrap();
    let s = Spawned::start(
        &["--listen", "127.0.0.1:0", "--access-log", "off", "--error-page", &spec, "--error-page", &spec403, root],
        1,
    );
    let r = get(s.addr(), "/does/not/exist");
    assert_eq!(r.status, 404, "{r:?}");
    assert_eq!(r.text(), CUSTOM_404);
    assert_html(&r, "binary 404");
    // The configured page wins over ROOT/404.html.
    tree.write("404.html", "root's own 404\n");
    assert_eq!(get(s.addr(), "/does/not/exist").text(), CUSTOM_404);
    let r = get(s.addr(), "/.env");
    assert_eq!((r.status, r.text().as_str()), (403, "flag forbidden\n"));

    // Any error response, not the file handler's alone: the connection's 400 and
    // 413, the 405 for a method files do not take; HEAD gets the page's length.
    let bad = tree.outside("bad.txt", "flag bad request\n");
    let not_allowed = tree.outside("405.html", "<p>flag not allowed</p>\n");
    let too_large = tree.outside("413.html", "<p>flag too large</p>\n");
    let specs = [
        format!("400={}", bad.display()),
        format!("405={}", not_allowed.display()),
        format!("413={}", too_large.display()),
    ];
    let s = Spawned::start(
        &[
            "--listen",
            "127.0.0.1:0",
            "--access-log",
            "-",
            "--max-body",
            "10",
            "--error-page",
            &specs[0],
            "--error-page",
            &specs[1],
            "--error-page",
            &specs[2],
            root,
        ],
        1,
    );
    let r = get(s.addr(), "/%zz");
    assert_eq!(
        (r.status, r.text().as_str(), r.header("content-type")),
        (400, "flag bad request\n", Some("text/plain; charset=utf-8"))
    );
    let r = request(s.addr(), b"DELETE /index.html HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    assert_eq!((r.status, r.text().as_str()), (405, "<p>flag not allowed</p>\n"));
    assert!(r.header("allow").is_some_and(|a| a.contains("GET")), "{r:?}");
    let r = request(s.addr(), b"POST /index.html HTTP/1.1\r\nHost: t\r\nContent-Length: 11\r\n\r\n");
    assert_eq!((r.status, r.text().as_str()), (413, "<p>flag too large</p>\n"));
    let mut c = Client::new(s.addr());
    let r = c.exchange_head("HEAD /%zz HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!((r.status, r.header("content-length"), r.body.len()), (400, Some("17"), 0), "{r:?}");
    // Statuses without a page keep the built-in one; the log counts the page's bytes.
    assert_eq!(get(s.addr(), "/does/not/exist").status, 404);
    assert!(wait_for(Duration::from_secs(3), || s.stdout().contains("\"GET /%zz HTTP/1.1\" 400 17")), "{}", s.stdout());
}

#[test]
fn binary_warns_about_pages_it_cannot_read() {
    let tree = spa_tree();
    let root = tree.root.to_str().unwrap();
    let missing = tree.root.join("no-such-page.html");
    let spec = format!("404={}", missing.display());
    let s = Spawned::start(
        &["--listen", "127.0.0.1:0", "--access-log", "off", "--error-page", &spec, "--spa", "no-shell.html", root],
        1,
    );
    // Still served: the built-in 404 page stands in.
    assert_eq!(get(s.addr(), "/nothing/here.txt").status, 404);
    let stderr = s.stderr();
    assert!(stderr.contains(&format!("--error-page {spec}: cannot read")), "{stderr}");
    assert!(stderr.contains("--spa no-shell.html: cannot read"), "{stderr}");
    // A page outside ROOT is never sent, so it is warned about too.
    let outside = tree.outside("shell.html", SHELL);
    let escape = format!("../{}", outside.file_name().unwrap().to_str().unwrap());
    let s = Spawned::start(&["--listen", "127.0.0.1:0", "--access-log", "off", "--spa", &escape, root], 1);
    assert_eq!(get(s.addr(), "/app/route").status, 404, "{}", s.stderr());
    assert!(s.stderr().contains("leads out of ROOT"), "{}", s.stderr());
    // Pages that are there draw no warning.
    let s = Spawned::start(&["--listen", "127.0.0.1:0", "--access-log", "off", "--spa", "index.html", root], 1);
    assert_eq!(get(s.addr(), "/").status, 200);
    assert!(!s.stderr().contains("cannot read"), "{}", s.stderr());
}

#[test]
fn binary_rejects_invalid_error_page_specs() {
    let tree = Tree::new();
    let root = tree.root.to_str().unwrap();
    for spec in ["foo", "404", "404=", "abc=/x.html", "200=/x.html", "=/x.html", "99999=/x.html"] {
        let (code, stderr) =
            run_to_exit(&["--listen", "127.0.0.1:0", "--access-log", "off", "--error-page", spec, root]);
        assert!(matches!(code, Some(c) if c != 0), "--error-page {spec:?} exited {code:?}: {stderr}");
        assert!(stderr.contains("error-page"), "--error-page {spec:?}: no explanation: {stderr}");
    }
    let (code, stderr) = run_to_exit(&["--listen", "127.0.0.1:0", "--error-page"]);
    assert!(matches!(code, Some(c) if c != 0), "a missing value exited {code:?}: {stderr}");
}

// ---- SPA fallback -------------------------------------------------------------------------------

const SHELL: &str = "<!DOCTYPE html><title>app</title><div id=app>SPA SHELL</div>\n";

fn spa_tree() -> Tree {
    let tree = Tree::new();
    tree.write("index.html", SHELL);
    tree.write("style.css", "body { color: red }\n");
    tree.write("assets/app.js", "console.log(1)\n");
    tree.write(".env", SECRET);
    tree.write("private/data.txt", "data\n");
    tree
}

fn check_spa(addr: SocketAddr) {
    for target in ["/app/route/42", "/app/route/", "/deep/link?x=1", "/missing.html", "/h%C3%A9llo"] {
        let r = get_with(addr, target, "");
        assert_eq!(r.status, 200, "GET {target}: {r:?}");
        assert_eq!(r.text(), SHELL, "GET {target}");
        assert_html(&r, target);
    }
    for (target, body) in [
        ("/style.css", "body { color: red }\n"),
        ("/assets/app.js", "console.log(1)\n"),
        ("/private/data.txt", "data\n"),
        ("/", SHELL),
    ] {
        let r = get_with(addr, target, "");
        assert_eq!((r.status, r.text().as_str()), (200, body), "GET {target}");
    }
    let css = get_with(addr, "/style.css", "");
    assert!(css.header("content-type").unwrap().starts_with("text/css"), "{css:?}");
    for target in [
        "/.env",
        "/.git/config",
        "/app/.hidden/route",
        "/../secret.txt",
        "/%2e%2e/secret.txt",
        "/app/..%2f..%2fsecret.txt",
        "/assets/../../secret.txt",
        "/assets/%2e%2e/%2e%2e/missing",
    ] {
        let r = get_with(addr, target, "");
        assert_eq!(r.status, 403, "GET {target}: {r:?}");
        assert!(!r.text().contains("SPA SHELL"), "GET {target}: the SPA page instead of 403");
        assert!(!r.text().contains(SECRET), "GET {target}: secret leaked");
    }
}

#[test]
fn spa_fallback_answers_missing_paths_with_the_app() {
    let tree = spa_tree();
    let server = serve(tree.files().spa_fallback("index.html"));
    check_spa(server.addr);
    // A leading slash in the fallback's name is the same file.
    let server = serve(tree.files().spa_fallback("/index.html"));
    let r = get_with(server.addr, "/x/y", "");
    assert_eq!((r.status, r.text().as_str()), (200, SHELL));
    // A directory without an index is still refused, not the app.
    let tree2 = spa_tree();
    std::fs::remove_file(tree2.root.join("private/data.txt")).unwrap();
    let server = serve(tree2.files().spa_fallback("index.html"));
    let r = get_with(server.addr, "/private/", "");
    assert_eq!(r.status, 403, "{r:?}");
}

#[test]
fn spa_fallback_to_a_missing_file_is_404() {
    let tree = spa_tree();
    let server = serve(tree.files().spa_fallback("app-shell.html"));
    let r = get_with(server.addr, "/app/route", "");
    assert_eq!(r.status, 404, "{r:?}");
    let r = get_with(server.addr, "/style.css", "");
    assert_eq!(r.status, 200, "{r:?}");
}

#[test]
fn binary_spa_flag() {
    let tree = spa_tree();
    let root = tree.root.to_str().unwrap();
    let s = Spawned::start(&["--listen", "127.0.0.1:0", "--access-log", "off", "--spa", "index.html", root], 1);
    check_spa(s.addr());
}
