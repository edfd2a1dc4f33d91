// 10. server-side subscriptions: from the token's `channels` claim (client-level events), and
// added/removed at runtime by the server API subscribe/unsubscribe; they recover through the
// connect command after a reconnect. Also the API unsubscribe of a client-side subscription
// (code 2000) and the API disconnect with its default code (3503, no reconnect).
import { run, step, newClient, Events, CLIENT_EVENTS, SUB_EVENTS, assert, assertEq, dec, num, api, sleep } from './lib.mjs';

run('server_subs', async () => {
  const client = newClient({ token: process.env.GYRE_TOKEN, minReconnectDelay: 1000, maxReconnectDelay: 1500 });
  const events = new Events(client, CLIENT_EVENTS, 'client');
  client.connect();

  step('subscribed to the token channels');
  const first = await events.next('subscribed');
  const second = await events.next('subscribed');
  assertEq([first.channel, second.channel].sort(), ['srv1', 'srv2'], 'server-side channels');
  assert(first.recoverable && first.positioned, 'server-side sub on a channel with history is recoverable');
  await events.next('connected');

  step('publication to srv1');
  await api('publish', { channel: 'srv1', data: { to: 'srv1' } });
  const p1 = await events.next('publication');
  assertEq([p1.channel, dec(p1.data), num(p1.offset)], ['srv1', { to: 'srv1' }, 1], 'srv1 publication');

  step('publication to srv2');
  await api('publish', { channel: 'srv2', data: { to: 'srv2' } });
  const p2 = await events.next('publication');
  assertEq([p2.channel, dec(p2.data)], ['srv2', { to: 'srv2' }], 'srv2 publication');

  step('API subscribe to srv3');
  await api('subscribe', { user: 'u1', channel: 'srv3' });
  const s3 = await events.next('subscribed');
  assertEq(s3.channel, 'srv3', 'subscribed channel from the API');
  await api('publish', { channel: 'srv3', data: { to: 'srv3' } });
  const p3 = await events.next('publication');
  assertEq([p3.channel, dec(p3.data)], ['srv3', { to: 'srv3' }], 'srv3 publication');

  step('API subscribe to a channel without history');
  await api('subscribe', { user: 'u1', channel: 'nohist:a' });
  const sn = await events.next('subscribed');
  assertEq([sn.channel, sn.recoverable, sn.positioned], ['nohist:a', false, false], 'subscribed to a channel without history');
  await api('publish', { channel: 'nohist:a', data: { to: 'nohist' } });
  const pn = await events.next('publication');
  assertEq([pn.channel, dec(pn.data)], ['nohist:a', { to: 'nohist' }], 'nohist:a publication');
  await api('unsubscribe', { user: 'u1', channel: 'nohist:a' });
  const un = await events.next('unsubscribed');
  assertEq(un.channel, 'nohist:a', 'unsubscribed from nohist:a');

  step('API unsubscribe from srv1');
  await api('unsubscribe', { user: 'u1', channel: 'srv1' });
  const u1 = await events.next('unsubscribed');
  assertEq(u1.channel, 'srv1', 'unsubscribed channel');
  await api('publish', { channel: 'srv1', data: { to: 'srv1', late: true } });
  await api('publish', { channel: 'srv2', data: { to: 'srv2', again: true } });
  const p4 = await events.next('publication');
  assertEq([p4.channel, dec(p4.data)], ['srv2', { to: 'srv2', again: true }], 'srv2 still delivered');
  await sleep(300);
  assertEq(events.take('publication'), [], 'nothing from srv1 after the unsubscribe');

  step('the server API info counts the client');
  const info = await api('info', {});
  assertEq(info.nodes[0].num_clients, 1, 'one client');

  step('forced reconnect: server-side subscriptions recover through the connect command');
  const before = events.of('connected')[0].client;
  await api('disconnect', { user: 'u1', disconnect: { code: 3011, reason: 'force reconnect' } });
  const connecting = await events.next('connecting', 5000, (c) => c.code !== 0);
  assertEq(connecting.code, 3011, 'connecting code');
  await api('publish', { channel: 'srv2', data: { missed: 3 } });
  await api('publish', { channel: 'srv2', data: { missed: 4 } });
  await api('publish', { channel: 'srv1', data: { missed: 'srv1' } });
  assertEq(client.state, 'connecting', 'still reconnecting');
  const again = await events.next('connected', 5000);
  assert(again.client !== before, 'a new connection');
  const r1 = await events.next('subscribed', 1000, (c) => c.channel === 'srv1');
  assertEq([r1.wasRecovering, r1.recovered], [false, false], 'srv1 (unsubscribed before, so no position) is not recovered');
  const r2 = await events.next('subscribed', 1000, (c) => c.channel === 'srv2');
  assertEq([r2.wasRecovering, r2.recovered], [true, true], 'srv2 recovered');
  const m3 = await events.next('publication');
  const m4 = await events.next('publication');
  assertEq([m3.channel, dec(m3.data), num(m3.offset)], ['srv2', { missed: 3 }, 3], 'first missed srv2 publication');
  assertEq([m4.channel, dec(m4.data), num(m4.offset)], ['srv2', { missed: 4 }, 4], 'second missed srv2 publication');
  // srv3 came from the API, not from the token: it is gone after the reconnect.
  const gone = await events.next('unsubscribed', 1000);
  assertEq(gone.channel, 'srv3', 'the API subscription does not survive a reconnect');
  await sleep(300);
  assertEq(events.take('publication'), [], 'no other publications after the reconnect');
  assertEq(events.take('subscribed'), [], 'no other server-side subscriptions');

  step('API unsubscribe of a client-side subscription: code 2000');
  const cs = client.newSubscription('cs');
  const csEvents = new Events(cs, SUB_EVENTS, 'cs');
  cs.subscribe();
  await csEvents.next('subscribed');
  await api('unsubscribe', { user: 'u1', channel: 'cs' });
  const csGone = await csEvents.next('unsubscribed');
  assertEq([csGone.code, csGone.reason], [2000, 'server unsubscribe'], 'unsubscribed ctx');
  assertEq(cs.state, 'unsubscribed', 'client-side subscription state');

  step('API disconnect with the default code: 3503, no reconnect');
  await api('disconnect', { user: 'u1' });
  const disconnected = await events.next('disconnected');
  assertEq([disconnected.code, disconnected.reason], [3503, 'force disconnect'], 'disconnected ctx');
  await sleep(1700);
  assertEq(client.state, 'disconnected', 'no reconnect after 3503');
  assertEq(events.of('connected').length, 2, 'connections');
  assertEq(events.of('error'), [], 'client errors');
});
