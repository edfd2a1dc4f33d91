"""The GRPC server API from Python's grpcio, with stubs generated from Gyre's own proto.

Run by `crates/server/tests/grpc_api.rs` against a real `gyre serve` while a raw client,
user "alice", is subscribed to channel "room". The environment carries:

  GYRE_GRPC_ADDR  host:port of the GRPC API
  GYRE_GRPC_KEY   its key (sent as `authorization: apikey <key>`)
  GYRE_PROTO      path of crates/server/proto/api.proto

The stubs are generated at run time into a temporary directory, so nothing generated is kept
in the repository. Exits 0 only after every check passed.
"""

import importlib
import json
import os
import sys
import tempfile

import grpc
from grpc_tools import protoc

TIMEOUT = 10


def check(condition, what):
    if not condition:
        print(f"check failed: {what}", file=sys.stderr)
        sys.exit(1)


def generate(proto, out):
    include = os.path.dirname(proto)
    rc = protoc.main([
        "grpc_tools.protoc",
        f"-I{include}",
        f"--python_out={out}",
        f"--grpc_python_out={out}",
        os.path.basename(proto),
    ])
    check(rc == 0, f"protoc exit {rc}")
    sys.path.insert(0, out)
    return importlib.import_module("api_pb2"), importlib.import_module("api_pb2_grpc")


def main():
    addr = os.environ["GYRE_GRPC_ADDR"]
    key = os.environ["GYRE_GRPC_KEY"]
    with tempfile.TemporaryDirectory() as out:
        pb, pb_grpc = generate(os.environ["GYRE_PROTO"], out)
        auth = [("authorization", f"apikey {key}")]
        with grpc.insecure_channel(addr) as channel:
            api = pb_grpc.CentrifugoApiStub(channel)

            published = api.Publish(
                pb.PublishRequest(channel="room", data=b'{"from":"python"}'),
                metadata=auth, timeout=TIMEOUT)
            check(not published.HasField("error"), f"publish error {published.error}")
            check(published.result.offset == 1, f"offset {published.result.offset}")

            presence = api.Presence(pb.PresenceRequest(channel="room"), metadata=auth, timeout=TIMEOUT)
            users = sorted(info.user for info in presence.result.presence.values())
            check(users == ["alice"], f"presence users {users}")

            stats = api.PresenceStats(pb.PresenceStatsRequest(channel="room"), metadata=auth, timeout=TIMEOUT)
            check(stats.result.num_clients == 1 and stats.result.num_users == 1, f"stats {stats}")

            history = api.History(pb.HistoryRequest(channel="room", limit=10), metadata=auth, timeout=TIMEOUT)
            datas = [json.loads(p.data) for p in history.result.publications]
            check(datas == [{"from": "python"}], f"history {datas}")
            check(history.result.epoch == published.result.epoch, "history epoch")

            batch = api.Batch(pb.BatchRequest(commands=[
                pb.Command(info=pb.InfoRequest()),
                pb.Command(channels=pb.ChannelsRequest(pattern="ro*")),
            ]), metadata=auth, timeout=TIMEOUT)
            check(len(batch.replies) == 2, f"batch {batch}")
            check(len(batch.replies[0].info.nodes) == 1, "batch info")
            check(batch.replies[1].channels.channels["room"].num_clients == 1, "batch channels")

            unknown = api.Publish(pb.PublishRequest(channel="nowhere:x", data=b"{}"),
                                  metadata=auth, timeout=TIMEOUT)
            check(unknown.error.code == 102, f"unknown channel error {unknown.error}")
            try:
                api.Publish(pb.PublishRequest(channel="nowhere:x", data=b"{}"),
                            metadata=auth + [("x-centrifugo-error-mode", "transport")],
                            timeout=TIMEOUT)
                check(False, "transport error mode returned a response")
            except grpc.RpcError as e:
                check(e.code() == grpc.StatusCode.NOT_FOUND, f"transport code {e.code()}")

            for metadata in ([], [("authorization", "apikey wrong")]):
                try:
                    api.Info(pb.InfoRequest(), metadata=metadata, timeout=TIMEOUT)
                    check(False, f"answered without the right key: {metadata}")
                except grpc.RpcError as e:
                    check(e.code() == grpc.StatusCode.UNAUTHENTICATED, f"auth code {e.code()}")
    print("ok")


if __name__ == "__main__":
    main()
