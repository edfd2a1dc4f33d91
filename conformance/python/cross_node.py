"""Run by crates/server/tests/redis.rs (real_python_client_across_nodes).

Two gyre nodes on one Redis: the SDK on node B receives what is published on node A (server
API and client publish), presence spans the nodes, and a recoverable subscription that moves
from node A to node B (through a small TCP balancer that switches its upstream and drops the
connection) recovers exactly the publications it missed.

Extra environment: GYRE_WS_URL_B and GYRE_API_URL_B (node B); GYRE_WS_URL and GYRE_API_URL are
node A.
"""

import asyncio
import json
import urllib.parse
import urllib.request
from typing import List, Optional, Tuple

from centrifuge import Client

from gyre_common import (
    USE_PROTOBUF,
    ClientEvents,
    Recorder,
    api,
    check,
    check_eq,
    env,
    new_client,
    new_sub,
    payload,
    run,
)


def client_at(url: str, rec: Recorder, name: str, token: str, **kwargs) -> Client:
    """`new_client`, on another endpoint."""
    return Client(url, events=ClientEvents(rec, name), token=token, use_protobuf=USE_PROTOBUF,
                  proxy=None, **kwargs)


def api_on(base: str, method: str, body: dict) -> dict:
    """Calls a server API method on the node whose API base URL is `base`."""
    request = urllib.request.Request(
        base.rstrip("/") + "/" + method,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", "X-API-Key": env("GYRE_API_KEY")},
        method="POST",
    )
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(request, timeout=5) as response:
        reply = json.loads(response.read())
    check("result" in reply, f"api {method} on {base}: {reply}")
    return reply["result"]


def host_port(ws_url: str) -> Tuple[str, int]:
    parsed = urllib.parse.urlparse(ws_url)
    return parsed.hostname or "127.0.0.1", parsed.port or 80


class Balancer:
    """A TCP forwarder standing for a load balancer: new connections go to the current
    upstream; `switch` changes it and drops the open connections."""

    def __init__(self, upstream: Tuple[str, int]) -> None:
        self.upstream = upstream
        self.open: List[asyncio.StreamWriter] = []
        self.server: Optional[asyncio.AbstractServer] = None

    async def start(self) -> int:
        self.server = await asyncio.start_server(self.handle, "127.0.0.1", 0)
        return self.server.sockets[0].getsockname()[1]

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        self.open += [writer, up_writer]

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while True:
                    data = await src.read(65536)
                    if not data:
                        break
                    dst.write(data)
                    await dst.drain()
            except (ConnectionError, asyncio.CancelledError):
                pass
            finally:
                dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    def switch(self, upstream: Tuple[str, int]) -> None:
        self.upstream = upstream
        for writer in self.open:
            writer.close()
        self.open = []


async def scenario():
    rec = Recorder()
    api_b = env("GYRE_API_URL_B")

    # --- Delivery and presence across nodes.
    on_a = new_client(rec, "a", token=env("GYRE_TOKEN_U1"))
    on_b = client_at(env("GYRE_WS_URL_B"), rec, "b", env("GYRE_TOKEN_U2"))
    sa = new_sub(on_a, rec, "sa", "room")
    sb = new_sub(on_b, rec, "sb", "room")
    for client, sub in ((on_a, sa), (on_b, sb)):
        await client.connect()
        await sub.subscribe()
        await sub.ready(timeout=5)
    id_a = (await rec.wait("a.connected"))[0]["client"]
    id_b = (await rec.wait("b.connected"))[0]["client"]

    offset = int(api("publish", {"channel": "room", "data": {"via": "api", "n": 1}})["offset"])
    got = (await rec.wait("sb.publication"))[0]
    check_eq((got["data"], got["offset"]), ({"via": "api", "n": 1}, offset), "API publish on A reaches B")

    await sa.publish(payload({"via": "client", "n": 2}))
    got = (await rec.wait("sb.publication", count=2))[1]
    check_eq((got["data"], got["user"], got["offset"]), ({"via": "client", "n": 2}, "u1", offset + 1),
             "client publish on A reaches B")

    presence = await sb.presence()
    check_eq({cid: info.user for cid, info in presence.clients.items()}, {id_a: "u1", id_b: "u2"},
             "presence seen from B")
    stats = await sa.presence_stats()
    check_eq((stats.num_clients, stats.num_users), (2, 2), "presence stats seen from A")
    await on_a.disconnect()
    for _ in range(50):
        stats = await sb.presence_stats()
        if stats.num_clients == 1:
            break
        await asyncio.sleep(0.1)
    check_eq((stats.num_clients, stats.num_users), (1, 1), "presence after the client on A left")

    # --- A recoverable subscription moves from node A to node B.
    balancer = Balancer(host_port(env("GYRE_WS_URL")))
    port = await balancer.start()
    moving = client_at(f"ws://127.0.0.1:{port}/connection/websocket", rec, "m", env("GYRE_TOKEN_U1"),
                       min_reconnect_delay=1.0, max_reconnect_delay=1.5)
    sm = new_sub(moving, rec, "sm", "news", recoverable=True)
    await moving.connect()
    await sm.subscribe()
    await sm.ready(timeout=5)
    first = api("publish", {"channel": "news", "data": {"n": 0}})
    got = (await rec.wait("sm.publication"))[0]
    check_eq(got["offset"], first["offset"], "live on node A")
    clients_on_b = api_on(api_b, "info", {})["nodes"][0]["num_clients"]

    balancer.switch(host_port(env("GYRE_WS_URL_B")))
    await rec.wait("m.connecting", count=2, timeout=5)
    missed = []
    for i in range(1, 4):
        result = api("publish", {"channel": "news", "data": {"n": i}})
        missed.append((int(result["offset"]), {"n": i}))
    second = (await rec.wait("sm.subscribed", count=2, timeout=8))[1]
    check_eq((second["was_recovering"], second["recovered"]), (True, True), "recovered on node B")
    pubs = await rec.wait("sm.publication", count=4)
    check_eq([(p["offset"], p["data"]) for p in pubs[1:]], missed, "exactly the missed publications")
    check_eq(api_on(api_b, "info", {})["nodes"][0]["num_clients"], clients_on_b + 1,
             "the moved client is connected to node B")

    # Live again on node B with what node A publishes.
    after = api("publish", {"channel": "news", "data": {"n": 4}})
    got = (await rec.wait("sm.publication", count=5))[4]
    check_eq((got["offset"], got["data"]), (after["offset"], {"n": 4}), "live on node B")
    await asyncio.sleep(0.3)
    check_eq(len(rec.of("sm.publication")), 5, "no duplicates")
    await moving.disconnect()
    await on_b.disconnect()


run(scenario)
