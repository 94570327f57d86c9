//! Middleware: hooks around every request, and a ready-made one that sets extra
//! response header fields.

use std::sync::Arc;

use crate::request::Request;
use crate::response::{has_control, is_token, HeaderValue, Response};

/// A hook around request handling, added with [`Router::wrap`](crate::Router::wrap).
///
/// `on_request` hooks run in the order the middleware was added; `on_response`
/// hooks run innermost first, for every middleware whose `on_request` ran (so
/// one that answered early sees its own response, and the ones added after it
/// see nothing of that request).
///
/// Like handlers, middleware runs on the event-loop thread and must not block.
pub trait Middleware: Send + 'static {
    /// Sees (and may change) each request before it is routed. Returning a
    /// response answers the request early: later middleware and the handler are
    /// skipped. The default passes every request on.
    fn on_request(&self, req: &mut Request<'_>) -> Option<Response> {
        let _ = req;
        None
    }

    /// Sees (and may change) each response before it is sent, including the
    /// server's own error responses. For a request the server refuses before
    /// routing (400, 408, 413, 431, 501 and the like) no `on_request` has run;
    /// every middleware's `on_response` still does, innermost first, with the
    /// request as far as it was understood. The default changes nothing.
    fn on_response(&self, req: &Request<'_>, response: &mut Response) {
        let _ = (req, response);
    }
}

/// Sets configured header fields on every response that does not already have
/// them (e.g. `Cache-Control`, `Access-Control-Allow-Origin`).
#[derive(Clone, Debug, Default)]
pub struct SetHeaders {
    fields: Vec<(Arc<str>, Arc<str>)>,
}

impl SetHeaders {
    /// No fields yet.
    pub fn new() -> SetHeaders {
        SetHeaders::default()
    }

    /// Adds `name: value` to the fields set.
    pub fn header(mut self, name: &str, value: &str) -> SetHeaders {
        self.fields.push((Arc::from(name), Arc::from(value)));
        self
    }

    /// Parses `Name: value` (as given on a command line): `None` unless the name
    /// is a token and the value has no control characters but tab.
    pub fn parse_field(field: &str) -> Option<(String, String)> {
        let (name, value) = field.split_once(':')?;
        let name = name.trim();
        let value = value.trim();
        (is_token(name) && !has_control(value)).then(|| (name.to_string(), value.to_string()))
    }

    /// Whether `name` is a field the server writes itself on every response
    /// (`Server`, `Date`, `Content-Length`, `Transfer-Encoding`, `Connection`),
    /// which a middleware's fields never replace.
    pub fn is_reserved(name: &str) -> bool {
        crate::head::is_managed(name)
    }

    /// Whether no fields are configured.
    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }
}

impl Middleware for SetHeaders {
    fn on_response(&self, _req: &Request<'_>, response: &mut Response) {
        for (name, value) in &self.fields {
            if !response.has_header(name) {
                response.append_header(HeaderValue::from(name.clone()), HeaderValue::from(value.clone()));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_header_fields() {
        assert_eq!(
            SetHeaders::parse_field("Cache-Control: max-age=60"),
            Some(("Cache-Control".into(), "max-age=60".into()))
        );
        assert_eq!(SetHeaders::parse_field("X:y"), Some(("X".into(), "y".into())));
        assert_eq!(SetHeaders::parse_field("no colon"), None);
        assert_eq!(SetHeaders::parse_field("Bad Name: x"), None);
        assert_eq!(SetHeaders::parse_field(": x"), None);
    }
}
