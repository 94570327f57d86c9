//! Byte searches in request paths, eight bytes at a time.
//!
//! A path is a few tens of bytes: too short for `memchr`, whose setup costs more
//! than such a search (measured slower than a byte loop here), and long enough
//! that a byte loop showed in profiles.

/// A byte of 0x01 in every lane.
const ONES: u64 = 0x0101_0101_0101_0101;
/// The low seven bits of every lane.
const LOW7: u64 = 0x7f7f_7f7f_7f7f_7f7f;

/// 0x80 in each byte of `word` that equals `byte`, 0 in the others. Exact: no
/// carry crosses from one byte to the next.
#[inline]
pub(crate) fn eq_mask(word: u64, byte: u8) -> u64 {
    let v = word ^ (ONES * u64::from(byte));
    !(((v & LOW7) + LOW7) | v | LOW7)
}

/// The position of the first byte of `hay` that is `a` or `b`.
#[inline]
pub(crate) fn find2(hay: &[u8], a: u8, b: u8) -> Option<usize> {
    let mut chunks = hay.chunks_exact(8);
    let mut at = 0;
    for chunk in &mut chunks {
        let word = u64::from_le_bytes(chunk.try_into().unwrap_or_default());
        let found = eq_mask(word, a) | eq_mask(word, b);
        if found != 0 {
            return Some(at + (found.trailing_zeros() / 8) as usize);
        }
        at += 8;
    }
    chunks.remainder().iter().position(|&c| c == a || c == b).map(|i| at + i)
}

/// The position of the first `byte` in `hay`.
#[inline]
pub(crate) fn find(hay: &[u8], byte: u8) -> Option<usize> {
    find2(hay, byte, byte)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_mark_exactly_the_equal_bytes() {
        // Every byte value against every other, in every lane, beside neighbours
        // that could borrow or carry (0x00, 0x80, 0xff).
        for byte in 0..=255u8 {
            for other in 0..=255u8 {
                for lane in 0..8 {
                    for fill in [0x00u8, 0x80, 0xff, byte.wrapping_add(1)] {
                        let mut bytes = [fill; 8];
                        bytes[lane] = other;
                        let mask = eq_mask(u64::from_le_bytes(bytes), byte);
                        let expected: u64 =
                            bytes.iter().enumerate().map(|(i, &c)| if c == byte { 0x80 << (8 * i) } else { 0 }).sum();
                        assert_eq!(mask, expected, "byte {byte:#x}, {bytes:x?}");
                    }
                }
            }
        }
    }

    #[test]
    fn finds_the_first_of_either_byte_at_every_position() {
        for len in 0..40usize {
            for at in 0..len {
                for second in [None, Some(at + 1), Some(len.saturating_sub(1))] {
                    let mut hay = vec![b'a'; len];
                    hay[at] = b'#';
                    if let Some(s) = second.filter(|&s| s > at && s < len) {
                        hay[s] = b'?';
                    }
                    assert_eq!(find2(&hay, b'?', b'#'), Some(at), "{len} {at}");
                    assert_eq!(find(&hay, b'#'), Some(at), "{len} {at}");
                }
            }
            assert_eq!(find2(&vec![b'a'; len], b'?', b'#'), None);
        }
    }
}
