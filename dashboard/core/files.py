"""Files at rest: the data directory and what holds secrets in it are the owner's only.

The SQLite database (and its -wal and -shm files) holds password hashes and session
keys, the secret key signs sessions: nobody else on the machine may read them. The
data directory is 0700 and these files 0600. SQLite creates its files with the
process's umask (0644, usually), so the first connection of each process sets them
(the -wal and -shm files SQLite makes later copy the database's mode), and at start
anything found readable by others is set back, with a warning that says so: someone
loosened it, or an older Sandbar made it.
"""

import logging
import stat
from pathlib import Path

from django.conf import settings
from django.core import checks
from django.db.backends.signals import connection_created

log = logging.getLogger(__name__)

PRIVATE_DIRECTORY = 0o700
PRIVATE_FILE = 0o600
SQLITE_SUFFIXES = ("", "-wal", "-shm", "-journal")


def _sqlite_files(name: str | Path) -> list[Path]:
    if not name or str(name) == ":memory:" or str(name).startswith("file:"):
        return []
    return [Path(f"{name}{suffix}") for suffix in SQLITE_SUFFIXES]


def private_paths() -> list[tuple[Path, int]]:
    """Each path that must be private, with the mode it must have at most."""
    paths = [
        (settings.DATA_DIR, PRIVATE_DIRECTORY),
        (settings.DATA_DIR / "secret-key", PRIVATE_FILE),
    ]
    database = settings.DATABASES["default"]
    if database["ENGINE"] == "django.db.backends.sqlite3":
        paths += [(path, PRIVATE_FILE) for path in _sqlite_files(database["NAME"])]
    return paths


def loosened(paths: list[tuple[Path, int]]) -> list[tuple[Path, int, int]]:
    """(path, its mode, the mode it should have) for each existing path others may use."""
    found = []
    for path, wanted in paths:
        try:
            mode = stat.S_IMODE(path.stat().st_mode)
        except FileNotFoundError:
            continue
        if mode & ~wanted & 0o077:
            found.append((path, mode, wanted))
    return found


def tighten(paths: list[tuple[Path, int]], *, warn: bool) -> list[str]:
    """Set each loosened path back; returns a sentence for each it could not set."""
    problems = []
    for path, mode, wanted in loosened(paths):
        try:
            path.chmod(mode & wanted)
        except OSError as error:
            problems.append(
                f"{path} is readable by others (mode {mode:04o}) and could not be set to "
                f"{wanted:04o}: {error.strerror}. Run: chmod {wanted:o} {path}"
            )
            continue
        if warn:
            log.warning(
                "%s was readable by others (mode %04o); set it back to %04o. It holds "
                "what signs people in: keep the data directory 0700 and its files 0600.",
                path,
                mode,
                mode & wanted,
            )
    for problem in problems:
        log.warning(problem)
    return problems


def check_at_start() -> None:
    """Called once per process as Django starts."""
    tighten(private_paths(), warn=True)
    connection_created.connect(_new_connection, dispatch_uid="sandbar.private_sqlite")


_done: set[str] = set()


def _new_connection(sender, connection, **kwargs) -> None:
    # Once per database file and process: a fresh database is created right here.
    if connection.vendor != "sqlite":
        return
    name = str(connection.settings_dict.get("NAME") or "")
    if name in _done:
        return
    _done.add(name)
    tighten([(path, PRIVATE_FILE) for path in _sqlite_files(name)], warn=False)


@checks.register(checks.Tags.security)
def private_files(app_configs, **kwargs) -> list[checks.CheckMessage]:
    return [
        checks.Warning(
            f"{path} is readable by others (mode {mode:04o}).",
            hint=f"chmod {wanted:o} {path}: it holds password hashes, sessions or keys.",
            id="sandbar.W010",
        )
        for path, mode, wanted in loosened(private_paths())
    ]
