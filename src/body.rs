//! Incremental request-body framing: `Content-Length` and `chunked` (RFC 9112 §7.1).
//!
//! The decoder is fed whatever bytes have arrived and reports how many it consumed
//! and which of them are body data, so a body can be decoded (or skipped) in place
//! in the connection's read buffer, across any number of reads.

use crate::parse::BodyLength;

/// Longest chunk extension accepted, per chunk.
const MAX_CHUNK_EXT: u16 = 1024;
/// Most chunk-extension bytes accepted in one body (hyper's limit): without it,
/// 1-byte chunks with long extensions would make a client send ~1000 bytes per
/// body byte for the server to parse.
const MAX_CHUNK_EXT_TOTAL: u16 = 16 * 1024;
/// Longest trailer section accepted.
const MAX_TRAILER: u16 = 8192;

/// Why a chunked body was refused (always answered with 400 and a close).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct BodyError(pub &'static str);

/// The result of one [`BodyDecoder::decode`] step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Step {
    /// Input bytes consumed by this step.
    pub consumed: usize,
    /// The range of the input that is body data (inside `0..consumed`).
    pub data: (usize, usize),
}

/// Where a body decoder stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum BodyDecoder {
    /// `Content-Length` bytes still to come.
    Fixed(u64),
    /// Inside a chunked body.
    Chunked(Chunked),
    /// The body is complete.
    Done,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Size,
    /// Whitespace after the size: an extension (`;`) or the line's end must follow.
    SizeWs,
    /// After an extension's `;`: whitespace, then its name.
    ExtBeforeName,
    ExtName,
    /// Whitespace after a name: `=`, the next `;` or the line's end must follow.
    ExtAfterName,
    /// After `=`: whitespace, then a token or a quoted string.
    ExtBeforeValue,
    ExtValue,
    ExtQuoted,
    /// After a backslash in a quoted value.
    ExtQuotedPair,
    /// Whitespace after a value: the next `;` or the line's end must follow.
    ExtAfterValue,
    SizeLf,
    Data,
    DataCr,
    DataLf,
    /// At the start of a trailer line (or of the final empty line).
    TrailerStart,
    /// In a trailer field's name.
    TrailerName,
    /// In a trailer field's value.
    TrailerValue,
    TrailerLf,
    EndLf,
    Finished,
}

/// Chunked-decoder state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Chunked {
    state: State,
    /// Chunk size being parsed, or data bytes left in the current chunk.
    size: u64,
    digits: u8,
    ext_len: u16,
    ext_total: u16,
    trailer_len: u16,
}

impl BodyDecoder {
    /// A decoder for a body framed as `length` says, or `None` when there is no body.
    pub(crate) fn new(length: BodyLength) -> Option<BodyDecoder> {
        match length {
            BodyLength::None => None,
            BodyLength::Fixed(n) => Some(BodyDecoder::Fixed(n)),
            BodyLength::Chunked => Some(BodyDecoder::Chunked(Chunked {
                state: State::Size,
                size: 0,
                digits: 0,
                ext_len: 0,
                ext_total: 0,
                trailer_len: 0,
            })),
        }
    }

    /// Whether the whole body has been consumed.
    pub(crate) fn is_done(&self) -> bool {
        matches!(self, BodyDecoder::Done | BodyDecoder::Fixed(0))
    }

    /// Bytes of the chunk being read that have not been decoded yet (0 between
    /// chunks, and for a body of fixed length): the body is at least this much
    /// longer than what has been decoded.
    pub(crate) fn chunk_pending(&self) -> u64 {
        match self {
            BodyDecoder::Chunked(c) if c.state == State::Data => c.size,
            _ => 0,
        }
    }

    /// Consumes a prefix of `input`; data bytes are reported one contiguous run at a
    /// time, so call again with the rest until it consumes nothing or is done.
    pub(crate) fn decode(&mut self, input: &[u8]) -> Result<Step, BodyError> {
        match self {
            BodyDecoder::Done => Ok(Step { consumed: 0, data: (0, 0) }),
            BodyDecoder::Fixed(left) => {
                let n = usize::try_from(*left).unwrap_or(usize::MAX).min(input.len());
                *left -= n as u64;
                if *left == 0 {
                    *self = BodyDecoder::Done;
                }
                Ok(Step { consumed: n, data: (0, n) })
            }
            BodyDecoder::Chunked(c) => {
                let step = c.decode(input)?;
                if c.state == State::Finished {
                    *self = BodyDecoder::Done;
                }
                Ok(step)
            }
        }
    }
}

/// The extension state after byte `b`, or `None` if `b` breaks the grammar
/// (RFC 9112 §7.1.1): `*( BWS ";" BWS name [ BWS "=" BWS value ] )`, a name
/// being a token and a value a token or a quoted string. A CR ends the line
/// wherever a name or value may end.
fn ext_step(state: State, b: u8) -> Option<State> {
    let ws = b == b' ' || b == b'\t';
    let token = crate::response::is_token_byte(b);
    Some(match state {
        State::ExtBeforeName if ws => State::ExtBeforeName,
        State::ExtBeforeName | State::ExtName if token => State::ExtName,
        State::ExtName | State::ExtAfterName if ws => State::ExtAfterName,
        State::ExtName | State::ExtAfterName if b == b'=' => State::ExtBeforeValue,
        State::ExtBeforeValue if ws => State::ExtBeforeValue,
        State::ExtBeforeValue if b == b'"' => State::ExtQuoted,
        State::ExtBeforeValue | State::ExtValue if token => State::ExtValue,
        State::ExtValue | State::ExtAfterValue if ws => State::ExtAfterValue,
        // qdtext: HTAB, SP, VCHAR but '"' and '\\', obs-text.
        State::ExtQuoted if b == b'"' => State::ExtAfterValue,
        State::ExtQuoted if b == b'\\' => State::ExtQuotedPair,
        State::ExtQuoted | State::ExtQuotedPair if ws || (0x21..=0x7e).contains(&b) || b >= 0x80 => State::ExtQuoted,
        State::ExtName | State::ExtAfterName | State::ExtValue | State::ExtAfterValue if b == b';' => {
            State::ExtBeforeName
        }
        State::ExtName | State::ExtAfterName | State::ExtValue | State::ExtAfterValue if b == b'\r' => State::SizeLf,
        _ => return None,
    })
}

impl Chunked {
    /// Counts one byte of a chunk's extension (or the whitespace before it)
    /// against the limits.
    fn count_ext(&mut self) -> Result<(), BodyError> {
        self.ext_len += 1;
        self.ext_total += 1;
        if self.ext_len > MAX_CHUNK_EXT {
            return Err(BodyError("chunk extension too long"));
        }
        if self.ext_total > MAX_CHUNK_EXT_TOTAL {
            return Err(BodyError("chunk extensions too long"));
        }
        Ok(())
    }

    fn decode(&mut self, input: &[u8]) -> Result<Step, BodyError> {
        let mut i = 0;
        while let Some(&b) = input.get(i) {
            match self.state {
                State::Data => {
                    let n = usize::try_from(self.size).unwrap_or(usize::MAX).min(input.len() - i);
                    self.size -= n as u64;
                    if self.size == 0 {
                        self.state = State::DataCr;
                    }
                    return Ok(Step { consumed: i + n, data: (i, i + n) });
                }
                State::Size => match hex_value(b) {
                    Some(v) => {
                        if self.digits >= 16 {
                            return Err(BodyError("chunk size too large"));
                        }
                        self.size = self.size << 4 | u64::from(v);
                        self.digits += 1;
                    }
                    None if self.digits == 0 => return Err(BodyError("missing chunk size")),
                    None => match b {
                        b'\r' => self.state = State::SizeLf,
                        b';' | b' ' | b'\t' => {
                            self.ext_len = 0;
                            self.state = if b == b';' { State::ExtBeforeName } else { State::SizeWs };
                        }
                        _ => return Err(BodyError("invalid chunk size")),
                    },
                },
                // RFC 9112 §7.1.1: chunk-size [ BWS ";" chunk-ext ] CRLF.
                State::SizeWs => match b {
                    b'\r' => self.state = State::SizeLf,
                    b' ' | b'\t' | b';' => {
                        if b == b';' {
                            self.state = State::ExtBeforeName;
                        }
                        self.count_ext()?;
                    }
                    _ => return Err(BodyError("invalid chunk size")),
                },
                State::ExtBeforeName
                | State::ExtName
                | State::ExtAfterName
                | State::ExtBeforeValue
                | State::ExtValue
                | State::ExtQuoted
                | State::ExtQuotedPair
                | State::ExtAfterValue => {
                    self.state = ext_step(self.state, b).ok_or(BodyError("invalid chunk extension"))?;
                    if self.state != State::SizeLf {
                        self.count_ext()?;
                    }
                }
                State::SizeLf => {
                    expect(b, b'\n')?;
                    self.digits = 0;
                    self.state = if self.size == 0 { State::TrailerStart } else { State::Data };
                }
                State::DataCr => {
                    expect(b, b'\r')?;
                    self.state = State::DataLf;
                }
                State::DataLf => {
                    expect(b, b'\n')?;
                    self.state = State::Size;
                }
                State::TrailerStart => {
                    self.count_trailer()?;
                    self.state = match b {
                        b'\r' => State::EndLf,
                        _ if crate::response::is_token_byte(b) => State::TrailerName,
                        // Bare LF, obs-fold and the like are refused, as in a head.
                        _ => return Err(BodyError("invalid trailer line")),
                    };
                }
                State::TrailerName => {
                    self.count_trailer()?;
                    match b {
                        b':' => self.state = State::TrailerValue,
                        _ if crate::response::is_token_byte(b) => {}
                        _ => return Err(BodyError("invalid trailer field name")),
                    }
                }
                State::TrailerValue => {
                    self.count_trailer()?;
                    match b {
                        b'\r' => self.state = State::TrailerLf,
                        b'\t' | b' '..=b'~' | 0x80..=0xff => {}
                        _ => return Err(BodyError("invalid trailer field value")),
                    }
                }
                State::TrailerLf => {
                    expect(b, b'\n')?;
                    self.state = State::TrailerStart;
                }
                State::EndLf => {
                    expect(b, b'\n')?;
                    self.state = State::Finished;
                    return Ok(Step { consumed: i + 1, data: (i + 1, i + 1) });
                }
                State::Finished => return Ok(Step { consumed: i, data: (i, i) }),
            }
            i += 1;
        }
        Ok(Step { consumed: i, data: (i, i) })
    }

    fn count_trailer(&mut self) -> Result<(), BodyError> {
        self.trailer_len += 1;
        if self.trailer_len > MAX_TRAILER {
            return Err(BodyError("trailer section too long"));
        }
        Ok(())
    }
}

fn expect(got: u8, want: u8) -> Result<(), BodyError> {
    if got == want {
        Ok(())
    } else {
        Err(BodyError("invalid chunk framing"))
    }
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `input` in pieces of `piece` bytes; returns the data and the bytes consumed.
    fn run(input: &[u8], piece: usize) -> Result<(Vec<u8>, usize, bool), BodyError> {
        let mut d = BodyDecoder::new(BodyLength::Chunked).unwrap();
        let (mut data, mut pos, mut avail) = (Vec::new(), 0, 0);
        while !d.is_done() && pos < input.len() {
            avail = (avail + piece).min(input.len());
            loop {
                let step = d.decode(&input[pos..avail])?;
                data.extend_from_slice(&input[pos + step.data.0..pos + step.data.1]);
                pos += step.consumed;
                if step.consumed == 0 || d.is_done() {
                    break;
                }
            }
        }
        Ok((data, pos, d.is_done()))
    }

    #[test]
    fn decodes_in_any_split() {
        let body = b"5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nX-T: y\r\n\r\nNEXT";
        for piece in 1..body.len() {
            let (data, consumed, done) = run(body, piece).unwrap();
            assert_eq!(data, b"hello world", "piece {piece}");
            assert_eq!(consumed, body.len() - 4, "piece {piece}");
            assert!(done);
        }
    }

    #[test]
    fn rejects_bad_framing() {
        for bad in [
            &b"x\r\n"[..],
            b"5\r\nhelloX\r\n",
            b"5\nhello\r\n",
            b"11111111111111111\r\n",
            b"-1\r\n",
            b"5;\x01\r\n",
            // After the size only whitespace, then an extension or the line's end (RFC 9112 §7.1.1).
            b"5 garbage\r\nhello\r\n",
            b"5\tx;e\r\nhello\r\n",
            b"5 \x01\r\nhello\r\n",
        ] {
            assert!(run(bad, 64).is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
        let long_ext = format!("1;{}\r\n", "e".repeat(2000));
        assert!(run(long_ext.as_bytes(), 4096).is_err());
        // Within the limit per chunk, beyond the limit per body.
        let chunk = format!("1;{}\r\nA\r\n", "e".repeat(1000));
        let within = format!("{}0\r\n\r\n", chunk.repeat(16));
        assert_eq!(run(within.as_bytes(), 4096).unwrap().0, b"A".repeat(16));
        let beyond = format!("{}0\r\n\r\n", chunk.repeat(17));
        assert_eq!(run(beyond.as_bytes(), 4096), Err(BodyError("chunk extensions too long")));
    }

    #[test]
    fn extensions_follow_the_grammar() {
        for bad in [
            &b"5;;;;\r\nhello\r\n"[..],
            b"5;\r\nhello\r\n",
            b"5;=1\r\nhello\r\n",
            b"5;a=\r\nhello\r\n",
            b"5;a b\r\nhello\r\n",
            b"5;a=b c\r\nhello\r\n",
            b"5;a=\"x\r\nhello\r\n",
            b"5;a=\"x\"y\r\nhello\r\n",
            b"5;a@b\r\nhello\r\n",
            b"5;a=\"\x01\"\r\nhello\r\n",
        ] {
            assert_eq!(run(bad, 64), Err(BodyError("invalid chunk extension")), "{:?}", String::from_utf8_lossy(bad));
        }
        for ok in [
            &b"5;a=1;b\r\nhello\r\n0\r\n\r\n"[..],
            b"5; a = \"q\\\"x\" ;b\r\nhello\r\n0\r\n\r\n",
            b"5;a=\"x;y\"\r\nhello\r\n0;last\r\n\r\n",
            b"5;a=\"\"\r\nhello\r\n0\r\n\r\n",
        ] {
            for piece in 1..ok.len() {
                let (data, _, done) =
                    run(ok, piece).unwrap_or_else(|e| panic!("{:?}: {e:?}", String::from_utf8_lossy(ok)));
                assert_eq!((data.as_slice(), done), (&b"hello"[..], true));
            }
        }
    }

    #[test]
    fn whitespace_may_come_before_an_extension_or_the_end_of_the_size_line() {
        for ok in [&b"5 \r\nhello\r\n0\r\n\r\n"[..], b"5\t ;e=1\r\nhello\r\n0 \r\n\r\n", b"5 ; e\r\nhello\r\n0\r\n\r\n"]
        {
            let (data, _, done) = run(ok, 3).unwrap_or_else(|e| panic!("{:?}: {e:?}", String::from_utf8_lossy(ok)));
            assert_eq!((data.as_slice(), done), (&b"hello"[..], true));
        }
    }

    #[test]
    fn fixed_length() {
        let mut d = BodyDecoder::new(BodyLength::Fixed(3)).unwrap();
        assert_eq!(d.decode(b"ab").unwrap(), Step { consumed: 2, data: (0, 2) });
        assert_eq!(d.decode(b"cde").unwrap(), Step { consumed: 1, data: (0, 1) });
        assert!(d.is_done());
    }
}
