"""Entry point of ``listbackup-sources-{stage}-api``: the sources service's routes.

The operations live beside this module (``crud``: list, create, read, update, delete;
``connection``: the connection test); this module binds them to the route table.
"""

from __future__ import annotations

from handlers.jobs.sync import sync_source
from handlers.shared.http import api_handler
from handlers.shared.log import get_logger
from handlers.sources import connection, crud
from handlers.sources.routes import ROUTES

logger = get_logger("sources")

OPERATIONS = {
    "list_sources": crud.list_sources,
    "create_source": crud.create_source,
    "get_source": crud.get_source,
    "update_source": crud.update_source,
    "delete_source": crud.delete_source,
    "test_source": connection.check_source,
    "sync_source": sync_source,
}

handler = logger.inject_lambda_context(api_handler(ROUTES, OPERATIONS, logger))
