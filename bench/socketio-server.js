// Socket.IO peer for Gyre's benchmarks: clients emit "sub" with a channel (room) name and an
// ack; POST /api/publish {"channel":..,"data":..} emits "m" with the data to that room, and so
// does a client's "pub" event (channel, data, ack), acknowledged once broadcast.
// WebSocket transport only, no compression: the same fan-out the other servers do.
//
//   node socketio-server.js PORT [--recovery]
//
// --recovery turns on Socket.IO's connection state recovery (sessions kept 2 minutes): the
// in-memory adapter then stores every room broadcast with an offset (its last argument), and a
// client reconnecting with its session id and last offset gets its rooms and the missed events.
'use strict';
const http = require('http');
const { Server } = require('socket.io');

const port = Number(process.argv[2] || 3000);
const recovery = process.argv.includes('--recovery');
const server = http.createServer((req, res) => {
  if (req.method === 'POST' && req.url === '/api/publish') {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      try {
        const m = JSON.parse(Buffer.concat(chunks).toString());
        io.to(m.channel).emit('m', m.data);
        res.writeHead(200, { 'Content-Type': 'application/json', 'Content-Length': 2 });
        res.end('{}');
      } catch (e) {
        res.writeHead(400, { 'Content-Length': 0 });
        res.end();
      }
    });
    return;
  }
  res.writeHead(404, { 'Content-Length': 0 });
  res.end();
});
const io = new Server(server, {
  transports: ['websocket'],
  serveClient: false,
  perMessageDeflate: false,
  httpCompression: false,
  ...(recovery
    ? { connectionStateRecovery: { maxDisconnectionDuration: 2 * 60 * 1000, skipMiddlewares: true } }
    : {}),
});
io.on('connection', (socket) => {
  socket.on('sub', (channel, ack) => {
    socket.join(String(channel));
    if (typeof ack === 'function') ack('ok');
  });
  socket.on('pub', (channel, data, ack) => {
    io.to(String(channel)).emit('m', data);
    if (typeof ack === 'function') ack('ok');
  });
});
server.keepAliveTimeout = 60000;
server.listen(port, '127.0.0.1');
