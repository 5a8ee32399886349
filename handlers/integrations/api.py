"""Entry point of ``listbackup-integrations-{stage}-api``."""

from __future__ import annotations

from handlers.integrations import catalog_views, oauth
from handlers.integrations.routes import ROUTES
from handlers.shared.http import api_handler
from handlers.shared.log import get_logger

logger = get_logger("integrations")

handler = logger.inject_lambda_context(api_handler(ROUTES, {
    "list_platforms": catalog_views.list_platforms,
    "get_platform": catalog_views.get_platform,
    "oauth_initiate": oauth.initiate,
    "oauth_callback": oauth.callback,
}, logger))
