"""The egress policy: where a networked sandbox's traffic may go, enforced with nftables.

slirp4netns, a sandbox's user-mode network, opens its outside sockets in the engine's
own network namespace as the sandbox's host uid. So one nftables table of the engine's
(``inet sandbar_<instance>``) in the output hook sees every packet a sandbox sends out,
and ``meta skuid`` says whose it is. A verdict map sends each sandbox uid to a chain of
its own (block all, its ``networkAllowList``), which ends in the shared policy: the
operator's deny list, then the operator's allow list, then the default denials (the
host's own addresses, loopback, link-local, private and shared ranges, multicast,
broadcast). DNS to exactly the host's resolvers, port 53, is let through first: slirp4netns
forwards the sandbox's 10.0.2.3 to them, and they are often a private or loopback address.

The rules live in the host's namespace, which no sandbox can enter; a sandbox's root
(root of its own user namespace only) has no say over them.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import nftables

log = logging.getLogger("sandbar.engine")

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

# Never reachable by default: "this host" and unspecified, RFC 1918, shared (CGNAT)
# space, loopback, link-local (cloud metadata services live there), multicast and the
# limited broadcast; for IPv6 the unspecified and loopback addresses, unique-local,
# link-local and multicast. The host's other addresses are caught by type, whatever they are.
DEFAULT_DENY: tuple[str, ...] = (
    "0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16",
    "172.16.0.0/12", "192.168.0.0/16", "224.0.0.0/4", "255.255.255.255/32",
    "::/128", "::1/128", "fc00::/7", "fe80::/10", "ff00::/8",
)  # fmt: skip
MAX_ALLOW_LIST = 10  # networks in one networkAllowList, as Daytona's API
RESOLV_CONF = Path("/etc/resolv.conf")


TABLE_NAME = re.compile(r"^table inet (sandbar_[0-9a-f]{12})$", re.MULTILINE)
OWNER = re.compile(r'comment "pid=(?P<pid>\d+) start=(?P<start>\d+)"')


def _start_time(pid: int) -> str | None:
    """When a process started (clock ticks since boot): a pid with its start is unique."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


class EgressError(RuntimeError):
    """The firewall could not be set up or changed."""


def parse_cidrs(raw: str, *, what: str) -> tuple[Network, ...]:
    """Comma-separated CIDRs (IPv4 or IPv6) from a setting; host bits are dropped."""
    networks = []
    for part in raw.split(","):
        part = part.strip()
        if not part:
            continue
        try:
            networks.append(ipaddress.ip_network(part, strict=False))
        except ValueError:
            raise ValueError(f"{what}: {part!r} is not an IP network in CIDR notation") from None
    return tuple(networks)


def parse_allow_list(raw: str) -> tuple[ipaddress.IPv4Network, ...]:
    """A ``networkAllowList`` by Daytona's rules: IPv4 CIDRs with an explicit prefix.

    Raises ValueError with a message fit for the caller.
    """
    networks: list[ipaddress.IPv4Network] = []
    for part in raw.split(","):
        part = part.strip()
        if not part:
            continue  # Daytona skips empty entries
        address, slash, prefix = part.partition("/")
        if not slash or not prefix.isdigit() or not 0 <= int(prefix) <= 32:
            raise ValueError(
                f"Invalid network {part!r}: use IPv4 CIDR notation with a prefix length "
                "between 0 and 32 (e.g. 198.51.100.0/24)"
            )
        try:
            ipaddress.IPv4Address(address)
        except ValueError:
            raise ValueError(f"Invalid IPv4 address {address!r} in network {part!r}") from None
        networks.append(ipaddress.IPv4Network(part, strict=False))
    if len(networks) > MAX_ALLOW_LIST:
        raise ValueError(f"networkAllowList cannot contain more than {MAX_ALLOW_LIST} networks")
    return tuple(networks)


def format_allow_list(networks: Iterable[Network]) -> str:
    """The canonical comma-separated form stored and shown (``""`` for none)."""
    return ",".join(str(network) for network in networks)


def host_resolvers(
    path: Path = RESOLV_CONF,
) -> tuple[ipaddress.IPv4Address | ipaddress.IPv6Address, ...]:
    """The name servers slirp4netns forwards the sandbox's DNS to (its host's resolv.conf)."""
    found = []
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return ()
    for line in lines:
        fields = line.split()
        if len(fields) >= 2 and fields[0] == "nameserver":
            try:
                found.append(ipaddress.ip_address(fields[1].split("%")[0]))
            except ValueError:
                continue
    return tuple(dict.fromkeys(found))


@dataclass(frozen=True)
class EgressPolicy:
    """The operator's additions to the default: networks to allow and to deny."""

    allow: tuple[Network, ...] = ()
    deny: tuple[Network, ...] = ()


def _elements(
    networks: Iterable[Network | ipaddress.IPv4Address | ipaddress.IPv6Address], version: int
) -> str:
    chosen = [str(n) for n in networks if n.version == version]
    return f"elements = {{ {', '.join(chosen)} }}" if chosen else ""


def _set(
    name: str,
    networks: Iterable[Network | ipaddress.IPv4Address | ipaddress.IPv6Address],
    version: int,
) -> str:
    kind = "ipv4_addr" if version == 4 else "ipv6_addr"
    return (
        f"set {name} {{ type {kind}; flags interval; auto-merge; {_elements(networks, version)} }}"
    )


class Egress:
    """The engine's nftables table: created at start, one chain per networked sandbox."""

    def __init__(
        self, instance_id: str, policy: EgressPolicy, resolv_conf: Path = RESOLV_CONF
    ) -> None:
        self.table = f"sandbar_{instance_id}"
        self.policy = policy
        self.resolv_conf = resolv_conf
        self.resolvers = host_resolvers(resolv_conf)
        # One libnftables context, made at setup: its netlink socket belongs to the
        # network namespace the engine runs in, which is where slirp4netns's sockets are.
        self._nft: nftables.Nftables | None = None

    # -- engine lifetime ---------------------------------------------------------

    def setup(self) -> None:
        """(Re)create the table; one left by an engine that died is replaced."""
        try:
            self._nft = nftables.Nftables()
        except OSError as error:
            raise EgressError(
                f"libnftables cannot be loaded ({error}): it filters what networked sandboxes "
                "can reach; run scripts/setup.sh (or apt-get install nftables)"
            ) from None
        self._remove_orphans()
        self._run(f"table inet {self.table}\ndelete table inet {self.table}\n{self._table()}")

    def _remove_orphans(self) -> None:
        """Delete the tables of other engines that died without removing them.

        Sandbox uids of different engines on one machine may coincide, so rules left by
        a crashed engine would go on filtering another engine's sandboxes.
        """
        listing = self._output("list tables")
        for name in TABLE_NAME.findall(listing):
            if name == self.table:
                continue
            owner = OWNER.search(self._output(f"list table inet {name}"))
            if owner and _start_time(int(owner["pid"])) != owner["start"]:
                log.warning("removing the egress table of an engine that is gone: %s", name)
                self._run(f"delete table inet {name}\n", check=False)

    def teardown(self) -> None:
        """Remove the table (sandboxes are stopped by then)."""
        if self._nft is not None:
            self._run(f"table inet {self.table}\ndelete table inet {self.table}\n", check=False)

    # -- sandboxes -----------------------------------------------------------------

    async def apply(
        self, uid: int, *, block_all: bool, allow_list: Sequence[str | Network] = ()
    ) -> None:
        """Give ``uid`` its rules (replacing any), atomically: no packet sees a half state."""
        self._check_uid(uid)
        chain = f"sb_{uid}"
        body = []
        if block_all:
            body.append("goto refuse")
        body += [
            "meta l4proto { tcp, udp } th dport 53 ip daddr @dns4 accept",
            "meta l4proto { tcp, udp } th dport 53 ip6 daddr @dns6 accept",
        ]
        if allow_list:
            # Parsed again: only well-formed networks ever reach nft's input.
            listed = ", ".join(str(ipaddress.ip_network(str(n), strict=False)) for n in allow_list)
            body += [
                f"ip daddr != {{ {listed} }} goto refuse",
                "meta nfproto ipv6 goto refuse",
            ]
        body.append("goto policy_rules")
        rules = "\n".join(f"  {rule}" for rule in body)
        # One batch: the chain is replaced and hooked in atomically (the map element
        # always names the same chain, so adding it again changes nothing).
        self._run(
            f"{self._resolvers_refresh()}"
            f"add chain inet {self.table} {chain}\n"
            f"flush chain inet {self.table} {chain}\n"
            f"table inet {self.table} {{\n chain {chain} {{\n{rules}\n }}\n}}\n"
            f"add element inet {self.table} sandboxes {{ {uid} : goto {chain} }}\n"
        )

    async def remove(self, uid: int) -> None:
        """Forget ``uid``'s rules (its sandbox stopped)."""
        self._check_uid(uid)
        chain = f"sb_{uid}"
        # Made to exist first, so that deleting cannot fail on a missing piece.
        self._run(
            f"add chain inet {self.table} {chain}\n"
            f"add element inet {self.table} sandboxes {{ {uid} : goto {chain} }}\n"
            f"delete element inet {self.table} sandboxes {{ {uid} }}\n"
            f"flush chain inet {self.table} {chain}\n"
            f"delete chain inet {self.table} {chain}\n"
        )

    # -- the table -------------------------------------------------------------------

    def _table(self) -> str:
        defaults = [ipaddress.ip_network(cidr) for cidr in DEFAULT_DENY]
        allow, deny = self.policy.allow, self.policy.deny
        sets = [
            _set("default4", defaults, 4), _set("default6", defaults, 6),
            _set("allow4", allow, 4), _set("allow6", allow, 6),
            _set("deny4", deny, 4), _set("deny6", deny, 6),
            _set("dns4", self.resolvers, 4), _set("dns6", self.resolvers, 6),
        ]  # fmt: skip
        return "\n".join(
            [
                f"table inet {self.table} {{",
                f' comment "pid={os.getpid()} start={_start_time(os.getpid())}";',
                *(f" {line}" for line in sets),
                " map sandboxes { typeof meta skuid : verdict; }",
                # Filter priority; the sandboxes' own traffic is all this table touches.
                " chain output { type filter hook output priority 0; policy accept;",
                "  meta skuid vmap @sandboxes",
                " }",
                # A TCP reset makes slirp4netns refuse the sandbox's connection at once;
                # an ICMP error it would swallow, leaving the sandbox to time out.
                " chain refuse {",
                "  meta l4proto tcp reject with tcp reset",
                "  reject with icmpx admin-prohibited",
                " }",
                " chain policy_rules {",
                "  ip daddr @deny4 goto refuse",
                "  ip6 daddr @deny6 goto refuse",
                "  ip daddr @allow4 accept",
                "  ip6 daddr @allow6 accept",
                # Every address of this host, on any interface, whatever its range.
                "  fib daddr type { local, broadcast, multicast, anycast } goto refuse",
                "  ip daddr @default4 goto refuse",
                "  ip6 daddr @default6 goto refuse",
                " }",
                "}",
                "",
            ]
        )

    def _resolvers_refresh(self) -> str:
        """Commands that follow a changed resolv.conf (DHCP, VPNs rewrite it)."""
        current = host_resolvers(self.resolv_conf)
        if current == self.resolvers:
            return ""
        self.resolvers = current
        lines = []
        for version in (4, 6):
            lines.append(f"flush set inet {self.table} dns{version}")
            chosen = [str(a) for a in current if a.version == version]
            if chosen:
                lines.append(
                    f"add element inet {self.table} dns{version} {{ {', '.join(chosen)} }}"
                )
        return "\n".join(lines) + "\n"

    @staticmethod
    def _check_uid(uid: int) -> None:
        # Root's traffic is the engine's own: a sandbox never runs as uid 0.
        if isinstance(uid, bool) or not isinstance(uid, int) or uid <= 0:
            raise EgressError(f"not a sandbox uid: {uid!r}")

    # libnftables answers in about a millisecond (an nft process took ~17 ms under
    # load), so calls are made right on the event loop: no other coroutine can run
    # between two batches, and each batch is one kernel transaction.

    def _output(self, command: str) -> str:
        if self._nft is None:
            raise EgressError("the egress table is not set up")
        _, output, _ = self._nft.cmd(command)
        return str(output)

    def _run(self, script: str, *, check: bool = True) -> None:
        if self._nft is None:
            raise EgressError("the egress table is not set up")
        code, _, error = self._nft.cmd(script)
        if check and code != 0:
            raise EgressError(f"nftables refused the rules: {str(error).strip()}")
