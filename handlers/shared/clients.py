"""boto3 clients, created once per process on first use and reused.

DynamoDB goes through a plain client that speaks Python types: boto3's own type
transformation (the ``TransformationInjector`` its ``dynamodb`` resource installs) is
registered on the client's events, so items, keys, conditions (``Key``/``Attr``) and
answers are Python values exactly as with ``boto3.resource("dynamodb")`` - without
loading the resource model and building its classes, which cost a cold start about 40 ms
(benchmarks/cold_start.py).

Creating the first clients is most of a cold start, and most of that was the cyclic garbage
collector: importing botocore and building a client allocate about 90,000 objects that live
as long as the process (modules, service models, event handlers), and each collector pass
on the way walked all of them again - about 45 ms of a second client's 50. So clients are
built inside ``long_lived()``: the collector is paused while they are built, and then
``gc.freeze()`` moves everything alive to the permanent generation, which later passes (on
warm requests too) skip. The price: the SDK set-up's cyclic leftovers (about 3,000 objects,
0.7 MB, and whatever else is alive at that moment) are never collected; it happens once per
client, so the amount is fixed, not growing. ``reset()`` unfreezes.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import os
from collections.abc import Iterator


@contextlib.contextmanager
def long_lived() -> Iterator[None]:
    """Build objects that live as long as the process (SDK modules, clients) without the
    cyclic collector walking them again and again meanwhile; they are frozen afterwards."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if enabled:
            gc.enable()


@functools.cache
def client(service: str):
    with long_lived():
        import boto3  # deferred: a handler that never touches AWS does not pay for it

        return boto3.client(service, endpoint_url=_endpoint(service))


@functools.cache
def dynamodb():
    """The DynamoDB client taking and returning Python types (``Decimal`` numbers, sets,
    ``Binary``), for ``transact_write_items``, ``batch_get_item`` and the like."""
    with long_lived():
        import boto3
        from boto3.dynamodb.transform import TransformationInjector, copy_dynamodb_params

        ddb = boto3.client("dynamodb", endpoint_url=_endpoint("dynamodb"))
    events = ddb.meta.events
    injector = TransformationInjector()
    # the same handlers, in the same order, with the same ids as boto3's DynamoDB resource
    events.register("provide-client-params.dynamodb", copy_dynamodb_params,
                    unique_id="dynamodb-create-params-copy")
    events.register("before-parameter-build.dynamodb", injector.inject_condition_expressions,
                    unique_id="dynamodb-condition-expression")
    events.register("before-parameter-build.dynamodb", injector.inject_attribute_value_input,
                    unique_id="dynamodb-attr-value-input")
    events.register("after-call.dynamodb", injector.inject_attribute_value_output,
                    unique_id="dynamodb-attr-value-output")
    return ddb


class Table:
    """One DynamoDB table: the resource API's item operations (``get_item``, ``put_item``,
    ``update_item``, ``delete_item``, ``query``), each answering what the client answers."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def get_item(self, **kwargs):
        return dynamodb().get_item(TableName=self.name, **kwargs)

    def put_item(self, **kwargs):
        return dynamodb().put_item(TableName=self.name, **kwargs)

    def update_item(self, **kwargs):
        return dynamodb().update_item(TableName=self.name, **kwargs)

    def delete_item(self, **kwargs):
        return dynamodb().delete_item(TableName=self.name, **kwargs)

    def query(self, **kwargs):
        return dynamodb().query(TableName=self.name, **kwargs)

    def __repr__(self) -> str:
        return f"Table({self.name!r})"


def table(short_name: str) -> Table:
    """The stage's DynamoDB table ``listbackup-{stage}-{short_name}``."""
    return Table(os.environ["DYNAMODB_TABLE_PREFIX"] + short_name)


def _endpoint(service: str) -> str | None:
    # Standard AWS SDK setting (AWS_ENDPOINT_URL / AWS_ENDPOINT_URL_<SERVICE>) honoured by
    # boto3 itself; named here only so the behaviour is explicit. Unset on AWS.
    return os.environ.get(f"AWS_ENDPOINT_URL_{service.upper()}") or os.environ.get("AWS_ENDPOINT_URL")


def reset() -> None:
    """Forget cached clients (a test that swaps the AWS backend calls this); what they froze
    becomes collectable again."""
    client.cache_clear()
    dynamodb.cache_clear()
    gc.unfreeze()
