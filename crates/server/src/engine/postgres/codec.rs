//! Values between Gyre and the tables: payloads as JSONB (JSON text) or BYTEA, tags as a
//! JSONB object, and stream rows as publications or client infos.

use std::collections::HashMap;
use std::error::Error;

use bytes::{Bytes, BytesMut};
use gyre_protocol::{ClientInfo, Publication};
use tokio_postgres::Row;
use tokio_postgres::types::{FromSql, IsNull, ToSql, Type, to_sql_checked};

/// The version byte that starts JSONB's binary form.
const JSONB_VERSION: u8 = 1;

/// A payload parameter: JSON text for a JSONB column (the server checks it is JSON), raw
/// bytes for a BYTEA one. `None` is SQL NULL.
#[derive(Debug, Clone, Copy)]
pub(super) struct Data<'a>(pub Option<&'a [u8]>);

impl<'a> Data<'a> {
    /// NULL for empty bytes (an absent value).
    pub(super) fn non_empty(bytes: &'a [u8]) -> Self {
        Self((!bytes.is_empty()).then_some(bytes))
    }
}

impl ToSql for Data<'_> {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut BytesMut,
    ) -> Result<IsNull, Box<dyn Error + Sync + Send>> {
        let Some(bytes) = self.0 else {
            return Ok(IsNull::Yes);
        };
        if *ty == Type::JSONB {
            out.extend_from_slice(&[JSONB_VERSION]);
        }
        out.extend_from_slice(bytes);
        Ok(IsNull::No)
    }

    fn accepts(ty: &Type) -> bool {
        matches!(*ty, Type::JSONB | Type::JSON | Type::BYTEA | Type::TEXT)
    }

    to_sql_checked!();
}

/// A payload read back: the JSON text of a JSONB value, or the bytes of a BYTEA one.
#[derive(Debug, Clone, Default)]
pub(super) struct RawData(pub Bytes);

impl<'a> FromSql<'a> for RawData {
    fn from_sql(ty: &Type, raw: &'a [u8]) -> Result<Self, Box<dyn Error + Sync + Send>> {
        let bytes = match (ty, raw.split_first()) {
            (&Type::JSONB, Some((&JSONB_VERSION, text))) => text,
            (&Type::JSONB, _) => return Err("unknown JSONB version".into()),
            _ => raw,
        };
        Ok(Self(Bytes::copy_from_slice(bytes)))
    }

    fn accepts(ty: &Type) -> bool {
        matches!(*ty, Type::JSONB | Type::JSON | Type::BYTEA | Type::TEXT)
    }
}

/// Tags as a JSONB object (`None` without tags).
pub(super) fn tags_json(tags: &HashMap<String, String>) -> Option<Vec<u8>> {
    if tags.is_empty() {
        return None;
    }
    serde_json::to_vec(tags).ok()
}

/// Tags read back from a JSONB object (values that are not strings keep their JSON text, as
/// an application may write any JSON).
fn tags_from(raw: Option<RawData>) -> HashMap<String, String> {
    let Some(RawData(text)) = raw else {
        return HashMap::new();
    };
    let Ok(serde_json::Value::Object(map)) = serde_json::from_slice(&text) else {
        return HashMap::new();
    };
    map.into_iter()
        .map(|(k, v)| match v {
            serde_json::Value::String(s) => (k, s),
            other => (k, other.to_string()),
        })
        .collect()
}

/// The columns a stream row is read with, in this order (`s` is the stream table).
pub(super) const ROW_COLUMNS: &str = "s.channel_offset, s.epoch, s.data, s.tags, s.client_id, \
     s.user_id, s.conn_info, s.chan_info, (s.prev_data IS NOT NULL), \
     (EXTRACT(EPOCH FROM s.created_at) * 1000)::BIGINT";

/// The client of a row starting at column `at` (client, user, conn info, chan info), when the
/// row has one.
pub(super) fn row_info(row: &Row, at: usize) -> Result<Option<ClientInfo>, tokio_postgres::Error> {
    let Some(client) = row.try_get::<_, Option<String>>(at)? else {
        return Ok(None);
    };
    let user: Option<String> = row.try_get(at + 1)?;
    let conn_info: Option<RawData> = row.try_get(at + 2)?;
    let chan_info: Option<RawData> = row.try_get(at + 3)?;
    Ok(Some(ClientInfo {
        client,
        user: user.unwrap_or_default(),
        conn_info: conn_info.map(|d| d.0).unwrap_or_default(),
        chan_info: chan_info.map(|d| d.0).unwrap_or_default(),
    }))
}

/// A publication from [`ROW_COLUMNS`] starting at column `at`; also whether it was
/// published for delta subscribers and its epoch.
pub(super) fn row_publication(
    row: &Row,
    at: usize,
) -> Result<(Publication, bool, String), tokio_postgres::Error> {
    let offset: i64 = row.try_get(at)?;
    let epoch: String = row.try_get(at + 1)?;
    let data: Option<RawData> = row.try_get(at + 2)?;
    let tags: Option<RawData> = row.try_get(at + 3)?;
    let info = row_info(row, at + 4)?;
    let delta: bool = row.try_get(at + 8)?;
    let time: Option<i64> = row.try_get(at + 9)?;
    let publication = Publication {
        data: data.map(|d| d.0).unwrap_or_default(),
        info,
        offset: u64::try_from(offset).unwrap_or(0),
        tags: tags_from(tags),
        time: time.unwrap_or(0),
        ..Default::default()
    };
    Ok((publication, delta, epoch))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jsonb_values_carry_their_version_byte() {
        let mut out = BytesMut::new();
        Data(Some(b"{\"a\":1}"))
            .to_sql(&Type::JSONB, &mut out)
            .unwrap();
        assert_eq!(&out[..], b"\x01{\"a\":1}");
        let back = RawData::from_sql(&Type::JSONB, &out).unwrap();
        assert_eq!(&back.0[..], b"{\"a\":1}");
        let raw = RawData::from_sql(&Type::BYTEA, b"\x00\x01").unwrap();
        assert_eq!(&raw.0[..], b"\x00\x01");
        assert!(RawData::from_sql(&Type::JSONB, b"\x02{}").is_err());
        assert!(matches!(
            Data::non_empty(b"").to_sql(&Type::BYTEA, &mut out).unwrap(),
            IsNull::Yes
        ));
    }

    #[test]
    fn tags_round_trip_and_tolerate_any_json() {
        let tags = HashMap::from([("k".to_owned(), "v".to_owned())]);
        let json = tags_json(&tags).unwrap();
        assert_eq!(tags_from(Some(RawData(json.into()))), tags);
        let any = tags_from(Some(RawData(Bytes::from_static(b"{\"n\":1,\"s\":\"x\"}"))));
        assert_eq!(any["n"], "1");
        assert_eq!(any["s"], "x");
        assert!(tags_from(Some(RawData(Bytes::from_static(b"[1]")))).is_empty());
        assert!(tags_json(&HashMap::new()).is_none());
    }
}
