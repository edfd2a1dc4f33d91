//! Fossil delta patches from untrusted input, and the JSON-string payload quirk.
//!
//! `fossil_delta::apply` trusts its input (it can index out of bounds, overflow or allocate
//! the claimed output size). [`apply_patch`] first walks the patch with checked arithmetic and
//! bounds, and only hands well-formed patches to it.

/// Largest output a patch may claim (bounded memory).
pub const MAX_PATCH_OUTPUT: usize = 64 * 1024 * 1024;

/// Reads a fossil base-64 number; returns it and the rest. None on overflow.
fn read_int(input: &[u8]) -> Option<(usize, &[u8])> {
    let mut value: usize = 0;
    for (i, &c) in input.iter().enumerate() {
        // Mirror fossil-delta's decoder exactly, which only looks at the low 7 bits.
        let c = c & 127;
        let digit = match c {
            b'0'..=b'9' => c - b'0',
            b'A'..=b'Z' => c - b'A' + 10,
            b'_' => 36,
            b'a'..=b'z' => c - b'a' + 37,
            b'~' => 63,
            _ => return Some((value, &input[i..])),
        };
        value = value.checked_mul(64)?.checked_add(usize::from(digit))?;
    }
    Some((value, &[]))
}

/// Checks that `patch` is a well-formed fossil delta against a source of `source_len` bytes.
fn validate(source_len: usize, patch: &[u8]) -> Result<(), &'static str> {
    let (total, rest) = read_int(patch).ok_or("size overflow")?;
    if total > MAX_PATCH_OUTPUT {
        return Err("patch output too large");
    }
    let (&sep, mut rest) = rest.split_first().ok_or("truncated header")?;
    if sep != b'\n' {
        return Err("bad header");
    }
    let mut written: usize = 0;
    while !rest.is_empty() {
        let (count, after) = read_int(rest).ok_or("count overflow")?;
        let (&op, after) = after.split_first().ok_or("truncated command")?;
        match op {
            b'@' => {
                let (offset, after) = read_int(after).ok_or("offset overflow")?;
                let (_, after) = after.split_first().ok_or("truncated copy")?;
                written = written.checked_add(count).ok_or("overflow")?;
                if written > total {
                    return Err("copy exceeds size");
                }
                let end = offset.checked_add(count).ok_or("overflow")?;
                if end > source_len {
                    return Err("copy past end of source");
                }
                rest = after;
            }
            b':' => {
                written = written.checked_add(count).ok_or("overflow")?;
                if written > total {
                    return Err("insert exceeds size");
                }
                if count > after.len() {
                    return Err("insert past end of patch");
                }
                rest = &after[count..];
            }
            b';' => return Ok(()),
            _ => return Err("unexpected character"),
        }
    }
    Ok(())
}

/// Applies a fossil delta `patch` to `source`, never panicking on malformed input.
pub fn apply_patch(source: &[u8], patch: &[u8]) -> Result<Vec<u8>, String> {
    validate(source.len(), patch).map_err(|e| format!("malformed delta: {e}"))?;
    let out = fossil_delta::apply(source, patch).map_err(|e| format!("bad delta: {e:?}"))?;
    Ok(out)
}

/// Decodes a JSON string literal (`"..."`) into the bytes of its text.
///
/// On JSON connections with delta negotiated, every publication payload arrives as a JSON
/// string whose text is the real payload or the patch.
pub fn decode_json_string(input: &[u8]) -> Result<Vec<u8>, String> {
    let err = |m: &str| format!("bad JSON string: {m}");
    let trimmed = input.trim_ascii();
    let body = trimmed
        .strip_prefix(b"\"")
        .and_then(|b| b.strip_suffix(b"\""))
        .ok_or_else(|| err("not a string"))?;
    let mut out = Vec::with_capacity(body.len());
    let mut i = 0;
    while i < body.len() {
        let c = body[i];
        i += 1;
        if c != b'\\' {
            if c == b'"' || c < 0x20 {
                return Err(err("unescaped character"));
            }
            out.push(c);
            continue;
        }
        let e = *body.get(i).ok_or_else(|| err("truncated escape"))?;
        i += 1;
        match e {
            b'"' => out.push(b'"'),
            b'\\' => out.push(b'\\'),
            b'/' => out.push(b'/'),
            b'b' => out.push(8),
            b'f' => out.push(12),
            b'n' => out.push(b'\n'),
            b'r' => out.push(b'\r'),
            b't' => out.push(b'\t'),
            b'u' => {
                let hex = |at: usize| -> Result<u32, String> {
                    let digits = body.get(at..at + 4).ok_or_else(|| err("truncated \\u"))?;
                    let s = std::str::from_utf8(digits).map_err(|_| err("bad \\u"))?;
                    u32::from_str_radix(s, 16).map_err(|_| err("bad \\u"))
                };
                let mut code = hex(i)?;
                i += 4;
                if (0xD800..0xDC00).contains(&code) {
                    if body.get(i..i + 2) != Some(b"\\u") {
                        return Err(err("lone surrogate"));
                    }
                    let low = hex(i + 2)?;
                    if !(0xDC00..0xE000).contains(&low) {
                        return Err(err("bad surrogate pair"));
                    }
                    i += 6;
                    code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00);
                } else if (0xDC00..0xE000).contains(&code) {
                    return Err(err("lone surrogate"));
                }
                let ch = char::from_u32(code).ok_or_else(|| err("bad code point"))?;
                let mut buf = [0u8; 4];
                out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
            }
            _ => return Err(err("unknown escape")),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn good_patch_applies() {
        let a = b"hello world, this is a long enough text to get a real delta out of it";
        let b = b"hello world, this is a long enough text to get a real delta out of it!!";
        let d = fossil_delta::delta(b, a); // (target, source)
        assert_eq!(apply_patch(a, &d).expect("applies"), b.to_vec());
    }

    #[test]
    fn garbage_patches_are_errors_not_panics() {
        let src = b"0123456789";
        let cases: &[&[u8]] = &[
            b"",
            b"5",
            b"5\n",
            b"5\n3",
            b"5\n3@",
            b"5\n3@0",
            b"5\n9@0,",
            b"5\n3@~~~~~~~~~~~~~~~~,",
            b"5\n9:ab",
            b"~~~~~~~~~~~~~~~~\n",
            b"~~~~~\n",
            b"2\n2:abX;",
            b"3\n2:ab1:c0;",
            b"\xff\xfe",
            b"1\n1@0,1@0,",
        ];
        for c in cases {
            let _ = apply_patch(src, c);
        }
        // Random bytes.
        let mut x: u64 = 0x9e3779b97f4a7c15;
        for _ in 0..20_000 {
            let len = (x % 24) as usize;
            let mut p = Vec::with_capacity(len);
            for _ in 0..len {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                p.push(b"0123456789AZaz_~@:;,\n"[(x % 21) as usize]);
            }
            let _ = apply_patch(src, &p);
        }
    }

    #[test]
    fn json_strings_decode() {
        assert_eq!(
            decode_json_string(br#""{\"a\":1}""#).expect("ok"),
            br#"{"a":1}"#.to_vec()
        );
        assert_eq!(
            decode_json_string(br#""\u00e9\ud83d\ude00\n""#).expect("ok"),
            "é😀\n".as_bytes().to_vec()
        );
        assert!(decode_json_string(b"{}").is_err());
        assert!(decode_json_string(br#""\ud83d""#).is_err());
        assert!(decode_json_string(br#""\"#).is_err());
    }
}
