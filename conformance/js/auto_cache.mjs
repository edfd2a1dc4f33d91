// auto_cache_recover: in a cache recovery namespace with auto_cache_recover, a fresh subscribe
// (no position, no `since`) is recovered with the latest publication; with a tags filter, with
// the latest matching one. Without auto_cache_recover the same subscribe recovers nothing.
import { run, step, newClient, Events, SUB_EVENTS, CLIENT_EVENTS, assertEq, dec, api, sleep } from './lib.mjs';

const AUTO = 'cached:x';
const MANUAL = 'cachedmanual:x';

run('auto_cache', async () => {
  step('publications before anyone subscribes');
  for (const channel of [AUTO, MANUAL]) {
    for (const [n, kind] of [[1, 'a'], [2, 'b'], [3, 'a']]) {
      await api('publish', { channel, data: { n }, tags: { kind } });
    }
  }

  const client = newClient();
  const events = new Events(client, CLIENT_EVENTS, 'client');
  client.connect();
  await events.next('connected');

  const subscribe = async (channel, options) => {
    const sub = client.newSubscription(channel, options);
    const subEvents = new Events(sub, SUB_EVENTS, channel);
    sub.subscribe();
    const ctx = await subEvents.next('subscribed');
    return [sub, subEvents, ctx];
  };

  step('auto_cache_recover: the latest publication on a fresh subscribe');
  const [autoSub, autoEvents, auto] = await subscribe(AUTO);
  assertEq([auto.wasRecovering, auto.recovered], [true, true], 'recovery flags');
  assertEq(dec((await autoEvents.next('publication')).data).n, 3, 'latest publication');

  step('the same again after unsubscribing (every subscribe recovers)');
  autoSub.unsubscribe();
  await autoEvents.next('unsubscribed');
  await api('publish', { channel: AUTO, data: { n: 4 }, tags: { kind: 'b' } });
  autoSub.subscribe();
  await autoEvents.next('subscribed');
  assertEq(dec((await autoEvents.next('publication')).data).n, 4, 'latest publication after resubscribe');
  client.removeSubscription(autoSub);

  step('with a tags filter: the latest matching publication');
  const [, filteredEvents, filtered] = await subscribe(AUTO, { tagsFilter: { key: 'kind', cmp: 'eq', val: 'a' } });
  assertEq([filtered.wasRecovering, filtered.recovered], [true, true], 'filtered recovery flags');
  assertEq(dec((await filteredEvents.next('publication')).data).n, 3, 'latest matching publication');

  step('without auto_cache_recover: nothing recovered');
  const [, manualEvents, manual] = await subscribe(MANUAL);
  assertEq(manual.wasRecovering, false, 'no recovery asked, none made');
  await sleep(300);
  assertEq(manualEvents.of('publication').length, 0, 'no publication delivered');
  client.disconnect();
});
