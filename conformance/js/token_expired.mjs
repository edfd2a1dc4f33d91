// 11b. an expired connection token: the server answers error 109. Without getToken the SDK
// reports a configuration error and ends disconnected (unauthorized, code 1); with getToken
// it calls it once and connects with the fresh token.
import { run, step, newClient, Events, CLIENT_EVENTS, assertEq, sleep } from './lib.mjs';

run('token_expired', async () => {
  step('expired token, no getToken');
  const plain = newClient({ token: process.env.GYRE_TOKEN_EXPIRED });
  const plainEvents = new Events(plain, CLIENT_EVENTS, 'plain');
  plain.connect();
  const error = await plainEvents.next('error');
  assertEq([error.type, error.error.code, error.error.message], ['connect', 109, 'token expired'], 'connect error 109');
  const config = await plainEvents.next('error');
  assertEq([config.type, config.error.code], ['configuration', 12], 'configuration error: no getToken');
  const disconnected = await plainEvents.next('disconnected');
  assertEq([disconnected.code, disconnected.reason], [1, 'unauthorized'], 'disconnected ctx');
  await sleep(300);
  assertEq(plainEvents.of('connected'), [], 'never connected');
  assertEq(plain.state, 'disconnected', 'state');

  step('expired token with getToken');
  let calls = 0;
  const refreshing = newClient({
    token: process.env.GYRE_TOKEN_EXPIRED,
    getToken: async () => {
      calls++;
      return process.env.GYRE_TOKEN_FRESH;
    },
  });
  const events = new Events(refreshing, CLIENT_EVENTS, 'refreshing');
  refreshing.connect();
  const e109 = await events.next('error');
  assertEq([e109.type, e109.error.code], ['connect', 109], 'connect error 109');
  const connected = await events.next('connected');
  assertEq(calls, 1, 'getToken calls');
  assertEq(typeof connected.client, 'string', 'client id');
  await sleep(300);
  assertEq(refreshing.state, 'connected', 'stays connected');
  assertEq(events.of('error').length, 1, 'only the 109 error');
  refreshing.disconnect();
});
