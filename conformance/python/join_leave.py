"""Join and leave pushes between two clients of different users."""

import asyncio

from gyre_common import Recorder, check, check_eq, env, new_client, new_sub, run


async def scenario():
    rec = Recorder()
    a = new_client(rec, "a", token=env("GYRE_TOKEN_U1"))
    b = new_client(rec, "b", token=env("GYRE_TOKEN_U2"))
    sa = new_sub(a, rec, "as", "lobby", join_leave=True)
    sb = new_sub(b, rec, "bs", "lobby", join_leave=True)

    await a.connect()
    await sa.subscribe()
    await sa.ready(timeout=5)
    a_id = (await rec.wait("a.connected"))[0]["client"]

    await b.connect()
    await sb.subscribe()
    await sb.ready(timeout=5)
    b_id = (await rec.wait("b.connected"))[0]["client"]

    # Joins go to every subscriber that gets join/leave pushes, the joining client included.
    await rec.wait("as.join", where=lambda f: f["client"] == a_id)
    await rec.wait("bs.join", where=lambda f: f["client"] == b_id)
    join = (await rec.wait("as.join", where=lambda f: f["client"] == b_id))[0]
    check_eq(join["user"], "u2", "join user seen by a")

    # b leaves by unsubscribing: a sees the leave, with the same client info.
    await sb.unsubscribe()
    leave = (await rec.wait("as.leave", where=lambda f: f["client"] == b_id))[0]
    check_eq(leave["user"], "u2", "leave user seen by a")

    # b subscribes again and then disconnects: a sees a second join and a second leave.
    await sb.subscribe()
    await sb.ready(timeout=5)
    await rec.wait("as.join", count=2, where=lambda f: f["client"] == b_id)
    await b.disconnect()
    await rec.wait("as.leave", count=2, where=lambda f: f["client"] == b_id)

    # Nobody else joined or left; join/leave report changes only, so b never saw a join of a
    # (a was subscribed before b).
    others = [f for f in rec.of("as.join") + rec.of("as.leave") if f["client"] not in (a_id, b_id)]
    check_eq(others, [], "join/leave of unknown clients")
    check(not rec.of("bs.join", where=lambda f: f["client"] == a_id), "b must not see a join of a (a joined earlier)")
    await asyncio.sleep(0.2)
    check_eq(len(rec.of("as.leave", where=lambda f: f["client"] == b_id)), 2, "leave events for b")
    await a.disconnect()


run(scenario)
