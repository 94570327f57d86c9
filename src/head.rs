//! The response-head encoder and the built-in status pages, written straight
//! into a connection's write buffer. Pure byte formatting: no I/O.

use crate::status::Status;

/// The `Server` header value.
pub(crate) const SERVER: &[u8] = concat!("spindle/", env!("CARGO_PKG_VERSION")).as_bytes();

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
    /// Starts a head with the status line and the `Server` and `Date` headers.
    pub(crate) fn new(buf: &'a mut Vec<u8>, status: Status, date: &[u8]) -> HeadWriter<'a> {
        buf.extend_from_slice(b"HTTP/1.1 ");
        let mut code = itoa::Buffer::new();
        buf.extend_from_slice(code.format(status.code()).as_bytes());
        buf.push(b' ');
        buf.extend_from_slice(status.reason().as_bytes());
        buf.extend_from_slice(b"\r\nServer: ");
        buf.extend_from_slice(SERVER);
        buf.extend_from_slice(b"\r\nDate: ");
        buf.extend_from_slice(date);
        buf.extend_from_slice(b"\r\n");
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

    /// Adds a header whose value is `parts` written one after the other.
    pub(crate) fn header_parts(&mut self, name: &str, parts: [&str; 2]) -> &mut Self {
        self.buf.extend_from_slice(name.as_bytes());
        self.buf.extend_from_slice(b": ");
        self.buf.extend_from_slice(parts[0].as_bytes());
        // Usually empty (it is the charset of a text media type): skip the call.
        if !parts[1].is_empty() {
            self.buf.extend_from_slice(parts[1].as_bytes());
        }
        self.buf.extend_from_slice(b"\r\n");
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
        HeadWriter::new(&mut buf, Status::NOT_FOUND, b"Thu, 01 Jan 1970 00:00:00 GMT")
            .header_parts("Content-Type", ["text/html", "; charset=utf-8"])
            .content_length(page_len(Status::NOT_FOUND))
            .finish(Persistence::Close);
        let head_len = buf.len();
        write_page(&mut buf, Status::NOT_FOUND);
        let text = String::from_utf8(buf).unwrap();
        assert!(text.starts_with("HTTP/1.1 404 Not Found\r\nServer: spindle/"));
        assert!(text.contains("\r\nContent-Type: text/html; charset=utf-8\r\n"));
        assert!(text.contains("\r\nConnection: close\r\n\r\n<!DOCTYPE html>"));
        assert_eq!((text.len() - head_len) as u64, page_len(Status::NOT_FOUND));
        assert!(text.contains("<title>404 Not Found</title>"));
    }
}
