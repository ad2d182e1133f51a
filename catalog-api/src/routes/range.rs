//! `Range` on the catalog's `/blob` route (RFC 9110, 14): one byte range,
//! so that a download through the catalog resumes where it stopped. The
//! same grammar as the registry's blob route: `bytes=A-B`, `bytes=A-`,
//! `bytes=-N`; several ranges or another unit are ignored (the whole blob
//! is sent, which the RFC allows); a range that starts past the end is
//! unsatisfiable (416).

use std::ops::Range;

use axum::http::{HeaderMap, header};

/// What a request's `Range` header asks of a blob of a given size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Wanted {
    /// The whole blob (no `Range`, or one this route does not serve).
    Whole,
    /// These bytes (never empty, within the blob).
    Part(Range<u64>),
    /// Nothing of the blob can be sent: 416 with `Content-Range: bytes */size`.
    Unsatisfiable,
}

/// Reads the `Range` header of `headers` against a blob of `size` bytes.
pub fn wanted(headers: &HeaderMap, size: u64) -> Wanted {
    let Some(spec) = headers.get(header::RANGE).and_then(|v| v.to_str().ok()) else {
        return Wanted::Whole;
    };
    parse(spec, size)
}

fn parse(spec: &str, size: u64) -> Wanted {
    let Some(set) = spec.trim().strip_prefix("bytes=") else {
        return Wanted::Whole;
    };
    if set.contains(',') {
        return Wanted::Whole;
    }
    let Some((first, last)) = set.trim().split_once('-') else {
        return Wanted::Whole;
    };
    let (first, last) = (first.trim(), last.trim());
    let range = match (first.parse::<u64>(), last.parse::<u64>()) {
        (Ok(start), Ok(end)) if start <= end => start..end.saturating_add(1).min(size),
        (Ok(start), Err(_)) if last.is_empty() => start..size,
        (Err(_), Ok(suffix)) if first.is_empty() => {
            if suffix == 0 {
                return Wanted::Unsatisfiable;
            }
            if size == 0 {
                // Satisfiable, yet no Content-Range can name zero bytes.
                return Wanted::Whole;
            }
            size.saturating_sub(suffix)..size
        }
        _ => return Wanted::Whole,
    };
    if range.start >= size {
        return Wanted::Unsatisfiable;
    }
    if range.start == 0 && range.end == size {
        // All of it: a plain 200 says the same with less to check.
        return Wanted::Whole;
    }
    Wanted::Part(range)
}

#[cfg(test)]
mod tests {
    use super::{Wanted, parse};

    #[test]
    fn one_byte_range_is_read_and_others_are_the_whole_blob() {
        assert_eq!(parse("bytes=0-9", 100), Wanted::Part(0..10));
        assert_eq!(parse("bytes=90-", 100), Wanted::Part(90..100));
        assert_eq!(parse("bytes=-10", 100), Wanted::Part(90..100));
        assert_eq!(parse("bytes=50-1000", 100), Wanted::Part(50..100));
        assert_eq!(parse("bytes=0-", 100), Wanted::Whole);
        assert_eq!(parse("bytes=-500", 100), Wanted::Whole);
        assert_eq!(parse("bytes=100-", 100), Wanted::Unsatisfiable);
        assert_eq!(parse("bytes=200-300", 100), Wanted::Unsatisfiable);
        assert_eq!(parse("bytes=-0", 100), Wanted::Unsatisfiable);
        assert_eq!(parse("bytes=0-1,5-6", 100), Wanted::Whole);
        assert_eq!(parse("items=0-1", 100), Wanted::Whole);
        assert_eq!(parse("bytes=9-1", 100), Wanted::Whole);
        assert_eq!(parse("bytes=x-", 100), Wanted::Whole);
        assert_eq!(parse("bytes=-5", 0), Wanted::Whole);
    }
}
