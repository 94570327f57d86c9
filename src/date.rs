//! The `Date` header value, rendered at most once per second, and kept with the
//! `Server` field before it: the two fields every response head carries.

use std::time::{SystemTime, UNIX_EPOCH};

use crate::timer::Millis;

/// Length of an IMF-fixdate such as `Sun, 06 Nov 1994 08:49:37 GMT`.
pub(crate) const LEN: usize = 29;

/// `Server: spindle/<version>\r\nDate: `, before the date in [`DateCache::fields`].
const FIELDS_START: &[u8] = concat!("Server: spindle/", env!("CARGO_PKG_VERSION"), "\r\nDate: ").as_bytes();

/// Length of [`DateCache::fields`].
pub(crate) const FIELDS_LEN: usize = FIELDS_START.len() + LEN + 2;

/// A cached IMF-fixdate for the current second.
#[derive(Debug)]
pub(crate) struct DateCache {
    /// The `Server` and `Date` fields, the date last: one copy per response head.
    fields: [u8; FIELDS_LEN],
    /// Monotonic time at which the cached second is over.
    refresh_at: Millis,
}

impl DateCache {
    pub(crate) fn new() -> DateCache {
        let mut cache = DateCache { fields: fields(&[b' '; LEN]), refresh_at: 0 };
        cache.render(0);
        cache
    }

    /// Re-renders the value if the wall-clock second may have changed since the last call.
    pub(crate) fn update(&mut self, now: Millis) {
        if now >= self.refresh_at {
            self.render(now);
        }
    }

    fn render(&mut self, now: Millis) {
        let wall = SystemTime::now();
        let text = httpdate::fmt_http_date(wall);
        if let Ok(date) = text.as_bytes().try_into() {
            self.fields = fields(date);
        }
        let into_second = wall.duration_since(UNIX_EPOCH).map(|d| d.subsec_millis()).unwrap_or(0);
        self.refresh_at = now + u64::from(1000 - into_second);
    }

    /// `Server: spindle/<version>\r\nDate: <value>\r\n`.
    pub(crate) fn fields(&self) -> &[u8; FIELDS_LEN] {
        &self.fields
    }
}

/// `Server: spindle/<version>\r\nDate: <date>\r\n`.
pub(crate) fn fields(date: &[u8; LEN]) -> [u8; FIELDS_LEN] {
    let mut fields = [0; FIELDS_LEN];
    let (start, rest) = fields.split_at_mut(FIELDS_START.len());
    start.copy_from_slice(FIELDS_START);
    let (value, end) = rest.split_at_mut(LEN);
    value.copy_from_slice(date);
    end.copy_from_slice(b"\r\n");
    fields
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_a_parseable_current_date() {
        let mut cache = DateCache::new();
        cache.update(5);
        let fields = std::str::from_utf8(cache.fields()).unwrap();
        let text = &fields[FIELDS_START.len()..FIELDS_LEN - 2];
        let parsed = httpdate::parse_http_date(text).unwrap();
        let age = SystemTime::now().duration_since(parsed).unwrap();
        assert!(age.as_secs() <= 2, "{text} is not now");
        assert!(text.ends_with(" GMT"));
        assert_eq!(fields, format!("Server: spindle/{}\r\nDate: {text}\r\n", env!("CARGO_PKG_VERSION")));
    }
}
