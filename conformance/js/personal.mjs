// 9. personal channel: with client.subscribe_to_user_personal_channel the client is subscribed
// to #u1 by the server, and an API publication to #u1 arrives as a client-level publication.
import { run, step, newClient, Events, CLIENT_EVENTS, assertEq, dec, api, sleep } from './lib.mjs';

run('personal', async () => {
  const client = newClient({ token: process.env.GYRE_TOKEN });
  const events = new Events(client, CLIENT_EVENTS, 'client');
  client.connect();

  step('server-side subscribed to #u1');
  const subscribed = await events.next('subscribed');
  assertEq(subscribed.channel, '#u1', 'personal channel');
  await events.next('connected');

  step('publication to #u1');
  const payload = { note: 'for you', n: 7 };
  await api('publish', { channel: '#u1', data: payload });
  const pub = await events.next('publication');
  assertEq(pub.channel, '#u1', 'publication channel');
  assertEq(dec(pub.data), payload, 'publication data');

  step('publication to another user does not arrive');
  await api('publish', { channel: '#u2', data: { not: 'mine' } });
  await sleep(300);
  assertEq(events.take('publication'), [], 'no publication of #u2');
  assertEq(events.of('subscribed').map((s) => s.channel), ['#u1'], 'only one server-side subscription');
  client.disconnect();
});
