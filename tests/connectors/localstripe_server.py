"""localstripe (a stateful fake Stripe API, PyPI ``localstripe``) served on 127.0.0.1 for
the tests, in a background thread with its own asyncio event loop.

localstripe's own command binds every interface and pickles its state to /tmp after each
write; here its aiohttp ``app`` is served with an ``AppRunner`` on a loopback port and
``Store.dump_to_disk`` does nothing (see ../shared/NOTES.md). Its ``app`` is a module
global, so one server serves the whole test process: :func:`start` starts it once and
answers its base URL (``http://127.0.0.1:<port>``) to every caller (tests/connectors and
tests/e2e alike); :func:`stop` ends it. localstripe accepts any secret key starting with
``sk_``.
"""

from __future__ import annotations

import contextlib
import asyncio
import threading

_lock = threading.Lock()
_state: dict = {}


def _loop():
    """The process's localstripe event loop and runner, in a daemon thread (created once:
    localstripe's ``app`` cannot be bound to a second loop)."""
    if "loop" in _state:
        return _state["loop"], _state["runner"]
    from aiohttp import web
    from localstripe import resources

    resources.Store.dump_to_disk = lambda self: None       # no state file under /tmp
    from localstripe.server import app

    loop = asyncio.new_event_loop()
    threading.Thread(target=loop.run_forever, name="localstripe", daemon=True).start()
    runner = web.AppRunner(app, access_log=None)
    asyncio.run_coroutine_threadsafe(runner.setup(), loop).result(15)
    _state.update(loop=loop, runner=runner)
    return loop, runner


def start(timeout: float = 15.0) -> str:
    """Start localstripe on a loopback port if it is not listening; answer its base URL."""
    from aiohttp import web

    with _lock:
        if "url" in _state:
            return _state["url"]
        loop, runner = _loop()

        async def listen():
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            return site

        site = asyncio.run_coroutine_threadsafe(listen(), loop).result(timeout)
        port = site._server.sockets[0].getsockname()[1]
        _state.update(site=site, url=f"http://127.0.0.1:{port}")
        return _state["url"]


def stop() -> None:
    """Stop listening (the objects stay in localstripe's store until :func:`flush`)."""
    with _lock:
        site = _state.pop("site", None)
        _state.pop("url", None)
        if site is not None:
            asyncio.run_coroutine_threadsafe(site.stop(), _state["loop"]).result(15)


def flush(url: str) -> None:
    """Forget every object localstripe holds."""
    import requests

    requests.delete(f"{url}/_config/data", timeout=5).raise_for_status()


@contextlib.contextmanager
def tenant(prefix: str):
    """A flushed localstripe (started if needed, stopped after if this started it) and a
    stripe client with a fresh fake key: yields (url, key, client)."""
    import secrets

    import stripe as stripe_lib

    already = "url" in _state
    url = start()
    flush(url)
    key = f"sk_test_{prefix}{secrets.token_hex(12)}"
    try:
        yield url, key, stripe_lib.StripeClient(key, base_addresses={"api": url})
    finally:
        if not already:
            stop()
