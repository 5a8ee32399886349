"""Data stores: the S3 buckets (encrypted, public access blocked, TLS only) and the
DynamoDB tables of the stages that keep data (point-in-time recovery).

In pulumi-aws v7 a bucket's encryption, public access block and policy are resources of
their own, so those checks are stack validations that look at the bucket and the
resources that name it together. They see each resource's final state, as the engine
passes it to ``AnalyzeStack``.
"""

from __future__ import annotations

from pulumi_policy import (PolicyConfigSchema, ReportViolation, ResourceValidationArgs,
                           ResourceValidationPolicy, StackValidationArgs,
                           StackValidationPolicy)

from listbackup_policy import rules
from listbackup_policy.values import UNKNOWN, get, known_items, label, of_type, refers_to

BUCKET_TYPES = ("aws:s3/bucket:Bucket", "aws:s3/bucketV2:BucketV2")
ENCRYPTION_TYPES = (
    "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
    "aws:s3/bucketServerSideEncryptionConfigurationV2:BucketServerSideEncryptionConfigurationV2",
)
PUBLIC_ACCESS_BLOCK = "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock"
ACCOUNT_PUBLIC_ACCESS_BLOCK = "aws:s3/accountPublicAccessBlock:AccountPublicAccessBlock"
BUCKET_POLICY = "aws:s3/bucketPolicy:BucketPolicy"
TABLE = "aws:dynamodb/table:Table"


def _buckets(args: StackValidationArgs):
    """Each bucket with its name and the resources that configure it."""
    for bucket in of_type(args.resources, *BUCKET_TYPES):
        name = get(bucket.props, "bucket")

        def attached(*types: str, _bucket=bucket, _name=name):
            return [r for r in of_type(args.resources, *types)
                    if refers_to(r, "bucket", _bucket, _name)]

        yield bucket, name, attached


# ---------------------------------------------------------------- encryption

def _encrypts(rule) -> bool:
    algorithm = get(rule, "applyServerSideEncryptionByDefault", "sseAlgorithm")
    return algorithm is UNKNOWN or algorithm in rules.SSE_ALGORITHMS


def validate_bucket_encryption(args: StackValidationArgs, report: ReportViolation) -> None:
    for bucket, name, attached in _buckets(args):
        # Only the configuration resource counts: a deployed bucket's own state reports
        # the SSE-S3 AWS applies to every bucket, whether the program asked for it or not.
        configured = [rule for config in attached(*ENCRYPTION_TYPES)
                      for rule in known_items(get(config.props, "rules"))]
        if any(_encrypts(rule) for rule in configured):
            continue
        report(f"{label(bucket.resource_type, bucket.name, name)} has no default server-side "
               "encryption: give it an aws.s3.BucketServerSideEncryptionConfiguration with "
               "sse_algorithm AES256 or aws:kms.", bucket.urn)


bucket_encryption = StackValidationPolicy(
    name="s3-bucket-encrypted",
    description="Every S3 bucket encrypts its objects by default (SSE-S3 or SSE-KMS).",
    validate=validate_bucket_encryption,
)


# ---------------------------------------------------------------- public access

def _left_open(block) -> list[str]:
    """The public access flags ``block`` leaves off (unknown counts as set)."""
    return [flag for flag in rules.PUBLIC_ACCESS_FLAGS
            if get(block.props, flag) is not True and get(block.props, flag) is not UNKNOWN]


def validate_public_access(args: StackValidationArgs, report: ReportViolation) -> None:
    if any(not _left_open(b) for b in of_type(args.resources, ACCOUNT_PUBLIC_ACCESS_BLOCK)):
        return  # the account blocks public access for every bucket
    for bucket, name, attached in _buckets(args):
        blocks = attached(PUBLIC_ACCESS_BLOCK)
        what = label(bucket.resource_type, bucket.name, name)
        if not blocks:
            report(f"{what} has no public access block: give it an "
                   "aws.s3.BucketPublicAccessBlock with all four settings true.", bucket.urn)
        elif all(_left_open(b) for b in blocks):
            missing = sorted({flag for b in blocks for flag in _left_open(b)})
            report(f"{what} does not block all public access: {', '.join(missing)} must be "
                   "true.", bucket.urn)


bucket_public_access = StackValidationPolicy(
    name="s3-bucket-public-access-blocked",
    description="Every S3 bucket blocks public ACLs and public policies (all four settings "
                "of its public access block).",
    validate=validate_public_access,
)


# ---------------------------------------------------------------- TLS only

def validate_tls_only(args: StackValidationArgs, report: ReportViolation) -> None:
    for bucket, name, attached in _buckets(args):
        documents = [get(p.props, "policy") for p in attached(BUCKET_POLICY)]
        if any(d is UNKNOWN for d in documents):
            continue  # a preview cannot read it yet; the update's validation will
        # The bucket's own policy (the deprecated inline argument, or what AWS reports for a
        # deployed bucket) is unknown in a preview of a new bucket unless the program set it.
        documents.append(get(bucket.props, "policy"))
        bucket_name = name if isinstance(name, str) else None
        if any(rules.denies_insecure_transport(d, bucket_name) for d in documents if d):
            continue
        report(f"{label(bucket.resource_type, bucket.name, name)} accepts requests without "
               "TLS: its bucket policy must deny s3:* on the bucket and its objects when "
               "aws:SecureTransport is false.", bucket.urn)


bucket_tls_only = StackValidationPolicy(
    name="s3-bucket-tls-only",
    description="Every S3 bucket's policy denies requests that do not use TLS "
                "(aws:SecureTransport false).",
    validate=validate_tls_only,
)


# ---------------------------------------------------------------- point-in-time recovery

def validate_table_recovery(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if args.resource_type != TABLE:
        return
    stages = args.get_config().get("stages") or rules.DEFAULT_RECOVERY_STAGES
    name = get(args.props, "name")
    stage = rules.table_stage(args.urn, name, stages)
    if stage is None:
        return
    enabled = get(args.props, "pointInTimeRecovery", "enabled")
    if enabled is True or enabled is UNKNOWN:
        return
    report(f"{label(args.resource_type, args.name, name)} is a {stage} table without "
           "point-in-time recovery: set point_in_time_recovery={'enabled': True}.")


table_recovery = ResourceValidationPolicy(
    name="dynamodb-pitr-in-main",
    description="Every DynamoDB table of the main stage has point-in-time recovery.",
    validate=validate_table_recovery,
    config_schema=PolicyConfigSchema(properties={
        "stages": {"type": "array", "items": {"type": "string"},
                   "default": list(rules.DEFAULT_RECOVERY_STAGES),
                   "description": "Stages whose tables need recovery: a table is in a stage "
                                  "when its name starts with listbackup-<stage>- or, without "
                                  "a name, when its stack is called <stage>."},
    }),
)

POLICIES = [bucket_encryption, bucket_public_access, bucket_tls_only, table_recovery]
