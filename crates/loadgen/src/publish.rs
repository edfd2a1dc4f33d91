//! Open-loop publishers: a fixed schedule of publishes, each carrying its *scheduled* send time,
//! so a slow server shows up as latency instead of silently lowering the rate.
//!
//! - HTTP (Gyre's `/api/publish`, the floor, the Socket.IO peer): pipelined POSTs on a few
//!   keep-alive connections; the response time against the schedule is the API latency.
//! - NATS: `PUB` on its TCP port.
//! - Centrifugo client: `publish` commands on a WebSocket connection (Gyre only).

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

/// Responses to publishes.
#[derive(Debug, Default)]
pub struct PubStats {
    /// Time from the scheduled send to the response, µs.
    pub hist: Hist,
    /// Successful responses.
    pub ok: u64,
    /// Failed responses.
    pub errors: u64,
}

/// Where publishes go.
pub enum Publisher {
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
    },
    /// Centrifugo client `publish` commands.
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

impl Publisher {
    /// `n` pipelined HTTP connections to `url` (http://host:port/path).
    pub async fn http(url: &str, key: &str, n: usize) -> Result<Self> {
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
                    let mut s = s.borrow_mut();
                    s.hist.record(unix_us().saturating_sub(sched));
                    if status == 200 {
                        s.ok += 1;
                    } else {
                        s.errors += 1;
                    }
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
    pub async fn nats(addr: &str) -> Result<Self> {
        let tcp = TcpStream::connect(addr).await?;
        tcp.set_nodelay(true)?;
        let (r, mut w) = tcp.into_split();
        let mut r = BufReader::new(r);
        let mut info = String::new();
        r.read_line(&mut info).await?;
        w.write_all(b"CONNECT {\"verbose\":false,\"pedantic\":false}\r\n")
            .await?;
        let pongs = Rc::new(Cell::new(0u32));
        let p = pongs.clone();
        tokio::task::spawn_local(async move {
            let mut line = String::new();
            loop {
                line.clear();
                match r.read_line(&mut line).await {
                    Ok(0) | Err(_) => break,
                    Ok(_) if line.starts_with("PING") => p.set(p.get() + 1),
                    Ok(_) => {}
                }
            }
        });
        Ok(Self::Nats { w, pongs })
    }

    /// A Centrifugo client publishing with `publish` commands (Gyre).
    pub async fn client(url: &str, protocol: Protocol) -> Result<Self> {
        let (conn, _) = Conn::connect(Target::Gyre, url, protocol, &[]).await?;
        Ok(Self::Client {
            conn: Box::new(conn),
            inflight: HashMap::new(),
            stats: Rc::default(),
        })
    }

    /// Response statistics (empty for NATS).
    pub fn stats(&self) -> Option<Rc<RefCell<PubStats>>> {
        match self {
            Self::Http { stats, .. } | Self::Client { stats, .. } => Some(stats.clone()),
            Self::Nats { .. } => None,
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
            Self::Nats { w, pongs } => {
                let mut buf = Vec::new();
                for _ in 0..pongs.replace(0) {
                    buf.extend_from_slice(b"PONG\r\n");
                }
                for (channel, data, _) in batch {
                    buf.extend_from_slice(
                        format!("PUB {channel} {}\r\n{data}\r\n", data.len()).as_bytes(),
                    );
                }
                w.write_all(&buf).await?;
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
    pub async fn run(
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
                        for ev in events.drain(..) {
                            if let Event::Reply(reply) = ev
                                && let Some(sched) = inflight.remove(&reply.id)
                            {
                                let mut s = stats.borrow_mut();
                                s.hist.record(unix_us().saturating_sub(sched));
                                if reply.error.is_some() { s.errors += 1 } else { s.ok += 1 }
                            }
                        }
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
    pub async fn drain(&mut self, max: Duration) {
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
                for ev in events.drain(..) {
                    if let Event::Reply(reply) = ev
                        && let Some(sched) = inflight.remove(&reply.id)
                    {
                        let mut s = stats.borrow_mut();
                        s.hist.record(unix_us().saturating_sub(sched));
                        if reply.error.is_some() {
                            s.errors += 1
                        } else {
                            s.ok += 1
                        }
                    }
                }
            }
        } else {
            tokio::time::sleep(max.min(Duration::from_millis(1))).await;
        }
    }
}
