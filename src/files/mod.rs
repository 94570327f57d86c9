//! The static-file handler: files under a root directory with the HTTP semantics
//! people rely on — validators and conditional requests, byte ranges,
//! precompressed siblings, cache headers, directory listings, error pages.

mod cache;
pub(crate) mod conditional;
mod encoding;
mod listing;
pub(crate) mod range;
pub(crate) mod resolve;

use std::cell::{Cell, RefCell};
use std::fmt::Write as _;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub(crate) use resolve::percent_decode;

/// Normalises a decoded request path; false when it is refused (for benchmarks).
pub(crate) fn normalize(path: &[u8], out: &mut Vec<u8>) -> bool {
    resolve::normalize(path, out).is_ok()
}
use resolve::{FileError, Found, OpenFile, Root};

use crate::request::{Method, Request};
use crate::response::{known, Body, HeaderValue, Multipart, Response, SharedFields};
use crate::router::Handler;
use crate::status::Status;
use conditional::{Precondition, Validators};
use encoding::Coding;
use range::RangeRequest;

/// The handler serving the files under one root directory.
///
/// - GET and HEAD of regular files, with `Content-Type` from the name, a strong
///   `ETag` and `Last-Modified`, `Accept-Ranges: bytes`; other methods get 405
///   with `Allow: GET, HEAD`.
/// - Conditional requests (RFC 9110 §13.2.2): `If-Match` / `If-Unmodified-Since`
///   → 412, `If-None-Match` / `If-Modified-Since` → 304 (If-None-Match wins).
/// - Ranges (RFC 9110 §14): single ranges → 206, several → `multipart/byteranges`,
///   none satisfiable → 416, honoured only when `If-Range` matches.
/// - Precompressed siblings (`NAME.br`, `NAME.gz`) when `Accept-Encoding` allows,
///   never for ranges; on by default.
/// - A directory serves its `index.html`; without its trailing slash it is
///   redirected (301); without an index it is listed when listings are on, else 403.
/// - Dotfiles and anything resolving outside the root are 403, missing files 404
///   (or a configured error page, `404.html` in the root, or the SPA fallback).
///
/// Mount it with [`Router::mount`](crate::Router::mount) or
/// [`Router::fallback`](crate::Router::fallback); it serves
/// [`Request::mounted_path_bytes`].
#[derive(Debug)]
pub struct StaticFiles {
    /// The directory served; opened again when `root_path` comes to name another.
    root: RefCell<Root>,
    /// The root's path as given (made absolute), looked up again now and then.
    root_path: PathBuf,
    /// When `root_path` was last looked up, and whether it named nothing then
    /// (said once, not at every lookup).
    root_checked: Cell<cache::Stamp>,
    root_gone: Cell<bool>,
    /// Reused for normalised paths.
    scratch: RefCell<Vec<u8>>,
    /// Reused for the open-file cache's keys.
    key: RefCell<Vec<u8>>,
    cache: Option<RefCell<cache::FileCache>>,
    /// Rendered listings, kept only while file metadata may be trusted.
    listings: RefCell<listing::ListingCache>,
    /// How long a cached file is trusted before its identity is checked again.
    revalidate_after: std::time::Duration,
    listing: bool,
    precompressed: bool,
    cache_control: Option<Arc<str>>,
    error_pages: Vec<(Status, PathBuf)>,
    spa_fallback: Option<Vec<u8>>,
    /// When running out of file descriptors, and a refused permission, were last logged.
    exhausted_logged: Cell<Option<cache::Stamp>>,
    denied_logged: Cell<Option<cache::Stamp>>,
}

impl StaticFiles {
    /// Serves the directory `root`, which must exist.
    ///
    /// The path is looked up again about once a second while requests come: when
    /// it names another directory (a symlink switched to a new release, the
    /// directory removed and made again), that one is served from then on, with
    /// the caches emptied. While it names nothing, the directory already open is
    /// served.
    pub fn new(root: impl AsRef<Path>) -> io::Result<StaticFiles> {
        let given = root.as_ref();
        let cannot = |e: io::Error| io::Error::new(e.kind(), format!("cannot serve {}: {e}", given.display()));
        let root_path = std::path::absolute(given).map_err(cannot)?;
        let root = Root::open(&root_path).map_err(cannot)?;
        Ok(StaticFiles {
            root: RefCell::new(root),
            root_path,
            root_checked: Cell::new(cache::Stamp::now()),
            root_gone: Cell::new(false),
            scratch: RefCell::new(Vec::new()),
            key: RefCell::new(Vec::new()),
            cache: Some(RefCell::default()),
            listings: RefCell::default(),
            revalidate_after: std::time::Duration::ZERO,
            listing: false,
            precompressed: true,
            cache_control: None,
            error_pages: Vec::new(),
            spa_fallback: None,
            exhausted_logged: Cell::new(None),
            denied_logged: Cell::new(None),
        })
    }

    /// The canonical root directory being served.
    pub fn root(&self) -> PathBuf {
        self.root.borrow().path().to_path_buf()
    }

    /// Whether the root's path is due to be looked up again at `now`.
    fn root_check_due(&self, now: cache::Stamp) -> bool {
        now.since(self.root_checked.get()) >= ROOT_CHECK_INTERVAL
    }

    /// Opens the root again if its path has come to name another directory
    /// (looked up at most once per [`ROOT_CHECK_INTERVAL`]); whether it did.
    fn follow_root(&self, now: cache::Stamp) -> bool {
        if !self.root_check_due(now) {
            return false;
        }
        self.root_checked.set(now);
        if self.root.borrow().is_at(&self.root_path) {
            return false;
        }
        match Root::open(&self.root_path) {
            Ok(root) => {
                self.root_gone.set(false);
                log::info!("{} is now {}: serving it", self.root_path.display(), root.path().display());
                *self.root.borrow_mut() = root;
                if let Some(cache) = &self.cache {
                    *cache.borrow_mut() = cache::FileCache::new(self.revalidate_after);
                }
                *self.listings.borrow_mut() = listing::ListingCache::default();
                true
            }
            Err(e) => {
                if !self.root_gone.replace(true) {
                    let serving = self.root.borrow().path().display().to_string();
                    log::warn!("{}: {e}; still serving {serving}", self.root_path.display());
                }
                false
            }
        }
    }

    /// Lists directories that have no `index.html` (off by default: 403).
    pub fn listing(mut self, on: bool) -> StaticFiles {
        self.listing = on;
        self
    }

    /// Keeps small files (up to 64 KiB) in memory and larger ones open (at most
    /// 128 descriptors, closed after a quiet spell or when descriptors run out),
    /// revalidated against the file system with one `statx` (on by default).
    pub fn file_cache(mut self, on: bool) -> StaticFiles {
        self.cache = on.then(|| RefCell::new(cache::FileCache::new(self.revalidate_after)));
        self
    }

    /// How long a cached file is trusted before it is revalidated: zero (the
    /// default) checks on every request, so a change is served at once; a second
    /// saves that `statx` on hot files at the cost of serving a change up to a
    /// second late (nginx's `open_file_cache_valid`). Its precompressed siblings
    /// are looked for as often for clients that accept a coding; for the others
    /// only `Vary` depends on them, and follows up to a second later than that.
    pub fn revalidate_after(mut self, interval: std::time::Duration) -> StaticFiles {
        self.revalidate_after = interval;
        if let Some(cache) = &mut self.cache {
            *cache.get_mut() = cache::FileCache::new(interval);
        }
        self
    }

    /// Serves `NAME.br` / `NAME.gz` beside `NAME` to clients that accept them (on by default).
    pub fn precompressed(mut self, on: bool) -> StaticFiles {
        self.precompressed = on;
        self
    }

    /// Sends `Cache-Control: value` with file responses (200, 206, 304).
    pub fn cache_control(mut self, value: &str) -> StaticFiles {
        self.cache_control = Some(Arc::from(value));
        self
    }

    /// Answers `status` with the contents of `file` (read when needed) instead of
    /// the built-in page. Without one for 404, `404.html` in the root is used when present.
    pub fn error_page(mut self, status: Status, file: impl Into<PathBuf>) -> StaticFiles {
        self.error_pages.push((status, file.into()));
        self
    }

    /// Answers requests for missing files with `file` (a path below the root,
    /// e.g. `index.html`) and 200, as single-page applications want.
    pub fn spa_fallback(mut self, file: &str) -> StaticFiles {
        self.spa_fallback = Some(file.trim_start_matches('/').as_bytes().to_vec());
        self
    }

    /// Logs a 503 for want of file descriptors, at most once a second: under
    /// that pressure every request may fail the same way.
    fn log_exhausted(&self, req: &Request<'_>, path: &[u8]) {
        if once_a_second(&self.exhausted_logged) {
            let path = String::from_utf8_lossy(path);
            log::warn!("{}: out of file descriptors opening {path:?}; answering 503", req.peer());
        }
    }

    /// Logs (at most once a second) that opening `path` was refused by permissions.
    fn log_denied(&self, req: &Request<'_>, path: &[u8]) {
        if once_a_second(&self.denied_logged) {
            let path = String::from_utf8_lossy(path);
            log::warn!("{}: opening {path:?}: permission denied; answering 403", req.peer());
        }
    }

    /// Serves an open file: validators, preconditions, ranges, encodings.
    fn serve(&self, req: &Request<'_>, found: OpenFile, path: &mut Vec<u8>, cacheable: bool) -> Response {
        let mime = HeaderValue::mime(found.mime, found.text);
        let headers = req.headers();
        let range = headers.get_single("range");
        let siblings = self.precompressed.then(|| self.siblings(path));
        let mut sibling = None;
        if let (Some(siblings), None) = (siblings, range) {
            if let Some(accept) = headers.get_lines("accept-encoding") {
                for c in encoding::acceptable(accept).filter(|c| siblings.found[c.index()].is_some()) {
                    let len = path.len();
                    path.extend_from_slice(c.suffix());
                    let opened = self.root.borrow().open_file(path);
                    path.truncate(len);
                    if let Ok(opened) = opened {
                        sibling = Some((opened, c));
                        break;
                    }
                }
            }
        }
        let vary = siblings.is_some_and(|s| s.any());
        // The file itself is cached beside the sibling sent instead: its entry
        // holds what is known of the siblings.
        let (file, coding) = match sibling {
            Some((opened, c)) => {
                if cacheable {
                    let validators = Validators::new(found.len, found.modified, "");
                    self.remember(found, path, &mime, &validators, None, siblings);
                }
                (opened, Some(c))
            }
            None => (found, None),
        };
        let validators = Validators::new(file.len, file.modified, coding.map_or("", Coding::token));
        let mut response = match conditional::evaluate(&headers, &validators) {
            Precondition::Failed => return Response::status(Status::PRECONDITION_FAILED),
            Precondition::NotModified => Response::new(Status::NOT_MODIFIED),
            Precondition::Proceed => {
                let ranges = match range {
                    Some(value) if coding.is_none() && conditional::if_range_allows(&headers, &validators) => {
                        range::parse(value, file.len)
                    }
                    _ => RangeRequest::Whole,
                };
                match ranges {
                    RangeRequest::Whole if cacheable => Response::new(Status::OK).with_body(self.remember(
                        file,
                        path,
                        &mime,
                        &validators,
                        coding,
                        siblings,
                    )),
                    RangeRequest::Whole => {
                        Response::new(Status::OK).with_body(Body::File { file: file.file, offset: 0, len: file.len })
                    }
                    RangeRequest::Unsatisfiable => {
                        return Response::status(Status::RANGE_NOT_SATISFIABLE)
                            .with_header("Content-Range", HeaderValue::format(format_args!("bytes */{}", file.len)))
                            .with_header("Accept-Ranges", "bytes")
                    }
                    RangeRequest::Ranges(r) if r.len() == 1 => {
                        let r = r[0];
                        Response::new(Status::PARTIAL_CONTENT)
                            .with_header("Content-Range", r.content_range(file.len))
                            .with_body(Body::File { file: file.file, offset: r.start, len: r.len() })
                    }
                    RangeRequest::Ranges(r) => {
                        let boundary = boundary(&validators);
                        let mut parts = Multipart::new(file.file);
                        for (i, r) in r.iter().enumerate() {
                            let mut head = String::with_capacity(128);
                            let _ = write!(
                                head,
                                "{}--{boundary}\r\nContent-Type: {mime}\r\nContent-Range: bytes {}-{}/{}\r\n\r\n",
                                if i == 0 { "" } else { "\r\n" },
                                r.start,
                                r.end - 1,
                                file.len
                            );
                            parts.push_bytes(head.into_bytes());
                            parts.push_range(r.start, r.len());
                        }
                        parts.push_bytes(format!("\r\n--{boundary}--\r\n").into_bytes());
                        let mut response = Response::new(Status::PARTIAL_CONTENT);
                        self.file_headers(&mut response, &validators, None, vary);
                        return response
                            .with_header("Content-Type", format!("multipart/byteranges; boundary={boundary}"))
                            .with_body(Body::Multipart(parts));
                    }
                }
            }
        };
        if response.status_code() != Status::NOT_MODIFIED {
            response.set_header("Content-Type", mime);
        }
        self.file_headers(&mut response, &validators, coding, vary);
        response
    }

    /// The answer from the open-file cache when the request is for a cached file
    /// that has not changed: whole or, for a file kept open, one range of it; or
    /// the precompressed sibling the client accepts, as `serve` would pick it.
    /// Small, so that handing it out copies no `Response`.
    fn answer_from_cache(&self, req: &Request<'_>, path: &[u8]) -> Option<Cached> {
        let mut key = self.key.borrow_mut();
        key.clear();
        let cache_cell = self.cache.as_ref()?;
        let headers = req.headers();
        if !self.root.borrow().can_cache() {
            return None;
        }
        let range = headers.get_single("range");
        let Ok(trailing_slash) = resolve::normalize(path, &mut key) else {
            key.clear();
            return None;
        };
        key.push(u8::from(trailing_slash));
        let mut cache = cache_cell.borrow_mut();
        let mut entry = cache.get_mut(&key)?;
        let now = cache::Stamp::now();
        let stale =
            |checked: cache::Stamp| self.revalidate_after.is_zero() || now.since(checked) >= self.revalidate_after;
        let revalidated = stale(entry.checked);
        if self.root_check_due(now) {
            // The root may have moved to another directory: then the cache goes.
            drop(cache);
            if self.follow_root(now) {
                return None;
            }
            cache = cache_cell.borrow_mut();
            entry = cache.get_mut(&key)?;
        }
        if revalidated {
            if self.root.borrow().identity(&entry.path) != Some(entry.identity) {
                cache.remove_file(&mut key);
                return None;
            }
            entry.checked = now;
        }
        // The codings the client accepts that may be served, if any.
        let acceptable =
            headers.get_lines("accept-encoding").filter(|_| self.precompressed && range.is_none()).and_then(|accept| {
                let mut acceptable = encoding::acceptable(accept).peekable();
                acceptable.peek()?;
                Some(acceptable)
            });
        // (The stamp alone is copied: the siblings are large.)
        if let Some(known_checked) = entry.siblings.as_ref().map(|known| known.checked) {
            // Looked for as often as the file when the client may be sent one;
            // otherwise only `Vary` depends on them: with the file, at most once a second.
            let due = match acceptable {
                Some(_) => stale(known_checked),
                None => revalidated && entry.checked.since(known_checked) >= SIBLINGS_FOR_VARY,
            };
            if due {
                let mut path = self.scratch.borrow_mut();
                path.clear();
                path.extend_from_slice(entry.path.strip_suffix(b"\0").unwrap_or(&entry.path));
                let now = self.siblings(&mut path);
                if entry.siblings.as_ref().is_some_and(|known| now.found != known.found) {
                    // A sibling came, went or changed (and `Vary` may with it): the
                    // entries of the file and its siblings go (no descriptor of a
                    // deleted sibling is kept), and `serve` caches what it sends anew.
                    cache.remove_file(&mut key);
                    return None;
                }
                entry.siblings = Some(now);
            }
        }
        let sibling = acceptable.and_then(|mut acceptable| {
            let siblings = entry.siblings.as_ref()?;
            acceptable.find_map(|c| Some((c, siblings.found[c.index()]?, siblings.checked)))
        });
        let entry = match sibling {
            None => entry,
            // The sibling's entry, when it holds the sibling found; else `serve`
            // sends the sibling and caches it under the key left in `self.key`.
            Some((coding, identity, found_at)) => {
                let len = key.len();
                cache::coded_key(&mut key, coding);
                let sent = match cache.get_mut(&key) {
                    Some(sent) if sent.identity == identity => sent,
                    stale_or_none => {
                        if stale_or_none.is_some() {
                            cache.remove(&key);
                        }
                        key.truncate(len);
                        return None;
                    }
                };
                sent.checked = sent.checked.max(found_at);
                sent
            }
        };
        let len = entry.identity.len;
        let whole = |entry: &cache::Entry| Cached::Whole(entry.ok_fields.clone(), body(&entry.contents, len));
        Some(match conditional::evaluate(&headers, &entry.validators) {
            Precondition::Failed => Cached::PreconditionFailed,
            Precondition::NotModified => Cached::NotModified(entry.not_modified_fields.clone()),
            Precondition::Proceed => {
                match range.filter(|_| conditional::if_range_allows(&headers, &entry.validators)) {
                    None => whole(entry),
                    Some(value) => match (&entry.contents, range::parse(value, len)) {
                        (_, RangeRequest::Whole) => whole(entry),
                        (cache::Contents::Descriptor(file), RangeRequest::Ranges(r)) if r.len() == 1 => {
                            Cached::Part(entry.ok_fields.clone(), file.clone(), r[0], len)
                        }
                        // Several ranges, none satisfiable, or a small file: `serve` answers.
                        _ => {
                            key.clear();
                            return None;
                        }
                    },
                }
            }
        })
    }

    /// Keeps a file in the open-file cache (under the key `answer_from_cache`
    /// left, or its sibling's key for `coding`): a small one's contents, a larger
    /// one's descriptor. `path` is the file's own path below the root, and
    /// `siblings` its precompressed siblings as just looked for (`None` when
    /// they are off). Returns the body of a 200 for it, cached or not.
    fn remember(
        &self,
        file: OpenFile,
        path: &[u8],
        content_type: &HeaderValue,
        validators: &Validators,
        coding: Option<Coding>,
        siblings: Option<cache::Siblings>,
    ) -> Body {
        let uncached = |file: OpenFile| Body::File { file: file.file, offset: 0, len: file.len };
        let Some(cache) = &self.cache else { return uncached(file) };
        if !self.root.borrow().can_cache() {
            return uncached(file);
        }
        let Ok(meta) = file.file.metadata() else { return uncached(file) };
        let identity = cache::Identity::of(&meta);
        if identity.len != file.len {
            return uncached(file);
        }
        if coding.is_none() {
            // Cached already (a client was sent a sibling, or could not be): kept
            // while it knows of the siblings just found (as `answer_from_cache`
            // keeps it), with their new stamp.
            let mut cache = cache.borrow_mut();
            let same_siblings = |e: &cache::Entry| e.siblings.map(|s| s.found) == siblings.map(|s| s.found);
            if let Some(cached) =
                cache.get_mut(&self.key.borrow()).filter(|e| e.identity == identity && same_siblings(e))
            {
                cached.siblings = siblings;
                return body(&cached.contents, identity.len);
            }
        }
        let contents = if file.len <= cache::MAX_FILE {
            let mut bytes = vec![0; file.len as usize];
            if file.file.read_exact_at(&mut bytes, 0).is_err() {
                return uncached(file);
            }
            cache::Contents::Bytes(bytes.into())
        } else {
            cache::Contents::Descriptor(Arc::new(file.file))
        };
        let mut file_path = path.to_vec();
        if let Some(c) = coding {
            file_path.extend_from_slice(c.suffix());
        }
        file_path.push(0);
        // The fields answers from the cache carry, as `serve` writes them: a 200
        // with the type first, a 304 without it.
        let vary = siblings.is_some_and(|s| s.any());
        let mut ok = Response::new(Status::OK);
        ok.append_header(known::CONTENT_TYPE, content_type.clone());
        self.file_headers(&mut ok, validators, coding, vary);
        let mut not_modified = Response::new(Status::NOT_MODIFIED);
        self.file_headers(&mut not_modified, validators, coding, vary);
        let entry = cache::Entry {
            path: file_path.into(),
            identity,
            contents,
            validators: validators.clone(),
            ok_fields: SharedFields::new(ok.fields().1),
            not_modified_fields: SharedFields::new(not_modified.fields().1),
            checked: cache::Stamp::now(),
            siblings: siblings.filter(|_| coding.is_none()),
        };
        let answer = body(&entry.contents, identity.len);
        let mut key = self.key.borrow_mut();
        let mut cache = cache.borrow_mut();
        match coding {
            None => cache.insert(&key, entry),
            Some(c) => {
                // The file's entry learns of this sibling, so the next client gets it
                // from the cache; only if its fields carry `Vary` (it knew of siblings
                // already), so that they keep agreeing with what it knows.
                let own = cache.get_mut(&key).and_then(|e| e.siblings.as_mut()).filter(|s| s.any());
                if let Some(siblings) = own {
                    siblings.found[c.index()] = Some(identity);
                }
                let len = key.len();
                cache::coded_key(&mut key, c);
                cache.insert(&key, entry);
                key.truncate(len);
            }
        }
        answer
    }

    /// The precompressed siblings of the file at `path` (below the root): regular
    /// files, looked for now (with `statx`, or by opening them where paths cannot
    /// be checked without opening); `path` is extended and restored to look.
    fn siblings(&self, path: &mut Vec<u8>) -> cache::Siblings {
        let len = path.len();
        let found = Coding::ALL.map(|c| {
            path.truncate(len);
            path.extend_from_slice(c.suffix());
            if !self.root.borrow().can_cache() {
                let opened = self.root.borrow().open_file(path).ok()?;
                return opened.file.metadata().ok().map(|meta| cache::Identity::of(&meta));
            }
            path.push(0);
            self.root.borrow().identity(path)
        });
        path.truncate(len);
        cache::Siblings { checked: cache::Stamp::now(), found }
    }

    /// Closes the open-file cache's descriptors, for room when descriptors ran
    /// out; whether there were any.
    fn close_cached_descriptors(&self) -> bool {
        self.cache.as_ref().is_some_and(|cache| cache.borrow_mut().close_descriptors(|_| true))
    }

    /// The headers every file response (200, 206, 304) carries: `Vary:
    /// Accept-Encoding` when the file has a precompressed sibling (`vary`) or is one;
    /// `Content-Encoding` or `Accept-Ranges` too, except on a 304.
    /// `response` is fresh: the fields are appended, not looked for first.
    fn file_headers(&self, response: &mut Response, v: &Validators, coding: Option<Coding>, vary: bool) {
        response.append_header(known::ETAG, v.etag.clone());
        if let Some(date) = v.last_modified() {
            response.append_header(known::LAST_MODIFIED, date);
        }
        if let Some(cc) = &self.cache_control {
            response.append_header(known::CACHE_CONTROL, HeaderValue::from(cc.clone()));
        }
        if vary || coding.is_some() {
            response.append_header(known::VARY, known::ACCEPT_ENCODING);
        }
        if response.status_code() == Status::NOT_MODIFIED {
            // Only what updates a cached copy (RFC 9110 §15.4.5): not the coding or ranges.
            return;
        }
        match coding {
            Some(c) => response.append_header(known::CONTENT_ENCODING, c.token()),
            None => response.append_header(known::ACCEPT_RANGES, known::BYTES),
        }
    }

    /// A directory without an index: its listing, or 403.
    fn directory(&self, req: &Request<'_>, dir: std::fs::File, scratch: &mut Vec<u8>) -> Response {
        if !self.listing {
            return self.error(Status::FORBIDDEN, scratch);
        }
        match conditional::evaluate_unvalidated(&req.headers()) {
            Precondition::Failed => return Response::status(Status::PRECONDITION_FAILED),
            Precondition::NotModified => {
                return Response::new(Status::NOT_MODIFIED).with_header(known::VARY, known::ACCEPT)
            }
            Precondition::Proceed => {}
        }
        let mut options = listing::Options::from_query(req.query());
        options.json |= req.headers().get_bytes("accept").is_some_and(listing::prefers_json);
        let respond = |body: Body| {
            let content_type = if options.json {
                HeaderValue::mime("application/json", false)
            } else {
                HeaderValue::mime("text/html", true)
            };
            // HTML or JSON by `Accept` too: caches must tell them apart (RFC 9110 §12.5.5).
            let mut response = Response::new(Status::OK).with_header("Content-Type", content_type).with_body(body);
            response.append_header(known::VARY, known::ACCEPT);
            response
        };
        // While file metadata may be trusted for a while, so may a rendered listing.
        let identity = (self.cache.is_some() && !self.revalidate_after.is_zero())
            .then(|| dir.metadata().ok())
            .flatten()
            .map(|meta| cache::Identity::of(&meta));
        let path = req.path_bytes();
        if let Some(dir) = identity {
            if let Some(body) = self.listings.borrow().get(path, options, dir, self.revalidate_after) {
                return respond(Body::Shared(body));
            }
        }
        // A symlink is listed if fetching it would be served.
        let mut linked = Vec::new();
        let serves = |name: &[u8]| {
            linked.clear();
            // The path below the mount point, as requests are resolved.
            linked.extend_from_slice(req.mounted_path_bytes());
            if !linked.ends_with(b"/") {
                linked.push(b'/');
            }
            linked.extend_from_slice(name);
            self.root.borrow().resolve(&linked, scratch).is_ok()
        };
        let entries = match listing::read(&dir, options, serves) {
            Ok(entries) => entries,
            Err(e) => {
                log::error!("{}: listing {}: {e}", req.peer(), req.path());
                return self.error(Status::INTERNAL_SERVER_ERROR, scratch);
            }
        };
        let text = if options.json { listing::json(&entries) } else { listing::html(path, &entries, options) };
        match identity {
            Some(dir) => {
                let body: Arc<[u8]> = Arc::from(text.into_bytes());
                self.listings.borrow_mut().insert(path, options, dir, body.clone());
                respond(Body::Shared(body))
            }
            None => respond(Body::Bytes(text.into_bytes())),
        }
    }

    /// The response for `status`: a configured page, `404.html`, or the built-in one.
    fn error(&self, status: Status, scratch: &mut Vec<u8>) -> Response {
        let configured = self.error_pages.iter().find(|(s, _)| *s == status);
        let page = match configured {
            Some((_, path)) => crate::error_pages::page_file(path),
            None if status == Status::NOT_FOUND => {
                scratch.clear();
                scratch.extend_from_slice(b"404.html");
                self.root.borrow().open_file(scratch).ok().map(|f| crate::error_pages::PageFile {
                    body: Body::File { file: f.file, offset: 0, len: f.len },
                    content_type: HeaderValue::mime(f.mime, f.text),
                })
            }
            None => None,
        };
        match page {
            Some(page) => Response::new(status).with_header("Content-Type", page.content_type).with_body(page.body),
            None => Response::status(status),
        }
    }
}

/// How often at most a cached file's precompressed siblings are looked for when
/// the file is revalidated for a client that accepts no coding (only `Vary`
/// depends on them then): so `Vary` follows a sibling's coming or going within
/// this plus the revalidation interval for such clients.
const SIBLINGS_FOR_VARY: std::time::Duration = std::time::Duration::from_secs(1);

/// Scratch space (paths, keys) kept between requests when idle.
const SCRATCH_KEPT: usize = 4096;

/// How often the root's path is looked up again (on requests), to follow it to
/// another directory.
const ROOT_CHECK_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

impl Handler for StaticFiles {
    /// Drops listings past their validity, closes cached descriptors (the
    /// next request opens its file again), and drops scratch space grown past a few KiB.
    fn on_idle(&self) {
        self.listings.borrow_mut().expire(self.revalidate_after);
        self.close_cached_descriptors();
        for buffer in [&self.scratch, &self.key] {
            buffer.borrow_mut().shrink_to(SCRATCH_KEPT);
        }
    }

    fn handle(&self, req: &Request<'_>) -> Response {
        if !matches!(req.method(), Method::Get | Method::Head) {
            return Response::status(Status::METHOD_NOT_ALLOWED).with_header("Allow", "GET, HEAD");
        }
        let path = req.mounted_path_bytes();
        if let Some(answer) = self.answer_from_cache(req, path) {
            // Built in place of the return value.
            return match answer {
                Cached::PreconditionFailed => Response::status(Status::PRECONDITION_FAILED),
                Cached::NotModified(fields) => Response::shared(Status::NOT_MODIFIED, fields, Body::Empty),
                Cached::Whole(fields, body) => Response::shared(Status::OK, fields, body),
                Cached::Part(fields, file, r, len) => {
                    let body = Body::SharedFile { file, offset: r.start, len: r.len() };
                    let mut response = Response::shared(Status::PARTIAL_CONTENT, fields, body);
                    response.append_header("Content-Range", r.content_range(len));
                    response
                }
            };
        }
        // `answer_from_cache` left the key for this path in `self.key`, or cleared it
        // when this request may not be cached.
        let cacheable = !self.key.borrow().is_empty();
        self.follow_root(cache::Stamp::now());
        let mut scratch = self.scratch.borrow_mut();
        let found = if path.is_empty() {
            // The mount point itself, asked for without its slash.
            scratch.clear();
            Ok(Found::AddSlash)
        } else {
            match self.root.borrow().resolve(path, &mut scratch) {
                // Out of descriptors: the cached ones make room for this one.
                Err(FileError::Exhausted) if self.close_cached_descriptors() => {
                    self.root.borrow().resolve(path, &mut scratch)
                }
                found => found,
            }
        };
        match found {
            Ok(Found::File(file)) => self.serve(req, file, &mut scratch, cacheable),
            Ok(Found::Directory(dir)) => self.directory(req, dir, &mut scratch),
            Ok(Found::AddSlash) => {
                let prefix = &req.path_bytes()[..req.path_bytes().len() - path.len()];
                let mut location = String::with_capacity(prefix.len() + scratch.len() + 8);
                resolve::push_encoded(&mut location, prefix);
                location.push('/');
                resolve::push_encoded(&mut location, &scratch);
                if !scratch.is_empty() {
                    location.push('/');
                }
                if let Some(query) = req.query() {
                    location.push('?');
                    location.push_str(query);
                }
                Response::status(Status::MOVED_PERMANENTLY).with_header("Location", location)
            }
            Err(FileError::NotFound) if self.spa_fallback.is_some() => {
                scratch.clear();
                scratch.extend_from_slice(self.spa_fallback.as_deref().unwrap_or_default());
                match self.root.borrow().open_file(&mut scratch) {
                    Ok(file) => self.serve(req, file, &mut scratch, false),
                    Err(_) => self.error(Status::NOT_FOUND, &mut scratch),
                }
            }
            Err(e) => {
                match &e {
                    FileError::Io(io) => {
                        log::error!("{}: opening {:?}: {io}", req.peer(), String::from_utf8_lossy(&scratch))
                    }
                    FileError::Exhausted => self.log_exhausted(req, &scratch),
                    FileError::Denied => self.log_denied(req, &scratch),
                    FileError::NotFound | FileError::Forbidden => {}
                }
                self.error(e.status(), &mut scratch)
            }
        }
    }
}

/// Whether a warning last logged at `*last` may be logged again (a second on);
/// if so, now counts as the last time.
fn once_a_second(last: &Cell<Option<cache::Stamp>>) -> bool {
    let due = last.get().is_none_or(|t| t.elapsed() >= std::time::Duration::from_secs(1));
    if due {
        last.set(Some(cache::Stamp::now()));
    }
    due
}

/// What the open-file cache answers.
enum Cached {
    PreconditionFailed,
    /// 304, with these fields.
    NotModified(Arc<SharedFields>),
    /// 200, with these fields and body.
    Whole(Arc<SharedFields>, Body),
    /// 206 for one range of a file of the given length kept open, with these fields.
    Part(Arc<SharedFields>, Arc<std::fs::File>, range::ByteRange, u64),
}

/// The body of a 200 for a cached file of `len` bytes.
fn body(contents: &cache::Contents, len: u64) -> Body {
    match contents {
        cache::Contents::Bytes(bytes) => Body::Shared(bytes.clone()),
        cache::Contents::Descriptor(file) => Body::SharedFile { file: file.clone(), offset: 0, len },
    }
}

/// A multipart boundary unlikely to occur in the file: derived from its validators.
fn boundary(v: &Validators) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in v.etag().bytes() {
        hash = (hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    format!("spindle-{hash:016x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn siblings_are_regular_files_found_with_or_without_openat2() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.js"), "plain").unwrap();
        std::fs::write(dir.path().join("a.js.gz"), "gzip").unwrap();
        std::fs::create_dir(dir.path().join("a.js.br")).unwrap();
        std::fs::write(dir.path().join("b.js"), "plain").unwrap();
        std::fs::write(dir.path().join("b.js.br"), "brotli").unwrap();
        for openat2 in [true, false] {
            let mut files = StaticFiles::new(dir.path()).unwrap();
            if !openat2 {
                files.root = RefCell::new(Root::open(dir.path()).unwrap().without_openat2());
            }
            let found = |name: &[u8]| files.siblings(&mut name.to_vec()).found.map(|f| f.map(|id| id.len));
            // In `Coding::ALL` order: br, gzip. A directory named like a sibling is none.
            assert_eq!(found(b"a.js"), [None, Some(4)], "openat2: {openat2}");
            assert_eq!(found(b"b.js"), [Some(6), None], "openat2: {openat2}");
            assert_eq!(found(b"c.js"), [None, None], "openat2: {openat2}");
        }
    }
}
