//! spindle: a single-threaded, event-loop HTTP/1.1 server on mio.
//!
//! A [`Server`] answers any number of clients from one thread with a [`Router`]:
//! handlers keyed by method and path, handlers mounted under a prefix (such as
//! [`StaticFiles`]), and [`Middleware`] around them (such as [`AccessLog`]). It
//! does not own the event loop: a program that already runs a `mio::Poll`
//! registers the server on it and forwards events (see [`Server`]); others use
//! [`run`] or [`EventLoop`], which own a `Poll`.
//!
//! Handlers and middleware run on the loop thread and must not block.
//!
//! For a daemon: [`listen`] binds `SO_REUSEPORT` sockets (one per worker
//! thread, each running its own server) and takes over inherited ones (systemd
//! socket activation); [`LogFile`] writes an access log from a thread of its own
//! and reopens it for log rotation; [`StatsHandle`] reads a server's counters
//! from any thread and [`StatsPage`] serves them as JSON or Prometheus text.
//!
//! ```no_run
//! use spindle::{AccessLog, Config, LogFormat, Response, Router, Server, StaticFiles};
//!
//! let router = Router::new()
//!     .get("/health", |_req: &spindle::Request<'_>| Response::json(r#"{"status":"ok"}"#))
//!     .fallback(StaticFiles::new("www")?)
//!     .wrap(AccessLog::new(LogFormat::Common));
//! let mut server = Server::new(Config::default(), router);
//! server.bind("127.0.0.1:8080".parse().unwrap())?;
//! spindle::run(server)?;
//! # Ok::<(), std::io::Error>(())
//! ```
#![deny(missing_docs)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

mod access_log;
mod body;
mod config;
mod conn;
mod date;
mod error_pages;
mod files;
mod head;
pub mod listen;
pub mod loadtest;
mod log_file;
mod middleware;
mod parse;
mod pool;
mod request;
mod response;
mod router;
mod run;
mod scan;
mod server;
mod stats;
mod stats_page;
mod status;
mod timer;

pub use access_log::{AccessLog, LogFormat, TARGET as ACCESS_LOG_TARGET};
pub use config::Config;
pub use error_pages::ErrorPages;
pub use files::StaticFiles;
pub use log_file::{LogFile, LogWriter};
pub use middleware::{Middleware, SetHeaders};
pub use request::{Headers, Method, Request, Version};
pub use response::{Body, HeaderName, HeaderValue, Multipart, Response};
pub use router::{Handler, Router};
pub use run::{run, Control, EventLoop, SERVER_FIRST_TOKEN};
pub use server::{Server, TOKEN_SPAN};
pub use stats::{Stats, StatsHandle, Timeouts};
pub use stats_page::StatsPage;
pub use status::Status;

#[doc(hidden)]
pub mod fuzz_api;

/// Internal functions exposed for the benchmarks in `benches/`; not a stable API.
#[doc(hidden)]
pub mod bench_api {
    /// Parses a request head; returns its length when complete and valid.
    pub fn parse_head(buf: &[u8]) -> Option<usize> {
        crate::parse::parse_head(buf, 8192, &mut Vec::new()).ok().flatten().map(|h| h.len)
    }

    /// Writes a typical 200 response head for a file into `buf`.
    pub fn write_file_head(buf: &mut Vec<u8>, date: &[u8; 29], len: u64) {
        use crate::response::{known, HeaderValue};
        let fields = crate::date::fields(date);
        let mut w = crate::head::HeadWriter::new(buf, crate::Status::OK, &fields);
        w.field(&known::CONTENT_TYPE, &HeaderValue::mime("text/html", true));
        w.field(&known::ACCEPT_RANGES, &known::BYTES);
        w.content_length(len).finish(crate::head::Persistence::Default);
    }

    /// Percent-decodes and normalises a request path into `out`; false when refused.
    pub fn resolve_path(raw: &[u8], decoded: &mut Vec<u8>, out: &mut Vec<u8>) -> bool {
        crate::files::percent_decode(raw, decoded).is_some() && crate::files::normalize(decoded, out)
    }
}
