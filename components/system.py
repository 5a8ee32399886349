"""The system service: public health now; the authenticated deep status comes with the API."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi

from components.functions import (ApiAttachment, FunctionSpec, Platform, attach_routes,
                                  build_function)
from handlers.routes import routes_of

SERVICE = "system"


@dataclass(frozen=True)
class SystemArgs:
    platform: Platform
    api: ApiAttachment | None = None   # routes are attached once the HTTP API exists


class SystemService(pulumi.ComponentResource):
    def __init__(self, name: str, args: SystemArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("listbackup:system:SystemService", name, None, opts)
        self.api = build_function(self, args.platform, SERVICE, FunctionSpec(
            name="api", entry="handlers.system.api"))
        self.routes = (attach_routes(self, SERVICE, self.api, routes_of(SERVICE), args.api)
                       if args.api else [])
        self.register_outputs({"apiFunction": self.api.function.name})
