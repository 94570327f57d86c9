//! Routing: handlers keyed by method and path pattern, handlers mounted under a
//! path prefix (the static files are one), and the middleware chain around them.

use std::fmt::Write as _;

use crate::middleware::Middleware;
use crate::request::{Method, Params, Request, MAX_PARAMS};
use crate::response::Response;
use crate::status::Status;

/// Answers requests. Implemented for every `Fn(&Request) -> Response`.
///
/// Handlers run on the event-loop thread, one at a time: they must not block
/// (no sleeping, no blocking network or slow disk I/O), or every other client
/// waits. A handler that panics gets its client a 500 and that connection
/// closed; the server keeps running.
pub trait Handler: Send + 'static {
    /// The response to `req`.
    fn handle(&self, req: &Request<'_>) -> Response;

    /// Called when the server has had no traffic for about half a second: give back
    /// memory held only for speed (cache entries past their validity, scratch
    /// buffers grown by a large request). The default does nothing.
    fn on_idle(&self) {}
}

impl<F> Handler for F
where
    F: Fn(&Request<'_>) -> Response + Send + 'static,
{
    fn handle(&self, req: &Request<'_>) -> Response {
        self(req)
    }
}

enum Segment {
    Literal(String),
    Param(String),
}

struct Route {
    method: Method,
    segments: Vec<Segment>,
    handler: Box<dyn Handler>,
}

impl Route {
    /// The captured parameters when `path` matches the pattern.
    fn matches<'a>(&'a self, path: &'a str) -> Option<Params<'a>> {
        let mut params = Params::default();
        let mut parts = path.strip_prefix('/')?.split('/');
        if path == "/" {
            parts.next();
        }
        for segment in &self.segments {
            let part = parts.next()?;
            match segment {
                Segment::Literal(lit) if lit == part => {}
                Segment::Param(name) if !part.is_empty() => {
                    params.push(name, part);
                }
                _ => return None,
            }
        }
        parts.next().is_none().then_some(params)
    }
}

struct Mount {
    /// Without a trailing slash; empty for the root.
    prefix: String,
    handler: Box<dyn Handler>,
}

/// Routes, mounted handlers and middleware: everything that turns a request into
/// a response.
///
/// Lookup order: a route whose pattern matches the path and whose method matches
/// (`GET` routes also answer `HEAD`); else, if some route matches the path with
/// another method, `OPTIONS` is answered with `Allow` and other methods get 405
/// with `Allow`; else the handler mounted at the longest matching prefix; else 404.
/// `OPTIONS *`, about the server as a whole, gets 200 with an `Allow` of the
/// methods some route takes, `GET` and `HEAD` if anything is mounted, and `OPTIONS`.
#[derive(Default)]
pub struct Router {
    routes: Vec<Route>,
    mounts: Vec<Mount>,
    middleware: Vec<Box<dyn Middleware>>,
}

impl Router {
    /// A router with no routes: every request gets 404.
    pub fn new() -> Router {
        Router::default()
    }

    /// Routes `method` requests for paths matching `pattern` to `handler`.
    ///
    /// A pattern is `/`-separated segments; a segment `:name` matches any
    /// non-empty segment and captures it as [`Request::param`]`("name")`. Patterns
    /// are matched against the percent-decoded path, first registered first.
    ///
    /// # Panics
    /// If `pattern` does not start with `/` or has more than 8 named segments
    /// (a programming error, reported when the router is built).
    pub fn route(mut self, method: Method, pattern: &str, handler: impl Handler) -> Router {
        assert!(pattern.starts_with('/'), "route pattern {pattern:?} must start with '/'");
        let segments: Vec<Segment> = pattern
            .split('/')
            .skip(1)
            .filter(|s| !(s.is_empty() && pattern == "/"))
            .map(|s| match s.strip_prefix(':') {
                Some(name) => Segment::Param(name.to_string()),
                None => Segment::Literal(s.to_string()),
            })
            .collect();
        let params = segments.iter().filter(|s| matches!(s, Segment::Param(_))).count();
        assert!(params <= MAX_PARAMS, "route pattern {pattern:?} has more than {MAX_PARAMS} named segments");
        self.routes.push(Route { method, segments, handler: Box::new(handler) });
        self
    }

    /// [`route`](Router::route) for `GET` (and so `HEAD`).
    pub fn get(self, pattern: &str, handler: impl Handler) -> Router {
        self.route(Method::Get, pattern, handler)
    }

    /// [`route`](Router::route) for `POST`.
    pub fn post(self, pattern: &str, handler: impl Handler) -> Router {
        self.route(Method::Post, pattern, handler)
    }

    /// [`route`](Router::route) for `PUT`.
    pub fn put(self, pattern: &str, handler: impl Handler) -> Router {
        self.route(Method::Put, pattern, handler)
    }

    /// [`route`](Router::route) for `DELETE`.
    pub fn delete(self, pattern: &str, handler: impl Handler) -> Router {
        self.route(Method::Delete, pattern, handler)
    }

    /// [`route`](Router::route) for `PATCH`.
    pub fn patch(self, pattern: &str, handler: impl Handler) -> Router {
        self.route(Method::Patch, pattern, handler)
    }

    /// Sends every request whose path is `prefix` or lies below it (and that no
    /// route takes) to `handler`, any method. The handler finds the rest of the
    /// path in [`Request::mounted_path_bytes`]. `"/"` mounts a fallback for everything.
    pub fn mount(mut self, prefix: &str, handler: impl Handler) -> Router {
        let prefix = prefix.trim_end_matches('/').to_string();
        let at = self.mounts.iter().position(|m| m.prefix.len() < prefix.len()).unwrap_or(self.mounts.len());
        self.mounts.insert(at, Mount { prefix, handler: Box::new(handler) });
        self
    }

    /// The handler for requests nothing else takes: [`mount`](Router::mount) at `/`.
    pub fn fallback(self, handler: impl Handler) -> Router {
        self.mount("/", handler)
    }

    /// Adds `middleware` around everything: `on_request` hooks run in the order
    /// added, `on_response` hooks in reverse.
    pub fn wrap(mut self, middleware: impl Middleware) -> Router {
        self.middleware.push(Box::new(middleware));
        self
    }

    /// Answers `req`: middleware, then routes and mounts.
    ///
    /// `on_response` runs for every middleware whose `on_request` ran, including
    /// one that answered early, innermost first.
    pub(crate) fn respond<'a>(&'a self, req: &mut Request<'a>) -> Response {
        if self.middleware.is_empty() {
            // Returned straight through: no copy of the response on the way.
            return self.dispatch(req);
        }
        let mut ran = 0;
        let mut early = None;
        for m in &self.middleware {
            ran += 1;
            if let Some(response) = m.on_request(req) {
                early = Some(response);
                break;
            }
        }
        let mut response = match early {
            Some(response) => response,
            None => self.dispatch(req),
        };
        for m in self.middleware[..ran].iter().rev() {
            m.on_response(req, &mut response);
        }
        response
    }

    /// Tells every handler that the server is idle ([`Handler::on_idle`]).
    pub(crate) fn on_idle(&self) {
        for route in &self.routes {
            route.handler.on_idle();
        }
        for mount in &self.mounts {
            mount.handler.on_idle();
        }
    }

    /// Lets every middleware's `on_response` see a response the server made
    /// itself (a protocol error), innermost first.
    pub(crate) fn finish(&self, req: &Request<'_>, response: &mut Response) {
        for m in self.middleware.iter().rev() {
            m.on_response(req, response);
        }
    }

    fn dispatch<'a>(&'a self, req: &mut Request<'a>) -> Response {
        let mut allowed = 0u16;
        let path = req.path;
        for route in &self.routes {
            let Some(params) = route.matches(path) else { continue };
            if route.method == req.method || (req.method == Method::Head && route.method == Method::Get) {
                req.params = Some(params);
                return route.handler.handle(req);
            }
            allowed |= route.method.bit();
        }
        if allowed != 0 {
            if allowed & Method::Get.bit() != 0 {
                allowed |= Method::Head.bit();
            }
            allowed |= Method::Options.bit();
            let response = if req.method == Method::Options {
                Response::new(Status::NO_CONTENT)
            } else {
                Response::status(Status::METHOD_NOT_ALLOWED)
            };
            return response.with_header("Allow", allow_value(allowed));
        }
        let bytes = req.path_bytes;
        for mount in &self.mounts {
            let p = mount.prefix.as_bytes();
            // The root mount (empty prefix) is the usual case: skip the
            // compare, a call into libc's memcmp that showed in profiles.
            let under = p.is_empty() || bytes.starts_with(p);
            if under && matches!(bytes.get(p.len()), None | Some(b'/')) {
                req.mount_len = p.len();
                return mount.handler.handle(req);
            }
        }
        Response::status(Status::NOT_FOUND)
    }
}

impl Router {
    /// `Allow` for `OPTIONS *`, which asks about the server as a whole: the
    /// methods some route takes (`GET` with `HEAD`), `GET` and `HEAD` when
    /// anything is mounted, and `OPTIONS`.
    pub(crate) fn server_allow(&self) -> String {
        let mut bits = Method::Options.bit();
        for route in &self.routes {
            bits |= route.method.bit();
        }
        if bits & Method::Get.bit() != 0 || !self.mounts.is_empty() {
            bits |= Method::Get.bit() | Method::Head.bit();
        }
        allow_value(bits)
    }
}

/// `GET, HEAD, ...` for a set of method bits.
pub(crate) fn allow_value(bits: u16) -> String {
    let mut out = String::new();
    for m in Method::ALL.iter().filter(|m| bits & m.bit() != 0) {
        if !out.is_empty() {
            out.push_str(", ");
        }
        let _ = write!(out, "{m}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(pattern: &str) -> Route {
        let r = Router::new().get(pattern, |_: &Request<'_>| Response::new(Status::OK));
        r.routes.into_iter().next().unwrap()
    }

    #[test]
    fn patterns_match_segments() {
        assert!(route("/").matches("/").is_some());
        assert!(route("/").matches("/a").is_none());
        assert!(route("/a/b").matches("/a/b").is_some());
        assert!(route("/a/b").matches("/a/b/").is_none());
        assert!(route("/a/b").matches("/a").is_none());
        let r = route("/users/:id/posts/:post");
        let p = r.matches("/users/42/posts/7").unwrap();
        assert_eq!((p.get("id"), p.get("post")), (Some("42"), Some("7")));
        assert!(r.matches("/users//posts/7").is_none(), "empty segments do not match a parameter");
        assert!(r.matches("/users/42/posts").is_none());
    }

    #[test]
    fn allow_lists_methods_in_order() {
        assert_eq!(allow_value(Method::Post.bit() | Method::Get.bit() | Method::Head.bit()), "GET, HEAD, POST");
    }
}
