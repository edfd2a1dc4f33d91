"""A GRPC proxy backend in Python's grpcio, with stubs generated from Gyre's own proto.

Run by `crates/server/tests/proxy_grpc.rs`: it serves `CentrifugoProxy` on a free loopback
port, prints `port <n>` and serves until its stdin closes. The environment carries
GYRE_PROTO, the path of crates/server/proto/proxy.proto; the stubs are generated at run time
into a temporary directory, so nothing generated is kept in the repository.

- Connect: the user comes from the forwarded `x-user` metadata (none: error 1001).
- RPC `getCurrentYear`: `{"year": 2026}`; `whoami`: the user, the `authorization` metadata
  and the connection meta; any other method: error 104.
"""

import importlib
import json
import os
import sys
import tempfile
from concurrent import futures

import grpc
from grpc_tools import protoc


def generate(proto, out):
    rc = protoc.main([
        "grpc_tools.protoc",
        f"-I{os.path.dirname(proto)}",
        f"--python_out={out}",
        f"--grpc_python_out={out}",
        os.path.basename(proto),
    ])
    if rc != 0:
        sys.exit(f"protoc failed: {rc}")
    sys.path.insert(0, out)
    return importlib.import_module("proxy_pb2"), importlib.import_module("proxy_pb2_grpc")


def main():
    with tempfile.TemporaryDirectory() as out:
        pb, pb_grpc = generate(os.environ["GYRE_PROTO"], out)

        def metadata(context, key):
            return dict(context.invocation_metadata()).get(key, "")

        class Backend(pb_grpc.CentrifugoProxyServicer):
            def Connect(self, request, context):
                user = metadata(context, "x-user")
                if not user:
                    return pb.ConnectResponse(error=pb.Error(code=1001, message="who are you"))
                return pb.ConnectResponse(result=pb.ConnectResult(
                    user=user,
                    data=json.dumps({"hello": user}).encode(),
                    meta=json.dumps({"plan": "free"}).encode(),
                ))

            def RPC(self, request, context):
                if request.method == "getCurrentYear":
                    return pb.RPCResponse(result=pb.RPCResult(data=b'{"year": 2026}'))
                if request.method == "whoami":
                    answer = {
                        "user": request.user,
                        "auth": metadata(context, "authorization"),
                        "meta": json.loads(request.meta or b"null"),
                    }
                    return pb.RPCResponse(result=pb.RPCResult(data=json.dumps(answer).encode()))
                return pb.RPCResponse(error=pb.Error(code=104, message="method not found"))

        server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        pb_grpc.add_CentrifugoProxyServicer_to_server(Backend(), server)
        port = server.add_insecure_port("127.0.0.1:0")
        server.start()
        print(f"port {port}", flush=True)
        sys.stdin.read()
        server.stop(0)


if __name__ == "__main__":
    main()
