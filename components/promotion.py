"""The promotion gate: a stage runs only code its upstream stage has run (DESIGN section 3).

``Pulumi.main.yaml`` names its upstream stack in ``listbackup:promoteFrom``. Through a
``pulumi.StackReference`` the gate reads that stack's ``artifacts`` output (code digests
keyed ``{service}/{function}`` and ``layer``) and compares it with this program's own
digests once every function has been declared (:meth:`PromotionGate.seal`, called at the
end of ``__main__.py``).

Every function's ``code`` and the layer's ``code`` are wrapped by :meth:`guard`: they
resolve only after the verdict. So when the gate fails, *no* function (and no layer) is
created or updated - an exception raised inside one resource's apply would stop only that
resource. The verdict:

- same digests: pass;
- differences during ``pulumi up``: fail, naming every function (and the layer) whose code
  the upstream stage has not run - unless ``listbackup:allowUnpromoted`` is set, which
  turns it into a warning;
- differences during a preview: a warning with the same list, so pull-request previews of
  main stay green;
- the upstream stack or its ``artifacts`` output missing or unreadable: a clear error during
  ``pulumi up`` (or a warning with ``allowUnpromoted``), a warning during a preview.

A stage without ``promoteFrom`` has no gate: :meth:`guard` hands the archive through.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any, Mapping

import pulumi


class PromotionError(Exception):
    """The update would run code the upstream stage has not run."""


def differences(own: Mapping[str, str], upstream: Mapping[str, Any]) -> list[str]:
    """The artifact keys (``{service}/{function}`` or ``layer``) whose digest the upstream
    stage does not have, sorted."""
    return sorted(key for key, digest in own.items() if upstream.get(key) != digest)


def describe(names: list[str], upstream: str) -> str:
    shown = ", ".join(names)
    return (f"{len(names)} artifact(s) differ from what stack {upstream} runs: {shown}. "
            f"Deploy this commit to {upstream} first (promotion order), or set "
            f"listbackup:allowUnpromoted to override.")


class PromotionGate:
    def __init__(self, upstream: str, *, allow_unpromoted: bool, artifacts: dict[str, str],
                 opts: pulumi.ResourceOptions | None = None) -> None:
        self.upstream = upstream
        self.allow_unpromoted = allow_unpromoted
        self._artifacts = artifacts          # filled in as functions are declared
        self._sealed = False
        # The program body and the event loop run in different threads: the verdict
        # waits on a future of the loop, resolved thread-safely by seal().
        self._lock = threading.Lock()
        self._waiter: tuple[asyncio.AbstractEventLoop, asyncio.Future] | None = None
        self._verdict: pulumi.Output[str] | None = None
        self.reference = pulumi.StackReference(upstream, opts=opts) if upstream else None

    @property
    def enabled(self) -> bool:
        return self.reference is not None

    # ------------------------------------------------------------------ declaring

    def guard(self, value: Any) -> Any:
        """``value`` (a function's or the layer's code), available only once the gate has
        passed; as is when there is no gate."""
        if not self.enabled:
            return value
        return pulumi.Output.from_input(self._after_verdict(value))

    def seal(self) -> None:
        """Every function is declared: the comparison may run."""
        with self._lock:
            self._sealed = True
            waiter = self._waiter
        if waiter is not None:
            loop, future = waiter
            loop.call_soon_threadsafe(lambda: future.done() or future.set_result(None))

    async def _until_sealed(self) -> None:
        loop = asyncio.get_running_loop()
        with self._lock:
            if self._sealed:
                return
            future = loop.create_future()
            self._waiter = (loop, future)
        await future

    # ------------------------------------------------------------------ deciding

    async def _after_verdict(self, value: Any) -> Any:
        await self.verdict().future()
        return value

    def verdict(self) -> pulumi.Output[str]:
        """"pass", "warned" or "allowed" - or the PromotionError that fails the update.
        Computed once; every guarded input waits on the same Output."""
        if self._verdict is None:
            self._verdict = pulumi.Output.from_input(self._decide())
        return self._verdict

    async def _decide(self) -> str:
        # the program body may still be declaring functions: wait for the last one
        await self._until_sealed()
        preview = pulumi.runtime.is_dry_run()
        try:
            upstream = await self.reference.get_output("artifacts").future()
        except Exception as error:   # noqa: BLE001 - a missing stack must not crash the program
            return self._missing(f"stack {self.upstream} cannot be read ({error})", preview)
        if not isinstance(upstream, Mapping) or not upstream:
            return self._missing(f"stack {self.upstream} has no artifacts output", preview)
        names = differences(self._artifacts, upstream)
        if not names:
            return "pass"
        message = describe(names, self.upstream)
        if preview:
            pulumi.log.warn(f"promotion gate (preview): {message}")
            return "warned"
        if self.allow_unpromoted:
            pulumi.log.warn(f"promotion gate overridden by allowUnpromoted: {message}")
            return "allowed"
        raise PromotionError(f"promotion gate: {message}")

    def _missing(self, problem: str, preview: bool) -> str:
        message = (f"{problem}; main may only run code that {self.upstream} has run. "
                   f"Deploy {self.upstream} first, check listbackup:promoteFrom, or set "
                   f"listbackup:allowUnpromoted to override.")
        if preview:
            pulumi.log.warn(f"promotion gate (preview): {message}")
            return "warned"
        if self.allow_unpromoted:
            pulumi.log.warn(f"promotion gate overridden by allowUnpromoted: {message}")
            return "allowed"
        raise PromotionError(f"promotion gate: {message}")
