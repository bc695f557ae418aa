"""One owner for every long-lived background task of the inspector.

A task started here is never fire-and-forget: when it crashes, its traceback is logged and it
is started again after a growing pause; when it keeps crashing it is given up and the process
says it is degraded (`/api/stats`, `/metrics`, the page). At shutdown each task is asked to stop
(its own stop flag first, then cancellation) and waited for a bounded time: a task that does
not stop is named in the log and left behind, the process still exits.

Resources that are not tasks but must be let go at shutdown (the broadcaster, the worker-process
pool) are registered with a closer and closed the same bounded way, when the owner says.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import traceback
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal

log = logging.getLogger("tyk_inspector.tasks")

BACKOFF_FIRST = 0.5
BACKOFF_MAX = 30.0
GIVE_UP_AFTER = 5
"""Crashes in a row (each within HEALTHY_SECONDS of its start) after which a task is given up."""
HEALTHY_SECONDS = 60.0
"""A task that ran this long before crashing starts again from the first backoff."""
STOP_SECONDS = 5.0

State = Literal["running", "restarting", "failed", "stopped", "done"]


@dataclass
class Supervised:
    """One task as the supervisor sees it."""

    name: str
    run: Callable[[], Awaitable[None]]
    stop: Callable[[], object] | None
    """Asks the task to end by itself (sets its stop flag); cancellation follows if it does not."""
    stop_seconds: float
    state: State = "running"
    restarts: int = 0
    crashes_in_a_row: int = 0
    last_error: str | None = None
    task: asyncio.Task[None] | None = field(default=None, repr=False)

    @property
    def healthy(self) -> bool:
        return self.state in ("running", "stopped", "done")

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "state": self.state, "restarts": self.restarts, "last_error": self.last_error}


@dataclass
class _Closer:
    name: str
    close: Callable[[], Awaitable[object]]
    seconds: float


class Supervisor:
    """Starts, restarts, reports on and stops the background tasks."""

    def __init__(
        self,
        backoff_first: float = BACKOFF_FIRST,
        backoff_max: float = BACKOFF_MAX,
        give_up_after: int = GIVE_UP_AFTER,
        healthy_seconds: float = HEALTHY_SECONDS,
    ) -> None:
        self.backoff_first = backoff_first
        self.backoff_max = backoff_max
        self.give_up_after = give_up_after
        self.healthy_seconds = healthy_seconds
        self._tasks: dict[str, Supervised] = {}
        self._closers: list[_Closer] = []
        self._stopping = False

    # -- starting ---------------------------------------------------------------------------------

    def start(
        self,
        name: str,
        run: Callable[[], Awaitable[None]],
        stop: Callable[[], object] | None = None,
        stop_seconds: float = STOP_SECONDS,
    ) -> None:
        """Run `run()` as the task `name`, started again after a crash. `stop()` asks it to end by itself."""
        running = self._tasks.get(name)
        if running is not None and running.task is not None and not running.task.done():
            raise ValueError(f"a task named {name!r} is running already")
        entry = Supervised(name, run, stop, stop_seconds)
        self._tasks[name] = entry
        entry.task = asyncio.create_task(self._keep(entry), name=name)

    def on_stop(self, name: str, close: Callable[[], Awaitable[object]], seconds: float = STOP_SECONDS) -> None:
        """Close a resource (not a task) at shutdown (`close()`), waiting for it at most `seconds`."""
        self._closers.append(_Closer(name, close, seconds))

    async def _keep(self, entry: Supervised) -> None:
        backoff = self.backoff_first
        while True:
            began = time.monotonic()
            entry.state = "running"
            try:
                await entry.run()
            except asyncio.CancelledError:
                entry.state = "stopped"
                raise
            except Exception as exc:
                if self._stopping:
                    entry.state = "stopped"
                    log.warning("task %s failed while stopping: %s", entry.name, _one_line(exc))
                    return
                entry.last_error = _one_line(exc)
                if time.monotonic() - began >= self.healthy_seconds:
                    entry.crashes_in_a_row, backoff = 0, self.backoff_first
                entry.crashes_in_a_row += 1
                trace = "".join(traceback.format_exception(exc)).rstrip()
                if entry.crashes_in_a_row >= self.give_up_after:
                    entry.state = "failed"
                    log.error(
                        "task %s crashed %d times in a row and is given up: the inspector is degraded "
                        "(restart it; /api/stats says which task)\n%s",
                        entry.name,
                        entry.crashes_in_a_row,
                        trace,
                    )
                    return
                entry.state = "restarting"
                log.error("task %s crashed; starting it again in %.1f s\n%s", entry.name, backoff, trace)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self.backoff_max)
                entry.restarts += 1
                log.info("task %s started again (restart %d)", entry.name, entry.restarts)
                continue
            entry.state = "stopped" if self._stopping else "done"
            return

    # -- reporting --------------------------------------------------------------------------------

    @property
    def degraded(self) -> bool:
        """Whether a task is not doing its work: crashed and waiting to start again, or given up."""
        return any(not entry.healthy for entry in self._tasks.values())

    def health(self) -> dict[str, Any]:
        """For /api/stats and the page: degraded or not, and every task's state."""
        return {"degraded": self.degraded, "tasks": [entry.as_dict() for entry in self._tasks.values()]}

    def states(self) -> list[Supervised]:
        return list(self._tasks.values())

    # -- stopping ---------------------------------------------------------------------------------

    async def stop(self, *names: str) -> None:
        """Stop the named tasks (all of them when none is named), together, each within its bound."""
        if not names:
            self._stopping = True
        entries = [e for e in self._tasks.values() if not names or e.name in names]
        await asyncio.gather(*(self._stop_one(entry) for entry in entries))

    async def close(self, *names: str) -> None:
        """Close the named resources registered with `on_stop` (all that are left when none is named),
        in the order they were registered, each within its bound."""
        closing = [c for c in self._closers if not names or c.name in names]
        self._closers = [c for c in self._closers if c not in closing]
        for closer in closing:
            await self._close(closer)

    async def _stop_one(self, entry: Supervised) -> None:
        task = entry.task
        if task is None or task.done():
            return
        entry.state = "stopped"
        if entry.stop is not None:
            with contextlib.suppress(Exception):
                entry.stop()
            # Half the time to end by itself (its stop flag), the rest after cancellation.
            await asyncio.wait({task}, timeout=entry.stop_seconds / 2)
        if not task.done():
            task.cancel()
            await asyncio.wait({task}, timeout=entry.stop_seconds / (2 if entry.stop is not None else 1))
        if not task.done():
            # Cancellation can be lost inside a library's read; the process exits all the same.
            log.error("task %s did not stop within %g s; leaving it behind", entry.name, entry.stop_seconds)
            return
        if not task.cancelled() and task.exception() is not None:
            log.warning("task %s ended with %s", entry.name, _one_line(task.exception()))

    async def _close(self, closer: _Closer) -> None:
        try:
            await asyncio.wait_for(closer.close(), closer.seconds)
        except TimeoutError:
            log.error("%s did not close within %g s; leaving it behind", closer.name, closer.seconds)
        except Exception as exc:
            log.warning("%s failed to close: %s", closer.name, _one_line(exc))


def _one_line(exc: BaseException | None) -> str:
    return f"{type(exc).__name__}: {exc}".splitlines()[0] if exc is not None else ""
