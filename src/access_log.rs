//! The access-log line, written through `log` on its own target.

use std::fmt;
use std::net::SocketAddr;

/// The `log` target of access-log lines; filter it with `RUST_LOG=spindle::access=off`.
pub const TARGET: &str = "spindle::access";

/// Whether access-log lines would be printed (checked before gathering them).
pub(crate) fn enabled() -> bool {
    log::log_enabled!(target: TARGET, log::Level::Info)
}

/// One finished (or aborted) request.
pub(crate) struct Entry<'a> {
    pub peer: SocketAddr,
    pub method: &'a [u8],
    pub target: &'a [u8],
    pub minor_version: u8,
    pub status: u16,
    pub bytes: u64,
    pub micros: u64,
}

impl Entry<'_> {
    /// Emits the line at info level on [`TARGET`].
    pub(crate) fn log(&self) {
        log::info!(target: TARGET, "{self}");
    }
}

impl fmt::Display for Entry<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} \"{} {} HTTP/1.{}\" {} {} {}.{:03}ms",
            self.peer.ip(),
            Escaped(self.method),
            Escaped(self.target),
            self.minor_version,
            self.status,
            self.bytes,
            self.micros / 1000,
            self.micros % 1000
        )
    }
}

/// Client-supplied bytes with control characters, `"`, `\` and non-ASCII escaped
/// as `\xNN`, so a line cannot be forged or break a terminal.
pub(crate) struct Escaped<'a>(pub &'a [u8]);

impl fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("-");
        }
        for &b in self.0 {
            if (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\' {
                fmt::Write::write_char(f, char::from(b))?;
            } else {
                write!(f, "\\x{b:02x}")?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_control_characters() {
        let e = Entry {
            peer: "127.0.0.1:5".parse().unwrap(),
            method: b"GET",
            target: b"/a\x1b[31m\"\n",
            minor_version: 1,
            status: 200,
            bytes: 10,
            micros: 1500,
        };
        assert_eq!(e.to_string(), r#"127.0.0.1 "GET /a\x1b[31m\x22\x0a HTTP/1.1" 200 10 1.500ms"#);
        assert_eq!(Escaped(b"").to_string(), "-");
    }
}
