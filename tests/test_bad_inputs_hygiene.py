"""Input hygiene, one row each: JSON that Python would parse but the database cannot store
or the parser cannot survive (NaN, Infinity, deep nesting, NUL, 30-digit integers), in API
bodies, query parameters, form fields and paths. Each gets a 4xx that names the problem
and saves nothing (the world and "nothing saved" are those of test_bad_inputs_table)."""

import json

import pytest

from .test_bad_inputs_table import Bad, api, snapshot, web, world  # noqa: F401

pytestmark = pytest.mark.django_db

HUGE = "9" * 30


def raw(who, method, url, text):
    """An API request with a body written by hand (json.dumps would refuse some of these)."""
    return api(who, method, url, text, fmt="raw")


def finding_body(extra):
    return lambda w: (
        '{"title": "t", "ml_model": %d, "dataset": %d, %s}'
        % (w["ml_model"].pk, w["dataset"].pk, extra)
    )


def probe_body(extra):
    return lambda w: (
        '{"finding": %d, "dataset": %d, "kind": "slice_error_rate", '
        '"comparator": "<=", %s}' % (w["finding"].pk, w["dataset"].pk, extra)
    )


def nested(depth):
    return "[" * depth + "]" * depth


def get(who, url):
    def send(w):
        from .factories import api_for, client_for

        target = url(w) if callable(url) else url
        client = (
            api_for(w["people"][who])
            if target.startswith("/api/")
            else client_for(w["people"][who])
        )
        return client.get(target)

    return send


CASES = [
    # JSON bodies of the API.
    Bad(
        "json-nan-threshold",
        raw("contributor", "POST", "/api/v1/probes/", probe_body('"threshold": NaN')),
        400,
        "NaN",
    ),
    Bad(
        "json-infinity-threshold",
        raw("contributor", "POST", "/api/v1/probes/", probe_body('"threshold": Infinity')),
        400,
        "Infinity",
    ),
    Bad(
        "json-minus-infinity-in-params",
        raw(
            "contributor",
            "POST",
            "/api/v1/probes/",
            probe_body('"threshold": 0.2, "params": {"margin": -Infinity}'),
        ),
        400,
        "-Infinity",
    ),
    Bad(
        "json-nan-in-evidence",
        raw("contributor", "POST", "/api/v1/findings/", finding_body('"evidence": {"rate": NaN}')),
        400,
        "NaN",
    ),
    Bad(
        "json-nested-10000",
        raw(
            "contributor",
            "POST",
            "/api/v1/findings/",
            finding_body('"evidence": {"x": %s}' % nested(10000)),
        ),
        400,
        "nested deeper than",
    ),
    Bad(
        "json-nested-200-in-slice",
        raw("contributor", "POST", "/api/v1/findings/", finding_body('"slice": %s' % nested(200))),
        400,
        "nested deeper than",
    ),
    Bad(
        "json-nested-whole-body",
        raw("contributor", "POST", "/api/v1/findings/", nested(100000)),
        400,
        "nested deeper than",
    ),
    Bad(
        "json-nul-in-title",
        raw(
            "contributor",
            "POST",
            "/api/v1/findings/",
            lambda w: json.dumps({"title": "a\u0000b", "ml_model": w["ml_model"].pk}),
        ),
        400,
        "NUL",
    ),
    Bad(
        "json-nul-in-evidence-key",
        raw(
            "contributor", "POST", "/api/v1/findings/", finding_body('"evidence": {"a\\u0000": 1}')
        ),
        400,
        "NUL",
    ),
    Bad(
        "json-nul-in-transition-note",
        raw(
            "reviewer",
            "POST",
            lambda w: f"/api/v1/findings/{w['finding'].pk}/transition/",
            '{"to": "remediating", "note": "x\\u0000y"}',
        ),
        400,
        "NUL",
    ),
    Bad(
        "json-huge-integer-id",
        raw("contributor", "POST", "/api/v1/findings/", '{"title": "t", "ml_model": %s}' % HUGE),
        400,
        "too large",
    ),
    Bad(
        "json-huge-integer-in-params",
        raw(
            "contributor",
            "POST",
            "/api/v1/probes/",
            probe_body('"threshold": 0.2, "params": {"seed": %s}' % HUGE),
        ),
        400,
        "too large",
    ),
    Bad(
        "json-not-utf8",
        api("contributor", "POST", "/api/v1/findings/", b'{"title": "caf\xe9"}', fmt="raw"),
        400,
        "not UTF-8",
    ),
    Bad(
        "json-truncated",
        raw("contributor", "POST", "/api/v1/findings/", '{"title": "t"'),
        400,
        "not valid JSON",
    ),
    # Query parameters.
    Bad("query-nul-tag-api", get("viewer", "/api/v1/findings/?tag=%00"), 400, "NUL"),
    Bad("query-nul-tag-page", get("viewer", "/catalog/?tag=a%00b"), 400, "NUL"),
    Bad("query-nul-search", get("viewer", "/catalog/?q=%00"), 400, "NUL"),
    Bad(
        "query-huge-ml-model-api",
        get("viewer", f"/api/v1/findings/?ml_model={HUGE}"),
        400,
        "too large",
    ),
    Bad("query-huge-ml-model-page", get("viewer", f"/catalog/?ml_model={HUGE}"), 400, "too large"),
    Bad(
        "query-huge-probe-runs",
        get("viewer", f"/api/v1/probe-runs/?probe={HUGE}"),
        400,
        "too large",
    ),
    Bad("query-huge-page", get("viewer", f"/api/v1/findings/?page={HUGE}"), 400, "too large"),
    Bad("query-huge-audit-object", get("viewer", f"/audit/?object_id={HUGE}"), 400, "too large"),
    Bad("query-nul-parameter-name", get("viewer", "/catalog/?a%00=1"), 400, "NUL"),
    # Paths.
    Bad("path-huge-finding-page", get("viewer", f"/catalog/findings/{HUGE}/"), 404, ""),
    Bad("path-huge-finding-api", get("viewer", f"/api/v1/findings/{HUGE}/"), 404, ""),
    Bad("path-huge-version-page", get("viewer", f"/versions/{HUGE}/"), 404, ""),
    # Web forms.
    Bad(
        "form-nul-finding-title",
        web(
            "contributor",
            "/catalog/findings/new/",
            lambda w: {
                "title": "a\x00b",
                "ml_model": w["ml_model"].pk,
                "severity": "low",
                "risk_category": "other",
            },
        ),
        400,
        "NUL",
    ),
    Bad(
        "form-nul-transition-note",
        web(
            "reviewer",
            lambda w: f"/catalog/findings/{w['finding'].pk}/transition/",
            {"to": "remediating", "note": "x\x00"},
        ),
        400,
        "NUL",
    ),
    Bad(
        "form-huge-ml-model",
        web(
            "contributor",
            "/catalog/findings/new/",
            {"title": "t", "ml_model": HUGE, "severity": "low", "risk_category": "other"},
        ),
        400,
        "too large",
    ),
]


def test_the_hygiene_table_has_its_rows():
    assert len(CASES) >= 25
    assert len({c.id for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_unstorable_input_is_refused_clearly_and_saves_nothing(case, world, settings):  # noqa: F811
    before = snapshot(settings)
    response = case.send(world)
    body = response.content.decode(errors="replace")
    assert response.status_code == case.status, (response.status_code, body[:500])
    assert case.message in body, body[:1000]
    assert snapshot(settings) == before
