"""The policy pack, as the Pulumi CLI runs it: `pulumi preview --policy-pack policy`.

Constructing the PolicyPack starts pulumi-policy's analyzer server and blocks until the
CLI stops it, so this file only wires the pack together; the policies live in
``listbackup_policy`` and tests reach them through ``runner.py``.
"""

from pulumi_policy import EnforcementLevel, PolicyPack

from listbackup_policy.pack import DESCRIPTION, NAME, POLICIES

PolicyPack(
    name=NAME,
    description=DESCRIPTION,
    enforcement_level=EnforcementLevel.MANDATORY,
    policies=POLICIES,
)
