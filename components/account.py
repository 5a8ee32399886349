"""The account service: accounts, usage, sub-accounts, switching, members, invitations."""

from __future__ import annotations

import pulumi

from components.functions import (FunctionSpec, attach_routes, build_function,
                                  parameter_statement, table_statement)
from components.identity import IdentityInputs, data_options
from components.tables import ACCOUNT_TABLES, build_table
from handlers.routes import routes_of

SERVICE = "account"


class AccountService(pulumi.ComponentResource):
    def __init__(self, name: str, args: IdentityInputs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("listbackup:account:AccountService", name, None, opts)
        platform = args.platform
        self.tables = {spec.name: build_table(spec, platform.names, platform.settings,
                                              data_options(self, platform))
                       for spec in ACCOUNT_TABLES}
        t = {**args.tables, **self.tables}
        params = args.parameters
        self.api = build_function(self, platform, SERVICE, FunctionSpec(
            name="api", entry="handlers.account.api",
            environment=args.token_environment(),
            statements=[
                parameter_statement(params["jwt-secret"], params["jwt-refresh-secret"],
                                    params["cursor-secret"]),
                # inviting looks the address up on email-index to refuse existing members
                table_statement(["dynamodb:GetItem", "dynamodb:BatchGetItem", "dynamodb:UpdateItem",
                                 "dynamodb:Query"], t["users"], indexes=True),
                # a sub-account: conditional counter on the parent + the account + membership
                table_statement(["dynamodb:GetItem", "dynamodb:BatchGetItem", "dynamodb:PutItem",
                                 "dynamodb:UpdateItem", "dynamodb:Query",
                                 "dynamodb:ConditionCheckItem"], t["accounts"], indexes=True),
                # BatchGetItem: a path's account is read with the rows the route needs
                table_statement(["dynamodb:GetItem", "dynamodb:BatchGetItem", "dynamodb:PutItem",
                                 "dynamodb:UpdateItem", "dynamodb:DeleteItem", "dynamodb:Query",
                                 "dynamodb:ConditionCheckItem"], t["users-accounts"], indexes=True),
                # DeleteItem: an invitation whose e-mail could not be sent is withdrawn
                table_statement(["dynamodb:GetItem", "dynamodb:BatchGetItem", "dynamodb:PutItem",
                                 "dynamodb:UpdateItem", "dynamodb:DeleteItem", "dynamodb:Query",
                                 "dynamodb:ConditionCheckItem"], t["invitations"], indexes=True),
                # tokens issued by a switch record their refresh id
                table_statement(["dynamodb:PutItem"], t["auth-tokens"]),
                args.send_mail_statement(),
                *args.activity_statements(),
            ]))
        attach_routes(self, SERVICE, self.api, routes_of(SERVICE), args.api)
        self.register_outputs({"apiFunction": self.api.function.name})
