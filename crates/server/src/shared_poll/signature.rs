//! Track signatures: `<issued>:<expires>:<hex HMAC-SHA256>`, where the MAC covers the issue and
//! expiry times, the user, the channel and the SHA-256 of the NUL-joined keys, NUL-separated
//! (upstream's format, so an application's signing code works unchanged).

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

/// How long after its expiry a signature is still accepted, in seconds.
pub(crate) const GRACE_SECS: i64 = 5;

/// Why a signature is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// Malformed, or the MAC does not match.
    Invalid,
    /// Valid but expired (beyond the grace period).
    Expired,
}

/// The keys signatures are verified with.
#[derive(Debug, Clone, Default)]
pub(crate) struct Keys {
    pub current: String,
    pub previous: String,
    /// Signatures issued after this unix time are not accepted with the previous key (0: any).
    pub previous_valid_until: i64,
}

/// The issue time, expiry time and MAC fields of a signature, `None` when it is malformed.
fn fields(signature: &str) -> Option<(&str, &str, &str)> {
    let mut parts = signature.splitn(3, ':');
    Some((parts.next()?, parts.next()?, parts.next()?))
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[(b >> 4) as usize] as char);
        out.push(DIGITS[(b & 15) as usize] as char);
    }
    out
}

/// The MAC (hex) of a signature's fields with `secret`.
pub(crate) fn mac(
    secret: &str,
    issued: &str,
    expires: &str,
    user: &str,
    channel: &str,
    keys: &[&str],
) -> Option<String> {
    let keys_hash = hex(&Sha256::digest(keys.join("\0").as_bytes()));
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).ok()?;
    for (i, part) in [issued, expires, user, channel, &keys_hash]
        .iter()
        .enumerate()
    {
        if i > 0 {
            mac.update(b"\0");
        }
        mac.update(part.as_bytes());
    }
    Some(hex(&mac.finalize().into_bytes()))
}

/// Constant-time comparison of two hex strings.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// Verifies a signature over `keys` for `user` in `channel` at unix time `now`; returns its
/// expiry (unix seconds, 0 for none).
pub(crate) fn verify(
    keys: &Keys,
    channel: &str,
    user: &str,
    signed: &[&str],
    signature: &str,
    now: i64,
) -> Result<i64, Refusal> {
    let (issued_text, expires_text, given) = fields(signature).ok_or(Refusal::Invalid)?;
    let issued: i64 = issued_text.parse().map_err(|_| Refusal::Invalid)?;
    let expires: i64 = expires_text.parse().map_err(|_| Refusal::Invalid)?;
    let check = |secret: &str| {
        !secret.is_empty()
            && mac(secret, issued_text, expires_text, user, channel, signed)
                .is_some_and(|expected| same(&expected, given))
    };
    let previous_allowed = keys.previous_valid_until == 0 || issued <= keys.previous_valid_until;
    let valid = check(&keys.current) || (previous_allowed && check(&keys.previous));
    if !valid {
        return Err(Refusal::Invalid);
    }
    if expires > 0 && expires + GRACE_SECS < now {
        return Err(Refusal::Expired);
    }
    Ok(expires.max(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sign(
        secret: &str,
        channel: &str,
        user: &str,
        keys: &[&str],
        issued: i64,
        expires: i64,
    ) -> String {
        let mac = mac(
            secret,
            &issued.to_string(),
            &expires.to_string(),
            user,
            channel,
            keys,
        )
        .expect("mac");
        format!("{issued}:{expires}:{mac}")
    }

    #[test]
    fn verifies_and_refuses() {
        let keys = Keys {
            current: "new".into(),
            previous: "old".into(),
            previous_valid_until: 150,
        };
        let good = sign("new", "poll:a", "u", &["k1", "k2"], 100, 200);
        assert_eq!(
            verify(&keys, "poll:a", "u", &["k1", "k2"], &good, 150),
            Ok(200)
        );
        // Within the grace period, then past it.
        assert_eq!(
            verify(&keys, "poll:a", "u", &["k1", "k2"], &good, 205),
            Ok(200)
        );
        assert_eq!(
            verify(&keys, "poll:a", "u", &["k1", "k2"], &good, 206),
            Err(Refusal::Expired)
        );
        for (channel, user, signed) in [
            ("poll:b", "u", &["k1", "k2"][..]),
            ("poll:a", "v", &["k1", "k2"][..]),
            ("poll:a", "u", &["k1"][..]),
            ("poll:a", "u", &["k2", "k1"][..]),
        ] {
            assert_eq!(
                verify(&keys, channel, user, signed, &good, 150),
                Err(Refusal::Invalid)
            );
        }
        for bad in ["", "x", "1:2", "a:b:c", "1:2:zz"] {
            assert_eq!(
                verify(&keys, "poll:a", "u", &["k1"], bad, 150),
                Err(Refusal::Invalid)
            );
        }
        // The previous key, only for signatures issued before its end of validity.
        let old = sign("old", "poll:a", "u", &["k1"], 100, 0);
        assert_eq!(verify(&keys, "poll:a", "u", &["k1"], &old, 150), Ok(0));
        let late = sign("old", "poll:a", "u", &["k1"], 151, 0);
        assert_eq!(
            verify(&keys, "poll:a", "u", &["k1"], &late, 160),
            Err(Refusal::Invalid)
        );
    }
}
