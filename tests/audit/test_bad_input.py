"""Whatever the query string, the audit pages answer with a page or a message, never a 500."""

import pytest
from django.urls import reverse
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dashboard.audit.trail import record

KEYS = ["range", "since", "until", "actor", "action", "target_kind", "target", "outcome", "q",
        "before", "after", "refresh", "format", "page", "zzz"]  # fmt: skip
VALUES = st.one_of(
    st.sampled_from(["", "1h", "custom", "csv", "jsonl", "-1", "0", "10", str(2**64), "1e9"]),
    st.sampled_from(["2026-12-01T10:00", "2026-02-30T10:00", "9999-12-31T23:59", "yesterday"]),
    # With an offset, the database's UTC of these is outside years 1-9999.
    st.sampled_from(["0001-01-01T00:00+05:00", "9999-12-31T23:59-05:00"]),
    st.sampled_from(["sandbox.", "a..b", "%", "_", "' OR 1=1 --", "\x00", "é" * 300]),
    st.text(max_size=40),
)


@pytest.fixture
def some_entries(db, admin_user):
    for i in range(3):
        record(admin_user, "sandbox.start", target_kind="sandbox", target_id=f"sb-{i}")


@pytest.mark.parametrize("name", ["audit", "audit_new", "audit_export"])
@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(params=st.dictionaries(st.sampled_from(KEYS), VALUES, max_size=5))
def test_no_query_string_makes_an_audit_page_fail(admin_client, some_entries, name, params):
    response = admin_client.get(reverse(name), params)
    assert response.status_code in (200, 400), (params, response.status_code)
    if response.status_code == 400:
        assert response.content.strip()  # says why


@pytest.mark.parametrize("name", ["audit", "audit_new", "audit_export"])
@pytest.mark.parametrize(
    "params", [{"since": "0001-01-01T00:00+05:00"}, {"until": "9999-12-31T23:59-05:00"}]
)
def test_a_time_with_no_utc_inside_the_calendar_is_a_clear_400(admin_client, name, params):
    response = admin_client.get(reverse(name), params)
    assert response.status_code == 400
    assert "between the years 1 and 9999" in response.content.decode()
