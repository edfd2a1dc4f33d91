//! Fossil delta compression of publication payloads, and the JSON "string mode" that goes
//! with it: once delta is negotiated on a JSON connection every payload travels as a JSON string.

use bytes::Bytes;

/// A fossil patch turning `previous` into `current`, or `None` when the patch is not smaller
/// than the payload itself (then the full payload is sent).
pub(crate) fn patch(previous: &[u8], current: &[u8]) -> Option<Bytes> {
    let patch = fossil_delta::delta(current, previous);
    (patch.len() < current.len()).then(|| Bytes::from(patch))
}

/// The payload as a JSON string literal (JSON text of a string holding the payload's text).
pub(crate) fn json_string(payload: &[u8]) -> Bytes {
    let text = String::from_utf8_lossy(payload);
    match serde_json::to_vec(&text) {
        Ok(v) => Bytes::from(v),
        Err(_) => Bytes::from_static(b"\"\""),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patch_applies_to_previous() {
        let old = br#"{"name":"first value that is long enough to matter","n":1}"#;
        let new = br#"{"name":"first value that is long enough to matter","n":2}"#;
        let p = patch(old, new).expect("smaller patch");
        assert_eq!(fossil_delta::apply(old, &p).expect("applies"), new.to_vec());
    }

    #[test]
    fn no_patch_when_not_smaller() {
        assert!(patch(b"a", b"b").is_none());
    }

    #[test]
    fn json_string_escapes() {
        assert_eq!(&json_string(br#"{"a":"b"}"#)[..], br#""{\"a\":\"b\"}""#);
    }
}
