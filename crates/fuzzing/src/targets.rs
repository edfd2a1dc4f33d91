//! One function per fuzz target. Each takes arbitrary bytes and panics only when a parser
//! breaks a promise (a panic inside a parser is itself the bug the fuzzer looks for).

use std::sync::OnceLock;

use gyre_auth::{Jwks, TokenVerifier, VerifierOptions};
use gyre_config::Format;
use gyre_protocol::codec::{decode_all, encode, join_units};
use gyre_protocol::{Command, Protocol};

/// A fuzz target: its name (the `fuzz/fuzz_targets/<name>.rs` file and the
/// `fuzz/corpus/<name>/` directory) and its body.
#[derive(Clone, Copy)]
pub struct Target {
    /// Name of the target.
    pub name: &'static str,
    /// The body, fed one input.
    pub run: fn(&[u8]),
}

/// Every target, in the order `scripts/fuzz.sh` runs them.
pub const TARGETS: [Target; 6] = [
    Target {
        name: "json_commands",
        run: json_commands,
    },
    Target {
        name: "protobuf_commands",
        run: protobuf_commands,
    },
    Target {
        name: "websocket",
        run: websocket,
    },
    Target {
        name: "jwt",
        run: jwt,
    },
    Target {
        name: "fossil_delta",
        run: fossil_delta,
    },
    Target {
        name: "config_load",
        run: config_load,
    },
];

/// Encodes decoded commands again as one frame (None when a command cannot be encoded).
fn reencode(protocol: Protocol, commands: &[Command]) -> Option<Vec<u8>> {
    let units: Option<Vec<_>> = commands.iter().map(|c| encode(protocol, c).ok()).collect();
    Some(join_units(protocol, units?.iter()).to_vec())
}

/// JSON command frames (one command per line, as a client's text message): decoding never
/// panics, and what decodes encodes to a frame that decodes to the same commands.
pub fn json_commands(data: &[u8]) {
    let Ok(commands) = decode_all::<Command>(Protocol::Json, data) else {
        return;
    };
    // Raw payloads lose their newlines on encoding, so compare from the first re-encoding on.
    let Some(once) = reencode(Protocol::Json, &commands) else {
        return;
    };
    let again = decode_all::<Command>(Protocol::Json, &once);
    let again = again.unwrap_or_else(|e| panic!("re-encoded frame does not decode: {e}"));
    assert_eq!(again.len(), commands.len(), "command count changed");
    let twice = reencode(Protocol::Json, &again).expect("re-encodes");
    assert_eq!(once, twice, "encoding is not stable");
}

/// Protobuf command frames (varint-length-prefixed commands, as a client's binary message):
/// decoding never panics, and decoded commands survive an encode/decode round trip.
pub fn protobuf_commands(data: &[u8]) {
    let Ok(commands) = decode_all::<Command>(Protocol::Protobuf, data) else {
        return;
    };
    let frame = reencode(Protocol::Protobuf, &commands).expect("protobuf always encodes");
    let again = decode_all::<Command>(Protocol::Protobuf, &frame);
    let again = again.unwrap_or_else(|e| panic!("re-encoded frame does not decode: {e}"));
    assert!(
        again == commands,
        "protobuf round trip changed the commands"
    );
}

/// The server's WebSocket frame reader over a client's raw bytes. The first byte picks the
/// read size (1 to 64 bytes, or 64 KiB) and the size limit; the rest is the byte stream.
pub fn websocket(data: &[u8]) {
    let Some((&knobs, stream)) = data.split_first() else {
        return;
    };
    let chunk = match knobs & 0x3f {
        0 => 64 * 1024,
        n => usize::from(n),
    };
    let max_payload = if knobs & 0x40 == 0 { 64 * 1024 } else { 16 };
    let (sizes, _code) = gyre_server::fuzz_websocket_read(stream, chunk, max_payload);
    // Frames carry at least two header bytes each, so there are fewer messages than bytes.
    assert!(sizes.len() <= stream.len() / 2, "more messages than frames");
}

/// PEM public keys the verifiers are built with (the private halves sign the seed tokens).
const RSA_PUBLIC_KEY: &str = "-----BEGIN PUBLIC KEY-----
MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA0Zn2IzPrlBEXXrZutTqB
XnQvYV9ECXjfptD1yqGKqDB3HDfIx2gzL0ldWepMDWe01NOYiENWU/+xxCkrMbug
w6UAaftnLF8GnasayrNg4b9l7JcXaUV2/mPKODWr9My+TPL4ASnT7zkJLPHhwUV2
iQo+MigLUCyfZeSw8/06qKB2xKXfoDsdzBs1Zi6Z6wgXpL8ixL+LnZD2Nx7X/v4I
C0BE5u4LmFEmmLaZRh3YUBU4qal9CdzhiJysxg18uirohJTaXTgPzgmTUGdM1Qle
wdpGwVH9gTKuAh32mG3C4K6Rg2YwC/9zWF2GlSkrYzLwzDjsgnhAJhumHz2VFWY7
/QIDAQAB
-----END PUBLIC KEY-----
";
const EC_PUBLIC_KEY: &str = "-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAErsO6YUWS8AXVrcGMsCPugCfMdEXA
rrXc8ub+XRE0yLl0a2ZrdL1PbtOOf0QwZzXRNUdwUqrUEK9dVAm4E4+1Tw==
-----END PUBLIC KEY-----
";
/// The HMAC secret of the seed tokens.
const HMAC_SECRET: &str = "fuzz-secret";
/// A fixed "now" for the verifiers (the seed tokens expire after it).
const NOW: i64 = 1_767_225_600;

fn verifiers() -> &'static [TokenVerifier; 3] {
    static VERIFIERS: OnceLock<[TokenVerifier; 3]> = OnceLock::new();
    VERIFIERS.get_or_init(|| {
        let keyed = VerifierOptions {
            hmac_secret_key: HMAC_SECRET.into(),
            rsa_public_key: RSA_PUBLIC_KEY.into(),
            ecdsa_public_key: EC_PUBLIC_KEY.into(),
            ..VerifierOptions::default()
        };
        let scoped = VerifierOptions {
            audience_regex: "^gyre-[a-z]+$".into(),
            issuer: "gyre-fuzz".into(),
            user_id_claim: "user.ids.0".into(),
            ..keyed.clone()
        };
        // No signature check: every claims object reaches the claim parsers.
        let unsigned = VerifierOptions {
            skip_signature_verify: true,
            ..VerifierOptions::default()
        };
        [keyed, scoped, unsigned].map(|o| TokenVerifier::new(o).expect("valid verifier options"))
    })
}

/// JWT parsing and verification. First byte: 0-3 the rest is a token (verified as a
/// connection and a subscription token by three verifiers); 4 the rest is a claims object,
/// signed with the HMAC secret and verified; 5 the rest is a JWKS document.
pub fn jwt(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    match mode % 6 {
        4 => {
            let Ok(claims) = serde_json::from_slice::<serde_json::Value>(rest) else {
                return;
            };
            let Ok(token) = gyre_auth::sign_hs256(HMAC_SECRET, &claims) else {
                return;
            };
            for verifier in verifiers() {
                let _ = verifier.verify_connect(&token, NOW);
                let _ = verifier.verify_subscribe(&token, NOW);
            }
        }
        5 => {
            let jwks = Jwks::new();
            if let Ok(keys) = jwks.replace_from_json(rest) {
                assert!(keys <= rest.len(), "more keys than bytes");
            }
        }
        _ => {
            let token = String::from_utf8_lossy(rest);
            for verifier in verifiers() {
                let _ = verifier.verify_connect(&token, NOW);
                let _ = verifier.verify_subscribe(&token, NOW);
            }
        }
    }
}

/// Fossil delta decoding in gyre-client. The first two bytes (little endian) give the length
/// of the source; the source follows, then the patch. A patch that applies stays within the
/// output limit; a delta computed from source to patch bytes applies back exactly.
pub fn fossil_delta(data: &[u8]) {
    if data.len() < 2 {
        return;
    }
    let split = usize::from(u16::from_le_bytes([data[0], data[1]]));
    let rest = &data[2..];
    let (source, patch) = rest.split_at(split.min(rest.len()));
    if let Ok(out) = gyre_client::core::apply_patch(source, patch) {
        assert!(
            out.len() <= gyre_client::core::MAX_PATCH_OUTPUT,
            "output over the limit"
        );
    }
    // fossil_delta::delta takes (target, source), as the server's delta encoder calls it.
    let delta = ::fossil_delta::delta(patch, source);
    let applied = gyre_client::core::apply_patch(source, &delta);
    assert_eq!(
        applied.as_deref(),
        Ok(patch),
        "a real delta did not apply back"
    );
}

/// Configuration loading from JSON, YAML or TOML (first byte picks the format), with the
/// same validation and preparation as `gyre serve --config`. Errors are fine; panics are not.
pub fn config_load(data: &[u8]) {
    let Some((&format, text)) = data.split_first() else {
        return;
    };
    let format = match format % 3 {
        0 => Format::Json,
        1 => Format::Yaml,
        _ => Format::Toml,
    };
    let Ok(text) = std::str::from_utf8(text) else {
        return;
    };
    let _ = gyre_config::load_str(text, format, &[], &[]);
}
