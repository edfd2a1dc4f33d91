//! Open-loop publishers: a fixed schedule of publishes, each carrying its *scheduled* send time,
//! so a slow server shows up as latency instead of silently lowering the rate.
//!
//! - HTTP (Gyre's `/api/publish`, the floor, the Socket.IO peer): pipelined POSTs on a few
//!   keep-alive connections; the response time against the schedule is the API latency.
//! - NATS: `PUB` on its TCP port: fire and forget (fan-out scenarios), with `verbose` so the
//!   server answers `+OK` to each (S4, no history), or as JetStream publishes: requests whose
//!   `PubAck` is the response (history; the stream is made by [`nats_create_stream`]).
//! - Client: Centrifugo `publish` commands on a WebSocket connection (Gyre, the floor), or
//!   Socket.IO `pub` events with an ack.

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, VecDeque};
use std::rc::Rc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use gyre_protocol::Protocol;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::net::tcp::OwnedWriteHalf;

use crate::conn::{Conn, Event, Target};
use crate::payload;
use crate::stats::{Hist, unix_us};

/// How the NATS publisher publishes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NatsMode {
    /// Core `PUB`, no responses.
    Fire,
    /// Core `PUB` on a `verbose` connection: the server answers `+OK` (or `-ERR`) to each.
    Verbose,
    /// JetStream: `PUB` with a reply subject; the stream's `PubAck` is the response.
    JetStream,
}

/// Reads NATS protocol lines until `PONG` (the `+OK`s and `PING`s before it are consumed).
async fn nats_until_pong<R: tokio::io::AsyncBufRead + Unpin>(
    r: &mut R,
    w: &mut OwnedWriteHalf,
) -> Result<()> {
    let mut line = String::new();
    loop {
        line.clear();
        if r.read_line(&mut line).await? == 0 {
            bail!("nats closed the connection");
        }
        if line.starts_with("PONG") {
            return Ok(());
        }
        if line.starts_with("PING") {
            w.write_all(b"PONG\r\n").await?;
        } else if line.starts_with("-ERR") {
            bail!("nats: {}", line.trim_end());
        }
    }
}

/// Reads the payload of a `MSG`/`HMSG` whose control line is `line`: (subject, payload).
async fn nats_payload<R: tokio::io::AsyncBufRead + Unpin>(
    r: &mut R,
    line: &str,
) -> Result<(String, Vec<u8>)> {
    let tokens: Vec<&str> = line.split_whitespace().collect();
    let len: usize = tokens
        .last()
        .and_then(|n| n.parse().ok())
        .context("bad MSG line")?;
    let mut body = vec![0u8; len + 2];
    r.read_exact(&mut body).await?;
    body.truncate(len);
    Ok((tokens.get(1).copied().unwrap_or("").to_owned(), body))
}

/// Creates the JetStream stream that holds `channel` (memory storage, at most 100 messages
/// per subject, 300 s maximum age: Gyre's history settings in the benchmarks), over the NATS
/// protocol on `addr` (host:port). A stream of that name that already exists is fine.
pub(crate) async fn nats_create_stream(addr: &str, channel: &str) -> Result<()> {
    let tcp = TcpStream::connect(addr).await?;
    let (r, mut w) = tcp.into_split();
    let mut r = BufReader::new(r);
    let mut line = String::new();
    r.read_line(&mut line).await?;
    let name = crate::conn::nats_stream_name(channel);
    let inbox = crate::conn::nats_inbox();
    let config = serde_json::json!({
        "name": name, "subjects": [channel], "storage": "memory", "retention": "limits",
        "max_msgs_per_subject": 100, "max_age": 300_000_000_000u64, "num_replicas": 1,
        "discard": "old",
    })
    .to_string();
    w.write_all(
        format!(
            "CONNECT {{\"verbose\":false,\"pedantic\":false,\"headers\":true,\"no_responders\":true}}\r\nSUB {inbox} 1\r\nPUB $JS.API.STREAM.CREATE.{name} {inbox} {}\r\n{config}\r\n",
            config.len()
        )
        .as_bytes(),
    )
    .await?;
    let answer = async {
        loop {
            line.clear();
            if r.read_line(&mut line).await? == 0 {
                bail!("nats closed the connection");
            }
            if line.starts_with("PING") {
                w.write_all(b"PONG\r\n").await?;
            } else if line.starts_with("-ERR") {
                bail!("nats: {}", line.trim_end());
            } else if line.starts_with("HMSG ") {
                bail!("no responder for the JetStream API: is JetStream enabled?");
            } else if line.starts_with("MSG ") {
                let (_, body) = nats_payload(&mut r, &line).await?;
                return Ok(serde_json::from_slice::<serde_json::Value>(&body)?);
            }
        }
    };
    let v = tokio::time::timeout(Duration::from_secs(10), answer)
        .await
        .context("no answer to the stream create request")??;
    match v.get("error") {
        None => Ok(()),
        Some(e) if e["err_code"] == 10058 => {
            eprintln!("  nats: stream {name} already exists ({e}), using it");
            Ok(())
        }
        Some(e) => bail!("nats stream create: {e}"),
    }
}

/// Responses to publishes.
#[derive(Debug, Default)]
pub(crate) struct PubStats {
    /// Time from the scheduled send to the response, µs.
    pub hist: Hist,
    /// Successful responses.
    pub ok: u64,
    /// Failed responses.
    pub errors: u64,
}

impl PubStats {
    /// Counts one response to a publish scheduled at `sched` (unix µs).
    pub(crate) fn record(&mut self, sched: u64, ok: bool) {
        self.hist.record(unix_us().saturating_sub(sched));
        if ok {
            self.ok += 1;
        } else {
            self.errors += 1;
        }
    }
}

/// Where publishes go.
pub(crate) enum Publisher {
    /// Pipelined HTTP POSTs, round-robin over connections.
    Http {
        /// Write halves and the scheduled times of their requests in flight.
        conns: Vec<(OwnedWriteHalf, Rc<RefCell<VecDeque<u64>>>)>,
        /// Request path.
        path: String,
        /// API key header value.
        key: String,
        /// Shared response statistics.
        stats: Rc<RefCell<PubStats>>,
    },
    /// NATS text protocol on TCP.
    Nats {
        /// Write half.
        w: OwnedWriteHalf,
        /// Pongs owed to the server.
        pongs: Rc<Cell<u32>>,
        /// How publishes are made.
        mode: NatsMode,
        /// Verbose: scheduled times of the `PUB`s not yet answered, in order.
        fifo: Rc<RefCell<VecDeque<u64>>>,
        /// JetStream: scheduled times of the publishes not yet acknowledged, by request number.
        requests: Rc<RefCell<HashMap<u64, u64>>>,
        /// JetStream: prefix of the reply subjects (the request number follows).
        inbox: String,
        /// JetStream: the next request number.
        next: u64,
        /// Response statistics.
        stats: Rc<RefCell<PubStats>>,
    },
    /// Client publishes: Centrifugo `publish` commands, or Socket.IO `pub` events with an ack.
    Client {
        /// The connection.
        conn: Box<Conn>,
        /// Scheduled time of each command in flight, by id.
        inflight: HashMap<u32, u64>,
        /// Response statistics.
        stats: Rc<RefCell<PubStats>>,
    },
}

async fn read_http_response<R: tokio::io::AsyncBufRead + Unpin>(r: &mut R) -> Result<u16> {
    let mut line = String::new();
    if r.read_line(&mut line).await? == 0 {
        bail!("closed");
    }
    let status: u16 = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .context("bad status line")?;
    let mut len = 0usize;
    let mut chunked = false;
    loop {
        line.clear();
        if r.read_line(&mut line).await? == 0 {
            bail!("closed");
        }
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        let lower = l.to_ascii_lowercase();
        if let Some(v) = lower.strip_prefix("content-length:") {
            len = v.trim().parse().unwrap_or(0);
        } else if lower.starts_with("transfer-encoding:") && lower.contains("chunked") {
            chunked = true;
        }
    }
    if chunked {
        loop {
            line.clear();
            r.read_line(&mut line).await?;
            let n = usize::from_str_radix(line.trim(), 16).unwrap_or(0);
            let mut body = vec![0u8; n + 2];
            r.read_exact(&mut body).await?;
            if n == 0 {
                break;
            }
        }
    } else {
        let mut body = vec![0u8; len];
        r.read_exact(&mut body).await?;
    }
    Ok(status)
}

/// Records the client publisher's responses among `events` (Centrifugo replies by id,
/// Socket.IO acks by id).
fn on_responses(
    events: &mut Vec<Event>,
    inflight: &mut HashMap<u32, u64>,
    stats: &Rc<RefCell<PubStats>>,
) {
    for ev in events.drain(..) {
        let (id, ok) = match ev {
            Event::Reply(reply) => (reply.id, reply.error.is_none()),
            Event::Ack(id) => (id, true),
            _ => continue,
        };
        if let Some(sched) = inflight.remove(&id) {
            stats.borrow_mut().record(sched, ok);
        }
    }
}

impl Publisher {
    /// `n` pipelined HTTP connections to `url` (http://host:port/path).
    pub(crate) async fn http(url: &str, key: &str, n: usize) -> Result<Self> {
        let uri: http::Uri = url.parse().context("bad publish url")?;
        let host = uri.host().context("no host")?.to_owned();
        let port = uri.port_u16().unwrap_or(80);
        let stats = Rc::new(RefCell::new(PubStats::default()));
        let mut conns = Vec::new();
        for _ in 0..n.max(1) {
            let tcp = TcpStream::connect((host.as_str(), port)).await?;
            tcp.set_nodelay(true)?;
            let (r, w) = tcp.into_split();
            let inflight: Rc<RefCell<VecDeque<u64>>> = Rc::default();
            let (q, s) = (inflight.clone(), stats.clone());
            tokio::task::spawn_local(async move {
                let mut r = BufReader::new(r);
                while let Ok(status) = read_http_response(&mut r).await {
                    let sched = q.borrow_mut().pop_front().unwrap_or(0);
                    s.borrow_mut().record(sched, status == 200);
                }
            });
            conns.push((w, inflight));
        }
        Ok(Self::Http {
            conns,
            path: uri.path().to_owned(),
            key: key.to_owned(),
            stats,
        })
    }

    /// A NATS publisher on its TCP port.
    pub(crate) async fn nats(addr: &str, mode: NatsMode) -> Result<Self> {
        let tcp = TcpStream::connect(addr).await?;
        tcp.set_nodelay(true)?;
        let (r, mut w) = tcp.into_split();
        let mut r = BufReader::new(r);
        let mut info = String::new();
        r.read_line(&mut info).await?;
        let inbox = crate::conn::nats_inbox();
        let hello = match mode {
            NatsMode::Fire => {
                "CONNECT {\"verbose\":false,\"pedantic\":false}\r\nPING\r\n".to_owned()
            }
            NatsMode::Verbose => {
                "CONNECT {\"verbose\":true,\"pedantic\":false}\r\nPING\r\n".to_owned()
            }
            NatsMode::JetStream => format!(
                "CONNECT {{\"verbose\":false,\"pedantic\":false,\"headers\":true,\"no_responders\":true}}\r\nSUB {inbox}.* 1\r\nPING\r\n"
            ),
        };
        w.write_all(hello.as_bytes()).await?;
        nats_until_pong(&mut r, &mut w).await?;
        let pongs = Rc::new(Cell::new(0u32));
        let fifo: Rc<RefCell<VecDeque<u64>>> = Rc::default();
        let requests: Rc<RefCell<HashMap<u64, u64>>> = Rc::default();
        let stats: Rc<RefCell<PubStats>> = Rc::default();
        let (p, q, m, st) = (pongs.clone(), fifo.clone(), requests.clone(), stats.clone());
        tokio::task::spawn_local(async move {
            let record = |sched: Option<u64>, ok: bool| {
                if let Some(sched) = sched {
                    st.borrow_mut().record(sched, ok);
                }
            };
            let mut line = String::new();
            let mut logged = 0;
            loop {
                line.clear();
                match r.read_line(&mut line).await {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
                if line.starts_with("PING") {
                    p.set(p.get() + 1);
                } else if line.starts_with("+OK") {
                    record(q.borrow_mut().pop_front(), true);
                } else if line.starts_with("-ERR") {
                    if logged < 3 {
                        logged += 1;
                        eprintln!("  nats publisher: {}", line.trim_end());
                    }
                    record(q.borrow_mut().pop_front(), false);
                } else if line.starts_with("MSG ") || line.starts_with("HMSG ") {
                    // A PubAck, or a no-responders status (HMSG).
                    let Ok((subject, body)) = nats_payload(&mut r, &line).await else {
                        break;
                    };
                    let ok =
                        line.starts_with("MSG ") && !body.windows(7).any(|w| w == b"\"error\"");
                    if !ok && logged < 3 {
                        logged += 1;
                        eprintln!("  nats publisher: {}", String::from_utf8_lossy(&body));
                    }
                    let n = subject.rsplit('.').next().and_then(|n| n.parse().ok());
                    record(n.and_then(|n| m.borrow_mut().remove(&n)), ok);
                }
            }
        });
        Ok(Self::Nats {
            w,
            pongs,
            mode,
            fifo,
            requests,
            inbox,
            next: 0,
            stats,
        })
    }

    /// A client publisher: Centrifugo `publish` commands (Gyre, the floor) or Socket.IO `pub`
    /// events with an ack.
    pub(crate) async fn client(target: Target, url: &str, protocol: Protocol) -> Result<Self> {
        let (conn, _) = Conn::connect(target, url, protocol, &[]).await?;
        Ok(Self::Client {
            conn: Box::new(conn),
            inflight: HashMap::new(),
            stats: Rc::default(),
        })
    }

    /// Response statistics (none for fire-and-forget NATS).
    pub(crate) fn stats(&self) -> Option<Rc<RefCell<PubStats>>> {
        match self {
            Self::Http { stats, .. } | Self::Client { stats, .. } => Some(stats.clone()),
            Self::Nats { mode, stats, .. } => (*mode != NatsMode::Fire).then(|| stats.clone()),
        }
    }

    async fn send(&mut self, batch: &[(String, String, u64)], rr: &mut usize) -> Result<()> {
        match self {
            Self::Http {
                conns, path, key, ..
            } => {
                let n = conns.len();
                let mut bufs: Vec<Vec<u8>> = vec![Vec::new(); n];
                for (channel, data, sched) in batch {
                    let i = *rr % n;
                    *rr += 1;
                    let body = format!(r#"{{"channel":"{channel}","data":{data}}}"#);
                    let buf = &mut bufs[i];
                    buf.extend_from_slice(
                        format!(
                            "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nX-API-Key: {key}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
                            body.len()
                        )
                        .as_bytes(),
                    );
                    buf.extend_from_slice(body.as_bytes());
                    conns[i].1.borrow_mut().push_back(*sched);
                }
                for (i, buf) in bufs.iter().enumerate() {
                    if !buf.is_empty() {
                        conns[i].0.write_all(buf).await?;
                    }
                }
            }
            Self::Nats {
                w,
                pongs,
                mode,
                fifo,
                requests,
                inbox,
                next,
                ..
            } => {
                let mut buf = Vec::new();
                for _ in 0..pongs.replace(0) {
                    buf.extend_from_slice(b"PONG\r\n");
                }
                for (channel, data, sched) in batch {
                    let line = match mode {
                        NatsMode::JetStream => {
                            requests.borrow_mut().insert(*next, *sched);
                            *next += 1;
                            format!("PUB {channel} {inbox}.{} {}\r\n", *next - 1, data.len())
                        }
                        NatsMode::Verbose => {
                            fifo.borrow_mut().push_back(*sched);
                            format!("PUB {channel} {}\r\n", data.len())
                        }
                        NatsMode::Fire => format!("PUB {channel} {}\r\n", data.len()),
                    };
                    buf.extend_from_slice(line.as_bytes());
                    buf.extend_from_slice(data.as_bytes());
                    buf.extend_from_slice(b"\r\n");
                }
                w.write_all(&buf).await?;
            }
            Self::Client { conn, inflight, .. } if conn.target() == Target::Socketio => {
                let items: Vec<(&str, &str)> = batch
                    .iter()
                    .map(|(c, d, _)| (c.as_str(), d.as_str()))
                    .collect();
                if !items.is_empty() {
                    let ids = conn.emit_publishes(&items).await?;
                    for (id, (_, _, sched)) in ids.into_iter().zip(batch) {
                        inflight.insert(id, *sched);
                    }
                }
            }
            Self::Client { conn, inflight, .. } => {
                let mut commands = Vec::new();
                for (channel, data, sched) in batch {
                    let mut c = conn.publish_commands(channel, std::slice::from_ref(data));
                    inflight.insert(c[0].id, *sched);
                    commands.append(&mut c);
                }
                if !commands.is_empty() {
                    conn.send_commands(&commands).await?;
                }
            }
        }
        Ok(())
    }

    /// Publishes `rate`/s for `secs` to `channels` (round-robin) with step index `step`;
    /// `seq` is the running sequence number. Returns how many were published.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn run(
        &mut self,
        rate: f64,
        secs: f64,
        channels: &[String],
        step: u32,
        size: usize,
        seq: &mut u64,
        on_tick: &mut dyn FnMut(u64),
    ) -> Result<u64> {
        let total = (rate * secs).round() as u64;
        let start = Instant::now();
        let wall0 = unix_us();
        let mut sent = 0u64;
        let mut rr = 0usize;
        let mut ticker = tokio::time::interval(Duration::from_millis(1));
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let mut last_report = Instant::now();
        let deadline = start + Duration::from_secs_f64(secs + 30.0);
        let mut events = Vec::new();
        while sent < total && Instant::now() < deadline {
            let tick = async {
                ticker.tick().await;
            };
            if let Self::Client {
                conn,
                inflight,
                stats,
            } = self
            {
                tokio::select! {
                    () = tick => {}
                    r = conn.recv(&mut events) => {
                        if !r? { bail!("publisher connection closed"); }
                        on_responses(&mut events, inflight, stats);
                        continue;
                    }
                }
            } else {
                tick.await;
            }
            let due = ((start.elapsed().as_secs_f64() * rate) as u64 + 1).min(total);
            let mut batch = Vec::new();
            while sent < due {
                let sched = wall0 + (sent as f64 * 1e6 / rate) as u64;
                let channel = &channels[(*seq as usize) % channels.len()];
                batch.push((
                    channel.clone(),
                    payload::build(sched, *seq, step, size),
                    sched,
                ));
                *seq += 1;
                sent += 1;
            }
            self.send(&batch, &mut rr).await?;
            if last_report.elapsed() >= Duration::from_secs(1) {
                last_report = Instant::now();
                on_tick(sent);
            }
        }
        Ok(sent)
    }

    /// Waits up to `max` for replies still in flight (client publisher only reads while
    /// publishing, so this drains its replies).
    pub(crate) async fn drain(&mut self, max: Duration) {
        if let Self::Client {
            conn,
            inflight,
            stats,
        } = self
        {
            let end = Instant::now() + max;
            let mut events = Vec::new();
            while !inflight.is_empty() {
                let Ok(Ok(true)) =
                    tokio::time::timeout_at(end.into(), conn.recv(&mut events)).await
                else {
                    break;
                };
                on_responses(&mut events, inflight, stats);
            }
        } else if let Self::Nats { fifo, requests, .. } = self {
            let end = Instant::now() + max;
            while (!fifo.borrow().is_empty() || !requests.borrow().is_empty())
                && Instant::now() < end
            {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        } else {
            tokio::time::sleep(max.min(Duration::from_millis(1))).await;
        }
    }
}
