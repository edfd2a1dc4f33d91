// Versioned publications: server API publish/broadcast with `version` (and `version_epoch`)
// drop out-of-order and repeated versions per channel (the API answers the stream's current
// top position and nothing is delivered); a new version epoch starts over; channels without
// history ignore versions. The subscriber sees exactly the accepted publications.
import { run, step, newClient, Events, SUB_EVENTS, CLIENT_EVENTS, assertEq, dec, num, api, sleep } from './lib.mjs';

const A = 'versioned:a';
const B = 'versioned:b';
const PLAIN = 'unversioned:c';

run('versioned', async () => {
  const client = newClient();
  const events = new Events(client, CLIENT_EVENTS, 'client');
  const subs = {};
  for (const channel of [A, B, PLAIN]) {
    const sub = client.newSubscription(channel);
    subs[channel] = new Events(sub, SUB_EVENTS, channel);
    sub.subscribe();
  }
  client.connect();
  await events.next('connected');
  for (const channel of [A, B, PLAIN]) {
    await subs[channel].next('subscribed');
  }

  const publish = (channel, n, version, versionEpoch) => {
    const body = { channel, data: { n }, version };
    if (versionEpoch !== undefined) {
      body.version_epoch = versionEpoch;
    }
    return api('publish', body);
  };

  step('versions 1, 2 accepted; 2 again and 1 dropped with the top position');
  const r1 = await publish(A, 1, 1);
  const r2 = await publish(A, 2, 2);
  assertEq([r1.offset, r2.offset, r2.epoch], [1, 2, r1.epoch], 'accepted results');
  for (const [n, version] of [[3, 2], [4, 1]]) {
    const r = await publish(A, n, version);
    assertEq([r.offset, r.epoch], [2, r1.epoch], `result of stale version ${version}`);
  }
  const r5 = await publish(A, 5, 5);
  assertEq(r5.offset, 3, 'version 5 accepted at offset 3');

  step('version epochs: another epoch starts over, an empty one compares with the last');
  const r6 = await publish(A, 6, 1, 'e2');
  assertEq(r6.offset, 4, 'version 1 of epoch e2 accepted');
  assertEq((await publish(A, 7, 1, 'e2')).offset, 4, 'version 1 of e2 again dropped');
  assertEq((await publish(A, 8, 1)).offset, 4, 'version 1 without an epoch dropped');
  assertEq((await publish(A, 9, 2, 'e2')).offset, 5, 'version 2 of e2 accepted');

  step('unversioned publications always go through and keep the version');
  assertEq((await api('publish', { channel: A, data: { n: 10 } })).offset, 6, 'unversioned');
  assertEq((await publish(A, 11, 2, 'e2')).offset, 6, 'version 2 of e2 still dropped');

  step('broadcast: versions are per channel');
  const b1 = await api('broadcast', { channels: [A, B], data: { n: 12 }, version: 3, version_epoch: 'e2' });
  assertEq(b1.responses.map((r) => r.result.offset), [7, 1], 'broadcast version 3 lands in both');
  const b2 = await api('broadcast', { channels: [A, B], data: { n: 13 }, version: 3, version_epoch: 'e2' });
  assertEq(b2.responses.map((r) => r.result.offset), [7, 1], 'broadcast version 3 again: dropped in both');

  step('a channel without history ignores versions');
  await publish(PLAIN, 14, 5);
  await publish(PLAIN, 15, 5);
  await publish(PLAIN, 16, 1);

  step('the subscribers got exactly the accepted publications');
  const expect = async (channel, ns) => {
    for (const n of ns) {
      const p = await subs[channel].next('publication');
      assertEq(dec(p.data).n, n, `${channel}: publication ${n}`);
    }
  };
  await expect(A, [1, 2, 5, 6, 9, 10, 12]);
  await expect(B, [12]);
  await expect(PLAIN, [14, 15, 16]);
  await sleep(300);
  assertEq(subs[A].of('publication').map((p) => num(p.offset)), [1, 2, 3, 4, 5, 6, 7], 'offsets of A');
  assertEq(subs[B].of('publication').length, 1, 'nothing more in B');
  const history = await api('history', { channel: A, limit: -1 });
  assertEq(history.publications.map((p) => p.data.n), [1, 2, 5, 6, 9, 10, 12], 'history of A');
  assertEq(history.publications.map((p) => p.version ?? 0), [1, 2, 5, 1, 2, 0, 3], 'versions kept in history');
  client.disconnect();
});
