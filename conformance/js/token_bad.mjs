// 11a. a token with a bad signature ⇒ disconnected with code 3500 and no reconnect.
import { run, step, newClient, Events, CLIENT_EVENTS, assertEq, sleep } from './lib.mjs';

run('token_bad', async () => {
  const client = newClient({ token: process.env.GYRE_TOKEN_BAD });
  const events = new Events(client, CLIENT_EVENTS, 'client');
  client.connect();

  step('disconnected with 3500');
  const disconnected = await events.next('disconnected');
  assertEq([disconnected.code, disconnected.reason], [3500, 'invalid token'], 'disconnected ctx');
  assertEq(client.state, 'disconnected', 'state');

  step('no reconnect');
  await sleep(1000);
  assertEq(events.names().filter((n) => n !== 'state'), ['connecting', 'disconnected'], 'events');
  assertEq(client.state, 'disconnected', 'still disconnected');
});
