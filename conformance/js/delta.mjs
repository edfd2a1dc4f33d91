// 8. fossil delta: a subscription with delta 'fossil' receives 5 large similar payloads
// published via the API exactly as published (the server sends patches after the first), and
// recovered publications after a forced reconnect too.
import { run, step, newClient, Events, SUB_EVENTS, CLIENT_EVENTS, assert, assertEq, dec, num, api, sleep } from './lib.mjs';

const CHANNEL = 'quotes';

function payload(version) {
  const items = [];
  for (let i = 0; i < 150; i++) {
    items.push({
      id: i,
      name: `instrument-${i}`,
      price: i % 10 === version % 10 ? 1000 + version * 7 + i : 1000 + i,
      flags: { active: i % 3 !== 0, note: i === version ? `changed in ${version}` : 'steady' },
    });
  }
  return { version, updated: `2026-01-01T00:00:0${version % 10}Z`, items, text: 'ünïcödé ✓ "quoted" \\ backslash' };
}

run('delta', async () => {
  const client = newClient({ token: process.env.GYRE_TOKEN, minReconnectDelay: 1000, maxReconnectDelay: 1500 });
  const events = new Events(client, CLIENT_EVENTS, 'client');
  const sub = client.newSubscription(CHANNEL, { delta: 'fossil' });
  const subEvents = new Events(sub, SUB_EVENTS, 'sub');
  sub.subscribe();
  client.connect();
  await subEvents.next('subscribed');

  step('5 live publications');
  const size = JSON.stringify(payload(1)).length;
  assert(size > 5000, `payload is large (${size} bytes)`);
  for (let v = 1; v <= 5; v++) {
    const r = await api('publish', { channel: CHANNEL, data: payload(v) });
    assertEq(r.offset, v, `publish ${v} offset`);
    const p = await subEvents.next('publication');
    assertEq(num(p.offset), v, `publication ${v} offset`);
    assertEq(dec(p.data), payload(v), `publication ${v} data`);
  }
  const live = sub.deltaStats();
  assertEq([live.numPublications, live.numFullPayloads, live.numDeltaPayloads], [5, 1, 4], `delta stats after live publications (${JSON.stringify(live)})`);
  assert(live.bytesReceived < 2 * size, `deltas are small: ${live.bytesReceived} bytes received for 5 × ${size}`);

  step('forced reconnect, 3 publications missed');
  await api('disconnect', { user: 'u1', disconnect: { code: 3011, reason: 'force reconnect' } });
  const connecting = await events.next('connecting', 5000, (c) => c.code !== 0);
  assertEq(connecting.code, 3011, 'connecting code');
  for (let v = 6; v <= 8; v++) {
    const r = await api('publish', { channel: CHANNEL, data: payload(v) });
    assertEq(r.offset, v, `publish ${v} offset`);
  }

  step('recovered with delta');
  const subscribed = await subEvents.next('subscribed', 5000);
  assertEq([subscribed.wasRecovering, subscribed.recovered], [true, true], 'recovery flags');
  for (let v = 6; v <= 8; v++) {
    const p = await subEvents.next('publication');
    assertEq(num(p.offset), v, `recovered publication ${v} offset`);
    assertEq(dec(p.data), payload(v), `recovered publication ${v} data`);
  }

  step('live after the recovery');
  for (let v = 9; v <= 10; v++) {
    await api('publish', { channel: CHANNEL, data: payload(v) });
    const p = await subEvents.next('publication');
    assertEq(num(p.offset), v, `publication ${v} offset`);
    assertEq(dec(p.data), payload(v), `publication ${v} data`);
  }
  const total = sub.deltaStats();
  assertEq(total.numPublications, 10, 'publications decoded');
  assert(total.numDeltaPayloads >= 7, `most payloads were deltas (${JSON.stringify(total)})`);
  await sleep(200);
  assertEq(subEvents.of('publication').map((p) => num(p.offset)), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 'no duplicates');
  client.disconnect();
});
