"""The auth service: register, login, tokens, verification, password reset, profile, API keys."""

from __future__ import annotations

import pulumi

from components.functions import (FunctionSpec, attach_routes, build_function,
                                  parameter_statement, table_statement)
from components.identity import IdentityInputs, data_options
from components.tables import AUTH_TABLES, build_table
from handlers.routes import routes_of

SERVICE = "auth"


class AuthService(pulumi.ComponentResource):
    def __init__(self, name: str, args: IdentityInputs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("listbackup:auth:AuthService", name, None, opts)
        platform = args.platform
        self.tables = {spec.name: build_table(spec, platform.names, platform.settings,
                                              data_options(self, platform))
                       for spec in AUTH_TABLES}
        t = {**args.tables, **self.tables}
        params = args.parameters
        self.api = build_function(self, platform, SERVICE, FunctionSpec(
            name="api", entry="handlers.auth.api",
            environment=args.token_environment(),
            statements=[
                parameter_statement(params["jwt-secret"], params["jwt-refresh-secret"],
                                    params["cursor-secret"]),
                # register writes user, account and owner membership in one transaction;
                # login reads the user, their last account and the address's failures in
                # one BatchGetItem
                table_statement(["dynamodb:GetItem", "dynamodb:BatchGetItem", "dynamodb:PutItem",
                                 "dynamodb:UpdateItem", "dynamodb:Query",
                                 "dynamodb:ConditionCheckItem"], t["users"], indexes=True),
                table_statement(["dynamodb:GetItem", "dynamodb:BatchGetItem", "dynamodb:PutItem"],
                                t["accounts"]),
                table_statement(["dynamodb:GetItem", "dynamodb:BatchGetItem", "dynamodb:PutItem",
                                 "dynamodb:Query"], t["users-accounts"]),
                table_statement(["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem",
                                 "dynamodb:Query"], t["api-keys"], indexes=True),
                table_statement(["dynamodb:GetItem", "dynamodb:BatchGetItem", "dynamodb:PutItem",
                                 "dynamodb:UpdateItem", "dynamodb:DeleteItem",
                                 "dynamodb:ConditionCheckItem"],
                                t["auth-tokens"], t["login-attempts"]),
                args.send_mail_statement(),
                *args.activity_statements(),
            ]))
        attach_routes(self, SERVICE, self.api, routes_of(SERVICE), args.api)
        self.register_outputs({"apiFunction": self.api.function.name})
