// 11c. a connection token expiring 4 s after it was minted: with getToken the SDK refreshes it
// and the connection survives past the old expiry (+ expired_close_delay 2 s); a client whose
// getToken never answers is closed by the server with 3005.
import { run, step, newClient, Events, CLIENT_EVENTS, assert, assertEq, sleep, enc } from './lib.mjs';

const exp = Number(process.env.GYRE_TOKEN_SHORT_EXP) * 1000;

run('token_refresh', async () => {
  let refreshCalls = 0;
  const good = newClient({
    token: process.env.GYRE_TOKEN_SHORT,
    getToken: async () => {
      refreshCalls++;
      return process.env.GYRE_TOKEN_FRESH;
    },
  });
  const goodEvents = new Events(good, CLIENT_EVENTS, 'good');

  let stuckCalls = 0;
  const stuck = newClient({
    token: process.env.GYRE_TOKEN_SHORT,
    // Never answers: the client can't refresh, so the server has to close it.
    getToken: () => {
      stuckCalls++;
      return new Promise(() => {});
    },
  });
  const stuckEvents = new Events(stuck, CLIENT_EVENTS, 'stuck');

  step('connect both');
  good.connect();
  stuck.connect();
  const connected = await goodEvents.next('connected');
  await stuckEvents.next('connected');
  assertEq(refreshCalls, 0, 'no getToken call for the initial token');
  assert(Date.now() < exp, 'connected before the token expiry');

  step('refresh around the expiry');
  const waitRefresh = exp - Date.now() + 1500;
  for (let i = 0; i < waitRefresh / 50 && refreshCalls === 0; i++) {
    await sleep(50);
  }
  assert(refreshCalls >= 1, 'getToken was called to refresh the token');

  step('the client without a refresh is closed with 3005');
  const closed = await stuckEvents.next('connecting', exp - Date.now() + 5000, (c) => c.code !== 0);
  assertEq(closed.code, 3005, `code of the close of the client that did not refresh (${closed.reason})`);
  assert(Date.now() >= exp + 1500, 'closed only after the token expiry + expired_close_delay');
  assert(stuckCalls >= 1, 'the stuck client tried to refresh');

  step('stays connected past the old expiry + a few seconds');
  const until = exp + 4000;
  while (Date.now() < until) {
    await sleep(100);
  }
  assertEq(good.state, 'connected', 'state of the refreshing client');
  assertEq(goodEvents.names().filter((n) => n !== 'state'), ['connecting', 'connected'], 'events of the refreshing client');
  assertEq(goodEvents.of('connected').map((c) => c.client), [connected.client], 'same connection');
  const rpc = await good.rpc('anything', enc({})).catch((e) => e);
  assertEq(rpc.code, 108, 'the connection still answers commands');
  good.disconnect();
  stuck.disconnect();
}, 20000);
