// Tags filter: a subscription with `tagsFilter` receives only the server API publications
// whose tags match (an unfiltered subscriber of the same channel gets them all), recovers only
// matching ones after a dropped connection, and malformed or disallowed filters are answered
// with error 107 while the connection and the other subscribers go on.
import { run, step, newClient, Events, SUB_EVENTS, CLIENT_EVENTS, assert, assertEq, dec, num, api, sleep } from './lib.mjs';

const CHANNEL = 'tagged:prices';

// ticker is BTC, or ETH with a price above 100.
const FILTER = {
  op: 'or',
  nodes: [
    { key: 'ticker', cmp: 'eq', val: 'BTC' },
    {
      op: 'and',
      nodes: [
        { key: 'ticker', cmp: 'in', vals: ['ETH'] },
        { key: 'price', cmp: 'gt', val: '100' },
      ],
    },
  ],
};

// n, tags, and whether FILTER matches.
const LIVE = [
  [1, { ticker: 'BTC', price: '5' }, true],
  [2, { ticker: 'ETH', price: '50' }, false],
  [3, { ticker: 'ETH', price: '100.5' }, true],
  [4, { ticker: 'DOGE', price: '1000' }, false],
  [5, {}, false],
  [6, { ticker: 'BTC' }, true],
];
const MISSED = [
  [7, { ticker: 'ETH', price: '99' }, false],
  [8, { ticker: 'ETH', price: '101' }, true],
  [9, { ticker: 'XRP' }, false],
  [10, { ticker: 'BTC', price: '1' }, true],
  [11, { ticker: 'XRP' }, false],
];

async function publish([n, tags]) {
  const r = await api('publish', { channel: CHANNEL, data: { n }, tags });
  assertEq(r.offset, n, `offset of publication ${n}`);
}

const matching = (list) => list.filter(([, , m]) => m).map(([n]) => n);

async function expectPublications(events, ns, what) {
  for (const n of ns) {
    const p = await events.next('publication');
    assertEq([dec(p.data).n, num(p.offset)], [n, n], `${what}: publication ${n}`);
  }
}

run('tags_filter', async () => {
  const filtered = newClient({ token: process.env.GYRE_TOKEN, minReconnectDelay: 1000, maxReconnectDelay: 1500 });
  const filteredEvents = new Events(filtered, CLIENT_EVENTS, 'filtered');
  const fsub = filtered.newSubscription(CHANNEL, { tagsFilter: FILTER });
  const fsubEvents = new Events(fsub, SUB_EVENTS, 'fsub');
  fsub.subscribe();
  filtered.connect();
  await filteredEvents.next('connected');

  const plain = newClient();
  const psub = plain.newSubscription(CHANNEL);
  const psubEvents = new Events(psub, SUB_EVENTS, 'psub');
  psub.subscribe();
  plain.connect();

  step('both subscribed');
  const first = await fsubEvents.next('subscribed');
  assertEq([first.recoverable, first.positioned], [true, true], 'filtered subscription flags');
  await psubEvents.next('subscribed');

  step('live publications: only matching ones reach the filtered subscriber');
  for (const p of LIVE) {
    await publish(p);
  }
  await expectPublications(psubEvents, LIVE.map(([n]) => n), 'unfiltered');
  await expectPublications(fsubEvents, matching(LIVE), 'filtered');
  const tags = fsubEvents.of('publication').map((p) => p.tags);
  assertEq(tags[1], { ticker: 'ETH', price: '100.5' }, 'tags delivered with the publication');

  step('dropped connection: missed publications recovered through the filter');
  await api('disconnect', { user: 'u1', disconnect: { code: 3011, reason: 'force reconnect' } });
  await fsubEvents.next('subscribing', 5000, (c) => c.code !== 0);
  for (const p of MISSED) {
    await publish(p);
  }
  const second = await fsubEvents.next('subscribed', 5000);
  assertEq([second.wasRecovering, second.recovered], [true, true], 'recovery flags');
  await expectPublications(fsubEvents, matching(MISSED), 'recovered');
  await expectPublications(psubEvents, MISSED.map(([n]) => n), 'unfiltered while the other was away');

  step('live again after the recovery');
  await publish([12, { ticker: 'XRP' }]);
  await publish([13, { ticker: 'BTC' }]);
  await expectPublications(fsubEvents, [13], 'live after recovery');
  await expectPublications(psubEvents, [12, 13], 'unfiltered');

  step('bad filter trees and a namespace without allow_tags_filter: error 107');
  const other = newClient();
  const otherEvents = new Events(other, CLIENT_EVENTS, 'other');
  other.connect();
  const otherConnected = await otherEvents.next('connected');
  const bad = [
    [CHANNEL, { op: 'xor', nodes: [{ key: 'a', cmp: 'eq', val: '1' }] }],
    [CHANNEL, { key: 'a', cmp: 'like', val: '1' }],
    [CHANNEL, { key: 'a', cmp: 'eq' }],
    [CHANNEL, { key: 'a', cmp: 'in', vals: [] }],
    [CHANNEL, { op: 'not', nodes: [] }],
    ['plain:prices', { key: 'ticker', cmp: 'eq', val: 'BTC' }],
  ];
  for (const [channel, tagsFilter] of bad) {
    const sub = other.newSubscription(channel, { tagsFilter });
    const events = new Events(sub, SUB_EVENTS, `bad ${channel}`);
    sub.subscribe();
    const unsubscribed = await events.next('unsubscribed');
    assertEq(unsubscribed.code, 107, `code for ${JSON.stringify(tagsFilter)} on ${channel}`);
    other.removeSubscription(sub);
  }
  let deep = { key: 'a', cmp: 'eq', val: '1' };
  for (let i = 0; i < 40; i++) {
    deep = { op: 'not', nodes: [deep] };
  }
  const deepSub = other.newSubscription(CHANNEL, { tagsFilter: deep });
  const deepEvents = new Events(deepSub, SUB_EVENTS, 'deep');
  deepSub.subscribe();
  assertEq((await deepEvents.next('unsubscribed')).code, 107, 'code for a filter nested 41 deep');
  other.removeSubscription(deepSub);

  step('everyone goes on');
  await publish([14, { ticker: 'BTC' }]);
  await expectPublications(fsubEvents, [14], 'filtered after the bad subscribes');
  await expectPublications(psubEvents, [14], 'unfiltered after the bad subscribes');
  assertEq(other.state, 'connected', 'the refused client is still connected');
  assertEq(otherEvents.of('connected').map((c) => c.client), [otherConnected.client], 'no reconnect');
  const ok = other.newSubscription(CHANNEL, { tagsFilter: { key: 'ticker', cmp: 'ex' } });
  const okEvents = new Events(ok, SUB_EVENTS, 'ok');
  ok.subscribe();
  await okEvents.next('subscribed');
  await publish([15, { ticker: 'ETH' }]);
  await publish([16, { price: '3' }]);
  await expectPublications(okEvents, [15], 'exists filter');

  step('the node counts the filtered deliveries');
  const info = await api('info', {});
  const dropped = info.nodes[0].metrics.items.tags_filter_dropped_publications;
  // filtered sub: 2,4,5 live, 12 live, 15,16 live; ok sub: 16 (recovery skips are not counted).
  assertEq(dropped, 7, 'tags_filter_dropped_publications');

  await sleep(200);
  assertEq(
    fsubEvents.of('publication').map((p) => num(p.offset)),
    [...matching(LIVE), ...matching(MISSED), 13, 14],
    'filtered subscriber: everything it got, no duplicates',
  );
  filtered.disconnect();
  plain.disconnect();
  other.disconnect();
}, 25000);
