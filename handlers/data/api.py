"""Entry point of ``listbackup-data-{stage}-api``: the data service's routes.

The operations live beside this module (``files_api``: files; ``browse``: tree and search;
``exports``: export requests); this module binds them to the route table.
"""

from __future__ import annotations

from handlers.data import browse, exports, files_api
from handlers.data.routes import ROUTES
from handlers.shared.http import api_handler
from handlers.shared.log import get_logger

logger = get_logger("data")

OPERATIONS = {
    "list_files": files_api.list_files,
    "get_file": files_api.get_file,
    "delete_file": files_api.delete_file,
    "download_url": files_api.download_url,
    "restore_file": files_api.restore_file,
    "tree": browse.tree,
    "search": browse.search,
    "request_export": exports.request_export,
    "get_export": exports.get_export_route,
}

handler = logger.inject_lambda_context(api_handler(ROUTES, OPERATIONS, logger))
