// permessage-deflate with the `ws` package's own client (perMessageDeflate on, threshold 0 so
// even small commands go out compressed): the server answers the offer, replies to compressed
// commands, and compressed publications (a large one too) arrive intact.
import WebSocket from 'ws';

const url = process.env.GYRE_WS_URL;
const token = process.env.GYRE_TOKEN;
const expectDeflate = process.env.GYRE_EXPECT_DEFLATE === '1';

function fail(message) {
  console.error(`FAIL ws_deflate: ${message}`);
  process.exit(1);
}
setTimeout(() => fail('timed out'), 15000).unref();

const ws = new WebSocket(url, 'centrifuge-json', { perMessageDeflate: { threshold: 0 } });
let offered = null;
ws.on('upgrade', (res) => {
  offered = res.headers['sec-websocket-extensions'] ?? '';
});
const replies = [];
let waiter = null;
ws.on('message', (data) => {
  for (const line of data.toString().split('\n').filter(Boolean)) {
    const msg = JSON.parse(line);
    if (msg.id === undefined && Object.keys(msg).length === 0) {
      ws.send('{}'); // server ping
      continue;
    }
    replies.push(msg);
  }
  if (waiter) waiter();
});
ws.on('error', (e) => fail(`socket error: ${e.message}`));
ws.on('close', (code, reason) => {
  if (!done) fail(`closed ${code} ${reason}`);
});
let done = false;

async function next(pick) {
  for (;;) {
    const i = replies.findIndex(pick);
    if (i >= 0) return replies.splice(i, 1)[0];
    await new Promise((resolve) => { waiter = resolve; });
  }
}

ws.on('open', async () => {
  const negotiated = ws.extensions.includes('permessage-deflate');
  if (negotiated !== expectDeflate) fail(`extensions ${JSON.stringify(ws.extensions)}`);
  if (expectDeflate && !/server_no_context_takeover/.test(offered) ) fail(`answer ${offered}`);
  if (!expectDeflate && offered) fail(`unexpected answer ${offered}`);
  ws.send(JSON.stringify({ id: 1, connect: { token } }));
  const connect = await next((m) => m.id === 1);
  if (!connect.connect) fail(`connect: ${JSON.stringify(connect)}`);
  ws.send(JSON.stringify({ id: 2, subscribe: { channel: 'news' } }));
  const sub = await next((m) => m.id === 2);
  if (!sub.subscribe) fail(`subscribe: ${JSON.stringify(sub)}`);
  console.log('GYRE:publish');
  const small = await next((m) => m.push?.pub?.data?.small);
  const big = await next((m) => m.push?.pub?.data?.big);
  if (big.push.pub.data.big.length !== 200000) fail('big publication damaged');
  // A large command is taken too: compressed, one over message_size_limit (64 KiB) on the
  // wire were it not.
  const echoSize = expectDeflate ? 100000 : 30000;
  ws.send(JSON.stringify({ id: 3, publish: { channel: 'news', data: { echo: 'y'.repeat(echoSize) } } }));
  const echo = await next((m) => m.push?.pub?.data?.echo);
  if (echo.push.pub.data.echo.length !== echoSize) fail('echo damaged');
  const published = await next((m) => m.id === 3);
  if (published.error) fail(`publish: ${JSON.stringify(published)}`);
  console.log(`ok: ${ws.extensions || 'no extension'}, small ${JSON.stringify(small.push.pub.data)}`);
  done = true;
  ws.close();
  process.exit(0);
});
