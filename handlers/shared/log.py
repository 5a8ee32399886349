"""Structured JSON logging with the Lambda request id, through Powertools' Logger.

Log facts and ids, never secrets, tokens or credentials: nothing here redacts for you.
"""

from __future__ import annotations

import os

from aws_lambda_powertools import Logger


def get_logger(service: str) -> Logger:
    return Logger(service=service, level=os.environ.get("LOG_LEVEL", "INFO"))
