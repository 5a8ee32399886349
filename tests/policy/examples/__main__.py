"""One compliant resource of each kind the policy pack checks, then one bad example per
rule. Every bad example is otherwise compliant, so it breaks exactly one policy; the tests
(tests/policy/test_policy_pack.py, ``EXPECTED``) name which, and check nothing else fires."""

import json

import pulumi
import pulumi_aws as aws

STACK = pulumi.get_stack()
ACCOUNT = "123456789012"
CODE = pulumi.AssetArchive({"index.py": pulumi.StringAsset("def handler(event, context):\n    return None\n")})
ASSUME_LAMBDA = json.dumps({"Version": "2012-10-17", "Statement": [{
    "Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}]})


def tls_only(bucket_arn: str) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": [{
        "Sid": "DenyInsecureTransport", "Effect": "Deny", "Principal": "*", "Action": "s3:*",
        "Resource": [bucket_arn, f"{bucket_arn}/*"],
        "Condition": {"Bool": {"aws:SecureTransport": "false"}}}]})


def bucket(name, *, encrypted=True, public_block="all", policy=tls_only):
    b = aws.s3.Bucket(name, bucket=f"listbackup-{name}-{STACK}")
    if encrypted:
        aws.s3.BucketServerSideEncryptionConfiguration(
            f"{name}-encryption", bucket=b.id,
            rules=[{"apply_server_side_encryption_by_default": {"sse_algorithm": "aws:kms"}}])
    if public_block:
        everything = public_block == "all"
        aws.s3.BucketPublicAccessBlock(
            f"{name}-public-access", bucket=b.id, block_public_acls=True,
            block_public_policy=everything, ignore_public_acls=True,
            restrict_public_buckets=everything)
    if policy:
        aws.s3.BucketPolicy(f"{name}-policy", bucket=b.id, policy=b.arn.apply(policy))
    return b


def deny_deletes_only(bucket_arn: str) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": [{
        "Effect": "Deny", "Principal": "*", "Action": "s3:DeleteBucket", "Resource": bucket_arn}]})


bucket("compliant-bucket")
bucket("unencrypted-bucket", encrypted=False)
bucket("half-public-bucket", public_block="acls-only")
bucket("unblocked-bucket", public_block=None)
bucket("plain-http-bucket", policy=deny_deletes_only)
bucket("policyless-bucket", policy=None)


def table(name, *, recovery):
    aws.dynamodb.Table(name, name=f"listbackup-{STACK}-{name}", billing_mode="PAY_PER_REQUEST",
                       hash_key="id", attributes=[{"name": "id", "type": "S"}],
                       point_in_time_recovery={"enabled": recovery})


table("recoverable-table", recovery=True)
table("unrecoverable-table", recovery=False)

dead_letter = aws.sqs.Queue("compliant-dlq", name=f"listbackup-compliant-queue-{STACK}-dlq")
aws.sqs.Queue("compliant-queue", name=f"listbackup-compliant-queue-{STACK}",
              redrive_policy=dead_letter.arn.apply(lambda arn: json.dumps(
                  {"deadLetterTargetArn": arn, "maxReceiveCount": 5})))
aws.sqs.Queue("undead-queue", name=f"listbackup-undead-queue-{STACK}")

role = aws.iam.Role("example-role", assume_role_policy=ASSUME_LAMBDA)


def function(name, *, log_group=True, retention=14, architectures=("arm64",), environment=None):
    physical = f"listbackup-examples-{STACK}-{name}"
    logging = None
    if log_group:
        group = aws.cloudwatch.LogGroup(f"{name}-logs", name=f"/aws/lambda/{physical}",
                                        retention_in_days=retention)
        logging = {"log_format": "JSON", "log_group": group.name}
    aws.lambda_.Function(
        name, name=physical, role=role.arn, runtime="python3.12", handler="index.handler",
        code=CODE, architectures=list(architectures) if architectures else None,
        environment={"variables": {"STAGE": STACK, "JWT_SECRET_PARAM": f"/listbackup/{STACK}/jwt-secret",
                                   **(environment or {})}},
        logging_config=logging)


function("compliant-function")
function("unlogged-function", log_group=False)
function("forever-function", retention=None)
function("x86-function", architectures=("x86_64",))
function("default-arch-function", architectures=None)
function("secret-name-function", environment={"STRIPE_SECRET_KEY": pulumi.Output.secret("from-config")})
function("secret-value-function", environment={"BILLING_KEY": "sk_live_" + "0" * 24})

TABLE_ARN = f"arn:aws:dynamodb:us-east-1:{ACCOUNT}:table/listbackup-{STACK}-recoverable-table"


def role_policy(name, statements):
    aws.iam.RolePolicy(name, role=role.id, policy=json.dumps(
        {"Version": "2012-10-17", "Statement": statements}))


role_policy("compliant-policy", [
    {"Effect": "Allow", "Action": ["dynamodb:GetItem", "dynamodb:Query"],
     "Resource": [TABLE_ARN, f"{TABLE_ARN}/index/*"]},
    # the documented exception: X-Ray offers no resource narrower than "*"
    {"Effect": "Allow", "Action": ["xray:PutTraceSegments", "xray:PutTelemetryRecords"],
     "Resource": "*"},
])
role_policy("wildcard-action-policy", [
    {"Effect": "Allow", "Action": "dynamodb:*", "Resource": TABLE_ARN}])
role_policy("wildcard-resource-policy", [
    {"Effect": "Allow", "Action": ["dynamodb:GetItem"], "Resource": "*"}])
aws.iam.RolePolicyAttachment(
    "managed-policy-attachment", role=role.name,
    policy_arn="arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole")

aws.kms.Key("rotating-key", description="rotates", enable_key_rotation=True)
aws.kms.Key("static-key", description="never rotates", enable_key_rotation=False)
aws.kms.Key("signing-key", description="asymmetric: AWS cannot rotate it",
            customer_master_key_spec="RSA_2048", key_usage="SIGN_VERIFY")
