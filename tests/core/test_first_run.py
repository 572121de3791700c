"""The first-run message says where the dashboard really is."""

import io

import pytest
from django.core.management import call_command


@pytest.mark.django_db
def test_the_first_run_message_gives_the_port_sandbar_port_sets(monkeypatch, settings, tmp_path):
    settings.DATA_DIR = tmp_path
    monkeypatch.setenv("SANDBAR_PORT", "8123")
    monkeypatch.delenv("SANDBAR_HOST", raising=False)
    out = io.StringIO()
    call_command("bootstrap_admin", stdout=out)
    assert "Sign in at http://127.0.0.1:8123/\n" in out.getvalue()
    assert ":8000" not in out.getvalue()
