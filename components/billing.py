"""The billing service: the plan catalog now; Stripe checkout, portal and webhook later."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi

from components.functions import (ApiAttachment, FunctionSpec, Platform, attach_routes,
                                  build_function)
from handlers.routes import routes_of

SERVICE = "billing"


@dataclass(frozen=True)
class BillingArgs:
    platform: Platform
    api: ApiAttachment


class BillingService(pulumi.ComponentResource):
    def __init__(self, name: str, args: BillingArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("listbackup:billing:BillingService", name, None, opts)
        self.api = build_function(self, args.platform, SERVICE, FunctionSpec(
            name="api", entry="handlers.billing.api"))
        attach_routes(self, SERVICE, self.api, routes_of(SERVICE), args.api)
        self.register_outputs({"apiFunction": self.api.function.name})
