"""ListBackup backend: twelve services composed in seed order (DESIGN section 2).

Each service receives what it needs from the ones before it as typed inputs, so the
dependency graph makes the order real.
"""

import pulumi

from components.account import AccountService
from components.activity import ActivityService
from components.analytics import AnalyticsService
from components.api import ApiArgs, ApiService
from components.auth import AuthService
from components.billing import BillingArgs, BillingService
from components.core import CoreArgs, CoreService
from components.data import DataArgs, DataService
from components.identity import IdentityInputs
from components.integrations import IntegrationsService
from components.jobs import JobsArgs, JobsService
from components.observability import ApiStage
from components.sources import ConnectorInputs, SourcesService
from components.settings import Settings
from components.system import SystemArgs, SystemService

settings = Settings.load()

core = CoreService("core", CoreArgs(settings=settings))
api = ApiService("api", ApiArgs(
    platform=core.platform,
    users_table=core.tables["users"],
    memberships_table=core.tables["users-accounts"],
    jwt_secret_parameter=core.parameters["jwt-secret"],
))
identity = IdentityInputs(platform=core.platform, api=api.attachment,
                          tables={**core.tables, **api.tables}, parameters=core.parameters,
                          sender=core.sender_identity)
auth = AuthService("auth", identity)
connectors = ConnectorInputs(
    platform=core.platform, api=api.attachment, api_url=api.url,
    tables={**core.tables, **api.tables}, cursor_secret=core.parameters["cursor-secret"],
    credentials_key=core.credentials_key, oauth_parameters=core.oauth_parameters,
    job_queue=core.queues["job"].queue)
sources = SourcesService("sources", connectors)
jobs = JobsService("jobs", JobsArgs(connectors=connectors, job_queue=core.queues["job"],
                                    bucket=core.bucket, sender=core.sender_identity))
data = DataService("data", DataArgs(connectors=connectors, data_queue=core.queues["data"],
                                    bucket=core.bucket, sender=core.sender_identity))
account = AccountService("account", IdentityInputs(
    platform=core.platform, api=api.attachment,
    tables={**core.tables, **api.tables, **auth.tables}, parameters=core.parameters,
    sender=core.sender_identity))
activity = ActivityService("activity", identity)
analytics = AnalyticsService("analytics", identity)
# billing owns tables too: built before system, whose status checks every table
billing = BillingService("billing", BillingArgs(
    platform=core.platform, api=api.attachment, tables=core.tables,
    cursor_secret=core.parameters["cursor-secret"], stripe_parameters=core.stripe_parameters))
tables = {**core.tables, **api.tables, **auth.tables, **account.tables, **data.tables,
          **billing.tables}
integrations = IntegrationsService("integrations", connectors)
# system comes last: its alarms and dashboard watch every function built before it
system = SystemService("system", SystemArgs(
    platform=core.platform, api=api.attachment,
    tables=list(tables.values()), bucket=core.bucket,
    queues=[q for queue in core.queues.values() for q in (queue.queue, queue.dead_letter)],
    functions=dict(core.platform.functions), authorizer=api.authorizer_function,
    work_queues={kind: q.queue for kind, q in core.queues.items()},
    dead_letter_queues={kind: q.dead_letter for kind, q in core.queues.items()},
    api_stage=ApiStage(api_id=api.api.id, stage=api.stage.name),
))

# Every function is declared: the promotion gate may compare digests (main only).
core.gate.seal()
if core.gate.enabled:
    pulumi.export("promotion", core.gate.verdict())

pulumi.export("stage", settings.stage)
# The base URL clients use: https://<domain>/v2, or the execute-api URL without a prefix.
pulumi.export("apiUrl", api.url)
pulumi.export("apiId", api.api.id)
if api.domain is not None:
    pulumi.export("apiDomainTarget", api.domain.domain_name_configuration.target_domain_name)
    if api.certificate_validation_records is not None:
        # DNS records to create so ACM issues the domain's certificate
        pulumi.export("certificateValidation", api.certificate_validation_records)
pulumi.export("tables", {name: table.name for name, table in tables.items()})
pulumi.export("dataBucket", core.bucket.bucket)
pulumi.export("queues", {kind: q.url for kind, q in core.queues.items()})
pulumi.export("deadLetterQueues", {kind: q.dead_letter.url for kind, q in core.queues.items()})
pulumi.export("credentialsKeyArn", core.credentials_key.arn)
# Code digests keyed {service}/{function} and "layer" (no stage in the key), so a later
# stage can check that it runs only code an earlier stage has run.
pulumi.export("artifacts", core.platform.artifacts)
