"""Client creation pauses the cyclic garbage collector and freezes what it built
(handlers/shared/clients.py): the collector must always come back on, and reset() must make
the frozen objects collectable again, or a long-lived process would stop collecting or
keep every test's garbage."""

from __future__ import annotations

import gc

import pytest

from handlers.shared import clients
from handlers.shared.clients import long_lived


@pytest.fixture
def collector():
    was = gc.isenabled()
    gc.enable()
    gc.unfreeze()
    yield
    gc.unfreeze()
    (gc.enable if was else gc.disable)()


def test_a_new_client_leaves_the_collector_on_and_its_objects_frozen(backend, collector):
    ssm = clients.client("ssm")

    assert gc.isenabled()
    assert gc.get_freeze_count() > 10_000          # the SDK's models and handlers
    assert ssm is clients.client("ssm")            # built once per process
    assert clients.dynamodb().meta.service_model.service_name == "dynamodb"
    assert gc.isenabled()

    clients.reset()
    assert gc.get_freeze_count() == 0


def test_a_client_that_cannot_be_built_still_turns_the_collector_back_on(backend, collector):
    from botocore.exceptions import UnknownServiceError

    with pytest.raises(UnknownServiceError):
        clients.client("no-such-service")
    assert gc.isenabled()


def test_a_collector_the_caller_turned_off_stays_off(collector):
    gc.disable()
    with long_lived():
        assert not gc.isenabled()
    assert not gc.isenabled()


def test_cyclic_garbage_made_after_the_freeze_is_still_collected(collector):
    class Node:
        pass

    with long_lived():
        pass
    node = Node()
    node.self = node
    del node
    assert gc.collect() >= 1
