// 5. history paging: 10 publications via the API, then limit, since, all and reverse.
import { run, step, newClient, Events, SUB_EVENTS, assert, assertEq, dec, num, api } from './lib.mjs';

const CHANNEL = 'hist';

function offsets(result) {
  return result.publications.map((p) => num(p.offset));
}

function checkData(result, what) {
  for (const p of result.publications) {
    assertEq(dec(p.data), { n: num(p.offset), text: `pub ${num(p.offset)}` }, `${what}: data of offset ${num(p.offset)}`);
  }
}

run('history', async () => {
  step('publish 10 via the API');
  let epoch = '';
  for (let n = 1; n <= 10; n++) {
    const r = await api('publish', { channel: CHANNEL, data: { n, text: `pub ${n}` } });
    assertEq(r.offset, n, `offset of publication ${n}`);
    if (n === 1) {
      epoch = r.epoch;
    }
    assertEq(r.epoch, epoch, `epoch of publication ${n}`);
  }

  step('subscribe');
  const client = newClient({ token: process.env.GYRE_TOKEN });
  const sub = client.newSubscription(CHANNEL);
  const subEvents = new Events(sub, SUB_EVENTS, 'sub');
  sub.subscribe();
  client.connect();
  const subscribed = await subEvents.next('subscribed');
  assertEq({ offset: num(subscribed.streamPosition.offset), epoch: subscribed.streamPosition.epoch }, { offset: 10, epoch }, 'stream position at subscribe');

  step('limit 3');
  const first = await sub.history({ limit: 3 });
  assertEq(offsets(first), [1, 2, 3], 'first page offsets');
  assertEq([num(first.offset), first.epoch], [10, epoch], 'first page stream top');
  checkData(first, 'first page');

  step('limit 3 since offset 3');
  const second = await sub.history({ limit: 3, since: { offset: 3, epoch } });
  assertEq(offsets(second), [4, 5, 6], 'second page offsets');
  assertEq([num(second.offset), second.epoch], [10, epoch], 'second page stream top');
  checkData(second, 'second page');

  step('limit 3 since offset 9');
  const last = await sub.history({ limit: 3, since: { offset: 9, epoch } });
  assertEq(offsets(last), [10], 'last page offsets');

  step('since the top');
  const none = await sub.history({ limit: 3, since: { offset: 10, epoch } });
  assertEq(offsets(none), [], 'nothing after the top');

  step('limit -1 (all)');
  const all = await sub.history({ limit: -1 });
  assertEq(offsets(all), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 'all offsets');
  checkData(all, 'all');

  step('no limit: only the position');
  const position = await sub.history();
  assertEq([offsets(position), num(position.offset), position.epoch], [[], 10, epoch], 'history without limit');

  step('reverse, limit 2');
  const reverse = await sub.history({ reverse: true, limit: 2 });
  assertEq(offsets(reverse), [10, 9], 'reverse offsets');
  checkData(reverse, 'reverse');

  step('reverse since offset 5');
  const reverseSince = await sub.history({ reverse: true, limit: 2, since: { offset: 5, epoch } });
  assertEq(offsets(reverseSince), [4, 3], 'reverse since offsets');

  step('since with a wrong epoch: error 112');
  let error = null;
  try {
    await sub.history({ limit: 3, since: { offset: 3, epoch: 'not-the-epoch' } });
  } catch (e) {
    error = e;
  }
  assert(error !== null, 'history with a wrong epoch must fail');
  assertEq(error.code, 112, `error code for a wrong epoch (${JSON.stringify(error)})`);

  step('client-level history');
  const clientLevel = await client.history(CHANNEL, { limit: 2, since: { offset: 8, epoch } });
  assertEq(offsets(clientLevel), [9, 10], 'client-level history offsets');

  step('history over the API agrees');
  const viaApi = await api('history', { channel: CHANNEL, limit: 2, reverse: true });
  assertEq(viaApi.publications.map((p) => p.offset), [10, 9], 'API history offsets');
  assertEq(viaApi.publications.map((p) => p.data), [{ n: 10, text: 'pub 10' }, { n: 9, text: 'pub 9' }], 'API history data');
  assertEq([viaApi.offset, viaApi.epoch], [10, epoch], 'API history position');

  step('a new subscription with `since` recovers from that position');
  const other = newClient({ token: process.env.GYRE_TOKEN });
  const since = other.newSubscription(CHANNEL, { since: { offset: 7, epoch } });
  const sinceEvents = new Events(since, SUB_EVENTS, 'since');
  since.subscribe();
  other.connect();
  const recovered = await sinceEvents.next('subscribed');
  assertEq([recovered.wasRecovering, recovered.recovered], [true, true], 'recovery flags with since');
  for (let n = 8; n <= 10; n++) {
    const p = await sinceEvents.next('publication');
    assertEq([num(p.offset), dec(p.data)], [n, { n, text: `pub ${n}` }], `publication ${n} recovered with since`);
  }
  other.disconnect();
  client.disconnect();
});
