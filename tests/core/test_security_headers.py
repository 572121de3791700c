import pytest
from django.urls import reverse

from tests.test_authorization import ROWS


@pytest.mark.parametrize(
    ("name", "args"), sorted({(row.name, row.args) for row in ROWS if row.method == "get"})
)
def test_every_page_sends_a_strict_content_security_policy(admin_client, name, args) -> None:
    # A row's args are ids that do not exist: its 404 page must carry the policy too.
    response = admin_client.get(reverse(name, args=args))
    policy = response["Content-Security-Policy"]
    directives = dict(part.strip().split(" ", 1) for part in policy.split(";"))
    assert directives["script-src"] == "'self'"
    assert directives["style-src"] == "'self'"
    assert directives["object-src"] == "'none'"
    assert directives["frame-ancestors"] == "'none'"
    assert "unsafe-inline" not in policy and "unsafe-eval" not in policy


def test_pages_carry_no_inline_script(admin_client) -> None:
    for name in ("team", "audit", "settings", "account"):
        html = admin_client.get(reverse(name)).content.decode()
        for chunk in html.split("<script")[1:]:
            opening = chunk.split(">", 1)[0]
            assert "src=" in opening, f"inline script on {name}: <script{opening}>"
        assert " onclick=" not in html and " onload=" not in html


def test_htmx_requests_carry_the_csrf_token_in_a_header(admin_client) -> None:
    html = admin_client.get(reverse("team")).content.decode()
    assert 'hx-headers=\'{"X-CSRFToken": "' in html


def test_the_sign_in_page_is_not_framed(db, client) -> None:
    response = client.get(reverse("login"))
    assert response["X-Frame-Options"] == "DENY"
