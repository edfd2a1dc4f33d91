// 14. ping/pong keepalive: with client.ping_interval 2s and pong_timeout 1s the server pings
// and the SDK answers; the client (maxServerPingDelay 1 s, so a missing ping would make it
// reconnect with code 2 "no ping") and the server (a missing pong would close with 3012) keep
// the connection for 6 s.
import { run, step, newClient, Events, CLIENT_EVENTS, SUB_EVENTS, assertEq, dec, api, sleep } from './lib.mjs';

run('ping', async () => {
  const client = newClient({ maxServerPingDelay: 1000 });
  const events = new Events(client, CLIENT_EVENTS, 'client');
  const sub = client.newSubscription('keepalive');
  const subEvents = new Events(sub, SUB_EVENTS, 'sub');
  sub.subscribe();
  client.connect();
  const connected = await events.next('connected');
  await subEvents.next('subscribed');

  step('6 s of pings and pongs');
  await sleep(6000);
  assertEq(client.state, 'connected', 'client state');
  assertEq(events.names().filter((n) => n !== 'state'), ['connecting', 'connected'], 'client events');
  assertEq(events.of('connected').map((c) => c.client), [connected.client], 'same connection');

  step('the connection still delivers');
  await api('publish', { channel: 'keepalive', data: { still: 'here' } });
  const pub = await subEvents.next('publication');
  assertEq(dec(pub.data), { still: 'here' }, 'publication after 6 s');
  client.disconnect();
});
