"""The worker process's end: an engine kept resident in a Ray actor.

:class:`EngineActor` is a plain class (so nothing here imports Ray); :mod:`.pool` turns it into a
Ray actor with ``ray.remote(...)`` when a pool starts. Its ``run`` is a generator: Ray streams
each yielded item back (``num_returns="streaming"``): the run's events in order, then the
:class:`~stablenew_qt.core.workers.RemoteRunResult`. The actor runs with ``max_concurrency=2`` so
``cancel`` reaches it while ``run`` is busy.
"""

from __future__ import annotations

import queue
import socket
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING

from ..core.config import RunConfig
from ..core.errors import ConfigError
from ..core.events import RunEvent, WorkerInfo, WorkerState
from ..core.workers import RemoteRunResult

if TYPE_CHECKING:
    from ..core.worker_side import WorkerRuntime
    from ..engine.executor import EngineSettings

_DONE = object()


class EngineActor:
    """One worker: its engine (models stay loaded between jobs) and one job at a time."""

    def __init__(self, worker_id: str, settings: EngineSettings, require_models_dir: bool = False) -> None:
        self.worker_id = worker_id
        self.settings = settings
        self.require_models_dir = require_models_dir
        self._runtime: WorkerRuntime | None = None

    def start(self) -> WorkerInfo:
        """Build the engine (imports, device, model list); raises ConfigError with one line when
        this node cannot serve (no models folder, no CUDA)."""
        from ..core.worker_side import WorkerRuntime
        from ..engine.executor import DiffusersExecutor

        node = socket.gethostname()
        if self.require_models_dir and not self.settings.models_dir.is_dir():
            raise ConfigError(
                f"no models folder {self.settings.models_dir} on node {node}: copy the models there "
                "or give the workers' models folder"
            )
        runtime = WorkerRuntime(DiffusersExecutor(self.settings), self.worker_id, node=node)
        runtime.warm_up()
        self._runtime = runtime
        return runtime.info()

    def info(self) -> WorkerInfo:
        runtime = self._require()
        return runtime.info()

    def run(
        self, config: RunConfig, save_intermediates: bool = False
    ) -> Iterator[list[RunEvent] | RemoteRunResult]:
        """Run ``config``: yields its events as they happen (a list of those ready together), then
        its RemoteRunResult."""
        runtime = self._require()
        items: queue.Queue[object] = queue.Queue()
        outcome: list[RemoteRunResult | BaseException] = []

        def work() -> None:
            try:
                outcome.append(runtime.run(config, items.put, save_intermediates=save_intermediates))
            except BaseException as exc:  # reported to the caller below, not lost in the thread
                outcome.append(exc)
            finally:
                items.put(_DONE)

        thread = threading.Thread(target=work, name=f"stablenew-{self.worker_id}-job", daemon=True)
        thread.start()
        done = False
        while not done:
            # Every event ready now goes back as one streamed item: one round trip for a burst of
            # progress, and no wait added for a single event.
            batch: list[RunEvent] = []
            item = items.get()
            while True:
                if item is _DONE:
                    done = True
                    break
                batch.append(item)  # type: ignore[arg-type]
                try:
                    item = items.get_nowait()
                except queue.Empty:
                    break
            if batch:
                yield batch
        thread.join()
        if isinstance(outcome[0], BaseException):
            raise outcome[0]
        yield outcome[0]

    def cancel(self) -> None:
        if self._runtime is not None:
            self._runtime.cancel()

    def _require(self) -> WorkerRuntime:
        if self._runtime is None:
            raise RuntimeError(f"worker {self.worker_id} has not started")
        return self._runtime


def failed_info(worker_id: str, message: str) -> WorkerInfo:
    return WorkerInfo(worker_id=worker_id, state=WorkerState.FAILED, message=message)
