// 12. rpc without an RPC proxy ⇒ error 108; subscribe to an unknown namespace ⇒ error 102,
// which the SDK surfaces as an `unsubscribed` event with that code (not a retry); the
// connection stays up.
import { run, step, newClient, Events, CLIENT_EVENTS, SUB_EVENTS, assert, assertEq, enc, sleep } from './lib.mjs';

run('errors', async () => {
  const client = newClient();
  const events = new Events(client, CLIENT_EVENTS, 'client');
  client.connect();
  const connected = await events.next('connected');

  step('rpc without a proxy');
  let rpcError = null;
  try {
    await client.rpc('some_method', enc({ x: 1 }));
  } catch (e) {
    rpcError = e;
  }
  assert(rpcError !== null, 'rpc must fail');
  assertEq([rpcError.code, rpcError.message], [108, 'not available'], 'rpc error');

  step('subscribe to an unknown namespace');
  const sub = client.newSubscription('nope:x');
  const subEvents = new Events(sub, SUB_EVENTS, 'nope:x');
  sub.subscribe();
  const unsubscribed = await subEvents.next('unsubscribed');
  assertEq([unsubscribed.code, unsubscribed.reason], [102, 'unknown channel'], 'unsubscribed ctx');
  assertEq(sub.state, 'unsubscribed', 'subscription state');
  let readyError = null;
  try {
    await sub.ready(1000);
  } catch (e) {
    readyError = e;
  }
  assert(readyError !== null, 'ready() of the failed subscription rejects');
  await sleep(700);
  assertEq(subEvents.of('subscribing').length, 1, 'no resubscribe attempt');

  step('publish to an unknown namespace');
  const pubError = await client.publish('nope:y', enc({})).catch((e) => e);
  assertEq(pubError.code, 102, 'publish error code');

  step('a valid subscribe still works');
  const ok = client.newSubscription('fine');
  ok.subscribe();
  await ok.ready(5000);

  step('the connection is still the same');
  assertEq(client.state, 'connected', 'client state');
  assertEq(events.of('connected').map((c) => c.client), [connected.client], 'no reconnect');
  assertEq(events.of('disconnected').concat(events.of('connecting').slice(1)), [], 'no disconnect');
  client.disconnect();
});
