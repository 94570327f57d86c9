//! `Accept-Encoding` negotiation for precompressed siblings (`.br`, `.gz`).

use crate::parse::{list_items, trim};

/// A content coding spindle can serve from a precompressed sibling file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Coding {
    /// `br`, from `NAME.br`.
    Brotli = 0,
    /// `gzip`, from `NAME.gz`.
    Gzip = 1,
}

impl Coding {
    /// Every coding, in the order siblings are looked for at equal preference.
    pub(crate) const ALL: [Coding; 2] = [Coding::Brotli, Coding::Gzip];

    /// The position in [`Coding::ALL`].
    pub(crate) fn index(self) -> usize {
        self as usize
    }

    /// The `Content-Encoding` token.
    pub(crate) fn token(self) -> &'static str {
        match self {
            Coding::Brotli => "br",
            Coding::Gzip => "gzip",
        }
    }

    /// The sibling file's suffix.
    pub(crate) fn suffix(self) -> &'static [u8] {
        match self {
            Coding::Brotli => b".br",
            Coding::Gzip => b".gz",
        }
    }
}

/// The weight (in thousandths) of each element of a list header such as
/// `Accept`: (element without parameters, q), q defaulting to 1 and `None`
/// when malformed.
pub(crate) fn weighted(list: &[u8]) -> impl Iterator<Item = (&[u8], Option<u16>)> {
    list_items(list).map(weigh)
}

/// One element of a weighted list (trimmed): its name and weight.
fn weigh(item: &[u8]) -> (&[u8], Option<u16>) {
    let Some(semi) = item.iter().position(|&b| b == b';') else {
        // Most elements are a bare name, of weight 1.
        return (item, Some(1000));
    };
    let q = item[semi + 1..]
        .split(|&b| b == b';')
        .find_map(|p| {
            let p = trim(p);
            p.strip_prefix(b"q=").or_else(|| p.strip_prefix(b"Q="))
        })
        .map_or(Some(1000), qvalue);
    (trim(&item[..semi]), q)
}

/// The codings `accept` (the lines of `Accept-Encoding`, taken as one list as
/// RFC 9110 §5.3 combines them) allows, best first (higher q first; brotli
/// before gzip at equal q). `q=0` refuses a coding; `*` stands for codings not named.
pub(crate) fn acceptable<'a>(accept: impl IntoIterator<Item = &'a [u8]>) -> impl Iterator<Item = Coding> {
    let (mut br, mut gzip, mut star) = (None::<u16>, None::<u16>, None::<u16>);
    for (name, q) in accept.into_iter().flat_map(weighted) {
        let Some(q) = q else { continue };
        if name.eq_ignore_ascii_case(b"br") {
            br = Some(q);
        } else if name.eq_ignore_ascii_case(b"gzip") || name.eq_ignore_ascii_case(b"x-gzip") {
            gzip = Some(q);
        } else if name == b"*" {
            star = Some(q);
        }
    }
    let br = br.or(star).unwrap_or(0);
    let gzip = gzip.or(star).unwrap_or(0);
    let mut order = [(br, Coding::Brotli), (gzip, Coding::Gzip)];
    // Stable: brotli stays first when the weights are equal.
    order.sort_by_key(|o| std::cmp::Reverse(o.0));
    order.into_iter().filter(|(q, _)| *q > 0).map(|(_, c)| c)
}

/// A qvalue (`0`, `0.5`, `1.000`) in thousandths; `None` when malformed.
pub(crate) fn qvalue(s: &[u8]) -> Option<u16> {
    let s = trim(s);
    let (int, frac) = match s.iter().position(|&b| b == b'.') {
        Some(dot) => (&s[..dot], &s[dot + 1..]),
        None => (s, &b""[..]),
    };
    if frac.len() > 3 || !frac.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let mut thousandths: u16 = 0;
    for i in 0..3 {
        thousandths = thousandths * 10 + frac.get(i).map_or(0, |d| u16::from(d - b'0'));
    }
    match int {
        b"0" => Some(thousandths),
        b"1" if thousandths == 0 => Some(1000),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pick(accept: &str) -> Vec<Coding> {
        acceptable([accept.as_bytes()]).collect()
    }

    #[test]
    fn indexes_follow_the_order_of_all() {
        for (i, c) in Coding::ALL.into_iter().enumerate() {
            assert_eq!(c.index(), i);
        }
    }

    #[test]
    fn negotiates_with_qvalues() {
        use Coding::*;
        assert_eq!(pick(""), []);
        assert_eq!(pick("gzip"), [Gzip]);
        assert_eq!(pick("gzip, deflate, br"), [Brotli, Gzip]);
        assert_eq!(pick("br;q=0.5, gzip"), [Gzip, Brotli]);
        assert_eq!(pick("br;q=0, gzip;q=0.1"), [Gzip]);
        assert_eq!(pick("*"), [Brotli, Gzip]);
        assert_eq!(pick("*;q=0.5, br;q=0"), [Gzip]);
        assert_eq!(pick("identity"), []);
        assert_eq!(pick("gzip;q=1.0, br;q=0.999"), [Gzip, Brotli]);
        assert_eq!(pick("gzip;q=2"), [], "a malformed qvalue drops the coding");
        assert_eq!(pick("GZIP ; Q=0.3"), [Gzip]);
        // Lines are one list: a later line's q counts like a later item's.
        let lines: [&[u8]; 2] = [b"gzip;q=0.5", b"br"];
        assert_eq!(acceptable(lines).collect::<Vec<_>>(), [Brotli, Gzip]);
        let lines: [&[u8]; 2] = [b"br", b"br;q=0"];
        assert_eq!(acceptable(lines).collect::<Vec<_>>(), []);
    }
}
