"""The one paging engine: every platform of the catalog, every pagination style.

``Connector(platform, settings, credentials)`` fills the catalog's templates (base URL,
paths, auth header, fixed parameters) from the source's settings and credentials, sends
every URL through ``urls.rewrite`` and walks an endpoint page by page:

- ``pages(name)`` is a generator of record lists, one per platform page, fetched only when
  the caller asks for the next one (an endpoint is never held in memory). A child endpoint
  (``Endpoint.parent``) runs once per record of its parent, with ``{parent.<field>}``.
- ``files()`` yields the entries of the file-store endpoints (``Endpoint.files_where``
  keeps the files; a store listed one folder at a time, ``folders_where``, is walked into
  every subfolder); ``download(entry)`` streams one file's content in chunks of at most
  :data:`CHUNK` bytes (``download_method``/``download_headers`` for Dropbox's POST), and
  follows a redirect to another host (Box's signed URL) without the credentials.
- ``test()`` fetches one page of ``platform.test_endpoint``.

Settings the catalog derives (``platforms.derive_settings``: Mailchimp's data centre...)
are filled in by the constructor.

Every request retries 429 and 5xx (and network errors) up to ``max_retries`` times with
exponential backoff and full jitter, or after the Retry-After the platform asks for
(seconds or an HTTP date), through the injectable ``sleep``. 401 and 403 fail at once with
``ConnectorError(kind="auth")`` -- except that an OAuth source refreshes its access token
once (and before it expires) and calls ``on_credentials_refreshed`` so the caller stores
the new tokens, and that Google's 403 ``rateLimitExceeded`` is retried like a 429. A page the engine cannot trust (not JSON, no record list, a cursor or flag
of the wrong type, a next URL on another host, a cursor seen before) is
``ConnectorError(kind="malformed")``, never the end of the data.
"""

from __future__ import annotations

import email.utils
import hashlib
import json
import random
import time
from collections import deque
from typing import Any, Callable, Iterator, Mapping
from urllib.parse import urljoin, urlsplit

import requests

from handlers.shared.connectors import oauth_client, templates, urls
from handlers.shared.connectors.errors import KINDS, ConnectorError
from handlers.shared.connectors.model import (CURSOR_AFTER_ID, CURSOR_POST, CURSOR_TOKEN,
                                              LINK_HEADER, MARKER, NEXT_URL, OFFSET, PAGE,
                                              SINGLE, Endpoint, Platform)

__all__ = ["Connector", "ConnectorError", "KINDS", "CHUNK", "TIMEOUT"]

TIMEOUT = (5.0, 30.0)          # connect, read (seconds)
CHUNK = 64 * 1024              # download chunk size (bytes)
BACKOFF_BASE = 1.0             # seconds; attempt n waits uniform(0, min(cap, base * 2**n))
BACKOFF_CAP = 60.0
MAX_WAIT = 300.0               # a Retry-After longer than this is not waited for
REFRESH_MARGIN = 60.0          # refresh an OAuth access token this close to its expiry
MAX_REDIRECTS = 5
USER_AGENT = "ListBackup/1.0 (+https://listbackup.ai)"
MISSING = templates.MISSING


class Connector:
    def __init__(self, platform: Platform, settings: Mapping[str, Any] | None,
                 credentials: Mapping[str, Any] | None, *, session: requests.Session | None = None,
                 sleep: Callable[[float], None] = time.sleep, max_retries: int = 5,
                 on_credentials_refreshed: Callable[[dict], None] | None = None,
                 clock: Callable[[], float] = time.time, max_wait: float = MAX_WAIT,
                 rng: random.Random | None = None) -> None:
        self.platform = platform
        self.credentials = dict(credentials or {})
        self.settings = _derived(platform, dict(settings or {}), self.credentials)
        self.session = session or requests.Session()
        self.sleep = sleep
        self.max_retries = max(0, int(max_retries))
        self.on_credentials_refreshed = on_credentials_refreshed
        self.clock = clock
        self.max_wait = max_wait
        self.rng = rng or random.Random()
        self.requests = 0            # requests sent (retries included): for run statistics
        # After each page ``pages()`` yields: a JSON-able state that ``pages(name,
        # resume=state)`` continues from (the page after it), or None when the endpoint
        # cannot be resumed that way (child endpoints, folder walks, SINGLE, CURSOR_POST).
        self.resume_state: dict | None = None

    # ------------------------------------------------------------------ public interface

    def test(self) -> None:
        """One page of the platform's cheapest endpoint: proves the credentials work."""
        pages = self.pages(self.platform.test_endpoint)
        try:
            next(pages, None)
        finally:
            pages.close()

    def pages(self, endpoint_name: str, resume: Mapping[str, Any] | None = None) -> Iterator[list[dict]]:
        """The endpoint's records, one list per platform page (empty pages are skipped).

        ``resume``: a :attr:`resume_state` read after a page of an earlier walk of this
        endpoint; the walk continues with the page after that one."""
        endpoint = self._endpoint(endpoint_name)
        self.resume_state = None
        if endpoint.parent or endpoint.folders_where:
            if resume is not None:
                raise ConnectorError("config", f"{self._what(endpoint)} cannot be resumed")
            for page in self._nested(endpoint):
                self.resume_state = None
                yield page
        else:
            yield from self._walk(endpoint, {}, resume)

    def _nested(self, endpoint: Endpoint) -> Iterator[list[dict]]:
        if endpoint.parent:
            for parent_page in self.pages(endpoint.parent):
                for parent in parent_page:
                    yield from self._listing(endpoint, {"parent": parent})
        else:
            yield from self._listing(endpoint, {})

    def records(self, endpoint_name: str) -> Iterator[dict]:
        for page in self.pages(endpoint_name):
            yield from page

    def files(self) -> Iterator[dict]:
        """The file entries of every file-store endpoint (``Endpoint.files``) of the
        platform, without the ones ``Endpoint.files_where`` leaves out (folders)."""
        endpoints = [e for e in self.platform.endpoints if e.files]
        if not endpoints:
            raise ConnectorError("config", f"{self.platform.name} is not a file store")
        for endpoint in endpoints:
            for page in self.pages(endpoint.name):
                for entry in page:
                    if _matches(entry, endpoint.files_where):
                        yield entry

    def download(self, entry: Mapping[str, Any], endpoint_name: str | None = None) -> Iterator[bytes]:
        """The content of one file entry, in chunks of at most :data:`CHUNK` bytes, read
        from the network as the caller consumes them."""
        endpoint = self._download_endpoint(endpoint_name)
        what = self._what(endpoint)
        values = {**self._values(), "entry": dict(entry)}
        base = self.platform.content_base_url or self.platform.base_url
        url = self._url(base, endpoint.download_path, values, what)
        method = endpoint.download_method or "GET"
        headers = {"Accept": "*/*"}
        for name, value in endpoint.download_headers.items():
            headers[name] = templates.fill_header(value, values, what)
        response = self._request(method, url, what, headers=headers, stream=True)
        try:
            try:
                for chunk in response.iter_content(chunk_size=CHUNK):
                    if chunk:
                        yield chunk
            except (requests.RequestException, OSError) as error:
                raise ConnectorError("network", f"{self.platform.name}: the download of a file "
                                                f"broke off ({type(error).__name__})") from None
        finally:
            response.close()

    # ------------------------------------------------------------------ walking an endpoint

    def _listing(self, endpoint: Endpoint, context: dict) -> Iterator[list[dict]]:
        """The endpoint's pages; for a store listed one folder at a time, the pages of every
        subfolder too, breadth first (only folder ids wait in memory)."""
        if not endpoint.folders_where:
            yield from self._walk(endpoint, context)
            return
        what = self._what(endpoint)
        if not endpoint.folder_setting:
            raise ConnectorError("config", f"{what}: the catalog names no folder setting")
        pending: deque[str | None] = deque([None])
        visited: set[str] = set()
        while pending:
            folder = pending.popleft()
            here = context if folder is None else {**context, endpoint.folder_setting: folder}
            for page in self._walk(endpoint, here):
                for entry in page:
                    if _matches(entry, endpoint.folders_where):
                        folder_id = self._id(entry, endpoint.pagination.id_field, what)
                        if folder_id not in visited:
                            visited.add(folder_id)
                            pending.append(folder_id)
                yield page

    def _walk(self, endpoint: Endpoint, context: dict,
              resume: Mapping[str, Any] | None = None) -> Iterator[list[dict]]:
        what = self._what(endpoint)
        resume = dict(resume) if resume else None
        if resume is not None and resume.get("done"):
            return
        values = {**self._values(), **context}
        p = endpoint.pagination
        url = self._url(self.platform.base_url, endpoint.path, values, what)
        fixed = templates.fill_data(dict(p.extra), values, what)
        body = templates.fill_data(dict(endpoint.body), values, what) if endpoint.body is not None else None
        method = endpoint.method.upper()
        hosts = self._hosts(url)
        size = p.page_size
        seen: set[bytes] = set()
        previous_page: str | None = None

        def request(target: str, params: Mapping[str, Any] | None = None,
                    json_body: Any = None, verb: str = method) -> requests.Response:
            params = {k: v for k, v in (params or {}).items() if v is not None}
            if verb == "GET":
                return self._request(verb, target, what, params=params or None)
            # A POST list endpoint (a search) takes its paging parameters in the JSON body.
            payload = {**(json_body or {}), **params} if (json_body is not None or params) else None
            return self._request(verb, target, what, json=payload)

        def check_cursor(cursor: str) -> None:
            key = hashlib.sha1(cursor.encode()).digest()      # 20 bytes per page, whatever its size
            if key in seen:
                raise ConnectorError("malformed", f"{what}: the platform sent the same cursor twice")
            seen.add(key)

        def check_repeat(records: list) -> None:
            nonlocal previous_page
            if not records:
                return
            # The first and last records and the length: enough to tell pages apart.
            digest = hashlib.sha256(json.dumps([len(records), records[0], records[-1]],
                                               sort_keys=True, default=str).encode()).hexdigest()
            if digest == previous_page:
                raise ConnectorError("malformed", f"{what}: the platform sent the same page twice")
            previous_page = digest

        if p.style == SINGLE:
            response = request(url, fixed, body)
            records = self._records(self._json(response, what), endpoint, what, single=True)
            if records:
                self.resume_state = None
                yield records
            return

        if p.style in (OFFSET, PAGE):
            position = 0 if p.style == OFFSET else p.first_page
            received = 0
            if resume is not None:
                position, received = int(resume["position"]), int(resume["received"])
            param = p.offset_param if p.style == OFFSET else p.page_param
            if not param:
                raise ConnectorError("config", f"{what}: the catalog names no offset/page parameter")
            while True:
                params = {**fixed, param: position}
                if p.limit_param:
                    params[p.limit_param] = size
                data = self._json(request(url, params, body), what)
                records = self._records(data, endpoint, what)
                check_repeat(records)
                received += len(records)
                if records:
                    self.resume_state = {"position": position + (len(records) if p.style == OFFSET else 1),
                                         "received": received}
                    yield records
                total = self._total(data, p.total_path, what)
                if not records:
                    return
                if total is not None:
                    if received >= total:
                        return
                elif len(records) < size:
                    return
                position += len(records) if p.style == OFFSET else 1
            return

        if p.style == CURSOR_AFTER_ID:
            cursor_param = p.cursor_param or "starting_after"
            cursor: str | None = resume.get("cursor") if resume else None
            while True:
                params = dict(fixed)
                if p.limit_param:
                    params[p.limit_param] = size
                if cursor is not None:
                    params[cursor_param] = cursor
                data = self._json(request(url, params, body), what)
                records = self._records(data, endpoint, what)
                if records:
                    self.resume_state = _attempt(lambda: {"cursor": self._id(records[-1], p.id_field, what)})
                    yield records
                more = self._flag(data, p.has_more_path, what) if p.has_more_path \
                    else len(records) >= size
                if not more:
                    return
                if not records:
                    raise ConnectorError("malformed", f"{what}: an empty page says there is more")
                cursor = self._id(records[-1], p.id_field, what)
                check_cursor(cursor)

        if p.style in (CURSOR_TOKEN, MARKER):
            cursor_param = p.cursor_param or ("marker" if p.style == MARKER else "cursor")
            cursor_path = p.cursor_path or ("next_marker" if p.style == MARKER else "cursor")
            cursor = resume.get("cursor") if resume else None
            while True:
                params = dict(fixed)
                if p.limit_param:
                    params[p.limit_param] = size
                if cursor is not None:
                    params[cursor_param] = cursor
                data = self._json(request(url, params, body), what)
                records = self._records(data, endpoint, what)
                if records:
                    self.resume_state = _attempt(lambda: _token_state(
                        self._token(data, cursor_path, what),
                        self._flag(data, p.has_more_path, what) if p.has_more_path else True))
                    yield records
                cursor = self._token(data, cursor_path, what)
                if p.has_more_path and not self._flag(data, p.has_more_path, what):
                    return
                if cursor is None:
                    if p.has_more_path:
                        raise ConnectorError("malformed", f"{what}: a page says there is more "
                                                          f"but carries no cursor")
                    return
                check_cursor(cursor)

        if p.style == CURSOR_POST:
            cursor_param = p.cursor_param or "cursor"
            cursor_path = p.cursor_path or "cursor"
            if not p.continue_path:
                raise ConnectorError("config", f"{what}: the catalog names no continue path")
            continue_url = self._url(self.platform.base_url, p.continue_path, values, what)
            first = {**fixed, **(body or {})}
            if p.limit_param and p.limit_param not in first:
                first[p.limit_param] = size
            if resume is not None:
                raise ConnectorError("config", f"{what} cannot be resumed")
            response = self._request("POST", url, what, json=first)
            while True:
                data = self._json(response, what)
                records = self._records(data, endpoint, what)
                if records:
                    self.resume_state = None
                    yield records
                cursor = self._token(data, cursor_path, what)
                more = self._flag(data, p.has_more_path, what) if p.has_more_path \
                    else cursor is not None
                if not more:
                    return
                if cursor is None:
                    raise ConnectorError("malformed", f"{what}: a page says there is more "
                                                      f"but carries no cursor")
                check_cursor(cursor)
                response = self._request("POST", continue_url, what, json={cursor_param: cursor})

        if p.style in (NEXT_URL, LINK_HEADER):
            params = dict(fixed)
            if p.limit_param:
                params[p.limit_param] = size
            if resume is not None:
                current = self._next_url(resume["url"], resume["url"], hosts, what)
                response = self._request("GET", current, what)
            else:
                response = request(url, params, body)
                current = response.url or url
            while True:
                data = self._json(response, what)
                records = self._records(data, endpoint, what)
                check_repeat(records)
                if records:
                    self.resume_state = _attempt(lambda: self._link_state(
                        response, data, p, current, hosts, what))
                    yield records
                if p.style == LINK_HEADER:
                    link = (response.links.get("next") or {}).get("url") or None
                else:
                    link = self._token(data, p.cursor_path or "next", what)
                if p.has_more_path:
                    if not self._flag(data, p.has_more_path, what):
                        return
                    if link is None:
                        raise ConnectorError("malformed", f"{what}: a page says there is more "
                                                          f"but carries no next link")
                elif link is None or not records:
                    return
                target = self._next_url(current, link, hosts, what)
                check_cursor(target)
                response = self._request("GET", target, what)
                current = target

        raise ConnectorError("config", f"{what}: unknown pagination style {p.style!r}")

    def _link_state(self, response, data, p, current: str, hosts: set[str], what: str) -> dict:
        """The resume state after a NEXT_URL / LINK_HEADER page: the next page's URL."""
        if p.style == LINK_HEADER:
            link = (response.links.get("next") or {}).get("url") or None
        else:
            link = self._token(data, p.cursor_path or "next", what)
        if p.has_more_path and not self._flag(data, p.has_more_path, what):
            return {"done": True}
        if link is None:
            return {"done": True}
        return {"url": self._next_url(current, link, hosts, what)}

    # ------------------------------------------------------------------ HTTP

    def _request(self, method: str, url: str, what: str, *, params=None, json=None,
                 headers: Mapping[str, str] | None = None, stream: bool = False) -> requests.Response:
        """One platform call with its retries; answers a 2xx response (streamed when asked)."""
        attempt = 0
        refreshed = False
        redirects = 0
        while True:
            self._refresh_if_expiring()
            all_headers = {"Accept": "application/json", "User-Agent": USER_AGENT,
                           **self._auth_headers(what), **(headers or {})}
            auth = self._basic_auth(what)
            try:
                self.requests += 1
                response = self.session.request(method, url, params=params, json=json,
                                                headers=all_headers, auth=auth, timeout=TIMEOUT,
                                                stream=stream, allow_redirects=False)
            except (requests.exceptions.InvalidHeader, UnicodeError):
                raise ConnectorError("config", f"{what}: a credential is not a valid header value") from None
            except (requests.ConnectionError, requests.Timeout,
                    requests.exceptions.ChunkedEncodingError) as error:
                if attempt >= self.max_retries:
                    raise ConnectorError("network", f"{self.platform.name} did not answer "
                                                    f"({type(error).__name__})") from None
                self.sleep(self._backoff(attempt))
                attempt += 1
                continue
            except requests.RequestException as error:
                raise ConnectorError("network", f"{self.platform.name}: the request failed "
                                                f"({type(error).__name__})") from None
            status = response.status_code
            if 200 <= status < 300:
                return response
            if status in (301, 302, 303, 307, 308) and response.headers.get("Location"):
                # Followed here so the new URL passes through urls.rewrite and an auth header
                # never goes to another host (a download's signed URL).
                response.close()
                redirects += 1
                if redirects > MAX_REDIRECTS:
                    raise ConnectorError("server", f"{what}: too many redirects", status)
                target = urljoin(url, response.headers["Location"])
                if urlsplit(target).scheme not in ("http", "https"):
                    raise ConnectorError("malformed", f"{what}: a redirect to a non-HTTP URL", status)
                rewritten = urls.rewrite(self.platform.id, target)
                if urlsplit(rewritten).netloc != urlsplit(url).netloc:
                    headers = {k: v for k, v in (headers or {}).items() if k.lower() != "authorization"}
                    return self._plain_get(rewritten, what, headers, stream, redirects)
                url, params = rewritten, None
                if status == 303 or (status in (301, 302) and method == "POST"):
                    method, json = "GET", None
                continue
            limited_403 = _rate_limit_403(response)
            response.close()
            if status == 401 and not refreshed and self._can_refresh():
                refreshed = True
                self._refresh()
                continue
            if status in (401, 403) and not limited_403:
                raise ConnectorError("auth", f"{self.platform.name} refused the credentials "
                                             f"(HTTP {status})", status)
            if status in (403, 429) or status >= 500:
                kind = "server" if status >= 500 else "rate_limited"
                if attempt >= self.max_retries:
                    raise ConnectorError(kind, f"{self.platform.name} answered HTTP {status} "
                                               f"after {attempt + 1} attempts", status)
                delay = self._retry_after(response)
                if delay is not None and delay > self.max_wait:
                    raise ConnectorError(kind, f"{self.platform.name} asks to wait {int(delay)} s "
                                               f"(HTTP {status})", status)
                self.sleep(delay if delay is not None else self._backoff(attempt))
                attempt += 1
                continue
            raise ConnectorError("server", f"{what}: the platform answered HTTP {status}", status)

    def _plain_get(self, url: str, what: str, headers: Mapping[str, str], stream: bool,
                   redirects: int) -> requests.Response:
        """A redirect to another host (a signed download URL): no platform credentials."""
        attempt = 0
        while True:
            try:
                self.requests += 1
                response = self.session.get(url, headers={"User-Agent": USER_AGENT, **headers},
                                            timeout=TIMEOUT, stream=stream, allow_redirects=False)
            except (requests.ConnectionError, requests.Timeout) as error:
                if attempt >= self.max_retries:
                    raise ConnectorError("network", f"{self.platform.name} did not answer "
                                                    f"({type(error).__name__})") from None
                self.sleep(self._backoff(attempt))
                attempt += 1
                continue
            status = response.status_code
            if 200 <= status < 300:
                return response
            response.close()
            if status in (301, 302, 303, 307, 308) and response.headers.get("Location") \
                    and redirects < MAX_REDIRECTS:
                redirects += 1
                url = urls.rewrite(self.platform.id, urljoin(url, response.headers["Location"]))
                continue
            if (status == 429 or status >= 500) and attempt < self.max_retries:
                delay = self._retry_after(response)
                self.sleep(delay if delay is not None and delay <= self.max_wait
                           else self._backoff(attempt))
                attempt += 1
                continue
            kind = "auth" if status in (401, 403) else "rate_limited" if status == 429 else "server"
            raise ConnectorError(kind, f"{self.platform.name} answered HTTP {status} for "
                                       f"a file download", status)

    def _backoff(self, attempt: int) -> float:
        return self.rng.uniform(0.0, min(BACKOFF_CAP, BACKOFF_BASE * (2 ** attempt)))

    def _retry_after(self, response: requests.Response) -> float | None:
        value = (response.headers.get("Retry-After") or "").strip()
        if not value:
            return None
        try:
            seconds = float(value)
        except ValueError:
            try:
                when = email.utils.parsedate_to_datetime(value)
            except (TypeError, ValueError, IndexError):
                return None
            if when is None:
                return None
            seconds = when.timestamp() - self.clock()
        if seconds != seconds:  # NaN
            return None
        return max(0.0, seconds)

    # ------------------------------------------------------------------ credentials

    def _values(self) -> dict:
        return {**self.settings, **self.credentials}

    def _auth_headers(self, what: str) -> dict:
        values = self._values()
        return {name: templates.fill_header(template, values, what)
                for name, template in self.platform.auth_header.items()
                if templates.split_basic(str(template)) is None}

    def _basic_auth(self, what: str) -> tuple[bytes, bytes] | None:
        for template in self.platform.auth_header.values():
            parts = templates.split_basic(str(template))
            if parts is not None:
                values = self._values()
                return (templates.fill(parts[0], values, what).encode("utf-8"),
                        templates.fill(parts[1], values, what).encode("utf-8"))
        return None

    def _can_refresh(self) -> bool:
        oauth = self.platform.oauth
        return bool(self.platform.auth == "oauth2" and oauth is not None and oauth.refreshes
                    and self.credentials.get("refresh_token"))

    def _refresh_if_expiring(self) -> None:
        expires_at = self.credentials.get("expires_at")
        if isinstance(expires_at, bool) or not isinstance(expires_at, (int, float)):
            return
        if expires_at - self.clock() < REFRESH_MARGIN and self._can_refresh():
            self._refresh()

    def _refresh(self) -> None:
        client_id, client_secret = oauth_client.client_credentials(self.platform.id)
        new = oauth_client.refresh_tokens(self.platform, self.credentials, client_id,
                                          client_secret, session=self.session, clock=self.clock)
        self.credentials = dict(new)
        if self.on_credentials_refreshed is not None:
            self.on_credentials_refreshed(dict(new))

    # ------------------------------------------------------------------ pages

    def _endpoint(self, name: str) -> Endpoint:
        try:
            return self.platform.endpoint(name)
        except KeyError:
            raise ConnectorError("config", f"{self.platform.name} has no endpoint {name!r}") from None

    def _download_endpoint(self, name: str | None) -> Endpoint:
        if name is not None:
            endpoint = self._endpoint(name)
            if endpoint.download_path:
                return endpoint
        for endpoint in self.platform.endpoints:
            if endpoint.files and endpoint.download_path:
                return endpoint
        raise ConnectorError("config", f"{self.platform.name} has no file downloads")

    def _what(self, endpoint: Endpoint) -> str:
        return f"{self.platform.name} {endpoint.name}"

    def _url(self, base: str, path: str, values: Mapping[str, Any], what: str) -> str:
        if path.startswith(("http://", "https://")):
            url = templates.fill(path, values, what, encode=True)
        else:
            root = templates.fill(base, values, what, encode=True)
            filled = templates.fill(path, values, what, encode=True)
            url = root.rstrip("/") + "/" + filled.lstrip("/") if filled else root
        return urls.rewrite(self.platform.id, url)

    def _hosts(self, url: str) -> set[str]:
        """The hosts a next-page URL may name: the endpoint's, before and after rewriting."""
        values = self._values()
        hosts = {urlsplit(url).netloc.lower()}
        for base in (self.platform.base_url, self.platform.content_base_url):
            if base:
                try:
                    hosts.add(urlsplit(templates.fill(base, values, "", encode=True)).netloc.lower())
                except ConnectorError:
                    pass
        return hosts

    def _next_url(self, current: str, link: str, hosts: set[str], what: str) -> str:
        target = urljoin(current, link)
        parts = urlsplit(target)
        if parts.scheme not in ("http", "https") or parts.netloc.lower() not in hosts:
            raise ConnectorError("malformed", f"{what}: the next-page link points to another host")
        return urls.rewrite(self.platform.id, target)

    def _json(self, response: requests.Response, what: str) -> Any:
        try:
            return response.json()
        except ValueError:
            raise ConnectorError("malformed", f"{what}: a page is not JSON",
                                 response.status_code) from None
        finally:
            response.close()

    def _records(self, data: Any, endpoint: Endpoint, what: str, single: bool = False) -> list:
        records = templates.lookup(data, endpoint.records_path)
        if records is MISSING:
            raise ConnectorError("malformed", f"{what}: a page has no {endpoint.records_path!r}")
        if single and isinstance(records, dict):
            return [records]
        if not isinstance(records, list):
            raise ConnectorError("malformed", f"{what}: the records of a page are not a list")
        if not all(isinstance(record, dict) for record in records):
            raise ConnectorError("malformed", f"{what}: a record is not an object")
        return records

    def _total(self, data: Any, path: str | None, what: str) -> int | None:
        if not path:
            return None
        total = templates.lookup(data, path)
        if isinstance(total, str) and total.isdigit():
            total = int(total)
        if isinstance(total, bool) or not isinstance(total, int) or total < 0:
            raise ConnectorError("malformed", f"{what}: a page has no valid total ({path!r})")
        return total

    def _flag(self, data: Any, path: str, what: str) -> bool:
        flag = templates.lookup(data, path)
        if not isinstance(flag, bool):
            raise ConnectorError("malformed", f"{what}: a page has no true/false {path!r}")
        return flag

    def _token(self, data: Any, path: str, what: str) -> str | None:
        token = templates.lookup(data, path)
        if token is MISSING or token is None or token == "":
            return None
        if isinstance(token, bool) or not isinstance(token, (str, int)):
            raise ConnectorError("malformed", f"{what}: the cursor {path!r} is not text")
        return str(token)

    def _id(self, record: Mapping[str, Any], field: str, what: str) -> str:
        value = templates.lookup(record, field)
        if isinstance(value, bool) or not isinstance(value, (str, int)) or value == "":
            raise ConnectorError("malformed", f"{what}: a record has no {field!r}")
        return str(value)


RATE_LIMIT_REASONS = (b"rateLimitExceeded", b"userRateLimitExceeded")


def _rate_limit_403(response: requests.Response) -> bool:
    """Google answers some rate limits with 403 and a reason of ``rateLimitExceeded`` or
    ``userRateLimitExceeded``: those are retried like a 429, not refused credentials."""
    if response.status_code != 403:
        return False
    try:
        body = next(response.iter_content(65536), b"") or b""   # at most 64 KiB
    except (requests.RequestException, OSError, RuntimeError):
        return False
    return any(reason in body for reason in RATE_LIMIT_REASONS)


def _attempt(make: Callable[[], dict]) -> dict | None:
    """A resume state, or None when the page does not allow one (the walk itself then
    reports what is wrong with the page when it reads it)."""
    try:
        return make()
    except ConnectorError:
        return None


def _token_state(token: str | None, more: bool) -> dict:
    return {"cursor": token} if token is not None and more else {"done": True}


def _derived(platform: Platform, settings: dict, credentials: Mapping[str, Any]) -> dict:
    """The settings with the catalog's derived ones (Mailchimp's data centre...)."""
    try:
        from handlers.shared.connectors.platforms import derive_settings
    except ImportError:
        return settings
    return derive_settings(platform, settings, credentials)


def _matches(entry: Mapping[str, Any], where: Mapping[str, Any]) -> bool:
    for key, expected in where.items():
        value = entry.get(key, MISSING)
        if value is MISSING:
            value = templates.lookup(entry, key)
        allowed = expected if isinstance(expected, (list, tuple, set, frozenset)) else (expected,)
        if value not in allowed:
            return False
    return True
