//! The response a handler returns: status, header fields and a body that is
//! empty, bytes, or a file to stream.
//!
//! The server adds `Server`, `Date`, `Content-Length` and `Connection` itself;
//! fields a handler sets with those names are ignored.

use std::fmt;
use std::fs::File;
use std::io;
use std::sync::Arc;

use smallvec::SmallVec;

use crate::status::Status;

/// A header field value (or name). Cheap to build from a `&'static str`, a
/// `String`, or an `Arc<str>` shared by many responses.
/// Values compare by their text, whatever their representation.
#[derive(Clone, Debug)]
pub struct HeaderValue(Repr);

impl PartialEq for HeaderValue {
    fn eq(&self, other: &HeaderValue) -> bool {
        fn text(v: &HeaderValue) -> impl Iterator<Item = u8> + '_ {
            let [a, b] = v.parts();
            a.bytes().chain(b.bytes())
        }
        text(self).eq(text(other))
    }
}

impl Eq for HeaderValue {}

#[derive(Clone, Debug)]
enum Repr {
    Static(&'static str),
    /// A value of this crate's own, checked when it was built (see [`HeaderValue::known`]).
    Known(&'static str),
    /// A field name of this crate's own, checked when it was built (see
    /// [`HeaderValue::known_name`]). Apart from values, so that a value taken
    /// from a response and used as a name is still checked as a name.
    KnownName(&'static str),
    Owned(Box<str>),
    Shared(Arc<str>),
    /// Text this crate composed (see [`HeaderValue::format`]), too long to be inline.
    KnownShared(Arc<str>),
    /// A media type followed by `; charset=utf-8`.
    TextMime(&'static str),
    /// A short value kept inline (ranges, small numbers), built without allocating.
    Inline(InlineText),
}

// Every response carries a few of these, and a `Response` is moved a few times
// per request: kept at three words (inline text fills what a pointer pair leaves).
const _: () = assert!(std::mem::size_of::<HeaderValue>() == 24);

/// Up to 22 bytes of text kept inline, written with `write!`.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct InlineText {
    buf: [u8; 22],
    len: u8,
}

impl InlineText {
    pub(crate) fn new() -> InlineText {
        InlineText { buf: [0; 22], len: 0 }
    }

    pub(crate) fn as_str(&self) -> &str {
        let bytes = self.buf.get(..usize::from(self.len)).unwrap_or_default();
        // SAFETY: `buf[..len]` is only ever extended by whole `&str`s (`write_str`
        // copies all of one or nothing), so it is UTF-8. Read on every response
        // head that carries such a value: validating it each time showed in profiles.
        unsafe { std::str::from_utf8_unchecked(bytes) }
    }
}

impl fmt::Write for InlineText {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let start = usize::from(self.len);
        let dest = self.buf.get_mut(start..start + s.len()).ok_or(fmt::Error)?;
        dest.copy_from_slice(s.as_bytes());
        self.len += s.len() as u8;
        Ok(())
    }
}

impl fmt::Debug for InlineText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl HeaderValue {
    /// A header field name of this crate's own: an RFC 9110 token, checked when
    /// built (at compile time in a `const`), so never checked again per response.
    /// Never one of the fields the connection writes itself (`Content-Length` …).
    pub(crate) const fn known_name(name: &'static str) -> HeaderName {
        let bytes = name.as_bytes();
        assert!(!bytes.is_empty(), "empty header field name");
        let mut i = 0;
        while i < bytes.len() {
            assert!(is_tchar(bytes[i]), "header field name is not a token");
            i += 1;
        }
        HeaderValue(Repr::KnownName(name))
    }

    /// A header field value of this crate's own, checked for CR, LF and NUL when
    /// built (at compile time in a `const`), so never checked again per response.
    pub(crate) const fn known(value: &'static str) -> HeaderValue {
        let bytes = value.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            assert!(!matches!(bytes[i], b'\r' | b'\n' | 0), "CR, LF or NUL in a header field value");
            i += 1;
        }
        HeaderValue(Repr::Known(value))
    }

    /// `mime` (a media type from `mime_guess` or this crate), with
    /// `; charset=utf-8` appended when `text`.
    pub(crate) fn mime(mime: &'static str, text: bool) -> HeaderValue {
        debug_assert!(!mime.bytes().any(|b| matches!(b, b'\r' | b'\n' | 0)));
        HeaderValue(if text { Repr::TextMime(mime) } else { Repr::Known(mime) })
    }

    /// Whether this crate built the value and checked it then (no CR, LF or NUL).
    pub(crate) fn is_known(&self) -> bool {
        matches!(self.0, Repr::Known(_) | Repr::KnownShared(_) | Repr::TextMime(_) | Repr::Inline(_))
    }

    /// Whether this is a field name the crate built and checked then (a token
    /// the connection does not manage).
    pub(crate) fn is_known_name(&self) -> bool {
        matches!(self.0, Repr::KnownName(_))
    }

    /// A value this crate composes from numbers, dates and its own tokens (never
    /// from text it was given: the result counts as checked), inline when short
    /// enough, else shared so that clones of it (cached validators) do not allocate.
    pub(crate) fn format(args: fmt::Arguments<'_>) -> HeaderValue {
        let mut inline = InlineText::new();
        match fmt::Write::write_fmt(&mut inline, args) {
            Ok(()) => HeaderValue(Repr::Inline(inline)),
            Err(_) => HeaderValue(Repr::KnownShared(Arc::from(args.to_string()))),
        }
    }

    /// The text, without the charset suffix of a media type.
    pub(crate) fn as_str(&self) -> &str {
        self.parts()[0]
    }

    /// The value's parts, to be written one after the other.
    pub(crate) fn parts(&self) -> [&str; 2] {
        match &self.0 {
            Repr::Static(s) | Repr::Known(s) | Repr::KnownName(s) => [s, ""],
            Repr::Owned(s) => [s, ""],
            Repr::Shared(s) | Repr::KnownShared(s) => [s, ""],
            Repr::TextMime(m) => [m, "; charset=utf-8"],
            Repr::Inline(t) => [t.as_str(), ""],
        }
    }

    /// Whether the value may be written into a head: no control characters but
    /// tab (RFC 9110 §5.5). A response field whose value is not is left out.
    pub fn is_valid(&self) -> bool {
        !self.parts().iter().any(|p| has_control(p))
    }
}

impl fmt::Display for HeaderValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b] = self.parts();
        f.write_str(a)?;
        f.write_str(b)
    }
}

impl From<&'static str> for HeaderValue {
    fn from(s: &'static str) -> HeaderValue {
        HeaderValue(Repr::Static(s))
    }
}

impl From<String> for HeaderValue {
    fn from(s: String) -> HeaderValue {
        HeaderValue(Repr::Owned(s.into_boxed_str()))
    }
}

impl From<Arc<str>> for HeaderValue {
    fn from(s: Arc<str>) -> HeaderValue {
        HeaderValue(Repr::Shared(s))
    }
}

/// Whether `text` has a byte no field value may hold: a control character
/// other than tab (CR and LF would end the field, NUL is refused by clients).
pub(crate) fn has_control(text: &str) -> bool {
    // Without early exit, so that the scan is vectorised: values are short.
    text.bytes().fold(false, |bad, b| bad | (b < 0x20 && b != b'\t') | (b == 0x7f))
}

/// Whether `b` may appear in an RFC 9110 token (a header field name, say).
pub(crate) fn is_token_byte(b: u8) -> bool {
    TOKEN[usize::from(b)]
}

/// Whether `c` is an RFC 9110 `tchar`.
const fn is_tchar(c: u8) -> bool {
    c.is_ascii_alphanumeric()
        || matches!(
            c,
            b'!' | b'#' | b'$' | b'%' | b'&' | b'\'' | b'*' | b'+' | b'-' | b'.' | b'^' | b'_' | b'`' | b'|' | b'~'
        )
}

/// RFC 9110 `tchar`s, by byte value.
static TOKEN: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        table[b] = is_tchar(b as u8);
        b += 1;
    }
    table
};

/// Whether `name` is a valid header field name (an RFC 9110 token). Checked on
/// every field of every response: a table lookup per byte, without early exit.
pub(crate) fn is_token(name: &str) -> bool {
    !name.is_empty() && name.bytes().fold(true, |ok, b| ok & TOKEN[usize::from(b)])
}

/// A header field name: the same cheap text type as values.
pub type HeaderName = HeaderValue;

/// Header field names and values this crate writes on the file path, checked
/// once at compile time instead of on every response.
pub(crate) mod known {
    use super::{HeaderName, HeaderValue};

    pub(crate) const CONTENT_TYPE: HeaderName = HeaderValue::known_name("Content-Type");
    pub(crate) const ETAG: HeaderName = HeaderValue::known_name("ETag");
    pub(crate) const LAST_MODIFIED: HeaderName = HeaderValue::known_name("Last-Modified");
    pub(crate) const CACHE_CONTROL: HeaderName = HeaderValue::known_name("Cache-Control");
    pub(crate) const VARY: HeaderName = HeaderValue::known_name("Vary");
    pub(crate) const CONTENT_ENCODING: HeaderName = HeaderValue::known_name("Content-Encoding");
    pub(crate) const ACCEPT_RANGES: HeaderName = HeaderValue::known_name("Accept-Ranges");
    pub(crate) const BYTES: HeaderValue = HeaderValue::known("bytes");
    pub(crate) const ACCEPT_ENCODING: HeaderValue = HeaderValue::known("Accept-Encoding");
    pub(crate) const ACCEPT: HeaderValue = HeaderValue::known("Accept");
}

/// The body of a [`Response`]. New kinds of body may be added: matches on it
/// need a wildcard arm.
#[derive(Debug, Default)]
#[non_exhaustive]
pub enum Body {
    /// No body.
    #[default]
    Empty,
    /// Bytes that live for the whole program.
    Static(&'static [u8]),
    /// Bytes owned by the response.
    Bytes(Vec<u8>),
    /// Bytes shared with other responses (e.g. a cached file).
    Shared(Arc<[u8]>),
    /// The server's small built-in HTML page for a status (see [`Response::status`]).
    Page(Status),
    /// Parts of a file with bytes between them (`multipart/byteranges`), streamed.
    Multipart(Multipart),
    /// `len` bytes of `file` from `offset`, streamed in bounded chunks.
    File {
        /// The open file.
        file: File,
        /// Where the body starts in the file.
        offset: u64,
        /// How many bytes are sent.
        len: u64,
    },
    /// `len` bytes of a file shared with other responses (e.g. a cached
    /// descriptor) from `offset`, streamed like [`Body::File`]; it is read only
    /// at explicit offsets, so sharing it is safe.
    SharedFile {
        /// The open file.
        file: Arc<File>,
        /// Where the body starts in the file.
        offset: u64,
        /// How many bytes are sent.
        len: u64,
    },
}

impl Body {
    /// The body's length in bytes.
    pub fn len(&self) -> u64 {
        match self {
            Body::Empty => 0,
            Body::Static(b) => b.len() as u64,
            Body::Bytes(b) => b.len() as u64,
            Body::Shared(b) => b.len() as u64,
            Body::Page(status) => crate::head::page_len(*status),
            Body::File { len, .. } | Body::SharedFile { len, .. } => *len,
            Body::Multipart(m) => m.len,
        }
    }

    /// Whether the body is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A body made of in-memory pieces and ranges of one file, in order (for
/// `multipart/byteranges`).
#[derive(Debug)]
pub struct Multipart {
    pub(crate) file: File,
    pub(crate) segments: std::collections::VecDeque<Segment>,
    len: u64,
}

/// One piece of a [`Multipart`] body.
#[derive(Debug)]
pub(crate) enum Segment {
    /// Bytes, and how many of them were sent.
    Bytes(Vec<u8>, usize),
    /// A range of the file: (offset, bytes left).
    Range(u64, u64),
}

impl Multipart {
    /// An empty body over `file`.
    pub fn new(file: File) -> Multipart {
        Multipart { file, segments: std::collections::VecDeque::new(), len: 0 }
    }

    /// Appends bytes.
    pub fn push_bytes(&mut self, bytes: Vec<u8>) {
        self.len += bytes.len() as u64;
        self.segments.push_back(Segment::Bytes(bytes, 0));
    }

    /// Appends `len` bytes of the file from `offset`.
    pub fn push_range(&mut self, offset: u64, len: u64) {
        self.len += len;
        self.segments.push_back(Segment::Range(offset, len));
    }
}

/// The header fields of a response, kept inline for the usual few.
pub(crate) type HeaderFields = SmallVec<[(HeaderName, HeaderValue); 8]>;

/// Header fields that many responses share (a cached file's type and
/// validators), encoded once as `name: value\r\n` lines when built, so that
/// a response carrying them writes one block instead of field after field.
#[derive(Debug)]
pub(crate) struct SharedFields {
    fields: Box<[(HeaderName, HeaderValue)]>,
    encoded: Box<[u8]>,
}

impl SharedFields {
    /// The fields, encoded as a response head would carry them (fields the
    /// connection writes itself, or that cannot be written safely, are left out
    /// of the encoding, as they would be from a head).
    pub(crate) fn new(fields: &[(HeaderName, HeaderValue)]) -> Arc<SharedFields> {
        let mut encoded = Vec::new();
        for (name, value) in fields {
            if !crate::head::write_field(&mut encoded, name, value) {
                log::error!("dropping invalid response header field {:?}", name.as_str());
            }
        }
        Arc::new(SharedFields { fields: fields.into(), encoded: encoded.into() })
    }

    /// The encoded fields.
    pub(crate) fn encoded(&self) -> &[u8] {
        &self.encoded
    }
}

/// An HTTP response.
#[derive(Debug)]
pub struct Response {
    status: Status,
    /// Fields shared with other responses: they come before `headers`.
    shared: Option<Arc<SharedFields>>,
    headers: HeaderFields,
    body: Body,
    /// Close the connection after this response.
    close: bool,
    /// Hold the response back this long before sending it.
    delay: Option<std::time::Duration>,
    /// The access-log line to write once the response has gone out.
    pub(crate) pending_log: Option<Box<crate::access_log::PendingLine>>,
}

impl Response {
    /// A response with `status`, no header fields and an empty body.
    pub fn new(status: Status) -> Response {
        Response {
            status,
            shared: None,
            headers: SmallVec::new(),
            body: Body::Empty,
            close: false,
            delay: None,
            pending_log: None,
        }
    }

    /// 200 with a `text/plain; charset=utf-8` body.
    pub fn text(body: impl Into<String>) -> Response {
        Response::new(Status::OK)
            .with_header("Content-Type", HeaderValue::mime("text/plain", true))
            .with_body(Body::Bytes(body.into().into_bytes()))
    }

    /// 200 with a `text/html; charset=utf-8` body.
    pub fn html(body: impl Into<String>) -> Response {
        Response::new(Status::OK)
            .with_header("Content-Type", HeaderValue::mime("text/html", true))
            .with_body(Body::Bytes(body.into().into_bytes()))
    }

    /// 200 with an `application/json` body (the caller supplies valid JSON).
    pub fn json(body: impl Into<String>) -> Response {
        Response::new(Status::OK)
            .with_header("Content-Type", HeaderValue::mime("application/json", false))
            .with_body(Body::Bytes(body.into().into_bytes()))
    }

    /// `status` with the server's small built-in HTML page as its body.
    pub fn status(status: Status) -> Response {
        Response::new(status)
            .with_header("Content-Type", HeaderValue::mime("text/html", true))
            .with_body(Body::Page(status))
    }

    /// 200 streaming all of `file` (its length is read from its metadata).
    pub fn file(file: File) -> io::Result<Response> {
        let len = file.metadata()?.len();
        Ok(Response::new(Status::OK).with_body(Body::File { file, offset: 0, len }))
    }

    /// The status.
    pub fn status_code(&self) -> Status {
        self.status
    }

    /// Changes the status.
    pub fn set_status(&mut self, status: Status) {
        self.status = status;
    }

    /// Sets header `name` to `value`, replacing fields of that name (any case).
    pub fn set_header(&mut self, name: impl Into<HeaderName>, value: impl Into<HeaderValue>) {
        let name = name.into();
        if self
            .shared
            .as_ref()
            .is_some_and(|s| s.fields.iter().any(|(n, _)| n.as_str().eq_ignore_ascii_case(name.as_str())))
        {
            self.unshare();
        }
        self.headers.retain(|(n, _)| !n.as_str().eq_ignore_ascii_case(name.as_str()));
        self.headers.push((name, value.into()));
    }

    /// Adds a field `name: value`, keeping existing fields of that name.
    pub fn append_header(&mut self, name: impl Into<HeaderName>, value: impl Into<HeaderValue>) {
        self.headers.push((name.into(), value.into()));
    }

    /// Builder form of [`set_header`](Response::set_header).
    pub fn with_header(mut self, name: impl Into<HeaderName>, value: impl Into<HeaderValue>) -> Response {
        self.set_header(name, value);
        self
    }

    /// The first value of header `name` (any case).
    pub fn header(&self, name: &str) -> Option<&HeaderValue> {
        self.all_fields().find(|(n, _)| n.as_str().eq_ignore_ascii_case(name)).map(|(_, v)| v)
    }

    /// Whether a field called `name` (any case) is set.
    pub fn has_header(&self, name: &str) -> bool {
        self.header(name).is_some()
    }

    /// All header fields, in order.
    pub fn headers(&self) -> impl Iterator<Item = (&str, &HeaderValue)> {
        self.all_fields().map(|(n, v)| (n.as_str(), v))
    }

    /// The shared fields, then the response's own.
    fn all_fields(&self) -> impl Iterator<Item = &(HeaderName, HeaderValue)> {
        self.shared.iter().flat_map(|s| s.fields.iter()).chain(self.headers.iter())
    }

    /// A response with `status`, `fields` shared with other responses, none of
    /// its own, and `body`. Inlined, so that it is built where it is returned to.
    #[inline]
    pub(crate) fn shared(status: Status, fields: Arc<SharedFields>, body: Body) -> Response {
        Response {
            status,
            shared: Some(fields),
            headers: SmallVec::new(),
            body,
            close: false,
            delay: None,
            pending_log: None,
        }
    }

    /// Makes the shared fields the response's own, so that they can be changed.
    fn unshare(&mut self) {
        if let Some(shared) = self.shared.take() {
            let own = std::mem::take(&mut self.headers);
            self.headers.extend(shared.fields.iter().cloned());
            self.headers.extend(own);
        }
    }

    /// Replaces the body.
    pub fn with_body(mut self, body: impl Into<Body>) -> Response {
        self.body = body.into();
        self
    }

    /// Replaces the body.
    pub fn set_body(&mut self, body: impl Into<Body>) {
        self.body = body.into();
    }

    /// The body.
    pub fn body(&self) -> &Body {
        &self.body
    }

    /// Asks the server to close the connection after this response.
    pub fn with_close(mut self) -> Response {
        self.close = true;
        self
    }

    /// Asks the server to send this response only after `delay`, timed by the
    /// event loop (nothing sleeps; other clients are served meanwhile). A zero
    /// delay is none: the response is sent at once. A client that closes its
    /// side while it waits is taken to have given up: its connection closes at
    /// once and the access log records status 499.
    pub fn with_delay(mut self, delay: std::time::Duration) -> Response {
        self.delay = Some(delay).filter(|d| !d.is_zero());
        self
    }

    /// How long the server holds this response back.
    pub fn delay(&self) -> Option<std::time::Duration> {
        self.delay
    }

    /// Takes the delay off (the server, when it is over).
    pub(crate) fn take_delay(&mut self) -> Option<std::time::Duration> {
        self.delay.take()
    }

    /// Whether the connection closes after this response.
    pub fn closes(&self) -> bool {
        self.close
    }

    /// The shared fields (to be written first) and the response's own fields,
    /// for encoding the head in place.
    pub(crate) fn fields(&self) -> (Option<&SharedFields>, &HeaderFields) {
        (self.shared.as_deref(), &self.headers)
    }

    /// Takes the body out, leaving it empty.
    pub(crate) fn take_body(&mut self) -> Body {
        std::mem::take(&mut self.body)
    }
}

impl From<Vec<u8>> for Body {
    fn from(b: Vec<u8>) -> Body {
        Body::Bytes(b)
    }
}

impl From<String> for Body {
    fn from(s: String) -> Body {
        Body::Bytes(s.into_bytes())
    }
}

impl From<&'static [u8]> for Body {
    fn from(b: &'static [u8]) -> Body {
        Body::Static(b)
    }
}

impl From<&'static str> for Body {
    fn from(s: &'static str) -> Body {
        Body::Static(s.as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_zero_delay_is_none() {
        let ms = std::time::Duration::from_millis;
        assert_eq!(Response::new(Status::OK).with_delay(ms(0)).delay(), None);
        assert_eq!(Response::new(Status::OK).with_delay(ms(5)).delay(), Some(ms(5)));
    }

    #[test]
    fn formatted_values_are_inline_when_short() {
        let v = HeaderValue::format(format_args!("bytes {}-{}/{}", 0, 99, 1000));
        assert!(matches!(v.0, Repr::Inline(_)));
        assert_eq!(v.to_string(), "bytes 0-99/1000");
        let long = HeaderValue::format(format_args!("{}", "x".repeat(100)));
        assert!(matches!(long.0, Repr::KnownShared(_)));
        assert_eq!(long.to_string().len(), 100);
    }

    #[test]
    fn builders_set_type_and_body() {
        let r = Response::json(r#"{"a":1}"#);
        assert_eq!(r.status_code(), Status::OK);
        assert_eq!(r.header("content-type").map(|v| v.to_string()), Some("application/json".into()));
        assert_eq!(r.body().len(), 7);
        let r = Response::text("hi").with_header("X-A", "1").with_header("x-a", "2");
        assert_eq!(r.headers().filter(|(n, _)| n.eq_ignore_ascii_case("x-a")).count(), 1);
        assert_eq!(r.header("X-A").map(|v| v.to_string()), Some("2".into()));
        assert_eq!(r.header("Content-Type").map(|v| v.to_string()), Some("text/plain; charset=utf-8".into()));
        let page = Response::status(Status::NOT_FOUND);
        assert_eq!(page.body().len(), crate::head::page_len(Status::NOT_FOUND));
        assert!(!HeaderValue::from(String::from("a\r\nb")).is_valid());
        assert!(!HeaderValue::from("a\x01b").is_valid() && !HeaderValue::from("a\x7fb").is_valid());
        assert!(HeaderValue::from("a\tb, \u{e9}").is_valid());
    }

    #[test]
    fn values_compare_by_text_whatever_their_representation() {
        assert_eq!(HeaderValue::mime("text/html", true), HeaderValue::from("text/html; charset=utf-8"));
        assert_eq!(HeaderValue::mime("application/json", false), HeaderValue::from(String::from("application/json")));
        assert_eq!(HeaderValue::known("bytes"), HeaderValue::from(Arc::<str>::from("bytes")));
        assert_eq!(HeaderValue::format(format_args!("{}", 42)), HeaderValue::from("42"));
        assert_ne!(HeaderValue::mime("text/html", true), HeaderValue::from("text/html"));
        assert_ne!(HeaderValue::from("a"), HeaderValue::from("ab"));
    }
}
