"""Stage settings, read once from the stack's config into one typed object.

Every stage difference lives in ``Pulumi.<stage>.yaml``; components take a ``Settings`` and
never branch on the stage's name.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi

# CloudWatch Logs accepts only these retention values.
LOG_RETENTION_DAYS = (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731,
                      1096, 1827, 2192, 2557, 2922, 3288, 3653)


class SettingsError(ValueError):
    """A stack setting is missing or out of range; the message names the key."""


@dataclass(frozen=True)
class Settings:
    stage: str
    project: str
    region: str
    domain: str
    certificate_arn: str
    cors_origins: tuple[str, ...]
    app_url: str
    ses_from_email: str
    log_retention_days: int
    data_protection: bool
    force_destroy: bool
    point_in_time_recovery: bool
    lambda_memory: int
    authorizer_cache_ttl: int
    authorizer_provisioned_concurrency: int
    archive_after_days: int
    noncurrent_version_days: int
    # Secrets stay secret Outputs; "" means the stack lets the program generate one.
    jwt_secret: pulumi.Output[str]
    jwt_refresh_secret: pulumi.Output[str]
    oauth_clients: pulumi.Output[str]     # JSON; "" when no platform is configured
    # Billing: the Stripe price id of each paid plan (not secret), and the two Stripe
    # secrets ("" leaves billing unconfigured).
    stripe_price_ids: tuple[tuple[str, str], ...] = ()
    stripe_secret_key: pulumi.Output[str] | None = None
    stripe_webhook_secret: pulumi.Output[str] | None = None
    # Promotion: the stack whose `artifacts` this stage may run ("org/listbackup/staging";
    # "" for none), and the override that lets an update run code it has not run.
    promote_from: str = ""
    allow_unpromoted: bool = False
    # DNS: the Route 53 hosted zone of `domain` (and of the sender's domain) - "" leaves
    # DNS records to the operator.
    hosted_zone_id: str = ""
    # Adoption of an existing deployment's resources (see docs/migration.md): kind ->
    # names to import instead of create ("tables", "bucket", "queues", "parameters",
    # "logGroups"; or "all": true).
    adopt: tuple[tuple[str, object], ...] = ()
    # Where the stage's alarms are e-mailed (SNS subscription); "" for no subscriber.
    alarm_email: str = ""

    def __post_init__(self) -> None:
        _check(self.log_retention_days in LOG_RETENTION_DAYS, "logRetentionDays",
               f"must be one of CloudWatch's values {LOG_RETENTION_DAYS}")
        _check(128 <= self.lambda_memory <= 10240, "lambdaMemory", "must be 128..10240 MB")
        _check(0 <= self.authorizer_cache_ttl <= 3600, "authorizerCacheTtl", "must be 0..3600 s")
        _check(self.authorizer_provisioned_concurrency >= 0,
               "authorizerProvisionedConcurrency", "must be >= 0")
        _check(self.archive_after_days >= 1, "archiveAfterDays", "must be >= 1")
        _check(self.noncurrent_version_days >= 1, "noncurrentVersionDays", "must be >= 1")
        _check(not (self.data_protection and self.force_destroy), "forceDestroy",
               "cannot be true while dataProtection is true")
        _check(bool(self.ses_from_email) and "@" in self.ses_from_email, "sesFromEmail",
               "must be an e-mail address")
        local, at, host = self.alarm_email.partition("@")
        _check(not self.alarm_email or (bool(local) and bool(at) and "." in host.strip(".")
                                        and "@" not in host
                                        and not any(c.isspace() for c in self.alarm_email)),
               "alarmEmail", "must be one e-mail address, or \"\" for none")
        _check(not self.app_url or self.app_url.startswith(("https://", "http://")), "appUrl",
               "must be an http(s) URL")
        for origin in self.cors_origins:
            _check(origin.startswith(("https://", "http://")) and not origin.endswith("/"),
                   "corsOrigins", f"{origin!r} must be a scheme://host[:port] origin")
        from handlers.shared.plans import PLANS

        paid = {plan.plan_id for plan in PLANS if plan.monthly_price_cents > 0}
        for plan_id, price_id in self.stripe_price_ids:
            _check(plan_id in paid, "stripePriceIds",
                   f"names {plan_id!r}, which is not a paid plan ({', '.join(sorted(paid))})")
            _check(isinstance(price_id, str) and bool(price_id.strip()) and price_id == price_id.strip(),
                   "stripePriceIds", f"{plan_id}: the price id must be a non-empty string")
        _check(not self.promote_from or self.promote_from.count("/") in (0, 2), "promoteFrom",
               "must be a stack name: <stack> or <org>/<project>/<stack>")
        _check(not self.hosted_zone_id or bool(self.domain), "hostedZoneId",
               "needs a domain (listbackup:domain) to create records for")
        for kind, value in self.adopt:
            if kind == "accountId":
                _check(isinstance(value, str) and value.isdigit() and len(value) == 12, "adopt",
                       "accountId must be the 12-digit AWS account id")
                continue
            _check(kind in ADOPTABLE, "adopt",
                   f"{kind!r} is not one of {', '.join(ADOPTABLE)} (or accountId)")
            _check(value is True or value is False or (isinstance(value, (list, tuple))
                                                       and all(isinstance(v, str) for v in value)),
                   "adopt", f"{kind}: give true (every one) or a list of names")
        prices = [price for _, price in self.stripe_price_ids]
        _check(len(prices) == len(set(prices)), "stripePriceIds",
               "gives two plans the same price id (an event could not tell them apart)")

    @classmethod
    def load(cls) -> "Settings":
        cfg = pulumi.Config()  # the project's namespace: listbackup:*
        aws_cfg = pulumi.Config("aws")

        def optional_secret(key: str) -> pulumi.Output[str]:
            value = cfg.get_secret(key)
            return value if value is not None else pulumi.Output.secret("")

        return cls(
            stage=pulumi.get_stack(),
            project=pulumi.get_project(),
            region=aws_cfg.require("region"),
            domain=cfg.get("domain") or "",
            certificate_arn=cfg.get("certificateArn") or "",
            cors_origins=tuple(cfg.get_object("corsOrigins") or ()),
            app_url=(cfg.get("appUrl") or "").rstrip("/"),
            ses_from_email=cfg.get("sesFromEmail") or "",
            log_retention_days=cfg.get_int("logRetentionDays") or 14,
            data_protection=bool(cfg.get_bool("dataProtection")),
            force_destroy=bool(cfg.get_bool("forceDestroy")),
            point_in_time_recovery=_bool_default(cfg.get_bool("pointInTimeRecovery"), True),
            lambda_memory=cfg.get_int("lambdaMemory") or 512,
            authorizer_cache_ttl=cfg.get_int("authorizerCacheTtl") or 0,
            authorizer_provisioned_concurrency=cfg.get_int("authorizerProvisionedConcurrency") or 0,
            archive_after_days=cfg.get_int("archiveAfterDays") or 90,
            noncurrent_version_days=cfg.get_int("noncurrentVersionDays") or 30,
            jwt_secret=optional_secret("jwtSecret"),
            jwt_refresh_secret=optional_secret("jwtRefreshSecret"),
            oauth_clients=optional_secret("oauthClients"),
            stripe_price_ids=_price_ids(cfg.get_object("stripePriceIds")),
            stripe_secret_key=optional_secret("stripeSecretKey"),
            stripe_webhook_secret=optional_secret("stripeWebhookSecret"),
            promote_from=(cfg.get("promoteFrom") or "").strip(),
            allow_unpromoted=bool(cfg.get_bool("allowUnpromoted")),
            hosted_zone_id=(cfg.get("hostedZoneId") or "").strip(),
            adopt=_adopt(cfg.get_object("adopt")),
            alarm_email=(cfg.get("alarmEmail") or "").strip(),
        )

    def adopts(self, kind: str, name: str) -> bool:
        """Whether the resource of ``kind`` named ``name`` is imported, not created."""
        for adopted_kind, value in self.adopt:
            if adopted_kind == kind:
                return value is True or (isinstance(value, tuple) and name in value)
        return False

    @property
    def adopt_account_id(self) -> str:
        return str(dict(self.adopt).get("accountId") or "")

    @property
    def app_origins(self) -> tuple[str, ...]:
        """The web app's origins: where billing may send a customer back (CORS origins and
        the origin of appUrl)."""
        origins = list(self.cors_origins)
        if self.app_url:
            scheme, _, rest = self.app_url.partition("://")
            origin = f"{scheme}://{rest.split('/', 1)[0]}"
            if origin not in origins:
                origins.append(origin)
        return tuple(origins)


ADOPTABLE = ("tables", "bucket", "queues", "parameters", "logGroups")


def _adopt(value) -> tuple[tuple[str, object], ...]:
    if value is None:
        return ()
    if not isinstance(value, dict):
        raise SettingsError('config listbackup:adopt must be an object, e.g. '
                            '{"tables": true, "logGroups": ["/aws/lambda/..."]}')
    return tuple(sorted(((str(k), tuple(v) if isinstance(v, list) else v) for k, v in value.items()),
                        key=lambda kv: kv[0]))


def _price_ids(value) -> tuple[tuple[str, str], ...]:
    if value is None:
        return ()
    if not isinstance(value, dict):
        raise SettingsError('config listbackup:stripePriceIds must be an object '
                            '{"<plan>": "<price id>"}')
    return tuple(sorted(((str(k), v) for k, v in value.items()), key=lambda kv: kv[0]))


def _bool_default(value: bool | None, default: bool) -> bool:
    return default if value is None else value


def _check(ok: bool, key: str, why: str) -> None:
    if not ok:
        raise SettingsError(f"config listbackup:{key} {why}")
