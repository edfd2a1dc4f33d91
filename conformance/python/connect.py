"""Connect and disconnect with a connection token: state events in order, the server counts the
connection while it is open and forgets it after disconnect()."""

import asyncio

from centrifuge import ClientState

from gyre_common import Recorder, api, check, check_eq, env, new_client, run


def num_clients() -> int:
    nodes = api("info", {})["nodes"]
    check_eq(len(nodes), 1, "info: number of nodes")
    return int(nodes[0].get("num_clients", 0))


async def scenario():
    rec = Recorder()
    client = new_client(rec, "c", token=env("GYRE_TOKEN_U1"))
    check_eq(client.state, ClientState.DISCONNECTED, "initial client state")

    await client.connect()
    check(client.state in (ClientState.CONNECTING, ClientState.CONNECTED), f"state after connect(): {client.state}")
    await client.ready(timeout=5)
    check_eq(client.state, ClientState.CONNECTED, "state after ready()")
    connected = (await rec.wait("c.connected"))[0]
    check(bool(connected["client"]), "connected event carries the client id")
    check(bool(connected["version"]), "connected event carries the server version")
    connecting = rec.of("c.connecting")
    check_eq(len(connecting), 1, "connecting events before connected")
    check_eq(connecting[0]["code"], 0, "connecting code (connect called)")
    check_eq(num_clients(), 1, "info num_clients while connected")

    await client.disconnect()
    disconnected = (await rec.wait("c.disconnected"))[0]
    check_eq(disconnected["code"], 0, "disconnected code (disconnect called)")
    check_eq(client.state, ClientState.DISCONNECTED, "state after disconnect()")
    check_eq(rec.kinds("c."), ["c.connecting", "c.connected", "c.disconnected"], "client event sequence")

    # The server drops the connection once the close frame arrives.
    for _ in range(50):
        if num_clients() == 0:
            break
        await asyncio.sleep(0.1)
    check_eq(num_clients(), 0, "info num_clients after disconnect")

    # connect again: a new connection with a new client id
    await client.connect()
    await client.ready(timeout=5)
    second = (await rec.wait("c.connected", count=2))[1]
    check(second["client"] != connected["client"], "a new connection gets a new client id")
    await client.disconnect()
    await rec.wait("c.disconnected", count=2)


run(scenario)
