"""Access: IAM grants without wildcard actions or wildcard resources (the documented
exception: actions AWS offers no narrower resource for, rules.ACTIONS_WITHOUT_RESOURCES),
and KMS keys that rotate. Each looks at one resource, before it is created or updated."""

from __future__ import annotations

from pulumi_policy import ReportViolation, ResourceValidationArgs, ResourceValidationPolicy

from listbackup_policy import rules
from listbackup_policy.values import UNKNOWN, get, known_items, label

ROLE = "aws:iam/role:Role"
# Resources holding one policy document in ``policy``.
DOCUMENT_TYPES = ("aws:iam/rolePolicy:RolePolicy", "aws:iam/policy:Policy",
                  "aws:iam/userPolicy:UserPolicy", "aws:iam/groupPolicy:GroupPolicy")
ATTACHMENT_TYPES = ("aws:iam/rolePolicyAttachment:RolePolicyAttachment",
                    "aws:iam/userPolicyAttachment:UserPolicyAttachment",
                    "aws:iam/groupPolicyAttachment:GroupPolicyAttachment",
                    "aws:iam/policyAttachment:PolicyAttachment")
KMS_KEY = "aws:kms/key:Key"


def _documents(args: ResourceValidationArgs) -> list:
    """The identity policy documents a resource grants. Unknown during a preview (a
    document naming ARNs not assigned yet), they are read again before the update."""
    if args.resource_type in DOCUMENT_TYPES:
        return [args.props["policy"]] if "policy" in args.props else []
    if args.resource_type == ROLE:
        return [p["policy"] for p in args.props.get("inlinePolicies") or [] if "policy" in p]
    return []


def _what(args: ResourceValidationArgs) -> str:
    return label(args.resource_type, args.name, get(args.props, "name"))


def validate_actions(args: ResourceValidationArgs, report: ReportViolation) -> None:
    found = [a for document in _documents(args) for a in rules.wildcard_actions(document)]
    if found:
        report(f"{_what(args)} allows wildcard actions {', '.join(found)}: list the actions "
               "the code calls.")


def _managed_policies(args: ResourceValidationArgs) -> list[str]:
    """AWS-managed policies attached: they cannot be read here and grant on '*'."""
    if args.resource_type in ATTACHMENT_TYPES:
        arns = [get(args.props, "policyArn")]
    elif args.resource_type == ROLE:
        arns = known_items(get(args.props, "managedPolicyArns"))
    else:
        return []
    return [a for a in arns if isinstance(a, str) and ":iam::aws:policy/" in a]


def validate_resources(args: ResourceValidationArgs, report: ReportViolation) -> None:
    found = [r for document in _documents(args) for r in rules.wildcard_resources(document)]
    found += [f"AWS-managed policy {arn}" for arn in _managed_policies(args)]
    if found:
        allowed = ", ".join(sorted(rules.ACTIONS_WITHOUT_RESOURCES))
        report(f"{_what(args)} grants on wildcard resources: {'; '.join(found)}. Name the "
               f"resources (only {allowed} may use '*').")


wildcard_actions = ResourceValidationPolicy(
    name="iam-no-wildcard-actions",
    description="IAM policies allow named actions only (no '*', 's3:*', 'dynamodb:Get*' "
                "or NotAction).",
    validate=validate_actions,
)

wildcard_resources = ResourceValidationPolicy(
    name="iam-no-wildcard-resources",
    description="IAM policies grant on named resources only (no '*' or whole-service "
                "ARNs, no AWS-managed policies), except the actions AWS offers no resource "
                "for.",
    validate=validate_resources,
)


def validate_key_rotation(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if args.resource_type != KMS_KEY:
        return
    spec = get(args.props, "customerMasterKeySpec") or get(args.props, "keySpec") \
        or "SYMMETRIC_DEFAULT"
    usage = get(args.props, "keyUsage") or "ENCRYPT_DECRYPT"
    if spec != "SYMMETRIC_DEFAULT" or usage != "ENCRYPT_DECRYPT":
        args.not_applicable(f"AWS rotates only symmetric encryption keys, not {spec}/{usage}")
    rotation = get(args.props, "enableKeyRotation")
    if rotation is True or rotation is UNKNOWN:
        return
    report(f"{_what(args)} does not rotate: set enable_key_rotation=True.")


key_rotation = ResourceValidationPolicy(
    name="kms-key-rotation",
    description="Every symmetric KMS key rotates its key material automatically.",
    validate=validate_key_rotation,
)

POLICIES = [wildcard_actions, wildcard_resources, key_rotation]
