//! Codec micro-benchmarks: what the server pays per message before any I/O.
//!
//! - `encode_push/{json,protobuf}`: one publication push (128-byte JSON payload), encoded once
//!   per broadcast.
//! - `decode_push/{json,protobuf}`: the same on the client side (the load generator's cost).
//! - `decode_commands/{json,protobuf}`: a connect + subscribe frame as a client sends it.
//! - `encode_reply/{json,protobuf}`: a subscribe reply with 10 recovered publications.
//! - `join_16/{json,protobuf}`: joining 16 queued units into one frame (the writer's batching).

use std::hint::black_box;

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use gyre_protocol::codec::{decode_all, encode, join_units};
use gyre_protocol::{
    ClientInfo, Command, ConnectRequest, Protocol, Publication, Push, Reply, SubscribeRequest,
    SubscribeResult,
};

fn payload() -> Bytes {
    let mut s = String::from(r#"{"t":1763840000000000,"s":123456,"k":3,"p":""#);
    while s.len() < 126 {
        s.push('x');
    }
    s.push_str("\"}");
    Bytes::from(s)
}

fn push() -> Reply {
    Reply {
        push: Some(Push {
            channel: "news".into(),
            publication: Some(Publication {
                data: payload(),
                offset: 42,
                info: Some(ClientInfo {
                    user: "u1".into(),
                    client: "6d5e1b8c-3a0f-4b8e-9e5c-1f2a3b4c5d6e".into(),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn commands() -> Vec<Command> {
    vec![
        Command {
            id: 1,
            connect: Some(ConnectRequest {
                name: "js".into(),
                version: "5.0.0".into(),
                ..Default::default()
            }),
            ..Default::default()
        },
        Command {
            id: 2,
            subscribe: Some(SubscribeRequest {
                channel: "news".into(),
                recover: true,
                epoch: "abcd".into(),
                offset: 41,
                ..Default::default()
            }),
            ..Default::default()
        },
    ]
}

fn name(p: Protocol) -> &'static str {
    p.name()
}

fn bench(c: &mut Criterion) {
    let reply = push();
    let mut g = c.benchmark_group("encode_push");
    g.throughput(Throughput::Elements(1));
    for p in Protocol::ALL {
        g.bench_function(name(p), |b| {
            b.iter(|| encode(p, black_box(&reply)).expect("encodes"))
        });
    }
    g.finish();

    let mut g = c.benchmark_group("decode_push");
    g.throughput(Throughput::Elements(1));
    for p in Protocol::ALL {
        let frame = encode(p, &reply).expect("encodes");
        g.bench_function(name(p), |b| {
            b.iter(|| decode_all::<Reply>(p, black_box(&frame)).expect("decodes"))
        });
    }
    g.finish();

    let cmds = commands();
    let mut g = c.benchmark_group("decode_commands");
    for p in Protocol::ALL {
        let units: Vec<Bytes> = cmds
            .iter()
            .map(|c| encode(p, c).expect("encodes"))
            .collect();
        let frame = join_units(p, &units);
        g.bench_function(name(p), |b| {
            b.iter(|| decode_all::<Command>(p, black_box(&frame)).expect("decodes"))
        });
    }
    g.finish();

    let sub_reply = Reply {
        id: 2,
        subscribe: Some(SubscribeResult {
            recoverable: true,
            recovered: true,
            epoch: "abcd".into(),
            offset: 52,
            publications: (43..53)
                .map(|o| Publication {
                    data: payload(),
                    offset: o,
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }),
        ..Default::default()
    };
    let mut g = c.benchmark_group("encode_reply_10_recovered");
    for p in Protocol::ALL {
        g.bench_function(name(p), |b| {
            b.iter(|| encode(p, black_box(&sub_reply)).expect("encodes"))
        });
    }
    g.finish();

    let mut g = c.benchmark_group("join_16");
    g.throughput(Throughput::Elements(16));
    for p in Protocol::ALL {
        let unit = encode(p, &reply).expect("encodes");
        let units: Vec<Bytes> = (0..16).map(|_| unit.clone()).collect();
        g.bench_function(name(p), |b| b.iter(|| join_units(p, black_box(&units))));
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
