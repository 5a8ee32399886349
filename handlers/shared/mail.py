"""E-mail through SES from the stage's sender: plain text and HTML in one message."""

from __future__ import annotations

import html
import os
from email.message import EmailMessage

from handlers.shared.clients import client


def send(to: str, subject: str, text: str, *, html_body: str | None = None) -> str:
    """Send a multipart/alternative message; returns SES's message id."""
    message = EmailMessage()
    message["From"] = os.environ["SES_FROM_EMAIL"]
    message["To"] = to
    message["Subject"] = subject
    message.set_content(text)
    message.add_alternative(html_body or _as_html(text), subtype="html")
    reply = client("sesv2").send_email(
        FromEmailAddress=os.environ["SES_FROM_EMAIL"],
        Destination={"ToAddresses": [to]},
        Content={"Raw": {"Data": message.as_bytes()}})
    return reply["MessageId"]


def _as_html(text: str) -> str:
    paragraphs = "".join(f"<p>{html.escape(p).replace(chr(10), '<br>')}</p>"
                         for p in text.split("\n\n"))
    return f"<!doctype html><html><body style=\"font-family:sans-serif\">{paragraphs}</body></html>"
