"""Subscribe, publish from the client, receive the publication with publisher info, unsubscribe
and stop receiving."""

import asyncio

from centrifuge import SubscriptionState

from centrifuge import ReplyError

from gyre_common import Failure, Recorder, api, api_publish, check_eq, env, new_client, new_sub, payload, run


async def scenario():
    rec = Recorder()
    client = new_client(rec, "c", token=env("GYRE_TOKEN_U1"))
    sub = new_sub(client, rec, "s", "chat")
    await client.connect()
    await sub.subscribe()
    await sub.ready(timeout=5)
    check_eq(sub.state, SubscriptionState.SUBSCRIBED, "subscription state")
    client_id = (await rec.wait("c.connected"))[0]["client"]
    subscribing = (await rec.wait("s.subscribing"))[0]
    check_eq(subscribing["code"], 0, "subscribing code (subscribe called)")
    await rec.wait("s.subscribed")

    stats = api("presence_stats", {"channel": "chat"})
    check_eq((stats.get("num_clients", 0), stats.get("num_users", 0)), (1, 1), "API presence stats after subscribe")

    message = {"text": "hello", "n": 1}
    await sub.publish(payload(message))
    pub = (await rec.wait("s.publication"))[0]
    check_eq(pub["data"], message, "received payload")
    check_eq(pub["user"], "u1", "publication info user")
    check_eq(pub["client"], client_id, "publication info client")
    check_eq(pub["offset"], 1, "publication offset (channel keeps history)")

    # client-level publish to the same channel works as well
    second = {"text": "again", "n": 2}
    await client.publish("chat", payload(second))
    pubs = await rec.wait("s.publication", count=2)
    check_eq(pubs[1]["data"], second, "second payload")
    check_eq(pubs[1]["offset"], 2, "second offset")

    await sub.unsubscribe()
    unsubscribed = (await rec.wait("s.unsubscribed"))[0]
    check_eq(unsubscribed["code"], 0, "unsubscribed code (unsubscribe called)")
    check_eq(sub.state, SubscriptionState.UNSUBSCRIBED, "state after unsubscribe")

    for _ in range(50):
        stats = api("presence_stats", {"channel": "chat"})
        if stats.get("num_clients", 0) == 0:
            break
        await asyncio.sleep(0.1)
    check_eq(stats.get("num_clients", 0), 0, "API presence stats after unsubscribe")

    api_publish("chat", {"text": "after unsubscribe"})
    await asyncio.sleep(0.5)
    check_eq(len(rec.of("s.publication")), 2, "publications received after unsubscribe")

    # Publishing needs a subscription here (allow_publish_for_subscriber only): 103.
    try:
        await client.publish("chat", payload({"text": "not subscribed any more"}))
    except ReplyError as e:
        check_eq(e.code, 103, "publish without subscription: error code")
    else:
        raise Failure("publish without subscription must fail with 103 (permission denied)")

    # A channel in an unknown namespace: the subscribe fails for good with 102.
    bad = new_sub(client, rec, "bad", "nope:chat")
    await bad.subscribe()
    unsubscribed = (await rec.wait("bad.unsubscribed"))[0]
    check_eq(unsubscribed["code"], 102, "subscribe to an unknown namespace: unsubscribed code")
    check_eq(bad.state, SubscriptionState.UNSUBSCRIBED, "state after a failed subscribe")

    check_eq(rec.of("c.disconnected"), [], "client disconnects")
    check_eq(len(rec.of("c.connecting")), 1, "client reconnects")
    await client.disconnect()


run(scenario)
