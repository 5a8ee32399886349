"""The billing service: the plan catalog, the account's subscription through Stripe
(Checkout, billing portal, cancel, invoices) and Stripe's webhook.

One API function serves every billing route; the webhook route is public (Stripe signs it,
no authorizer). The function reads the Stripe secret key and webhook secret from SSM at
runtime; the environment holds their parameter names and the stack's price ids, never a
secret.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Mapping

import pulumi
import pulumi_aws as aws

from components.functions import (ApiAttachment, FunctionSpec, Platform, attach_routes,
                                  build_function, parameter_environment, parameter_statement,
                                  table_statement)
from components.identity import data_options
from components.tables import BILLING_TABLES, build_table
from handlers.routes import routes_of

SERVICE = "billing"


@dataclass(frozen=True)
class BillingArgs:
    platform: Platform
    api: ApiAttachment
    tables: Mapping[str, aws.dynamodb.Table]          # core's, by short name
    cursor_secret: aws.ssm.Parameter
    stripe_parameters: Mapping[str, aws.ssm.Parameter]  # "stripe-secret-key", "stripe-webhook-secret"


class BillingService(pulumi.ComponentResource):
    def __init__(self, name: str, args: BillingArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("listbackup:billing:BillingService", name, None, opts)
        platform = args.platform
        settings = platform.settings
        self.tables = {spec.name: build_table(spec, platform.names, settings,
                                              data_options(self, platform))
                       for spec in BILLING_TABLES}
        t = {**args.tables, **self.tables}
        stripe = args.stripe_parameters
        self.api = build_function(self, platform, SERVICE, FunctionSpec(
            name="api", entry="handlers.billing.api",
            environment={
                **parameter_environment(CURSOR_SECRET_PARAM=args.cursor_secret,
                                        STRIPE_SECRET_KEY_PARAM=stripe["stripe-secret-key"],
                                        STRIPE_WEBHOOK_SECRET_PARAM=stripe["stripe-webhook-secret"]),
                "STRIPE_PRICE_IDS": json.dumps(dict(settings.stripe_price_ids), sort_keys=True),
                "ALLOWED_RETURN_ORIGINS": ",".join(settings.app_origins),
            },
            statements=[
                parameter_statement(args.cursor_secret, stripe["stripe-secret-key"],
                                    stripe["stripe-webhook-secret"]),
                # the subscription lives on the account row; a sub-account's plan is its
                # ancestor's; the webhook writes conditionally on the event stamp
                table_statement(["dynamodb:GetItem", "dynamodb:BatchGetItem", "dynamodb:UpdateItem"],
                                t["accounts"]),
                # the owner's e-mail for the Stripe customer (read with the account)
                table_statement(["dynamodb:BatchGetItem"], t["users"]),
                # an event's record is read with its customer link and account, and put with
                # the change it makes (one transaction)
                table_statement(["dynamodb:BatchGetItem", "dynamodb:PutItem"], t["billing-events"]),
                table_statement(["dynamodb:BatchGetItem", "dynamodb:PutItem"], t["billing-customers"]),
                table_statement(["dynamodb:PutItem"], t["activity"]),
                table_statement(["dynamodb:UpdateItem"], t["activity-counters"]),
            ]))
        attach_routes(self, SERVICE, self.api, routes_of(SERVICE), args.api)
        self.register_outputs({"apiFunction": self.api.function.name,
                               "tables": {k: v.name for k, v in self.tables.items()}})
