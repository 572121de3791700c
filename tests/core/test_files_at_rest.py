"""The data directory and the files holding secrets are the owner's only."""

import logging
import stat
from pathlib import Path

from django.db import connection

from dashboard.core import files


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_database_and_its_wal_and_shm_files_are_the_owners_only(db) -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    name = Path(connection.settings_dict["NAME"])
    for path in (name, Path(f"{name}-wal"), Path(f"{name}-shm")):
        assert path.exists(), path
        assert mode_of(path) == 0o600, f"{path}: {mode_of(path):04o}"


def test_a_loosened_data_directory_and_key_are_found_set_back_and_warned_about(
    tmp_path, settings, caplog
) -> None:
    data = tmp_path / "data"
    data.mkdir(mode=0o755)
    data.chmod(0o755)
    key = data / "secret-key"
    key.write_text("x")
    key.chmod(0o644)
    settings.DATA_DIR = data
    warnings = files.private_files(None)
    assert {w.id for w in warnings} == {"sandbar.W010"}
    assert {str(data), str(key)} <= {w.msg.split(" is ")[0] for w in warnings}

    with caplog.at_level(logging.WARNING, logger="dashboard.core.files"):
        assert files.tighten(files.private_paths(), warn=True) == []
    assert mode_of(data) == 0o700 and mode_of(key) == 0o600
    said = " ".join(record.getMessage() for record in caplog.records)
    assert f"{data} was readable by others (mode 0755)" in said
    assert f"{key} was readable by others (mode 0644)" in said
    assert files.private_files(None) == []


def test_a_private_data_directory_passes_without_a_word(tmp_path, settings, caplog) -> None:
    data = tmp_path / "data"
    data.mkdir(mode=0o700)
    (data / "secret-key").touch(mode=0o600)
    settings.DATA_DIR = data
    with caplog.at_level(logging.WARNING, logger="dashboard.core.files"):
        files.tighten(files.private_paths(), warn=True)
    assert caplog.records == []
