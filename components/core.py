"""The core service: the stage's data stores, queues, key, parameters and file indexer.

Everything later services build on is created here and exposed as typed attributes, so
they receive names and ARNs as inputs instead of re-deriving them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws
import pulumi_random as random

from components import packaging
from components.adoption import adopted, queue_import_id
from components.functions import (CONSUMER_TIMEOUTS, FunctionSpec, Platform, Statement,
                                  build_function)
from components.naming import Names
from components.promotion import PromotionGate
from components.settings import Settings
from components.tables import CORE_TABLES, build_table
from handlers.shared.plans import RETENTION_TAG, retention_days

QUEUE_KINDS = ("job", "data", "index")
MAX_RECEIVES = 5                        # deliveries before a message is dead-lettered
VISIBILITY_FACTOR = 6                   # a queue's visibility timeout: 6x its consumer's timeout
DLQ_RETENTION_SECONDS = 14 * 24 * 3600  # the SQS maximum: time to look and redrive
EXPORT_EXPIRY_DAYS = 7
STALE_UPLOAD_DAYS = 7
DKIM_TOKENS = 3                         # Easy DKIM's CNAME records per domain
UNCONFIGURED = "unconfigured"
INDEX_EVENTS = ["s3:ObjectCreated:*", "s3:ObjectRemoved:*", "s3:LifecycleExpiration:*"]


@dataclass(frozen=True)
class CoreArgs:
    settings: Settings


@dataclass(frozen=True)
class Queue:
    queue: aws.sqs.Queue
    dead_letter: aws.sqs.Queue

    @property
    def url(self) -> pulumi.Output[str]:
        return self.queue.url

    @property
    def arn(self) -> pulumi.Output[str]:
        return self.queue.arn


class CoreService(pulumi.ComponentResource):
    tables: dict[str, aws.dynamodb.Table]
    bucket: aws.s3.Bucket
    queues: dict[str, Queue]
    credentials_key: aws.kms.Key
    parameters: dict[str, aws.ssm.Parameter]
    platform: Platform

    def __init__(self, name: str, args: CoreArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("listbackup:core:CoreService", name, None, opts)
        settings = args.settings
        self.names = names = Names(settings.stage)
        self._settings = settings
        child = pulumi.ResourceOptions(parent=self)
        # main keeps its data after a destroy: protected in Pulumi, retained in AWS.
        data_opts = pulumi.ResourceOptions(parent=self, protect=settings.data_protection,
                                           retain_on_delete=settings.data_protection)

        self.tables = {spec.name: build_table(spec, names, settings, data_opts)
                       for spec in CORE_TABLES}
        self.bucket = self._data_bucket(data_opts)
        self.queues = {kind: self._queue(kind) for kind in QUEUE_KINDS}
        self._index_notifications()

        self.credentials_key = aws.kms.Key(
            "credentials-key",
            description=f"ListBackup {settings.stage}: encrypts stored source credentials",
            enable_key_rotation=True, deletion_window_in_days=30, opts=data_opts)
        self.credentials_key_alias = aws.kms.Alias(
            "credentials-key-alias", name=names.kms_alias,
            target_key_id=self.credentials_key.key_id, opts=child)

        self.parameters = self._parameters()
        self.oauth_parameters = self._oauth_parameters()
        self.stripe_parameters = self._stripe_parameters()
        # The stage's sender address; SES mails it a verification link on creation.
        self.sender_identity = aws.sesv2.EmailIdentity(
            "ses-sender", email_identity=settings.ses_from_email, opts=child)
        self.sender_domain = self._sender_domain() if settings.hosted_zone_id else None

        layer_artifact = packaging.build_layer()
        artifacts = {"layer": layer_artifact.sha256}
        # main runs only code its upstream stage has run: every function's code and the
        # layer's wait on this gate (sealed at the end of __main__.py)
        self.gate = PromotionGate(settings.promote_from, allow_unpromoted=settings.allow_unpromoted,
                                  artifacts=artifacts, opts=child)
        self.layer = aws.lambda_.LayerVersion(
            "runtime-layer", layer_name=names.layer,
            code=self.gate.guard(pulumi.FileArchive(str(layer_artifact.path))),
            compatible_runtimes=["python3.12"], compatible_architectures=["arm64"],
            description="ListBackup Lambda runtime requirements (pure Python)", opts=child)
        self.platform = Platform(
            settings=settings, names=names, layer_arn=self.layer.arn,
            environment={"STAGE": settings.stage, "DYNAMODB_TABLE_PREFIX": names.table_prefix,
                         "S3_BUCKET": self.bucket.bucket, "API_VERSION": "v2"},
            artifacts=artifacts, gate=self.gate)

        self.file_indexer = self._file_indexer()

        self.register_outputs({
            "tableNames": {k: t.name for k, t in self.tables.items()},
            "bucket": self.bucket.bucket,
            "queueUrls": {k: q.url for k, q in self.queues.items()},
            "credentialsKeyArn": self.credentials_key.arn,
        })

    # ------------------------------------------------------------ data bucket

    def _data_bucket(self, opts: pulumi.ResourceOptions) -> aws.s3.Bucket:
        s = self._settings
        bucket = aws.s3.Bucket("data-bucket", bucket=self.names.data_bucket,
                               force_destroy=s.force_destroy,
                               opts=adopted(s, "bucket", self.names.data_bucket, opts))
        child = pulumi.ResourceOptions(parent=self)
        aws.s3.BucketVersioning("data-bucket-versioning", bucket=bucket.id,
                                versioning_configuration={"status": "Enabled"}, opts=child)
        aws.s3.BucketServerSideEncryptionConfiguration(
            "data-bucket-encryption", bucket=bucket.id,
            rules=[{"apply_server_side_encryption_by_default": {"sse_algorithm": "AES256"},
                    "bucket_key_enabled": True}], opts=child)
        aws.s3.BucketOwnershipControls("data-bucket-ownership", bucket=bucket.id,
                                       rule={"object_ownership": "BucketOwnerEnforced"}, opts=child)
        public_block = aws.s3.BucketPublicAccessBlock(
            "data-bucket-public-access", bucket=bucket.id, block_public_acls=True,
            block_public_policy=True, ignore_public_acls=True, restrict_public_buckets=True,
            opts=child)
        aws.s3.BucketPolicy(
            "data-bucket-policy", bucket=bucket.id,
            policy=bucket.arn.apply(lambda arn: json.dumps({
                "Version": "2012-10-17",
                "Statement": [{
                    "Sid": "DenyInsecureTransport", "Effect": "Deny", "Principal": "*",
                    "Action": "s3:*", "Resource": [arn, f"{arn}/*"],
                    "Condition": {"Bool": {"aws:SecureTransport": "false"}},
                }],
            })),
            # S3 refuses a bucket policy while the public access block is being set.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[public_block]))
        aws.s3.BucketLifecycleConfiguration(
            "data-bucket-lifecycle", bucket=bucket.id, rules=self._lifecycle_rules(), opts=child)
        return bucket

    def _lifecycle_rules(self) -> list[dict]:
        s = self._settings
        rules = [
            {"id": "archive-backups", "status": "Enabled", "filter": {"prefix": "data/"},
             # Glacier Instant Retrieval: cheaper, and a download is still immediate.
             "transitions": [{"days": s.archive_after_days, "storage_class": "GLACIER_IR"}]},
            {"id": "expire-noncurrent-versions", "status": "Enabled", "filter": {"prefix": ""},
             # A deleted file stays restorable this long; then its old versions go.
             "noncurrent_version_expiration": {"noncurrent_days": s.noncurrent_version_days},
             "expiration": {"expired_object_delete_marker": True}},
            {"id": "abort-stale-uploads", "status": "Enabled", "filter": {"prefix": ""},
             "abort_incomplete_multipart_upload": {"days_after_initiation": STALE_UPLOAD_DAYS}},
            {"id": "expire-exports", "status": "Enabled", "filter": {"prefix": "exports/"},
             "expiration": {"days": EXPORT_EXPIRY_DAYS}},
        ]
        for days in retention_days():
            rules.append({
                "id": f"retention-{days}d", "status": "Enabled",
                "filter": {"tag": {"key": RETENTION_TAG, "value": f"{days}d"}},
                "expiration": {"days": days}})
        return rules

    # ------------------------------------------------------------ queues

    def _queue(self, kind: str) -> Queue:
        child = pulumi.ResourceOptions(parent=self)
        s = self._settings

        def adopt(name: str) -> pulumi.ResourceOptions | None:
            if not s.adopts("queues", name):
                return child
            return adopted(s, "queues", name, child, queue_import_id(s, name))

        dead_letter = aws.sqs.Queue(
            f"{kind}-dlq", name=self.names.dead_letter_queue(kind),
            message_retention_seconds=DLQ_RETENTION_SECONDS, sqs_managed_sse_enabled=True,
            opts=adopt(self.names.dead_letter_queue(kind)))
        queue = aws.sqs.Queue(
            f"{kind}-queue", name=self.names.queue(kind),
            visibility_timeout_seconds=VISIBILITY_FACTOR * CONSUMER_TIMEOUTS[kind],
            sqs_managed_sse_enabled=True,
            redrive_policy=dead_letter.arn.apply(lambda arn: json.dumps(
                {"deadLetterTargetArn": arn, "maxReceiveCount": MAX_RECEIVES})),
            opts=adopt(self.names.queue(kind)))
        return Queue(queue, dead_letter)

    def _index_notifications(self) -> None:
        index = self.queues["index"]
        # S3 may send to the index queue only on behalf of this bucket.
        policy = aws.sqs.QueuePolicy(
            "index-queue-policy", queue_url=index.url,
            policy=pulumi.Output.all(index.arn, self.bucket.arn).apply(lambda a: json.dumps({
                "Version": "2012-10-17",
                "Statement": [{
                    "Sid": "DataBucketEvents", "Effect": "Allow",
                    "Principal": {"Service": "s3.amazonaws.com"},
                    "Action": "sqs:SendMessage", "Resource": a[0],
                    "Condition": {"ArnEquals": {"aws:SourceArn": a[1]}},
                }],
            })),
            opts=pulumi.ResourceOptions(parent=self))
        aws.s3.BucketNotification(
            "data-bucket-notifications", bucket=self.bucket.id,
            queues=[{"id": "index-data", "queue_arn": index.arn, "events": INDEX_EVENTS,
                     "filter_prefix": "data/"}],
            # S3 checks that it may send to the queue when the notification is created.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[policy]))

    # ------------------------------------------------------------ parameters

    def _parameters(self) -> dict[str, aws.ssm.Parameter]:
        s, names = self._settings, self.names
        child = pulumi.ResourceOptions(parent=self)
        params = {}
        for key, configured in (("jwt-secret", s.jwt_secret),
                                ("jwt-refresh-secret", s.jwt_refresh_secret)):
            generated = random.RandomPassword(f"{key}-generated", length=64, special=False,
                                              opts=child)
            value = pulumi.Output.secret(pulumi.Output.all(configured, generated.result).apply(
                lambda v: v[0] or v[1]))
            params[key] = self._ssm_parameter(
                f"param-{key}", name=names.parameter(key), type="SecureString", value=value,
                description=f"HS256 secret ({key}) of stage {s.stage}", opts=child)
        # Signs pagination cursors; generated, never configured, rotated by replacing it.
        cursor = random.RandomPassword("cursor-secret-generated", length=64, special=False,
                                       opts=child)
        params["cursor-secret"] = self._ssm_parameter(
            "param-cursor-secret", name=names.parameter("cursor-secret"), type="SecureString",
            value=cursor.result, description=f"Pagination cursor key of stage {s.stage}",
            opts=child)
        params["cors-origin"] = self._ssm_parameter(
            "param-cors-origin", name=names.parameter("cors-origin"), type="String",
            value=",".join(s.cors_origins) or "none", opts=child)
        params["ses-from-email"] = self._ssm_parameter(
            "param-ses-from-email", name=names.parameter("ses-from-email"), type="String",
            value=s.ses_from_email, opts=child)
        return params

    def _oauth_parameters(self) -> dict[str, tuple[aws.ssm.Parameter, aws.ssm.Parameter]]:
        """Each OAuth platform's app credentials, under the stage's prefix. A platform the
        stack does not configure holds "unconfigured", which the handlers refuse with 503."""
        from handlers.shared.connectors.platforms import CATALOG

        s, names = self._settings, self.names
        child = pulumi.ResourceOptions(parent=self)

        def pick(platform_id: str, key: str):
            def value(raw: str) -> str:
                try:
                    configured = json.loads(raw) if raw else {}
                except ValueError:
                    raise ValueError("config listbackup:oauthClients must be JSON") from None
                return str((configured.get(platform_id) or {}).get(key) or UNCONFIGURED)
            return s.oauth_clients.apply(value)

        out = {}
        for platform_id, platform in sorted(CATALOG.items()):
            if platform.oauth is None:
                continue
            client_id = self._ssm_parameter(
                f"param-oauth-{platform_id}-client-id", type="String",
                name=names.parameter(f"oauth/{platform_id}/client-id"),
                value=pick(platform_id, "clientId"), opts=child)
            client_secret = self._ssm_parameter(
                f"param-oauth-{platform_id}-client-secret", type="SecureString",
                name=names.parameter(f"oauth/{platform_id}/client-secret"),
                value=pulumi.Output.secret(pick(platform_id, "clientSecret")), opts=child)
            out[platform_id] = (client_id, client_secret)
        return out

    def _stripe_parameters(self) -> dict[str, aws.ssm.Parameter]:
        """Billing's Stripe secret key and webhook signing secret, read by the billing
        function at runtime. Left unset in the stack they hold "unconfigured", which billing
        answers with 503."""
        s, names = self._settings, self.names
        child = pulumi.ResourceOptions(parent=self)
        out = {}
        for key, configured, what in (
                ("stripe-secret-key", s.stripe_secret_key, "Stripe secret API key"),
                ("stripe-webhook-secret", s.stripe_webhook_secret, "Stripe webhook signing secret")):
            value = pulumi.Output.secret(pulumi.Output.from_input(configured or "").apply(
                lambda v: v or UNCONFIGURED))
            out[key] = self._ssm_parameter(
                f"param-{key}", name=names.parameter(key), type="SecureString", value=value,
                description=f"{what} of stage {s.stage}", opts=child)
        return out

    def _ssm_parameter(self, resource_name: str, *, name: str, opts: pulumi.ResourceOptions,
                       **kwargs) -> aws.ssm.Parameter:
        # an adopted parameter is imported, and keeps the value it holds until overwritten
        return aws.ssm.Parameter(resource_name, name=name, opts=adopted(
            self._settings, "parameters", name, opts), **kwargs)

    # ------------------------------------------------------------ e-mail domain

    def _sender_domain(self) -> aws.sesv2.EmailIdentity:
        """The sender's domain as an SES identity with Easy DKIM (2048-bit keys), and its
        three DKIM CNAME records in the stage's hosted zone, so mail from the stage is signed
        and deliverable. The zone must hold the sender's domain."""
        s = self._settings
        child = pulumi.ResourceOptions(parent=self)
        domain = s.ses_from_email.rpartition("@")[2].lower()
        identity = aws.sesv2.EmailIdentity(
            "ses-domain", email_identity=domain,
            dkim_signing_attributes={"next_signing_key_length": "RSA_2048_BIT"}, opts=child)
        tokens = identity.dkim_signing_attributes.apply(lambda a: list((a or {}).get("tokens") or []))
        for n in range(DKIM_TOKENS):   # Easy DKIM always gives three
            token = tokens.apply(lambda t, n=n: t[n] if len(t) > n else "pending")
            aws.route53.Record(
                f"ses-dkim-{n}", zone_id=s.hosted_zone_id, type="CNAME", ttl=1800,
                name=token.apply(lambda t: f"{t}._domainkey.{domain}"),
                records=[token.apply(lambda t: f"{t}.dkim.amazonses.com")],
                allow_overwrite=True, opts=child)
        return identity

    # ------------------------------------------------------------ file indexer

    def _file_indexer(self):
        files = self.tables["files"]
        index = self.queues["index"]
        built = build_function(self, self.platform, "core", FunctionSpec(
            name="fileIndexer",
            entry="handlers.core.file_indexer",
            timeout=CONSUMER_TIMEOUTS["index"],
            memory=256,
            statements=[
                # HEAD needs GetObject; ListBucket turns a missing key into 404, not 403.
                Statement(["s3:GetObject"], [self.bucket.arn.apply(lambda a: f"{a}/data/*")]),
                Statement(["s3:ListBucket"], [self.bucket.arn]),
                # the row's counted bytes and the account's storage change together
                Statement(["dynamodb:GetItem", "dynamodb:UpdateItem"], [files.arn]),
                Statement(["dynamodb:UpdateItem"], [self.tables["accounts"].arn,
                                                    self.tables["analytics"].arn]),
                Statement(["sqs:ReceiveMessage", "sqs:DeleteMessage",
                           "sqs:GetQueueAttributes"], [index.arn]),
            ],
        ))
        aws.lambda_.EventSourceMapping(
            "file-indexer-events", event_source_arn=index.arn,
            function_name=built.function.arn, batch_size=10,
            maximum_batching_window_in_seconds=5,
            function_response_types=["ReportBatchItemFailures"],
            opts=pulumi.ResourceOptions(parent=self))
        return built
