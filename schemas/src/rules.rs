//! Rules for single string values (text, URLs, SPDX expressions, dates,
//! names), with the limits of [`crate::limits`].
//!
//! Each rule mirrors a `pattern` in the JSON Schema files as closely as a
//! regular expression allows; where Rust checks more (balanced parentheses
//! in a license expression, for one), the rule says so and the agreement
//! tests list the case.

use crate::limits;

/// True for the characters no text field may hold: control characters
/// (Unicode category Cc: U+0000–U+001F, U+007F–U+009F; a `multiline`
/// field may hold `\n` and `\t`) and the bidirectional overrides and
/// isolates (U+202A–U+202E, U+2066–U+2069). Control characters rewrite a
/// terminal (ANSI escapes) or end a C string early (NUL); bidi overrides
/// make text read differently from what it is (`exe.txt` shown for
/// `txt.exe`). Schema: the character class `BAD` below, in each pattern:
/// `\u0000-\u001F\u007F-\u009F\u202A-\u202E\u2066-\u2069`.
fn forbidden(c: char, multiline: bool) -> bool {
    (c.is_control() && !(multiline && matches!(c, '\n' | '\t')))
        || matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// A value as an error message may show it: control and bidi characters
/// escaped (`\u{1b}`), so that the message cannot rewrite the terminal or
/// log line that prints it, and long values shortened.
pub(crate) fn shown(s: &str) -> String {
    const MAX: usize = 120;
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i == MAX {
            out.push('…');
            break;
        }
        if forbidden(c, false) {
            out.extend(c.escape_unicode());
        } else {
            out.push(c);
        }
    }
    out
}

/// The first forbidden character of `s` and its position, as a message.
fn check_characters(s: &str, multiline: bool) -> Result<(), String> {
    match s
        .chars()
        .enumerate()
        .find(|&(_, c)| forbidden(c, multiline))
    {
        None => Ok(()),
        Some((i, c)) => Err(format!(
            "character {} is U+{:04X}: control characters{} and bidirectional overrides (U+202A–U+202E, U+2066–U+2069) are not allowed",
            i + 1,
            u32::from(c),
            if multiline {
                " other than newline and tab"
            } else {
                ""
            }
        )),
    }
}

/// At most `max` characters.
fn check_length(s: &str, max: usize) -> Result<(), String> {
    let n = s.chars().count();
    if n > max {
        Err(format!(
            "must be at most {max} characters; this one has {n}"
        ))
    } else {
        Ok(())
    }
}

/// Text shown to people: allowed characters only, at most `max`
/// characters, not empty or blank. Schema: `$defs/line` (or
/// `$defs/paragraph` when `multiline`) with `maxLength`.
fn text(s: &str, max: usize, multiline: bool) -> Result<(), String> {
    check_characters(s, multiline)?;
    check_length(s, max)?;
    if s.trim().is_empty() {
        return Err("must not be empty or blank".to_owned());
    }
    Ok(())
}

/// `name`: one line of at most [`limits::NAME_MAX_CHARS`].
pub(crate) fn name(s: &str) -> Result<(), String> {
    text(s, limits::NAME_MAX_CHARS, false)
}

/// `description`: at most [`limits::DESCRIPTION_MAX_CHARS`]; newlines
/// and tabs allowed.
pub(crate) fn description(s: &str) -> Result<(), String> {
    text(s, limits::DESCRIPTION_MAX_CHARS, true)
}

/// `source.type`: one line of at most [`limits::SHORT_TEXT_MAX_CHARS`].
pub(crate) fn short_text(s: &str) -> Result<(), String> {
    text(s, limits::SHORT_TEXT_MAX_CHARS, false)
}

/// `implementation`: one of [`IMPLEMENTATIONS`]. Schema: `enum`.
pub(crate) fn implementation(s: &str) -> Result<(), String> {
    one_of(s, &IMPLEMENTATIONS)
}

/// `build_system`: one of [`BUILD_SYSTEMS`]. Schema: `enum`.
pub(crate) fn build_system(s: &str) -> Result<(), String> {
    one_of(s, &BUILD_SYSTEMS)
}

/// The values rbee's readers accept for `implementation`: the closed enum
/// `WorkerImplementation` of rbee's `artifacts-contract`
/// (`bin/97_contracts/artifacts-contract/src/worker_catalog.rs`), which
/// rbee-keeper's marketplace SDK decodes strictly. One worker with another
/// value would make keeper's whole worker list fail to decode. To add a
/// value, add it to rbee's enum first, then here and to the `enum` of
/// `implementation` in `worker-metadata.schema.json` in the same change
/// (the agreement tests compare the two).
pub const IMPLEMENTATIONS: [&str; 3] = ["rust", "python", "cpp"];

/// The values rbee's readers accept for `build_system`: rbee's closed enum
/// `BuildSystem` (same file as [`IMPLEMENTATIONS`]). Extend it the same
/// way: rbee's enum first, then this list and the schema's `enum` together.
pub const BUILD_SYSTEMS: [&str; 3] = ["cargo", "make", "cmake"];

fn one_of(s: &str, allowed: &[&str]) -> Result<(), String> {
    if allowed.contains(&s) {
        Ok(())
    } else {
        Err(format!(
            "`{}` is not accepted by rbee's catalog readers; use one of: {}",
            shown(s),
            allowed.join(", ")
        ))
    }
}

/// `source.tag`, `source.branch`: one line of at most
/// [`limits::REF_MAX_CHARS`].
pub(crate) fn git_ref(s: &str) -> Result<(), String> {
    text(s, limits::REF_MAX_CHARS, false)
}

/// `install_path`: one line of at most [`limits::PATH_MAX_CHARS`].
pub(crate) fn install_path(s: &str) -> Result<(), String> {
    text(s, limits::PATH_MAX_CHARS, false)
}

/// One word: not empty, no whitespace, allowed characters only, at most
/// [`limits::WORD_MAX_CHARS`]. Schema: `$defs/word`. Package names in
/// `depends` are single words such as `cuda>=12`.
pub(crate) fn word(s: &str) -> Result<(), String> {
    check_characters(s, false)?;
    check_length(s, limits::WORD_MAX_CHARS)?;
    if s.is_empty() || s.chars().any(char::is_whitespace) {
        Err(format!("`{}` must be one word without spaces", shown(s)))
    } else {
        Ok(())
    }
}

/// Where the source is: an `https://` or `git+https://` URL with a host,
/// e.g. `https://github.com/rbee/llm-worker-rbee.git`. The catalog and the
/// marketplace show it as a link, so any other scheme (`javascript:`,
/// `data:`, `file:`, plain `http:`, `git+ssh:`) is refused. Schema:
/// `^(https|git\+https)://[^\s/?#BAD]+[^\sBAD]*$`, `maxLength` 2048.
pub(crate) fn source_url(s: &str) -> Result<(), String> {
    let rest = s
        .strip_prefix("https://")
        .or_else(|| s.strip_prefix("git+https://"));
    link(
        s,
        rest,
        "an https:// or git+https:// URL with a host, such as `https://example.org/repo.git`",
    )
}

/// An `https://` URL with a host, for where users are sent to pay.
/// Schema: `^https://[^\s/?#BAD]+[^\sBAD]*$`, `maxLength` 2048.
pub(crate) fn https_url(s: &str) -> Result<(), String> {
    link(s, s.strip_prefix("https://"), "an https:// URL with a host")
}

/// The shared part of the URL rules: `rest` is what follows an allowed
/// scheme (`None`: the scheme is not allowed); it starts with a host and
/// no part of the URL holds whitespace or a forbidden character.
fn link(s: &str, rest: Option<&str>, expected: &str) -> Result<(), String> {
    check_characters(s, false)?;
    check_length(s, limits::URL_MAX_CHARS)?;
    let host_ok = rest
        .and_then(|rest| rest.chars().next())
        .is_some_and(|c| !c.is_whitespace() && !matches!(c, '/' | '?' | '#'));
    if host_ok && !s.chars().any(char::is_whitespace) {
        Ok(())
    } else {
        Err(format!("`{}` is not {expected}", shown(s)))
    }
}

/// The raw `version` string: at most [`limits::VERSION_MAX_CHARS`], the
/// longest OCI tag. Its grammar is checked by `semver`.
pub(crate) fn version_length(s: &str) -> Result<(), String> {
    check_length(s, limits::VERSION_MAX_CHARS)
}

/// An ISO 4217 currency code: three upper-case letters. Schema:
/// `^[A-Z]{3}$`. The list of codes is not checked; it changes.
pub(crate) fn currency(s: &str) -> Result<(), String> {
    if s.len() == 3 && s.bytes().all(|b| b.is_ascii_uppercase()) {
        Ok(())
    } else {
        Err(format!(
            "`{}` is not an ISO 4217 currency code (three upper-case letters such as `EUR`)",
            shown(s)
        ))
    }
}

/// A file name for the worker binary: starts with a letter or digit, then
/// letters, digits, `.`, `_`, `+`, `-`; at most 255 bytes. Schema:
/// `^[A-Za-z0-9][A-Za-z0-9._+-]*$` with `maxLength: 255`. It becomes a
/// path inside the tar.gz and on the user's disk, so `/`, `\` and `..`
/// must never get through.
pub fn file_name(s: &str) -> Result<(), String> {
    let mut chars = s.chars();
    let ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '+' | '-'))
        && s.len() <= 255;
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`{}` is not a plain file name: start with a letter or digit, then use letters, digits, `.`, `_`, `+` and `-` (at most 255)",
            shown(s)
        ))
    }
}

/// A semantic version such as `0.1.0` or `1.0.0-rc.1` (no leading `v`).
pub(crate) fn semver(s: &str) -> Result<(), String> {
    semver::Version::parse(s).map(|_| ()).map_err(|err| {
        format!(
            "`{}` is not a semantic version such as `0.1.0`: {err}",
            shown(s)
        )
    })
}

const LICENSE_HINT: &str =
    "an SPDX license expression such as `MIT`, `Apache-2.0 OR MIT` or `GPL-3.0-or-later`";

/// An SPDX license expression, checked for shape rather than against the
/// SPDX license list: license ids (`MIT`, `GPL-2.0+`, `LicenseRef-acme`)
/// joined by upper-case `AND`, `OR`, `WITH`, separated by spaces, with
/// parentheses hugging the ids, e.g. `(MIT OR Apache-2.0) AND BSD-3-Clause`.
///
/// The schema's pattern checks the same shape. Rust additionally checks
/// what a regular expression cannot (or only with look-around, which not
/// every JSON Schema validator supports): parentheses balance, an operator
/// word is not a license id, and `WITH` sits between a plain license id and
/// an exception id.
pub(crate) fn license_expression(s: &str) -> Result<(), String> {
    let fail = |why: String| Err(format!("`{}`: {why}; expected {LICENSE_HINT}", shown(s)));
    check_length(s, limits::LICENSE_MAX_CHARS)?;
    if s.is_empty() {
        return Err(format!("must not be empty; expected {LICENSE_HINT}"));
    }
    if s.starts_with(' ') || s.ends_with(' ') || s.chars().any(|c| c.is_whitespace() && c != ' ') {
        return fail("only spaces may separate words, and not at either end".to_owned());
    }
    let words: Vec<&str> = s.split(' ').filter(|w| !w.is_empty()).collect();
    let is_operator = |w: &str| matches!(w, "AND" | "OR" | "WITH");
    let mut depth = 0usize;
    for (i, word) in words.iter().copied().enumerate() {
        if i % 2 == 1 {
            if !is_operator(word) {
                return fail(format!("expected `AND`, `OR` or `WITH` before `{word}`"));
            }
            if i + 1 == words.len() {
                return fail(format!("`{word}` must be followed by a license"));
            }
            continue;
        }
        let inner = word.trim_start_matches('(');
        let opens = word.len() - inner.len();
        let id = inner.trim_end_matches(')');
        let closes = inner.len() - id.len();
        if !is_license_id(id) {
            return fail(format!("`{id}` is not a license id"));
        }
        if is_operator(id) {
            return fail(format!("`{id}` stands where a license id is expected"));
        }
        if i > 0 && words[i - 1] == "WITH" && opens > 0 {
            return fail("`WITH` must be followed by an exception id, not `(`".to_owned());
        }
        if words.get(i + 1) == Some(&"WITH") && closes > 0 {
            return fail("`WITH` must follow a license id, not `)`".to_owned());
        }
        let Some(after) = (depth + opens).checked_sub(closes) else {
            return fail("a `)` closes nothing".to_owned());
        };
        depth = after;
    }
    if depth != 0 {
        return fail("a `(` is never closed".to_owned());
    }
    Ok(())
}

/// `[A-Za-z0-9][A-Za-z0-9.:-]*\+?`: SPDX ids, `LicenseRef-...` and
/// `DocumentRef-...:LicenseRef-...`, with the `+` "or later" suffix.
fn is_license_id(id: &str) -> bool {
    let body = id.strip_suffix('+').unwrap_or(id);
    let mut chars = body.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | ':' | '-'))
}

/// An RFC 3339 date-time such as `2025-01-31T12:00:00Z` or
/// `2025-01-31T13:00:00.5+01:00`. Schema: `"format": "date-time"`.
pub(crate) fn rfc3339(s: &str) -> Result<(), String> {
    if is_rfc3339(s) {
        Ok(())
    } else {
        Err(format!(
            "`{}` is not an RFC 3339 date-time such as `2025-01-31T12:00:00Z`",
            shown(s)
        ))
    }
}

fn is_rfc3339(s: &str) -> bool {
    let b = s.as_bytes();
    let num = |range: std::ops::Range<usize>| -> Option<u32> {
        let digits = b.get(range)?;
        digits.iter().try_fold(0u32, |acc, &d| {
            d.is_ascii_digit().then(|| acc * 10 + u32::from(d - b'0'))
        })
    };
    let at = |i: usize, allowed: &[u8]| b.get(i).is_some_and(|c| allowed.contains(c));
    let (Some(year), Some(month), Some(day), Some(hour), Some(minute), Some(second)) = (
        num(0..4),
        num(5..7),
        num(8..10),
        num(11..13),
        num(14..16),
        num(17..19),
    ) else {
        return false;
    };
    if !(at(4, b"-") && at(7, b"-") && at(10, b"Tt") && at(13, b":") && at(16, b":")) {
        return false;
    }
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let days_in_month = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return false,
    };
    if day == 0 || day > days_in_month || hour > 23 || minute > 59 || second > 60 {
        return false;
    }
    let mut rest = &b[19..];
    if let Some(fraction) = rest.strip_prefix(b".") {
        let digits = fraction.iter().take_while(|c| c.is_ascii_digit()).count();
        if digits == 0 {
            return false;
        }
        rest = &fraction[digits..];
    }
    match rest {
        [b'Z' | b'z'] => true,
        [b'+' | b'-', h1, h2, b':', m1, m2] => {
            let two = |a: u8, b: u8| {
                (a.is_ascii_digit() && b.is_ascii_digit()).then(|| (a - b'0') * 10 + (b - b'0'))
            };
            matches!((two(*h1, *h2), two(*m1, *m2)), (Some(h), Some(m)) if h <= 23 && m <= 59)
        }
        _ => false,
    }
}

/// An OCI repository name such as `rbee/llm-worker-rbee-cpu`: components
/// of lower-case letters and digits joined by `.`, `_`, `__` or runs of
/// `-`, separated by `/`, at most 255 characters (distribution-spec).
pub(crate) fn oci_repository(s: &str) -> Result<(), String> {
    if s.is_empty() {
        return Err("must not be empty".to_owned());
    }
    if s.len() > 255 {
        return Err(format!(
            "a repository name must be at most 255 characters; this one has {}",
            s.len()
        ));
    }
    if s.split('/').all(is_name_component) {
        Ok(())
    } else {
        Err(format!(
            "`{}` is not an OCI repository name: each `/`-separated part must be lower-case letters and digits joined by `.`, `_`, `__` or `-`",
            shown(s)
        ))
    }
}

/// True when `c` is one `/`-separated component of an OCI repository name:
/// lower-case letters and digits joined by `.`, `_`, `__` or runs of `-`
/// (distribution-spec). The registry checks names with it too.
pub fn is_name_component(c: &str) -> bool {
    let b = c.as_bytes();
    let alnum = |x: u8| x.is_ascii_lowercase() || x.is_ascii_digit();
    if b.is_empty() || !alnum(b[0]) || !alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if alnum(b[i]) {
            i += 1;
            continue;
        }
        // A separator run: `.`, `_`, `__` or one or more `-`.
        let sep = b[i];
        let start = i;
        while i < b.len() && b[i] == sep {
            i += 1;
        }
        let run = i - start;
        let ok = match sep {
            b'.' => run == 1,
            b'_' => run <= 2,
            b'-' => true,
            _ => false,
        };
        // The component ends in alnum (checked above), so a separator run
        // is always followed by one.
        if !ok {
            return false;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn license_expressions() {
        for good in [
            "MIT",
            "GPL-3.0-or-later",
            "GPL-2.0+",
            "Apache-2.0 OR MIT",
            "(MIT OR Apache-2.0) AND BSD-3-Clause",
            "((MIT))",
            "GPL-2.0-only WITH Classpath-exception-2.0",
            "LicenseRef-rbee-commercial",
            "DocumentRef-spdx:LicenseRef-x",
            "MIT  OR  ISC",
        ] {
            assert_eq!(license_expression(good), Ok(()), "{good}");
        }
        for bad in [
            "",
            " MIT",
            "MIT ",
            "MIT\tOR ISC",
            "MIT or ISC",
            "MIT AND",
            "AND MIT",
            "MIT ISC",
            "(MIT",
            "MIT)",
            "MIT OR (ISC",
            "MIT OR AND",
            "MIT/ISC",
            "GPL+2",
            "MIT WITH (X)",
            "(MIT) WITH X",
            "-MIT",
        ] {
            assert!(license_expression(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn rfc3339_dates() {
        for good in [
            "2025-01-31T12:00:00Z",
            "2024-02-29T00:00:00z",
            "2025-01-31t23:59:60.123456+01:00",
            "2025-12-31T00:00:00-23:59",
        ] {
            assert!(is_rfc3339(good), "{good}");
        }
        for bad in [
            "",
            "2025-01-31",
            "2025-01-31 12:00:00Z",
            "2025-01-31T12:00:00",
            "2023-02-29T00:00:00Z",
            "2025-13-01T00:00:00Z",
            "2025-01-31T24:00:00Z",
            "2025-01-31T12:00:00.Z",
            "2025-01-31T12:00:00+1:00",
            "2025-01-31T12:00:00+24:00",
            "2025-1-31T12:00:00Z",
        ] {
            assert!(!is_rfc3339(bad), "{bad}");
        }
    }

    #[test]
    fn repositories_urls_and_names() {
        assert!(oci_repository("rbee/llm-worker-rbee-cpu").is_ok());
        assert!(oci_repository("a__b/c.d/e---f").is_ok());
        for bad in [
            "", "Rbee/x", "rbee//x", "rbee/x/", "a..b", "a___b", "-a", "a-",
        ] {
            assert!(oci_repository(bad).is_err(), "{bad}");
        }
        assert!(source_url("https://github.com/rbee/x.git").is_ok());
        assert!(source_url("git+https://github.com/rbee/x.git").is_ok());
        for bad in [
            "git@github.com:rbee/x.git",
            "git+ssh://git@github.com/rbee/x.git",
            "https://",
            "://x",
            "1http://x",
            "https://a b",
            "javascript://x/%0Aalert(1)",
        ] {
            assert!(source_url(bad).is_err(), "{bad}");
        }
        assert!(https_url("https://rbee.dev/buy?w=1").is_ok());
        for bad in ["http://rbee.dev", "https:///x", "https://", "https://a b"] {
            assert!(https_url(bad).is_err(), "{bad}");
        }
        assert!(file_name("llm-worker-rbee-cpu").is_ok());
        assert!(file_name("llm-worker-rbee.exe").is_ok());
        for bad in ["", ".", "..", ".hidden", "a/b", "a\\b", "a b"] {
            assert!(file_name(bad).is_err(), "{bad}");
        }
    }
}
