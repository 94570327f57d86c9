//! Endpoints for load-testing tools (wrk, proxies, load balancers), opt-in with
//! [`Router::load_test_endpoints`](crate::Router::load_test_endpoints):
//!
//! | route | answer |
//! |---|---|
//! | `GET /plaintext` | `Hello, World!` as text/plain (the TechEmpower shape) |
//! | `GET /json` | `{"message":"Hello, World!"}` as application/json |
//! | `GET /bytes/N` | N zero bytes (N ≤ 16 MiB), application/octet-stream |
//! | `GET /status/CODE` | status CODE (200–599) with the built-in page (and the fields 401, 405, 407 and 426 must carry) |
//! | `GET /delay/MS` | 200 after MS milliseconds (≤ 60 s), timed by the event loop |
//!
//! Every answer is built without allocating.

use std::time::Duration;

use crate::request::Request;
use crate::response::{Body, HeaderValue, Response};
use crate::router::Router;
use crate::status::Status;

/// Largest `/bytes/N` body.
pub const MAX_BYTES: usize = 16 << 20;
/// Longest `/delay/MS`.
pub const MAX_DELAY_MS: u64 = 60_000;

/// Zeros for `/bytes/N`, allocated on first use (zeroed pages fresh from the
/// kernel: no resident memory, and reading them maps the kernel's zero page). Not
/// a `static` array, which would put 16 MiB into the executable.
fn zeros() -> &'static [u8] {
    static ZEROS: std::sync::OnceLock<Box<[u8]>> = std::sync::OnceLock::new();
    ZEROS.get_or_init(|| vec![0; MAX_BYTES].into_boxed_slice())
}

fn number(req: &Request<'_>, name: &str) -> Option<u64> {
    req.param(name).filter(|v| v.len() <= 12 && v.bytes().all(|b| b.is_ascii_digit()))?.parse().ok()
}

fn plaintext(_: &Request<'_>) -> Response {
    Response::new(Status::OK)
        .with_header("Content-Type", HeaderValue::mime("text/plain", true))
        .with_body(Body::Static(b"Hello, World!"))
}

fn json(_: &Request<'_>) -> Response {
    Response::new(Status::OK)
        .with_header("Content-Type", "application/json")
        .with_body(Body::Static(br#"{"message":"Hello, World!"}"#))
}

fn bytes(req: &Request<'_>) -> Response {
    match number(req, "n").and_then(|n| usize::try_from(n).ok()).filter(|&n| n <= MAX_BYTES) {
        Some(n) => Response::new(Status::OK)
            .with_header("Content-Type", "application/octet-stream")
            .with_body(Body::Static(&zeros()[..n])),
        None => Response::status(Status::BAD_REQUEST),
    }
}

fn status(req: &Request<'_>) -> Response {
    let Some(code) = number(req, "code").filter(|c| (200..600).contains(c)) else {
        return Response::status(Status::BAD_REQUEST);
    };
    let response = Response::status(Status(code as u16));
    // The fields RFC 9110 says these statuses must carry (§15.5.2, §15.5.6,
    // §15.5.8, §15.5.22).
    match code {
        401 => response.with_header("WWW-Authenticate", "Basic realm=\"spindle\""),
        405 => response.with_header("Allow", "GET, HEAD"),
        407 => response.with_header("Proxy-Authenticate", "Basic realm=\"spindle\""),
        426 => response.with_header("Upgrade", "HTTP/1.1"),
        _ => response,
    }
}

fn delay(req: &Request<'_>) -> Response {
    match number(req, "ms").filter(|&ms| ms <= MAX_DELAY_MS) {
        Some(ms) => Response::new(Status::OK)
            .with_header("Content-Type", HeaderValue::mime("text/plain", true))
            .with_body(Body::Static(b"delayed\n"))
            .with_delay(Duration::from_millis(ms)),
        None => Response::status(Status::BAD_REQUEST),
    }
}

impl Router {
    /// Adds the load-testing endpoints described in [this module](crate::loadtest).
    pub fn load_test_endpoints(self) -> Router {
        self.get("/plaintext", plaintext)
            .get("/json", json)
            .get("/bytes/:n", bytes)
            .get("/status/:code", status)
            .get("/delay/:ms", delay)
    }
}
