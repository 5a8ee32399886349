"""The shape of the platform catalog: plain frozen dataclasses, no behaviour.

Templates use ``{name}`` placeholders filled from a source's settings and credentials
(``{subdomain}``, ``{dc}``, ``{access_token}``) and, for child endpoints, from the parent
record (``{parent.id}``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

# Pagination styles the engine implements; every endpoint names one.
OFFSET = "offset"                  # ?offset=N&limit=M (or count); stop on a short page or total
PAGE = "page"                      # ?page=N&per_page=M; stop on a short page / total pages
CURSOR_AFTER_ID = "cursor_after_id"  # ?starting_after=<last id>&limit=M while has_more
NEXT_URL = "next_url"              # the body carries the next page's full URL
LINK_HEADER = "link_header"        # Link: <...>; rel="next"
CURSOR_TOKEN = "cursor_token"      # the body carries a token sent back as a query parameter
CURSOR_POST = "cursor_post"        # POST continue endpoint with the cursor in a JSON body
MARKER = "marker"                  # ?marker=<token> from the body (Box, S3-style)
SINGLE = "single"                  # one request, no pagination
STYLES = (OFFSET, PAGE, CURSOR_AFTER_ID, NEXT_URL, LINK_HEADER, CURSOR_TOKEN, CURSOR_POST,
          MARKER, SINGLE)


@dataclass(frozen=True)
class Field:
    """A credential or setting the user supplies when connecting a source."""
    name: str
    label: str
    secret: bool = True
    required: bool = True
    pattern: str | None = None       # a full-match regular expression
    help: str = ""


@dataclass(frozen=True)
class OAuth:
    authorize_url: str
    token_url: str
    scopes: tuple[str, ...] = ()
    scope_separator: str = " "
    authorize_params: Mapping[str, str] = field(default_factory=dict)   # e.g. access_type=offline
    token_auth: str = "body"         # "body" (client_id/secret in the form) or "basic"
    refreshes: bool = True           # access tokens expire and a refresh token renews them


@dataclass(frozen=True)
class Pagination:
    style: str
    page_size: int = 100
    # Parameter names and response paths (dot paths into the JSON body), per style:
    limit_param: str | None = "limit"
    offset_param: str | None = "offset"
    page_param: str | None = "page"
    first_page: int = 1
    cursor_param: str | None = None     # request parameter carrying the cursor/marker/id
    cursor_path: str | None = None      # response path of the next cursor/marker/URL
    has_more_path: str | None = None    # response path of a has-more flag
    total_path: str | None = None       # response path of a total count (offset/page)
    id_field: str = "id"                # record field whose last value is the next cursor
    continue_path: str | None = None    # CURSOR_POST: path of the continue endpoint
    extra: Mapping[str, Any] = field(default_factory=dict)   # fixed query/body parameters

    def __post_init__(self) -> None:
        if self.style not in STYLES:
            raise ValueError(f"unknown pagination style {self.style!r}")


@dataclass(frozen=True)
class Endpoint:
    name: str                        # "contacts": the object's name in S3 and in runs
    path: str                        # relative to the base URL; may hold {placeholders}
    records_path: str = ""           # dot path of the record list in the body ("" = the body)
    pagination: Pagination = Pagination(SINGLE)
    method: str = "GET"
    body: Mapping[str, Any] | None = None       # JSON body for POST list endpoints
    parent: str | None = None        # another endpoint whose records expand into this one
    files: bool = False              # a file store listing: records are file entries
    download_path: str | None = None # file content, relative to the content base URL
    description: str = ""
    # File stores: which entries are files (``{".tag": "file"}``), how content is fetched.
    files_where: Mapping[str, Any] = field(default_factory=dict)
    download_method: str = "GET"
    download_headers: Mapping[str, Any] = field(default_factory=dict)  # templates; a mapping is sent as JSON
    # File stores listed one folder at a time (Box): entries matching ``folders_where`` are
    # listed in turn, with the setting ``folder_setting`` set to their ``pagination.id_field``.
    folders_where: Mapping[str, Any] = field(default_factory=dict)
    folder_setting: str | None = None


@dataclass(frozen=True)
class RateLimit:
    requests_per_second: float
    burst: int = 1
    notes: str = ""


@dataclass(frozen=True)
class Platform:
    id: str                          # "keap", "google-drive"
    name: str
    categories: tuple[str, ...]
    auth: str                        # "api_key" or "oauth2"
    base_url: str                    # "https://api.infusionsoft.com/crm/rest/v1"
    auth_header: Mapping[str, str]   # {"Authorization": "Bearer {access_token}"}
    endpoints: tuple[Endpoint, ...]
    test_endpoint: str               # the cheapest endpoint, to prove credentials work
    fields: tuple[Field, ...] = ()   # credentials (secret) and settings (not secret)
    oauth: OAuth | None = None
    content_base_url: str | None = None   # file downloads, when on another host
    rate_limit: RateLimit = RateLimit(5.0)
    docs_url: str = ""

    def endpoint(self, name: str) -> Endpoint:
        for endpoint in self.endpoints:
            if endpoint.name == name:
                return endpoint
        raise KeyError(f"{self.id} has no endpoint {name!r}")

    @property
    def credential_fields(self) -> tuple[Field, ...]:
        return tuple(f for f in self.fields if f.secret)

    @property
    def setting_fields(self) -> tuple[Field, ...]:
        return tuple(f for f in self.fields if not f.secret)
