//! Identifiers: correlation ids from callers, and fresh random ones.

/// Longest correlation id accepted from a caller; longer ones are replaced, not truncated.
pub const MAX_CORRELATION_ID_LEN: usize = 128;

/// A caller's correlation id is echoed only if it is short and plain, so it cannot inject
/// anything into logs or headers.
pub fn accept_correlation_id(candidate: &str) -> Option<&str> {
    let ok = !candidate.is_empty()
        && candidate.len() <= MAX_CORRELATION_ID_LEN
        && candidate
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'));
    ok.then_some(candidate)
}

/// Longest id that cxbridge places in a CXone URL path (contact, script, interaction and
/// execution ids).
pub const MAX_PATH_ID_LEN: usize = 128;

/// What [`is_path_id`] accepts, as error messages say it.
pub const PATH_ID_RULE: &str =
    "must be 1 to 128 letters, digits, '-', '_', '.' or ':' (and not only dots)";

/// Whether `id` may be placed in a CXone URL path: a strict character set and length, and
/// never a dot segment (`.`, `..`), which would point the call, and its bearer token, at
/// another path.
pub fn is_path_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_PATH_ID_LEN
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
        && !id.bytes().all(|b| b == b'.')
}

/// A random version-4 UUID in its usual text form.
pub fn new_uuid() -> String {
    let mut b = [0u8; 16];
    if getrandom::fill(&mut b).is_err() {
        // The OS random source failing is not a reason to fail a request; a time-based
        // fallback still yields a unique-enough id for correlation.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        b = nanos.to_le_bytes();
    }
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_ids_are_accepted_and_odd_ones_are_not() {
        assert_eq!(
            accept_correlation_id("order-42:retry.1"),
            Some("order-42:retry.1")
        );
        assert_eq!(accept_correlation_id(""), None);
        assert_eq!(accept_correlation_id("a b"), None);
        assert_eq!(accept_correlation_id("x\ninjected"), None);
        assert_eq!(accept_correlation_id(&"a".repeat(129)), None);
    }

    #[test]
    fn path_ids_are_plain_short_and_never_dot_segments() {
        for good in ["5012", "c-1", "a.b", "urn:x_y", "...x", &"9".repeat(128)] {
            assert!(is_path_id(good), "{good}");
        }
        for bad in [
            "",
            ".",
            "..",
            "...",
            "a/b",
            "a%2Fb",
            "a b",
            "é",
            "a?b",
            "a#b",
            &"9".repeat(129),
        ] {
            assert!(!is_path_id(bad), "{bad:?}");
        }
    }

    #[test]
    fn new_ids_are_version_4_uuids_and_differ() {
        let a = new_uuid();
        let b = new_uuid();
        assert_eq!(a.len(), 36);
        assert_eq!(&a[14..15], "4");
        assert_ne!(a, b);
    }
}
