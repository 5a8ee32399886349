"""Adopting an existing deployment's resources instead of creating new ones.

A stage that replaces an earlier deployment (the Serverless Framework stacks that created
the same tables, bucket, queues, SSM parameters and ``/aws/lambda/...`` log groups under
the same names) lists in ``listbackup:adopt`` what to import; each such resource is
declared with Pulumi's ``import_`` option and its physical id, so the first ``pulumi up``
takes it over (``= import`` in the preview) instead of creating it. Pulumi ignores the
option once the resource is in the stack's state; docs/migration.md says to clear
``adopt`` after the import anyway.

For an import to succeed the declared inputs must match the existing resource: the
preview shows any difference as an error, resolved by changing the stack's config (for
instance ``logRetentionDays``) or the old resource before importing.
"""

from __future__ import annotations

import pulumi

from components.settings import Settings, SettingsError


def adopted(settings: Settings, kind: str, name: str, opts: pulumi.ResourceOptions | None,
            import_id: str | None = None) -> pulumi.ResourceOptions | None:
    """``opts`` with ``import_`` set when the stage adopts the ``kind`` resource ``name``."""
    if not settings.adopts(kind, name):
        return opts
    return pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(import_=import_id or name))


def queue_import_id(settings: Settings, name: str) -> str:
    """An SQS queue is imported by its URL, which holds the account id."""
    if not settings.adopt_account_id:
        raise SettingsError('config listbackup:adopt: adopting queues needs "accountId" '
                            '(the AWS account that holds them)')
    return f"https://sqs.{settings.region}.amazonaws.com/{settings.adopt_account_id}/{name}"
