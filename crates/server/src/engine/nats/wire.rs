//! What Gyre nodes send each other on channel subjects (not raw mode): one kind byte, then a
//! protobuf body. `p` carries a publication (a second byte `1` when fossil patches are
//! allowed for delta subscribers, `0` otherwise), `j` and `l` a join or leave (the client's
//! info). The channel is the subject itself.

use bytes::{BufMut, Bytes, BytesMut};
use gyre_protocol::{ClientInfo, Publication};
use prost::Message as _;

/// A decoded channel message.
#[derive(Debug, PartialEq)]
pub(super) enum Incoming {
    /// A publication, and whether delta subscribers may get a patch.
    Publication(Box<Publication>, bool),
    /// A join (`true`) or leave.
    JoinLeave(ClientInfo, bool),
}

/// A publication as sent on its channel's subject.
pub(super) fn publication(publication: &Publication, delta: bool) -> Bytes {
    let mut out = BytesMut::with_capacity(2 + publication.encoded_len());
    out.put_u8(b'p');
    out.put_u8(if delta { b'1' } else { b'0' });
    publication.encode_raw(&mut out);
    out.freeze()
}

/// A join or leave as sent on its channel's subject.
pub(super) fn join_leave(info: &ClientInfo, joined: bool) -> Bytes {
    let mut out = BytesMut::with_capacity(1 + info.encoded_len());
    out.put_u8(if joined { b'j' } else { b'l' });
    info.encode_raw(&mut out);
    out.freeze()
}

/// Decodes a channel message; `None` for anything that is not one.
pub(super) fn decode(payload: &[u8]) -> Option<Incoming> {
    let (kind, body) = payload.split_first()?;
    match kind {
        b'p' => {
            let (delta, body) = body.split_first()?;
            let publication = Publication::decode(body).ok()?;
            Some(Incoming::Publication(Box::new(publication), *delta == b'1'))
        }
        b'j' | b'l' => Some(Incoming::JoinLeave(
            ClientInfo::decode(body).ok()?,
            *kind == b'j',
        )),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip() {
        let p = Publication {
            data: Bytes::from_static(b"{\"n\":1}"),
            tags: [("k".to_owned(), "v".to_owned())].into(),
            ..Default::default()
        };
        assert_eq!(
            decode(&publication(&p, true)),
            Some(Incoming::Publication(Box::new(p.clone()), true))
        );
        assert_eq!(
            decode(&publication(&p, false)),
            Some(Incoming::Publication(Box::new(p), false))
        );
        let info = ClientInfo {
            user: "u".to_owned(),
            client: "c".to_owned(),
            ..Default::default()
        };
        assert_eq!(
            decode(&join_leave(&info, false)),
            Some(Incoming::JoinLeave(info, false))
        );
    }

    #[test]
    fn garbage_is_ignored() {
        for bad in [&b""[..], b"p", b"x123", b"p0\xff\xff\xff"] {
            assert_eq!(decode(bad), None, "{bad:?}");
        }
    }
}
