"""A real 3-master Redis Cluster on loopback, for the RedisLedger's cluster tests.

Three ``redis-server --cluster-enabled yes`` on free ports (each one's cluster bus port,
port + 10000, free too), joined by ``redis-cli --cluster create``; each node persists to a
directory of its own (AOF, ``appendfsync always``, and its ``nodes.conf``), so a node
restarted on its port comes back with its data, its slots and its place in the cluster.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

from tests._support.redis_server import RedisServer, start_retrying

__all__ = ["LocalCluster", "cluster_port"]

BUS_OFFSET = 10000


def _bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def cluster_port(taken: set[int]) -> int:
    """A free loopback port whose cluster bus port (port + 10000) is free too."""
    for _ in range(200):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", 0))
            port: int = sock.getsockname()[1]
        if port + BUS_OFFSET > 65535 or port in taken or port + BUS_OFFSET in taken:
            continue
        if _bindable(port + BUS_OFFSET):
            return port
    raise RuntimeError("no free port pair (port, port + 10000) on loopback")


def _cli(port: int, *args: str, timeout: float = 30.0) -> str:
    binary = shutil.which("redis-cli")
    if binary is None:
        raise RuntimeError("redis-cli is not on PATH; apt-get install redis-tools")
    done = subprocess.run(
        [binary, "-h", "127.0.0.1", "-p", str(port), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(
            f"redis-cli {' '.join(args)}: {done.stderr[-500:] or done.stdout[-500:]}"
        )
    return done.stdout


class LocalCluster:
    """``start()`` three masters and create the cluster; ``stop()`` them; ``restart(i)`` one."""

    def __init__(self, base: Path, masters: int = 3) -> None:
        self.base = base
        self.masters = masters
        self.nodes: list[RedisServer] = []
        self._pick_ports()

    def _pick_ports(self) -> None:
        self.nodes = []
        taken: set[int] = set()
        for i in range(self.masters):
            port = cluster_port(taken)
            taken |= {port, port + BUS_OFFSET}
            folder = self.base / f"node-{i}"
            shutil.rmtree(folder, ignore_errors=True)  # no nodes.conf of an attempt before
            folder.mkdir(parents=True)
            extra = (
                "--cluster-enabled", "yes",
                "--cluster-config-file", "nodes.conf",
                "--cluster-node-timeout", "5000",
            )  # fmt: skip
            self.nodes.append(RedisServer(port=port, appendonly=True, dir=folder, extra=extra))

    @property
    def ports(self) -> list[int]:
        return [node.port for node in self.nodes]

    @property
    def url(self) -> str:
        """A startup node: the client finds the others."""
        return self.nodes[0].url

    def start(self) -> LocalCluster:
        try:
            for node in self.nodes:
                node.start()
            _cli(
                self.ports[0],
                "--cluster", "create",
                *(f"127.0.0.1:{port}" for port in self.ports),
                "--cluster-replicas", "0",
                "--cluster-yes",
            )  # fmt: skip
            self.wait_ok()
        except BaseException:
            self.stop()
            raise
        return self

    def wait_ok(self, timeout: float = 30.0) -> None:
        """Until every node says ``cluster_state:ok`` and knows every other node."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                states = [_cli(port, "CLUSTER", "INFO") for port in self.ports]
                known = [_cli(port, "CLUSTER", "NODES").count("connected") for port in self.ports]
            except RuntimeError:
                states, known = [], []
            if (
                states
                and all("cluster_state:ok" in s for s in states)
                and all(n == len(self.ports) for n in known)
            ):
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"the cluster on {self.ports} is not ok after {timeout}s")
            time.sleep(0.1)

    def cli(self, index: int, *args: str) -> str:
        """``redis-cli`` against node ``index``: its stdout."""
        return _cli(self.ports[index], *args)

    def node_id(self, index: int) -> str:
        return self.cli(index, "CLUSTER", "MYID").strip()

    def owner(self, slot: int) -> int:
        """The index of the node that serves ``slot``."""
        for line in self.cli(0, "CLUSTER", "NODES").splitlines():
            fields = line.split()
            port = int(fields[1].split(":")[1].split("@")[0])
            for span in fields[8:]:
                if span.startswith("["):
                    continue  # a slot being migrated or imported
                lo, _, hi = span.partition("-")
                if int(lo) <= slot <= int(hi or lo):
                    return self.ports.index(port)
        raise RuntimeError(f"no node serves slot {slot}")

    def keys_in_slot(self, index: int, slot: int) -> list[str]:
        return self.cli(index, "CLUSTER", "GETKEYSINSLOT", str(slot), "100000").split()

    def begin_migration(self, slot: int, source: int, target: int) -> None:
        """``slot`` IMPORTING on ``target``, then MIGRATING on ``source`` (the documented order)."""
        self.cli(target, "CLUSTER", "SETSLOT", str(slot), "IMPORTING", self.node_id(source))
        self.cli(source, "CLUSTER", "SETSLOT", str(slot), "MIGRATING", self.node_id(target))

    def migrate(self, source: int, target: int, keys: list[str]) -> None:
        """Move ``keys`` from ``source`` to ``target`` (``MIGRATE ... KEYS``)."""
        if keys:
            port = str(self.ports[target])
            self.cli(source, "MIGRATE", "127.0.0.1", port, "", "0", "5000", "KEYS", *keys)

    def finish_migration(self, slot: int, source: int, target: int) -> None:
        """Move the slot's remaining keys and give ``slot`` to ``target`` on every node."""
        self.migrate(source, target, self.keys_in_slot(source, slot))
        owner = self.node_id(target)
        for index in (
            target,
            source,
            *(i for i in range(len(self.nodes)) if i not in (source, target)),
        ):
            self.cli(index, "CLUSTER", "SETSLOT", str(slot), "NODE", owner)
        self.wait_ok()

    def errors(self, index: int) -> dict[str, int]:
        """``INFO errorstats`` of node ``index``: error prefix -> how many were answered."""
        out: dict[str, int] = {}
        for line in self.cli(index, "INFO", "errorstats").splitlines():
            if line.startswith("errorstat_"):
                name, _, rest = line.removeprefix("errorstat_").partition(":")
                out[name] = int(rest.split("=")[1])
        return out

    def restart(self, index: int) -> None:
        self.nodes[index].restart()
        self.wait_ok()

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()

    def __enter__(self) -> LocalCluster:
        return start_retrying(self.start, self._pick_ports)

    def __exit__(self, *exc: object) -> None:
        self.stop()
