// 4. presence and presence_stats with several clients on one channel (numUsers counts distinct
// token subs), join and leave seen by another subscriber.
import { run, step, newClient, Events, SUB_EVENTS, CLIENT_EVENTS, assert, assertEq, dec, sleep } from './lib.mjs';

const CHANNEL = 'room';

async function connectAndSubscribe(label, token) {
  const client = newClient({ token });
  const events = new Events(client, CLIENT_EVENTS, label);
  const sub = client.newSubscription(CHANNEL);
  const subEvents = new Events(sub, SUB_EVENTS, `${label}/sub`);
  sub.subscribe();
  client.connect();
  const connected = await events.next('connected');
  await subEvents.next('subscribed');
  return { client, events, sub, subEvents, id: connected.client };
}

function presenceSummary(result) {
  return Object.fromEntries(
    Object.entries(result.clients)
      .map(([id, info]) => [id, { client: info.client, user: info.user }])
      .sort(([a], [b]) => a.localeCompare(b)),
  );
}

run('presence', async () => {
  step('B (u2) subscribes');
  const b = await connectAndSubscribe('B', process.env.GYRE_TOKEN_U2);
  // B may see its own join; only joins of others are checked below.
  await sleep(100);
  b.subEvents.take('join');

  step('A (u1) subscribes: B sees the join');
  const a = await connectAndSubscribe('A', process.env.GYRE_TOKEN_U1);
  const join = await b.subEvents.next('join', 5000, (ctx) => ctx.info.client === a.id);
  assertEq(join.channel, CHANNEL, 'join channel');
  assertEq([join.info.user, join.info.client], ['u1', a.id], 'join info');
  // The u1 token carries an `info` claim: it is the connection info of A.
  assert(join.info.connInfo !== undefined, 'join carries the connection info from the token');
  assertEq(dec(join.info.connInfo), { name: 'alice' }, 'connection info in the join');

  step('presence with two clients');
  const expected2 = Object.fromEntries(
    [[a.id, { client: a.id, user: 'u1' }], [b.id, { client: b.id, user: 'u2' }]].sort(([x], [y]) => x.localeCompare(y)),
  );
  assertEq(presenceSummary(await b.sub.presence()), expected2, 'presence seen by B');
  const seenByA = await a.sub.presence();
  assertEq(presenceSummary(seenByA), expected2, 'presence seen by A');
  assertEq(dec(seenByA.clients[a.id].connInfo), { name: 'alice' }, 'connection info of A in presence');
  // B has no info claim: nothing in JSON; protobuf decodes the absent bytes as empty ones.
  const infoB = seenByA.clients[b.id].connInfo;
  assert(infoB === undefined || (infoB instanceof Uint8Array && infoB.length === 0), `no connection info for B: ${infoB}`);
  assertEq(await b.sub.presenceStats(), { numClients: 2, numUsers: 2 }, 'presence stats with two users');
  assertEq(await a.client.presenceStats(CHANNEL), { numClients: 2, numUsers: 2 }, 'client-level presence stats');

  step('C (u1 again) subscribes: clients 3, users 2');
  const c = await connectAndSubscribe('C', process.env.GYRE_TOKEN_U1);
  const joinC = await b.subEvents.next('join', 5000, (ctx) => ctx.info.client === c.id);
  assertEq(joinC.info.user, 'u1', 'join of C');
  assertEq(await b.sub.presenceStats(), { numClients: 3, numUsers: 2 }, 'presence stats with a second connection of u1');
  assertEq(Object.keys((await b.sub.presence()).clients).length, 3, 'presence entries');

  step('A unsubscribes: B sees the leave');
  a.sub.unsubscribe();
  await a.subEvents.next('unsubscribed');
  const leave = await b.subEvents.next('leave', 5000, (ctx) => ctx.info.client === a.id);
  assertEq([leave.channel, leave.info.user, leave.info.client], [CHANNEL, 'u1', a.id], 'leave of A');
  assertEq(await b.sub.presenceStats(), { numClients: 2, numUsers: 2 }, 'presence stats after A left');
  const after = presenceSummary(await b.sub.presence());
  assert(!(a.id in after), 'A is gone from presence');

  step('C disconnects: B sees the leave, users drop to 1');
  c.client.disconnect();
  const leaveC = await b.subEvents.next('leave', 5000, (ctx) => ctx.info.client === c.id);
  assertEq(leaveC.info.user, 'u1', 'leave of C');
  assertEq(await b.sub.presenceStats(), { numClients: 1, numUsers: 1 }, 'presence stats with only B');

  step('join/leave order seen by B');
  const others = b.subEvents.all
    .filter((e) => (e.name === 'join' || e.name === 'leave') && e.ctx.info.client !== b.id)
    .map((e) => `${e.name}:${e.ctx.info.client === a.id ? 'A' : e.ctx.info.client === c.id ? 'C' : e.ctx.info.client}`);
  assertEq(others, ['join:A', 'join:C', 'leave:A', 'leave:C'], 'join/leave sequence');

  a.client.disconnect();
  b.client.disconnect();
});
