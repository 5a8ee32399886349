"""The analytics service: backup overview and daily timeseries, read from the counters that
finishing runs (jobs) and the file indexer (core) keep in the analytics table."""

from __future__ import annotations

import pulumi

from components.functions import FunctionSpec, attach_routes, build_function, table_statement
from components.identity import IdentityInputs
from handlers.routes import routes_of

SERVICE = "analytics"


class AnalyticsService(pulumi.ComponentResource):
    def __init__(self, name: str, args: IdentityInputs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("listbackup:analytics:AnalyticsService", name, None, opts)
        self.api = build_function(self, args.platform, SERVICE, FunctionSpec(
            name="api", entry="handlers.analytics.api",
            statements=[
                # source and job counts and storage on the account row
                table_statement(["dynamodb:GetItem"], args.tables["accounts"]),
                table_statement(["dynamodb:GetItem", "dynamodb:Query"], args.tables["analytics"]),
            ]))
        attach_routes(self, SERVICE, self.api, routes_of(SERVICE), args.api)
        self.register_outputs({"apiFunction": self.api.function.name})
