"""Running a load test over several worker processes and merging them exactly.

Each worker (a spawned process: grpcio does not survive ``fork``) connects, says it is ready,
waits for the common start time, runs its share (``LoadSpec.share``) and sends back its
report; the parent merges the reports through their histograms (``metrics.merge``), the same
path ``loadtest merge`` takes for files. Closed seconds stream to the parent as they end, so
the live progress shows every worker's calls.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import queue
import signal
import threading
import time
from collections import defaultdict
from typing import Any

from .errors import LoadTestError
from .metrics import Bucket, merge
from .report.jsonfmt import report_from_dict, report_to_dict, second_from_dict, second_to_dict
from .result import Report, Second
from .runner import LoadSpec, ProgressCallback, preflight, run_async, run_worker

READY_TIMEOUT_S = 60.0
START_DELAY_S = 0.2  # between the last worker ready and the common start


def run(spec: LoadSpec, *, progress: ProgressCallback | None = None) -> Report:
    """Run ``spec`` to the end and return its report (blocking; spawns ``spec.worker_count``).

    ``progress`` receives each second, merged over workers, as it closes. The first Ctrl-C
    (SIGINT) ends the run early with a report of what was measured; a second one aborts.
    Raises TargetUnreachable or LoadTestError before any load is sent.
    """
    if spec.worker_count == 1:
        return asyncio.run(_run_stoppable(spec, progress))
    asyncio.run(preflight(spec))
    return _Pool(spec, progress).run()


async def _run_stoppable(spec: LoadSpec, progress: ProgressCallback | None) -> Report:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    main_thread = threading.current_thread() is threading.main_thread()

    def interrupted() -> None:
        stop.set()
        loop.remove_signal_handler(signal.SIGINT)  # the next Ctrl-C aborts

    if main_thread:
        loop.add_signal_handler(signal.SIGINT, interrupted)
    try:
        return await run_async(spec, progress=progress, stop=stop)
    finally:
        if main_thread:
            loop.remove_signal_handler(signal.SIGINT)


class _Pool:
    """The parent's side of a multi-process run."""

    def __init__(self, spec: LoadSpec, progress: ProgressCallback | None) -> None:
        self.spec = spec
        self.progress = progress
        self.ctx = multiprocessing.get_context("spawn")
        self.events: Any = self.ctx.Queue()
        self.go: Any = self.ctx.Queue()
        self.halt: Any = self.ctx.Event()  # set on Ctrl-C: workers stop early and report
        self.seconds: dict[int, list[Second]] = defaultdict(list)
        self.reports: dict[int, Report] = {}

    def run(self) -> Report:
        count = self.spec.worker_count
        live = self.progress is not None
        procs = [
            self.ctx.Process(
                target=_worker_main,
                args=(
                    self.spec.share(i, count),
                    i,
                    i / count,
                    self.events,
                    self.go,
                    self.halt,
                    live,
                ),
                daemon=True,
            )
            for i in range(count)
        ]
        for proc in procs:
            proc.start()
        previous = self._on_interrupt()
        try:
            self._wait_ready(procs)
            start = time.time() + START_DELAY_S
            for _ in procs:
                self.go.put(start)
            while len(self.reports) < count:
                self._handle(self._next(procs))
        except BaseException:
            for proc in procs:  # one worker failed, or Ctrl-C: the others stop now
                proc.terminate()
            raise
        finally:
            if previous is not None:
                signal.signal(signal.SIGINT, previous)
            for proc in procs:
                proc.join(5)
                if proc.is_alive():
                    proc.kill()
        self._flush_partial_seconds()
        reports = [self.reports[i] for i in range(count)]
        return merge(reports, self.spec.config(), ())

    def _on_interrupt(self) -> Any:
        """First Ctrl-C: the workers stop early and report; the second aborts. Returns the
        handler to restore (None off the main thread, where signals cannot be handled)."""
        if threading.current_thread() is not threading.main_thread():
            return None

        def interrupted(signum: int, frame: Any) -> None:
            if self.halt.is_set():
                raise KeyboardInterrupt
            self.halt.set()

        return signal.signal(signal.SIGINT, interrupted)

    def _next(self, procs: list[Any]) -> tuple[Any, ...]:
        """The next event from any worker; a worker that died without a word is an error."""
        while True:
            try:
                event: tuple[Any, ...] = self.events.get(timeout=1.0)
                return event
            except queue.Empty:
                dead = [
                    i for i, p in enumerate(procs) if not p.is_alive() and i not in self.reports
                ]
                if dead:
                    code = procs[dead[0]].exitcode
                    raise RuntimeError(
                        f"loadtest worker {dead[0]} died (exit code {code})"
                    ) from None

    def _wait_ready(self, procs: list[Any]) -> None:
        ready = 0
        deadline = time.monotonic() + READY_TIMEOUT_S
        while ready < len(procs):
            if time.monotonic() > deadline:
                raise RuntimeError("loadtest workers did not start in time")
            event = self._next(procs)
            if event[0] == "ready":
                ready += 1
            else:
                self._handle(event)

    def _handle(self, event: tuple[Any, ...]) -> None:
        kind, index, payload = event
        if kind == "error":
            raise LoadTestError(f"worker {index}: {payload}")
        if kind == "report":
            self.reports[index] = report_from_dict(payload)
        elif kind == "second" and self.progress is not None:
            second = second_from_dict(payload)
            parts = self.seconds[second.second]
            parts.append(second)
            if len(parts) == self.spec.worker_count:
                del self.seconds[second.second]
                self.progress(_merge_seconds(parts))

    def _flush_partial_seconds(self) -> None:
        """Seconds that not every worker reached (the run's last): report what there is."""
        if self.progress is not None:
            for key in sorted(self.seconds):
                self.progress(_merge_seconds(self.seconds.pop(key)))


def _merge_seconds(parts: list[Second]) -> Second:
    bucket = Bucket.thaw(parts[0])
    for part in parts[1:]:
        bucket.add(Bucket.thaw(part))
    return bucket.freeze(parts[0].second, parts[0].unix - parts[0].second)


def _worker_main(
    spec: LoadSpec, index: int, phase: float, events: Any, go: Any, halt: Any, live: bool
) -> None:
    """A worker process: run this share and send back the report (or one error line)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    try:
        report = asyncio.run(_worker(spec, index, phase, events, go, halt, live))
        events.put(("report", index, report_to_dict(report)))
    except Exception as err:
        events.put(("error", index, f"{type(err).__name__}: {err}"))


async def _worker(
    spec: LoadSpec, index: int, phase: float, events: Any, go: Any, halt: Any, live: bool
) -> Report:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()

    def watch_halt() -> None:  # the parent's Ctrl-C, seen from a thread
        halt.wait()
        loop.call_soon_threadsafe(stop.set)

    threading.Thread(target=watch_halt, daemon=True).start()

    async def ready() -> float:
        events.put(("ready", index, None))
        start: float = await asyncio.get_running_loop().run_in_executor(None, go.get)
        return start

    def progress(second: Second) -> None:
        events.put(("second", index, second_to_dict(second)))

    metrics = await run_worker(
        spec, phase=phase, ready=ready, progress=progress if live else None, stop=stop
    )
    return metrics.freeze(spec.config())
