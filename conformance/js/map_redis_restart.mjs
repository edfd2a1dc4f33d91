// A map subscriber across a Redis restart (map_broker.type: redis, nothing persisted): the
// node tells it its state is gone, it subscribes again, restarts from the (now empty) state in
// a new epoch and receives live changes again. GYRE:restart-redis asks the test to restart.
import { run, step, newClient, Events, SUB_EVENTS, CLIENT_EVENTS, assertEq, dec, api, sleep } from './lib.mjs';

const MAP_EVENTS = [...SUB_EVENTS, 'sync', 'update'];
const CH = 'live:restart';

async function apiWhenUp(method, body) {
  for (let i = 0; i < 100; i++) {
    try {
      return await api(method, body);
    } catch (e) {
      await sleep(100);
    }
  }
  return api(method, body);
}

run('map_redis_restart', async () => {
  await api('map_publish', { channel: CH, key: 'before', data: { v: 1 } });
  const client = newClient({ token: process.env.GYRE_TOKEN, minReconnectDelay: 200, maxReconnectDelay: 500 });
  const events = new Events(client, CLIENT_EVENTS, 'client');
  const sub = client.newMapSubscription(CH);
  const subEvents = new Events(sub, MAP_EVENTS, 'sub');
  sub.subscribe();
  client.connect();
  await events.next('connected');
  const first = await subEvents.next('subscribed');
  const sync = await subEvents.next('sync');
  assertEq(sync.entries.map((e) => e.key), ['before'], 'state before the restart');

  step('Redis restarts and loses the map');
  console.log('GYRE:restart-redis');
  const again = await subEvents.next('subscribed', 20000);
  assertEq(again.recovered, false, 'the old position is gone');
  const resync = await subEvents.next('sync', 20000);
  assertEq(resync.entries.length, 0, 'the state is empty after the restart');
  assertEq(again.streamPosition.epoch !== first.streamPosition.epoch, true, 'a new epoch');

  step('live changes flow again');
  await apiWhenUp('map_publish', { channel: CH, key: 'after', data: { v: 2 } });
  const u = await subEvents.next('update', 10000);
  assertEq([u.key, dec(u.data)], ['after', { v: 2 }], 'live after the restart');
  client.disconnect();
}, 40000);
