// Proxies: the real SDK connects without a token through the connect proxy (the backend takes
// the user from the connect data), calls RPC, is refused a subscription by the subscribe
// proxy, gets its publication rewritten by the publish proxy, stays connected while the
// server refreshes its connection through the refresh proxy, and is disconnected by a
// `disconnect` reply.
import { run, step, newClient, Events, CLIENT_EVENTS, SUB_EVENTS, assert, assertEq, enc, dec, sleep } from './lib.mjs';

run('proxy', async () => {
  step('connect through the connect proxy');
  const client = newClient({ data: enc({ user: 'js' }) });
  const events = new Events(client, CLIENT_EVENTS, 'client');
  client.connect();
  const connected = await events.next('connected');
  assertEq(dec(connected.data), { hello: 'js' }, 'connect data from the proxy');

  step('rpc through the rpc proxy');
  const echo = await client.rpc('echo', enc({ x: 1 }));
  const data = dec(echo.data);
  assertEq([data.user, data.meta, data.data], ['js', { team: 'blue' }, { x: 1 }], 'rpc echo');
  const failed = await client.rpc('fail', enc({})).catch((e) => e);
  assertEq([failed.code, failed.message], [1000, 'custom'], 'custom rpc error');

  step('subscription refused by the subscribe proxy');
  const denied = client.newSubscription('sp:deny');
  const deniedEvents = new Events(denied, SUB_EVENTS, 'sp:deny');
  denied.subscribe();
  const unsubscribed = await deniedEvents.next('unsubscribed');
  assertEq([unsubscribed.code, unsubscribed.reason], [1403, 'not in this room'], 'refusal');

  step('publication rewritten by the publish proxy');
  const room = client.newSubscription('sp:room');
  const roomEvents = new Events(room, SUB_EVENTS, 'sp:room');
  room.subscribe();
  const subscribed = await roomEvents.next('subscribed');
  assertEq(dec(subscribed.data), { welcome: 'sp:room' }, 'subscribe data from the proxy');
  await room.publish(enc({ text: 'hi' }));
  const publication = await roomEvents.next('publication');
  assertEq(dec(publication.data), { rewritten: { text: 'hi' } }, 'rewritten publication');

  step('server-side refresh keeps the connection');
  const refresher = newClient({ data: enc({ user: 'refresher' }) });
  const refresherEvents = new Events(refresher, CLIENT_EVENTS, 'refresher');
  refresher.connect();
  await refresherEvents.next('connected');
  // The connection expires every second; the server refreshes it through the proxy.
  await sleep(3500);
  const stillThere = await refresher.rpc('echo', enc({}));
  assertEq(dec(stillThere.data).user, 'refresher', 'rpc after refreshes');
  assertEq(refresherEvents.of('disconnected').length, 0, 'no disconnect');
  assertEq(refresherEvents.of('connecting').length, 1, 'no reconnect');
  refresher.disconnect();

  step('a disconnect reply disconnects');
  client.rpc('bye_terminal', enc({})).catch(() => {});
  const disconnected = await events.next('disconnected');
  assertEq([disconnected.code, disconnected.reason], [4502, 'bye'], 'disconnect from the proxy');
});
