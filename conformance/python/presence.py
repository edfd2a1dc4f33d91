"""Presence and presence stats with several clients: two connections of user u1 and one of u2."""

import asyncio

from centrifuge import ReplyError

from gyre_common import Failure, Recorder, api, check_eq, env, new_client, new_sub, run


async def scenario():
    rec = Recorder()
    clients = {
        "a": new_client(rec, "a", token=env("GYRE_TOKEN_U1")),
        "b": new_client(rec, "b", token=env("GYRE_TOKEN_U2")),
        "c": new_client(rec, "c", token=env("GYRE_TOKEN_U1")),
    }
    subs = {}
    for name, client in clients.items():
        subs[name] = new_sub(client, rec, f"{name}s", "room")
        await client.connect()
        await subs[name].subscribe()
    for name in clients:
        await subs[name].ready(timeout=5)
    ids = {name: (await rec.wait(f"{name}.connected"))[0]["client"] for name in clients}
    users = {"a": "u1", "b": "u2", "c": "u1"}

    presence = await clients["a"].presence("room")
    got = {cid: info.user for cid, info in presence.clients.items()}
    check_eq(got, {ids[n]: users[n] for n in clients}, "client presence (client id -> user)")
    for cid, info in presence.clients.items():
        check_eq(info.client, cid, "presence entry client field equals its key")

    sub_presence = await subs["b"].presence()
    check_eq(set(sub_presence.clients), set(ids.values()), "subscription-level presence")

    stats = await clients["b"].presence_stats("room")
    check_eq((stats.num_clients, stats.num_users), (3, 2), "presence stats (clients, users)")
    stats = await subs["c"].presence_stats()
    check_eq((stats.num_clients, stats.num_users), (3, 2), "subscription-level presence stats")

    api_presence = api("presence", {"channel": "room"})["presence"]
    check_eq({cid: v["user"] for cid, v in api_presence.items()}, got, "API presence")

    # Presence is granted to subscribers only (allow_presence_for_subscriber): 103 for others.
    outsider = new_client(rec, "d", token=env("GYRE_TOKEN_U2"))
    await outsider.connect()
    for call in (outsider.presence, outsider.presence_stats):
        try:
            await call("room")
        except ReplyError as e:
            check_eq(e.code, 103, f"{call.__name__} without subscription: error code")
        else:
            raise Failure(f"{call.__name__} without subscription must fail with 103")
    await outsider.disconnect()

    # The second connection of u1 leaves: 2 clients, still 2 users.
    await clients["c"].disconnect()
    for _ in range(50):
        stats = await clients["a"].presence_stats("room")
        if stats.num_clients == 2:
            break
        await asyncio.sleep(0.1)
    check_eq((stats.num_clients, stats.num_users), (2, 2), "presence stats after one u1 connection left")
    presence = await clients["a"].presence("room")
    check_eq(set(presence.clients), {ids["a"], ids["b"]}, "presence after one u1 connection left")

    # u2 unsubscribes: 1 client, 1 user.
    await subs["b"].unsubscribe()
    for _ in range(50):
        stats = await clients["a"].presence_stats("room")
        if stats.num_clients == 1:
            break
        await asyncio.sleep(0.1)
    check_eq((stats.num_clients, stats.num_users), (1, 1), "presence stats after u2 unsubscribed")

    await clients["a"].disconnect()
    await clients["b"].disconnect()


run(scenario)
