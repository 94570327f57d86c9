//! The request head: httparse plus the RFC 9112 rules and limits spindle enforces.
//!
//! Pure functions over byte slices; no socket I/O and no allocation. The parsed
//! [`RequestHead`] refers to the buffer by offsets so it can outlive the borrow.

use crate::request::{HeaderSpan, Method};
use crate::status::Status;

/// Most header fields accepted in one request head.
pub(crate) const MAX_HEADERS: usize = 100;

/// How the request body (if any) is delimited.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum BodyLength {
    /// No body.
    None,
    /// `Content-Length: n`.
    Fixed(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
}

/// A complete, valid request head, by offsets into the buffer it was parsed from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct RequestHead {
    /// Bytes of the head including the final empty line.
    pub len: usize,
    pub method: Method,
    /// The request target (`/path?query`, or an absolute URI), as a range of the buffer.
    pub target: (usize, usize),
    /// The method token, as a range of the buffer.
    pub method_span: (usize, usize),
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub minor_version: u8,
    /// Whether the client allows the connection to persist after this request.
    pub keep_alive: bool,
    pub body: BodyLength,
    pub expect_continue: bool,
}

impl RequestHead {
    /// Stands for a request whose head could not be parsed (method and target unknown).
    pub(crate) const UNPARSED: RequestHead = RequestHead {
        len: 0,
        method: Method::Other,
        target: (0, 0),
        method_span: (0, 0),
        minor_version: 1,
        keep_alive: false,
        body: BodyLength::None,
        expect_continue: false,
    };
}

/// Why a request head was refused; each maps to one status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum HeadError {
    /// Syntax error, missing or duplicate `Host`, conflicting framing headers.
    Malformed(&'static str),
    /// The head exceeds the configured size.
    TooLarge,
    /// The request line alone exceeds the configured size.
    UriTooLong,
    /// More header fields than [`MAX_HEADERS`].
    TooManyHeaders,
    /// An HTTP version other than 1.x.
    Version,
    /// HTTP/1.2 to 1.9, to be answered as 1.1: the offset of the minor digit,
    /// which the caller sets to `1` before parsing again.
    NewerMinor { minor: usize },
    /// A transfer coding other than chunked.
    UnsupportedTransferCoding,
    /// An `Expect` other than `100-continue`.
    Expectation,
}

impl HeadError {
    /// The response status for this error.
    pub(crate) fn status(self) -> Status {
        match self {
            HeadError::Malformed(_) | HeadError::NewerMinor { .. } => Status::BAD_REQUEST,
            HeadError::TooLarge | HeadError::TooManyHeaders => Status::HEADER_FIELDS_TOO_LARGE,
            HeadError::UriTooLong => Status::URI_TOO_LONG,
            HeadError::Version => Status::VERSION_NOT_SUPPORTED,
            HeadError::UnsupportedTransferCoding => Status::NOT_IMPLEMENTED,
            HeadError::Expectation => Status::EXPECTATION_FAILED,
        }
    }
}

/// Whether `buf` may hold a complete head, scanning only from `from` (hyper's
/// `is_complete_fast`): a line feed followed by an empty line (`\n\n` or `\n\r\n`).
/// Returns the index just past the terminator.
pub(crate) fn find_head_end(buf: &[u8], from: usize) -> Option<usize> {
    let mut i = from;
    while i < buf.len() {
        let nl = i + buf.get(i..)?.iter().position(|&b| b == b'\n')?;
        match (buf.get(nl + 1), buf.get(nl + 2)) {
            (Some(b'\n'), _) => return Some(nl + 2),
            (Some(b'\r'), Some(b'\n')) => return Some(nl + 3),
            _ => {}
        }
        i = nl + 1;
    }
    None
}

/// Whether `buf` holds a complete head: at once when it ends with a head's end
/// (the usual case: a request, or a pipelined batch, read whole), else by
/// [`find_head_end`] from `from`.
pub(crate) fn holds_head(buf: &[u8], from: usize) -> bool {
    buf.ends_with(b"\n\r\n") || buf.ends_with(b"\n\n") || find_head_end(buf, from).is_some()
}

/// The length of the empty lines (CR and LF bytes) at the start of `buf`, which
/// come before a request line at times and are ignored (RFC 9112 §2.2).
pub(crate) fn empty_lines_len(buf: &[u8]) -> usize {
    buf.iter().take_while(|&&b| b == b'\r' || b == b'\n').count()
}

/// Whether `buf`, an incomplete head, has a CR that is not followed by LF,
/// looking from about `from` on (a CR at the very end may still be followed by one).
pub(crate) fn has_bare_cr(buf: &[u8], from: usize) -> bool {
    let start = from.saturating_sub(1).min(buf.len());
    buf[start..].windows(2).any(|w| w[0] == b'\r' && w[1] != b'\n')
}

/// Parses the head at the start of `buf`, recording where each header field lies
/// in `spans` (cleared first).
///
/// `Ok(None)` means incomplete: read more, unless `buf` is already `max_len` long,
/// in which case [`incomplete_error`] says what to answer.
pub(crate) fn parse_head(
    buf: &[u8],
    max_len: usize,
    spans: &mut Vec<HeaderSpan>,
) -> Result<Option<RequestHead>, HeadError> {
    // Left uninitialised: httparse fills what it uses (hyper measured ~5% on pipelining).
    let mut headers = [const { std::mem::MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut []);
    let len = match req.parse_with_uninit_headers(buf, &mut headers) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(HeadError::TooManyHeaders),
        Err(httparse::Error::Version) => return Err(version_error(buf)),
        Err(e) => return Err(HeadError::Malformed(syntax_error(e))),
    };
    if len > max_len {
        return Err(if line_len(buf) > max_len { HeadError::UriTooLong } else { HeadError::TooLarge });
    }
    let (Some(method), Some(path), Some(version)) = (req.method, req.path, req.version) else {
        return Err(HeadError::Malformed("incomplete request line"));
    };
    let minor_version = match version {
        0 => 0,
        1 => 1,
        _ => return Err(HeadError::Version),
    };
    let mut head = RequestHead {
        len,
        method: Method::from_token(method),
        target: span(buf, path.as_bytes()),
        method_span: span(buf, method.as_bytes()),
        minor_version,
        keep_alive: minor_version == 1,
        body: BodyLength::None,
        expect_continue: false,
    };
    if path.is_empty() {
        return Err(HeadError::Malformed("empty request target"));
    }
    apply_headers(&mut head, req.headers)?;
    spans.clear();
    spans.extend(req.headers.iter().map(|h| {
        let name = span(buf, h.name.as_bytes());
        let value = span(buf, h.value);
        HeaderSpan { name: (name.0 as u32, name.1 as u32), value: (value.0 as u32, value.1 as u32) }
    }));
    Ok(Some(head))
}

/// What to answer when a head is still incomplete after filling the whole buffer.
pub(crate) fn incomplete_error(buf: &[u8]) -> HeadError {
    if buf.contains(&b'\n') {
        HeadError::TooLarge
    } else {
        HeadError::UriTooLong
    }
}

fn syntax_error(e: httparse::Error) -> &'static str {
    match e {
        httparse::Error::HeaderName => "invalid header name",
        httparse::Error::HeaderValue => "invalid header value",
        httparse::Error::NewLine => "invalid line ending",
        httparse::Error::Token => "invalid token",
        _ => "invalid request line",
    }
}

fn line_len(buf: &[u8]) -> usize {
    buf.iter().position(|&b| b == b'\n').unwrap_or(buf.len())
}

/// Where the request line starts in `buf` (after the empty lines httparse skips,
/// RFC 9112 §2.2), and the line itself, without its line end (all of `buf` that
/// follows when no line end has come yet).
pub(crate) fn request_line(buf: &[u8]) -> (usize, &[u8]) {
    let start = empty_lines_len(buf);
    let line = &buf[start..start + line_len(&buf[start..])];
    (start, line.strip_suffix(b"\r").unwrap_or(line))
}

/// What httparse's version error means: a request line of three parts whose
/// version is `HTTP/1.2` to `HTTP/1.9` is one to answer as HTTP/1.1 (RFC 9110
/// §2.5; at `minor`, an offset into `buf`), `HTTP/2.0` and the like are a version
/// we don't support (505); anything else is malformed (400).
fn version_error(buf: &[u8]) -> HeadError {
    let (start, line) = request_line(buf);
    let mut parts = line.split(|&b| b == b' ');
    let (Some(_method), Some(_target), Some(version), None) = (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return HeadError::Malformed("invalid request line");
    };
    match version {
        [b'H', b'T', b'T', b'P', b'/', b'1', b'.', b'2'..=b'9'] => {
            HeadError::NewerMinor { minor: start + line.len() - 1 }
        }
        [b'H', b'T', b'T', b'P', b'/', major, b'.', minor] if major.is_ascii_digit() && minor.is_ascii_digit() => {
            HeadError::Version
        }
        _ => HeadError::Malformed("invalid HTTP version"),
    }
}

/// The range `part` occupies inside `buf` (both from the same allocation).
fn span(buf: &[u8], part: &[u8]) -> (usize, usize) {
    let start = (part.as_ptr() as usize).saturating_sub(buf.as_ptr() as usize);
    (start, start + part.len())
}

fn apply_headers(head: &mut RequestHead, headers: &[httparse::Header<'_>]) -> Result<(), HeadError> {
    let mut hosts = 0;
    let mut content_length: Option<u64> = None;
    let mut chunked = false;
    let mut transfer_encoding = false;
    let (mut close, mut keep_alive) = (false, false);
    for h in headers {
        let name = h.name;
        if name.eq_ignore_ascii_case("host") {
            if !is_host(h.value) {
                return Err(HeadError::Malformed("invalid Host"));
            }
            hosts += 1;
        } else if name.eq_ignore_ascii_case("content-length") {
            // One line only, as one value only (no `5, 5`): a repeat, even of the
            // same length, is refused as nginx does, the safe side of RFC 9112 §6.3.
            if content_length.is_some() {
                return Err(HeadError::Malformed("Content-Length sent twice"));
            }
            content_length = Some(parse_content_length(h.value)?);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            transfer_encoding = true;
            for coding in list_items(h.value) {
                if chunked {
                    // RFC 9112 §6.1: chunked must be the final coding, and only once.
                    return Err(HeadError::Malformed("chunked is not the final transfer coding"));
                }
                if coding.eq_ignore_ascii_case(b"chunked") {
                    chunked = true;
                } else {
                    return Err(HeadError::UnsupportedTransferCoding);
                }
            }
        } else if name.eq_ignore_ascii_case("connection") {
            for option in list_items(h.value) {
                close |= option.eq_ignore_ascii_case(b"close");
                keep_alive |= option.eq_ignore_ascii_case(b"keep-alive");
            }
        } else if name.eq_ignore_ascii_case("expect") {
            if h.value.eq_ignore_ascii_case(b"100-continue") {
                head.expect_continue = true;
            } else {
                return Err(HeadError::Expectation);
            }
        }
    }
    if head.minor_version == 1 && hosts != 1 || hosts > 1 {
        return Err(HeadError::Malformed("a request needs exactly one Host header"));
    }
    if transfer_encoding {
        if content_length.is_some() {
            return Err(HeadError::Malformed("both Content-Length and Transfer-Encoding"));
        }
        if head.minor_version == 0 || !chunked {
            return Err(HeadError::Malformed("Transfer-Encoding without final chunked"));
        }
        head.body = BodyLength::Chunked;
    } else if let Some(n) = content_length.filter(|&n| n > 0) {
        head.body = BodyLength::Fixed(n);
    }
    head.keep_alive = !close && (head.minor_version == 1 || keep_alive);
    Ok(())
}

/// Whether `value` can be a `Host` field: `uri-host [ ":" port ]` (RFC 9112 §3.2),
/// checked by its characters: those of a registered name, an IP literal or a
/// port. No spaces, slashes, `@` (user information) or bytes above ASCII.
fn is_host(value: &[u8]) -> bool {
    const ALLOWED: [bool; 256] = {
        let mut allowed = [false; 256];
        let mut b = 0;
        while b < 256 {
            let c = b as u8;
            allowed[b] = c.is_ascii_alphanumeric()
                || matches!(
                    c,
                    b'-' | b'.'
                        | b'_'
                        | b'~'
                        | b'%'
                        | b'!'
                        | b'$'
                        | b'&'
                        | b'\''
                        | b'('
                        | b')'
                        | b'*'
                        | b'+'
                        | b','
                        | b';'
                        | b'='
                        | b':'
                        | b'['
                        | b']'
                );
            b += 1;
        }
        allowed
    };
    // Without an early exit, so that the loop has no branch per byte (short values).
    value.iter().fold(true, |ok, &b| ok & ALLOWED[usize::from(b)])
}

/// A `Content-Length` value: plain decimal digits only (RFC 9110 §8.6).
fn parse_content_length(value: &[u8]) -> Result<u64, HeadError> {
    let value = trim(value);
    if value.is_empty() || value.len() > 19 || !value.iter().all(u8::is_ascii_digit) {
        return Err(HeadError::Malformed("invalid Content-Length"));
    }
    Ok(value.iter().fold(0u64, |n, d| n * 10 + u64::from(d - b'0')))
}

/// The non-empty, trimmed elements of a comma-separated header list.
pub(crate) fn list_items(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value.split(|&b| b == b',').map(trim).filter(|s| !s.is_empty())
}

/// `s` without leading and trailing whitespace.
pub(crate) fn trim(s: &[u8]) -> &[u8] {
    let start = s.iter().position(|b| !b.is_ascii_whitespace()).unwrap_or(s.len());
    let end = s.iter().rposition(|b| !b.is_ascii_whitespace()).map_or(start, |e| e + 1);
    &s[start..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(raw: &str) -> RequestHead {
        match parse_head(raw.as_bytes(), 8192, &mut Vec::new()) {
            Ok(Some(h)) => h,
            other => panic!("{raw:?} -> {other:?}"),
        }
    }

    fn err(raw: &str) -> HeadError {
        match parse_head(raw.as_bytes(), 8192, &mut Vec::new()) {
            Err(e) => e,
            other => panic!("{raw:?} -> {other:?}"),
        }
    }

    #[test]
    fn simple_get() {
        let raw = "GET /a?b HTTP/1.1\r\nHost: x\r\n\r\nrest";
        let h = ok(raw);
        assert_eq!(h.len, raw.len() - 4);
        assert_eq!(h.method, Method::Get);
        assert_eq!(&raw[h.target.0..h.target.1], "/a?b");
        assert_eq!(&raw[h.method_span.0..h.method_span.1], "GET");
        assert!(h.keep_alive);
        assert_eq!(h.body, BodyLength::None);
    }

    #[test]
    fn keep_alive_rules() {
        assert!(!ok("GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").keep_alive);
        assert!(!ok("GET / HTTP/1.0\r\n\r\n").keep_alive);
        assert!(ok("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n").keep_alive);
        assert!(!ok("GET / HTTP/1.1\r\nHost: x\r\nConnection: keep-alive, close\r\n\r\n").keep_alive);
    }

    #[test]
    fn host_rules() {
        assert_eq!(err("GET / HTTP/1.1\r\n\r\n").status(), Status::BAD_REQUEST);
        assert_eq!(err("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n").status(), Status::BAD_REQUEST);
        ok("GET / HTTP/1.0\r\n\r\n");
    }

    #[test]
    fn framing_rules() {
        assert_eq!(ok("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\n").body, BodyLength::Fixed(5));
        assert_eq!(ok("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n").body, BodyLength::Chunked);
        for bad in [
            "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\ncontent-length: 5\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: +5\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0x5\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, chunked\r\n\r\n",
            "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
        ] {
            assert_eq!(err(bad).status(), Status::BAD_REQUEST, "{bad:?}");
        }
        assert_eq!(
            err("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n").status(),
            Status::NOT_IMPLEMENTED
        );
    }

    #[test]
    fn version_and_syntax_errors() {
        assert_eq!(err("GET / HTTP/2.0\r\n\r\n").status(), Status::VERSION_NOT_SUPPORTED);
        assert_eq!(err("GET / FOO\r\n\r\n").status(), Status::BAD_REQUEST);
        assert_eq!(err("GET  / HTTP/1.1\r\n\r\n").status(), Status::BAD_REQUEST);
        assert_eq!(err("GET / HTTP/1.1\r\nBad Header: x\r\n\r\n").status(), Status::BAD_REQUEST);
        assert_eq!(err("GET / HTTP/1.1\r\nHost: x\r\nExpect: magic\r\n\r\n").status(), Status::EXPECTATION_FAILED);
        assert_eq!(err("GET /a b HTTP/1.1\r\nHost: x\r\n\r\n").status(), Status::BAD_REQUEST);
        assert_eq!(err("GET / HTTP/1\r\nHost: x\r\n\r\n").status(), Status::BAD_REQUEST);
        assert_eq!(err("GET / HTTP/1.2\r\nHost: x\r\n\r\n"), HeadError::NewerMinor { minor: 13 });
        assert_eq!(err("\r\nGET / HTTP/1.9\r\nHost: x\r\n\r\n"), HeadError::NewerMinor { minor: 15 });
        assert_eq!(err("GET / HTTP/1.1\r\nHost: a b\r\n\r\n").status(), Status::BAD_REQUEST);
    }

    #[test]
    fn bare_cr_in_an_incomplete_head() {
        assert!(has_bare_cr(b"GET / HTTP/1.1\rHost", 0));
        assert!(has_bare_cr(b"GET / HTTP/1.1\r\nHost: x\r\n\r\r", 10));
        assert!(!has_bare_cr(b"GET / HTTP/1.1\r\nHost: x\r", 0), "may be followed by LF");
        assert!(!has_bare_cr(b"GET / HTTP/1.1\r\nHost: x\r\n", 0));
        assert!(!has_bare_cr(b"GET / HTTP/1.1\r", 40), "`from` past the end");
    }

    #[test]
    fn limits() {
        let long = format!("GET /{} HTTP/1.1\r\nHost: x\r\n\r\n", "a".repeat(100));
        assert_eq!(parse_head(long.as_bytes(), 64, &mut Vec::new()), Err(HeadError::UriTooLong));
        let big = format!("GET / HTTP/1.1\r\nHost: x\r\nX: {}\r\n\r\n", "a".repeat(100));
        assert_eq!(parse_head(big.as_bytes(), 64, &mut Vec::new()), Err(HeadError::TooLarge));
        let many: String = (0..=MAX_HEADERS).map(|i| format!("X{i}: y\r\n")).collect();
        let many = format!("GET / HTTP/1.1\r\nHost: x\r\n{many}\r\n");
        assert_eq!(err(&many), HeadError::TooManyHeaders);
        assert_eq!(incomplete_error(b"GET /aaaa"), HeadError::UriTooLong);
        assert_eq!(incomplete_error(b"GET / HTTP/1.1\r\nX: aaa"), HeadError::TooLarge);
    }

    #[test]
    fn head_end_scan_agrees_with_httparse() {
        let raw = b"GET / HTTP/1.1\r\nHost: x\r\n\r\nGET";
        assert_eq!(find_head_end(raw, 0), Some(raw.len() - 3));
        assert_eq!(find_head_end(b"GET / HTTP/1.1\nHost: x\n\n", 0), Some(24));
        assert_eq!(find_head_end(b"GET / HTTP/1.1\r\nHost: x\r\n", 0), None);
        for cut in 0..raw.len() {
            let partial = &raw[..cut];
            let complete = matches!(parse_head(partial, 8192, &mut Vec::new()), Ok(Some(_)));
            assert!(!complete || find_head_end(partial, 0).is_some(), "cut {cut}");
        }
    }

    #[test]
    fn holding_a_head_means_a_head_end_is_found() {
        let batch =
            b"\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.0\nA: b\n\nHEAD / HTTP/1.1\r\n\r\nGET / HTTP/1.1\r\n";
        for start in 0..batch.len() {
            for end in start..=batch.len() {
                let buf = &batch[start..end];
                let complete = find_head_end(buf, 0).is_some();
                // As the connection calls it: after an earlier read of `seen` bytes found
                // no end, the scan resumes 3 bytes before where that one stopped.
                for seen in (0..buf.len()).filter(|&seen| find_head_end(&buf[..seen], 0).is_none()) {
                    let from = seen.saturating_sub(3);
                    assert_eq!(holds_head(buf, from), complete, "{:?} from {from}", String::from_utf8_lossy(buf));
                }
            }
        }
    }
}
