//! The access log as middleware: one line per response in Common Log Format or
//! Combined Log Format, written through `log` on its own target or into a log file.

use std::cell::RefCell;
use std::fmt::{self, Write as _};
use std::io::Write as _;
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::log_file::LogWriter;
use crate::middleware::Middleware;
use crate::request::{Method, Request, Version};
use crate::response::Response;

/// The `log` target of access-log lines; filter it with `RUST_LOG=spindle::access=off`.
pub const TARGET: &str = "spindle::access";

/// Which access-log line format to write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    /// `host - - [time] "request" status bytes`
    Common,
    /// Common, then `"referer" "user-agent"`.
    Combined,
}

/// Middleware writing an access-log line for every response, including the
/// server's own error responses: through `log` (info level, target [`TARGET`])
/// or into a [`LogFile`](crate::LogFile). Client-supplied text is escaped so that
/// a line cannot be forged or break a terminal.
///
/// The line is written once the response has been sent, or has stopped being
/// sent (the client went away, the send timeout or a shutdown's grace period
/// ended it): its byte count is the body bytes that went out, as nginx's
/// `$body_bytes_sent`. Its time is when the response began.
#[derive(Debug)]
pub struct AccessLog {
    format: LogFormat,
    output: Option<LogWriter>,
    /// The rendered time of the last second a line was written in.
    time: RefCell<(u64, String)>,
    /// Lines already written, kept for the next ones (their buffers reused).
    spare: Arc<SpareLines>,
}

/// Lines written and kept for reuse: boxed as they travel in a `Response`, so
/// that reusing one reuses its box too.
#[allow(clippy::vec_box)]
type SpareLines = Mutex<Vec<Box<PendingLine>>>;

/// Finished lines kept for reuse, at most, and the largest line buffer kept.
const SPARE_LINES: usize = 64;
const LINE_KEPT: usize = 4096;

impl AccessLog {
    /// An access log in `format`, written through `log`.
    pub fn new(format: LogFormat) -> AccessLog {
        AccessLog { format, output: None, time: RefCell::new((u64::MAX, String::new())), spare: Arc::default() }
    }

    /// An access log in `format`, written into a log file through `writer`.
    pub fn to_file(format: LogFormat, writer: LogWriter) -> AccessLog {
        AccessLog { output: Some(writer), ..AccessLog::new(format) }
    }
}

impl Middleware for AccessLog {
    fn on_response(&self, req: &Request<'_>, response: &mut Response) {
        if self.output.is_none() && !log::log_enabled!(target: TARGET, log::Level::Info) {
            return;
        }
        let status = response.status_code();
        let bytes = if req.method() == Method::Head || !status.allows_body() { 0 } else { response.body().len() };
        let mut time = self.time.borrow_mut();
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        if time.0 != now {
            time.1.clear();
            let _ = write_clf_time(&mut time.1, now);
            time.0 = now;
        }
        let spare = self.spare.lock().unwrap_or_else(PoisonError::into_inner).pop();
        let mut pending = spare.unwrap_or_else(|| {
            Box::new(PendingLine {
                output: self.output.clone(),
                line: String::new(),
                at: 0,
                declared: 0,
                done: true,
                home: Arc::downgrade(&self.spare),
            })
        });
        pending.line.clear();
        let line = Line { format: self.format, req, time: &time.1, status: status.code() };
        let _ = line.write_before_bytes(&mut pending.line);
        pending.at = pending.line.len();
        let _ = line.write_after_bytes(&mut pending.line);
        (pending.declared, pending.done) = (bytes, false);
        // With two access logs, the other one's line, replaced here, is written
        // as it was when dropped.
        response.pending_log = Some(pending);
    }
}

/// An access-log line waiting for its response to end: written by
/// [`finish`](PendingLine::finish) with the body bytes sent, or, if dropped
/// unfinished (a middleware replaced the response), with the body's length.
#[derive(Debug)]
pub(crate) struct PendingLine {
    output: Option<LogWriter>,
    /// The line without its byte count, which goes at `at`.
    line: String,
    at: usize,
    declared: u64,
    done: bool,
    /// Where the line goes once written, to be used again.
    home: Weak<SpareLines>,
}

impl PendingLine {
    /// Writes the line with `sent` body bytes.
    pub(crate) fn finish(mut self: Box<Self>, sent: u64) {
        self.write(sent);
        let Some(home) = self.home.upgrade() else { return };
        let mut spare = home.lock().unwrap_or_else(PoisonError::into_inner);
        if spare.len() < SPARE_LINES && self.line.capacity() <= LINE_KEPT {
            spare.push(self);
        }
    }

    /// Writes the line of a response that never began because the client closed
    /// the connection first: status 499 (as nginx logs it), no body bytes.
    pub(crate) fn client_gone(mut self: Box<Self>) {
        // The status is the three digits before the space in front of the byte count.
        let status = self.at.checked_sub(4).map(|start| start..start + 3);
        if let Some(range) =
            status.filter(|r| self.line.get(r.clone()).is_some_and(|s| s.bytes().all(|b| b.is_ascii_digit())))
        {
            self.line.replace_range(range, "499");
        }
        self.finish(0);
    }

    fn write(&mut self, bytes: u64) {
        self.done = true;
        let (before, after) = self.line.split_at(self.at.min(self.line.len()));
        match &self.output {
            Some(writer) => writer.line(|buf| {
                let _ = write!(buf, "{before}{}{after}", Bytes(bytes));
            }),
            None => log::info!(target: TARGET, "{before}{}{after}", Bytes(bytes)),
        }
    }
}

impl Drop for PendingLine {
    fn drop(&mut self) {
        if !self.done {
            self.write(self.declared);
        }
    }
}

/// One access-log line (without its newline), written in two parts around its
/// byte count, which is known only once the response has gone out.
struct Line<'a, 'r> {
    format: LogFormat,
    req: &'a Request<'r>,
    time: &'a str,
    status: u16,
}

impl Line<'_, '_> {
    /// Everything up to the byte count: `host - - [time] "request" status `.
    fn write_before_bytes(&self, out: &mut String) -> fmt::Result {
        let req = self.req;
        let version = if req.version() == Version::Http10 { "1.0" } else { "1.1" };
        let request = RequestLine { method: req.method_str(), target: req.target(), version, raw: req.raw_line };
        write!(out, "{} - - [{}] {request} {} ", req.peer().ip(), self.time, self.status)
    }

    /// Everything after it: Combined's referer and user agent.
    fn write_after_bytes(&self, out: &mut String) -> fmt::Result {
        if self.format == LogFormat::Combined {
            let referer = Quoted(self.req.headers().get_bytes("referer"));
            let agent = Quoted(self.req.headers().get_bytes("user-agent"));
            write!(out, " {referer} {agent}")?;
        }
        Ok(())
    }
}

/// `"GET /path HTTP/1.1"`; for a request that could not be parsed, the start of
/// its first line as received (escaped), or `"-"` when nothing of it came.
struct RequestLine<'a> {
    method: &'a str,
    target: &'a str,
    version: &'a str,
    raw: &'a [u8],
}

impl fmt::Display for RequestLine<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.raw.is_empty() {
            return write!(f, "\"{}\"", Escaped(self.raw));
        }
        if self.method.is_empty() {
            return f.write_str("\"-\"");
        }
        write!(f, "\"{} {} HTTP/{}\"", Escaped(self.method.as_bytes()), Escaped(self.target.as_bytes()), self.version)
    }
}

/// CLF's byte count: `-` for none.
struct Bytes(u64);

impl fmt::Display for Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0 == 0 {
            f.write_str("-")
        } else {
            write!(f, "{}", self.0)
        }
    }
}

/// A quoted, escaped header value, or `"-"` when absent.
struct Quoted<'a>(Option<&'a [u8]>);

impl fmt::Display for Quoted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(v) if !v.is_empty() => write!(f, "\"{}\"", Escaped(v)),
            _ => f.write_str("\"-\""),
        }
    }
}

/// Client-supplied bytes with control characters, `"`, `\` and non-ASCII escaped
/// as `\xNN`.
pub(crate) struct Escaped<'a>(pub &'a [u8]);

impl fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for &b in self.0 {
            if (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\' {
                f.write_char(char::from(b))?;
            } else {
                write!(f, "\\x{b:02x}")?;
            }
        }
        Ok(())
    }
}

/// Writes `secs` since the Unix epoch as CLF time, `21/Nov/2026:06:10:50 +0000`.
fn write_clf_time(out: &mut String, secs: u64) -> fmt::Result {
    const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    let (year, month, day) = civil_from_days((secs / 86_400) as i64);
    let t = secs % 86_400;
    let month = MONTHS.get(month as usize - 1).unwrap_or(&"???");
    write!(out, "{day:02}/{month}/{year}:{:02}:{:02}:{:02} +0000", t / 3600, t / 60 % 60, t % 60)
}

/// The proleptic Gregorian date of a day count since 1970-01-01 (H. Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clf_time() {
        let mut s = String::new();
        write_clf_time(&mut s, 0).unwrap();
        assert_eq!(s, "01/Jan/1970:00:00:00 +0000");
        s.clear();
        write_clf_time(&mut s, 1_795_242_050).unwrap();
        assert_eq!(s, "21/Nov/2026:06:20:50 +0000");
        s.clear();
        write_clf_time(&mut s, 951_782_400).unwrap(); // a leap day
        assert_eq!(s, "29/Feb/2000:00:00:00 +0000");
    }

    #[test]
    fn escapes_client_text() {
        assert_eq!(Escaped(b"/a\x1b[31m\"\n\\").to_string(), r"/a\x1b[31m\x22\x0a\x5c");
        assert_eq!(Quoted(None).to_string(), "\"-\"");
        assert_eq!(RequestLine { method: "", target: "", version: "1.1", raw: b"" }.to_string(), "\"-\"");
        let raw = RequestLine { method: "", target: "", version: "1.1", raw: b"GET /\x1b HTTP/1.1" };
        assert_eq!(raw.to_string(), r#""GET /\x1b HTTP/1.1""#);
    }
}
