//! The response-head encoder and the built-in status pages, written straight
//! into a connection's write buffer. Pure byte formatting: no I/O.

use crate::response::{is_token, HeaderName, HeaderValue};
use crate::status::Status;

/// How the response's `Connection` header reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Persistence {
    /// HTTP/1.1 default: no header.
    Default,
    /// `Connection: keep-alive` (an HTTP/1.0 client that asked for it).
    KeepAlive,
    /// `Connection: close`.
    Close,
}

/// Writes one response head into a buffer.
pub(crate) struct HeadWriter<'a> {
    buf: &'a mut Vec<u8>,
}

impl<'a> HeadWriter<'a> {
    /// Starts a head with the status line and `fields`, the `Server` and `Date`
    /// fields from [`crate::date::DateCache::fields`] (fixed in length, so copied inline).
    pub(crate) fn new(buf: &'a mut Vec<u8>, status: Status, fields: &[u8; crate::date::FIELDS_LEN]) -> HeadWriter<'a> {
        if status == Status::OK {
            // The usual status, with a line of known length: copied inline.
            buf.extend_from_slice(b"HTTP/1.1 200 OK\r\n");
        } else if let Some(line) = status.line() {
            buf.extend_from_slice(line.as_bytes());
        } else {
            buf.extend_from_slice(b"HTTP/1.1 ");
            buf.extend_from_slice(itoa::Buffer::new().format(status.code()).as_bytes());
            buf.extend_from_slice(b" \r\n");
        }
        buf.extend_from_slice(fields);
        HeadWriter { buf }
    }

    /// Adds a header; `value` must not contain CR or LF.
    pub(crate) fn header(&mut self, name: &str, value: &[u8]) -> &mut Self {
        debug_assert!(!value.iter().any(|&b| b == b'\r' || b == b'\n'));
        self.buf.extend_from_slice(name.as_bytes());
        self.buf.extend_from_slice(b": ");
        self.buf.extend_from_slice(value);
        self.buf.extend_from_slice(b"\r\n");
        self
    }

    /// Adds a response's field, as [`write_field`] does.
    pub(crate) fn field(&mut self, name: &HeaderName, value: &HeaderValue) -> bool {
        write_field(self.buf, name, value)
    }

    /// Adds fields [`write_field`] encoded before.
    pub(crate) fn encoded_fields(&mut self, encoded: &[u8]) -> &mut Self {
        self.buf.extend_from_slice(encoded);
        self
    }

    /// Adds `Content-Length`.
    pub(crate) fn content_length(&mut self, len: u64) -> &mut Self {
        let mut n = itoa::Buffer::new();
        self.header("Content-Length", n.format(len).as_bytes())
    }

    /// Ends the head, adding the `Connection` header `persistence` calls for.
    pub(crate) fn finish(&mut self, persistence: Persistence) {
        match persistence {
            Persistence::Default => {}
            Persistence::KeepAlive => self.buf.extend_from_slice(b"Connection: keep-alive\r\n"),
            Persistence::Close => self.buf.extend_from_slice(b"Connection: close\r\n"),
        }
        self.buf.extend_from_slice(b"\r\n");
    }
}

/// Appends `name: value\r\n`, unless the field is one the connection writes
/// itself (`Content-Length` …: left out) or cannot be written safely (a name
/// that is not a token, a value with a control character: left out, `false`). Names
/// and values this crate built were checked then and are not checked again.
pub(crate) fn write_field(buf: &mut Vec<u8>, name: &HeaderName, value: &HeaderValue) -> bool {
    let checked = name.is_known_name() && value.is_known();
    let name = name.as_str();
    if !checked {
        if is_managed(name) {
            return true;
        }
        if !value.is_valid() || !is_token(name) {
            return false;
        }
    }
    let [first, rest] = value.parts();
    buf.extend_from_slice(name.as_bytes());
    buf.extend_from_slice(b": ");
    buf.extend_from_slice(first.as_bytes());
    // Usually empty (it is the charset of a text media type): skip the call.
    if !rest.is_empty() {
        buf.extend_from_slice(rest.as_bytes());
    }
    buf.extend_from_slice(b"\r\n");
    true
}

/// Response header fields the connection writes itself.
pub(crate) fn is_managed(name: &str) -> bool {
    ["content-length", "transfer-encoding", "connection", "date", "server"].iter().any(|m| name.eq_ignore_ascii_case(m))
}

const PAGE_START: &[u8] = b"<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>";
const PAGE_MIDDLE: &[u8] = b"</title></head>\n<body><h1>";
const PAGE_END: &[u8] = b"</h1><hr><p>spindle</p></body></html>\n";

fn page_title(buf: &mut Vec<u8>, status: Status) {
    let mut code = itoa::Buffer::new();
    buf.extend_from_slice(code.format(status.code()).as_bytes());
    buf.push(b' ');
    buf.extend_from_slice(status.reason().as_bytes());
}

/// Length of the built-in HTML page for `status`.
pub(crate) fn page_len(status: Status) -> u64 {
    let title = 4 + status.reason().len();
    (PAGE_START.len() + PAGE_MIDDLE.len() + PAGE_END.len() + 2 * title) as u64
}

/// Appends the built-in HTML page for `status`.
pub(crate) fn write_page(buf: &mut Vec<u8>, status: Status) {
    buf.extend_from_slice(PAGE_START);
    page_title(buf, status);
    buf.extend_from_slice(PAGE_MIDDLE);
    page_title(buf, status);
    buf.extend_from_slice(PAGE_END);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn head_and_page() {
        let mut buf = Vec::new();
        let mut w =
            HeadWriter::new(&mut buf, Status::NOT_FOUND, &crate::date::fields(b"Thu, 01 Jan 1970 00:00:00 GMT"));
        assert!(w.field(&HeaderValue::from("Content-Type"), &HeaderValue::mime("text/html", true)));
        assert!(w.field(&HeaderValue::from("Content-Length"), &HeaderValue::from("1")), "left out, not refused");
        assert!(!w.field(&HeaderValue::from("X-Bad"), &HeaderValue::from("a\r\nb")));
        w.content_length(page_len(Status::NOT_FOUND)).finish(Persistence::Close);
        let head_len = buf.len();
        write_page(&mut buf, Status::NOT_FOUND);
        let text = String::from_utf8(buf).unwrap();
        assert!(text.starts_with("HTTP/1.1 404 Not Found\r\nServer: spindle/"));
        assert!(text.contains("\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: "));
        assert!(!text.contains("X-Bad"));
        assert_eq!(text.matches("Content-Length").count(), 1, "a field the connection writes was let through");
        assert!(text.contains("\r\nConnection: close\r\n\r\n<!DOCTYPE html>"));
        assert_eq!((text.len() - head_len) as u64, page_len(Status::NOT_FOUND));
        assert!(text.contains("<title>404 Not Found</title>"));
    }
}
