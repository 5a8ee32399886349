"""Every policy of the pack, in the order the CLI reports them."""

from __future__ import annotations

from listbackup_policy import access, functions, queues, storage

NAME = "listbackup"
DESCRIPTION = ("ListBackup guardrails: encrypted, private, TLS-only buckets; recoverable main "
               "tables; dead-letter queues; arm64 functions with bounded logs and no secrets "
               "in their environment; least-privilege IAM; rotating KMS keys.")

POLICIES = [*storage.POLICIES, *queues.POLICIES, *functions.POLICIES, *access.POLICIES]
