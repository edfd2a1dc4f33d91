"""RPC without any RPC handler configured: the server answers error 108 (not available) and the
connection stays usable."""

from centrifuge import ClientState, ReplyError

from gyre_common import Failure, Recorder, check_eq, env, new_client, payload, run


async def scenario():
    rec = Recorder()
    client = new_client(rec, "c", token=env("GYRE_TOKEN_U1"))
    await client.connect()
    await client.ready(timeout=5)
    for method in ("method", "other"):
        try:
            await client.rpc(method, payload({"ask": method}))
        except ReplyError as e:
            check_eq(e.code, 108, f"rpc {method} error code")
        else:
            raise Failure(f"rpc {method} must fail with 108")
    check_eq(client.state, ClientState.CONNECTED, "state after rpc errors")
    check_eq(rec.of("c.disconnected"), [], "disconnects")
    check_eq(len(rec.of("c.connecting")), 1, "reconnects")
    await client.disconnect()


run(scenario)
