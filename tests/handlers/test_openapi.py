"""The OpenAPI document generated from the route table is valid and complete."""

from __future__ import annotations

from openapi_spec_validator import validate

from handlers.openapi import document
from handlers.routes import all_routes


def test_the_document_is_valid_openapi_3_0_3():
    validate(document())


def test_every_route_appears_once_with_its_security_and_body():
    doc = document()
    routes = [r for rs in all_routes().values() for r in rs]
    for route in routes:
        operation = doc["paths"][route.path][route.method.lower()]
        assert (operation["security"] == []) is route.public
        assert ("requestBody" in operation) is (route.body is not None)
        assert operation["x-minimum-role"] == route.access
    ids = [op["operationId"] for ops in doc["paths"].values() for op in ops.values()]
    assert len(ids) == len(set(ids)) == len(routes)
