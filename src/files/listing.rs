//! Directory listings: HTML for people, JSON for scripts.
//!
//! Entries are sorted directories first, then by name (or by size or
//! modification time on request); dotfiles (and names that cannot be asked
//! for, with a backslash) are left out; names are
//! percent-encoded in links and escaped in text, so any file name is harmless.

use std::fmt::Write as _;
use std::fs::File;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::time::UNIX_EPOCH;

use super::cache::Identity;

/// One entry of a listing.
#[derive(Debug)]
pub(crate) struct Entry {
    name: Vec<u8>,
    dir: bool,
    size: u64,
    modified: u64,
}

/// How to order a listing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SortKey {
    Name,
    Size,
    Modified,
}

/// The listing's query options: `sort=name|size|mtime`, `order=asc|desc`, `format=json`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Options {
    pub sort: SortKey,
    pub descending: bool,
    pub json: bool,
}

impl Options {
    /// Options from a query string (unknown keys and values are ignored).
    pub(crate) fn from_query(query: Option<&str>) -> Options {
        let mut o = Options { sort: SortKey::Name, descending: false, json: false };
        for pair in query.unwrap_or("").split('&') {
            match pair.split_once('=').unwrap_or((pair, "")) {
                ("sort", "name") => o.sort = SortKey::Name,
                ("sort", "size") => o.sort = SortKey::Size,
                ("sort", "mtime") => o.sort = SortKey::Modified,
                ("order", "desc") => o.descending = true,
                ("order", "asc") => o.descending = false,
                ("format", "json") => o.json = true,
                _ => {}
            }
        }
        o
    }
}

/// Whether an `Accept` value asks for JSON rather than HTML: `application/json`
/// acceptable (q > 0, any case) and weighted above `text/html` (or `text/*`, `*/*`).
pub(crate) fn prefers_json(accept: &[u8]) -> bool {
    let (mut json, mut html, mut text, mut any) = (0, None, None, None);
    for (name, q) in super::encoding::weighted(accept) {
        let Some(q) = q else { continue };
        if name.eq_ignore_ascii_case(b"application/json") {
            json = q;
        } else if name.eq_ignore_ascii_case(b"text/html") {
            html = Some(q);
        } else if name.eq_ignore_ascii_case(b"text/*") {
            text = Some(q);
        } else if name == b"*/*" {
            any = Some(q);
        }
    }
    json > 0 && json > html.or(text).or(any).unwrap_or(0)
}

/// Reads the entries of the open directory `dir`, sorted: the regular files and
/// directories in it, and the symlinks to them that `serves` (given a name) says
/// the file handler would follow. Dotfiles and what is never served (FIFOs,
/// sockets, devices, dangling symlinks) are left out, and so is a symlink out of
/// the root, whose target's size and time are not to be shown.
pub(crate) fn read(dir: &File, options: Options, mut serves: impl FnMut(&[u8]) -> bool) -> io::Result<Vec<Entry>> {
    use std::os::fd::AsRawFd;
    let mut entries = Vec::new();
    for entry in std::fs::read_dir(format!("/proc/self/fd/{}", dir.as_raw_fd()))? {
        let entry = entry?;
        let name = entry.file_name();
        // Dotfiles, and names with a backslash, which no request may name (it is
        // refused in paths, as a separator elsewhere): not offered, since refused.
        if name.as_bytes().first() == Some(&b'.') || name.as_bytes().contains(&b'\\') {
            continue;
        }
        // Stat relative to the directory (no path walk); follow only symlinks, to
        // list what they lead to.
        let mut meta = entry.metadata()?;
        if meta.file_type().is_symlink() {
            if !serves(name.as_bytes()) {
                continue;
            }
            match std::fs::metadata(entry.path()) {
                Ok(target) => meta = target,
                Err(_) => continue,
            }
        }
        if !meta.is_file() && !meta.is_dir() {
            continue;
        }
        let modified = meta.modified().ok().and_then(|t| t.duration_since(UNIX_EPOCH).ok()).map_or(0, |d| d.as_secs());
        entries.push(Entry { name: name.as_bytes().to_vec(), dir: meta.is_dir(), size: meta.len(), modified });
    }
    entries.sort_by(|a, b| {
        let by_key = match options.sort {
            SortKey::Name => a.name.cmp(&b.name),
            SortKey::Size => a.size.cmp(&b.size).then_with(|| a.name.cmp(&b.name)),
            SortKey::Modified => a.modified.cmp(&b.modified).then_with(|| a.name.cmp(&b.name)),
        };
        b.dir.cmp(&a.dir).then(if options.descending { by_key.reverse() } else { by_key })
    });
    Ok(entries)
}

/// The HTML page listing `entries` of the directory at URL path `path` (decoded,
/// ending with `/`).
pub(crate) fn html(path: &[u8], entries: &[Entry], options: Options) -> String {
    let mut out = String::with_capacity(1024 + entries.len() * 160);
    let title = Html(path);
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width\">\
         <title>Index of {title}</title><style>\
         body{{font:15px/1.5 system-ui,sans-serif;margin:2rem auto;max-width:60rem;padding:0 1rem;color:#222}}\
         table{{border-collapse:collapse;width:100%}}th,td{{padding:.2rem .6rem;text-align:left}}\
         td.n{{text-align:right;font-variant-numeric:tabular-nums}}tr:nth-child(even){{background:#f4f4f4}}\
         a{{color:#0645ad;text-decoration:none}}a:hover{{text-decoration:underline}}\
         @media(prefers-color-scheme:dark){{body{{background:#111;color:#ddd}}tr:nth-child(even){{background:#1c1c1c}}a{{color:#8ab4f8}}}}\
         </style></head>\n<body><h1>Index of {title}</h1>\n<table><thead><tr>"
    );
    for (label, key, class) in [("Name", "name", ""), ("Size", "size", " class=\"n\""), ("Modified", "mtime", "")] {
        let current = matches!(
            (key, options.sort),
            ("name", SortKey::Name) | ("size", SortKey::Size) | ("mtime", SortKey::Modified)
        );
        let order = if current && !options.descending { "desc" } else { "asc" };
        let _ = write!(out, "<th{class}><a href=\"?sort={key}&amp;order={order}\">{label}</a></th>");
    }
    out.push_str("</tr></thead>\n<tbody>\n");
    if path != b"/" {
        out.push_str("<tr><td><a href=\"../\">../</a></td><td class=\"n\">-</td><td></td></tr>\n");
    }
    for e in entries {
        let slash = if e.dir { "/" } else { "" };
        let _ = write!(out, "<tr><td><a href=\"./{}{slash}\">{}{slash}</a></td>", Href(&e.name), Html(&e.name));
        if e.dir {
            out.push_str("<td class=\"n\">-</td>");
        } else {
            let _ = write!(out, "<td class=\"n\">{}</td>", e.size);
        }
        let _ = writeln!(out, "<td>{}</td></tr>", Utc(e.modified));
    }
    out.push_str("</tbody></table></body></html>\n");
    out
}

/// The JSON listing: `[{"name":..,"type":"dir"|"file","size":..,"mtime":unix seconds}]`.
pub(crate) fn json(entries: &[Entry]) -> String {
    let mut out = String::with_capacity(2 + entries.len() * 80);
    out.push('[');
    for (i, e) in entries.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str("{\"name\":\"");
        for c in String::from_utf8_lossy(&e.name).chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                c if (c as u32) < 0x20 => {
                    let _ = write!(out, "\\u{:04x}", c as u32);
                }
                c => out.push(c),
            }
        }
        let kind = if e.dir { "dir" } else { "file" };
        let _ = write!(out, "\",\"type\":\"{kind}\",\"size\":{},\"mtime\":{}}}", e.size, e.modified);
    }
    out.push_str("]\n");
    out
}

/// Text escaped for HTML (invalid UTF-8 shown as U+FFFD).
struct Html<'a>(&'a [u8]);

impl std::fmt::Display for Html<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Ok(text) = std::str::from_utf8(self.0) {
            if !text.bytes().any(|b| matches!(b, b'&' | b'<' | b'>' | b'"' | b'\'')) {
                return f.write_str(text);
            }
        }
        for c in String::from_utf8_lossy(self.0).chars() {
            match c {
                '&' => f.write_str("&amp;")?,
                '<' => f.write_str("&lt;")?,
                '>' => f.write_str("&gt;")?,
                '"' => f.write_str("&quot;")?,
                '\'' => f.write_str("&#39;")?,
                c => f.write_char(c)?,
            }
        }
        Ok(())
    }
}

/// A name percent-encoded for use as one path segment in a link.
struct Href<'a>(&'a [u8]);

impl std::fmt::Display for Href<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let plain = |b: u8| b.is_ascii_alphanumeric() || b"-._~!$'()*+,;=:@".contains(&b);
        let mut rest = self.0;
        while !rest.is_empty() {
            let run = rest.iter().position(|&b| !plain(b)).unwrap_or(rest.len());
            // The run is ASCII by construction.
            f.write_str(std::str::from_utf8(&rest[..run]).unwrap_or_default())?;
            if let Some(&b) = rest.get(run) {
                write!(f, "%{b:02X}")?;
                rest = &rest[run + 1..];
            } else {
                break;
            }
        }
        Ok(())
    }
}

/// A Unix time as `2026-11-21 06:10`.
struct Utc(u64);

impl std::fmt::Display for Utc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let secs = self.0.min(super::conditional::LAST_HTTP_DATE);
        let text = httpdate::fmt_http_date(UNIX_EPOCH + std::time::Duration::from_secs(secs));
        // "Sun, 06 Nov 1994 08:49:37 GMT" → keep it as the HTTP date, minus seconds.
        f.write_str(text.get(5..22).unwrap_or(&text))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(name: &str, dir: bool, size: u64, modified: u64) -> Entry {
        Entry { name: name.as_bytes().to_vec(), dir, size, modified }
    }

    #[test]
    fn escapes_names_in_links_and_text() {
        let entries = [entry("<script>alert(1)</script>.txt", false, 5, 0), entry("a b&c\"d", true, 0, 0)];
        let page = html(b"/x/", &entries, Options::from_query(None));
        assert!(!page.contains("<script>alert"));
        assert!(page.contains("&lt;script&gt;alert(1)&lt;/script&gt;.txt"));
        assert!(page.contains("href=\"./%3Cscript%3Ealert(1)%3C%2Fscript%3E.txt\""));
        assert!(page.contains("href=\"./a%20b%26c%22d/\""));
        assert!(page.contains("href=\"../\""));
        let json = json(&entries);
        assert!(json.contains(r#""name":"a b&c\"d","type":"dir""#), "{json}");
    }

    #[test]
    fn accept_negotiation() {
        assert!(prefers_json(b"application/json"));
        assert!(prefers_json(b"Application/JSON"));
        assert!(prefers_json(b"application/json, text/html;q=0.5"));
        assert!(!prefers_json(b"text/html, application/json;q=0"));
        assert!(!prefers_json(b"text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"));
        assert!(!prefers_json(b"*/*"));
        assert!(!prefers_json(b""));
    }

    #[test]
    fn expired_listings_are_dropped_and_their_bytes_uncounted() {
        let dir = Identity { dev: 1, ino: 2, len: 0, mtime: (0, 0), ctime: (0, 0) };
        let options = Options::from_query(None);
        let hour = std::time::Duration::from_secs(3600);
        let mut cache = ListingCache::default();
        cache.insert(b"/a/", options, dir, vec![b'a'; 100].into());
        cache.insert(b"/b/", options, dir, vec![b'b'; 50].into());
        cache.expire(hour);
        assert!(cache.get(b"/a/", options, dir, hour).is_some(), "a fresh listing was dropped");
        assert_eq!(cache.bytes, 150);
        cache.expire(std::time::Duration::ZERO);
        assert!(cache.get(b"/a/", options, dir, hour).is_none() && cache.get(b"/b/", options, dir, hour).is_none());
        assert_eq!((cache.entries.len(), cache.entries.capacity(), cache.bytes), (0, 0, 0));
    }

    #[test]
    fn query_options() {
        let o = Options::from_query(Some("sort=size&order=desc&format=json"));
        assert_eq!(o, Options { sort: SortKey::Size, descending: true, json: true });
        assert_eq!(Options::from_query(Some("sort=bogus")).sort, SortKey::Name);
    }
}

/// Rendered listings, kept while file metadata may be trusted
/// (`StaticFiles::revalidate_after`): one per request path and options, served
/// again only while the directory itself is unchanged (an entry added, removed or
/// renamed changes it) and the trust interval since rendering has not passed.
#[derive(Debug, Default)]
pub(crate) struct ListingCache {
    entries: Vec<Cached>,
    bytes: usize,
}

#[derive(Debug)]
struct Cached {
    path: Box<[u8]>,
    options: Options,
    dir: Identity,
    body: std::sync::Arc<[u8]>,
    rendered: std::time::Instant,
}

/// Most listings kept, and most bytes of them.
const MAX_LISTINGS: usize = 32;
const MAX_LISTING_BYTES: usize = 8 * 1024 * 1024;

impl ListingCache {
    /// The listing of `path` with `options`, if rendered less than `valid` ago from
    /// a directory that still has identity `dir`.
    pub(crate) fn get(
        &self,
        path: &[u8],
        options: Options,
        dir: Identity,
        valid: std::time::Duration,
    ) -> Option<std::sync::Arc<[u8]>> {
        self.entries
            .iter()
            .find(|c| c.options == options && *c.path == *path)
            .filter(|c| c.dir == dir && c.rendered.elapsed() < valid)
            .map(|c| c.body.clone())
    }

    /// Drops the listings rendered `valid` or longer ago: they are never served again.
    pub(crate) fn expire(&mut self, valid: std::time::Duration) {
        let bytes = &mut self.bytes;
        self.entries.retain(|c| {
            let keep = c.rendered.elapsed() < valid;
            if !keep {
                *bytes -= c.body.len();
            }
            keep
        });
        if self.entries.is_empty() {
            self.entries = Vec::new();
        }
    }

    /// Keeps a rendered listing, dropping the oldest ones to stay within bounds.
    pub(crate) fn insert(&mut self, path: &[u8], options: Options, dir: Identity, body: std::sync::Arc<[u8]>) {
        if body.len() > MAX_LISTING_BYTES / 4 {
            return;
        }
        if let Some(i) = self.entries.iter().position(|c| c.options == options && *c.path == *path) {
            self.bytes -= self.entries.remove(i).body.len();
        }
        while self.entries.len() >= MAX_LISTINGS || self.bytes + body.len() > MAX_LISTING_BYTES {
            let Some(oldest) = self.entries.iter().enumerate().min_by_key(|(_, c)| c.rendered).map(|(i, _)| i) else {
                break;
            };
            self.bytes -= self.entries.remove(oldest).body.len();
        }
        self.bytes += body.len();
        let rendered = std::time::Instant::now();
        self.entries.push(Cached { path: path.into(), options, dir, body, rendered });
    }
}
