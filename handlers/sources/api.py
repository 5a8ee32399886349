"""Entry point of ``listbackup-sources-{stage}-api``: the sources service's routes.

The operations live beside this module (``crud``: list, create, read, update, delete;
``connection``: the connection test); this module binds them to the route table.
"""

from __future__ import annotations

from handlers.shared.http import api_handler
from handlers.shared.log import get_logger
from handlers.sources import crud
from handlers.sources.routes import ROUTES

logger = get_logger("sources")


# The connection test (``requests``, the connector engine) and "sync now" (the jobs and
# runs machinery) load on their first call, not on every cold start of the function
# (benchmarks/cold_start.py).

def test_source(request):
    from handlers.sources import connection

    return connection.check_source(request)


def sync_source(request):
    from handlers.jobs.sync import sync_source as sync

    return sync(request)


OPERATIONS = {
    "list_sources": crud.list_sources,
    "create_source": crud.create_source,
    "get_source": crud.get_source,
    "update_source": crud.update_source,
    "delete_source": crud.delete_source,
    "test_source": test_source,
    "sync_source": sync_source,
}

handler = logger.inject_lambda_context(api_handler(ROUTES, OPERATIONS, logger))
