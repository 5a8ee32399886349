"""Queues: every SQS queue hands the messages it cannot deliver to a dead-letter queue,
except the dead-letter queues themselves. Which queues are dead-letter queues only the
whole stack says (the queues whose redrive policies name them), so this is a stack
validation."""

from __future__ import annotations

from pulumi_policy import ReportViolation, StackValidationArgs, StackValidationPolicy

from listbackup_policy import rules
from listbackup_policy.values import UNKNOWN, get, label, of_type, refers_to

QUEUE = "aws:sqs/queue:Queue"
REDRIVE_POLICY = "aws:sqs/redrivePolicy:RedrivePolicy"


def validate_dead_letter_queues(args: StackValidationArgs, report: ReportViolation) -> None:
    queues = of_type(args.resources, QUEUE)
    redrives = of_type(args.resources, REDRIVE_POLICY)
    # Dead-letter queues, by the ARN a redrive policy names or, in a preview where that ARN
    # is not known yet, by the engine's record of what the redrive policy depends on.
    target_arns, target_urns = set(), set()
    for holder in [*queues, *redrives]:
        target = rules.dead_letter_target(get(holder.props, "redrivePolicy"))
        if target:
            target_arns.add(target)
        target_urns |= {dep.urn for dep in holder.property_dependencies.get("redrivePolicy", [])}

    for queue in queues:
        own = get(queue.props, "redrivePolicy")
        if rules.dead_letter_target(own):
            continue
        # Unknown in a preview: set from another resource (the dead-letter queue's ARN) when
        # the engine records a dependency, else AWS's value for a queue without one.
        if own is UNKNOWN and queue.property_dependencies.get("redrivePolicy"):
            continue
        url = get(queue.props, "url")
        if any(refers_to(r, "queueUrl", queue, url) and get(r.props, "redrivePolicy")
               for r in redrives):
            continue
        if queue.urn in target_urns or get(queue.props, "arn") in target_arns:
            continue  # a dead-letter queue itself
        name = get(queue.props, "name")
        report(f"{label(queue.resource_type, queue.name, name)} has no dead-letter queue: "
               "give it a redrive_policy naming one (deadLetterTargetArn, maxReceiveCount), "
               "so a message that keeps failing is kept, not retried forever or lost.",
               queue.urn)


dead_letter_queues = StackValidationPolicy(
    name="sqs-dead-letter-queue",
    description="Every SQS queue has a dead-letter queue (a redrive policy), except the "
                "dead-letter queues themselves.",
    validate=validate_dead_letter_queues,
)

POLICIES = [dead_letter_queues]
