// Two gyre nodes on a broker without streams (NATS): GYRE_WS_URL/GYRE_API_URL are node A,
// GYRE_WS_URL_B node B. Publications from the API and from clients cross both ways, joins and
// leaves cross too, presence (in a shared presence manager) counts clients of both nodes, and
// publications carry no stream position.
import { run, step, newClient, Events, SUB_EVENTS, CLIENT_EVENTS, assertEq, dec, enc, num, api, PROTOCOL } from './lib.mjs';

const WS_URL_B = process.env.GYRE_WS_URL_B;
const CHANNEL = `pubsub_${PROTOCOL}`;

run('cross_node_pubsub', async () => {
  const onB = newClient({ token: process.env.GYRE_TOKEN_B }, WS_URL_B);
  const bEvents = new Events(onB, CLIENT_EVENTS, 'B');
  const subB = onB.newSubscription(CHANNEL, { joinLeave: true });
  const subBEvents = new Events(subB, SUB_EVENTS, 'B sub');
  subB.subscribe();
  onB.connect();
  await bEvents.next('connected');
  const first = await subBEvents.next('subscribed');
  assertEq([first.positioned, first.recoverable], [false, false], 'no stream on this broker');

  step('API publish on A reaches the client on B, without a position');
  const r1 = await api('publish', { channel: CHANNEL, data: { n: 1 } });
  assertEq([num(r1.offset), r1.epoch || ''], [0, ''], 'publish result without a position');
  const p1 = await subBEvents.next('publication');
  assertEq([dec(p1.data), num(p1.offset)], [{ n: 1 }, 0], 'publication from the API of A');

  step('a client joining on A is announced on B');
  const onA = newClient({ token: process.env.GYRE_TOKEN_A });
  const aEvents = new Events(onA, CLIENT_EVENTS, 'A');
  const subA = onA.newSubscription(CHANNEL, { joinLeave: true });
  const subAEvents = new Events(subA, SUB_EVENTS, 'A sub');
  subA.subscribe();
  onA.connect();
  await aEvents.next('connected');
  await subAEvents.next('subscribed');
  const join = await subBEvents.next('join', 5000, (ctx) => ctx.info.user === 'ua');
  assertEq(join.channel, CHANNEL, 'join of A seen on B');

  step('client publish on A reaches B, and from B reaches A');
  await subA.publish(enc({ n: 2 }));
  const p2 = await subBEvents.next('publication');
  assertEq([dec(p2.data), p2.info && p2.info.user], [{ n: 2 }, 'ua'], 'client publication from A');
  await subB.publish(enc({ n: 3 }));
  const p3 = await subAEvents.next('publication', 5000, (ctx) => dec(ctx.data).n === 3);
  assertEq(p3.info && p3.info.user, 'ub', 'client publication from B');

  step('presence counts both nodes');
  const statsB = await subB.presenceStats();
  assertEq([statsB.numClients, statsB.numUsers], [2, 2], 'presence stats seen from B');
  const statsA = await subA.presenceStats();
  assertEq([statsA.numClients, statsA.numUsers], [2, 2], 'presence stats seen from A');

  step('the client on A leaves, B is told');
  onA.disconnect();
  const leave = await subBEvents.next('leave', 5000, (ctx) => ctx.info.user === 'ua');
  assertEq(leave.channel, CHANNEL, 'leave of A seen on B');
  onB.disconnect();
});
