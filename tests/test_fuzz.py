"""The API fuzzed against its own OpenAPI schema (schemathesis, in-process over WSGI).

Every operation, positive and negative examples: no server error, every documented
response matches its schema, and invalid data (NUL bytes, huge integers, wrong types,
missing fields) is refused with a 4xx. FUZZ_EXAMPLES sets the examples per operation
(default 100); `make fuzz` runs a longer search.
"""

import json
import os
from collections import Counter

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.generation import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
)

from .fuzz_report import write_fuzz_summary
from .test_security import build_world


def _examples():
    """100 per operation by default; 10 on PostgreSQL, where the SQLite pass of the same
    suite has already run the full count (FUZZ_EXAMPLES overrides both)."""
    if os.environ.get("FUZZ_EXAMPLES"):
        return int(os.environ["FUZZ_EXAMPLES"])
    return 10 if os.environ.get("DATABASE_URL", "").startswith("postg") else 100


FUZZ_EXAMPLES = _examples()
CALLS = Counter()
CHECKS = [not_a_server_error, response_schema_conformance, content_type_conformance]


def load_schema():
    """The schema as the app serves it at /api/v1/schema/, called over WSGI."""
    from django.core.wsgi import get_wsgi_application

    loaded = schemathesis.openapi.from_wsgi("/api/v1/schema/", get_wsgi_application())
    # NUL bytes in generated strings on every database: PostgreSQL cannot store them, so
    # they must meet the input hygiene's 400 there, never the database's error.
    loaded.config.generation.update(
        modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE],
        max_examples=FUZZ_EXAMPLES,
        allow_x00=True,
    )
    return loaded


schema = load_schema()


@schema.hook
def before_generate_path_parameters(context, strategy):
    """About half the generated ids name objects of the world below (ids 1 to 3), so that
    the detail operations are fuzzed past their 404."""

    def existing_sometimes(params):
        if not isinstance(params, dict) or "id" not in params:
            return st.just(params)
        return st.one_of(st.just(params), st.integers(1, 3).map(lambda i: {**params, "id": i}))

    return strategy.flatmap(existing_sometimes)


@pytest.fixture
def world(people):
    """A small world of objects for the generated ids to hit (1, 2, ...)."""
    build_world(people)
    # The test's transaction must survive each request (as with Django's test client).
    for signal in (request_started, request_finished):
        signal.disconnect(close_old_connections)
    yield
    for signal in (request_started, request_finished):
        signal.connect(close_old_connections)


@pytest.fixture
def admin_token(people):
    from rest_framework.authtoken.models import Token

    return Token.objects.get_or_create(user=people["admin"])[0].key


@pytest.mark.django_db
@schema.parametrize()
@hypothesis_settings(
    max_examples=FUZZ_EXAMPLES,
    deadline=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
    database=None,
)
def test_the_api_holds_under_fuzzing(case, world, admin_token):
    response = case.call_and_validate(
        headers={"Authorization": f"Token {admin_token}"}, checks=CHECKS
    )
    CALLS[f"{case.operation.method.upper()} {case.operation.path}", response.status_code] += 1


def test_generated_strings_may_carry_nul_bytes():
    assert schema.config.generation.allow_x00 is True


@pytest.fixture(scope="module", autouse=True)
def summary(request):
    """Cases run per operation and status, written to test-artifacts/fuzz-summary.json
    (under pytest-xdist, handed to the main process, which adds up every process's)."""
    yield
    workeroutput = getattr(request.config, "workeroutput", None)
    if workeroutput is None:
        write_fuzz_summary(FUZZ_EXAMPLES, CALLS)
    else:
        workeroutput["fuzz_examples"] = FUZZ_EXAMPLES
        workeroutput["fuzz_calls"] = [[op, status, n] for (op, status), n in CALLS.items()]


# Inputs the fuzzer found (or that are one step away from them), kept as plain tests so
# that they are checked on every run whatever the random search draws.
@pytest.mark.django_db
@pytest.mark.parametrize(
    "method, url, body",
    [
        ("GET", "/api/v1/findings/?search=a%00b", None),
        ("GET", "/api/v1/findings/?search=%00", None),
        ("GET", "/api/v1/findings/?tag=a%00b", None),
        ("GET", "/api/v1/findings/99999999999999999999/", None),
        ("GET", "/api/v1/findings/?ml_model=99999999999999999999", None),
        ("GET", "/api/v1/probe-runs/?probe=-1", None),
        ("GET", "/api/v1/findings/?ordering=%00", None),
        ("POST", "/api/v1/ml-models/", {"name": "Toy Risk"}),
        ("POST", "/api/v1/ml-models/", {"name": "other", "slug": "toy-risk"}),
        ("POST", "/api/v1/ml-models/", {"name": "???"}),
        ("POST", "/api/v1/tags/", {"name": "toy risk"}),
        ("POST", "/api/v1/tags/", {"name": "toy-risk"}),
        ("POST", "/api/v1/findings/", {"title": "t", "ml_model": 1, "tags": ["a b", "a-b", "A B"]}),
        ("POST", "/api/v1/findings/", {"title": "t", "ml_model": 1, "evidence": {"k": "\u0000"}}),
        (
            "POST",
            "/api/v1/findings/",
            {"title": "t", "ml_model": 1, "slice": [{"feature": "\u0000", "op": "==", "value": 1}]},
        ),
        (
            "POST",
            "/api/v1/probes/",
            {
                "finding": 1,
                "dataset": 1,
                "kind": "slice_error_rate",
                "threshold": 1e308,
                "params": {"x": 10**40},
            },
        ),
        ("PATCH", "/api/v1/findings/1/", {"owner": 10**30}),
        # NUL bytes where PostgreSQL would refuse them: every kind of string input.
        ("POST", "/api/v1/findings/", {"title": "\u0000", "ml_model": 1}),
        ("POST", "/api/v1/findings/", {"title": "t", "ml_model": 1, "tags": ["a\u0000"]}),
        ("POST", "/api/v1/findings/", {"title": "t", "ml_model": 1, "evidence": {"\u0000": 1}}),
        ("PATCH", "/api/v1/findings/1/", {"lesson": "l\u0000"}),
        ("POST", "/api/v1/findings/1/transition/", {"to": "remediating", "note": "\u0000"}),
        ("POST", "/api/v1/findings/1/transition/", {"to": "\u0000"}),
        ("POST", "/api/v1/tags/", {"name": "\u0000"}),
        ("POST", "/api/v1/ml-models/", {"name": "m\u0000"}),
        ("POST", "/api/v1/actions/", {"finding": 1, "kind": "retrain", "title": "\u0000"}),
        ("POST", "/api/v1/probes/", {"finding": 1, "dataset": 1, "kind": "\u0000"}),
        ("GET", "/api/v1/findings/?severity=%00", None),
        ("GET", "/api/v1/actions/?status=%00", None),
        ("GET", "/api/v1/audit-events/?object_type=%00", None),
        ("GET", "/api/v1/findings/1%00/", None),
    ],
)
def test_inputs_the_fuzzer_found_get_a_4xx_or_succeed(
    people, ml_model, dataset, finding, method, url, body
):
    from catalog.models import Tag

    from .factories import api_for

    Tag.objects.create(name="toy risk")
    response = api_for(people["admin"]).generic(
        method, url, json.dumps(body) if body is not None else "", content_type="application/json"
    )
    assert response.status_code < 500, response.content[:300]
    assert response["Content-Type"] == "application/json"
