//! Framing: several protocol messages in one WebSocket message.
//!
//! JSON: each message is one JSON object; messages are joined by a single `\n` and sent as a
//! text message. Protobuf: each message is prefixed by its length as an unsigned varint and the
//! pieces are concatenated in a binary message. An empty message (ping, pong) is `{}` in JSON
//! and a zero length (the byte `0x00`) in Protobuf.

use bytes::{BufMut, Bytes, BytesMut};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// The encoding a connection speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// Newline-delimited JSON in text messages.
    Json,
    /// Varint-delimited Protobuf in binary messages.
    Protobuf,
}

impl Protocol {
    /// Both encodings, for code that prepares one encoding per kind.
    pub const ALL: [Self; 2] = [Self::Json, Self::Protobuf];

    /// Index of this protocol in [`Protocol::ALL`].
    pub const fn index(self) -> usize {
        match self {
            Self::Json => 0,
            Self::Protobuf => 1,
        }
    }

    /// Name used in logs and proxy requests.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Json => "json",
            Self::Protobuf => "protobuf",
        }
    }

    /// The encoded empty message (a ping from the server or a pong from a client), framed.
    pub fn empty_message(self) -> Bytes {
        match self {
            Self::Json => Bytes::from_static(b"{}"),
            Self::Protobuf => Bytes::from_static(&[0]),
        }
    }
}

/// A frame could not be decoded.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// The frame carried no message at all.
    #[error("empty frame")]
    Empty,
    /// A JSON message was malformed.
    #[error("malformed JSON message: {0}")]
    Json(#[from] serde_json::Error),
    /// A Protobuf message was malformed.
    #[error("malformed protobuf message: {0}")]
    Protobuf(#[from] prost::DecodeError),
    /// A length prefix was malformed or pointed past the end of the frame.
    #[error("bad length prefix")]
    Length,
}

/// A message could not be encoded for this protocol.
#[derive(Debug, thiserror::Error)]
pub enum EncodeError {
    /// A payload is not valid JSON and cannot be carried by a JSON connection.
    #[error("payload can't be encoded as JSON: {0}")]
    Json(#[from] serde_json::Error),
}

/// A type that both encodings can carry.
pub trait WireMessage: prost::Message + Serialize + DeserializeOwned + Default {}
impl<T: prost::Message + Serialize + DeserializeOwned + Default> WireMessage for T {}

/// Encodes one message as a framing unit: JSON text, or a varint length plus Protobuf bytes.
///
/// Units of one protocol are put in one WebSocket message with [`join_units`].
pub fn encode<T: WireMessage>(protocol: Protocol, message: &T) -> Result<Bytes, EncodeError> {
    match protocol {
        Protocol::Json => Ok(Bytes::from(serde_json::to_vec(message)?)),
        Protocol::Protobuf => Ok(Bytes::from(message.encode_length_delimited_to_vec())),
    }
}

/// Appends a framing unit produced by [`encode`] to a frame being built.
pub fn append_unit(protocol: Protocol, frame: &mut BytesMut, unit: &[u8]) {
    if protocol == Protocol::Json && !frame.is_empty() {
        frame.put_u8(b'\n');
    }
    frame.extend_from_slice(unit);
}

/// Joins framing units into the payload of one WebSocket message.
pub fn join_units<'a>(protocol: Protocol, units: impl IntoIterator<Item = &'a Bytes>) -> Bytes {
    let mut frame = BytesMut::new();
    for unit in units {
        append_unit(protocol, &mut frame, unit);
    }
    frame.freeze()
}

/// Decodes every message of one WebSocket message payload, in order.
pub fn decode_all<T: WireMessage>(protocol: Protocol, frame: &[u8]) -> Result<Vec<T>, DecodeError> {
    if frame.is_empty() {
        return Err(DecodeError::Empty);
    }
    let mut out = Vec::new();
    match protocol {
        Protocol::Json => {
            let frame = frame.strip_suffix(b"\n").unwrap_or(frame);
            for line in frame.split(|b| *b == b'\n') {
                out.push(serde_json::from_slice(line)?);
            }
        }
        Protocol::Protobuf => {
            let mut rest = frame;
            while !rest.is_empty() {
                let len =
                    prost::encoding::decode_varint(&mut rest).map_err(|_| DecodeError::Length)?;
                let len = usize::try_from(len).map_err(|_| DecodeError::Length)?;
                if len > rest.len() {
                    return Err(DecodeError::Length);
                }
                let (body, tail) = rest.split_at(len);
                out.push(T::decode(body)?);
                rest = tail;
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::*;

    #[test]
    fn json_command_batch_decodes_in_order() {
        let frame = br#"{"id":1,"connect":{"name":"js"}}
{"id":2,"subscribe":{"channel":"test","flag":1}}"#;
        let cmds: Vec<Command> = decode_all(Protocol::Json, frame).expect("decodes");
        assert_eq!(cmds.len(), 2);
        assert_eq!(
            cmds[0].connect.as_ref().map(|c| c.name.as_str()),
            Some("js")
        );
        assert_eq!(cmds[1].subscribe.as_ref().map(|s| s.flag), Some(1));
    }

    #[test]
    fn json_raw_data_is_kept_verbatim_and_emitted_as_json() {
        let frame = br#"{"id":3,"publish":{"channel":"c","data":{"a": [1, 2]}}}"#;
        let cmds: Vec<Command> = decode_all(Protocol::Json, frame).expect("decodes");
        let data = &cmds[0].publish.as_ref().expect("publish").data;
        assert_eq!(&data[..], br#"{"a": [1, 2]}"#);
        let reply = Reply {
            push: Some(Push {
                channel: "c".into(),
                publication: Some(Publication {
                    data: data.clone(),
                    offset: 7,
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        let unit = encode(Protocol::Json, &reply).expect("encodes");
        assert_eq!(
            &unit[..],
            br#"{"push":{"channel":"c","pub":{"data":{"a": [1, 2]},"offset":7}}}"#
        );
    }

    #[test]
    fn json_binary_payload_fails_to_encode() {
        let reply = Reply {
            rpc: Some(RpcResult {
                data: Bytes::from_static(&[0xff, 0x00]),
            }),
            ..Default::default()
        };
        assert!(encode(Protocol::Json, &reply).is_err());
    }

    #[test]
    fn json_raw_newlines_are_stripped() {
        let reply = Reply {
            rpc: Some(RpcResult {
                data: Bytes::from_static(b"{\n\"a\":1\n}"),
            }),
            ..Default::default()
        };
        let unit = encode(Protocol::Json, &reply).expect("encodes");
        assert_eq!(&unit[..], br#"{"rpc":{"data":{"a":1}}}"#);
    }

    #[test]
    fn json_always_present_fields() {
        let reply = Reply {
            id: 4,
            history: Some(HistoryResult::default()),
            ..Default::default()
        };
        let unit = encode(Protocol::Json, &reply).expect("encodes");
        assert_eq!(
            &unit[..],
            br#"{"id":4,"history":{"publications":[],"epoch":"","offset":0}}"#
        );
        let reply = Reply {
            id: 5,
            publish: Some(PublishResult {}),
            ..Default::default()
        };
        assert_eq!(
            &encode(Protocol::Json, &reply).expect("encodes")[..],
            br#"{"id":5,"publish":{}}"#
        );
    }

    #[test]
    fn empty_json_message_is_ping() {
        let replies: Vec<Reply> = decode_all(Protocol::Json, b"{}").expect("decodes");
        assert_eq!(replies, vec![Reply::default()]);
    }

    #[test]
    fn protobuf_round_trip_with_several_messages_and_ping() {
        let a = Reply {
            id: 1,
            connect: Some(ConnectResult {
                client: "x".into(),
                ping: 25,
                pong: true,
                ..Default::default()
            }),
            ..Default::default()
        };
        let b = Reply::default();
        let units = [
            encode(Protocol::Protobuf, &a).expect("a"),
            encode(Protocol::Protobuf, &b).expect("b"),
        ];
        let frame = join_units(Protocol::Protobuf, &units);
        assert_eq!(frame.last(), Some(&0u8));
        let back: Vec<Reply> = decode_all(Protocol::Protobuf, &frame).expect("decodes");
        assert_eq!(back, vec![a, b]);
    }

    #[test]
    fn malformed_frames_are_errors() {
        assert!(decode_all::<Command>(Protocol::Json, b"").is_err());
        assert!(decode_all::<Command>(Protocol::Json, b"{\"id\":1}\n\n{}").is_err());
        assert!(decode_all::<Command>(Protocol::Json, b"not json").is_err());
        assert!(decode_all::<Command>(Protocol::Protobuf, &[5, 1, 2]).is_err());
        assert!(
            decode_all::<Command>(
                Protocol::Protobuf,
                &[
                    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff
                ]
            )
            .is_err()
        );
    }
}
