"""Connection token refresh: the first token expires 3 s after issue and the server closes
expired connections 1 s after expiry (client.expired_close_delay), so the client must refresh
through get_token to stay connected. GYRE_REFRESH_TOKENS is a comma-separated list of tokens
with later expiries, handed out in turn.

A control client with the same token and no get_token shows the refresh was needed: the server
closes it with 3005 (connection expired), its reconnect with the expired token is answered with
109 (token expired), and with nothing to refresh the token with the SDK stops (unauthorized)."""

import asyncio
import time

from centrifuge import ClientState

from gyre_common import Recorder, check, check_eq, env, new_client, run


async def scenario():
    rec = Recorder()
    tokens = env("GYRE_REFRESH_TOKENS").split(",")
    calls = []

    async def get_token():
        calls.append(time.monotonic())
        rec.add("get_token", n=len(calls))
        return tokens[min(len(calls), len(tokens)) - 1]

    first_exp = int(env("GYRE_TOKEN_EXP"))
    client = new_client(rec, "c", token=env("GYRE_TOKEN_U1"), get_token=get_token)
    await client.connect()
    await client.ready(timeout=5)
    client_id = (await rec.wait("c.connected"))[0]["client"]
    control = new_client(rec, "x", token=env("GYRE_TOKEN_U1"), min_reconnect_delay=0.1, max_reconnect_delay=0.2)
    await control.connect()
    await control.ready(timeout=5)

    # Stay until well past the first token's expiry plus the close delay, and past the second.
    second_exp = first_exp + 3
    while time.time() < second_exp + 2.5:
        await asyncio.sleep(0.2)
        check(not rec.of("c.disconnected"), "client got disconnected instead of refreshing")
        check_eq(len(rec.of("c.connecting")), 1, "client reconnected instead of refreshing")

    check(len(calls) >= 2, f"get_token called {len(calls)} time(s), expected the two refreshes")
    check_eq(client.state, ClientState.CONNECTED, "state past token expiry")
    check_eq([f["client"] for f in rec.of("c.connected")], [client_id], "one connection all along")
    check_eq(rec.of("c.error"), [], "client errors")

    expired = rec.of("x.connecting", where=lambda f: f["code"] != 0)
    check(len(expired) >= 1, "control client without get_token was not closed after expiry")
    check_eq((expired[0]["code"], expired[0]["reason"]), (3005, "connection expired"), "control client close")
    stopped = await rec.wait("x.disconnected")
    check_eq(stopped[0]["code"], 1, "control client: disconnected unauthorized after 109 on reconnect")
    check_eq(len(rec.of("x.connected")), 1, "control client must not reconnect with an expired token")
    await client.disconnect()


run(scenario)
