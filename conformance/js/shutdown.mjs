// 13. graceful shutdown: the Rust side sends SIGTERM to gyre; the connected client gets
// disconnect code 3001 (shutdown), goes to `connecting` with it and its subscription to
// `subscribing`.
import { run, step, newClient, Events, CLIENT_EVENTS, SUB_EVENTS, assertEq, log } from './lib.mjs';

run('shutdown', async () => {
  const client = newClient();
  const events = new Events(client, CLIENT_EVENTS, 'client');
  const sub = client.newSubscription('alive');
  const subEvents = new Events(sub, SUB_EVENTS, 'sub');
  sub.subscribe();
  client.connect();
  await events.next('connected');
  await subEvents.next('subscribed');

  step('ask for SIGTERM');
  console.log('GYRE:terminate');
  const connecting = await events.next('connecting', 10000, (c) => c.code !== 0);
  log(`SHUTDOWN_CODE ${connecting.code}`);
  assertEq([connecting.code, connecting.reason], [3001, 'shutdown'], 'connecting ctx after SIGTERM');
  const subscribing = await subEvents.next('subscribing', 5000, (c) => c.code !== 0);
  assertEq(subscribing.code, 1, 'subscription code (transport closed)');
  assertEq(client.state, 'connecting', 'the client keeps reconnecting');
  client.disconnect();
});
