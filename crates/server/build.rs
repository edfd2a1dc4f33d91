//! Compiles the GRPC protocols with the pure-Rust `protox` compiler, so no `protoc` is needed:
//!
//! - `proto/api.proto` (the GRPC server API): the server side (with serde derives, to hand
//!   requests to the same executor as the HTTP API) into `$OUT_DIR/server`, a plain client for
//!   the tests into `$OUT_DIR/client`, and the encoded descriptor set for GRPC reflection;
//! - `proto/proxy.proto` (GRPC proxies): the client the server calls backends with into
//!   `$OUT_DIR/proxy_client`, and a server side for the tests' backends into
//!   `$OUT_DIR/proxy_server`; `bytes` fields are `bytes::Bytes`.

use std::path::PathBuf;

use prost::Message as _;

/// `bytes` fields: JSON text in the executor's requests and results.
const BYTES_FIELDS: &[&str] = &[
    "PublishRequest.data",
    "BroadcastRequest.data",
    "SubscribeRequest.info",
    "SubscribeRequest.data",
    "RefreshRequest.info",
    "ClientInfo.conn_info",
    "ClientInfo.chan_info",
    "Publication.data",
    "MapPublishRequest.data",
    "MapPublishRequest.stream_data",
    "MapEntry.data",
    "SharedPollPublishRequest.data",
];

const PACKAGE: &str = ".centrifugal.centrifugo.api";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto = "proto/api.proto";
    println!("cargo:rerun-if-changed={proto}");
    let fds = protox::compile([proto], ["proto"])?;
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(out.join("api_descriptor.bin"), fds.encode_to_vec())?;

    let server_dir = out.join("server");
    std::fs::create_dir_all(&server_dir)?;
    let mut server = tonic_prost_build::configure()
        .build_client(false)
        .build_server(true)
        .out_dir(&server_dir)
        .type_attribute(
            PACKAGE,
            "#[derive(serde::Serialize, serde::Deserialize)] #[serde(default)]",
        );
    for field in BYTES_FIELDS {
        server = server.field_attribute(
            format!("{PACKAGE}.{field}"),
            "#[serde(with = \"crate::api::grpc::json_bytes\", skip_serializing_if = \"Vec::is_empty\")]",
        );
    }
    server.compile_fds(fds.clone())?;

    let client_dir = out.join("client");
    std::fs::create_dir_all(&client_dir)?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(false)
        .out_dir(&client_dir)
        .compile_fds(fds)?;
    proxy(&out)
}

/// The GRPC proxy protocol: the client for the server, the server side for the tests.
fn proxy(out: &std::path::Path) -> Result<(), Box<dyn std::error::Error>> {
    let proto = "proto/proxy.proto";
    println!("cargo:rerun-if-changed={proto}");
    let fds = protox::compile([proto], ["proto"])?;
    for (dir, client) in [("proxy_client", true), ("proxy_server", false)] {
        let dir = out.join(dir);
        std::fs::create_dir_all(&dir)?;
        tonic_prost_build::configure()
            .build_client(client)
            .build_server(!client)
            // The transport helper `connect(dst)` would clash with the `Connect` method.
            .build_transport(false)
            .bytes(".")
            .out_dir(&dir)
            .compile_fds(fds.clone())?;
    }
    Ok(())
}
