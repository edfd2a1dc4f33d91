"""History with exact offsets: limit, since, reverse, position only, and a stale epoch (112)."""

from centrifuge import ReplyError, StreamPosition

from gyre_common import Failure, Recorder, api_publish, check, check_eq, decode, env, new_client, run

CHANNEL = "hist"


def offsets(result):
    return [p.offset for p in result.publications]


async def scenario():
    rec = Recorder()
    sent = {}
    epoch = ""
    for i in range(1, 6):
        data = {"i": i}
        offset, epoch = api_publish(CHANNEL, data)
        check_eq(offset, i, f"API publish offset #{i}")
        sent[offset] = data

    client = new_client(rec, "c", token=env("GYRE_TOKEN_U1"))
    await client.connect()
    await client.ready(timeout=5)

    top = await client.history(CHANNEL)  # limit 0: position only
    check_eq((top.offset, top.epoch, offsets(top)), (5, epoch, []), "history limit=0 (offset, epoch, pubs)")

    everything = await client.history(CHANNEL, limit=-1)
    check_eq(offsets(everything), [1, 2, 3, 4, 5], "history limit=-1 offsets")
    check_eq([decode(p.data) for p in everything.publications], [sent[o] for o in range(1, 6)], "history payloads")
    check_eq((everything.offset, everything.epoch), (5, epoch), "history top position")

    check_eq(offsets(await client.history(CHANNEL, limit=2)), [1, 2], "history limit=2")
    check_eq(offsets(await client.history(CHANNEL, limit=10)), [1, 2, 3, 4, 5], "history limit=10")

    since = StreamPosition(offset=2, epoch=epoch)
    check_eq(offsets(await client.history(CHANNEL, limit=-1, since=since)), [3, 4, 5], "history since 2")
    check_eq(offsets(await client.history(CHANNEL, limit=1, since=since)), [3], "history since 2 limit 1")
    top_since = StreamPosition(offset=5, epoch=epoch)
    check_eq(offsets(await client.history(CHANNEL, limit=-1, since=top_since)), [], "history since top")

    check_eq(offsets(await client.history(CHANNEL, limit=2, reverse=True)), [5, 4], "history reverse limit 2")
    check_eq(offsets(await client.history(CHANNEL, limit=-1, reverse=True)), [5, 4, 3, 2, 1], "history reverse all")
    check_eq(
        offsets(await client.history(CHANNEL, limit=-1, reverse=True, since=StreamPosition(offset=4, epoch=epoch))),
        [3, 2, 1],
        "history reverse since 4",
    )

    try:
        await client.history(CHANNEL, limit=-1, since=StreamPosition(offset=1, epoch="not-the-epoch"))
    except ReplyError as e:
        check_eq(e.code, 112, "history with a stale epoch: error code")
    else:
        raise Failure("history with a stale epoch must fail with 112 (unrecoverable position)")

    # An empty channel has top offset 0 and already an epoch.
    empty = await client.history("hist-empty", limit=-1)
    check_eq((empty.offset, offsets(empty)), (0, []), "history of a channel never published to")
    check(bool(empty.epoch), "empty channel history has an epoch")

    # The "small" namespace keeps history but grants no history access to clients: 103.
    try:
        await client.history("small:hist", limit=-1)
    except ReplyError as e:
        check_eq(e.code, 103, "history without permission: error code")
    else:
        raise Failure("history without permission must fail with 103 (permission denied)")

    await client.disconnect()


run(scenario)
