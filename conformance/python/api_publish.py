"""A publication made through the server API reaches a subscribed client with the offset and
epoch the API returned."""

from gyre_common import Recorder, api_publish, check, check_eq, env, new_client, new_sub, run


async def scenario():
    rec = Recorder()
    client = new_client(rec, "c", token=env("GYRE_TOKEN_U1"))
    sub = new_sub(client, rec, "s", "news")
    await client.connect()
    await sub.subscribe()
    await sub.ready(timeout=5)
    subscribed = (await rec.wait("s.subscribed"))[0]
    check(subscribed["recoverable"], "channel with force_recovery: subscription is recoverable")
    position = subscribed["position"]
    check(position is not None and position.offset == 0 and position.epoch, f"initial position {position}")

    sent = []
    for i in range(1, 4):
        data = {"n": i, "text": f"news {i}", "nested": {"list": [1, 2, i]}}
        offset, epoch = api_publish("news", data)
        check_eq(offset, i, f"API publish offset #{i}")
        check_eq(epoch, position.epoch, "API publish epoch = subscription epoch")
        sent.append((offset, data))

    pubs = await rec.wait("s.publication", count=3)
    check_eq([(p["offset"], p["data"]) for p in pubs], sent, "received (offset, data)")
    check(all(p["user"] is None for p in pubs), "API publications carry no client info")
    await client.disconnect()


run(scenario)
