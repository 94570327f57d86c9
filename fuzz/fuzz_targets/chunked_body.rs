//! The chunked body decoder (`src/body.rs`), fed arbitrary bytes in arbitrary
//! splits the way the connection feeds it (src/conn.rs `read_body`): whatever is
//! buffered, again while it makes progress, and more bytes when it does not.
//!
//! Invariants: each step's data lies within what it consumed and within its input;
//! decoded data never exceeds the input; the outcome (data, bytes consumed, done or
//! the error) is the same for every split; a decoded body re-encoded as chunks of
//! any size decodes to itself.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use spindle::fuzz_api::BodyDecoder;

#[derive(Arbitrary, Debug)]
struct Input<'a> {
    /// Sizes of the successive reads (cycled; 0 is read as 1).
    reads: Vec<u8>,
    /// Chunk size for the re-encoding.
    chunk: u8,
    body: &'a [u8],
}

#[derive(Debug, PartialEq, Eq)]
struct Outcome {
    data: Vec<u8>,
    consumed: usize,
    result: Result<bool, &'static str>,
}

fuzz_target!(|input: Input<'_>| {
    let whole = decode(input.body, &[]);
    assert!(whole.data.len() <= input.body.len(), "{whole:?}");
    if whole.result.is_ok() {
        assert!(whole.data.len() <= whole.consumed && whole.consumed <= input.body.len(), "{whole:?}");
    }
    if let Ok(true) = whole.result {
        assert!(whole.consumed >= 5, "a chunked body is at least `0\\r\\n\\r\\n`");
    }
    let split = decode(input.body, &input.reads);
    assert_eq!(split, whole, "reads {:?}", input.reads);

    if let Ok(true) = whole.result {
        let encoded = encode(&whole.data, usize::from(input.chunk).max(1));
        let again = decode(&encoded, &input.reads);
        assert_eq!(again, Outcome { data: whole.data.clone(), consumed: encoded.len(), result: Ok(true) });
    }

    // A Content-Length body: exactly the first n bytes, however they arrive.
    let n = input.reads.first().map_or(0, |&n| u64::from(n));
    if let Some(mut fixed) = BodyDecoder::fixed(n) {
        let step = fixed.decode(input.body).expect("a fixed-length body cannot be malformed");
        let want = input.body.len().min(n as usize);
        assert_eq!((step.consumed, step.data), (want, (0, want)));
        assert_eq!(fixed.is_done(), want as u64 == n);
    }
});

/// Decodes `body` arriving in reads of the sizes in `reads` (cycled; all at once
/// when empty), as the connection does.
fn decode(body: &[u8], reads: &[u8]) -> Outcome {
    let mut d = BodyDecoder::chunked().expect("chunked decoder");
    let mut out = Outcome { data: Vec::new(), consumed: 0, result: Ok(false) };
    let mut arrived = 0;
    let mut sizes = reads.iter().map(|&n| usize::from(n).max(1)).cycle();
    while arrived < body.len() {
        arrived = match sizes.next() {
            Some(n) => (arrived + n).min(body.len()),
            None => body.len(),
        };
        // Decode what is buffered until a step consumes nothing.
        loop {
            let input = &body[out.consumed..arrived];
            let step = match d.decode(input) {
                Ok(step) => step,
                Err(e) => {
                    // The body is refused; what was consumed before no longer matters
                    // (and depends on the split: a failing step reports nothing).
                    out.consumed = 0;
                    out.result = Err(e);
                    return out;
                }
            };
            assert!(step.consumed <= input.len(), "consumed {} of {}", step.consumed, input.len());
            assert!(step.data.0 <= step.data.1 && step.data.1 <= step.consumed, "{step:?}");
            out.data.extend_from_slice(&input[step.data.0..step.data.1]);
            out.consumed += step.consumed;
            if d.is_done() {
                out.result = Ok(true);
                return out;
            }
            if step.consumed == 0 {
                break;
            }
        }
    }
    out
}

/// `data` as a chunked body with chunks of `size` bytes.
fn encode(data: &[u8], size: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for chunk in data.chunks(size) {
        out.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        out.extend_from_slice(chunk);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"0\r\n\r\n");
    out
}
