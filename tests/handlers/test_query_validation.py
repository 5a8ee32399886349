"""Query strings are checked without fastjsonschema (handlers/shared/schema.py's flat
validator, for the cold start); it must accept and refuse exactly what fastjsonschema does,
naming the same parameter, for every route's query schema."""

from __future__ import annotations

import copy
import importlib

import fastjsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from handlers.shared import schema
from handlers.shared.http import ApiError

SERVICES = ("account", "activity", "analytics", "auth", "billing", "data", "integrations", "jobs",
            "sources", "system")
ROUTES = [r for s in SERVICES for r in importlib.import_module(f"handlers.{s}.routes").ROUTES if r.query]


def reference(route, query):
    """fastjsonschema's verdict: None (valid) or the fields it names."""
    validator = fastjsonschema.compile(schema.to_json_schema(copy.deepcopy(dict(route.query))))
    try:
        schema._check(validator, schema.typed_query(route.query, query), "query")
    except ApiError as error:
        return error.fields
    return None


def ours(route, query):
    try:
        schema.validate_query(route, query)
    except ApiError as error:
        assert error.code == "validation_failed" and error.status == 400
        return error.fields
    return None


def test_every_query_schema_is_flat_so_none_needs_fastjsonschema():
    assert ROUTES, "no route has a query schema?"
    assert [r.route_key for r in ROUTES if not schema._flat_query(r.query)] == []


SAMPLES = ["", "0", "1", "-1", "25", "100", "101", "1000000000000000000000", "2.5", "true", "false",
           "abc", "x" * 300, "2026-01-02T03:04:05Z", "2026-01-02T03:04:05+01:00", "2026-02-30T00:00:00Z",
           "2026-01-02", "completed", "failed", "customers", "src_0123456789abcdef01234567",
           "job_0123456789abcdef01234567", "data/acc/x", " ", "\u00e9", "null"]


@pytest.mark.parametrize("route", ROUTES, ids=lambda r: r.route_key)
def test_each_parameter_and_each_sample_gets_the_same_verdict(route):
    names = list((route.query.get("properties") or {})) + ["unknown"]
    for name in names:
        for value in SAMPLES:
            query = {name: value}
            assert ours(route, query) == reference(route, query), (route.route_key, query)


@pytest.mark.parametrize("route", ROUTES, ids=lambda r: r.route_key)
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_random_queries_get_the_same_verdict(route, data):
    names = list((route.query.get("properties") or {})) + ["other"]
    query = data.draw(st.dictionaries(st.sampled_from(names),
                                      st.one_of(st.sampled_from(SAMPLES), st.text(max_size=40)),
                                      max_size=4))
    assert ours(route, query) == reference(route, query)


def test_an_unknown_parameter_is_named_in_plain_words():
    route = next(r for r in ROUTES if r.route_key == "GET /data/files")
    with pytest.raises(ApiError) as caught:
        schema.validate_query(route, {"colour": "red"})
    assert str(caught.value) == "Unknown parameter: colour (not accepted here)"
    assert caught.value.fields == ["colour"]
