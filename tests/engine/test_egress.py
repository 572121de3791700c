"""The egress policy, checked on a network made of namespaces this test creates.

Nothing here sends a packet to a real address. The topology:

- namespace ``a`` stands for the engine's machine: the engine runs in it (so
  slirp4netns's outside sockets and the engine's nftables table live there), with
  "public" host addresses 203.0.113.7 (on its loopback) and 192.0.2.1 (its link), and
  a service bound on 0.0.0.0;
- namespace ``b`` stands for the rest of the world, reached through a veth pair: the
  addresses the policy must refuse (10.99.0.1, 169.254.169.254, 100.64.0.1, fd00::1),
  a resolver at 10.99.0.53, and two stand-ins for the internet from documentation and
  benchmarking ranges (198.51.100.1, 198.18.0.1).

Every address has a listener that records who connected, so "refused" means the
connection never arrived, not merely that a port was closed. The engine sees its own
``/etc/resolv.conf`` (a bind mount in a mount namespace of its own) naming 10.99.0.53,
so sandbox DNS goes into ``b`` too.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from daytona import CreateSandboxFromSnapshotParams, Daytona

from tests.engine_server import ROOT, EngineServer, _free_port

PORT = 8080
HOST_ADDRESSES = ("203.0.113.7", "192.0.2.1")  # the engine's machine, namespace a
INTERNET = ("198.51.100.1", "198.18.0.1")
DENIED = ("10.99.0.1", "169.254.169.254", "100.64.0.1")
RESOLVER = "10.99.0.53"
WORLD_V6 = "fd00::1"
STARTUP_TIMEOUT = 60.0
# The sandbox uid cannot read the test's virtualenv; the machine's Python serves a probe.
SYSTEM_PYTHON = "/usr/bin/python3"


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True)


@contextlib.contextmanager
def inside(netns: str) -> Iterator[None]:
    """Run this thread in a test network namespace; sockets made here stay in it."""
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    target = os.open(f"/run/netns/{netns}", os.O_RDONLY)
    try:
        os.setns(target, os.CLONE_NEWNET)
        yield
    finally:
        os.setns(home, os.CLONE_NEWNET)
        os.close(target)
        os.close(home)


class Listeners:
    """TCP servers that note the local address of every connection they accept."""

    def __init__(self) -> None:
        self.servers: list[socket.socket] = []
        self.accepted: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def listen(self, address: str, port: int = PORT) -> None:
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        server = socket.socket(family, socket.SOCK_STREAM)
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind((address, port))
        server.listen(16)
        server.setblocking(False)
        self.servers.append(server)

    def start(self) -> None:
        self._thread.start()

    def _serve(self) -> None:
        import selectors

        selector = selectors.DefaultSelector()
        for server in self.servers:
            selector.register(server, selectors.EVENT_READ)
        while not self._stop.is_set():
            for key, _ in selector.select(0.1):
                with contextlib.suppress(BlockingIOError):
                    connection, _ = key.fileobj.accept()  # type: ignore[union-attr]
                    self.accepted.append(
                        f"{connection.getsockname()[0]}:{connection.getsockname()[1]}"
                    )
                    connection.close()

    def seen(self, address: str, port: int = PORT) -> bool:
        """Whether a connection to address:port arrived."""
        return f"{address}:{port}" in self.accepted

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        for server in self.servers:
            server.close()


@dataclass
class World:
    """The two namespaces and what listens in them."""

    a: str
    b: str
    listeners: Listeners = field(default_factory=Listeners)


def _build(world: World) -> None:
    a, b = world.a, world.b
    for ns in (a, b):
        _ip("netns", "add", ns)
        _ip("-n", ns, "link", "set", "lo", "up")
    _ip("link", "add", f"{a}v", "netns", a, "type", "veth", "peer", "name", f"{b}v", "netns", b)
    _ip("-n", a, "addr", "add", "192.0.2.1/30", "dev", f"{a}v")
    _ip("-n", b, "addr", "add", "192.0.2.2/30", "dev", f"{b}v")
    _ip("-n", a, "addr", "add", "fd00:a::1/64", "dev", f"{a}v", "nodad")
    _ip("-n", b, "addr", "add", "fd00:a::2/64", "dev", f"{b}v", "nodad")
    for ns in (a, b):
        _ip("-n", ns, "link", "set", f"{ns}v", "up")
    # Addresses on loopback: this kernel may lack the dummy driver, and a local
    # address answers the same wherever it sits.
    _ip("-n", a, "addr", "add", "203.0.113.7/32", "dev", "lo")
    for address in (*DENIED, RESOLVER, *INTERNET):
        _ip("-n", b, "addr", "add", f"{address}/32", "dev", "lo")
    _ip("-n", b, "addr", "add", f"{WORLD_V6}/128", "dev", "lo")
    _ip("-n", a, "route", "add", "default", "via", "192.0.2.2")
    _ip("-n", a, "-6", "route", "add", "default", "via", "fd00:a::2")
    listeners = world.listeners
    with inside(a):
        listeners.listen("0.0.0.0")  # noqa: S104 -- inside the test's own namespace
        listeners.listen("::1")
    with inside(b):
        for address in (*DENIED, *INTERNET, WORLD_V6):
            listeners.listen(address)
        listeners.listen(RESOLVER, 53)
        listeners.listen(RESOLVER, PORT)
    listeners.start()


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    """The namespaces, torn down whatever happens (also when building them fails)."""
    if os.geteuid() != 0 or shutil.which("ip") is None:
        pytest.skip("network namespaces need root and iproute2 (ip)")
    tag = uuid.uuid4().hex[:6]
    made = World(a=f"sbe{tag}a", b=f"sbe{tag}b")
    try:
        try:
            _build(made)
        except (subprocess.CalledProcessError, OSError) as error:
            detail = getattr(error, "stderr", b"") or b""
            pytest.skip(f"cannot build test network namespaces: {error} {detail.decode()}")
        yield made
    finally:
        made.listeners.close()
        for ns in (made.a, made.b):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)


class Engine:
    """An engine running inside namespace ``a``, reached from there."""

    def __init__(self, server: EngineServer, netns: str) -> None:
        self.server = server
        self.netns = netns
        self.client = server.client()
        self.toolbox = httpx.Client(
            base_url=server.toolbox_url,
            headers={"Authorization": f"Bearer {server.api_key}"},
            timeout=60,
        )

    def api(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        with inside(self.netns):
            return self.client.request(method, path, **kwargs)

    def create(self, **body: Any) -> dict[str, Any]:
        response = self.api("POST", "/sandbox", json={"autoStopInterval": 0, **body})
        assert response.status_code == 200, response.text
        dto = response.json()
        assert dto["state"] == "started", dto
        return dto

    def network(self, sandbox_id: str, **body: Any) -> dict[str, Any]:
        response = self.api("POST", f"/sandbox/{sandbox_id}/network-settings", json=body)
        assert response.status_code == 200, response.text
        return response.json()

    def connects(self, sandbox_id: str, *targets: tuple[str, int]) -> dict[str, bool | str]:
        """Which of host:port a process in the sandbox can open a TCP connection to
        (True), is refused by (False), or something else (the errno, e.g. a timeout)."""
        code = (
            "import json, socket\n"
            "result = {}\n"
            f"for host, port in {list(targets)!r}:\n"
            "    s = socket.socket()\n"
            "    s.settimeout(5)\n"
            # Refused means refused at once (connection refused, network or host
            # unreachable), not a connection left to time out.
            "    code = s.connect_ex((host, port))\n"
            "    answer = {0: True, 101: False, 111: False, 113: False}\n"
            "    result[f'{host}:{port}'] = answer.get(code, f'errno {code}')\n"
            "    s.close()\n"
            "print(json.dumps(result))\n"
        )
        with inside(self.netns):
            response = self.toolbox.post(f"/{sandbox_id}/process/code-run", json={"code": code})
        assert response.status_code == 200, response.text
        return json.loads(response.json()["result"])

    def uid(self, sandbox_id: str) -> int:
        """The sandbox's host uid, as the engine recorded it."""
        path = self.server.data_dir / "engine" / "engine.sqlite3"
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
            return int(
                db.execute("SELECT uid FROM sandboxes WHERE id = ?", (sandbox_id,)).fetchone()[0]
            )


def _wait_ready(server: EngineServer) -> None:
    key_file = server.data_dir / "engine" / "api-key"
    deadline = time.monotonic() + STARTUP_TIMEOUT
    assert server.process is not None
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"engine exited: {server.log_path.read_text()[-3000:]}")
        if key_file.exists() and (key := key_file.read_text().strip()):
            server.api_key = key
            with contextlib.suppress(httpx.TransportError):
                headers = {"Authorization": f"Bearer {key}"}
                if (
                    httpx.get(f"{server.api_url}/health", headers=headers, timeout=2).status_code
                    == 200
                ):
                    return
        time.sleep(0.05)
    raise RuntimeError(f"engine did not start: {server.log_path.read_text()[-3000:]}")


@contextlib.contextmanager
def engine_inside(world: World, data_dir: Path, **settings: str) -> Iterator[Engine]:
    """An engine whose network namespace is ``a`` and whose resolv.conf names 10.99.0.53."""
    data_dir.mkdir(parents=True, exist_ok=True)
    resolv = data_dir / "resolv.conf"
    resolv.write_text(f"nameserver {RESOLVER}\n")
    server = EngineServer(data_dir=data_dir, port=_free_port())
    env = {
        **os.environ,
        **server.uid_env(),
        "SANDBAR_ENGINE_TICK_SECONDS": "0.25",
        "SANDBAR_ENGINE_WARM_POOL": "0",
        "SANDBAR_IMAGE_DIR": os.environ.get("SANDBAR_IMAGE_DIR") or str(ROOT / "var" / "images"),
        **settings,
    }
    env.pop("SANDBAR_ENGINE_PORT", None)
    # A mount namespace of its own (private to it) shows the engine, and the
    # slirp4netns it starts, this resolv.conf instead of the machine's.
    bind = 'mount --bind "$0" /etc/resolv.conf && exec "$@"'
    argv = [
        "unshare", "--mount", "--propagation", "slave", "--", "sh", "-c", bind, str(resolv),
        sys.executable, "-m", "dashboard.engine", "--host", "127.0.0.1",
        "--port", str(server.port), "--data-dir", str(data_dir),
    ]  # fmt: skip
    with inside(world.a), open(server.log_path, "ab") as log:
        server.process = subprocess.Popen(
            argv, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
        )
        try:
            _wait_ready(server)
        except BaseException:
            server.stop()
            raise
    engine = Engine(server, world.a)
    try:
        yield engine
    finally:
        server.stop()
        engine.client.close()
        engine.toolbox.close()


@pytest.fixture(scope="module")
def engine_in_a(world: World, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    """The module's engine, with the default policy."""
    with engine_inside(world, tmp_path_factory.mktemp("egress-engine")) as engine:
        yield engine


def _targets(*addresses: str, port: int = PORT) -> list[tuple[str, int]]:
    return [(address, port) for address in addresses]


def test_a_sandbox_reaches_the_internet_but_not_private_link_local_shared_or_the_host(
    engine_in_a: Engine, world: World
) -> None:
    sandbox = engine_in_a.create()
    # 10.0.2.2 is slirp4netns's way to the host's loopback, disabled on top of this.
    refused = (*DENIED, *HOST_ADDRESSES, "10.0.2.2")
    result = engine_in_a.connects(sandbox["id"], *_targets(*INTERNET, *refused))
    assert result == {f"{a}:{PORT}": a in INTERNET for a in (*INTERNET, *refused)}
    assert all(world.listeners.seen(address) for address in INTERNET)
    assert not any(world.listeners.seen(address) for address in refused)


def test_dns_reaches_exactly_the_hosts_resolver_on_port_53(
    engine_in_a: Engine, world: World
) -> None:
    sandbox = engine_in_a.create()
    # slirp4netns carries the sandbox's 10.0.2.3 to the resolver of resolv.conf, here
    # in 10.0.0.0/8, which is otherwise refused: port 53 there passes, nothing else.
    result = engine_in_a.connects(sandbox["id"], ("10.0.2.3", 53), (RESOLVER, PORT))
    assert result == {"10.0.2.3:53": True, f"{RESOLVER}:{PORT}": False}
    assert world.listeners.seen(RESOLVER, 53)
    assert not world.listeners.seen(RESOLVER, PORT)


def test_an_allow_list_narrows_egress_to_its_networks_and_never_widens_it(
    engine_in_a: Engine, world: World
) -> None:
    sandbox = engine_in_a.create(networkAllowList="198.51.100.0/24, 10.99.0.0/24")
    assert sandbox["networkAllowList"] == "198.51.100.0/24,10.99.0.0/24"
    result = engine_in_a.connects(
        sandbox["id"], *_targets("198.51.100.1", "198.18.0.1", "10.99.0.1")
    )
    assert result == {
        f"198.51.100.1:{PORT}": True,
        f"198.18.0.1:{PORT}": False,
        f"10.99.0.1:{PORT}": False,
    }
    # The same sandbox's DNS still works: names resolve, connections stay narrowed.
    assert engine_in_a.connects(sandbox["id"], ("10.0.2.3", 53)) == {"10.0.2.3:53": True}


def test_an_allow_list_holds_across_a_stop_and_a_start(engine_in_a: Engine) -> None:
    sandbox = engine_in_a.create(networkAllowList="198.51.100.0/24")
    for action in ("stop", "start"):
        response = engine_in_a.api("POST", f"/sandbox/{sandbox['id']}/{action}")
        assert response.status_code == 200, response.text
    deadline = time.monotonic() + 30
    while engine_in_a.api("GET", f"/sandbox/{sandbox['id']}").json()["state"] != "started":
        assert time.monotonic() < deadline
        time.sleep(0.1)
    result = engine_in_a.connects(sandbox["id"], *_targets(*INTERNET))
    assert result == {f"198.51.100.1:{PORT}": True, f"198.18.0.1:{PORT}": False}


def test_network_settings_change_a_running_sandbox_at_once(engine_in_a: Engine) -> None:
    sandbox = engine_in_a.create()
    both = _targets(*INTERNET)
    assert engine_in_a.connects(sandbox["id"], *both) == {f"{a}:{PORT}": True for a in INTERNET}

    narrowed = engine_in_a.network(sandbox["id"], networkAllowList="198.51.100.1/32")
    assert narrowed["networkAllowList"] == "198.51.100.1/32"
    assert engine_in_a.connects(sandbox["id"], *both) == {
        f"198.51.100.1:{PORT}": True,
        f"198.18.0.1:{PORT}": False,
    }

    blocked = engine_in_a.network(sandbox["id"], networkBlockAll=True)
    assert blocked["networkBlockAll"] is True and blocked["networkAllowList"] is None
    assert engine_in_a.connects(sandbox["id"], *both, ("10.0.2.3", 53)) == {
        f"198.51.100.1:{PORT}": False,
        f"198.18.0.1:{PORT}": False,
        "10.0.2.3:53": False,
    }

    opened = engine_in_a.network(sandbox["id"], networkBlockAll=False)
    assert opened["networkBlockAll"] is False
    assert engine_in_a.connects(sandbox["id"], *both) == {f"{a}:{PORT}": True for a in INTERNET}


def test_a_sandbox_started_offline_gets_its_network_when_unblocked(engine_in_a: Engine) -> None:
    sandbox = engine_in_a.create(networkBlockAll=True)
    assert engine_in_a.connects(sandbox["id"], ("198.51.100.1", PORT)) == {
        f"198.51.100.1:{PORT}": False
    }
    engine_in_a.network(sandbox["id"], networkBlockAll=False)
    assert engine_in_a.connects(sandbox["id"], ("198.51.100.1", PORT), ("10.99.0.1", PORT)) == {
        f"198.51.100.1:{PORT}": True,
        f"10.99.0.1:{PORT}": False,
    }


def test_the_operator_allows_and_denies_networks_on_top_of_the_default(
    world: World, tmp_path: Path
) -> None:
    settings = {
        "SANDBAR_EGRESS_ALLOW": "10.99.0.1/32, 169.254.0.0/16",
        "SANDBAR_EGRESS_DENY": "198.18.0.0/15,169.254.169.254/32",
    }
    with engine_inside(world, tmp_path / "engine", **settings) as engine:
        sandbox = engine.create()
        probed = ("10.99.0.1", "100.64.0.1", "169.254.169.254", *INTERNET)
        result = engine.connects(sandbox["id"], *_targets(*probed))
    # Allowed past the default: 10.99.0.1; denied on top: 198.18.0.1; a deny inside an
    # allowed network wins (169.254.169.254); the rest of the default stands.
    assert result == {
        f"10.99.0.1:{PORT}": True,
        f"100.64.0.1:{PORT}": False,
        f"169.254.169.254:{PORT}": False,
        f"198.51.100.1:{PORT}": True,
        f"198.18.0.1:{PORT}": False,
    }


def test_a_setting_that_is_not_a_network_stops_the_engine_with_its_name(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from dashboard.engine.config import ConfigError, load_config

    monkeypatch.setenv("SANDBAR_EGRESS_DENY", "198.18.0.0/15, the office")
    with pytest.raises(ConfigError, match="SANDBAR_EGRESS_DENY: 'the office' is not an IP"):
        load_config()


def test_the_rules_also_refuse_the_sandbox_uid_loopback_and_ipv6_ranges(
    engine_in_a: Engine, world: World
) -> None:
    # slirp4netns gives sandboxes no IPv6 and never sends to 127.0.0.1 itself; what it
    # would do, a process of the sandbox's uid in the engine's namespace can try.
    sandbox = engine_in_a.create()
    uid = engine_in_a.uid(sandbox["id"])
    probe = (
        "import json, socket, sys\n"
        "out = {}\n"
        "for host in sys.argv[1:]:\n"
        "    s = socket.socket(socket.AF_INET6 if ':' in host else socket.AF_INET)\n"
        "    s.settimeout(3)\n"
        f"    out[host] = s.connect_ex((host, {PORT})) == 0\n"
        "print(json.dumps(out))\n"
    )
    hosts = ["127.0.0.1", "::1", WORLD_V6, "203.0.113.7", "198.51.100.1"]
    argv = [
        "setpriv",
        f"--reuid={uid}",
        f"--regid={uid}",
        "--clear-groups",
        SYSTEM_PYTHON,
        "-c",
        probe,
        *hosts,
    ]
    with inside(world.a):
        done = subprocess.run(argv, capture_output=True, text=True, check=True, timeout=30)
    assert json.loads(done.stdout) == {host: host == "198.51.100.1" for host in hosts}
    # The same connections as root (the engine's own traffic) are not filtered.
    with inside(world.a):
        root = subprocess.run(argv[4:], capture_output=True, text=True, check=True, timeout=30)
    assert json.loads(root.stdout) == dict.fromkeys(hosts, True)


def test_root_of_a_user_namespace_of_the_sandbox_uid_cannot_touch_the_rules(
    engine_in_a: Engine, world: World
) -> None:
    # More than a sandbox ever has (it can make no user namespace, and it is not in the
    # engine's network namespace): root, with every capability, in a user namespace of
    # the sandbox's uid, sitting in the engine's own network namespace.
    sandbox = engine_in_a.create()
    uid = engine_in_a.uid(sandbox["id"])
    table = _tables(world.a)
    assert len(table) == 1
    nft = shutil.which("nft") or "nft"
    attack = f"{nft} flush ruleset; {nft} delete table inet {table[0]}; {nft} list tables"
    argv = [
        "setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups",
        "unshare", "--map-root-user", "--", "sh", "-c", f"id -u; {attack}",
    ]  # fmt: skip
    with inside(world.a):
        done = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    assert done.stdout.split()[:1] == ["0"], done.stderr  # it was root in that namespace
    assert "Operation not permitted" in done.stderr
    assert _tables(world.a) == table
    result = engine_in_a.connects(sandbox["id"], ("10.99.0.1", PORT), ("198.51.100.1", PORT))
    assert result == {f"10.99.0.1:{PORT}": False, f"198.51.100.1:{PORT}": True}


def _tables(netns: str) -> list[str]:
    """The nftables tables of a test namespace, by name."""
    with inside(netns):
        out = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True, check=True)
    return [line.split()[-1] for line in out.stdout.splitlines() if line.strip()]


def test_an_engine_removes_its_table_when_it_stops_and_those_of_dead_engines_when_it_starts(
    world: World, tmp_path: Path
) -> None:
    # A table as an engine that was killed leaves it: rules for a uid that the next
    # engine's sandboxes may hold. Its owner "pid" is this test's child that has exited.
    gone = subprocess.Popen(["true"])
    gone.wait()
    orphan = "sandbar_0123456789ab"
    script = (
        f'table inet {orphan} {{ comment "pid={gone.pid} start=1"; '
        "map sandboxes { typeof meta skuid : verdict; elements = { 61001 : drop } }; "
        "chain output { type filter hook output priority 0; meta skuid vmap @sandboxes; }; }"
    )
    with inside(world.a):
        subprocess.run(["nft", "-f", "-"], input=script.encode(), check=True)
    before = set(_tables(world.a))
    assert orphan in before
    data_dir = tmp_path / "engine"
    data_dir.mkdir()
    server = EngineServer(data_dir=data_dir, port=_free_port())
    env = {
        **os.environ,
        **server.uid_env(),
        "SANDBAR_ENGINE_WARM_POOL": "0",
        "SANDBAR_IMAGE_DIR": os.environ.get("SANDBAR_IMAGE_DIR") or str(ROOT / "var" / "images"),
    }
    argv = [
        sys.executable, "-m", "dashboard.engine", "--host", "127.0.0.1",
        "--port", str(server.port), "--data-dir", str(data_dir),
    ]  # fmt: skip
    with inside(world.a), open(server.log_path, "ab") as log:
        server.process = subprocess.Popen(
            argv, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
        )
        _wait_ready(server)
    try:
        during = set(_tables(world.a))
        added = during - before
        assert len(added) == 1 and next(iter(added)).startswith("sandbar_")
        assert orphan not in during
        # A live engine's table (the module's engine) is left alone.
        assert before - {orphan} <= during
    finally:
        server.stop()
    assert set(_tables(world.a)) == before - {orphan}


@pytest.mark.parametrize(
    ("allow_list", "message"),
    [
        ("10.0.0.0", "prefix length"),
        ("198.51.100.0/33", "prefix length"),
        ("2001:db8::/32", "IPv4"),
        ("example.com/24", "Invalid IPv4 address"),
        (",".join(f"198.51.{i}.0/24" for i in range(11)), "more than 10"),
    ],
)
def test_a_bad_allow_list_is_refused_with_the_reason(
    api: httpx.Client, allow_list: str, message: str
) -> None:
    response = api.post("/sandbox", json={"networkAllowList": allow_list})
    assert response.status_code == 400
    assert message in response.json()["message"]


def test_an_allow_list_cannot_come_with_block_all(api: httpx.Client) -> None:
    body = {"networkAllowList": "198.51.100.0/24", "networkBlockAll": True}
    response = api.post("/sandbox", json=body)
    assert response.status_code == 400
    assert "cannot be combined" in response.json()["message"]


def test_the_official_sdk_sets_and_changes_the_allow_list(daytona: Daytona) -> None:
    params = CreateSandboxFromSnapshotParams(network_allow_list="203.0.113.9/24")
    sandbox = daytona.create(params)
    try:
        assert sandbox.network_allow_list == "203.0.113.0/24"
        sandbox.update_network_settings(network_allow_list="198.51.100.7/32,203.0.113.0/24")
        assert sandbox.network_allow_list == "198.51.100.7/32,203.0.113.0/24"
        sandbox.update_network_settings(network_block_all=True)
        assert sandbox.network_block_all is True and not sandbox.network_allow_list
        assert daytona.get(sandbox.id).network_block_all is True
    finally:
        sandbox.delete()
