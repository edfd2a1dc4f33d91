"""Recovery that can't succeed: the namespace keeps 2 publications, 5 are missed, so the
resubscribe reports was_recovering=true, recovered=false and delivers none of them."""

from gyre_common import check_eq, recovery_round, run


async def scenario():
    _, details = await recovery_round("small:rec", missed=5, expect_recovered=False)
    position = details["second"]["position"]
    # Not recovered: the subscription restarts from the stream top.
    check_eq((position.offset, position.epoch), (6, details["epoch"]), "position after unrecoverable resubscribe")


run(scenario)
