// 19. map subscriptions: state sync over several pages, live updates and removals (fossil
// delta per key), client publish and remove, recovery after a forced reconnect and after
// unsubscribe (no sync, only the missed updates), an unrecoverable position restarting from
// the state, client_key, and bad map publications answered with upstream's codes.
import { run, step, newClient, Events, SUB_EVENTS, CLIENT_EVENTS, assert, assertEq, dec, enc, api } from './lib.mjs';

const MAP_EVENTS = [...SUB_EVENTS, 'sync', 'update'];
const CH = 'live:board';

function keysOf(entries) {
  return entries.map((e) => e.key).sort();
}

function big(n) {
  return { n, rows: Array.from({ length: 80 }, (_, i) => ({ i, label: `row-${i}`, v: i === n ? n : 0 })) };
}

async function errorCode(promise) {
  try {
    await promise;
  } catch (e) {
    return e.code;
  }
  return 0;
}

run('map', async () => {
  step('seed 5 keys through the API');
  for (let i = 1; i <= 5; i++) {
    const r = await api('map_publish', { channel: CH, key: `k${i}`, data: { v: i } });
    assertEq(r.offset, i, `map_publish k${i} offset`);
  }
  const state = await api('map_read_state', { channel: CH, limit: 2 });
  assertEq(state.entries.map((e) => e.key), ['k1', 'k2'], 'API state page');
  assert(state.cursor, 'API state page has a cursor');

  const client = newClient({ token: process.env.GYRE_TOKEN, minReconnectDelay: 1000, maxReconnectDelay: 1500 });
  const events = new Events(client, CLIENT_EVENTS, 'client');
  const sub = client.newMapSubscription(CH, { pageSize: 2, delta: 'fossil' });
  const subEvents = new Events(sub, MAP_EVENTS, 'sub');
  sub.subscribe();
  client.connect();

  step('state sync over three pages');
  const subscribed = await subEvents.next('subscribed');
  assertEq(subscribed.recoverable, true, 'positioned map is recoverable');
  const sync = await subEvents.next('sync');
  assertEq(keysOf(sync.entries), ['k1', 'k2', 'k3', 'k4', 'k5'], 'synced keys');
  for (const e of sync.entries) {
    assertEq(dec(e.data), { v: Number(e.key.slice(1)) }, `synced ${e.key}`);
  }

  step('live updates with per-key delta, and a removal');
  for (let n = 1; n <= 3; n++) {
    await api('map_publish', { channel: CH, key: 'big', data: big(n) });
    const u = await subEvents.next('update');
    assertEq([u.key, dec(u.data)], ['big', big(n)], `big update ${n}`);
  }
  const stats = sub.deltaStats();
  assert(stats.numDeltaPayloads >= 2, `patches were sent: ${JSON.stringify(stats)}`);
  await api('map_remove', { channel: CH, key: 'k1' });
  const removed = await subEvents.next('update');
  assertEq([removed.key, removed.removed], ['k1', true], 'removal');

  step('client publish and remove');
  await sub.publish('mine', enc({ from: 'client' }));
  const mine = await subEvents.next('update');
  assertEq([mine.key, dec(mine.data)], ['mine', { from: 'client' }], 'client publication');
  await sub.remove('mine');
  const gone = await subEvents.next('update');
  assertEq([gone.key, gone.removed], ['mine', true], 'client removal');

  step('recovery after a forced reconnect');
  await api('disconnect', { user: 'u1', disconnect: { code: 3011, reason: 'force reconnect' } });
  await events.next('connecting', 5000, (c) => c.code !== 0);
  await api('map_publish', { channel: CH, key: 'k2', data: { v: 22 } });
  const recovered = await subEvents.next('subscribed', 5000);
  assertEq([recovered.wasRecovering, recovered.recovered], [true, true], 'recovery flags');
  const missed = await subEvents.next('update');
  assertEq([missed.key, dec(missed.data)], ['k2', { v: 22 }], 'missed update');

  step('recovery after unsubscribe');
  sub.unsubscribe();
  await subEvents.next('unsubscribed');
  await api('map_publish', { channel: CH, key: 'k3', data: { v: 33 } });
  await api('map_remove', { channel: CH, key: 'k4' });
  sub.subscribe();
  const again = await subEvents.next('subscribed', 5000);
  assertEq(again.recovered, true, 'recovered after unsubscribe');
  const u3 = await subEvents.next('update');
  const u4 = await subEvents.next('update');
  assertEq([u3.key, dec(u3.data), u4.key, u4.removed], ['k3', { v: 33 }, 'k4', true], 'missed changes');
  assertEq(subEvents.of('sync').length, 1, 'no sync on recovery');

  step('an overflowed stream restarts from the state');
  const small = client.newMapSubscription('small:x');
  const smallEvents = new Events(small, MAP_EVENTS, 'small');
  small.subscribe();
  await smallEvents.next('subscribed');
  await api('map_publish', { channel: 'small:x', key: 'first', data: { v: 0 } });
  await smallEvents.next('update');
  small.unsubscribe();
  await smallEvents.next('unsubscribed');
  for (let i = 1; i <= 4; i++) {
    await api('map_publish', { channel: 'small:x', key: `o${i}`, data: { v: i } });
  }
  small.subscribe();
  const fresh = await smallEvents.next('subscribed', 8000, (c) => c.recovered === false);
  assertEq(fresh.recovered, false, 'not recovered');
  const resync = await smallEvents.next('sync', 8000, (s) => s.entries.length === 5);
  assertEq(keysOf(resync.entries), ['first', 'o1', 'o2', 'o3', 'o4'], 'state after restart');

  step('client_key writes the client id');
  const own = client.newMapSubscription('own:room');
  const ownEvents = new Events(own, MAP_EVENTS, 'own');
  own.subscribe();
  await ownEvents.next('subscribed');
  await own.publish('ignored', enc({ here: true }));
  const mineKey = await ownEvents.next('update');
  assertEq(mineKey.key, client._client, 'key is the client id');

  step('map_clients presence of subscribers');
  const who = client.newMapClientsSubscription('who:room:1');
  const whoEvents = new Events(who, MAP_EVENTS, 'who');
  who.subscribe();
  const nobody = await whoEvents.next('sync');
  assertEq(nobody.entries.length, 0, 'nobody present');
  const room = client.newMapSubscription('room:1');
  room.subscribe();
  const joined = await whoEvents.next('update');
  assertEq([joined.key, Boolean(joined.removed)], [client._client, false], 'present');
  room.unsubscribe();
  const left = await whoEvents.next('update');
  assertEq([left.key, left.removed], [client._client, true], 'left');

  step('bad map publications get upstream codes');
  assertEq(await errorCode(client.mapPublish(CH, '', enc({ x: 1 }))), 107, 'publish without key');
  assertEq(await errorCode(client.mapPublish(CH, 'x'.repeat(2000), enc({ x: 1 }))), 107, 'oversized key');
  assertEq(await errorCode(client.mapPublish('small:x', 'k', enc({ x: 1 }))), 103, 'publish not allowed');
  assertEq(await errorCode(client.mapPublish('plain', 'k', enc({ x: 1 }))), 108, 'not a map channel');
  await sub.publish('after', enc({ still: 'serving' }));
  const after = await subEvents.next('update');
  assertEq([after.key, dec(after.data)], ['after', { still: 'serving' }], 'still serving');

  step('map API: stats, stream, clear');
  const st = await api('map_stats', { channel: CH });
  assertEq(st.num_keys, 5, 'keys k2, k3, k5, big and after');
  const stream = await api('map_read_stream', { channel: CH, since_offset: 0, since_epoch: subscribed.streamPosition?.epoch ?? '', limit: 3 });
  assertEq(stream.entries.length, 3, 'stream page');
  assertEq(stream.entries.map((e) => e.key), ['k1', 'k2', 'k3'], 'stream keys');
  await api('map_clear', { channel: CH });
  const cleared = await api('map_read_state', { channel: CH });
  assertEq(cleared.entries.length, 0, 'cleared');

  step('a tags filter narrows the state and the live updates');
  const TAGGED = 'tagged:board';
  await api('map_publish', { channel: TAGGED, key: 'e1', data: { v: 1 }, tags: { team: 'eng' } });
  await api('map_publish', { channel: TAGGED, key: 's1', data: { v: 2 }, tags: { team: 'sales' } });
  await api('map_publish', { channel: TAGGED, key: 'e2', data: { v: 3 }, tags: { team: 'eng' } });
  const tagged = client.newMapSubscription(TAGGED, { tagsFilter: { key: 'team', cmp: 'eq', val: 'eng' } });
  const taggedEvents = new Events(tagged, MAP_EVENTS, 'tagged');
  tagged.subscribe();
  const taggedSync = await taggedEvents.next('sync');
  assertEq(keysOf(taggedSync.entries), ['e1', 'e2'], 'only the eng entries are synced');
  await api('map_publish', { channel: TAGGED, key: 's2', data: { v: 4 }, tags: { team: 'sales' } });
  await api('map_publish', { channel: TAGGED, key: 'e3', data: { v: 5 }, tags: { team: 'eng' } });
  const live = await taggedEvents.next('update');
  assertEq(live.key, 'e3', 'the sales update is left out, the eng one arrives');
  const refused = client.newMapSubscription('live:other', { tagsFilter: { key: 'team', cmp: 'eq', val: 'eng' } });
  const refusedEvents = new Events(refused, MAP_EVENTS, 'refused');
  refused.subscribe();
  const refusal = await refusedEvents.next('unsubscribed');
  assertEq(refusal.code, 107, 'a namespace without allow_tags_filter refuses filters');

  client.disconnect();
}, 30000);
