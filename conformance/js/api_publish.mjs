// 3. a publication sent through the HTTP API reaches a subscribed client, with its offset on a
// channel with history, without one on a channel without history.
import { run, step, newClient, Events, SUB_EVENTS, CLIENT_EVENTS, assert, assertEq, dec, num, api, sleep } from './lib.mjs';

run('api_publish', async () => {
  const client = newClient({ token: process.env.GYRE_TOKEN });
  const events = new Events(client, CLIENT_EVENTS, 'client');
  const sub = client.newSubscription('news');
  const subEvents = new Events(sub, SUB_EVENTS, 'news');
  const plain = client.newSubscription('plain:news');
  const plainEvents = new Events(plain, SUB_EVENTS, 'plain');
  sub.subscribe();
  plain.subscribe();
  client.connect();

  step('subscribed');
  const subscribed = await subEvents.next('subscribed');
  assertEq([subscribed.recoverable, subscribed.positioned], [true, true], 'recoverable/positioned with force_recovery');
  assert(subscribed.streamPosition, 'stream position in subscribed ctx');
  assertEq(num(subscribed.streamPosition.offset), 0, 'initial stream offset');
  const epoch = subscribed.streamPosition.epoch;
  assert(typeof epoch === 'string' && epoch.length > 0, `epoch is set: ${epoch}`);
  const plainSubscribed = await plainEvents.next('subscribed');
  assertEq([plainSubscribed.recoverable, plainSubscribed.positioned], [false, false], 'plain channel is not positioned');

  for (let i = 1; i <= 3; i++) {
    step(`api publish ${i}`);
    const payload = { seq: i, text: `message ${i}` };
    const result = await api('publish', { channel: 'news', data: payload });
    assertEq(result, { offset: i, epoch }, `api publish ${i} result`);
    const pub = await subEvents.next('publication');
    assertEq(dec(pub.data), payload, `publication ${i} data`);
    assertEq(num(pub.offset), i, `publication ${i} offset`);
    assertEq(pub.info, undefined, `publication ${i} info (API publications have none)`);
  }

  step('api publish with tags');
  const tagged = await api('publish', { channel: 'news', data: { seq: 4 }, tags: { kind: 'test' } });
  assertEq(tagged.offset, 4, 'tagged publish offset');
  const tpub = await subEvents.next('publication');
  assertEq(tpub.tags, { kind: 'test' }, 'publication tags');
  assertEq(num(tpub.offset), 4, 'tagged publication offset');

  step('api publish to a channel without history');
  const plainResult = await api('publish', { channel: 'plain:news', data: { plain: true } });
  assertEq(plainResult, {}, 'publish result without history');
  const ppub = await plainEvents.next('publication');
  assertEq(dec(ppub.data), { plain: true }, 'plain publication data');
  assertEq(num(ppub.offset), 0, 'plain publication offset');

  step('a large publication (about 300 KB)');
  const big = { blob: 'x'.repeat(300 * 1024), list: Array.from({ length: 1000 }, (_, i) => i) };
  await api('publish', { channel: 'plain:news', data: big });
  const bigPub = await plainEvents.next('publication');
  assertEq(dec(bigPub.data), big, 'large publication data');

  step('api broadcast to both channels');
  const broadcast = await api('broadcast', { channels: ['news', 'plain:news'], data: { both: true } });
  assertEq(broadcast.responses, [{ result: { offset: 5, epoch } }, { result: {} }], 'broadcast responses');
  const b1 = await subEvents.next('publication');
  assertEq([dec(b1.data), num(b1.offset)], [{ both: true }, 5], 'broadcast publication on news');
  const b2 = await plainEvents.next('publication');
  assertEq(dec(b2.data), { both: true }, 'broadcast publication on plain:news');

  await sleep(200);
  assertEq(subEvents.take('publication'), [], 'no extra publications');
  assertEq(plainEvents.take('publication'), [], 'no extra plain publications');
  assertEq(events.of('error'), [], 'client errors');
  client.disconnect();
});
