// Shared poll subscriptions with the real SDK (newSharedPollSubscription) against a poll
// backend started by the Rust test (GYRE_POLL_BACKEND: POST /set, POST /stats): tracking keys
// and receiving their data, updates, a second tracker of the same key getting the data the
// node has, untracking, removals, refused signatures (103), max_keys_per_connection (106), a
// backend answering garbage for some keys (the other keys keep updating), versionless change
// detection, shared_poll_publish, a tracking ending with its signature, and the poller
// stopping once nobody tracks the channel.
import { createHash, createHmac } from 'node:crypto';
import { run, step, newClient, Events, CLIENT_EVENTS, SUB_EVENTS, assert, assertEq, dec, api, sleep, fail } from './lib.mjs';

const BACKEND = process.env.GYRE_POLL_BACKEND;
const SECRET = process.env.GYRE_POLL_SECRET;
const TOKEN = process.env.GYRE_TOKEN;
const USER = 'u1';
const EVENTS = [...SUB_EVENTS, 'update'];

function sign(channel, keys, user = USER, secret = SECRET, ttl = 3600) {
  const now = Math.floor(Date.now() / 1000);
  const expiry = now + ttl;
  const keysHash = createHash('sha256').update(keys.join('\x00')).digest('hex');
  const mac = createHmac('sha256', secret).update(`${now}\x00${expiry}\x00${user}\x00${channel}\x00${keysHash}`).digest('hex');
  return `${now}:${expiry}:${mac}`;
}

async function backend(path, body) {
  const response = await fetch(`${BACKEND}/${path}`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify(body),
  });
  if (response.status !== 200) {
    fail(`backend ${path}: HTTP ${response.status}`);
  }
  return response.json();
}

const set = (key, data, version, removed = false) => backend('set', { key, data, version, removed });
const stats = (channel) => backend('stats', { channel });

async function subscribed(client, channel, label) {
  const sub = client.newSharedPollSubscription(channel, {
    getSignature: async (ctx) => ({ keys: ctx.keys, signature: sign(channel, ctx.keys) }),
  });
  const events = new Events(sub, EVENTS, label);
  sub.subscribe();
  await events.next('subscribed');
  return { sub, events };
}

async function connected(label) {
  const client = newClient({ token: TOKEN });
  const events = new Events(client, CLIENT_EVENTS, label);
  client.connect();
  await events.next('connected');
  return client;
}

const update = (events, key, pred = () => true) => events.next('update', 5000, (u) => u.key === key && pred(u));

run('shared_poll', async () => {
  const a = await connected('a');
  const b = await connected('b');

  step('track two keys and receive their data');
  await set('k1', { n: 1 }, 1);
  await set('k2', { s: 'x' }, 1);
  const ch = 'poll:room';
  const A = await subscribed(a, ch, 'A');
  A.sub.track([{ key: 'k1', version: 0 }, { key: 'k2', version: 0 }], sign(ch, ['k1', 'k2']));
  const u1 = await update(A.events, 'k1');
  const u2 = await update(A.events, 'k2');
  assertEq([u1.channel, dec(u1.data), u1.version, !!u1.removed], [ch, { n: 1 }, 1, false], 'k1');
  assertEq([dec(u2.data), u2.version], [{ s: 'x' }, 1], 'k2');

  step('a new version is delivered once');
  await set('k1', { n: 2 }, 2);
  const u3 = await update(A.events, 'k1');
  assertEq([dec(u3.data), u3.version], [{ n: 2 }, 2], 'k1 v2');

  step('a second tracker of the key gets the data the node has');
  const B = await subscribed(b, ch, 'B');
  B.sub.track([{ key: 'k1', version: 0 }], sign(ch, ['k1']));
  const b1 = await update(B.events, 'k1');
  assertEq([dec(b1.data), b1.version], [{ n: 2 }, 2], 'cached k1 for B');

  step('untracked keys are not delivered any more');
  await A.sub.untrack(['k2']);
  await set('k2', { s: 'y' }, 2);
  await set('k1', { n: 3 }, 3);
  await update(A.events, 'k1', (u) => u.version === 3);
  await set('k1', { n: 4 }, 4);
  await update(A.events, 'k1', (u) => u.version === 4);
  await update(B.events, 'k1', (u) => u.version === 4);
  assertEq(A.events.of('update').filter((u) => u.key === 'k2').length, 1, 'k2 updates after untrack');

  step('a removal reaches every tracker');
  await set('k1', null, 5, true);
  const ra = await update(A.events, 'k1', (u) => u.removed);
  const rb = await update(B.events, 'k1', (u) => u.removed);
  assert(ra.removed && rb.removed, 'removed');

  step('invalid signatures are refused with 103');
  for (const signature of ['invalid', sign(ch, ['k9'], 'someone-else'), sign('poll:other', ['k9']), sign(ch, ['k9'], USER, 'wrong-secret')]) {
    A.sub.track([{ key: 'k9', version: 0 }], signature);
    const error = await A.events.next('error', 5000, (e) => e.type === 'track');
    assertEq(error.error.code, 103, `track error code for ${signature}`);
  }

  step('max_keys_per_connection is enforced with 106');
  const many = ['m1', 'm2', 'm3', 'm4'];
  A.sub.track(many.map((key) => ({ key, version: 0 })), sign(ch, many));
  const limit = await A.events.next('error', 5000, (e) => e.type === 'track');
  assertEq(limit.error.code, 106, 'limit error code');

  step('a backend answering garbage for some keys: the others keep updating');
  const chb = 'pollb:mixed';
  const C = await subscribed(b, chb, 'C');
  const keys = ['bad-json', 'bad-shape', 'bad-status', 'good'];
  await set('good', { ok: 1 }, 1);
  C.sub.track(keys.map((key) => ({ key, version: 0 })), sign(chb, keys));
  await update(C.events, 'good', (u) => u.version === 1);
  await set('good', { ok: 2 }, 2);
  const good = await update(C.events, 'good', (u) => u.version === 2);
  assertEq(dec(good.data), { ok: 2 }, 'good key after garbage');
  assertEq(C.events.of('update').filter((u) => u.key !== 'good').length, 0, 'updates of bad keys');
  const mixed = await stats(chb);
  assert(mixed.requests >= 8 && mixed.max_items === 1 && !mixed.duplicates, `batches of one key: ${JSON.stringify(mixed)}`);

  step('versionless: changes detected by content, versions numbered by the node');
  const chv = 'pollvl:doc';
  const V = await subscribed(a, chv, 'V');
  await set('doc', { text: 'a' }, 0);
  V.sub.track([{ key: 'doc', version: 0 }], sign(chv, ['doc']));
  const v1 = await update(V.events, 'doc');
  assert(v1.version > 0, `synthetic version ${v1.version}`);
  const before = (await stats(chv)).requests;
  for (let i = 0; i < 50 && (await stats(chv)).requests < before + 3; i++) {
    await sleep(100);
  }
  await set('doc', { text: 'b' }, 0);
  const v2 = await update(V.events, 'doc', (u) => u.version > v1.version);
  assertEq(dec(v2.data), { text: 'b' }, 'changed content');
  assertEq(V.events.of('update').length, 2, 'updates of unchanged content');

  step('shared_poll_publish delivers a new version at once');
  await set('p1', { from: 'backend' }, 1);
  A.sub.track([{ key: 'p1', version: 0 }], sign(ch, ['p1']));
  await update(A.events, 'p1', (u) => u.version === 1);
  await api('shared_poll_publish', { channel: ch, key: 'p1', data: { from: 'api' }, version: 7 });
  const published = await update(A.events, 'p1', (u) => u.version === 7);
  assertEq(dec(published.data), { from: 'api' }, 'published data');

  step('a tracking ends when its signature expires (track_expired_extra_delay 0s)');
  const chx = 'pollx:exp';
  const X = await subscribed(a, chx, 'X');
  await set('e1', { e: 1 }, 1);
  await set('probe', { p: 1 }, 1);
  // Expired 3s ago: accepted within the 5s grace, then dropped by the next poll cycle.
  X.sub.track([{ key: 'e1', version: 0 }], sign(chx, ['e1'], USER, SECRET, -3));
  X.sub.track([{ key: 'probe', version: 0 }], sign(chx, ['probe']));
  await update(X.events, 'probe', (u) => u.version === 1);
  await set('e1', { e: 2 }, 2);
  await set('probe', { p: 2 }, 2);
  await update(X.events, 'probe', (u) => u.version === 2);
  assertEq(X.events.of('update').filter((u) => u.key === 'e1' && u.version === 2).length, 0, 'updates of the expired key');

  step('nobody tracks: the pollers stop');
  const polled = await stats(ch);
  assert(polled.requests > 0 && !polled.duplicates, `poll requests: ${JSON.stringify(polled)}`);
  a.disconnect();
  b.disconnect();
  let last = -1;
  let stable = 0;
  for (let i = 0; i < 50 && stable < 8; i++) {
    await sleep(150);
    const all = await stats('');
    stable = all.requests === last ? stable + 1 : 0;
    last = all.requests;
  }
  assert(stable >= 8, `backend still polled after every client left (${last} requests)`);
}, 30000);
