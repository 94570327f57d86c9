//! `Range: bytes=...` (RFC 9110 §14): parsing, satisfiability and coalescing.

use smallvec::SmallVec;

use crate::parse::trim;

/// More ranges than this in one request are answered with the whole file.
pub(crate) const MAX_RANGES: usize = 16;

/// A satisfiable byte range: `start..end` (end exclusive) of a representation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ByteRange {
    pub start: u64,
    pub end: u64,
}

impl ByteRange {
    /// The number of bytes.
    pub(crate) fn len(&self) -> u64 {
        self.end - self.start
    }

    /// The `Content-Range` value of a 206 carrying this range of `len` bytes.
    pub(crate) fn content_range(&self, len: u64) -> crate::response::HeaderValue {
        crate::response::HeaderValue::format(format_args!("bytes {}-{}/{len}", self.start, self.end - 1))
    }
}

/// What a `Range` header asks of a representation of `len` bytes.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum RangeRequest {
    /// Ignore it: malformed, not `bytes`, or too many ranges; send the whole.
    Whole,
    /// No range can be satisfied: 416.
    Unsatisfiable,
    /// The satisfiable ranges, overlapping or adjacent ones merged, in the order
    /// they were asked for (a merged range where its first part was; RFC 9110
    /// §15.3.7.2).
    Ranges(SmallVec<[ByteRange; 4]>),
}

/// Parses `value` (a `Range` header) against a representation of `len` bytes.
pub(crate) fn parse(value: &[u8], len: u64) -> RangeRequest {
    let Some(specs) = strip_unit(value) else { return RangeRequest::Whole };
    let mut ranges: SmallVec<[ByteRange; 4]> = SmallVec::new();
    let mut count = 0;
    for spec in specs.split(|&b| b == b',') {
        let spec = trim(spec);
        if spec.is_empty() {
            continue;
        }
        count += 1;
        if count > MAX_RANGES {
            return RangeRequest::Whole;
        }
        let Some(dash) = spec.iter().position(|&b| b == b'-') else { return RangeRequest::Whole };
        let (first, last) = (trim(&spec[..dash]), trim(&spec[dash + 1..]));
        let range = if first.is_empty() {
            // `-n`: the last n bytes.
            let Some(n) = number(last) else { return RangeRequest::Whole };
            (n > 0 && len > 0).then(|| ByteRange { start: len - n.min(len), end: len })
        } else {
            // `a-b` / `a-`
            let Some(a) = number(first) else { return RangeRequest::Whole };
            let end = if last.is_empty() {
                len
            } else {
                match number(last) {
                    Some(b) if b >= a => b.saturating_add(1).min(len),
                    _ => return RangeRequest::Whole,
                }
            };
            (a < len).then_some(ByteRange { start: a, end })
        };
        if let Some(r) = range {
            ranges.push(r);
        }
    }
    if count == 0 {
        return RangeRequest::Whole;
    }
    if ranges.is_empty() {
        return RangeRequest::Unsatisfiable;
    }
    // Merged in order of position, each merged range remembering the earliest
    // place one of its parts was asked for; then put back in that order.
    let mut asked: SmallVec<[(ByteRange, usize); 4]> = ranges.into_iter().enumerate().map(|(i, r)| (r, i)).collect();
    asked.sort_unstable_by_key(|(r, _)| r.start);
    let mut merged: SmallVec<[(ByteRange, usize); 4]> = SmallVec::new();
    for (r, i) in asked {
        match merged.last_mut() {
            Some((last, first)) if r.start <= last.end => {
                last.end = last.end.max(r.end);
                *first = (*first).min(i);
            }
            _ => merged.push((r, i)),
        }
    }
    merged.sort_unstable_by_key(|&(_, first)| first);
    RangeRequest::Ranges(merged.into_iter().map(|(r, _)| r).collect())
}

fn strip_unit(value: &[u8]) -> Option<&[u8]> {
    let value = trim(value);
    let eq = value.iter().position(|&b| b == b'=')?;
    trim(&value[..eq]).eq_ignore_ascii_case(b"bytes").then(|| &value[eq + 1..])
}

/// A non-empty run of decimal digits; one too large for a u64 counts as
/// `u64::MAX` (beyond any file: a first byte there is unsatisfiable, a last
/// byte there means the end).
fn number(s: &[u8]) -> Option<u64> {
    if s.is_empty() || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(s.iter().fold(0u64, |n, d| n.saturating_mul(10).saturating_add(u64::from(d - b'0'))))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ranges(v: &str, len: u64) -> Vec<(u64, u64)> {
        match parse(v.as_bytes(), len) {
            RangeRequest::Ranges(r) => r.iter().map(|r| (r.start, r.end)).collect(),
            other => panic!("{v}: {other:?}"),
        }
    }

    #[test]
    fn single_ranges() {
        assert_eq!(ranges("bytes=0-0", 10), [(0, 1)]);
        assert_eq!(ranges("bytes=2-5", 10), [(2, 6)]);
        assert_eq!(ranges("bytes=2-", 10), [(2, 10)]);
        assert_eq!(ranges("bytes=-3", 10), [(7, 10)]);
        assert_eq!(ranges("bytes=-30", 10), [(0, 10)]);
        assert_eq!(ranges("bytes=5-100", 10), [(5, 10)]);
        assert_eq!(ranges("Bytes = 1-2", 10), [(1, 3)]);
    }

    #[test]
    fn several_ranges_are_merged_and_kept_in_the_order_asked() {
        assert_eq!(ranges("bytes=0-1,4-5", 10), [(0, 2), (4, 6)]);
        assert_eq!(ranges("bytes=4-5,0-1", 10), [(4, 6), (0, 2)]);
        assert_eq!(ranges("bytes=8-9,4-5,0-1,5-6", 10), [(8, 10), (4, 7), (0, 2)], "merged where first asked");
        assert_eq!(ranges("bytes=8-9,0-1,4-5,1-2", 10), [(8, 10), (0, 3), (4, 6)]);
        assert_eq!(ranges("bytes=0-3,2-5", 10), [(0, 6)]);
        assert_eq!(ranges("bytes=0-1,2-3", 10), [(0, 4)], "adjacent ranges merge");
        assert_eq!(ranges("bytes=0-1,20-30", 10), [(0, 2)], "unsatisfiable ones are dropped");
    }

    #[test]
    fn unsatisfiable_and_ignored() {
        assert_eq!(parse(b"bytes=10-", 10), RangeRequest::Unsatisfiable);
        assert_eq!(parse(b"bytes=10-20,30-", 10), RangeRequest::Unsatisfiable);
        assert_eq!(parse(b"bytes=-0", 10), RangeRequest::Unsatisfiable);
        assert_eq!(parse(b"bytes=0-", 0), RangeRequest::Unsatisfiable);
        assert_eq!(parse(b"bytes=-5", 0), RangeRequest::Unsatisfiable);
        // Numbers beyond a u64: a first byte there is past any end, a last byte the end.
        assert_eq!(parse(b"bytes=99999999999999999999-", 10), RangeRequest::Unsatisfiable);
        assert_eq!(ranges("bytes=2-99999999999999999999", 10), [(2, 10)]);
        assert_eq!(ranges("bytes=-99999999999999999999", 10), [(0, 10)]);
        for ignored in ["bytes=5-2", "bytes=a-b", "items=0-1", "bytes", "bytes=", "bytes=1", "bytes=--1", "bytes=1-2-3"]
        {
            assert_eq!(parse(ignored.as_bytes(), 10), RangeRequest::Whole, "{ignored}");
        }
        let many: Vec<String> = (0..=MAX_RANGES).map(|i| format!("{}-{}", i * 2, i * 2)).collect();
        assert_eq!(parse(format!("bytes={}", many.join(",")).as_bytes(), 100), RangeRequest::Whole);
    }
}
