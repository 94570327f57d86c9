//! Preconditions and `If-Range` (src/files/conditional.rs) for files of any size
//! and modification time, with header fields mixing garbage and the file's own
//! validators.
//!
//! Invariants: the validators render (an entity tag in quotes, an HTTP date);
//! without `If-Match`/`If-Unmodified-Since` nothing fails, without
//! `If-None-Match`/`If-Modified-Since` nothing is "not modified"; the file's own
//! tag satisfies `If-Match` and `If-Range` and makes `If-None-Match` answer 304;
//! the file's own date makes `If-Modified-Since` answer 304; a weak `If-Range`
//! never allows a range.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use spindle::fuzz_api::{Precondition, Validators};

#[derive(Arbitrary, Debug)]
enum Name {
    IfMatch,
    IfNoneMatch,
    IfModifiedSince,
    IfUnmodifiedSince,
    IfRange,
    Other,
}

#[derive(Arbitrary, Debug)]
enum Value<'a> {
    Raw(&'a [u8]),
    OwnTag,
    WeakOwnTag,
    Star,
    OwnDate,
    /// Our date moved by this many seconds, rendered.
    Shifted(i32),
    /// Another tag list around our own.
    List(&'a [u8], &'a [u8]),
}

#[derive(Arbitrary, Debug)]
struct Input<'a> {
    len: u64,
    /// Seconds since the epoch (up to ~2^40, well past year 9999).
    modified: u64,
    fields: Vec<(Name, Value<'a>)>,
}

fuzz_target!(|input: Input<'_>| {
    let modified = input.modified % (1 << 40);
    let v = Validators::new(input.len, modified);
    let etag = v.etag().to_string();
    assert!(etag.len() >= 2 && etag.starts_with('"') && etag.ends_with('"') && !etag[1..etag.len() - 1].contains('"'));
    // None for a time in the future (then date conditions are ignored).
    let date = v.last_modified();
    if let Some(date) = &date {
        assert!(httpdate::parse_http_date(date).is_ok(), "Last-Modified {date:?} does not parse");
    }
    let date = date.unwrap_or_default();

    let values: Vec<(&str, Vec<u8>)> = input
        .fields
        .iter()
        .map(|(name, value)| {
            let name = match name {
                Name::IfMatch => "If-Match",
                Name::IfNoneMatch => "If-None-Match",
                Name::IfModifiedSince => "If-Modified-Since",
                Name::IfUnmodifiedSince => "If-Unmodified-Since",
                Name::IfRange => "If-Range",
                Name::Other => "X-Other",
            };
            let value = match value {
                Value::Raw(b) => b.to_vec(),
                Value::OwnTag => etag.clone().into_bytes(),
                Value::WeakOwnTag => format!("W/{etag}").into_bytes(),
                Value::Star => b"*".to_vec(),
                Value::OwnDate => date.clone().into_bytes(),
                Value::Shifted(d) => shifted(modified, *d).into_bytes(),
                Value::List(a, b) => [*a, b", ", etag.as_bytes(), b", ", *b].concat(),
            };
            (name, value)
        })
        .collect();
    let fields: Vec<(&str, &[u8])> = values.iter().map(|(n, v)| (*n, &v[..])).collect();
    let first = |name: &str| fields.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| *v);

    let outcome = v.evaluate(&fields);
    let has = |name| first(name).is_some();
    if !has("If-Match") && !has("If-Unmodified-Since") {
        assert_ne!(outcome, Precondition::Failed);
    }
    if !has("If-None-Match") && !has("If-Modified-Since") {
        assert_ne!(outcome, Precondition::NotModified);
    }
    let own_tag = |value: Option<&[u8]>| value.is_some_and(|v| v == etag.as_bytes() || v == b"*");
    if own_tag(first("If-Match")) {
        assert_ne!(outcome, Precondition::Failed, "our own tag failed If-Match");
    }
    if outcome != Precondition::Failed && own_tag(first("If-None-Match")) {
        assert_eq!(outcome, Precondition::NotModified, "our own tag in If-None-Match");
    }
    if outcome != Precondition::Failed
        && !has("If-None-Match")
        && !date.is_empty()
        && first("If-Modified-Since") == Some(date.as_bytes())
    {
        assert_eq!(outcome, Precondition::NotModified, "our own date in If-Modified-Since");
    }

    let allows = v.if_range_allows(&fields);
    match first("If-Range") {
        None => assert!(allows, "no If-Range but no range"),
        Some(value) if value == etag.as_bytes() || (!date.is_empty() && value == date.as_bytes()) => assert!(allows),
        Some(value) if value.starts_with(b"W/") => assert!(!allows, "weak If-Range allowed a range"),
        Some(_) => {}
    }
});

/// The HTTP date `delta` seconds from `modified` (clamped to what a date can say).
fn shifted(modified: u64, delta: i32) -> String {
    let secs = modified.saturating_add_signed(i64::from(delta)).min(253_402_300_799);
    httpdate::fmt_http_date(std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs))
}
