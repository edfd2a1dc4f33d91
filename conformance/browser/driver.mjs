// Browser scenarios: headless Chromium (Debian's /usr/bin/chromium) driven through
// playwright-core. A tiny static server here serves the test page and centrifuge-js's browser
// bundle on its own loopback port; the page talks to gyre cross-origin (gyre's
// `client.allowed_origins` grants it and answers with CORS headers). The page reports events
// to this driver through an exposed function; the driver exits 0 when the scenario passes.
//
// Usage: GYRE_BROWSER_SCENARIO=<sdk|fallback|uni> node driver.mjs, with GYRE_WS_URL, GYRE_API_URL, GYRE_API_KEY and
// (uni) GYRE_TOKEN in the environment. `sdk` prints `GYRE:restart:<channel>` when the server
// must restart (the test restarts it on the same port and publishes `{n: 2}` meanwhile).
import { createServer } from 'node:http';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = dirname(fileURLToPath(import.meta.url));
const bundle = readFileSync(join(here, '../js/node_modules/centrifuge/dist/centrifuge.js'));
const scenario = process.env.GYRE_BROWSER_SCENARIO;
const gyreHttp = process.env.GYRE_WS_URL.replace(/^ws/, 'http').replace(/\/connection\/websocket$/, '');
const apiUrl = process.env.GYRE_API_URL;
const apiKey = process.env.GYRE_API_KEY;
const WAIT_MS = 15000;

function fail(message) {
  console.error(`FAIL [browser/${scenario}]: ${message}`);
  process.exit(1);
}
setTimeout(() => fail('scenario timed out'), 35000).unref();

/** The test page: optionally blocks WebSocket before the SDK is loaded. */
function page(blockWebSocket) {
  const block = blockWebSocket ? '<script>window.WebSocket = undefined;</script>' : '';
  return `<!doctype html><html><head>${block}<script src="/centrifuge.js"></script></head><body></body></html>`;
}

const server = createServer((req, res) => {
  if (req.url === '/centrifuge.js') {
    res.writeHead(200, { 'Content-Type': 'text/javascript' });
    res.end(bundle);
  } else if (req.url === '/page.html' || req.url === '/no-websocket.html') {
    res.writeHead(200, { 'Content-Type': 'text/html' });
    res.end(page(req.url === '/no-websocket.html'));
  } else {
    res.writeHead(404);
    res.end();
  }
});
await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
const origin = `http://127.0.0.1:${server.address().port}`;

// Events reported by the page, and the waiters for them (each takes one matching event).
const events = [];
const waiters = new Set();
function deliver() {
  for (const waiter of waiters) {
    const i = events.findIndex(waiter.match);
    if (i >= 0) {
      waiters.delete(waiter);
      waiter.resolve(events.splice(i, 1)[0]);
    }
  }
}
function next(what, match) {
  return new Promise((resolve, reject) => {
    const waiter = { match, resolve: () => {} };
    const timer = setTimeout(() => {
      waiters.delete(waiter);
      reject(new Error(`no ${what}; events: ${JSON.stringify(events)}`));
    }, WAIT_MS);
    waiter.resolve = (event) => {
      clearTimeout(timer);
      resolve(event);
    };
    waiters.add(waiter);
    deliver();
  });
}

async function publish(channel, data) {
  const res = await fetch(`${apiUrl}/publish`, {
    method: 'POST',
    headers: { 'X-API-Key': apiKey, 'Content-Type': 'application/json' },
    body: JSON.stringify({ channel, data }),
  });
  const body = await res.json();
  if (res.status !== 200 || body.error) throw new Error(`publish: ${res.status} ${JSON.stringify(body)}`);
}

const userDataDir = mkdtempSync(join(tmpdir(), 'gyre-chromium-'));
const context = await chromium.launchPersistentContext(userDataDir, {
  executablePath: '/usr/bin/chromium',
  args: [
    '--headless',
    '--no-sandbox',
    '--disable-gpu',
    '--disable-quic',
    '--no-first-run',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
  ],
});
await context.exposeFunction('report', (event) => {
  events.push(event);
  deliver();
});

/** Opens `path` of the static server in a new tab. */
async function open(path) {
  const tab = await context.newPage();
  tab.on('pageerror', (e) => console.log(`page error: ${e}`));
  await tab.goto(`${origin}${path}`);
  return tab;
}

/**
 * Starts a centrifuge-js client in `tab` on `transports` (names, or `{transport, path}` with
 * a path of gyre's), subscribed to `channel`.
 */
async function startClient(tab, transports, channel) {
  await tab.evaluate(
    ({ gyre, transports, channel }) => {
      const endpoint = (transport, path) =>
        `${transport === 'websocket' ? gyre.replace('http://', 'ws://') : gyre}${path}`;
      const client = new Centrifuge(
        transports.map((t) => {
          const { transport, path } = typeof t === 'string' ? { transport: t, path: `/connection/${t}` } : t;
          return { transport, endpoint: endpoint(transport, path) };
        }),
        { emulationEndpoint: `${gyre}/emulation`, minReconnectDelay: 100, maxReconnectDelay: 500, timeout: 5000 },
      );
      client.on('connected', (ctx) => window.report({ t: 'connected', transport: ctx.transport }));
      client.on('disconnected', (ctx) => window.report({ t: 'disconnected', code: ctx.code }));
      const sub = client.newSubscription(channel);
      sub.on('subscribed', (ctx) => window.report({ t: 'subscribed', recovered: ctx.recovered, wasRecovering: ctx.wasRecovering }));
      sub.on('publication', (ctx) => window.report({ t: 'publication', data: ctx.data }));
      sub.subscribe();
      client.connect();
      window.gyreClient = client;
    },
    { gyre: gyreHttp, transports, channel },
  );
}

const isPub = (n) => (e) => e.t === 'publication' && e.data?.n === n;

/** Each transport in turn: connect, subscribe, an API publication, recovery after a restart. */
async function sdk() {
  const tab = await open('/page.html');
  for (const transport of ['websocket', 'http_stream', 'sse']) {
    const channel = `news_${transport}`;
    await startClient(tab, [transport], channel);
    const connected = await next(`${transport} connect`, (e) => e.t === 'connected');
    if (connected.transport !== transport) throw new Error(`connected over ${connected.transport}`);
    const first = await next('subscribed', (e) => e.t === 'subscribed');
    if (first.wasRecovering) throw new Error(`first subscribe recovering: ${JSON.stringify(first)}`);
    await publish(channel, { n: 1 });
    await next('publication 1', isPub(1));
    console.log(`GYRE:restart:${channel}`);
    const again = await next('resubscribe after restart', (e) => e.t === 'subscribed');
    if (!again.wasRecovering || !again.recovered) throw new Error(`not recovered: ${JSON.stringify(again)}`);
    await next('recovered publication 2', isPub(2));
    await tab.evaluate(() => window.gyreClient.disconnect());
    events.length = 0;
    console.log(`${transport}: connected, publication, recovered after restart`);
  }
}

/**
 * The SDK falls back to HTTP-streaming by itself: in a page without `WebSocket`, and when the
 * WebSocket endpoint fails (a path gyre does not serve).
 */
async function fallback() {
  const cases = [
    ['/no-websocket.html', 'websocket'],
    ['/page.html', { transport: 'websocket', path: '/connection/no-such-websocket' }],
  ];
  for (const [path, websocket] of cases) {
    const tab = await open(path);
    await startClient(tab, [websocket, 'http_stream', 'sse'], 'fallback');
    const connected = await next(`connect on ${path}`, (e) => e.t === 'connected');
    if (connected.transport !== 'http_stream') throw new Error(`connected over ${connected.transport}`);
    await next('subscribed', (e) => e.t === 'subscribed');
    await publish('fallback', { n: 1 });
    await next('publication 1', isPub(1));
    await tab.evaluate(() => window.gyreClient.disconnect());
    await tab.close();
    events.length = 0;
    console.log(`${path} ${JSON.stringify(websocket)}: fell back to http_stream`);
  }
}

/** The browser's own EventSource on uni_sse and fetch streaming on uni_http_stream. */
async function uni() {
  const tab = await open('/page.html');
  await tab.evaluate(
    ({ gyre, token }) => {
      const connect = JSON.stringify({ token });
      const source = new EventSource(`${gyre}/connection/uni_sse?cf_connect=${encodeURIComponent(connect)}`);
      source.onmessage = (e) => window.report({ t: 'uni_sse', push: JSON.parse(e.data) });
      source.onerror = () => window.report({ t: 'uni_sse_error' });
      (async () => {
        const res = await fetch(`${gyre}/connection/uni_http_stream`, { method: 'POST', body: connect });
        const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
        let buffer = '';
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buffer += value;
          let i;
          while ((i = buffer.indexOf('\n')) >= 0) {
            const line = buffer.slice(0, i).trim();
            buffer = buffer.slice(i + 1);
            if (line) window.report({ t: 'uni_http_stream', push: JSON.parse(line) });
          }
        }
      })().catch((e) => window.report({ t: 'uni_http_stream_error', error: String(e) }));
    },
    { gyre: gyreHttp, token: process.env.GYRE_TOKEN },
  );
  for (const t of ['uni_sse', 'uni_http_stream']) {
    const push = (await next(`${t} connect push`, (e) => e.t === t)).push;
    if (!push.connect?.subs?.news) throw new Error(`${t} connect push: ${JSON.stringify(push)}`);
  }
  for (const n of [1, 2]) {
    await publish('news', { n });
    for (const t of ['uni_sse', 'uni_http_stream']) {
      const push = (await next(`${t} publication ${n}`, (e) => e.t === t)).push;
      if (push.channel !== 'news' || push.pub?.data?.n !== n) throw new Error(`${t}: ${JSON.stringify(push)}`);
    }
  }
  console.log('uni_sse and uni_http_stream delivered publications');
}

const scenarios = { sdk, fallback, uni };
if (!scenarios[scenario]) fail(`unknown scenario ${scenario}`);
try {
  await scenarios[scenario]();
} catch (e) {
  await context.close().catch(() => {});
  rmSync(userDataDir, { recursive: true, force: true });
  fail(e.message);
}
await context.close();
rmSync(userDataDir, { recursive: true, force: true });
server.close();
console.log(`PASS [browser/${scenario}]`);
process.exit(0);
