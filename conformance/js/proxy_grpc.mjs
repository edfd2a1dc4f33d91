// GRPC proxies, beyond what proxy.mjs covers: the connect proxy authenticates from a forwarded
// upgrade request header (sent to the backend as GRPC metadata) and grants server-side
// subscriptions (`channels` and `subs`, with data) and connection info (seen in presence);
// the seeds' RPC example; the RPC proxy sees the forwarded header, the static metadata, the
// per-call credentials, the connection meta and gzip compression.
import WebSocket from 'ws';
import { run, step, newClient, Events, CLIENT_EVENTS, SUB_EVENTS, assertEq, enc, dec } from './lib.mjs';

/** A WebSocket whose upgrade request carries `X-User: grace`. */
class AsGrace extends WebSocket {
  constructor(url, protocols) {
    super(url, protocols, { headers: { 'X-User': 'grace' } });
  }
}

run('proxy_grpc', async () => {
  step('connect authenticated from a forwarded header');
  const client = newClient({ websocket: AsGrace });
  const events = new Events(client, CLIENT_EVENTS, 'client');
  client.connect();
  const connected = await events.next('connected');
  assertEq(dec(connected.data), { hello: 'grace' }, 'connect data from the proxy');

  step('server-side subscriptions from channels and subs');
  await events.next('subscribed', 5000, (ctx) => ctx.channel === 'news');
  const vip = await events.next('subscribed', 5000, (ctx) => ctx.channel === 'vip');
  assertEq(dec(vip.data), { vip: true }, 'subscribe data of a granted subscription');

  step('connection info from the proxy in presence');
  const room = client.newSubscription('pi:room');
  const roomEvents = new Events(room, SUB_EVENTS, 'pi:room');
  room.subscribe();
  await roomEvents.next('subscribed');
  const presence = await room.presence();
  const me = presence.clients[connected.client];
  assertEq([me.user, dec(me.connInfo)], ['grace', { name: 'grace' }], 'presence entry');

  step("the seeds' rpc example");
  const reply = await client.rpc('example_method', enc({ key: 'value' }));
  assertEq(dec(reply.data), { received: { key: 'value' }, answer: 42 }, 'example_method');

  step('what the rpc proxy receives');
  const echo = dec((await client.rpc('echo', enc({ x: 1 }))).data);
  assertEq(
    [echo.user, echo.header, echo.static, echo.credentials, echo.meta, echo.data, echo.compressed],
    ['grace', 'grace', 's1', 'Bearer k1', { team: 'blue' }, { x: 1 }, 'gzip'],
    'rpc echo',
  );
  assertEq([echo.encoding, echo.transport, echo.client_set], ['json', 'websocket', true], 'common fields');
  client.disconnect();
});
