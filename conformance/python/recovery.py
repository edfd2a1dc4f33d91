"""Recovery after a server API disconnect with a reconnect code: the three publications published
while the client was away come back on resubscribe, flagged recovered."""

from gyre_common import check, recovery_round, run


async def scenario():
    _, details = await recovery_round("rec", missed=3, expect_recovered=True)
    position = details["second"]["position"]
    check(position is not None and position.epoch == details["epoch"], f"resubscribe position {position}")
    # When recovered, the subscribe result carries the position the client asked to recover
    # from (offset 1, the publication it had); the recovered publications advance it.
    check(position.offset == 1, f"recovered subscribe result offset: expected 1, got {position.offset}")


run(scenario)
