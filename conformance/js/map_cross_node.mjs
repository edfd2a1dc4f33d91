// Map subscriptions across two gyre nodes sharing Redis (map_broker.type: redis):
// GYRE_WS_URL/GYRE_API_URL are node A, GYRE_WS_URL_B node B. A client on B receives the state
// written through A's API page by page, then A's live changes (API and client publications,
// removals) without gap or duplicate; moved to node A it recovers what it missed; an expired
// key's removal reaches it from whichever node cleans up.
import { run, step, newClient, Events, SUB_EVENTS, CLIENT_EVENTS, WS_URL, assert, assertEq, dec, enc, api, sleep, PROTOCOL } from './lib.mjs';

const WS_URL_B = process.env.GYRE_WS_URL_B;
const MAP_EVENTS = [...SUB_EVENTS, 'sync', 'update'];
const CH = `live:cross_${PROTOCOL}`;
const EPH = `eph:cross_${PROTOCOL}`;

run('map_cross_node', async () => {
  step('state written through the API of A');
  for (let i = 1; i <= 5; i++) {
    const r = await api('map_publish', { channel: CH, key: `k${i}`, data: { v: i } });
    assertEq(r.offset, i, `map_publish k${i} offset`);
  }

  step('a client on B syncs it page by page');
  const onB = newClient({ token: process.env.GYRE_TOKEN_B, minReconnectDelay: 1000, maxReconnectDelay: 1500 }, WS_URL_B);
  const bEvents = new Events(onB, CLIENT_EVENTS, 'B');
  const sub = onB.newMapSubscription(CH, { pageSize: 2 });
  const subEvents = new Events(sub, MAP_EVENTS, 'B sub');
  sub.subscribe();
  onB.connect();
  await bEvents.next('connected');
  const subscribed = await subEvents.next('subscribed');
  assertEq(subscribed.recoverable, true, 'recoverable map');
  const sync = await subEvents.next('sync');
  assertEq(sync.entries.map((e) => e.key).sort(), ['k1', 'k2', 'k3', 'k4', 'k5'], 'synced keys');
  for (const e of sync.entries) {
    assertEq(dec(e.data), { v: Number(e.key.slice(1)) }, `synced ${e.key}`);
  }

  step('live changes from A: API publish, removal, client publish');
  await api('map_publish', { channel: CH, key: 'k6', data: { v: 6 } });
  await api('map_publish', { channel: CH, key: 'k2', data: { v: 22 } });
  await api('map_remove', { channel: CH, key: 'k3' });
  const onA = newClient({ token: process.env.GYRE_TOKEN_A });
  const aEvents = new Events(onA, CLIENT_EVENTS, 'A');
  const subA = onA.newMapSubscription(CH);
  const subAEvents = new Events(subA, MAP_EVENTS, 'A sub');
  subA.subscribe();
  onA.connect();
  await aEvents.next('connected');
  const syncA = await subAEvents.next('sync');
  assertEq(syncA.entries.map((e) => e.key).sort(), ['k1', 'k2', 'k4', 'k5', 'k6'], 'state seen on A');
  await subA.publish('fromA', enc({ by: 'ua' }));
  const expected = [['k6', { v: 6 }, false], ['k2', { v: 22 }, false], ['k3', null, true], ['fromA', { by: 'ua' }, false]];
  for (const [key, data, removed] of expected) {
    const u = await subEvents.next('update');
    assertEq([u.key, Boolean(u.removed)], [key, removed], `update ${key}`);
    if (!removed) {
      assertEq(dec(u.data), data, `data of ${key}`);
    }
  }
  await sleep(200);
  assertEq(subEvents.of('update').map((u) => u.key), expected.map((e) => e[0]), 'no gap, no duplicate');

  step('the client on B moves to A and recovers what it missed');
  onB._endpoint = WS_URL;
  await api('disconnect', { user: 'ub', disconnect: { code: 3011, reason: 'move' } });
  await bEvents.next('connecting', 5000, (c) => c.code !== 0);
  await api('map_publish', { channel: CH, key: 'k7', data: { v: 7 } });
  await api('map_remove', { channel: CH, key: 'k4' });
  const recovered = await subEvents.next('subscribed', 8000);
  assertEq([recovered.wasRecovering, recovered.recovered], [true, true], 'recovered on A');
  const u7 = await subEvents.next('update');
  const u4 = await subEvents.next('update');
  assertEq([u7.key, dec(u7.data), u4.key, u4.removed], ['k7', { v: 7 }, 'k4', true], 'missed changes');
  assertEq(subEvents.of('sync').length, 1, 'no sync on recovery');
  await api('map_publish', { channel: CH, key: 'k8', data: { v: 8 } });
  const u8 = await subEvents.next('update');
  assertEq(u8.key, 'k8', 'live after recovery');
  await sleep(200);
  assertEq(subEvents.of('update').map((u) => u.key).slice(4), ['k7', 'k4', 'k8'], 'no duplicates after recovery');

  step('an expired key is removed for subscribers of every node');
  const eph = onA.newMapSubscription(EPH);
  const ephEvents = new Events(eph, MAP_EVENTS, 'A eph');
  eph.subscribe();
  await ephEvents.next('subscribed');
  const ephB = onB.newMapSubscription(EPH);
  const ephBEvents = new Events(ephB, MAP_EVENTS, 'moved eph');
  ephB.subscribe();
  await ephBEvents.next('subscribed');
  await api('map_publish', { channel: EPH, key: 'tmp', data: { t: 1 } });
  for (const events of [ephEvents, ephBEvents]) {
    const set = await events.next('update');
    assertEq([set.key, Boolean(set.removed)], ['tmp', false], 'set');
    const gone = await events.next('update', 8000);
    assertEq([gone.key, gone.removed], ['tmp', true], 'expired');
  }
  await sleep(200);
  assert(ephEvents.of('update').length === 2, 'one removal only');
  onA.disconnect();
  onB.disconnect();
}, 30000);
