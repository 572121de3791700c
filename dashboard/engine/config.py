"""Engine settings, read from the environment through small typed helpers."""

from __future__ import annotations

import hashlib
import ipaddress
import os
from dataclasses import dataclass, replace
from pathlib import Path


class ConfigError(ValueError):
    """An environment variable holds a value the engine cannot use."""


def env_str(name: str, default: str) -> str:
    """Return the variable, or the default when it is unset or empty."""
    value = os.environ.get(name, "").strip()
    return value or default


def env_int(
    name: str, default: int, *, minimum: int | None = None, maximum: int | None = None
) -> int:
    """Return the variable as an int within bounds, failing loudly on a bad value."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be an integer, got {raw!r}") from None
    if minimum is not None and value < minimum:
        raise ConfigError(f"{name} must be at least {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise ConfigError(f"{name} must be at most {maximum}, got {value}")
    return value


def env_float(name: str, default: float, *, minimum: float = 0.0) -> float:
    """Return the variable as a float no smaller than ``minimum``."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number, got {raw!r}") from None
    if value != value or value < minimum:  # NaN compares unequal to itself
        raise ConfigError(f"{name} must be a number of at least {minimum}, got {raw!r}")
    return value


def env_networks(name: str) -> tuple[str, ...]:
    """Return comma-separated IP networks (CIDR, IPv4 or IPv6) in canonical form."""
    networks = []
    for part in os.environ.get(name, "").split(","):
        if not part.strip():
            continue
        try:
            networks.append(str(ipaddress.ip_network(part.strip(), strict=False)))
        except ValueError:
            raise ConfigError(f"{name}: {part.strip()!r} is not an IP network (CIDR)") from None
    return tuple(networks)


def env_port(name: str) -> int | None:
    """An optional TCP port: None when the variable is unset or empty."""
    if not os.environ.get(name, "").strip():
        return None
    return env_int(name, 0, minimum=0, maximum=65535)


@dataclass(frozen=True)
class EngineConfig:
    """Everything the engine needs to know about where and how to run."""

    data_dir: Path
    host: str = "127.0.0.1"
    port: int = 8400
    sandbox_uid: int = 61000  # owns shared files on disk; sandboxes run as the next ones
    sandbox_uid_count: int = 2000
    default_cpu: int = 1
    default_memory: int = 1
    default_disk: int = 3
    max_cpu: int = 4
    max_memory: int = 8
    max_disk: int = 20
    pids_max: int = 1024
    tick_seconds: float = 5.0
    exec_timeout: int = 360
    warm_pool: int = 2
    egress_allow: tuple[str, ...] = ()  # networks sandboxes may reach despite the default
    egress_deny: tuple[str, ...] = ()  # networks they may never reach
    ssh_port: int | None = None  # the SSH gateway's port on ``host`` (None: off; 0: any free)

    @property
    def engine_dir(self) -> Path:
        """The engine's own corner of the data directory."""
        return self.data_dir / "engine"

    @property
    def instance_id(self) -> str:
        """A short id derived from the data directory, used to namespace host cgroups."""
        digest = hashlib.sha256(str(self.engine_dir.resolve()).encode()).hexdigest()
        return digest[:12]

    @property
    def api_url(self) -> str:
        """The URL SDK users pass as ``api_url``."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/api"

    def with_overrides(self, **changes: object) -> EngineConfig:
        """Return a copy with command-line options applied."""
        return replace(self, **{k: v for k, v in changes.items() if v is not None})


def load_config() -> EngineConfig:
    """Build the configuration from the environment."""
    cpus = os.cpu_count() or 1
    max_cpu = env_int("SANDBAR_SANDBOX_MAX_CPU", cpus, minimum=1)
    max_memory = env_int("SANDBAR_SANDBOX_MAX_MEMORY", 8, minimum=1)
    max_disk = env_int("SANDBAR_SANDBOX_MAX_DISK", 20, minimum=1)
    return EngineConfig(
        data_dir=Path(env_str("SANDBAR_DATA_DIR", "./var")).absolute(),
        host=env_str("SANDBAR_ENGINE_HOST", "127.0.0.1"),
        port=env_int("SANDBAR_ENGINE_PORT", 8400, minimum=0, maximum=65535),
        sandbox_uid=env_int("SANDBAR_SANDBOX_UID", 61000, minimum=1000, maximum=2**31 - 140_000),
        sandbox_uid_count=env_int("SANDBAR_SANDBOX_UID_COUNT", 2000, minimum=1, maximum=65_536),
        default_cpu=env_int("SANDBAR_SANDBOX_CPU", 1, minimum=1, maximum=max_cpu),
        default_memory=env_int("SANDBAR_SANDBOX_MEMORY", 1, minimum=1, maximum=max_memory),
        default_disk=env_int("SANDBAR_SANDBOX_DISK", 3, minimum=1, maximum=max_disk),
        max_cpu=max_cpu,
        max_memory=max_memory,
        max_disk=max_disk,
        pids_max=env_int("SANDBAR_SANDBOX_PIDS", 1024, minimum=16, maximum=4_194_304),
        tick_seconds=env_float("SANDBAR_ENGINE_TICK_SECONDS", 5.0, minimum=0.05),
        exec_timeout=env_int("SANDBAR_EXEC_TIMEOUT", 360, minimum=1),
        warm_pool=env_int("SANDBAR_ENGINE_WARM_POOL", 2, minimum=0, maximum=32),
        egress_allow=env_networks("SANDBAR_EGRESS_ALLOW"),
        egress_deny=env_networks("SANDBAR_EGRESS_DENY"),
        ssh_port=env_port("SANDBAR_ENGINE_SSH_PORT"),
    )
