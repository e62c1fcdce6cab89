"""Every page carries the strict Content-Security-Policy: this site's files only, no inline
script or style, no eval, not framed. (tests/e2e/test_browser.py checks no page breaks it.)"""

import pytest
from django.test import Client

from tests.accounts.factories import UserFactory

pytestmark = pytest.mark.django_db

EXPECTED = {
    "default-src": ["'self'"],
    "script-src": ["'self'"],
    "style-src": ["'self'"],
    "img-src": ["'self'", "data:"],
    "connect-src": ["'self'"],
    "object-src": ["'none'"],
    "base-uri": ["'self'"],
    "form-action": ["'self'"],
    "frame-ancestors": ["'none'"],
}
PAGES = [
    "/accounts/login/",
    "/simulator/",
    "/accounts/profile/",
    "/admin/",
    "/admin/axes/accessattempt/",
    "/api/docs/",
    "/api/docs/?script=",
    "/simulator/status?format=api",
    "/api/schema/",
]


def policy_of(answer) -> dict[str, list[str]]:
    directives = [d.split() for d in answer["Content-Security-Policy"].split(";") if d.strip()]
    return {name: values for name, *values in directives}


@pytest.mark.parametrize("path", PAGES)
def test_every_page_has_the_strict_policy(path):
    client = Client()
    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    answer = client.get(path)
    assert answer.status_code == 200, (path, answer.status_code)
    assert policy_of(answer) == EXPECTED


def test_refusals_carry_the_policy_too():
    assert policy_of(Client().get("/simulator/")) == EXPECTED  # the redirect to the login page
    assert policy_of(Client().get("/simulator/status")) == EXPECTED  # 403
