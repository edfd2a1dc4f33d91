"""Shared helpers for the centrifuge-python conformance scenarios.

Every scenario is a standalone asyncio script run by `crates/server/tests/python.rs` against a
real `gyre serve`. The environment carries:

  GYRE_WS_URL     WebSocket endpoint (ws://127.0.0.1:<port>/connection/websocket)
  GYRE_API_URL    server API base (http://127.0.0.1:<port>/api)
  GYRE_API_KEY    server API key
  GYRE_PROTOCOL   "json" or "protobuf"
  plus scenario-specific variables (tokens are minted on the Rust side).

A scenario exits 0 only after asserting real outcomes; any failed check, unexpected exception or
the overall hard timeout exits non-zero with a message naming what went wrong, followed by the
log of every SDK event the scenario recorded.
"""

import asyncio
import json
import logging
import os
import sys
import time
import traceback
import urllib.error
import urllib.request
from typing import Any, Callable, Dict, List, Optional, Tuple

from centrifuge import (
    Client,
    ClientEventHandler,
    SubscriptionEventHandler,
)

PROTOCOL = os.environ.get("GYRE_PROTOCOL", "json")
if PROTOCOL not in ("json", "protobuf"):
    print(f"FAIL: GYRE_PROTOCOL must be json or protobuf, got {PROTOCOL!r}")
    sys.exit(2)
USE_PROTOBUF = PROTOCOL == "protobuf"

logging.basicConfig(
    level=os.environ.get("GYRE_PY_LOG", "WARNING").upper(),
    format="%(asctime)s %(name)s %(levelname)s %(message)s",
)


class Failure(Exception):
    """A conformance check failed."""


def env(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        raise Failure(f"environment variable {name} is not set")
    return value


def check(condition: bool, message: str) -> None:
    if not condition:
        raise Failure(message)


def check_eq(actual: Any, expected: Any, what: str) -> None:
    if actual != expected:
        raise Failure(f"{what}: expected {expected!r}, got {actual!r}")


# ---------------------------------------------------------------------------------------------
# Payloads: JSON protocol carries JSON values, protobuf carries bytes (here: JSON text as bytes).


def payload(value: Any) -> Any:
    """What to hand the SDK for publishing `value` in the current protocol."""
    if USE_PROTOBUF:
        return json.dumps(value, separators=(",", ":")).encode()
    return value


def decode(data: Any) -> Any:
    """Normalises received publication data to a JSON value, whatever the protocol."""
    if isinstance(data, (bytes, bytearray)):
        check(USE_PROTOBUF, f"got bytes payload {data!r} on a JSON connection")
        try:
            return json.loads(bytes(data))
        except ValueError as e:
            raise Failure(f"payload is not the JSON text that was published: {data!r} ({e})")
    check(not USE_PROTOBUF, f"got a non-bytes payload {data!r} on a protobuf connection")
    return data


def safe_decode(data: Any) -> Any:
    """`decode` for event handlers: never raises (an exception in a handler would make the SDK
    drop the connection), returns a marker string the later comparison reports instead."""
    try:
        return decode(data)
    except Failure as e:
        return f"<undecodable: {e}>"


# ---------------------------------------------------------------------------------------------
# Server HTTP API (stdlib only, never through an environment proxy).

_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def api(method: str, body: Dict[str, Any]) -> Dict[str, Any]:
    """Calls a server API method and returns its `result`; fails on any error."""
    url = env("GYRE_API_URL").rstrip("/") + "/" + method
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", "X-API-Key": env("GYRE_API_KEY")},
        method="POST",
    )
    try:
        with _opener.open(request, timeout=5) as response:
            status = response.status
            raw = response.read()
    except urllib.error.HTTPError as e:
        raise Failure(f"api {method} {body}: HTTP {e.code} {e.read()!r}")
    check_eq(status, 200, f"api {method} status")
    try:
        reply = json.loads(raw)
    except ValueError:
        raise Failure(f"api {method}: body is not JSON: {raw!r}")
    if reply.get("error"):
        raise Failure(f"api {method} {body}: error {reply['error']}")
    check("result" in reply, f"api {method}: no result in {reply}")
    return reply["result"]


def api_publish(channel: str, data: Any) -> Tuple[int, str]:
    """Publishes via the server API; returns (offset, epoch)."""
    result = api("publish", {"channel": channel, "data": data})
    return int(result.get("offset", 0)), result.get("epoch", "")


# ---------------------------------------------------------------------------------------------
# Event recording.


class Recorder:
    """Collects SDK events (kind, fields) in arrival order and lets a scenario wait for them."""

    def __init__(self) -> None:
        self.events: List[Tuple[str, Dict[str, Any]]] = []
        self._changed = asyncio.Event()
        self._start = time.monotonic()

    def add(self, kind: str, **fields: Any) -> None:
        self.events.append((kind, fields))
        elapsed = time.monotonic() - self._start
        print(f"[{elapsed:7.3f}] event {kind} {fields}", flush=True)
        self._changed.set()

    def of(self, kind: str, where: Optional[Callable[[Dict[str, Any]], bool]] = None):
        return [f for k, f in self.events if k == kind and (where is None or where(f))]

    def kinds(self, prefix: str = "") -> List[str]:
        return [k for k, _ in self.events if k.startswith(prefix)]

    async def wait(
        self,
        kind: str,
        count: int = 1,
        where: Optional[Callable[[Dict[str, Any]], bool]] = None,
        timeout: float = 5.0,
    ) -> List[Dict[str, Any]]:
        """Waits until at least `count` events of `kind` (matching `where`) were recorded."""
        deadline = time.monotonic() + timeout
        while True:
            found = self.of(kind, where)
            if len(found) >= count:
                return found
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise Failure(
                    f"timed out after {timeout}s waiting for {count} x {kind!r} event(s); "
                    f"got {len(found)}"
                )
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), remaining)
            except asyncio.TimeoutError:
                pass


class ClientEvents(ClientEventHandler):
    """Records every client-level event as `<name>.<event>`."""

    def __init__(self, rec: Recorder, name: str) -> None:
        self.rec = rec
        self.name = name

    async def on_connecting(self, ctx):
        self.rec.add(f"{self.name}.connecting", code=ctx.code, reason=ctx.reason)

    async def on_connected(self, ctx):
        self.rec.add(f"{self.name}.connected", client=ctx.client, version=ctx.version, data=ctx.data)

    async def on_disconnected(self, ctx):
        self.rec.add(f"{self.name}.disconnected", code=ctx.code, reason=ctx.reason)

    async def on_error(self, ctx):
        self.rec.add(f"{self.name}.error", code=ctx.code, error=repr(ctx.error))

    async def on_subscribed(self, ctx):
        self.rec.add(
            f"{self.name}.server_subscribed",
            channel=ctx.channel,
            recoverable=ctx.recoverable,
            positioned=ctx.positioned,
            position=ctx.stream_position,
            was_recovering=ctx.was_recovering,
            recovered=ctx.recovered,
        )

    async def on_subscribing(self, ctx):
        self.rec.add(f"{self.name}.server_subscribing", channel=ctx.channel)

    async def on_unsubscribed(self, ctx):
        self.rec.add(f"{self.name}.server_unsubscribed", channel=ctx.channel)

    async def on_publication(self, ctx):
        self.rec.add(
            f"{self.name}.server_publication",
            channel=ctx.channel,
            offset=ctx.pub.offset,
            data=safe_decode(ctx.pub.data),
            user=ctx.pub.info.user if ctx.pub.info else None,
        )

    async def on_join(self, ctx):
        self.rec.add(f"{self.name}.server_join", channel=ctx.channel, user=ctx.info.user, client=ctx.info.client)

    async def on_leave(self, ctx):
        self.rec.add(f"{self.name}.server_leave", channel=ctx.channel, user=ctx.info.user, client=ctx.info.client)


class SubEvents(SubscriptionEventHandler):
    """Records every subscription event as `<name>.<event>`; publication data is decoded."""

    def __init__(self, rec: Recorder, name: str) -> None:
        self.rec = rec
        self.name = name

    async def on_subscribing(self, ctx):
        self.rec.add(f"{self.name}.subscribing", code=ctx.code, reason=ctx.reason)

    async def on_subscribed(self, ctx):
        self.rec.add(
            f"{self.name}.subscribed",
            recoverable=ctx.recoverable,
            positioned=ctx.positioned,
            position=ctx.stream_position,
            was_recovering=ctx.was_recovering,
            recovered=ctx.recovered,
        )

    async def on_unsubscribed(self, ctx):
        self.rec.add(f"{self.name}.unsubscribed", code=ctx.code, reason=ctx.reason)

    async def on_publication(self, ctx):
        pub = ctx.pub
        self.rec.add(
            f"{self.name}.publication",
            offset=pub.offset,
            data=safe_decode(pub.data),
            delta=pub.delta,
            user=pub.info.user if pub.info else None,
            client=pub.info.client if pub.info else None,
        )

    async def on_join(self, ctx):
        self.rec.add(f"{self.name}.join", user=ctx.info.user, client=ctx.info.client)

    async def on_leave(self, ctx):
        self.rec.add(f"{self.name}.leave", user=ctx.info.user, client=ctx.info.client)

    async def on_error(self, ctx):
        self.rec.add(f"{self.name}.error", code=ctx.code, error=repr(ctx.error))


def new_client(rec: Recorder, name: str, token: str = "", **kwargs: Any) -> Client:
    """A client for the scenario's endpoint and protocol, recording its events as `name.*`."""
    return Client(
        env("GYRE_WS_URL"),
        events=ClientEvents(rec, name),
        token=token,
        use_protobuf=USE_PROTOBUF,
        proxy=None,
        **kwargs,
    )


def new_sub(client: Client, rec: Recorder, name: str, channel: str, **kwargs: Any):
    """A subscription recording its events as `name.*`."""
    return client.new_subscription(channel, events=SubEvents(rec, name), **kwargs)


# ---------------------------------------------------------------------------------------------
# Running a scenario.


def run(scenario: Callable[[], Any], timeout: float = 25.0) -> None:
    """Runs `scenario()` (a coroutine function) under a hard timeout and exits accordingly."""
    name = os.path.basename(sys.argv[0])
    print(f"scenario {name} protocol={PROTOCOL}", flush=True)

    async def guarded():
        try:
            await asyncio.wait_for(scenario(), timeout)
        except asyncio.TimeoutError:
            raise Failure(f"scenario did not finish within its hard timeout of {timeout}s")

    try:
        asyncio.run(guarded())
    except Failure as e:
        print(f"FAIL [{PROTOCOL}] {name}: {e}", flush=True)
        sys.exit(1)
    except BaseException:
        print(f"FAIL [{PROTOCOL}] {name}: unexpected exception", flush=True)
        traceback.print_exc(file=sys.stdout)
        sys.stdout.flush()
        sys.exit(1)
    print(f"OK [{PROTOCOL}] {name}", flush=True)
    # Skip interpreter teardown noise from SDK tasks that are still winding down.
    os._exit(0)


# ---------------------------------------------------------------------------------------------
# Recovery: force a reconnect through the server API and publish while the client is away.


async def recovery_round(
    channel: str,
    missed: int,
    expect_recovered: bool,
    **sub_options: Any,
) -> Tuple[Recorder, Dict[str, Any]]:
    """Subscribes `channel` as u1, receives one live publication, gets disconnected by the server
    API with reconnect code 3011, has `missed` publications published while it is away and waits
    for the resubscribe. Checks the subscribed event (was_recovering, recovered) and, when
    recovery is expected, exactly the missed publications in order; returns the recorder and
    the details for further checks."""
    rec = Recorder()
    # The reconnect waits 1.0-1.5 s: enough to publish while the client is away.
    client = new_client(
        rec, "c", token=env("GYRE_TOKEN_U1"), min_reconnect_delay=1.0, max_reconnect_delay=1.5
    )
    sub = new_sub(client, rec, "s", channel, recoverable=True, **sub_options)
    await client.connect()
    await sub.subscribe()
    await sub.ready(timeout=5)
    first = (await rec.wait("s.subscribed"))[0]
    check(first["recoverable"], "subscription is recoverable")
    check(not first["was_recovering"], "first subscribe is not recovering")
    first_client = (await rec.wait("c.connected"))[0]["client"]

    before = {"phase": "before", "i": 0}
    offset0, epoch = api_publish(channel, before)
    pub0 = (await rec.wait("s.publication"))[0]
    check_eq((pub0["offset"], pub0["data"]), (offset0, before), "live publication before the disconnect")

    api("disconnect", {"user": "u1", "disconnect": {"code": 3011, "reason": "force reconnect"}})
    connecting = (await rec.wait("c.connecting", count=2, timeout=3))[1]
    check_eq((connecting["code"], connecting["reason"]), (3011, "force reconnect"), "connecting after API disconnect")
    check(not rec.of("c.disconnected"), "3011 must not be terminal")

    published = []
    for i in range(1, missed + 1):
        data = {"phase": "missed", "i": i, "pad": "x" * 40}
        offset, pub_epoch = api_publish(channel, data)
        check_eq(pub_epoch, epoch, "epoch stays the same")
        published.append((offset, data))
    check_eq([o for o, _ in published], list(range(offset0 + 1, offset0 + missed + 1)), "missed publication offsets")
    check_eq(len(rec.of("s.publication")), 1, "nothing delivered while disconnected")

    second = (await rec.wait("s.subscribed", count=2, timeout=6))[1]
    reconnected = (await rec.wait("c.connected", count=2))[1]
    check(reconnected["client"] != first_client, "reconnect is a new connection")
    subscribing = rec.of("s.subscribing")
    check(len(subscribing) >= 2, f"subscription went subscribing after the disconnect: {subscribing}")
    check_eq(second["was_recovering"], True, "resubscribe was_recovering")
    check_eq(second["recovered"], expect_recovered, "resubscribe recovered")

    if expect_recovered:
        pubs = await rec.wait("s.publication", count=1 + missed)
        check_eq([(p["offset"], p["data"]) for p in pubs[1:]], published, "recovered publications")
    await asyncio.sleep(0.4)
    got = [(p["offset"], p["data"]) for p in rec.of("s.publication")[1:]]
    if expect_recovered:
        check_eq(got, published, "exactly the missed publications, no more")
    else:
        check_eq(got, [], "no publications delivered for an unrecoverable gap")

    # Live publications continue after the resubscribe.
    after = {"phase": "after"}
    offset_after, _ = api_publish(channel, after)
    check_eq(offset_after, offset0 + missed + 1, "offset after the missed ones")
    last = (await rec.wait("s.publication", count=len(got) + 2))[-1]
    check_eq((last["offset"], last["data"]), (offset_after, after), "live publication after resubscribe")
    check_eq(rec.of("c.disconnected"), [], "no terminal disconnect")
    await client.disconnect()
    return rec, {"epoch": epoch, "published": published, "second": second}
