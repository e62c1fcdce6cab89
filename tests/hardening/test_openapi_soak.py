"""The OpenAPI fuzz of tests/simulator/test_openapi_fuzz.py (same schema, same rows behind the
ids) at the budget ARBSIM_FUZZ_EXAMPLES gives: `python -m tools.soak --scenarios fuzz` sets it. Skipped
in the suite, which runs the 40-example pass already."""

import os

import pytest
from django.test import override_settings
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import content_type_conformance, response_schema_conformance

from tests.simulator import test_openapi_fuzz as fuzz

EXAMPLES = int(os.environ.get("ARBSIM_FUZZ_EXAMPLES", "0"))
pytestmark = [
    pytest.mark.slow,
    pytest.mark.django_db,
    pytest.mark.skipif(not EXAMPLES, reason="soak only: python -m tools.soak --scenarios fuzz"),
]
schema = fuzz.schema
keep_test_connection = fuzz.keep_test_connection
unthrottled = fuzz.unthrottled
token = fuzz.token
recordings_dir = fuzz.recordings_dir


@schema.parametrize()
@settings(max_examples=max(EXAMPLES, 1), deadline=None, suppress_health_check=list(HealthCheck))
@override_settings(ALLOWED_HOSTS=["localhost", "testserver"])
def test_api_never_fails_and_matches_its_schema_at_the_soak_budget(case, token):
    case.call_and_validate(
        headers={"Authorization": f"Token {token}"},
        checks=[not_a_server_error, response_schema_conformance, content_type_conformance],
    )
