"""Entry point of ``listbackup-jobs-{stage}-api``: the jobs service's routes.

The operations live beside this module (``crud``: jobs; ``runs_api``: run now, runs,
cancel); this module binds them to the route table.
"""

from __future__ import annotations

from handlers.jobs import crud, runs_api
from handlers.jobs.routes import ROUTES
from handlers.shared.http import api_handler
from handlers.shared.log import get_logger

logger = get_logger("jobs")

OPERATIONS = {
    "list_jobs": crud.list_jobs,
    "create_job": crud.create_job,
    "get_job": crud.get_job,
    "update_job": crud.update_job,
    "delete_job": crud.delete_job,
    "run_job": runs_api.run_job,
    "list_runs": runs_api.list_runs,
    "get_run": runs_api.get_run,
    "cancel_run": runs_api.cancel_run,
}

handler = logger.inject_lambda_context(api_handler(ROUTES, OPERATIONS, logger))
