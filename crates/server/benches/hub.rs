//! Hub micro-benchmarks: the server's per-delivery work before any I/O.
//!
//! - `broadcast/{json,protobuf}/{n}`: one publication (128-byte payload) broadcast to `n`
//!   subscribers of a channel: the encode once per shape, the continuity check and the push
//!   onto every session's queue. Only the broadcast is timed; the queues are emptied between
//!   iterations outside the measurement.
//! - `session_queue/push_take`: one message pushed onto a session's queue and taken off by
//!   the session (what each delivery pays for the hand-over between tasks);
//!   `session_queue/tokio_unbounded_mpsc` is the same through the tokio channel it replaced.
//!
//! Run with `cargo bench -p gyre-server --bench hub`.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use gyre_protocol::{Protocol, Publication};
use gyre_server::hub::{Hub, Subscriber};
use gyre_server::outbound::{Outbound, OutboundReceiver, SessionHandle};

fn publication(offset: u64) -> Publication {
    let mut data = String::from(r#"{"t":1763840000000000,"s":123456,"p":""#);
    while data.len() < 126 {
        data.push('x');
    }
    data.push_str("\"}");
    Publication {
        data: Bytes::from(data),
        offset,
        ..Default::default()
    }
}

/// A hub with `n` live subscribers on `bench`, and their queues.
fn hub_with(n: usize, protocol: Protocol) -> (Hub, Vec<OutboundReceiver>) {
    let hub = Hub::default();
    let mut receivers = Vec::with_capacity(n);
    for i in 0..n {
        let (handle, rx) = SessionHandle::new(Arc::from(format!("c{i}")), protocol, usize::MAX / 2);
        let mut subscriber = Subscriber::buffering(handle, false, false);
        subscriber.buffer = None;
        hub.subscribe("bench", subscriber);
        receivers.push(rx);
    }
    (hub, receivers)
}

fn broadcast(c: &mut Criterion) {
    let mut group = c.benchmark_group("broadcast");
    for (name, protocol) in [("json", Protocol::Json), ("protobuf", Protocol::Protobuf)] {
        for n in [1_000usize, 10_000] {
            let (hub, mut receivers) = hub_with(n, protocol);
            group.throughput(Throughput::Elements(n as u64));
            group.bench_function(format!("{name}/{n}"), |b| {
                b.iter_custom(|iters| {
                    let mut timed = Duration::ZERO;
                    for i in 0..iters {
                        let publication = publication(i + 1);
                        let start = Instant::now();
                        hub.broadcast_publication("bench", black_box(&publication), false, "e1");
                        timed += start.elapsed();
                        for rx in &mut receivers {
                            while rx.try_recv().is_some() {}
                        }
                    }
                    timed
                });
            });
        }
    }
    group.finish();
}

fn session_queue(c: &mut Criterion) {
    let (handle, mut rx) = SessionHandle::new(Arc::from("c"), Protocol::Json, usize::MAX / 2);
    let unit = Bytes::from_static(b"{\"push\":{\"channel\":\"bench\",\"pub\":{\"data\":{}}}}");
    let mut group = c.benchmark_group("session_queue");
    group.throughput(Throughput::Elements(1));
    group.bench_function("push_take", |b| {
        b.iter(|| {
            handle.send_unit(unit.clone());
            black_box(rx.try_recv())
        });
    });
    // The channel the queue replaced, for comparison (same message, same hand-over).
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Outbound>();
    group.bench_function("tokio_unbounded_mpsc", |b| {
        b.iter(|| {
            let _ = tx.send(Outbound::Unit(unit.clone()));
            black_box(rx.try_recv().ok())
        });
    });
    group.finish();
}

criterion_group!(benches, broadcast, session_queue);
criterion_main!(benches);
