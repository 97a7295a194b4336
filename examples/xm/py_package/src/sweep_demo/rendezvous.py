"""A tiny distributed job with the standard library: every rank connects to rank 0 on
``MASTER_ADDR:MASTER_PORT`` (the rendezvous environment lxr gives each rank) and rank 0 sends
everyone the list of all ranks, an all-gather. ``python -m sweep_demo.rendezvous``.

``--role server`` / ``--role client`` is a server and a client of a JobGroup instead: the client
finds the server's node in ``LXR_COMPONENT_SERVER_NODELIST``.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import time


def _connect(host: str, port: int) -> socket.socket:
    deadline = time.time() + 60
    while True:
        try:
            return socket.create_connection((host, port), timeout=5)
        except OSError:
            if time.time() > deadline:
                raise
            time.sleep(0.2)


def all_gather() -> list[dict[str, str]]:
    """Every rank's view of the rendezvous variables, as rank 0 gathered them."""
    env = os.environ
    names = ("RANK", "LOCAL_RANK", "NODE_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "MASTER_ADDR")
    me = {k: env.get(k, "") for k in (*names, "MASTER_PORT")}
    me["NODE"] = env.get("SLURMD_NODENAME") or socket.gethostname()
    rank, world = int(env["RANK"]), int(env["WORLD_SIZE"])
    port = int(env["MASTER_PORT"])
    if rank == 0:
        server = socket.create_server(("", port))
        server.settimeout(60)
        peers, items = [], [me]
        while len(items) < world:
            conn, _ = server.accept()
            items.append(json.loads(conn.makefile().readline()))
            peers.append(conn)
        out = sorted(items, key=lambda i: int(i["RANK"]))
        for conn in peers:
            conn.sendall((json.dumps(out) + "\n").encode())
            conn.close()
        return out
    conn = _connect(env["MASTER_ADDR"], port)
    conn.sendall((json.dumps(me) + "\n").encode())
    return list(json.loads(conn.makefile().readline()))


def main(argv: list[str] | None = None) -> int:
    """Run the all-gather, or one side of the server/client pair."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--role", choices=["ranks", "server", "client"], default="ranks")
    parser.add_argument("--port", type=int, default=0)
    args, _ = parser.parse_known_args(argv)
    if args.role == "ranks":
        print("ALLGATHER " + json.dumps(all_gather()), flush=True)
    elif args.role == "server":
        server = socket.create_server(("", args.port))
        server.settimeout(60)
        conn, _ = server.accept()
        line = conn.makefile().readline().strip()
        conn.sendall(f"pong {line}\n".encode())
        print("SERVER got", line, flush=True)
    else:
        host = os.environ["LXR_COMPONENT_SERVER_NODELIST"]
        conn = _connect(host, args.port)
        conn.sendall(b"ping\n")
        print("CLIENT", conn.makefile().readline().strip(), "from", host, flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
