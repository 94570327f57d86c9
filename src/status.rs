//! HTTP status codes and their reason phrases.

/// An HTTP status code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Status(pub u16);

impl Status {
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

/// The codes with a standard reason phrase: a constant for each, and
/// `Status::known` (reason and status line).
macro_rules! known_statuses {
    ($($name:ident = $code:literal => $reason:literal,)*) => {
        impl Status {
            $(
                #[doc = concat!($code, " ", $reason)]
                pub const $name: Status = Status($code);
            )*

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
    CONTINUE = 100 => "Continue",
    OK = 200 => "OK",
    CREATED = 201 => "Created",
    NO_CONTENT = 204 => "No Content",
    RESET_CONTENT = 205 => "Reset Content",
    PARTIAL_CONTENT = 206 => "Partial Content",
    MOVED_PERMANENTLY = 301 => "Moved Permanently",
    FOUND = 302 => "Found",
    NOT_MODIFIED = 304 => "Not Modified",
    TEMPORARY_REDIRECT = 307 => "Temporary Redirect",
    PERMANENT_REDIRECT = 308 => "Permanent Redirect",
    BAD_REQUEST = 400 => "Bad Request",
    UNAUTHORIZED = 401 => "Unauthorized",
    FORBIDDEN = 403 => "Forbidden",
    NOT_FOUND = 404 => "Not Found",
    METHOD_NOT_ALLOWED = 405 => "Method Not Allowed",
    REQUEST_TIMEOUT = 408 => "Request Timeout",
    LENGTH_REQUIRED = 411 => "Length Required",
    PRECONDITION_FAILED = 412 => "Precondition Failed",
    CONTENT_TOO_LARGE = 413 => "Content Too Large",
    URI_TOO_LONG = 414 => "URI Too Long",
    RANGE_NOT_SATISFIABLE = 416 => "Range Not Satisfiable",
    EXPECTATION_FAILED = 417 => "Expectation Failed",
    TOO_MANY_REQUESTS = 429 => "Too Many Requests",
    HEADER_FIELDS_TOO_LARGE = 431 => "Request Header Fields Too Large",
    INTERNAL_SERVER_ERROR = 500 => "Internal Server Error",
    NOT_IMPLEMENTED = 501 => "Not Implemented",
    BAD_GATEWAY = 502 => "Bad Gateway",
    SERVICE_UNAVAILABLE = 503 => "Service Unavailable",
    GATEWAY_TIMEOUT = 504 => "Gateway Timeout",
    VERSION_NOT_SUPPORTED = 505 => "HTTP Version Not Supported",
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
