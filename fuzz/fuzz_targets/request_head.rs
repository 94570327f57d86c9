//! The request-head parser (`src/parse.rs`), fed raw bytes the way the connection
//! feeds it: in one piece, and grown read by read with the quick end-of-head scan
//! resuming where the last read left off.
//!
//! Invariants: a parsed head lies within the input and the size limit, its spans
//! lie within the head, bytes after the head change nothing, a head is parsed the
//! same however it is split across reads, and a limit only ever refuses (never
//! changes) a head.
#![no_main]

use libfuzzer_sys::fuzz_target;
use spindle::fuzz_api::{find_head_end, holds_head, incomplete_status, parse_head, BodyFraming, Head};

/// The server's default `max_header_bytes`.
const MAX: usize = 8 * 1024;
/// A small limit, to exercise 414/431.
const SMALL: usize = 64;

fuzz_target!(|data: &[u8]| {
    let whole = parse_head(data, MAX);
    if let Ok(Some(head)) = &whole {
        check_head(data, head, MAX);
        // What follows the head is not part of it.
        assert_eq!(parse_head(&data[..head.len], MAX), whole, "a head depends on the bytes after it");
        // The server only parses once the quick scan has seen an end of head.
        let end = find_head_end(data, 0).expect("a complete head the quick scan does not see");
        assert!(end <= head.len, "quick scan ends at {end}, past the head ({})", head.len);
    }

    // Limits refuse, they never change what is parsed.
    match (parse_head(data, SMALL), &whole) {
        (Ok(Some(small)), Ok(Some(head))) => assert_eq!(&small, head),
        (Ok(Some(small)), other) => panic!("parsed {small:?} under a limit, {other:?} without"),
        (Err(status), Ok(Some(head))) if head.len > SMALL => {
            assert!(status == 414 || status == 431, "head over the limit refused with {status}")
        }
        _ => {}
    }

    // Split across two reads at every point (or, for long inputs, around each line
    // feed, where the scan is delicate): the outcome matches the one-piece parse.
    let one_piece = server_reads(data, &[]);
    if data.len() <= 512 {
        for cut in 1..data.len() {
            check_split(data, cut, &one_piece);
        }
    } else {
        let cuts = data.iter().enumerate().filter(|(_, &b)| b == b'\n').map(|(i, _)| i).take(32);
        for nl in cuts {
            for cut in nl.saturating_sub(2)..=(nl + 2).min(data.len() - 1) {
                if cut > 0 {
                    check_split(data, cut, &one_piece);
                }
            }
        }
    }
});

/// Reads ending at `cut` and then at the end decide as one read of everything.
///
/// One exception: garbage after leading empty lines is refused at once when it
/// arrives in the same read as those lines (the scan sees `\n\n` and the parser
/// runs), but only at the end of the head when it arrives later (the scan resumes
/// past them). Either way it is refused once a head's end is there.
fn check_split(data: &[u8], cut: usize, one_piece: &Result<Option<Head>, u16>) {
    let split = server_reads(data, &[cut]);
    match (&split, one_piece) {
        (Ok(None), Err(_)) => {
            let mut ended = data.to_vec();
            ended.extend_from_slice(b"\r\n\r\n");
            assert_eq!(&server_reads(&ended, &[cut]), one_piece, "split at {cut}, then the head ends");
        }
        _ => assert_eq!(&split, one_piece, "split at {cut}"),
    }
}

/// The spans of a parsed head lie inside it and are consistent.
fn check_head(data: &[u8], head: &Head, max: usize) {
    assert!(head.len <= data.len(), "head length {} > input {}", head.len, data.len());
    assert!(head.len <= max, "head length {} over the limit {max}", head.len);
    let inside = |(a, b): (usize, usize)| a <= b && b <= head.len;
    assert!(inside(head.method) && head.method.0 < head.method.1, "method span {:?}", head.method);
    assert!(inside(head.target) && head.target.0 < head.target.1, "target span {:?}", head.target);
    assert!(head.method.1 <= head.target.0, "method after target");
    assert!(head.minor_version <= 1);
    for &(name, value) in &head.headers {
        assert!(inside(name) && name.0 < name.1 && inside(value), "header span {name:?} {value:?}");
        assert!(name.1 <= value.0, "header value before its name");
        assert!(!data[value.0..value.1].contains(&b'\n'), "line feed inside a header value");
    }
    if head.body == BodyFraming::Chunked {
        assert_eq!(head.minor_version, 1, "chunked in HTTP/1.0");
    }
    if let BodyFraming::Fixed(n) = head.body {
        assert!(n > 0, "Fixed(0) instead of no body");
    }
}

/// What the connection's head-reading loop decides when `data` arrives in reads
/// ending at `cuts` and then at `data.len()` (src/conn.rs `read_head`).
fn server_reads(data: &[u8], cuts: &[usize]) -> Result<Option<Head>, u16> {
    let mut scanned = 0;
    for &end in cuts.iter().chain([&data.len()]) {
        let input = &data[..end];
        if holds_head(input, scanned) {
            match parse_head(input, MAX) {
                Ok(None) => {}
                done => return done,
            }
        }
        scanned = end.saturating_sub(3);
        if end >= MAX {
            return Err(incomplete_status(input));
        }
    }
    Ok(None)
}
