"""A connection token with a bad signature: the server closes with 3500 (invalid token), a
terminal code, so the SDK goes disconnected and does not reconnect."""

import asyncio

from centrifuge import ClientState

from gyre_common import Recorder, check_eq, env, new_client, run


async def scenario():
    rec = Recorder()
    client = new_client(rec, "c", token=env("GYRE_BAD_TOKEN"))
    await client.connect()
    disconnected = (await rec.wait("c.disconnected"))[0]
    check_eq(disconnected["code"], 3500, "disconnect code")
    check_eq(client.state, ClientState.DISCONNECTED, "state after invalid token")
    await asyncio.sleep(1.0)
    check_eq(rec.of("c.connected"), [], "connected events")
    check_eq(len(rec.of("c.connecting")), 1, "connecting events (no reconnect after 3500)")


run(scenario)
