//! The request a handler sees: a view over the connection's buffers, valid for
//! the duration of one handler call. Building one allocates nothing.

use std::borrow::Cow;
use std::fmt;
use std::net::SocketAddr;

/// A request method.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Method {
    /// GET
    Get,
    /// HEAD
    Head,
    /// POST
    Post,
    /// PUT
    Put,
    /// DELETE
    Delete,
    /// OPTIONS
    Options,
    /// TRACE
    Trace,
    /// CONNECT
    Connect,
    /// PATCH
    Patch,
    /// Any other method token (answered with 501 before reaching a handler).
    Other,
}

impl Method {
    /// The method for a request-line token (case-sensitive, as RFC 9110 says).
    pub fn from_token(token: &str) -> Method {
        match token {
            "GET" => Method::Get,
            "HEAD" => Method::Head,
            "POST" => Method::Post,
            "PUT" => Method::Put,
            "DELETE" => Method::Delete,
            "OPTIONS" => Method::Options,
            "TRACE" => Method::Trace,
            "CONNECT" => Method::Connect,
            "PATCH" => Method::Patch,
            _ => Method::Other,
        }
    }

    /// The method's token, e.g. `"GET"` (`"OTHER"` for [`Method::Other`]).
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Head => "HEAD",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Delete => "DELETE",
            Method::Options => "OPTIONS",
            Method::Trace => "TRACE",
            Method::Connect => "CONNECT",
            Method::Patch => "PATCH",
            Method::Other => "OTHER",
        }
    }

    /// A bit for sets of methods (see `Allow`).
    pub(crate) fn bit(self) -> u16 {
        1 << self as u16
    }

    /// The known methods, in the order `Allow` lists them.
    pub(crate) const ALL: [Method; 9] = [
        Method::Get,
        Method::Head,
        Method::Post,
        Method::Put,
        Method::Delete,
        Method::Options,
        Method::Trace,
        Method::Connect,
        Method::Patch,
    ];
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The protocol version of a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Version {
    /// HTTP/1.0
    Http10,
    /// HTTP/1.1
    Http11,
}

/// Where one header field lies in the request head: name and value ranges.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct HeaderSpan {
    pub name: (u32, u32),
    pub value: (u32, u32),
}

/// The header fields of a request, looked up case-insensitively.
#[derive(Clone, Copy)]
pub struct Headers<'a> {
    head: &'a [u8],
    spans: &'a [HeaderSpan],
    /// Bit `n` (63 for longer) is set when some field's name is `n` bytes long:
    /// a lookup of a name of a length no field has (most lookups: `If-None-Match`,
    /// `Range` …) answers without comparing names.
    name_lengths: u64,
}

/// The bit of [`Headers::name_lengths`] for a name `len` bytes long.
fn length_bit(len: usize) -> u64 {
    1 << len.min(63)
}

/// The bytes of `head` in `range` (a name's or a value's), empty if out of bounds.
fn part(head: &[u8], (start, end): (u32, u32)) -> &[u8] {
    head.get(start as usize..end as usize).unwrap_or_default()
}

/// Lays `fields` out as a request head's header fields and calls `f` with them
/// (for the fuzzing API and tests).
pub(crate) fn with_headers<T>(fields: &[(&str, &[u8])], f: impl FnOnce(&Headers<'_>) -> T) -> T {
    let mut head = Vec::new();
    let mut spans = Vec::with_capacity(fields.len());
    for (name, value) in fields {
        let n0 = head.len() as u32;
        head.extend_from_slice(name.as_bytes());
        let n1 = head.len() as u32;
        head.extend_from_slice(value);
        spans.push(HeaderSpan { name: (n0, n1), value: (n1, head.len() as u32) });
    }
    f(&Headers::new(&head, &spans))
}

impl<'a> Headers<'a> {
    pub(crate) fn new(head: &'a [u8], spans: &'a [HeaderSpan]) -> Headers<'a> {
        let name_lengths = spans.iter().fold(0, |bits, s| bits | length_bit(s.name.1.wrapping_sub(s.name.0) as usize));
        Headers { head, spans, name_lengths }
    }

    /// Whether no field has any of the `names` (lower case or not), judged by
    /// their lengths alone: `false` may still mean none is there.
    #[inline]
    pub(crate) fn surely_lacks(&self, names: &[&str]) -> bool {
        names.iter().fold(0, |bits, n| bits | length_bit(n.len())) & self.name_lengths == 0
    }

    /// The value of the first field called `name` (any case), as bytes.
    pub fn get_bytes(&self, name: &str) -> Option<&'a [u8]> {
        self.get_all(name).next()
    }

    /// The value of the field called `name` (any case) when it is sent once: a
    /// field defined as a single value and sent on two lines has an invalid
    /// (combined) value, to be ignored.
    pub(crate) fn get_single(&self, name: &str) -> Option<&'a [u8]> {
        let mut all = self.get_all(name);
        let first = all.next()?;
        all.next().is_none().then_some(first)
    }

    /// The value of the first field called `name` (any case), if it is UTF-8.
    pub fn get(&self, name: &str) -> Option<&'a str> {
        self.get_bytes(name).and_then(|v| std::str::from_utf8(v).ok())
    }

    /// All values of fields called `name` (any case), in order.
    #[inline]
    pub fn get_all<'n>(&self, name: &'n str) -> impl Iterator<Item = &'a [u8]> + 'n
    where
        'a: 'n,
    {
        let head = self.head;
        let spans = if self.surely_lacks(&[name]) { &[] } else { self.spans };
        spans
            .iter()
            .filter(move |s| part(head, s.name).eq_ignore_ascii_case(name.as_bytes()))
            .map(move |s| part(head, s.value))
    }

    /// The values of the fields called `name` (any case), in order, if there is
    /// at least one: the lines of one list field (RFC 9110 §5.3).
    pub(crate) fn get_lines<'n>(&self, name: &'n str) -> Option<impl Iterator<Item = &'a [u8]> + 'n>
    where
        'a: 'n,
    {
        let mut lines = self.get_all(name).peekable();
        lines.peek()?;
        Some(lines)
    }

    /// Every field as (name, value), in the order received.
    pub fn iter(&self) -> impl Iterator<Item = (&'a str, &'a [u8])> + 'a {
        let head = self.head;
        self.spans.iter().map(move |s| {
            // Header names passed httparse's token check, so they are ASCII.
            (std::str::from_utf8(part(head, s.name)).unwrap_or_default(), part(head, s.value))
        })
    }

    /// The number of fields.
    pub fn len(&self) -> usize {
        self.spans.len()
    }

    /// Whether there are no fields.
    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }
}

impl fmt::Debug for Headers<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter().map(|(n, v)| (n, String::from_utf8_lossy(v)))).finish()
    }
}

/// Most named segments a route may capture.
pub(crate) const MAX_PARAMS: usize = 8;

/// Values captured by a route's named segments (`/users/:id`).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Params<'a> {
    items: [(&'a str, &'a str); MAX_PARAMS],
    len: usize,
}

impl<'a> Params<'a> {
    pub(crate) fn push(&mut self, name: &'a str, value: &'a str) -> bool {
        let Some(slot) = self.items.get_mut(self.len) else { return false };
        *slot = (name, value);
        self.len += 1;
        true
    }

    pub(crate) fn get(&self, name: &str) -> Option<&'a str> {
        self.items[..self.len].iter().find(|(n, _)| *n == name).map(|(_, v)| *v)
    }
}

/// An HTTP request as a handler and middleware see it.
///
/// Everything borrows from the connection's buffers; a handler that needs a part
/// beyond the call copies it.
#[derive(Debug)]
pub struct Request<'a> {
    pub(crate) method: Method,
    pub(crate) method_str: &'a str,
    pub(crate) target: &'a str,
    pub(crate) path: &'a str,
    pub(crate) path_bytes: &'a [u8],
    pub(crate) query: Option<&'a str>,
    pub(crate) version: Version,
    pub(crate) headers: Headers<'a>,
    pub(crate) peer: SocketAddr,
    pub(crate) body: &'a [u8],
    /// The route's captured parameters (none outside routes: nothing to initialise).
    pub(crate) params: Option<Params<'a>>,
    /// Bytes of `path` that belong to the mount prefix of the handler being called.
    pub(crate) mount_len: usize,
    /// For a request refused before its head could be parsed, the start of its
    /// first line as received (for the access log); empty otherwise.
    pub(crate) raw_line: &'a [u8],
    /// Where paths that middleware computes are kept.
    pub(crate) rewrites: &'a Rewrites,
}

impl<'a> Request<'a> {
    /// The method.
    pub fn method(&self) -> Method {
        self.method
    }

    /// The method token as sent (useful for [`Method::Other`]).
    pub fn method_str(&self) -> &'a str {
        self.method_str
    }

    /// The request target exactly as sent (`/a%20b?x=1`, or an absolute URI).
    pub fn target(&self) -> &'a str {
        self.target
    }

    /// The path, percent-decoded once. When the decoded bytes are not UTF-8 this
    /// is the raw (still encoded) path; [`path_bytes`](Request::path_bytes) has the
    /// decoded bytes either way.
    pub fn path(&self) -> &'a str {
        self.path
    }

    /// The percent-decoded path as bytes.
    pub fn path_bytes(&self) -> &'a [u8] {
        self.path_bytes
    }

    /// The part of [`path_bytes`](Request::path_bytes) below the prefix the current
    /// handler is mounted at (the whole path outside mounts). It starts with `/`,
    /// except that it is empty when the path is the mount prefix itself without
    /// a trailing slash (`/static` for a mount at `/static`).
    pub fn mounted_path_bytes(&self) -> &'a [u8] {
        self.path_bytes.get(self.mount_len..).unwrap_or_default()
    }

    /// The query string without the `?`, undecoded.
    pub fn query(&self) -> Option<&'a str> {
        self.query
    }

    /// The protocol version.
    pub fn version(&self) -> Version {
        self.version
    }

    /// The header fields.
    pub fn headers(&self) -> Headers<'a> {
        self.headers
    }

    /// The value of header `name` (any case), if present and UTF-8.
    pub fn header(&self, name: &str) -> Option<&'a str> {
        self.headers.get(name)
    }

    /// The client's address.
    pub fn peer(&self) -> SocketAddr {
        self.peer
    }

    /// The request body, complete (empty when there is none).
    pub fn body(&self) -> &'a [u8] {
        self.body
    }

    /// The value captured by the route's named segment `name` (`:id` → `"id"`).
    pub fn param(&self, name: &str) -> Option<&'a str> {
        self.params.as_ref().and_then(|p| p.get(name))
    }

    /// Rewrites the path that routing and handlers see (for middleware); `path`
    /// should start with `/` and is taken as already percent-decoded. A computed
    /// path (a `String`) is kept until the request has been answered.
    pub fn set_path(&mut self, path: impl Into<Cow<'a, str>>) {
        let path = match path.into() {
            Cow::Borrowed(path) => path,
            Cow::Owned(path) => self.rewrites.keep(path),
        };
        self.path = path;
        self.path_bytes = path.as_bytes();
    }
}

/// Paths computed by middleware for the request being answered: each stays where
/// it is, borrowed as the request's own buffers are, until [`clear`](Self::clear).
#[derive(Default)]
pub(crate) struct Rewrites(elsa::FrozenVec<String>);

impl Rewrites {
    fn keep(&self, path: String) -> &str {
        self.0.push_get(path)
    }

    /// Lets the paths go, once no request borrows them.
    pub(crate) fn clear(&mut self) {
        if !self.0.is_empty() {
            self.0.as_mut().clear();
        }
    }
}

impl fmt::Debug for Rewrites {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.0.iter()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookups_by_name_of_any_length_and_case() {
        let long = "X-".repeat(40);
        let fields: [(&str, &[u8]); 4] =
            [("Host", b"a"), ("If-None-Match", b"\"t\""), ("Cache-Control", b"no-cache"), (&long, b"l")];
        with_headers(&fields, |headers| {
            assert_eq!(headers.get("host"), Some("a"));
            assert_eq!(headers.get("IF-NONE-MATCH"), Some("\"t\""));
            // Same length as a field that is there, different name.
            assert_eq!(headers.get("cache-controX"), None);
            assert_eq!(headers.get("cache-control"), Some("no-cache"));
            assert_eq!(headers.get(&long.to_lowercase()), Some("l"));
            assert_eq!(headers.get(&"X-".repeat(41)), None);
            assert_eq!(headers.get("range"), None);
            assert!(headers.surely_lacks(&["range", "if-match"]));
            assert!(!headers.surely_lacks(&["range", "if-none-match"]));
        });
    }
}
