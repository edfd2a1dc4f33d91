// 7. recovery after history overflow: 5 publications missed in a channel keeping only 2 ⇒
// wasRecovering true, recovered false, nothing stale delivered.
import { run, step, newClient, Events, SUB_EVENTS, CLIENT_EVENTS, assert, assertEq, dec, num, api, sleep } from './lib.mjs';

const CHANNEL = 'small:x';

run('recovery_overflow', async () => {
  const client = newClient({ token: process.env.GYRE_TOKEN, minReconnectDelay: 1000, maxReconnectDelay: 1500 });
  const events = new Events(client, CLIENT_EVENTS, 'client');
  const sub = client.newSubscription(CHANNEL);
  const subEvents = new Events(sub, SUB_EVENTS, 'sub');
  sub.subscribe();
  client.connect();

  step('first subscribe');
  const first = await subEvents.next('subscribed');
  assertEq([first.recoverable, first.wasRecovering], [true, false], 'first subscribed flags');
  const epoch = first.streamPosition.epoch;

  step('one live publication');
  await api('publish', { channel: CHANNEL, data: { n: 1 } });
  const p1 = await subEvents.next('publication');
  assertEq([dec(p1.data), num(p1.offset)], [{ n: 1 }, 1], 'first publication');

  step('server API disconnect with code 4000');
  await api('disconnect', { user: 'u1', disconnect: { code: 4000, reason: 'app reconnect' } });
  const connecting = await events.next('connecting', 5000, (c) => c.code !== 0);
  assertEq([connecting.code, connecting.reason], [4000, 'app reconnect'], 'connecting ctx');

  step('publish 5 while the client reconnects');
  for (let n = 2; n <= 6; n++) {
    const r = await api('publish', { channel: CHANNEL, data: { n } });
    assertEq(r.offset, n, `offset of missed publication ${n}`);
  }
  assert(client.state === 'connecting', `client still reconnecting (state ${client.state})`);
  const hist = await api('history', { channel: CHANNEL, limit: -1 });
  assertEq(hist.publications.map((p) => p.offset), [5, 6], 'the server keeps only 2');

  step('resubscribe: not recovered');
  const second = await subEvents.next('subscribed', 5000);
  assertEq([second.wasRecovering, second.recovered], [true, false], 'wasRecovering/recovered');
  assertEq({ offset: num(second.streamPosition.offset), epoch: second.streamPosition.epoch }, { offset: 6, epoch }, 'position after the failed recovery');

  step('next live publication');
  await api('publish', { channel: CHANNEL, data: { n: 7 } });
  const p7 = await subEvents.next('publication');
  assertEq([dec(p7.data), num(p7.offset)], [{ n: 7 }, 7], 'live publication');
  await sleep(300);
  assertEq(subEvents.of('publication').map((p) => num(p.offset)), [1, 7], 'publications delivered');
  client.disconnect();
});
