// 2. subscribe, client publish, receive the publication (data equal), unsubscribe → unsubscribed.
import { run, step, newClient, Events, CLIENT_EVENTS, SUB_EVENTS, assert, assertEq, enc, dec, sleep } from './lib.mjs';

run('pubsub', async () => {
  const client = newClient();
  const events = new Events(client, CLIENT_EVENTS, 'client');
  const sub = client.newSubscription('chat');
  const subEvents = new Events(sub, SUB_EVENTS, 'sub');

  step('subscribe before connect');
  sub.subscribe();
  client.connect();
  const connected = await events.next('connected');
  const subscribed = await subEvents.next('subscribed');
  assertEq(subscribed.channel, 'chat', 'subscribed channel');
  assertEq([subscribed.wasRecovering, subscribed.recovered], [false, false], 'no recovery on a channel without history');
  assertEq(sub.state, 'subscribed', 'subscription state');

  step('client publish');
  const payload = { text: 'hello', n: 42, nested: { list: [1, 'two', null, true] }, unicode: 'héllo ✓' };
  const result = await sub.publish(enc(payload));
  assertEq(result, {}, 'publish result');
  const pub = await subEvents.next('publication');
  assertEq(pub.channel, 'chat', 'publication channel');
  assertEq(dec(pub.data), payload, 'publication data');
  assert(pub.info, 'publication carries the publisher info');
  assertEq(pub.info.client, connected.client, 'publisher client id');
  assertEq(pub.info.user, '', 'publisher user (anonymous)');

  step('client-level publish to the same channel');
  const second = { text: 'second' };
  await client.publish('chat', enc(second));
  const pub2 = await subEvents.next('publication');
  assertEq(dec(pub2.data), second, 'second publication data');

  step('unsubscribe');
  sub.unsubscribe();
  const unsubscribed = await subEvents.next('unsubscribed');
  assertEq([unsubscribed.code, unsubscribed.reason], [0, 'unsubscribe called'], 'unsubscribed ctx');
  assertEq(sub.state, 'unsubscribed', 'state after unsubscribe');

  step('no delivery after unsubscribe');
  // Publish from a second client and make sure the first one sees nothing more.
  const other = newClient();
  other.connect();
  await other.ready(5000);
  await other.publish('chat', enc({ text: 'after' }));
  await sleep(300);
  assertEq(subEvents.take('publication'), [], 'publications after unsubscribe');
  const transitions = subEvents.of('state').map((s) => `${s.oldState}->${s.newState}`);
  assertEq(transitions, ['unsubscribed->subscribing', 'subscribing->subscribed', 'subscribed->unsubscribed'], 'subscription state transitions');
  assertEq(events.of('error').concat(subEvents.of('error')), [], 'error events');
  other.disconnect();
  client.disconnect();
});
