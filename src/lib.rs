//! spindle: a single-threaded, event-loop HTTP/1.1 static-file server on mio.
//!
//! One [`Server`] serves the files under [`Config::root`] to any number of
//! clients from one thread. It does not own the event loop: a program that
//! already runs a `mio::Poll` registers the server on it and forwards events
//! (see [`Server`]); others use [`EventLoop`], which owns a `Poll` and runs one.
//!
//! ```no_run
//! use spindle::{Config, Control, EventLoop, Server};
//!
//! let mut server = Server::new(Config { root: "www".into(), ..Config::default() })?;
//! server.bind("127.0.0.1:8080".parse().unwrap())?;
//! EventLoop::new(server)?.run(|_foreign_event| Control::Continue)?;
//! # Ok::<(), std::io::Error>(())
//! ```
#![deny(missing_docs)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

mod access_log;
mod body;
mod config;
mod conn;
mod date;
mod files;
mod parse;
mod pool;
mod response;
mod run;
mod server;
mod status;
mod timer;

pub use access_log::TARGET as ACCESS_LOG_TARGET;
pub use config::Config;
pub use run::{Control, EventLoop, SERVER_FIRST_TOKEN};
pub use server::{Server, TOKEN_SPAN};
pub use status::Status;

/// Internal functions exposed for the benchmarks in `benches/`; not a stable API.
#[doc(hidden)]
pub mod bench_api {
    /// Parses a request head; returns its length when complete and valid.
    pub fn parse_head(buf: &[u8]) -> Option<usize> {
        crate::parse::parse_head(buf, 8192).ok().flatten().map(|h| h.len)
    }

    /// Writes a typical 200 response head for a file into `buf`.
    pub fn write_file_head(buf: &mut Vec<u8>, date: &[u8], len: u64) {
        crate::response::HeadWriter::new(buf, crate::Status::OK, date)
            .content_type("text/html", true)
            .content_length(len)
            .finish(crate::response::Persistence::Default);
    }

    /// Percent-decodes and normalises a request path into `out`; false when refused.
    pub fn resolve_path(raw: &[u8], decoded: &mut Vec<u8>, out: &mut Vec<u8>) -> bool {
        crate::files::percent_decode(raw, decoded).is_some() && crate::files::normalize(decoded, out).is_ok()
    }
}
