"""Stand-in for the RPC side of a CARLA 0.9.x server: answers the msgpack-rpc `version` call.

Contract kept (reference/carla.md §3, LibCarla rpc/Server.h, CarlaServer.cpp `BIND_ASYNC(version)`):
rpclib framing, request [0, msgid, "version", []], reply [1, msgid, nil, [[1, "<version>"]]], i.e.
carla::rpc::Response<std::string> holding the variant [index, value]. Verified against the real
`carla` client library in the tests. Unknown methods get rpclib's error reply. Standard library
plus the msgpack package (the codec rpc.py uses) only.

Run: python -m tests.standins.carla_rpc --port P [--version 0.9.15] [--reply-delay S]
"""

from __future__ import annotations

import argparse
import socketserver
import threading
import time

import msgpack


def make_handler(version: str, reply_delay: float) -> type:
    class Handler(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            unpacker = msgpack.Unpacker(unicode_errors="replace")
            while True:
                try:
                    chunk = self.request.recv(65536)
                except OSError:
                    return
                if not chunk:
                    return
                unpacker.feed(chunk)
                for message in unpacker:  # every whole message received so far
                    if not (isinstance(message, list) and len(message) == 4 and message[0] == 0):
                        continue
                    _, msgid, method, _params = message
                    time.sleep(reply_delay)
                    if method == "version":
                        reply = [1, msgid, None, [[1, version]]]
                    else:
                        error = f"rpclib: server could not find function '{method}' with argument count 0."
                        reply = [1, msgid, error, None]
                    self.request.sendall(msgpack.packb(reply))

    return Handler


class Server(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True


def serve(port: int, version: str, reply_delay: float = 0.0, host: str = "127.0.0.1") -> Server:
    """Start serving in a background thread; call .shutdown() to stop."""
    server = Server((host, port), make_handler(version, reply_delay))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--version", default="0.9.15")
    parser.add_argument("--reply-delay", type=float, default=0.0)
    args = parser.parse_args()
    server = Server(("127.0.0.1", args.port), make_handler(args.version, args.reply_delay))
    print(f"listening on {args.port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
