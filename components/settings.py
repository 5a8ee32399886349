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
        _check(not self.app_url or self.app_url.startswith(("https://", "http://")), "appUrl",
               "must be an http(s) URL")
        for origin in self.cors_origins:
            _check(origin.startswith(("https://", "http://")) and not origin.endswith("/"),
                   "corsOrigins", f"{origin!r} must be a scheme://host[:port] origin")

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
        )


def _bool_default(value: bool | None, default: bool) -> bool:
    return default if value is None else value


def _check(ok: bool, key: str, why: str) -> None:
    if not ok:
        raise SettingsError(f"config listbackup:{key} {why}")
