//! HMAC verification, time checks, audience/issuer, key rotation and skip-verify.

mod common;

use common::{NOW, hmac_opts, hmac_verifier, hs256};
use gyre_auth::{Algorithm, TokenError, TokenVerifier, VerifierOptions, sign};
use serde_json::json;

fn is_invalid<T: std::fmt::Debug>(r: Result<T, TokenError>) -> bool {
    matches!(r, Err(TokenError::Invalid(_)))
}

#[test]
fn hs256_384_512_valid() {
    let v = hmac_verifier("secret");
    for alg in [Algorithm::Hs256, Algorithm::Hs384, Algorithm::Hs512] {
        let token = sign(alg, "secret", &json!({"sub": "42", "exp": NOW + 60})).expect("sign");
        let t = v.verify_connect(&token, NOW).expect("valid token");
        assert_eq!(t.user, "42", "{alg}");
        assert_eq!(t.expire_at, Some(NOW + 60));
    }
}

#[test]
fn wrong_secret_is_invalid() {
    let token = hs256("other", json!({"sub": "42"}));
    assert!(is_invalid(
        hmac_verifier("secret").verify_connect(&token, NOW)
    ));
    assert!(is_invalid(
        hmac_verifier("secret").verify_subscribe(&token, NOW)
    ));
}

#[test]
fn centrifuge_js_test_token() {
    // Minted independently (Python hmac): {"alg":"HS256","typ":"JWT"} / {"iat":1589378745}.
    let token = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJpYXQiOjE1ODkzNzg3NDV9.\
                 rwJVQf6NHb4VpDXBLVD4ODueslBtLK6U_Tz_Da92x-c";
    let t = hmac_verifier("secret")
        .verify_connect(token, NOW)
        .expect("valid");
    assert_eq!(t.user, "");
    assert_eq!(t.expire_at, None);
    assert!(t.info.is_none() && t.channels.is_empty() && t.subs.is_empty() && t.meta.is_none());
    // Our own signer produces an equivalent token.
    let ours = hs256("secret", json!({"iat": 1}));
    assert_eq!(
        hmac_verifier("secret")
            .verify_connect(&ours, NOW)
            .expect("valid")
            .user,
        ""
    );
}

#[test]
fn expiry() {
    let v = hmac_verifier("secret");
    let expired = hs256("secret", json!({"sub": "1", "exp": NOW - 1}));
    assert_eq!(v.verify_connect(&expired, NOW), Err(TokenError::Expired));
    let sub = hs256("secret", json!({"channel": "c", "exp": NOW - 1}));
    assert_eq!(v.verify_subscribe(&sub, NOW), Err(TokenError::Expired));
    // exp == now is already expired.
    let edge = hs256("secret", json!({"exp": NOW}));
    assert_eq!(v.verify_connect(&edge, NOW), Err(TokenError::Expired));
    let fine = hs256("secret", json!({"exp": NOW + 1}));
    assert!(v.verify_connect(&fine, NOW).is_ok());
    // Fractional exp is accepted.
    let frac = hs256("secret", json!({"exp": (NOW as f64) + 10.5}));
    assert_eq!(
        v.verify_connect(&frac, NOW).expect("valid").expire_at,
        Some(NOW + 10)
    );
    // Bad signature wins over expiry.
    let bad = hs256("nope", json!({"exp": NOW - 1}));
    assert!(is_invalid(v.verify_connect(&bad, NOW)));
    // Non-numeric exp is invalid.
    let s = hs256("secret", json!({"exp": "soon"}));
    assert!(is_invalid(v.verify_connect(&s, NOW)));
}

#[test]
fn not_before() {
    let v = hmac_verifier("secret");
    // Not valid yet is answered as expired, as upstream does (the client refreshes).
    let future = hs256("secret", json!({"nbf": NOW + 10}));
    assert_eq!(
        v.verify_connect(&future, NOW).err(),
        Some(TokenError::Expired)
    );
    let sub = hs256("secret", json!({"channel": "c", "nbf": NOW + 10}));
    assert_eq!(
        v.verify_subscribe(&sub, NOW).err(),
        Some(TokenError::Expired)
    );
    let now = hs256("secret", json!({"nbf": NOW}));
    assert!(v.verify_connect(&now, NOW).is_ok());
}

fn scoped(audience: &str, audience_regex: &str, issuer: &str, issuer_regex: &str) -> TokenVerifier {
    TokenVerifier::new(VerifierOptions {
        audience: audience.into(),
        audience_regex: audience_regex.into(),
        issuer: issuer.into(),
        issuer_regex: issuer_regex.into(),
        ..hmac_opts("secret")
    })
    .expect("valid options")
}

#[test]
fn audience_checks() {
    let exact = scoped("gyre", "", "", "");
    let ok = |v: &TokenVerifier, claims| v.verify_connect(&hs256("secret", claims), NOW).is_ok();
    assert!(ok(&exact, json!({"aud": "gyre"})));
    assert!(ok(&exact, json!({"aud": ["x", "gyre"]})));
    assert!(!ok(&exact, json!({"aud": "other"})));
    assert!(!ok(&exact, json!({"aud": ["x"]})));
    assert!(!ok(&exact, json!({})));

    let re = scoped("", "^project-[0-9]+$", "", "");
    assert!(ok(&re, json!({"aud": "project-12"})));
    assert!(ok(&re, json!({"aud": ["nope", "project-1"]})));
    assert!(!ok(&re, json!({"aud": "project-x"})));
    assert!(!ok(&re, json!({})));

    // Not configured: aud ignored whatever it is.
    let none = hmac_verifier("secret");
    assert!(ok(&none, json!({"aud": "anything"})));
    // Expired wins over a wrong audience.
    let t = hs256("secret", json!({"aud": "other", "exp": NOW - 5}));
    assert_eq!(exact.verify_connect(&t, NOW), Err(TokenError::Expired));
}

#[test]
fn issuer_checks() {
    let ok = |v: &TokenVerifier, claims| v.verify_subscribe(&hs256("secret", claims), NOW).is_ok();
    let exact = scoped("", "", "backend", "");
    assert!(ok(&exact, json!({"channel": "c", "iss": "backend"})));
    assert!(!ok(&exact, json!({"channel": "c", "iss": "backend2"})));
    assert!(!ok(&exact, json!({"channel": "c"})));

    let re = scoped("", "", "", r"^https://auth\.example\.com/");
    assert!(ok(
        &re,
        json!({"channel": "c", "iss": "https://auth.example.com/t1"})
    ));
    assert!(!ok(
        &re,
        json!({"channel": "c", "iss": "https://evil.com/"})
    ));
    assert!(!ok(&re, json!({"channel": "c"})));

    let both = scoped("a", "", "i", "");
    assert!(ok(&both, json!({"channel": "c", "aud": "a", "iss": "i"})));
    assert!(!ok(&both, json!({"channel": "c", "aud": "a", "iss": "j"})));
}

#[test]
fn bad_regex_options_are_named() {
    for (field, err_name) in [
        ("audience_regex", "audience_regex"),
        ("issuer_regex", "issuer_regex"),
    ] {
        let mut opts = hmac_opts("s");
        match field {
            "audience_regex" => opts.audience_regex = "(".into(),
            _ => opts.issuer_regex = "[".into(),
        }
        let err = TokenVerifier::new(opts).expect_err("bad regex");
        assert!(err.to_string().contains(err_name), "{err}");
    }
    let err = TokenVerifier::new(VerifierOptions {
        user_id_claim: "a..b".into(),
        ..hmac_opts("s")
    })
    .expect_err("bad path");
    assert!(err.to_string().contains("user_id_claim"));
}

#[test]
fn previous_hmac_key_rotation() {
    let valid_until = NOW + 100;
    let v = TokenVerifier::new(VerifierOptions {
        hmac_secret_key: "new".into(),
        hmac_previous_secret_key: "old".into(),
        hmac_previous_secret_key_valid_until: valid_until,
        ..VerifierOptions::default()
    })
    .expect("valid");
    let old = hs256("old", json!({"sub": "u"}));
    let new = hs256("new", json!({"sub": "u"}));
    let other = hs256("other", json!({"sub": "u"}));

    assert_eq!(
        v.verify_connect(&old, NOW)
            .expect("before valid_until")
            .user,
        "u"
    );
    assert!(v.verify_connect(&old, valid_until - 1).is_ok());
    assert!(is_invalid(v.verify_connect(&old, valid_until)));
    assert!(is_invalid(v.verify_connect(&old, valid_until + 1000)));
    assert!(v.verify_connect(&new, valid_until + 1000).is_ok());
    assert!(is_invalid(v.verify_connect(&other, NOW)));

    // valid_until = 0: previous key accepted without time limit.
    let unlimited = TokenVerifier::new(VerifierOptions {
        hmac_secret_key: "new".into(),
        hmac_previous_secret_key: "old".into(),
        ..VerifierOptions::default()
    })
    .expect("valid");
    assert!(unlimited.verify_connect(&old, i64::MAX - 1).is_ok());
}

#[test]
fn algorithm_without_key_is_invalid() {
    let v = TokenVerifier::new(VerifierOptions::default()).expect("empty options are fine");
    assert!(is_invalid(
        v.verify_connect(&hs256("secret", json!({})), NOW)
    ));
    let rsa_token = sign(Algorithm::Rs256, common::RSA_PRIVATE, &json!({})).expect("sign");
    assert!(is_invalid(
        hmac_verifier("secret").verify_connect(&rsa_token, NOW)
    ));
}

#[test]
fn skip_signature_verify() {
    let v = TokenVerifier::new(VerifierOptions {
        skip_signature_verify: true,
        ..VerifierOptions::default()
    })
    .expect("valid");
    let token = hs256("whatever", json!({"sub": "dev", "exp": NOW + 5}));
    assert_eq!(
        v.verify_connect(&token, NOW).expect("unchecked").user,
        "dev"
    );
    // Still checks time.
    let expired = hs256("whatever", json!({"sub": "dev", "exp": NOW - 5}));
    assert_eq!(v.verify_connect(&expired, NOW), Err(TokenError::Expired));
    // Unsigned tokens and unknown algorithms decode too.
    let (h, p, _) = split3(&token);
    assert!(v.verify_connect(&format!("{h}.{p}."), NOW).is_ok());
    let none_header = "eyJhbGciOiJub25lIn0"; // {"alg":"none"}
    assert!(
        v.verify_connect(&format!("{none_header}.{p}.x"), NOW)
            .is_ok()
    );
    // But not garbage.
    assert!(is_invalid(v.verify_connect("a.b.c", NOW)));
}

fn split3(token: &str) -> (&str, &str, &str) {
    let mut it = token.splitn(3, '.');
    let h = it.next().unwrap_or_default();
    let p = it.next().unwrap_or_default();
    let s = it.next().unwrap_or_default();
    (h, p, s)
}
