"""The activity service: the audit feed, one event, and counts by type."""

from __future__ import annotations

import pulumi

from components.functions import (FunctionSpec, attach_routes, build_function,
                                  parameter_statement, table_statement)
from components.identity import IdentityInputs
from handlers.routes import routes_of

SERVICE = "activity"


class ActivityService(pulumi.ComponentResource):
    def __init__(self, name: str, args: IdentityInputs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("listbackup:activity:ActivityService", name, None, opts)
        params = args.parameters
        self.api = build_function(self, args.platform, SERVICE, FunctionSpec(
            name="api", entry="handlers.activity.api",
            environment={"CURSOR_SECRET_PARAM": params["cursor-secret"].name},
            statements=[
                parameter_statement(params["cursor-secret"]),
                table_statement(["dynamodb:GetItem", "dynamodb:Query"], args.tables["activity"]),
                table_statement(["dynamodb:Query"], args.tables["activity-counters"]),
            ]))
        attach_routes(self, SERVICE, self.api, routes_of(SERVICE), args.api)
        self.register_outputs({"apiFunction": self.api.function.name})
