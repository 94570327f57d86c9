//! Error pages from files, for every error response (nginx's `error_page`).

use std::fs::File;
use std::path::{Path, PathBuf};

use crate::middleware::Middleware;
use crate::request::Request;
use crate::response::{Body, HeaderValue, Response};
use crate::status::Status;

/// Answers chosen statuses with the contents of files instead of the built-in
/// pages: every response that carries the built-in page of such a status,
/// whoever made it (a handler, the router's 405, or the connection's own 400,
/// 408, 413, 431 …). A file that cannot be read when needed leaves the
/// built-in page in place. Files are opened per response, which errors are
/// rare enough for; [`StaticFiles::error_page`](crate::StaticFiles::error_page)
/// does the same for the file handler alone.
#[derive(Clone, Debug, Default)]
pub struct ErrorPages {
    pages: Vec<(Status, PathBuf)>,
}

impl ErrorPages {
    /// No pages yet.
    pub fn new() -> ErrorPages {
        ErrorPages::default()
    }

    /// Answers `status` with the contents of `file` (its media type from its name).
    pub fn page(mut self, status: Status, file: impl Into<PathBuf>) -> ErrorPages {
        self.pages.push((status, file.into()));
        self
    }

    /// Whether no pages are configured.
    pub fn is_empty(&self) -> bool {
        self.pages.is_empty()
    }
}

impl Middleware for ErrorPages {
    fn on_response(&self, _req: &Request<'_>, response: &mut Response) {
        let status = response.status_code();
        if !matches!(response.body(), Body::Page(page) if *page == status) {
            return;
        }
        let Some((_, path)) = self.pages.iter().find(|(s, _)| *s == status) else { return };
        match page_file(path) {
            Some(page) => {
                response.set_header("Content-Type", page.content_type);
                response.set_body(page.body);
            }
            None => log::debug!("error page {} cannot be read: the built-in one is sent", path.display()),
        }
    }
}

/// A page read from a file: its body and media type.
pub(crate) struct PageFile {
    pub body: Body,
    pub content_type: HeaderValue,
}

/// The regular file at `path` as a page, if it can be opened.
pub(crate) fn page_file(path: &Path) -> Option<PageFile> {
    let file = File::open(path).ok()?;
    let len = file.metadata().ok().filter(|m| m.is_file())?.len();
    let name = path.file_name().map(|n| n.as_encoded_bytes()).unwrap_or_default();
    let (mime, text) = crate::files::resolve::content_type(name);
    Some(PageFile { body: Body::File { file, offset: 0, len }, content_type: HeaderValue::mime(mime, text) })
}
