"""ListBackup backend: twelve services composed in seed order (DESIGN section 2).

Each service receives what it needs from the ones before it as typed inputs, so the
dependency graph makes the order real.
"""

import pulumi

from components.core import CoreArgs, CoreService
from components.settings import Settings
from components.system import SystemArgs, SystemService

settings = Settings.load()

core = CoreService("core", CoreArgs(settings=settings))
system = SystemService("system", SystemArgs(platform=core.platform))

pulumi.export("stage", settings.stage)
pulumi.export("tables", {name: table.name for name, table in core.tables.items()})
pulumi.export("dataBucket", core.bucket.bucket)
pulumi.export("queues", {kind: q.url for kind, q in core.queues.items()})
pulumi.export("credentialsKeyArn", core.credentials_key.arn)
# Code digests keyed {service}/{function} and "layer" (no stage in the key), so a later
# stage can check that it runs only code an earlier stage has run.
pulumi.export("artifacts", core.platform.artifacts)
