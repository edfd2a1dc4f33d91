//! RSA (PKCS#1 v1.5 and PSS) and ECDSA tokens with fixed test key pairs (generated with
//! `openssl genpkey`, stored under `tests/keys/`).

mod common;

use common::*;
use gyre_auth::{Algorithm, AuthError, TokenError, TokenVerifier, VerifierOptions, sign};
use serde_json::json;

fn verifier(rsa: &str, ec: &str) -> TokenVerifier {
    TokenVerifier::new(VerifierOptions {
        rsa_public_key: rsa.into(),
        ecdsa_public_key: ec.into(),
        ..VerifierOptions::default()
    })
    .expect("valid keys")
}

fn invalid<T: std::fmt::Debug>(r: Result<T, TokenError>) -> bool {
    matches!(r, Err(TokenError::Invalid(_)))
}

#[test]
fn rsa_algorithms() {
    let v = verifier(RSA_PUBLIC, "");
    let other = verifier(RSA_OTHER_PUBLIC, "");
    for alg in [
        Algorithm::Rs256,
        Algorithm::Rs384,
        Algorithm::Rs512,
        Algorithm::Ps256,
        Algorithm::Ps384,
        Algorithm::Ps512,
    ] {
        let token = sign(alg, RSA_PRIVATE, &json!({"sub": "r", "exp": NOW + 9})).expect("sign");
        let t = v.verify_connect(&token, NOW).expect("valid");
        assert_eq!(
            (t.user.as_str(), t.expire_at),
            ("r", Some(NOW + 9)),
            "{alg}"
        );
        assert!(
            invalid(other.verify_connect(&token, NOW)),
            "{alg} wrong key"
        );
        let expired = sign(alg, RSA_PRIVATE, &json!({"exp": NOW - 9})).expect("sign");
        assert_eq!(v.verify_connect(&expired, NOW), Err(TokenError::Expired));
    }
    let sub = sign(Algorithm::Rs256, RSA_PRIVATE, &json!({"channel": "c"})).expect("sign");
    assert_eq!(v.verify_subscribe(&sub, NOW).expect("valid").channel, "c");
}

#[test]
fn ecdsa_algorithms() {
    let v256 = verifier("", EC256_PUBLIC);
    let v384 = verifier("", EC384_PUBLIC);
    let t256 = sign(Algorithm::Es256, EC256_PRIVATE, &json!({"sub": "e"})).expect("sign");
    let t384 = sign(Algorithm::Es384, EC384_PRIVATE, &json!({"sub": "e"})).expect("sign");
    assert_eq!(v256.verify_connect(&t256, NOW).expect("valid").user, "e");
    assert_eq!(v384.verify_connect(&t384, NOW).expect("valid").user, "e");
    // Curve / algorithm mismatch.
    assert!(invalid(v256.verify_connect(&t384, NOW)));
    assert!(invalid(v384.verify_connect(&t256, NOW)));
    // Signing ES384 with a P-256 key fails.
    assert!(sign(Algorithm::Es384, EC256_PRIVATE, &json!({})).is_err());
    // Tampered signature.
    let mut tampered = t256.clone();
    let last = tampered
        .pop()
        .map_or('A', |c| if c == 'A' { 'B' } else { 'A' });
    tampered.push(last);
    assert!(invalid(v256.verify_connect(&tampered, NOW)));
}

#[test]
fn mixed_keys_route_by_algorithm() {
    let v = TokenVerifier::new(VerifierOptions {
        hmac_secret_key: "s".into(),
        rsa_public_key: RSA_PUBLIC.into(),
        ecdsa_public_key: EC256_PUBLIC.into(),
        ..VerifierOptions::default()
    })
    .expect("valid");
    for (alg, key) in [
        (Algorithm::Hs256, "s"),
        (Algorithm::Rs256, RSA_PRIVATE),
        (Algorithm::Es256, EC256_PRIVATE),
    ] {
        let t = sign(alg, key, &json!({"sub": "m"})).expect("sign");
        assert_eq!(v.verify_connect(&t, NOW).expect("valid").user, "m", "{alg}");
    }
    // An RSA token cannot be verified against the EC key (no RSA key configured).
    let ec_only = verifier("", EC256_PUBLIC);
    let rsa = sign(Algorithm::Rs256, RSA_PRIVATE, &json!({})).expect("sign");
    assert!(invalid(ec_only.verify_connect(&rsa, NOW)));
}

#[test]
fn hmac_with_public_key_as_secret_is_rejected() {
    // Classic alg-confusion attack: HS256 signed with the RSA public key PEM as secret.
    let v = verifier(RSA_PUBLIC, "");
    let forged = sign(Algorithm::Hs256, RSA_PUBLIC, &json!({"sub": "admin"})).expect("sign");
    assert!(invalid(v.verify_connect(&forged, NOW)));
}

#[test]
fn bad_pem_options_are_named() {
    let cases = [
        ("rsa_public_key", "not a pem", ""),
        ("rsa_public_key", EC256_PUBLIC, ""),
        ("rsa_public_key", RSA_PRIVATE, ""),
        (
            "ecdsa_public_key",
            "",
            "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n",
        ),
        ("ecdsa_public_key", "", RSA_PUBLIC),
        ("ecdsa_public_key", "", EC256_PRIVATE),
    ];
    for (option, rsa, ec) in cases {
        let err = TokenVerifier::new(VerifierOptions {
            rsa_public_key: rsa.into(),
            ecdsa_public_key: ec.into(),
            ..VerifierOptions::default()
        })
        .expect_err("bad key");
        match &err {
            AuthError::InvalidOption { option: o, .. } => assert_eq!(*o, option, "{err}"),
            other => panic!("unexpected error {other:?}"),
        }
    }
}
