// Two gyre nodes sharing Redis: GYRE_WS_URL/GYRE_API_URL are node A, GYRE_WS_URL_B node B.
// A client on B receives what is published on A (server API and client publish), presence
// counts clients of both nodes, and a client moving from B to A recovers what it missed.
import { run, step, newClient, Events, SUB_EVENTS, CLIENT_EVENTS, assertEq, dec, enc, num, api, sleep, PROTOCOL } from './lib.mjs';

const WS_URL_B = process.env.GYRE_WS_URL_B;
const CHANNEL = `cross_${PROTOCOL}`;

run('cross_node', async () => {
  const onB = newClient({ token: process.env.GYRE_TOKEN_B }, WS_URL_B);
  const bEvents = new Events(onB, CLIENT_EVENTS, 'B');
  const subB = onB.newSubscription(CHANNEL);
  const subBEvents = new Events(subB, SUB_EVENTS, 'B sub');
  subB.subscribe();
  onB.connect();
  await bEvents.next('connected');
  const first = await subBEvents.next('subscribed');
  const epoch = first.streamPosition.epoch;

  step('API publish on A reaches the client on B');
  const r1 = await api('publish', { channel: CHANNEL, data: { n: 1 } });
  const p1 = await subBEvents.next('publication');
  assertEq([dec(p1.data), num(p1.offset), r1.epoch], [{ n: 1 }, 1, epoch], 'publication from the API of A');

  step('client publish on A reaches the client on B');
  const onA = newClient({ token: process.env.GYRE_TOKEN_A });
  const aEvents = new Events(onA, CLIENT_EVENTS, 'A');
  const subA = onA.newSubscription(CHANNEL);
  const subAEvents = new Events(subA, SUB_EVENTS, 'A sub');
  subA.subscribe();
  onA.connect();
  await aEvents.next('connected');
  await subAEvents.next('subscribed');
  await subA.publish(enc({ n: 2 }));
  const p2 = await subBEvents.next('publication');
  assertEq([dec(p2.data), num(p2.offset), p2.info && p2.info.user], [{ n: 2 }, 2, 'ua'], 'client publication from A');

  // GYRE_PRESENCE_SCOPE=node: presence is kept per node (memory presence manager).
  const perNode = process.env.GYRE_PRESENCE_SCOPE === 'node';
  step(perNode ? 'presence counts the clients of B' : 'presence counts both nodes');
  const statsB = await subB.presenceStats();
  const present = perNode ? 1 : 2;
  assertEq([statsB.numClients, statsB.numUsers], [present, present], 'presence stats seen from B');

  step('the client on B leaves, publications are missed, it comes back on A and recovers');
  onB.disconnect();
  await bEvents.next('disconnected');
  await api('publish', { channel: CHANNEL, data: { n: 3 } });
  await subA.publish(enc({ n: 4 }));
  const moved = newClient({ token: process.env.GYRE_TOKEN_B });
  const movedEvents = new Events(moved, CLIENT_EVENTS, 'moved');
  const subMoved = moved.newSubscription(CHANNEL, { since: { offset: 2, epoch } });
  const subMovedEvents = new Events(subMoved, SUB_EVENTS, 'moved sub');
  subMoved.subscribe();
  moved.connect();
  await movedEvents.next('connected');
  const again = await subMovedEvents.next('subscribed');
  assertEq([again.wasRecovering, again.recovered], [true, true], 'recovered on the other node');
  for (let n = 3; n <= 4; n++) {
    const p = await subMovedEvents.next('publication');
    assertEq([dec(p.data), num(p.offset)], [{ n }, n], `recovered publication ${n}`);
  }
  await api('publish', { channel: CHANNEL, data: { n: 5 } });
  const p5 = await subMovedEvents.next('publication');
  assertEq(num(p5.offset), 5, 'live after recovery');
  await sleep(200);
  assertEq(subMovedEvents.of('publication').map((p) => num(p.offset)), [3, 4, 5], 'no duplicates');
  onA.disconnect();
  moved.disconnect();
});
