// 1. connect/disconnect: states disconnected → connecting → connected → disconnected; the
// connected context carries a client id; disconnect() gives code 0.
import { run, step, newClient, Events, CLIENT_EVENTS, assert, assertEq, TRANSPORT } from './lib.mjs';

run('connect', async () => {
  const client = newClient();
  const events = new Events(client, CLIENT_EVENTS, 'client');
  assertEq(client.state, 'disconnected', 'initial state');

  step('connect');
  client.connect();
  const connecting = await events.next('connecting');
  assertEq([connecting.code, connecting.reason], [0, 'connect called'], 'connecting ctx');
  const connected = await events.next('connected');
  assert(typeof connected.client === 'string' && connected.client.length > 0, `client id in connected ctx: ${connected.client}`);
  assert(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/.test(connected.client), `client id is a UUID v4: ${connected.client}`);
  assertEq(connected.transport, TRANSPORT, 'transport');
  assertEq(client.state, 'connected', 'state after connected');

  step('ready resolves');
  await client.ready(1000);

  step('disconnect');
  client.disconnect();
  const disconnected = await events.next('disconnected');
  assertEq([disconnected.code, disconnected.reason], [0, 'disconnect called'], 'disconnected ctx');
  assertEq(client.state, 'disconnected', 'final state');

  const transitions = events.of('state').map((s) => `${s.oldState}->${s.newState}`);
  assertEq(transitions, ['disconnected->connecting', 'connecting->connected', 'connected->disconnected'], 'state transitions');
  assertEq(events.of('error'), [], 'error events');
  assertEq(events.names().filter((n) => n !== 'state'), ['connecting', 'connected', 'disconnected'], 'event order');

  step('connect again gets a new client id');
  client.connect();
  const again = await events.next('connected');
  assert(again.client !== connected.client, 'a new connection has a new client id');
  client.disconnect();
  await events.next('disconnected');
});
