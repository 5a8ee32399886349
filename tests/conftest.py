"""Shared fixtures: the program evaluated under Pulumi's mocks, once per stack and session."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from offline.evaluate import Evaluation, evaluate

ROOT = Path(__file__).resolve().parent.parent
STACKS = ("dev", "staging", "main")

_cache: dict[str, Evaluation] = {}


def evaluated(stack: str) -> Evaluation:
    if stack not in _cache:
        _cache[stack] = evaluate(stack)
    return _cache[stack]


@pytest.fixture(params=STACKS)
def stack(request) -> str:
    return request.param


@pytest.fixture
def program(stack) -> Evaluation:
    return evaluated(stack)


def unwrap(value):
    """A secret input reaches the mocks as a wrapper dict holding ``value``."""
    if isinstance(value, dict) and "value" in value and len(value) == 2:
        return value["value"]
    return value


def policy(resource) -> dict:
    return json.loads(unwrap(resource.inputs["policy"]))
