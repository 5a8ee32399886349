"""The integrations service: the platform catalog, and OAuth initiate and callback."""

from __future__ import annotations

import pulumi

from components.functions import FunctionSpec, attach_routes, build_function, table_statement
from components.sources import ConnectorInputs
from handlers.routes import routes_of

SERVICE = "integrations"


class IntegrationsService(pulumi.ComponentResource):
    def __init__(self, name: str, args: ConnectorInputs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("listbackup:integrations:IntegrationsService", name, None, opts)
        self.api = build_function(self, args.platform, SERVICE, FunctionSpec(
            name="api", entry="handlers.integrations.api", environment=args.environment(),
            statements=[
                args.oauth_statement(),
                # a state is stored at initiate and consumed once at the callback
                table_statement(["dynamodb:PutItem", "dynamodb:GetItem", "dynamodb:DeleteItem",
                                 "dynamodb:UpdateItem"], args.tables["oauth-states"]),
                *args.source_store_statements(),
                # the callback re-reads the caller's membership: removed meanwhile, refused
                table_statement(["dynamodb:GetItem", "dynamodb:BatchGetItem"],
                                args.tables["users-accounts"]),
                # the callback stores the platform's tokens encrypted; it never decrypts
                args.kms_statement(["kms:Encrypt"]),
                *args.activity_statements(),
            ]))
        attach_routes(self, SERVICE, self.api, routes_of(SERVICE), args.api)
        self.register_outputs({"apiFunction": self.api.function.name})
