//! The benchmark payload: a JSON object with the scheduled send time, a sequence number and the
//! step it belongs to, padded to a fixed size. It is valid JSON so every server carries it as is.

/// Builds `{"t":<unix µs>,"s":<seq>,"k":<step>,"p":"xxx…"}` padded to about `size` bytes.
pub(crate) fn build(t_us: u64, seq: u64, step: u32, size: usize) -> String {
    let mut s = format!(r#"{{"t":{t_us},"s":{seq},"k":{step},"p":""#);
    let pad = size.saturating_sub(s.len() + 2);
    s.extend(std::iter::repeat_n('x', pad));
    s.push_str("\"}");
    s
}

/// The payload fields found in `bytes` (a payload, or a frame that embeds one verbatim).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Fields {
    /// Scheduled send time, unix µs.
    pub t: u64,
    /// Sequence number.
    pub seq: u64,
    /// Step index.
    pub step: u32,
}

fn number_after(bytes: &[u8], key: &[u8]) -> Option<(u64, usize)> {
    let at = bytes.windows(key.len()).position(|w| w == key)? + key.len();
    let mut n: u64 = 0;
    let mut i = at;
    while i < bytes.len() && bytes[i].is_ascii_digit() {
        n = n * 10 + u64::from(bytes[i] - b'0');
        i += 1;
    }
    (i > at).then_some((n, i))
}

/// Finds the payload fields in `bytes` (a payload, or a frame that embeds one). Keys are
/// looked up independently: a server may re-order the object's keys.
pub(crate) fn parse(bytes: &[u8]) -> Option<Fields> {
    let (t, _) = number_after(bytes, br#""t":"#)?;
    let (seq, _) = number_after(bytes, br#""s":"#)?;
    let (step, _) = number_after(bytes, br#""k":"#)?;
    Some(Fields {
        t,
        seq,
        step: step as u32,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_size() {
        let p = build(1_700_000_000_000_000, 42, 3, 128);
        assert_eq!(p.len(), 128);
        assert!(serde_json::from_str::<serde_json::Value>(&p).is_ok());
        let f = parse(p.as_bytes()).expect("parses");
        assert_eq!(
            f,
            Fields {
                t: 1_700_000_000_000_000,
                seq: 42,
                step: 3
            }
        );
        let reordered = br#"42["m",{"k":7,"p":"x","s":6,"t":5}]"#;
        assert_eq!(
            parse(reordered),
            Some(Fields {
                t: 5,
                seq: 6,
                step: 7
            })
        );
    }
}
