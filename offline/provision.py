"""Create in the local AWS (moto) what the program declares, with the same settings.

Returns what AWS itself would have decided (queue URLs, key ids), so references the mocks
invented can be replaced in the functions' environment.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from offline.model import Deployment


@dataclass
class Provisioned:
    queue_urls: dict[str, str] = field(default_factory=dict)      # name -> moto URL
    substitutions: dict[str, str] = field(default_factory=dict)   # mock value -> real value


def provision(deployment: Deployment, session) -> Provisioned:
    """``session``: a boto3 Session whose clients reach the local AWS."""
    done = Provisioned()
    _tables(deployment, session.client("dynamodb"))
    _queues(deployment, session.client("sqs"), done)
    _buckets(deployment, session.client("s3"))
    _parameters(deployment, session.client("ssm"))
    _keys(deployment, session.client("kms"), done)
    _identities(deployment, session.client("ses"))
    return done


def _tables(deployment: Deployment, dynamodb) -> None:
    for table in deployment.tables:
        def schema(hash_key, range_key):
            keys = [{"AttributeName": hash_key, "KeyType": "HASH"}]
            if range_key:
                keys.append({"AttributeName": range_key, "KeyType": "RANGE"})
            return keys

        kwargs = {
            "TableName": table.name, "BillingMode": "PAY_PER_REQUEST",
            "KeySchema": schema(table.hash_key, table.range_key),
            "AttributeDefinitions": [{"AttributeName": n, "AttributeType": t}
                                     for n, t in sorted(table.attributes.items())],
        }
        if table.indexes:
            kwargs["GlobalSecondaryIndexes"] = [
                {"IndexName": name, "KeySchema": schema(h, r), "Projection": {"ProjectionType": "ALL"}}
                for name, h, r in table.indexes]
        dynamodb.create_table(**kwargs)
        if table.ttl_attribute:
            dynamodb.update_time_to_live(TableName=table.name, TimeToLiveSpecification={
                "Enabled": True, "AttributeName": table.ttl_attribute})


def _queues(deployment: Deployment, sqs, done: Provisioned) -> None:
    # dead-letter queues first: a redrive policy names an existing queue
    ordered = sorted(deployment.queues.values(), key=lambda q: q.dead_letter is not None)
    for queue in ordered:
        attributes = {"VisibilityTimeout": str(queue.visibility_timeout),
                      "MessageRetentionPeriod": str(queue.retention),
                      "DelaySeconds": str(queue.delay)}
        if queue.fifo:
            attributes["FifoQueue"] = "true"
        if queue.dead_letter:
            attributes["RedrivePolicy"] = json.dumps({
                "deadLetterTargetArn": deployment.queues[queue.dead_letter].arn,
                "maxReceiveCount": str(queue.max_receives)})
        url = sqs.create_queue(QueueName=queue.name, Attributes=attributes)["QueueUrl"]
        done.queue_urls[queue.name] = url
        done.substitutions[queue.url] = url


def _buckets(deployment: Deployment, s3) -> None:
    for bucket in deployment.buckets:
        s3.create_bucket(Bucket=bucket.name)
        if bucket.versioned:
            s3.put_bucket_versioning(Bucket=bucket.name,
                                     VersioningConfiguration={"Status": "Enabled"})
        if bucket.notifications:
            configs = []
            for n in bucket.notifications:
                rules = [{"Name": "prefix", "Value": n.prefix}] if n.prefix else []
                rules += [{"Name": "suffix", "Value": n.suffix}] if n.suffix else []
                config = {"QueueArn": deployment.queues[n.queue].arn, "Events": n.events}
                if rules:
                    config["Filter"] = {"Key": {"FilterRules": rules}}
                configs.append(config)
            s3.put_bucket_notification_configuration(
                Bucket=bucket.name, NotificationConfiguration={"QueueConfigurations": configs})


def _parameters(deployment: Deployment, ssm) -> None:
    for parameter in deployment.parameters:
        ssm.put_parameter(Name=parameter.name, Value=parameter.value, Type=parameter.type,
                          Overwrite=True)


def _keys(deployment: Deployment, kms, done: Provisioned) -> None:
    for key in deployment.keys:
        created = kms.create_key(Description=key.description or "offline")["KeyMetadata"]
        done.substitutions[key.arn] = created["Arn"]
        done.substitutions[key.key_id] = created["KeyId"]
        for alias in key.aliases:
            kms.create_alias(AliasName=alias, TargetKeyId=created["KeyId"])


def _identities(deployment: Deployment, ses) -> None:
    for identity in deployment.email_identities:
        if "@" in identity:
            ses.verify_email_identity(EmailAddress=identity)
        else:
            ses.verify_domain_identity(Domain=identity)
