//! Unit tests of the parent module.

use super::*;
use tokio::io::{AsyncReadExt, DuplexStream, duplex};

const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

/// A masked client frame.
fn frame(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![(u8::from(fin) << 7) | opcode];
    match payload.len() {
        n if n < 126 => out.push(0x80 | n as u8),
        n if n <= 0xffff => {
            out.push(0x80 | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(0x80 | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    out.extend_from_slice(&MASK);
    let mut body = payload.to_vec();
    unmask(&mut body, MASK);
    out.extend_from_slice(&body);
    out
}

fn pair(max: usize) -> (WsStream<DuplexStream>, DuplexStream) {
    let (a, b) = duplex(1 << 20);
    (WsStream::new(a, max), b)
}

async fn read_some(peer: &mut DuplexStream) -> Vec<u8> {
    let mut buf = vec![0u8; 4096];
    let n = peer.read(&mut buf).await.expect("read");
    buf.truncate(n);
    buf
}

#[tokio::test]
async fn messages_split_anywhere_and_batched_arrive_whole() {
    let (mut ws, mut peer) = pair(1 << 20);
    let mut bytes = frame(true, 1, b"{\"id\":1}");
    bytes.extend(frame(true, 2, &[0u8, 1, 2, 3, 4, 5, 6]));
    bytes.extend(frame(false, 1, "h\u{e9}".as_bytes()));
    bytes.extend(frame(true, 9, b"ping"));
    bytes.extend(frame(true, 0, b"llo"));
    let big = vec![b'x'; 70_000];
    bytes.extend(frame(true, 1, &big));
    // One byte at a time for the first frames, the rest at once.
    for b in &bytes[..12] {
        peer.write_all(&[*b]).await.expect("write");
        tokio::task::yield_now().await;
    }
    peer.write_all(&bytes[12..]).await.expect("write");
    let m = ws.next().await.expect("some").expect("ok");
    assert!(m.is_text());
    assert_eq!(m.as_payload(), b"{\"id\":1}");
    let m = ws.next().await.expect("some").expect("ok");
    assert!(m.is_binary());
    assert_eq!(m.as_payload(), &[0u8, 1, 2, 3, 4, 5, 6]);
    let m = ws.next().await.expect("some").expect("ok");
    assert_eq!(m.as_payload(), "h\u{e9}llo".as_bytes());
    let m = ws.next().await.expect("some").expect("ok");
    assert_eq!(m.as_payload().len(), 70_000);
    assert!(ws.partial.capacity() == 0, "nothing kept between frames");
    // The ping was answered.
    assert_eq!(
        read_some(&mut peer).await,
        [0x8a, 4, b'p', b'i', b'n', b'g']
    );
}

#[tokio::test]
async fn server_frames_are_unmasked_with_the_right_length_encoding() {
    let (mut ws, mut peer) = pair(1 << 20);
    for len in [0usize, 125, 126, 65_535, 65_536] {
        let payload = vec![7u8; len];
        let send = ws.send(len % 2 == 0, &payload);
        let mut got = Vec::new();
        let expect_head = if len < 126 {
            2
        } else if len < 65_536 {
            4
        } else {
            10
        };
        let read = async {
            while got.len() < expect_head + len {
                got.extend(read_some(&mut peer).await);
            }
        };
        let (sent, ()) = tokio::join!(send, read);
        sent.expect("sent");
        assert_eq!(got[0], 0x80 | if len % 2 == 0 { 1 } else { 2 });
        assert_eq!(got.len(), expect_head + len);
        assert_eq!(got[1] & 0x80, 0, "server frames are not masked");
    }
}

async fn expect_close(bytes: &[u8], code: u16) {
    let (mut ws, mut peer) = pair(100);
    peer.write_all(bytes).await.expect("write");
    match ws.next().await {
        Some(Err(WsError::Protocol { code: c, .. })) => assert_eq!(c, code),
        other => panic!("expected a protocol error {code}, got {other:?}"),
    }
    assert!(ws.next().await.is_none(), "nothing read after an error");
    ws.close().await.expect("close");
    let got = read_some(&mut peer).await;
    assert_eq!(got[0], 0x88);
    assert_eq!(u16::from_be_bytes([got[2], got[3]]), code);
}

#[tokio::test]
async fn broken_frames_close_with_the_rfc_codes() {
    // Unmasked.
    expect_close(&[0x81, 0x01, b'a'], CLOSE_PROTOCOL_ERROR).await;
    // Reserved bit.
    let mut f = frame(true, 1, b"a");
    f[0] |= 0x40;
    expect_close(&f, CLOSE_PROTOCOL_ERROR).await;
    // Unknown opcode, fragmented ping, long ping.
    expect_close(&frame(true, 3, b"a"), CLOSE_PROTOCOL_ERROR).await;
    expect_close(&frame(false, 9, b"a"), CLOSE_PROTOCOL_ERROR).await;
    expect_close(&frame(true, 9, &[0; 126]), CLOSE_PROTOCOL_ERROR).await;
    // Continuation without a start, a new message inside a fragmented one.
    expect_close(&frame(true, 0, b"a"), CLOSE_PROTOCOL_ERROR).await;
    let mut f = frame(false, 1, b"a");
    f.extend(frame(true, 1, b"b"));
    expect_close(&f, CLOSE_PROTOCOL_ERROR).await;
    // Too big, at once and by fragments.
    expect_close(&frame(true, 2, &[0; 101]), CLOSE_TOO_BIG).await;
    let mut f = frame(false, 2, &[0; 60]);
    f.extend(frame(true, 0, &[0; 60]));
    expect_close(&f, CLOSE_TOO_BIG).await;
    // A 64-bit length with the top bit set.
    let mut f = vec![0x82, 0x80 | 127];
    f.extend_from_slice(&u64::MAX.to_be_bytes());
    f.extend_from_slice(&MASK);
    expect_close(&f, CLOSE_PROTOCOL_ERROR).await;
    // Text that is not UTF-8, whole and across fragments.
    expect_close(&frame(true, 1, &[0xff, 0xfe]), CLOSE_INVALID_PAYLOAD).await;
    let mut f = frame(false, 1, &[0xc3]);
    f.extend(frame(true, 0, &[0x28]));
    expect_close(&f, CLOSE_INVALID_PAYLOAD).await;
    // Bad close frames.
    expect_close(&frame(true, 8, &[3]), CLOSE_PROTOCOL_ERROR).await;
    expect_close(
        &frame(true, 8, &1005u16.to_be_bytes()),
        CLOSE_PROTOCOL_ERROR,
    )
    .await;
    let mut p = 1000u16.to_be_bytes().to_vec();
    p.push(0xff);
    expect_close(&frame(true, 8, &p), CLOSE_INVALID_PAYLOAD).await;
}

#[tokio::test]
async fn a_client_close_is_answered_with_its_code_then_the_stream_ends() {
    let (mut ws, mut peer) = pair(100);
    let mut p = 4001u16.to_be_bytes().to_vec();
    p.extend_from_slice(b"bye");
    let mut bytes = frame(true, 1, b"last");
    bytes.extend(frame(true, 8, &p));
    bytes.extend(frame(true, 1, b"after close"));
    peer.write_all(&bytes).await.expect("write");
    let m = ws.next().await.expect("some").expect("ok");
    assert_eq!(m.as_payload(), b"last");
    assert!(ws.next().await.is_none());
    assert_eq!(read_some(&mut peer).await, [0x88, 2, 0x0f, 0xa1]);
    assert!(ws.send(true, b"x").await.is_err(), "no data after a close");
}

#[tokio::test]
async fn a_server_close_carries_code_and_cut_reason() {
    let (mut ws, mut peer) = pair(100);
    let reason = "\u{e9}".repeat(100);
    ws.send_close(3501, &reason).await.expect("close");
    let got = read_some(&mut peer).await;
    assert_eq!(got[0], 0x88);
    let len = usize::from(got[1]);
    assert!(len <= MAX_CONTROL_PAYLOAD);
    assert_eq!(u16::from_be_bytes([got[2], got[3]]), 3501);
    assert!(std::str::from_utf8(&got[4..2 + len]).is_ok());
    // A second close sends nothing more.
    ws.close().await.expect("close");
    let mut rest = Vec::new();
    peer.read_to_end(&mut rest).await.expect("eof");
    assert!(rest.is_empty());
    // A code that may not appear in a close frame goes out as a normal closure.
    let (mut ws, mut peer) = pair(100);
    ws.send_close(1006, "gone").await.expect("close");
    let got = read_some(&mut peer).await;
    assert_eq!(u16::from_be_bytes([got[2], got[3]]), CLOSE_NORMAL);
}

#[tokio::test]
async fn eof_ends_the_stream() {
    let (mut ws, peer) = pair(100);
    drop(peer);
    assert!(ws.next().await.is_none());
}

const DEFLATE: Deflate = Deflate {
    level: 1,
    min_size: 10,
    max_inflated: 1000,
};

fn deflate_pair() -> (WsStream<DuplexStream>, DuplexStream) {
    let (a, b) = duplex(1 << 20);
    (WsStream::new(a, 1 << 16).with_deflate(Some(DEFLATE)), b)
}

/// A masked client frame with RSV1 set.
fn compressed_frame(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = frame(fin, opcode, payload);
    out[0] |= 0x40;
    out
}

#[tokio::test]
async fn compressed_messages_fragmented_or_not_are_inflated() {
    let (mut ws, mut peer) = deflate_pair();
    let packed = deflate::compress(1, b"hello compressed world");
    let (first, rest) = packed.split_at(packed.len() / 2);
    let mut bytes = compressed_frame(true, 1, &packed);
    bytes.extend(compressed_frame(false, 1, first));
    bytes.extend(frame(true, 0, rest));
    bytes.extend(frame(true, 1, b"plain"));
    peer.write_all(&bytes).await.expect("write");
    for expected in [
        &b"hello compressed world"[..],
        b"hello compressed world",
        b"plain",
    ] {
        let m = ws.next().await.expect("some").expect("ok");
        assert_eq!(m.as_payload(), expected);
    }
}

#[tokio::test]
async fn compressed_writes_set_rsv1_from_min_size() {
    let (mut ws, mut peer) = deflate_pair();
    ws.send(true, b"short").await.expect("send");
    assert_eq!(
        read_some(&mut peer).await,
        [&[0x81, 5][..], b"short"].concat()
    );
    let long = vec![b'a'; 500];
    ws.send(true, &long).await.expect("send");
    let got = read_some(&mut peer).await;
    assert_eq!(got[0], 0xC1, "FIN + RSV1 + text");
    let len = usize::from(got[1]);
    assert_eq!(got.len(), 2 + len);
    assert_eq!(deflate::inflate(&got[2..], 1000).expect("inflates"), long);
}

#[tokio::test]
async fn rsv1_misuse_bombs_and_garbage_close_with_the_rfc_codes() {
    // RSV1 on a continuation or a control frame, or without the extension: 1002.
    let (mut ws, mut peer) = deflate_pair();
    let mut bytes = frame(false, 1, b"a");
    bytes.extend(compressed_frame(true, 0, b"b"));
    peer.write_all(&bytes).await.expect("write");
    assert!(matches!(
        ws.next().await,
        Some(Err(WsError::Protocol { code: 1002, .. }))
    ));
    let (mut ws, mut peer) = deflate_pair();
    peer.write_all(&compressed_frame(true, 9, b""))
        .await
        .expect("write");
    assert!(matches!(
        ws.next().await,
        Some(Err(WsError::Protocol { code: 1002, .. }))
    ));
    expect_close(&compressed_frame(true, 1, b"x"), 1002).await;
    // Inflating past max_inflated: 1009; not deflate data: 1007.
    let (mut ws, mut peer) = deflate_pair();
    let bomb = deflate::compress(9, &[b' '; 5000]);
    peer.write_all(&compressed_frame(true, 1, &bomb))
        .await
        .expect("write");
    assert!(matches!(
        ws.next().await,
        Some(Err(WsError::Protocol { code: 1009, .. }))
    ));
    let (mut ws, mut peer) = deflate_pair();
    peer.write_all(&compressed_frame(true, 1, &[0xff; 20]))
        .await
        .expect("write");
    assert!(matches!(
        ws.next().await,
        Some(Err(WsError::Protocol { code: 1007, .. }))
    ));
}
