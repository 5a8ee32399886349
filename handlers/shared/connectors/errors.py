"""The one error the connector layer raises (re-exported as ``engine.ConnectorError``)."""

from __future__ import annotations

KINDS = ("auth", "rate_limited", "server", "malformed", "network", "config")


class ConnectorError(Exception):
    """A platform call that did not produce data.

    ``kind`` is one of :data:`KINDS`: ``auth`` (the platform refused the credentials: 401/403
    or a rejected refresh token), ``rate_limited`` (429 after every retry, or a Retry-After
    longer than the engine will wait), ``server`` (5xx after every retry, or another 4xx),
    ``malformed`` (a page the engine cannot trust), ``network`` (no answer after every retry)
    and ``config`` (a setting, credential or OAuth app is missing). ``status`` is the HTTP
    status when there was one. ``message`` is fit for the user: it names the platform and
    the status and never carries a credential, a token or a URL's query.
    """

    def __init__(self, kind: str, message: str, status: int | None = None) -> None:
        if kind not in KINDS:
            raise ValueError(f"unknown ConnectorError kind {kind!r}")
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.status = status

    def __repr__(self) -> str:
        return f"ConnectorError(kind={self.kind!r}, status={self.status!r}, message={self.message!r})"
