//! HTTP status codes and their reason phrases.

/// An HTTP status code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Status(pub u16);

impl Status {
    /// 200 OK
    pub const OK: Status = Status(200);
    /// 100 Continue
    pub const CONTINUE: Status = Status(100);
    /// 204 No Content
    pub const NO_CONTENT: Status = Status(204);
    /// 205 Reset Content
    pub const RESET_CONTENT: Status = Status(205);
    /// 301 Moved Permanently
    pub const MOVED_PERMANENTLY: Status = Status(301);
    /// 400 Bad Request
    pub const BAD_REQUEST: Status = Status(400);
    /// 403 Forbidden
    pub const FORBIDDEN: Status = Status(403);
    /// 404 Not Found
    pub const NOT_FOUND: Status = Status(404);
    /// 405 Method Not Allowed
    pub const METHOD_NOT_ALLOWED: Status = Status(405);
    /// 408 Request Timeout
    pub const REQUEST_TIMEOUT: Status = Status(408);
    /// 413 Content Too Large
    pub const CONTENT_TOO_LARGE: Status = Status(413);
    /// 414 URI Too Long
    pub const URI_TOO_LONG: Status = Status(414);
    /// 417 Expectation Failed
    pub const EXPECTATION_FAILED: Status = Status(417);
    /// 431 Request Header Fields Too Large
    pub const HEADER_FIELDS_TOO_LARGE: Status = Status(431);
    /// 500 Internal Server Error
    pub const INTERNAL_SERVER_ERROR: Status = Status(500);
    /// 501 Not Implemented
    pub const NOT_IMPLEMENTED: Status = Status(501);
    /// 503 Service Unavailable
    pub const SERVICE_UNAVAILABLE: Status = Status(503);
    /// 505 HTTP Version Not Supported
    pub const VERSION_NOT_SUPPORTED: Status = Status(505);

    /// The numeric code.
    pub fn code(self) -> u16 {
        self.0
    }

    /// The standard reason phrase (RFC 9110 §15), or `""` for unknown codes.
    pub fn reason(self) -> &'static str {
        self.known().map_or("", |(reason, _)| reason)
    }

    /// The status line, `HTTP/1.1 <code> <reason>\r\n`, for codes with a
    /// standard reason (built at compile time: one copy per response).
    pub(crate) fn line(self) -> Option<&'static str> {
        self.known().map(|(_, line)| line)
    }

    /// Whether a response with this status may carry a body (not 1xx, 204, 205 or
    /// 304). A 205 says so with `Content-Length: 0` (RFC 9110 §15.3.6); the others
    /// carry no length.
    pub fn allows_body(self) -> bool {
        !(self.0 < 200 || self.0 == 204 || self.0 == 205 || self.0 == 304)
    }
}

/// The codes with a standard reason phrase: `Status::known` (reason and status line).
macro_rules! known_statuses {
    ($($code:literal => $reason:literal,)*) => {
        impl Status {
            /// The reason phrase and status line of a code that has a standard reason.
            fn known(self) -> Option<(&'static str, &'static str)> {
                match self.0 {
                    $($code => Some(($reason, concat!("HTTP/1.1 ", $code, " ", $reason, "\r\n"))),)*
                    _ => None,
                }
            }
        }
    };
}

known_statuses! {
    100 => "Continue",
    200 => "OK",
    201 => "Created",
    204 => "No Content",
    205 => "Reset Content",
    206 => "Partial Content",
    301 => "Moved Permanently",
    302 => "Found",
    304 => "Not Modified",
    307 => "Temporary Redirect",
    308 => "Permanent Redirect",
    400 => "Bad Request",
    401 => "Unauthorized",
    403 => "Forbidden",
    404 => "Not Found",
    405 => "Method Not Allowed",
    408 => "Request Timeout",
    411 => "Length Required",
    412 => "Precondition Failed",
    413 => "Content Too Large",
    414 => "URI Too Long",
    416 => "Range Not Satisfiable",
    417 => "Expectation Failed",
    429 => "Too Many Requests",
    431 => "Request Header Fields Too Large",
    500 => "Internal Server Error",
    501 => "Not Implemented",
    502 => "Bad Gateway",
    503 => "Service Unavailable",
    504 => "Gateway Timeout",
    505 => "HTTP Version Not Supported",
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_lines_carry_code_and_reason() {
        assert_eq!(Status::OK.line(), Some("HTTP/1.1 200 OK\r\n"));
        assert_eq!(Status(431).line(), Some("HTTP/1.1 431 Request Header Fields Too Large\r\n"));
        for code in 100..600 {
            let status = Status(code);
            match status.line() {
                Some(line) => assert_eq!(line, format!("HTTP/1.1 {code} {}\r\n", status.reason())),
                None => assert_eq!(status.reason(), ""),
            }
        }
        assert_eq!((Status(599).line(), Status(599).reason()), (None, ""));
    }
}
