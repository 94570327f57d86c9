//! The `Date` header value, rendered at most once per second.

use std::time::{SystemTime, UNIX_EPOCH};

use crate::timer::Millis;

/// Length of an IMF-fixdate such as `Sun, 06 Nov 1994 08:49:37 GMT`.
pub(crate) const LEN: usize = 29;

/// A cached IMF-fixdate for the current second.
#[derive(Debug)]
pub(crate) struct DateCache {
    value: [u8; LEN],
    /// Monotonic time at which the cached second is over.
    refresh_at: Millis,
}

impl DateCache {
    pub(crate) fn new() -> DateCache {
        let mut cache = DateCache { value: [b' '; LEN], refresh_at: 0 };
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
        if text.len() == LEN {
            self.value.copy_from_slice(text.as_bytes());
        }
        let into_second = wall.duration_since(UNIX_EPOCH).map(|d| d.subsec_millis()).unwrap_or(0);
        self.refresh_at = now + u64::from(1000 - into_second);
    }

    /// The current value, e.g. `Sun, 06 Nov 1994 08:49:37 GMT`.
    pub(crate) fn value(&self) -> &[u8; LEN] {
        &self.value
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_a_parseable_current_date() {
        let mut cache = DateCache::new();
        cache.update(5);
        let text = std::str::from_utf8(cache.value()).unwrap();
        let parsed = httpdate::parse_http_date(text).unwrap();
        let age = SystemTime::now().duration_since(parsed).unwrap();
        assert!(age.as_secs() <= 2, "{text} is not now");
        assert!(text.ends_with(" GMT"));
    }
}
