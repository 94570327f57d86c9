//! `Range` header values (src/files/range.rs) against representations of any
//! length.
//!
//! Invariants: satisfiable ranges are non-empty, neither overlapping nor adjacent
//! (in whatever order they were asked for), within the length, at most
//! `MAX_RANGES` of them; an empty
//! representation has no satisfiable range; surrounding whitespace and the case of
//! the unit do not matter.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use spindle::fuzz_api::{parse_range, Ranges, MAX_RANGES};

#[derive(Arbitrary, Debug)]
struct Input<'a> {
    len: u64,
    /// Use `len` as is (large values), or modulo 1000 (small files, where ranges meet).
    small: bool,
    value: &'a [u8],
}

fuzz_target!(|input: Input<'_>| {
    let len = if input.small { input.len % 1000 } else { input.len };
    let parsed = parse_range(input.value, len);
    if let Ranges::Ranges(ranges) = &parsed {
        assert!(!ranges.is_empty(), "no ranges but not unsatisfiable");
        assert!(ranges.len() <= MAX_RANGES);
        let mut by_start = ranges.clone();
        by_start.sort_unstable();
        let mut prev_end = None;
        for &(start, end) in &by_start {
            assert!(start < end && end <= len, "range {start}..{end} of {len}");
            if let Some(prev) = prev_end {
                assert!(start > prev, "ranges overlap or touch: {ranges:?}");
            }
            prev_end = Some(end);
        }
        assert!(ranges.iter().map(|(s, e)| e - s).sum::<u64>() <= len);
    }
    if len == 0 {
        assert!(!matches!(parsed, Ranges::Ranges(_)), "a range of an empty file: {parsed:?}");
    }
    // Optional whitespace around the value and the unit's case are not significant.
    let mut padded = b" \t".to_vec();
    padded.extend(input.value.iter().map(|b| b.to_ascii_uppercase()));
    padded.extend_from_slice(b" ");
    if input.value.iter().all(|b| !b.is_ascii_alphabetic() || b"bytesBYTES".contains(b)) {
        assert_eq!(parse_range(&padded, len), parsed, "{padded:?}");
    }
});
