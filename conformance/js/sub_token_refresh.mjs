// 11d. subscription tokens for private channels: a token expiring 4 s after it was minted is
// refreshed through the subscription's getToken and the subscription survives past the old
// expiry (+ expired_sub_close_delay 2 s); a subscription whose getToken never answers gets
// unsubscribe 2501 from the server (and resubscribes); no token at all ⇒ 103.
import { run, step, newClient, Events, CLIENT_EVENTS, SUB_EVENTS, assert, assertEq, dec, api, sleep } from './lib.mjs';

const exp = Number(process.env.GYRE_SUB_TOKEN_EXP) * 1000;

run('sub_token_refresh', async () => {
  const client = newClient({ token: process.env.GYRE_TOKEN });
  const events = new Events(client, CLIENT_EVENTS, 'client');

  const calls = [];
  const good = client.newSubscription('$priv', {
    token: process.env.GYRE_SUB_TOKEN_SHORT,
    getToken: async (ctx) => {
      calls.push(ctx.channel);
      return process.env.GYRE_SUB_TOKEN_FRESH;
    },
  });
  const goodEvents = new Events(good, SUB_EVENTS, '$priv');

  const stuckCalls = [];
  const stuck = client.newSubscription('$priv2', {
    token: process.env.GYRE_SUB_TOKEN_SHORT2,
    getToken: (ctx) => {
      stuckCalls.push(ctx.channel);
      return new Promise(() => {});
    },
  });
  const stuckEvents = new Events(stuck, SUB_EVENTS, '$priv2');

  const noToken = client.newSubscription('$priv3');
  const noTokenEvents = new Events(noToken, SUB_EVENTS, '$priv3');

  step('subscribe');
  good.subscribe();
  stuck.subscribe();
  client.connect();
  await events.next('connected');
  await goodEvents.next('subscribed');
  await stuckEvents.next('subscribed');
  assertEq(calls, [], 'no getToken call for the initial token');

  step('a private channel without a token: 103 ⇒ unsubscribed');
  noToken.subscribe();
  const denied = await noTokenEvents.next('unsubscribed');
  assertEq([denied.code, denied.reason], [103, 'permission denied'], 'unsubscribed ctx');

  step('publication to $priv');
  await api('publish', { channel: '$priv', data: { secret: 1 } });
  const p1 = await goodEvents.next('publication');
  assertEq(dec(p1.data), { secret: 1 }, 'publication data');

  step('refresh around the expiry');
  const waitRefresh = exp - Date.now() + 1500;
  for (let i = 0; i < waitRefresh / 50 && calls.length === 0; i++) {
    await sleep(50);
  }
  assertEq(calls, ['$priv'], 'getToken called with the channel');

  step('the subscription without a refresh gets unsubscribe 2501');
  const subscribing = await stuckEvents.next('subscribing', exp - Date.now() + 5000, (c) => c.code !== 0);
  assertEq(subscribing.code, 2501, `code of the unsubscribe of the subscription that did not refresh (${subscribing.reason})`);
  assert(Date.now() >= exp + 1500, 'unsubscribed only after the token expiry + expired_sub_close_delay');
  assertEq(stuckCalls.length >= 1, true, 'the stuck subscription tried to refresh');

  step('stays subscribed past the old expiry + a few seconds');
  while (Date.now() < exp + 4000) {
    await sleep(100);
  }
  assertEq(good.state, 'subscribed', 'state of the refreshed subscription');
  assertEq(goodEvents.of('subscribed').length, 1, 'subscribed once');
  assertEq(goodEvents.of('unsubscribed').concat(goodEvents.of('subscribing').slice(1)), [], 'no unsubscribe or resubscribe');
  await api('publish', { channel: '$priv', data: { secret: 2 } });
  const p2 = await goodEvents.next('publication');
  assertEq(dec(p2.data), { secret: 2 }, 'publication after the old expiry');
  assertEq(client.state, 'connected', 'client still connected');
  assertEq(events.of('connected').length, 1, 'no reconnect');
  client.disconnect();
}, 20000);
