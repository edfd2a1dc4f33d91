// Records the frames a real centrifuge-js client sends (JSON and Protobuf) to seed the fuzz
// corpora: `node capture.mjs WS_URL TOKEN SUBTOKEN OUT_DIR` against a running `gyre serve`
// (scripts/fuzz.sh --capture starts one). Each sent WebSocket message becomes one
// json_commands/protobuf_commands seed, and a masked client frame of it a websocket seed.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createRequire } from 'node:module';

const [url, token, subToken, out] = process.argv.slice(2);
const require = createRequire(join(process.cwd(), 'package.json'));
const WebSocket = require('ws');
const setTimeoutMs = 20000;
setTimeout(() => { console.error('capture timed out'); process.exit(1); }, setTimeoutMs).unref();

let count = 0;
function save(dir, bytes) {
  mkdirSync(join(out, dir), { recursive: true });
  writeFileSync(join(out, dir, `captured-${String(count++).padStart(3, '0')}`), bytes);
}

// A client frame as it goes on the wire: FIN, opcode, mask bit and key, masked payload.
function clientFrame(opcode, payload) {
  const mask = Buffer.from([0x37, 0xfa, 0x21, 0x3d]);
  let header;
  if (payload.length < 126) header = Buffer.from([0x80 | opcode, 0x80 | payload.length]);
  else if (payload.length < 65536) { header = Buffer.alloc(4); header[0] = 0x80 | opcode; header[1] = 0xfe; header.writeUInt16BE(payload.length, 2); }
  else { header = Buffer.alloc(10); header[0] = 0x80 | opcode; header[1] = 0xff; header.writeBigUInt64BE(BigInt(payload.length), 2); }
  const body = Buffer.from(payload).map((b, i) => b ^ mask[i % 4]);
  return Buffer.concat([header, mask, body]);
}

async function run(protocolName) {
  const sdk = protocolName === 'protobuf' ? require('centrifuge/build/protobuf') : require('centrifuge');
  const dir = protocolName === 'protobuf' ? 'protobuf_commands' : 'json_commands';
  class Recording extends WebSocket {
    send(data, ...rest) {
      const bytes = typeof data === 'string' ? Buffer.from(data) : Buffer.from(data);
      save(dir, bytes);
      save('websocket', Buffer.concat([Buffer.from([0x3f]), clientFrame(typeof data === 'string' ? 1 : 2, bytes)]));
      return super.send(data, ...rest);
    }
  }
  const client = new sdk.Centrifuge(url, { websocket: Recording, token, name: 'fuzz-capture' });
  const connected = new Promise((resolve) => client.once('connected', resolve));
  client.connect();
  await connected;
  const sub = client.newSubscription('chat', { recoverable: true, positioned: true, joinLeave: true });
  const subscribed = new Promise((resolve) => sub.once('subscribed', resolve));
  sub.subscribe();
  await subscribed;
  const priv = client.newSubscription('$private', { token: subToken, delta: 'fossil' });
  const privSubscribed = new Promise((resolve) => priv.once('subscribed', resolve));
  priv.subscribe();
  await privSubscribed;
  await sub.publish({ text: 'hello from centrifuge-js', n: 1, nested: { a: [1, 2, 3] } });
  await sub.presence().catch(() => {});
  await sub.presenceStats().catch(() => {});
  await sub.history({ limit: 10, since: { offset: 0, epoch: '' } }).catch(() => {});
  await client.rpc('echo', { x: 1 }).catch(() => {});
  client.send({ fire: 'and forget' }).catch(() => {});
  sub.unsubscribe();
  priv.unsubscribe();
  await new Promise((r) => setTimeout(r, 200));
  client.disconnect();
}

await run('json');
await run('protobuf');
console.log(`captured ${count} files into ${out}`);
process.exit(0);
