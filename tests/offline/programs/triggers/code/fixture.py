"""Handlers of the offline triggers fixture."""

import json
import os
import time


def always_fails(event, context):
    raise RuntimeError(f"failing on purpose ({len(event['Records'])} records)")


def sleeps(event, context):
    time.sleep(5)
    return {"slept": True}


def answers(event, context):
    return {"statusCode": 200, "body": json.dumps({
        "remainingMs": context.get_remaining_time_in_millis(),
        "functionName": context.function_name,
        "platformUrls": os.environ.get("LISTBACKUP_PLATFORM_URLS"),
        "stripeApiBase": os.environ.get("LISTBACKUP_STRIPE_API_BASE"),
        "pid": os.getpid()})}


def records_firing(event, context):
    import boto3

    boto3.client("s3").put_object(Bucket=os.environ["BUCKET"],
                                  Key=f"firings/{time.time():.3f}.json", Body=json.dumps(event))
    return {"ok": True}
