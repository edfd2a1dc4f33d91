//! Prometheus metrics (`prometheus.enabled`): after a real client (centrifuge-js) connects,
//! subscribes and receives an API publication, `/metrics` shows it with Centrifugo's names.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};

use serde_json::json;
use support::{Gyre, config};

fn get(addr: &str, path: &str) -> String {
    let mut stream = TcpStream::connect(addr).expect("connect");
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n\r\n"
    )
    .expect("write");
    let mut text = String::new();
    stream.read_to_string(&mut text).expect("read");
    text
}

/// The value of the sample line that starts with `name` (labels included) and `{labels}`.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[test]
fn metrics_count_a_real_clients_connection_subscription_and_deliveries() {
    let gyre = Gyre::start(&config(json!({
        "client": {"insecure": true},
        "prometheus": {"enabled": true},
    })));
    let script = r#"
import { Centrifuge } from 'centrifuge';
import WebSocket from 'ws';
const c = new Centrifuge(process.env.URL, { websocket: WebSocket });
setTimeout(() => { console.log('timeout'); process.exit(2); }, 10000);
const sub = c.newSubscription('news');
sub.on('publication', () => console.log('got'));
sub.on('subscribed', async () => {
  await fetch(process.env.API + '/publish', { method: 'POST', headers: { 'X-API-Key': process.env.KEY },
    body: JSON.stringify({ channel: 'news', data: { n: 1 } }) });
});
sub.subscribe();
c.connect();
process.stdin.on('end', () => { c.disconnect(); process.exit(0); });
process.stdin.resume();
"#;
    let mut node = Command::new("node")
        .args(["--input-type=module", "-e", script])
        .current_dir(support::node_deps())
        .env("URL", gyre.ws_url())
        .env("API", gyre.api_base())
        .env("KEY", support::API_KEY)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("node");
    let stdout = node.stdout.take().expect("stdout");
    let first = BufReader::new(stdout).lines().next().and_then(Result::ok);
    assert_eq!(
        first.as_deref(),
        Some("got"),
        "the client received the publication"
    );

    let text = get(&gyre.addr, "/metrics");
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert_eq!(
        sample(&text, "centrifugo_node_num_clients"),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, "centrifugo_node_num_subscriptions"),
        Some(1.0)
    );
    assert_eq!(sample(&text, "centrifugo_node_num_channels"), Some(1.0));
    assert_eq!(sample(&text, "centrifugo_node_num_nodes"), Some(1.0));
    assert_eq!(
        sample(
            &text,
            "centrifugo_client_connections_accepted{accept_protocol=\"h1\",client_name=\"\",client_version=\"\",transport=\"websocket\"}"
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &text,
            "centrifugo_node_messages_sent_count{channel_namespace=\"\",type=\"publication\"}"
        ),
        Some(1.0)
    );
    // Connect reply, subscribe reply and the publication at least.
    let sent = "centrifugo_transport_messages_sent{channel_namespace=\"\",frame_type=\"\",transport=\"websocket\"}";
    assert!(sample(&text, sent).is_some_and(|n| n >= 3.0), "{text}");
    let received = "centrifugo_transport_messages_received{channel_namespace=\"\",frame_type=\"\",transport=\"websocket\"}";
    assert!(sample(&text, received).is_some_and(|n| n >= 2.0), "{text}");
    assert_eq!(
        sample(
            &text,
            "centrifugo_client_command_duration_seconds_histogram_count{channel_namespace=\"\",method=\"subscribe\"}"
        ),
        Some(1.0)
    );
    assert!(text.contains("centrifugo_node_build{version=\""));

    drop(node.stdin.take());
    let _ = node.wait();
}

#[test]
fn metrics_are_not_served_unless_enabled() {
    let gyre = Gyre::start(&config(json!({})));
    assert!(get(&gyre.addr, "/metrics").starts_with("HTTP/1.1 404"));
}
