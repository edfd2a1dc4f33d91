"""Fossil delta subscriptions: publications arrive as patches on the wire and the SDK rebuilds
exactly the published payloads, live and through recovery."""

from centrifuge import DeltaType

from gyre_common import Recorder, api_publish, check, check_eq, env, new_client, new_sub, recovery_round, run

TEXT = "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor. " * 8


async def scenario():
    rec = Recorder()
    client = new_client(rec, "c", token=env("GYRE_TOKEN_U1"))
    sub = new_sub(client, rec, "s", "delta:doc", delta=DeltaType.FOSSIL)
    await client.connect()
    await sub.subscribe()
    await sub.ready(timeout=5)
    check(sub._delta_negotiated, "subscribe result must negotiate delta (delta: true)")

    sent = []
    for rev in range(1, 6):
        data = {"rev": rev, "doc": TEXT.replace("tempor", f"tempor {rev}", 1), "tail": [rev] * rev}
        offset, _ = api_publish("delta:doc", data)
        sent.append((offset, data))
    pubs = await rec.wait("s.publication", count=len(sent))
    check_eq([(p["offset"], p["data"]) for p in pubs], sent, "payloads rebuilt from deltas")
    check_eq(pubs[0]["delta"], False, "first publication after subscribe is full")
    check(all(p["delta"] for p in pubs[1:]), f"later publications are deltas: {[p['delta'] for p in pubs]}")
    await client.disconnect()

    # Recovery on a delta subscription: the first recovered publication is full, the rest patches.
    rec2, _ = await recovery_round("delta:rec", missed=3, expect_recovered=True, delta=DeltaType.FOSSIL)
    recovered = rec2.of("s.publication")[1:4]
    check(any(p["delta"] for p in recovered), f"recovered publications use delta: {[p['delta'] for p in recovered]}")


run(scenario)
