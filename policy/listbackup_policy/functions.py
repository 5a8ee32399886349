"""Lambda functions: a log group of the stack's own, with a retention, for every function
(a stack validation: function and log group are two resources); arm64; and no secret
values in the environment (both on the function alone)."""

from __future__ import annotations

from pulumi_policy import (ReportViolation, ResourceValidationArgs, ResourceValidationPolicy,
                           StackValidationArgs, StackValidationPolicy)

from listbackup_policy import rules
from listbackup_policy.values import (UNKNOWN, get, known_items, known_mapping, label, of_type)

FUNCTION = "aws:lambda/function:Function"
LOG_GROUP = "aws:cloudwatch/logGroup:LogGroup"
ARCHITECTURE = "arm64"


def _log_group_of(function, log_groups):
    """The stack's log group that ``function`` writes to, and the name it writes to."""
    configured = get(function.props, "loggingConfig", "logGroup")
    name = get(function.props, "name")
    expected = configured or (f"/aws/lambda/{name}" if isinstance(name, str) else UNKNOWN)
    linked = {dep.urn for dep in function.property_dependencies.get("loggingConfig", [])}
    for group in log_groups:
        group_name = get(group.props, "name")
        if group.urn in linked or (expected is not UNKNOWN and group_name == expected):
            return group, expected
    return None, expected


def validate_log_groups(args: StackValidationArgs, report: ReportViolation) -> None:
    log_groups = of_type(args.resources, LOG_GROUP)
    for function in of_type(args.resources, FUNCTION):
        group, expected = _log_group_of(function, log_groups)
        what = label(function.resource_type, function.name, get(function.props, "name"))
        if group is None:
            if expected is UNKNOWN:
                continue  # the name is not known before the update; its validation checks
            report(f"{what} has no log group in the stack: declare aws.cloudwatch.LogGroup "
                   f"'{expected}' with retention_in_days before the function, otherwise "
                   "Lambda creates one that keeps logs forever.", function.urn)
            continue
        retention = get(group.props, "retentionInDays")
        if retention is UNKNOWN or (isinstance(retention, (int, float)) and retention > 0):
            continue
        report(f"{what} logs to {label(group.resource_type, group.name, get(group.props, 'name'))}, "
               "which keeps logs forever: set its retention_in_days.", function.urn)


log_group_retention = StackValidationPolicy(
    name="lambda-log-group-retention",
    description="Every Lambda function has a log group in the stack, with a retention.",
    validate=validate_log_groups,
)


def validate_architecture(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if args.resource_type != FUNCTION:
        return
    architectures = get(args.props, "architectures")
    if architectures is UNKNOWN:
        return
    found = known_items(architectures) or ["x86_64 (the default)"]
    if found == [ARCHITECTURE]:
        return
    report(f"{label(args.resource_type, args.name, get(args.props, 'name'))} runs on "
           f"{', '.join(map(str, found))}: set architectures=['{ARCHITECTURE}'] (cheaper, "
           "and the runtime layer is built for it).")


arm64 = ResourceValidationPolicy(
    name="lambda-arm64",
    description="Every Lambda function runs on arm64.",
    validate=validate_architecture,
)


def validate_environment(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if args.resource_type != FUNCTION:
        return
    variables = known_mapping(get(args.props, "environment", "variables"))
    found = rules.secret_environment(variables)
    if found:
        report(f"{label(args.resource_type, args.name, get(args.props, 'name'))} has secret "
               f"values in its environment: {'; '.join(found)}. Keep secrets in SSM "
               "SecureString parameters and read them at run time.")


environment_secrets = ResourceValidationPolicy(
    name="lambda-no-secret-environment",
    description="No Lambda function holds a secret value in its environment (names of SSM "
                "parameters only).",
    validate=validate_environment,
)

POLICIES = [log_group_retention, arm64, environment_secrets]
