"""Personal channel: with client.subscribe_to_user_personal_channel the server subscribes the
connection to #u1 on its own; the SDK reports a server-side subscription and its publications."""

from gyre_common import Recorder, api, api_publish, check, check_eq, env, new_client, run


async def scenario():
    rec = Recorder()
    client = new_client(rec, "c", token=env("GYRE_TOKEN_U1"))
    await client.connect()
    await client.ready(timeout=5)
    subscribed = (await rec.wait("c.server_subscribed"))[0]
    check_eq(subscribed["channel"], "#u1", "server-side subscription channel")
    check(subscribed["recoverable"] and subscribed["positioned"], f"#u1 keeps history with force_recovery: {subscribed}")

    stats = api("presence_stats", {"channel": "#u1"})
    check_eq(stats.get("num_clients", 0), 1, "API presence stats of #u1")

    sent = []
    for i in range(1, 3):
        data = {"personal": i}
        offset, _ = api_publish("#u1", data)
        sent.append((offset, data))
    pubs = await rec.wait("c.server_publication", count=2)
    check_eq([(p["channel"], p["offset"], p["data"]) for p in pubs], [("#u1", o, d) for o, d in sent], "server-side publications")

    # Nothing arrives for another user's personal channel.
    api_publish("#u2", {"personal": "not for u1"})
    await rec.wait("c.server_publication", count=2)
    check_eq(len(rec.of("c.server_publication")), 2, "publications of #u2 must not reach u1")
    await client.disconnect()


run(scenario)
