//! Internal functions exposed for the fuzz targets in `fuzz/` and the property
//! tests in `tests/properties.rs`; not a stable API.
//!
//! Each item is a thin wrapper over the function the server itself calls, with
//! crate-private types translated into plain ones. No parsing logic lives here.

use std::fs::File;
use std::io;
use std::path::Path;
use std::time::{Duration, UNIX_EPOCH};

use crate::files::{conditional, range, resolve};
use crate::request::with_headers;

/// A range of the input buffer: `start..end`.
pub type Span = (usize, usize);

/// How a request body is delimited.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyFraming {
    /// No body.
    None,
    /// `Content-Length: n`.
    Fixed(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
}

/// A complete, valid request head, by ranges of the buffer it was parsed from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Head {
    /// Bytes of the head including the final empty line.
    pub len: usize,
    /// The method token.
    pub method: Span,
    /// The request target.
    pub target: Span,
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub minor_version: u8,
    /// Whether the connection may persist after this request.
    pub keep_alive: bool,
    /// How the body is delimited.
    pub body: BodyFraming,
    /// Whether the client sent `Expect: 100-continue`.
    pub expect_continue: bool,
    /// Each header field as (name, value).
    pub headers: Vec<(Span, Span)>,
}

/// Parses the request head at the start of `buf` as the server does, with a head
/// size limit of `max_len`: `Ok(None)` when incomplete, `Err(status)` when refused.
pub fn parse_head(buf: &[u8], max_len: usize) -> Result<Option<Head>, u16> {
    let mut spans = Vec::new();
    let head = match crate::parse::parse_head(buf, max_len, &mut spans) {
        Ok(Some(head)) => head,
        Ok(None) => return Ok(None),
        Err(crate::parse::HeadError::NewerMinor { minor }) => {
            // As the connection does: HTTP/1.x read as HTTP/1.1, offsets unchanged.
            let mut patched = buf.to_vec();
            patched[minor] = b'1';
            return parse_head(&patched, max_len);
        }
        Err(e) => return Err(e.status().code()),
    };
    let span = |(a, b): (u32, u32)| (a as usize, b as usize);
    Ok(Some(Head {
        len: head.len,
        method: head.method_span,
        target: head.target,
        minor_version: head.minor_version,
        keep_alive: head.keep_alive,
        body: match head.body {
            crate::parse::BodyLength::None => BodyFraming::None,
            crate::parse::BodyLength::Fixed(n) => BodyFraming::Fixed(n),
            crate::parse::BodyLength::Chunked => BodyFraming::Chunked,
        },
        expect_continue: head.expect_continue,
        headers: spans.iter().map(|s| (span(s.name), span(s.value))).collect(),
    }))
}

/// The server's quick scan for the end of a head, from offset `from`; the index
/// just past the terminator.
pub fn find_head_end(buf: &[u8], from: usize) -> Option<usize> {
    crate::parse::find_head_end(buf, from)
}

/// Whether the connection parses `buf` as a head, having scanned up to `from`
/// without finding an end before.
pub fn holds_head(buf: &[u8], from: usize) -> bool {
    crate::parse::holds_head(buf, from)
}

/// The status answered when a head is still incomplete after filling the buffer.
pub fn incomplete_status(buf: &[u8]) -> u16 {
    crate::parse::incomplete_error(buf).status().code()
}

/// One decoding step: input bytes consumed and the range of them that is data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Step {
    /// Input bytes consumed.
    pub consumed: usize,
    /// The body data among them.
    pub data: Span,
}

/// The server's incremental request-body decoder.
#[derive(Clone, Debug)]
pub struct BodyDecoder(crate::body::BodyDecoder);

impl BodyDecoder {
    /// A decoder for a `Transfer-Encoding: chunked` body.
    pub fn chunked() -> Option<BodyDecoder> {
        crate::body::BodyDecoder::new(crate::parse::BodyLength::Chunked).map(BodyDecoder)
    }

    /// A decoder for a `Content-Length: n` body.
    pub fn fixed(n: u64) -> Option<BodyDecoder> {
        crate::body::BodyDecoder::new(crate::parse::BodyLength::Fixed(n)).map(BodyDecoder)
    }

    /// Consumes a prefix of `input`; `Err` carries the reason a body is refused.
    pub fn decode(&mut self, input: &[u8]) -> Result<Step, &'static str> {
        self.0.decode(input).map(|s| Step { consumed: s.consumed, data: s.data }).map_err(|e| e.0)
    }

    /// Whether the whole body has been consumed.
    pub fn is_done(&self) -> bool {
        self.0.is_done()
    }
}

/// Splits a request target into its path and query ranges as the server does;
/// `None` for a target form it refuses.
pub fn split_target(target: &[u8]) -> Option<(Span, Option<Span>)> {
    crate::conn::split_target(target)
}

/// Percent-decodes `raw` into `out`; false for a malformed escape.
pub fn percent_decode(raw: &[u8], out: &mut Vec<u8>) -> bool {
    crate::files::percent_decode(raw, out).is_some()
}

/// Normalises a decoded absolute path into `out` (relative to the root); `None`
/// when refused, else whether the path ends with a slash.
pub fn normalize(path: &[u8], out: &mut Vec<u8>) -> Option<bool> {
    resolve::normalize(path, out).ok()
}

/// What resolving a path under a root found.
#[derive(Debug)]
pub enum Resolved {
    /// A regular file to send.
    File(File),
    /// A directory without `index.html`.
    Directory(File),
    /// A directory asked for without its trailing slash (a redirect).
    AddSlash,
}

/// A root directory, as the static-file handler opens it.
#[derive(Debug)]
pub struct Root(resolve::Root);

impl Root {
    /// Opens the directory `path`.
    pub fn open(path: &Path) -> io::Result<Root> {
        resolve::Root::open(path).map(Root)
    }

    /// The canonical root path.
    pub fn path(&self) -> &Path {
        self.0.path()
    }

    /// Resolves a percent-decoded path (starting with `/`); `scratch` is left with
    /// the normalised path relative to the root. `Err` is the response status.
    pub fn resolve(&self, path: &[u8], scratch: &mut Vec<u8>) -> Result<Resolved, u16> {
        match self.0.resolve(path, scratch) {
            Ok(resolve::Found::File(f)) => Ok(Resolved::File(f.file)),
            Ok(resolve::Found::Directory(d)) => Ok(Resolved::Directory(d)),
            Ok(resolve::Found::AddSlash) => Ok(Resolved::AddSlash),
            Err(e) => Err(e.status().code()),
        }
    }

    /// Resolves a raw request target the way a request reaches the static-file
    /// handler mounted as the fallback: target split, path percent-decoded (an
    /// empty path is `/`), then resolved. `Err(400)` where the server answers 400.
    pub fn resolve_target(&self, target: &[u8], decoded: &mut Vec<u8>, scratch: &mut Vec<u8>) -> Result<Resolved, u16> {
        let Some(((start, end), _)) = split_target(target) else { return Err(400) };
        if !percent_decode(&target[start..end], decoded) {
            return Err(400);
        }
        if decoded.is_empty() {
            decoded.push(b'/');
        }
        self.resolve(decoded, scratch)
    }
}

/// What a `Range` header asks of a representation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ranges {
    /// Ignored: send the whole representation.
    Whole,
    /// 416.
    Unsatisfiable,
    /// The ranges to send, as `start..end` (end exclusive).
    Ranges(Vec<(u64, u64)>),
}

/// Parses a `Range` header value against a representation of `len` bytes.
pub fn parse_range(value: &[u8], len: u64) -> Ranges {
    match range::parse(value, len) {
        range::RangeRequest::Whole => Ranges::Whole,
        range::RangeRequest::Unsatisfiable => Ranges::Unsatisfiable,
        range::RangeRequest::Ranges(r) => Ranges::Ranges(r.iter().map(|r| (r.start, r.end)).collect()),
    }
}

/// The most ranges honoured in one request.
pub const MAX_RANGES: usize = range::MAX_RANGES;

/// The outcome of evaluating preconditions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Precondition {
    /// Send the representation.
    Proceed,
    /// 304.
    NotModified,
    /// 412.
    Failed,
}

/// The validators of a file of `len` bytes modified `modified` seconds after the epoch.
#[derive(Clone, Debug)]
pub struct Validators(conditional::Validators);

impl Validators {
    /// Validators as the static-file handler derives them (identity coding).
    pub fn new(len: u64, modified: u64) -> Validators {
        Validators(conditional::Validators::new(len, UNIX_EPOCH + Duration::from_secs(modified), ""))
    }

    /// The strong entity tag, quoted.
    pub fn etag(&self) -> &str {
        self.0.etag()
    }

    /// The `Last-Modified` value; `None` for a modification time in the future.
    pub fn last_modified(&self) -> Option<String> {
        self.0.last_modified().map(|d| d.to_string())
    }

    /// Evaluates the preconditions among `headers` (name, value) for a GET.
    pub fn evaluate(&self, headers: &[(&str, &[u8])]) -> Precondition {
        with_headers(headers, |h| match conditional::evaluate(h, &self.0) {
            conditional::Precondition::Proceed => Precondition::Proceed,
            conditional::Precondition::NotModified => Precondition::NotModified,
            conditional::Precondition::Failed => Precondition::Failed,
        })
    }

    /// Whether `If-Range` among `headers` lets a `Range` be honoured.
    pub fn if_range_allows(&self, headers: &[(&str, &[u8])]) -> bool {
        with_headers(headers, |h| conditional::if_range_allows(h, &self.0))
    }
}
