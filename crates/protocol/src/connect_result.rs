//! Hand-written Protobuf encoding of [`ConnectResult`].
//!
//! prost drops a map value equal to its default, so a server-side subscription with an empty
//! `SubscribeResult` would go out as a key without a value; upstream always writes the value
//! and official clients depend on it. Everything else follows the schema field by field.

use std::collections::HashMap;

use bytes::{Buf, BufMut};
use prost::DecodeError;
use prost::encoding::{
    self, DecodeContext, WireType, encode_key, encode_varint, encoded_len_varint,
};

use crate::types::{ConnectResult, SubscribeResult};

const SUBS_TAG: u32 = 6;

fn entry_len(key: &String, value: &SubscribeResult) -> usize {
    encoding::string::encoded_len(1, key) + encoding::message::encoded_len(2, value)
}

fn subs_len(subs: &HashMap<String, SubscribeResult>) -> usize {
    subs.iter()
        .map(|(k, v)| {
            let len = entry_len(k, v);
            encoding::key_len(SUBS_TAG) + encoded_len_varint(len as u64) + len
        })
        .sum()
}

impl prost::Message for ConnectResult {
    fn encode_raw(&self, buf: &mut impl BufMut) {
        if !self.client.is_empty() {
            encoding::string::encode(1, &self.client, buf);
        }
        if !self.version.is_empty() {
            encoding::string::encode(2, &self.version, buf);
        }
        if self.expires {
            encoding::bool::encode(3, &self.expires, buf);
        }
        if self.ttl != 0 {
            encoding::uint32::encode(4, &self.ttl, buf);
        }
        if !self.data.is_empty() {
            encoding::bytes::encode(5, &self.data, buf);
        }
        for (key, value) in &self.subs {
            encode_key(SUBS_TAG, WireType::LengthDelimited, buf);
            encode_varint(entry_len(key, value) as u64, buf);
            encoding::string::encode(1, key, buf);
            encoding::message::encode(2, value, buf);
        }
        if self.ping != 0 {
            encoding::uint32::encode(7, &self.ping, buf);
        }
        if self.pong {
            encoding::bool::encode(8, &self.pong, buf);
        }
        if !self.session.is_empty() {
            encoding::string::encode(9, &self.session, buf);
        }
        if !self.node.is_empty() {
            encoding::string::encode(10, &self.node, buf);
        }
        if self.time != 0 {
            encoding::int64::encode(11, &self.time, buf);
        }
    }

    fn merge_field(
        &mut self,
        tag: u32,
        wire_type: WireType,
        buf: &mut impl Buf,
        ctx: DecodeContext,
    ) -> Result<(), DecodeError> {
        match tag {
            1 => encoding::string::merge(wire_type, &mut self.client, buf, ctx),
            2 => encoding::string::merge(wire_type, &mut self.version, buf, ctx),
            3 => encoding::bool::merge(wire_type, &mut self.expires, buf, ctx),
            4 => encoding::uint32::merge(wire_type, &mut self.ttl, buf, ctx),
            5 => encoding::bytes::merge(wire_type, &mut self.data, buf, ctx),
            SUBS_TAG => encoding::hash_map::merge(
                encoding::string::merge,
                encoding::message::merge,
                &mut self.subs,
                buf,
                ctx,
            ),
            7 => encoding::uint32::merge(wire_type, &mut self.ping, buf, ctx),
            8 => encoding::bool::merge(wire_type, &mut self.pong, buf, ctx),
            9 => encoding::string::merge(wire_type, &mut self.session, buf, ctx),
            10 => encoding::string::merge(wire_type, &mut self.node, buf, ctx),
            11 => encoding::int64::merge(wire_type, &mut self.time, buf, ctx),
            _ => encoding::skip_field(wire_type, tag, buf, ctx),
        }
    }

    fn encoded_len(&self) -> usize {
        let mut len = 0;
        if !self.client.is_empty() {
            len += encoding::string::encoded_len(1, &self.client);
        }
        if !self.version.is_empty() {
            len += encoding::string::encoded_len(2, &self.version);
        }
        if self.expires {
            len += encoding::bool::encoded_len(3, &self.expires);
        }
        if self.ttl != 0 {
            len += encoding::uint32::encoded_len(4, &self.ttl);
        }
        if !self.data.is_empty() {
            len += encoding::bytes::encoded_len(5, &self.data);
        }
        len += subs_len(&self.subs);
        if self.ping != 0 {
            len += encoding::uint32::encoded_len(7, &self.ping);
        }
        if self.pong {
            len += encoding::bool::encoded_len(8, &self.pong);
        }
        if !self.session.is_empty() {
            len += encoding::string::encoded_len(9, &self.session);
        }
        if !self.node.is_empty() {
            len += encoding::string::encoded_len(10, &self.node);
        }
        if self.time != 0 {
            len += encoding::int64::encoded_len(11, &self.time);
        }
        len
    }

    fn clear(&mut self) {
        *self = Self::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message as _;

    #[test]
    fn empty_subscribe_result_values_are_written() {
        let mut result = ConnectResult {
            client: "c".into(),
            ping: 25,
            pong: true,
            ..Default::default()
        };
        result.subs.insert("#u1".into(), SubscribeResult::default());
        let bytes = result.encode_to_vec();
        // Entry: key "#u1" (0a 03 23 75 31) and an empty value (12 00).
        let entry = [0x32, 0x07, 0x0a, 0x03, b'#', b'u', b'1', 0x12, 0x00];
        assert!(
            bytes.windows(entry.len()).any(|w| w == entry),
            "{bytes:02x?}"
        );
        assert_eq!(bytes.len(), result.encoded_len());
        assert_eq!(ConnectResult::decode(&bytes[..]).expect("decodes"), result);
    }

    #[test]
    fn round_trip_with_all_fields() {
        let mut result = ConnectResult {
            client: "c".into(),
            version: "v".into(),
            expires: true,
            ttl: 10,
            data: bytes::Bytes::from_static(b"{}"),
            ping: 25,
            pong: true,
            session: "s".into(),
            node: "n".into(),
            time: 42,
            ..Default::default()
        };
        result.subs.insert(
            "a".into(),
            SubscribeResult {
                offset: 3,
                epoch: "e".into(),
                ..Default::default()
            },
        );
        let bytes = result.encode_to_vec();
        assert_eq!(bytes.len(), result.encoded_len());
        assert_eq!(ConnectResult::decode(&bytes[..]).expect("decodes"), result);
    }
}
