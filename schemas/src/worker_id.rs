//! The worker id rule (`^[a-z0-9-]+$`, at most 100 characters), shared by
//! the metadata document, the catalog index and the catalog API routes.

/// Longest worker id accepted. The legacy catalog answers 400 to anything
/// longer, so the documents refuse it too.
pub const WORKER_ID_MAX_LEN: usize = 100;

/// Checks that `id` is a worker id: one or more lower-case ASCII letters,
/// digits and `-`, at most [`WORKER_ID_MAX_LEN`] characters. Worker ids
/// become OCI repository names and URL path segments, which is why the
/// alphabet is this narrow.
///
/// The error is a sentence meant for the person who wrote the id.
pub fn validate_worker_id(id: &str) -> Result<(), String> {
    if id.is_empty() {
        return Err("an id must not be empty".to_owned());
    }
    if let Some(bad) = id
        .chars()
        .find(|&c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'))
    {
        return Err(format!(
            "`{}` is not a valid id: `{}` is not allowed; use lower-case letters, digits and `-` (^[a-z0-9-]+$)",
            crate::rules::shown(id),
            crate::rules::shown(&bad.to_string())
        ));
    }
    if id.len() > WORKER_ID_MAX_LEN {
        return Err(format!(
            "an id must be at most {WORKER_ID_MAX_LEN} characters; this one has {}",
            id.len()
        ));
    }
    Ok(())
}

/// Checks that `id` can name a published worker: a worker id (see
/// [`validate_worker_id`]) that starts and ends with a letter or digit.
/// The id becomes the last component of an OCI repository name
/// (`rbee/<id>`), and that grammar allows `-` only between letters and
/// digits: `-hello` would pass `rbee-pusher validate` and then be refused
/// by every registry. The API routes keep the wider rule, so such an id
/// is a 404 there, not a 400.
pub fn validate_published_worker_id(id: &str) -> Result<(), String> {
    validate_worker_id(id)?;
    if !crate::rules::is_name_component(id) {
        return Err(format!(
            "`{}` cannot name a published worker: it must start and end with a letter or digit, because it becomes an OCI repository name (`rbee/<id>`)",
            crate::rules::shown(id)
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_design_ids() {
        for id in [
            "llm-worker-rbee-cpu",
            "sd-worker-rbee-cuda",
            "a",
            "0-0",
            "-",
        ] {
            assert_eq!(validate_worker_id(id), Ok(()), "{id}");
        }
        assert_eq!(validate_worker_id(&"a".repeat(100)), Ok(()));
    }

    #[test]
    fn published_ids_start_and_end_with_a_letter_or_digit() {
        for id in ["a", "0-0", "llm--worker", "llm-worker-rbee-cpu"] {
            assert_eq!(validate_published_worker_id(id), Ok(()), "{id}");
        }
        for id in ["-", "-hello", "hello-", "LLM", ""] {
            assert!(validate_published_worker_id(id).is_err(), "{id}");
        }
    }

    #[test]
    fn refuses_other_alphabets_and_long_ids() {
        for id in [
            "",
            "LLM",
            "llm_worker",
            "llm worker",
            "llm/worker",
            "../x",
            "é",
        ] {
            assert!(validate_worker_id(id).is_err(), "{id}");
        }
        let err = validate_worker_id(&"a".repeat(101)).unwrap_err();
        assert!(err.contains("100") && err.contains("101"), "{err}");
    }
}
