// Subscriber of bench/consumers.sh: a centrifuge-js client on channels bench_pg,
// bench_redis and bench_nats. Each publication carries {phase, n, t} where t is the write time (ms since the
// epoch, from the writer's clock on this machine). When every expected publication of a
// phase has arrived it prints one line: rows/s over the phase (first write to last delivery)
// and the write-to-delivery p50/p99. Prints "ready" once subscribed.
import { Centrifuge } from 'centrifuge';
import WebSocket from 'ws';

const url = process.env.GYRE_WS_URL;
const expected = JSON.parse(process.env.BENCH_EXPECTED); // {"bench_pg/burst": 5000, ...}
const now = () => performance.timeOrigin + performance.now();

const seen = new Map();
const finished = new Set();
const timer = setTimeout(() => {
  for (const [key, s] of seen) {
    if (!finished.has(key)) console.log(`${key}: only ${s.lat.length} of ${expected[key]} delivered`);
  }
  process.exit(1);
}, 180_000);

function record(channel, data) {
  const key = `${channel}/${data.phase}`;
  let s = seen.get(key);
  if (!s) {
    s = { lat: [], first: Infinity, last: 0 };
    seen.set(key, s);
  }
  const t = now();
  s.lat.push(t - data.t);
  s.first = Math.min(s.first, data.t);
  s.last = Math.max(s.last, t);
  if (s.lat.length === expected[key]) {
    finished.add(key);
    const sorted = s.lat.slice().sort((a, b) => a - b);
    const pct = (p) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
    const rate = (s.lat.length / ((s.last - s.first) / 1000)).toFixed(0);
    console.log(
      `${key}: ${s.lat.length} commands, ${rate} commands/s applied, ` +
        `write-to-delivery p50 ${pct(50).toFixed(2)} ms, p99 ${pct(99).toFixed(2)} ms`,
    );
    if (finished.size === Object.keys(expected).length) {
      clearTimeout(timer);
      process.exit(0);
    }
  }
}

const client = new Centrifuge(url, { websocket: WebSocket });
for (const channel of ['bench_pg', 'bench_redis', 'bench_nats']) {
  const sub = client.newSubscription(channel);
  sub.on('publication', (ctx) => record(channel, ctx.data));
  sub.subscribe();
}
let subscribed = 0;
for (const sub of Object.values(client.subscriptions())) {
  sub.once('subscribed', () => {
    subscribed += 1;
    if (subscribed === 3) console.log('ready');
  });
}
client.connect();
