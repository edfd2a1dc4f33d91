//! permessage-deflate (RFC 7692) for the codec: the extension offer check and answer, and
//! per-message compression and decompression without context takeover (each message is
//! compressed on its own, as gorilla/websocket does for Centrifugo), so no compression state
//! stays with a connection: the (large) compressor and decompressor are per thread.

use std::cell::RefCell;

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

/// The answer to an accepted offer: no context takeover either way.
pub(crate) const RESPONSE: &str =
    "permessage-deflate; server_no_context_takeover; client_no_context_takeover";

/// The empty stored block a sync flush ends with; stripped after compressing (§7.2.1) and
/// put back before decompressing (§7.2.2).
const TAIL: [u8; 4] = [0x00, 0x00, 0xff, 0xff];

/// Bytes inflated at a time.
const INFLATE_CHUNK: usize = 16 * 1024;

thread_local! {
    static COMPRESS: RefCell<Option<(u32, Compress)>> = const { RefCell::new(None) };
    static DECOMPRESS: RefCell<Option<Decompress>> = const { RefCell::new(None) };
}

/// How a connection that negotiated permessage-deflate compresses and decompresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Deflate {
    /// Deflate level, 1..9.
    pub(crate) level: u32,
    /// Messages shorter than this go out uncompressed (and never empty ones).
    pub(crate) min_size: usize,
    /// The largest message after decompression.
    pub(crate) max_inflated: usize,
}

/// Whether one offer's parameters (after the extension name) can be accepted: known
/// parameters, each at most once, valid window sizes, and no `server_max_window_bits` below
/// 15 (the compressor's window is 15 bits; such an offer is declined, as RFC 7692 allows).
fn params_acceptable<'a>(params: impl Iterator<Item = &'a str>) -> bool {
    let mut seen: Vec<&str> = Vec::new();
    for param in params {
        let (name, value) = match param.split_once('=') {
            Some((n, v)) => (n.trim(), Some(v.trim().trim_matches('"'))),
            None => (param.trim(), None),
        };
        if seen.contains(&name) {
            return false;
        }
        seen.push(name);
        let bits = |v: Option<&str>| v.and_then(|v| v.parse::<u8>().ok());
        let ok = match name {
            "server_no_context_takeover" | "client_no_context_takeover" => value.is_none(),
            "server_max_window_bits" => bits(value) == Some(15),
            "client_max_window_bits" => {
                value.is_none() || bits(value).is_some_and(|b| (8..=15).contains(&b))
            }
            _ => false,
        };
        if !ok {
            return false;
        }
    }
    true
}

/// Whether the `Sec-WebSocket-Extensions` values offer permessage-deflate in a form Gyre
/// accepts (any acceptable offer among several).
pub(crate) fn offered<'a>(values: impl Iterator<Item = &'a str>) -> bool {
    values.flat_map(|v| v.split(',')).any(|offer| {
        let mut parts = offer.split(';');
        parts
            .next()
            .is_some_and(|name| name.trim().eq_ignore_ascii_case("permessage-deflate"))
            && params_acceptable(parts.filter(|p| !p.trim().is_empty()))
    })
}

/// Compresses one message (a fresh deflate stream, sync-flushed, its tail stripped).
pub(crate) fn compress(level: u32, payload: &[u8]) -> Vec<u8> {
    COMPRESS.with(|cell| {
        let mut cell = cell.borrow_mut();
        let compress = match &mut *cell {
            Some((l, c)) if *l == level => {
                c.reset();
                c
            }
            slot => {
                let (_, c) = slot.insert((level, Compress::new(Compression::new(level), false)));
                c
            }
        };
        let mut out = Vec::with_capacity(payload.len() / 2 + 64);
        let mut input = payload;
        loop {
            if out.capacity() - out.len() < 64 {
                out.reserve(out.capacity().max(256));
            }
            let before = compress.total_in();
            // Only fails on a misuse of the stream (none here); the output is then short and
            // the peer refuses it, so an error ends the loop like completion does.
            if compress
                .compress_vec(input, &mut out, FlushCompress::Sync)
                .is_err()
            {
                break;
            }
            let used = (compress.total_in() - before) as usize;
            input = &input[used..];
            // Done once all input is taken and the flush left spare room.
            if input.is_empty() && out.len() < out.capacity() {
                break;
            }
        }
        if out.ends_with(&TAIL) {
            out.truncate(out.len() - TAIL.len());
        }
        out
    })
}

/// Why a compressed message could not be taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum InflateError {
    /// It inflates past the limit.
    TooBig,
    /// It is not valid deflate data.
    Corrupt,
}

/// Decompresses one message, refusing it as soon as it inflates past `limit` bytes.
pub(crate) fn inflate(payload: &[u8], limit: usize) -> Result<Vec<u8>, InflateError> {
    DECOMPRESS.with(|cell| {
        let mut cell = cell.borrow_mut();
        let d = cell.get_or_insert_with(|| Decompress::new(false));
        d.reset(false);
        let mut out = Vec::new();
        let mut chunk = vec![0u8; INFLATE_CHUNK];
        for input in [payload, &TAIL[..]] {
            let mut input = input;
            loop {
                let (before_in, before_out) = (d.total_in(), d.total_out());
                let status = d
                    .decompress(input, &mut chunk, FlushDecompress::Sync)
                    .map_err(|_| InflateError::Corrupt)?;
                let used = (d.total_in() - before_in) as usize;
                let produced = (d.total_out() - before_out) as usize;
                input = &input[used..];
                if out.len() + produced > limit {
                    return Err(InflateError::TooBig);
                }
                out.extend_from_slice(&chunk[..produced]);
                if status == Status::StreamEnd || (input.is_empty() && produced < chunk.len()) {
                    break;
                }
                if used == 0 && produced == 0 {
                    // No progress with input left: the data is broken.
                    return Err(InflateError::Corrupt);
                }
            }
        }
        Ok(out)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_the_tail_is_stripped() {
        for payload in [&b"a"[..], b"hello hello hello hello", &[7u8; 100_000][..]] {
            let packed = compress(1, payload);
            assert!(!packed.ends_with(&TAIL));
            assert_eq!(inflate(&packed, usize::MAX).expect("inflates"), payload);
        }
        // RFC 7692 §7.2.3.1's example: "Hello" compressed.
        let hello = [0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00];
        assert_eq!(inflate(&hello, 100).expect("hello"), b"Hello");
    }

    #[test]
    fn a_bomb_is_refused_at_the_limit_and_garbage_is_corrupt() {
        let bomb = compress(9, &vec![0u8; 10_000_000]);
        assert!(bomb.len() < 20_000, "{}", bomb.len());
        assert_eq!(inflate(&bomb, 65_536), Err(InflateError::TooBig));
        assert_eq!(inflate(&[0xff; 32], 1000), Err(InflateError::Corrupt));
    }

    #[test]
    fn offers() {
        let yes = [
            "permessage-deflate",
            "permessage-deflate; client_max_window_bits",
            "permessage-deflate; server_no_context_takeover; client_max_window_bits=10",
            "x-other, permessage-deflate; server_max_window_bits=15",
            "permessage-deflate; server_max_window_bits=10, permessage-deflate",
        ];
        for offer in yes {
            assert!(offered([offer].into_iter()), "{offer}");
        }
        let no = [
            "",
            "x-webkit-deflate-frame",
            "permessage-deflate; server_max_window_bits=10",
            "permessage-deflate; client_max_window_bits=20",
            "permessage-deflate; unknown",
            "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
        ];
        for offer in no {
            assert!(!offered([offer].into_iter()), "{offer}");
        }
    }
}
