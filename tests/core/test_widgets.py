"""Filter inputs drawn once and kept (dashboard/core/widgets.py): a kept input is only
ever one the request would have drawn itself."""

import re

import pytest
from django.urls import reverse

from dashboard.core import widgets


@pytest.fixture(autouse=True)
def _nothing_kept():
    widgets._DRAWN.clear()
    yield
    widgets._DRAWN.clear()


def _target_input(html: str) -> str:
    found = re.search(r'<input[^>]*name="target"[^>]*>', html)
    assert found, "no target input"
    return found.group(0)


@pytest.mark.parametrize("first", ["None", ""], ids=["searched-first", "empty-first"])
def test_a_search_for_the_word_none_and_no_search_each_keep_their_own_input(
    admin_client, first
) -> None:
    drawn = {}
    for value in (first, "None" if first == "" else ""):
        params = {"target": value} if value else {}
        response = admin_client.get(reverse("audit"), params)
        assert response.status_code == 200
        drawn[value] = _target_input(response.content.decode())
    assert 'value="None"' in drawn["None"]
    assert "value=" not in drawn[""]
