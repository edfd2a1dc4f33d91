// 6. recovery after a dropped connection: the server API disconnects user u1 with a
// reconnecting code, 3 publications are missed, and the resubscribe recovers exactly them.
import { run, step, newClient, Events, SUB_EVENTS, CLIENT_EVENTS, assert, assertEq, dec, num, api, sleep } from './lib.mjs';

const CHANNEL = 'rec';

run('recovery', async () => {
  // A long reconnect delay leaves time to publish while the client is away.
  const client = newClient({ token: process.env.GYRE_TOKEN, minReconnectDelay: 1000, maxReconnectDelay: 1500 });
  const events = new Events(client, CLIENT_EVENTS, 'client');
  const sub = client.newSubscription(CHANNEL);
  const subEvents = new Events(sub, SUB_EVENTS, 'sub');
  sub.subscribe();
  client.connect();
  const firstConnect = await events.next('connected');

  step('first subscribe');
  const first = await subEvents.next('subscribed');
  assertEq([first.recoverable, first.positioned, first.wasRecovering, first.recovered], [true, true, false, false], 'first subscribed flags');
  const epoch = first.streamPosition.epoch;

  step('one live publication');
  const r1 = await api('publish', { channel: CHANNEL, data: { n: 1 } });
  assertEq([r1.offset, r1.epoch], [1, epoch], 'first publish result');
  const p1 = await subEvents.next('publication');
  assertEq([dec(p1.data), num(p1.offset)], [{ n: 1 }, 1], 'first publication');

  step('server API disconnect with code 3011');
  await api('disconnect', { user: 'u1', disconnect: { code: 3011, reason: 'force reconnect' } });
  const connecting = await events.next('connecting', 5000, (c) => c.code !== 0);
  assertEq([connecting.code, connecting.reason], [3011, 'force reconnect'], 'connecting ctx after the API disconnect');
  const subscribing = await subEvents.next('subscribing', 5000, (c) => c.code !== 0);
  assertEq(subscribing.code, 1, 'subscription goes to subscribing (transport closed)');

  step('publish 3 while the client reconnects');
  for (let n = 2; n <= 4; n++) {
    const r = await api('publish', { channel: CHANNEL, data: { n } });
    assertEq(r.offset, n, `offset of missed publication ${n}`);
  }
  assert(client.state === 'connecting', `client still reconnecting while publishing (state ${client.state})`);

  step('reconnect and recover');
  const secondConnect = await events.next('connected', 5000);
  assert(secondConnect.client !== firstConnect.client, 'a new connection');
  const second = await subEvents.next('subscribed', 5000);
  assertEq([second.wasRecovering, second.recovered], [true, true], 'wasRecovering/recovered after the reconnect');
  assertEq(second.hasRecoveredPublications, true, 'hasRecoveredPublications');
  assertEq(second.streamPosition.epoch, epoch, 'epoch unchanged');

  step('exactly the missed publications, in order');
  for (let n = 2; n <= 4; n++) {
    const p = await subEvents.next('publication');
    assertEq([dec(p.data), num(p.offset)], [{ n }, n], `recovered publication ${n}`);
  }

  step('a live publication after the recovery');
  await api('publish', { channel: CHANNEL, data: { n: 5 } });
  const p5 = await subEvents.next('publication');
  assertEq([dec(p5.data), num(p5.offset)], [{ n: 5 }, 5], 'live publication after the recovery');
  await sleep(300);
  assertEq(subEvents.of('publication').map((p) => num(p.offset)), [1, 2, 3, 4, 5], 'all publications, no duplicates');

  step('unsubscribe, 2 publications missed, subscribe again: recovered from the kept position');
  sub.unsubscribe();
  await subEvents.next('unsubscribed');
  for (let n = 6; n <= 7; n++) {
    await api('publish', { channel: CHANNEL, data: { n } });
  }
  sub.subscribe();
  const third = await subEvents.next('subscribed');
  assertEq([third.wasRecovering, third.recovered], [true, true], 'recovery flags after a resubscribe');
  for (let n = 6; n <= 7; n++) {
    const p = await subEvents.next('publication');
    assertEq([dec(p.data), num(p.offset)], [{ n }, n], `publication ${n} recovered after the resubscribe`);
  }
  await sleep(300);
  assertEq(subEvents.of('publication').map((p) => num(p.offset)), [1, 2, 3, 4, 5, 6, 7], 'all publications, no duplicates');
  client.disconnect();
});
