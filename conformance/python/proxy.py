"""Proxies: the real SDK connects without a token through the connect proxy (the backend takes
the user from the connect data), calls RPC, is refused a subscription by the subscribe proxy,
gets its publication rewritten by the publish proxy, stays connected while the server refreshes
its connection through the refresh proxy, and is disconnected by a `disconnect` reply."""

import asyncio

from centrifuge import ReplyError

from gyre_common import Failure, Recorder, check_eq, decode, new_client, new_sub, payload, run


async def scenario():
    rec = Recorder()
    client = new_client(rec, "c", data=payload({"user": "py"}))
    await client.connect()
    await client.ready(timeout=5)
    connected = (await rec.wait("c.connected"))[0]
    check_eq(decode(connected["data"]), {"hello": "py"}, "connect data from the proxy")

    result = await client.rpc("echo", payload({"x": 1}))
    data = decode(result.data)
    check_eq([data["user"], data["meta"], data["data"]], ["py", {"team": "blue"}, {"x": 1}], "rpc echo")
    try:
        await client.rpc("fail", payload({}))
    except ReplyError as e:
        check_eq((e.code, e.message), (1000, "custom"), "custom rpc error")
    else:
        raise Failure("rpc fail must fail")

    deny = new_sub(client, rec, "deny", "sp:deny")
    try:
        await deny.subscribe()
    except Exception:
        pass
    unsubscribed = (await rec.wait("deny.unsubscribed"))[0]
    check_eq((unsubscribed["code"], unsubscribed["reason"]), (1403, "not in this room"), "refusal")

    room = new_sub(client, rec, "room", "sp:room")
    await room.subscribe()
    await room.ready(timeout=5)
    await room.publish(payload({"text": "hi"}))
    publication = (await rec.wait("room.publication"))[0]
    check_eq(publication["data"], {"rewritten": {"text": "hi"}}, "rewritten publication")

    refresher = new_client(rec, "r", data=payload({"user": "refresher"}))
    await refresher.connect()
    await refresher.ready(timeout=5)
    # The connection expires every second; the server refreshes it through the proxy.
    await asyncio.sleep(3.5)
    again = await refresher.rpc("echo", payload({}))
    check_eq(decode(again.data)["user"], "refresher", "rpc after refreshes")
    check_eq(rec.of("r.disconnected"), [], "no disconnect")
    check_eq(len(rec.of("r.connecting")), 1, "no reconnect")
    await refresher.disconnect()

    try:
        await client.rpc("bye_terminal", payload({}))
    except Exception:
        pass
    disconnected = (await rec.wait("c.disconnected"))[0]
    check_eq((disconnected["code"], disconnected["reason"]), (4502, "bye"), "disconnect from the proxy")


run(scenario)
