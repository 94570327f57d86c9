//! Validators and preconditions (RFC 9110 §8.8, §13): `ETag`, `Last-Modified`,
//! `If-Match`, `If-None-Match`, `If-Modified-Since`, `If-Unmodified-Since`, `If-Range`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::parse::{list_items, trim};
use crate::request::Headers;
use crate::response::HeaderValue;

/// The last second an HTTP date can express (9999-12-31 23:59:59 UTC).
pub(crate) const LAST_HTTP_DATE: u64 = 253_402_300_799;

/// The validators of one file version.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Validators {
    /// A strong entity tag with its quotes, e.g. `"6560a1c2.1f0e-400"`.
    pub etag: HeaderValue,
    /// Modification time, whole seconds since the epoch; `None` when it was in
    /// the future when the validators were made.
    pub modified: Option<u64>,
    /// `modified` as an HTTP date, rendered once.
    last_modified: Option<HeaderValue>,
}

impl Validators {
    /// Validators derived from a file's size and modification time (so they are
    /// stable across restarts and change whenever either does), and the name of
    /// its content coding (empty for identity), so that a precompressed variant
    /// never shares a strong tag with the identity file.
    ///
    /// A modification time in the future (by the server's clock, or past year
    /// 9999) gives no `Last-Modified`: the field must not be later than `Date`
    /// (RFC 9110 §8.8.2.1), and a stand-in that moved with the clock would fail
    /// `If-Unmodified-Since` for an unchanged file. Date conditions are then
    /// ignored, as for any representation without one (§13.1.3, §13.1.4). So
    /// does a time before 1970, which the tag then counts back from the epoch.
    pub(crate) fn new(len: u64, modified: SystemTime, coding: &str) -> Validators {
        let (before_epoch, since) = match modified.duration_since(UNIX_EPOCH) {
            Ok(since) => (false, since),
            Err(e) => (true, e.duration()),
        };
        let sign = if before_epoch { "-" } else { "" };
        let dash = if coding.is_empty() { "" } else { "-" };
        let etag = HeaderValue::format(format_args!(
            "\"{sign}{:x}.{:x}-{len:x}{dash}{coding}\"",
            since.as_secs(),
            since.subsec_nanos()
        ));
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
        let modified = Some(since.as_secs()).filter(|&s| !before_epoch && s <= now.as_secs() && s <= LAST_HTTP_DATE);
        let last_modified = modified.map(|secs| {
            HeaderValue::format(format_args!("{}", httpdate::HttpDate::from(UNIX_EPOCH + Duration::from_secs(secs))))
        });
        Validators { etag, modified, last_modified }
    }

    /// The entity tag as text.
    pub(crate) fn etag(&self) -> &str {
        self.etag.as_str()
    }

    /// The `Last-Modified` value, if the file has one to send.
    pub(crate) fn last_modified(&self) -> Option<HeaderValue> {
        self.last_modified.clone()
    }
}

/// What the preconditions of a GET or HEAD call for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Precondition {
    /// Send the representation (or the ranges asked for).
    Proceed,
    /// 304 Not Modified.
    NotModified,
    /// 412 Precondition Failed.
    Failed,
}

/// Evaluates the preconditions of a GET/HEAD in the order of RFC 9110 §13.2.2.
pub(crate) fn evaluate(headers: &Headers<'_>, v: &Validators) -> Precondition {
    if headers.surely_lacks(&["if-match", "if-unmodified-since", "if-none-match", "if-modified-since"]) {
        return Precondition::Proceed;
    }
    if let Some(mut lists) = headers.get_lines("if-match") {
        if !lists.any(|list| matches_any(list, v.etag(), true)) {
            return Precondition::Failed;
        }
    } else if let (Some(date), Some(modified)) = (header_date(headers, "if-unmodified-since"), v.modified) {
        if modified > date {
            return Precondition::Failed;
        }
    }
    if let Some(mut lists) = headers.get_lines("if-none-match") {
        if lists.any(|list| matches_any(list, v.etag(), false)) {
            return Precondition::NotModified;
        }
    } else if let (Some(date), Some(modified)) = (header_date(headers, "if-modified-since"), v.modified) {
        if modified <= date {
            return Precondition::NotModified;
        }
    }
    Precondition::Proceed
}

/// Evaluates the preconditions of a GET/HEAD for a representation that has no
/// validators (a listing): only `*` matches it (RFC 9110 §13.1.1, §13.1.2), and
/// the date conditions, with no date to compare, do not apply.
pub(crate) fn evaluate_unvalidated(headers: &Headers<'_>) -> Precondition {
    let star = |list: &[u8]| list_items(list).any(|tag| tag == b"*");
    if headers.get_lines("if-match").is_some_and(|mut lists| !lists.any(star)) {
        return Precondition::Failed;
    }
    if headers.get_lines("if-none-match").is_some_and(|mut lists| lists.any(star)) {
        return Precondition::NotModified;
    }
    Precondition::Proceed
}

/// Whether a `Range` may be honoured given `If-Range` (RFC 9110 §13.1.5): absent,
/// or a strong ETag equal to ours, or a date equal to our `Last-Modified`.
pub(crate) fn if_range_allows(headers: &Headers<'_>, v: &Validators) -> bool {
    let mut lines = headers.get_all("if-range");
    let Some(value) = lines.next() else { return true };
    if lines.next().is_some() {
        // One validator is asked for; with several the condition cannot hold.
        return false;
    }
    let value = trim(value);
    if value.starts_with(b"\"") {
        return value == v.etag().as_bytes();
    }
    if value.starts_with(b"W/") {
        return false;
    }
    std::str::from_utf8(value)
        .ok()
        .and_then(|s| httpdate::parse_http_date(s).ok())
        .is_some_and(|d| Some(secs(d)) == v.modified)
}

/// Whether the entity-tag list `list` (or `*`) matches `etag`; `strong` asks for
/// the strong comparison (weak tags never match), otherwise weak comparison.
fn matches_any(list: &[u8], etag: &str, strong: bool) -> bool {
    list_items(list).any(|tag| {
        if tag == b"*" {
            return true;
        }
        match tag.strip_prefix(b"W/") {
            Some(weak) => !strong && weak == etag.as_bytes(),
            None => tag == etag.as_bytes(),
        }
    })
}

/// The date in field `name`; `None` when it is absent, not a date, or sent more
/// than once (a list of dates, which RFC 9110 §13.1.3 and §13.1.4 say to ignore).
fn header_date(headers: &Headers<'_>, name: &str) -> Option<u64> {
    let value = std::str::from_utf8(headers.get_single(name)?).ok()?;
    httpdate::parse_http_date(value.trim()).ok().map(secs)
}

fn secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Headers from `Name: value` lines.
    fn with_headers(lines: &[&str], f: impl FnOnce(&Headers<'_>)) {
        let fields: Vec<(&str, &[u8])> =
            lines.iter().map(|line| line.split_once(": ").map(|(n, v)| (n, v.as_bytes())).unwrap()).collect();
        crate::request::with_headers(&fields, f)
    }

    fn v() -> Validators {
        Validators::new(1024, UNIX_EPOCH + Duration::from_secs(1_700_000_000), "")
    }

    const AT: &str = "Tue, 14 Nov 2023 22:13:20 GMT"; // 1_700_000_000
    const BEFORE: &str = "Tue, 14 Nov 2023 22:13:19 GMT";

    fn eval(lines: &[&str]) -> Precondition {
        let mut out = Precondition::Proceed;
        with_headers(lines, |h| out = evaluate(h, &v()));
        out
    }

    #[test]
    fn etag_is_stable_and_quoted() {
        assert_eq!(v().etag(), "\"6553f100.0-400\"");
        assert_eq!(v(), v());
        let gz = Validators::new(1024, UNIX_EPOCH + Duration::from_secs(1_700_000_000), "gzip");
        assert_eq!(gz.etag(), "\"6553f100.0-400-gzip\"");
        assert_eq!(v().last_modified().map(|d| d.to_string()).as_deref(), Some(AT));
    }

    #[test]
    fn a_modification_time_in_the_future_gives_no_date() {
        // Beyond year 9999 was found by fuzz/fuzz_targets/conditional.rs: rendering
        // Last-Modified panicked. Any future time now gives no date (RFC 9110 §8.8.2.1).
        let now = SystemTime::now();
        let stamp = httpdate::fmt_http_date(now);
        for later in [now + Duration::from_secs(86_400), UNIX_EPOCH + Duration::from_secs(LAST_HTTP_DATE + 1)] {
            let v = Validators::new(1, later, "");
            assert_eq!((v.modified, v.last_modified()), (None, None));
            assert_ne!(v.etag, Validators::new(1, now, "").etag, "the tag keeps the real time");
            // Date conditions are ignored; the tag still validates.
            let eval = |lines: &[&str]| {
                let mut out = Precondition::Failed;
                with_headers(lines, |h| out = evaluate(h, &v));
                out
            };
            assert_eq!(eval(&[&format!("If-Modified-Since: {stamp}")]), Precondition::Proceed);
            assert_eq!(eval(&["If-Unmodified-Since: Thu, 01 Jan 1970 00:00:00 GMT"]), Precondition::Proceed);
            assert_eq!(eval(&[&format!("If-None-Match: {}", v.etag())]), Precondition::NotModified);
            let mut allows = true;
            with_headers(&[&format!("If-Range: {stamp}")], |h| allows = if_range_allows(h, &v));
            assert!(!allows, "a date cannot match a file without one");
        }
        // The present is not the future.
        assert!(Validators::new(1, now, "").last_modified().is_some());
    }

    #[test]
    fn a_modification_time_before_1970_gives_its_own_tag_and_no_date() {
        let before = |secs| Validators::new(5, UNIX_EPOCH - Duration::from_secs(secs), "");
        assert_eq!(before(1).etag(), "\"-1.0-5\"");
        assert_ne!(before(1).etag, before(2).etag, "two versions of one length share a tag");
        assert_ne!(before(1).etag, Validators::new(5, UNIX_EPOCH + Duration::from_secs(1), "").etag);
        assert_eq!((before(1).modified, before(1).last_modified()), (None, None));
        let mut out = Precondition::Failed;
        with_headers(&["If-Modified-Since: Thu, 01 Jan 1970 00:00:00 GMT"], |h| out = evaluate(h, &before(1)));
        assert_eq!(out, Precondition::Proceed);
    }

    #[test]
    fn none_match_and_modified_since() {
        let tag = v().etag().to_string();
        assert_eq!(eval(&[&format!("If-None-Match: {tag}")]), Precondition::NotModified);
        assert_eq!(eval(&[&format!("If-None-Match: \"x\", W/{tag}")]), Precondition::NotModified);
        assert_eq!(eval(&["If-None-Match: *"]), Precondition::NotModified);
        assert_eq!(eval(&["If-None-Match: \"other\""]), Precondition::Proceed);
        assert_eq!(eval(&[&format!("If-Modified-Since: {AT}")]), Precondition::NotModified);
        assert_eq!(eval(&[&format!("If-Modified-Since: {BEFORE}")]), Precondition::Proceed);
        assert_eq!(eval(&["If-Modified-Since: garbage"]), Precondition::Proceed);
        // Lines of one field are one list (§5.3): the tag on a second line counts.
        assert_eq!(eval(&["If-None-Match: \"a\"", &format!("If-None-Match: {tag}")]), Precondition::NotModified);
        assert_eq!(eval(&["If-None-Match: \"a\"", "If-None-Match: \"b\""]), Precondition::Proceed);
        // A date sent twice is a list of dates: ignored (§13.1.3), whichever would match.
        let far = "Fri, 31 Dec 9999 23:59:59 GMT";
        assert_eq!(
            eval(&[&format!("If-Modified-Since: {far}"), &format!("If-Modified-Since: {BEFORE}")]),
            Precondition::Proceed
        );
        assert_eq!(
            eval(&[&format!("If-Modified-Since: {AT}"), &format!("If-Modified-Since: {AT}")]),
            Precondition::Proceed
        );
        assert_eq!(
            eval(&[&format!("If-Unmodified-Since: {BEFORE}"), &format!("If-Unmodified-Since: {AT}")]),
            Precondition::Proceed
        );
        // If-None-Match wins over If-Modified-Since (§13.2.2).
        assert_eq!(eval(&["If-None-Match: \"other\"", &format!("If-Modified-Since: {AT}")]), Precondition::Proceed);
    }

    #[test]
    fn match_and_unmodified_since() {
        let tag = v().etag().to_string();
        assert_eq!(eval(&[&format!("If-Match: {tag}")]), Precondition::Proceed);
        assert_eq!(eval(&["If-Match: *"]), Precondition::Proceed);
        assert_eq!(eval(&["If-Match: \"other\""]), Precondition::Failed);
        assert_eq!(eval(&[&format!("If-Match: W/{tag}")]), Precondition::Failed, "weak tags never match strongly");
        assert_eq!(eval(&[&format!("If-Unmodified-Since: {BEFORE}")]), Precondition::Failed);
        assert_eq!(eval(&[&format!("If-Unmodified-Since: {AT}")]), Precondition::Proceed);
        assert_eq!(eval(&["If-Match: \"other\"", &format!("If-Match: {tag}")]), Precondition::Proceed);
        assert_eq!(eval(&["If-Match: \"a\"", "If-Match: \"b\""]), Precondition::Failed);
        // 412 before 304.
        assert_eq!(eval(&["If-Match: \"other\"", &format!("If-None-Match: {tag}")]), Precondition::Failed);
        // If-Match present: If-Unmodified-Since is not looked at.
        assert_eq!(
            eval(&[&format!("If-Match: {tag}"), &format!("If-Unmodified-Since: {BEFORE}")]),
            Precondition::Proceed
        );
    }

    #[test]
    fn if_range() {
        let tag = v().etag().to_string();
        let allows = |lines: &[&str]| {
            let mut out = false;
            with_headers(lines, |h| out = if_range_allows(h, &v()));
            out
        };
        assert!(allows(&[]));
        assert!(allows(&[&format!("If-Range: {tag}")]));
        assert!(!allows(&["If-Range: \"other\""]));
        assert!(!allows(&[&format!("If-Range: W/{tag}")]));
        assert!(allows(&[&format!("If-Range: {AT}")]));
        assert!(!allows(&[&format!("If-Range: {BEFORE}")]));
        // One validator is asked for: two, even both ours, are not.
        assert!(!allows(&[&format!("If-Range: {tag}"), &format!("If-Range: {tag}")]));
        assert!(!allows(&[&format!("If-Range: {AT}"), &format!("If-Range: {AT}")]));
    }
}
