"""A real memory cgroup (design §4, entering level 3 before a hard limit): a server whose budget
(1024 MiB) is far above its cgroup's limit (160 MiB, swap off) grows at 20 MiB/s through
non-core calls, reaches level 3 and sheds before the kernel's OOM killer acts; the same server
in dry run (nothing shed) is OOM-killed, so the test can fail. Python and Go alike.

Drills (``make drills``): each run takes 5 to 10 s. Skipped, with the reason, where no memory
cgroup hierarchy is writable (not root, or a read-only /sys/fs/cgroup).
"""

from __future__ import annotations

import select
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import pytest

from .cgroup_support import MemoryCgroup, NoCgroup
from .go_support import build

ROOT = Path(__file__).resolve().parent.parent
MIB = 1024 * 1024
LIMIT = 160 * MIB
RATE = 20  # calls per second, 1 MiB each
AFTER_SHED = 3.0  # seconds of calls still made once shedding started

pytestmark = pytest.mark.drill


@dataclass
class Run:
    """What the driver saw."""

    codes: Counter[str] = field(default_factory=Counter)
    levels: set[int] = field(default_factory=set)
    usage_at_first_shed: str = ""
    exit_code: int | None = None
    oom_kills: int = 0


def read_port(process: subprocess.Popen[str], seconds: float) -> int:
    assert process.stdout is not None
    ready, _, _ = select.select([process.stdout], [], [], seconds)
    line = process.stdout.readline() if ready else ""
    if not line.strip().isdigit():
        process.kill()
        raise AssertionError(f"the server did not announce a port: {line!r}")
    return int(line)


def drive(port: int, process: subprocess.Popen[str], deadline: float) -> Run:
    """Call Eat at RATE per second until the server dies, or AFTER_SHED s after the first
    shed, or the deadline."""
    run = Run()
    shed_at = None
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        eat = channel.unary_unary("/grow.Grow/Eat")
        start = time.monotonic()
        for n in range(10**6):
            now = time.monotonic()
            if process.poll() is not None or now > deadline:
                break
            if shed_at is not None and now - shed_at > AFTER_SHED:
                break
            intended = start + n / RATE
            if intended > now:  # pacing the load, not waiting for an event
                time.sleep(intended - now)
            try:
                _, call = eat.with_call(b"", timeout=2)
                code, trailers = grpc.StatusCode.OK, call.trailing_metadata()
            except grpc.RpcError as err:
                code, trailers = err.code(), err.trailing_metadata()
            run.codes[code.name] += 1
            keys = dict(trailers or ())
            if "x-memory-level" in keys:
                run.levels.add(int(keys["x-memory-level"]))
            if code == grpc.StatusCode.RESOURCE_EXHAUSTED and shed_at is None:
                shed_at = time.monotonic()
                run.usage_at_first_shed = str(keys.get("x-memory-usage", ""))
    return run


@pytest.fixture(scope="module")
def go_bin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The Go binaries, growserver among them (skip without Go; fail under
    MEMCONTRACT_REQUIRE_GO=1)."""
    return build(tmp_path_factory.mktemp("gobin"))


def binary(language: str, request: pytest.FixtureRequest) -> Path | None:
    if language == "python":
        return None
    path: Path = request.getfixturevalue("go_bin") / "growserver"
    assert path.is_file(), "go build ./cmd/... made no growserver"
    return path


def server_argv(language: str, dry_run: bool, go_binary: Path | None) -> list[str]:
    if language == "python":
        return [sys.executable, "-m", "tests.growserver", *(["--dry-run"] if dry_run else [])]
    assert go_binary is not None
    return [str(go_binary), *(["-dry-run"] if dry_run else [])]


def run_in_cgroup(language: str, dry_run: bool, go_binary: Path | None = None) -> Run:
    try:
        with MemoryCgroup.create(LIMIT) as cgroup:
            process = cgroup.popen(
                server_argv(language, dry_run, go_binary), stdout=subprocess.PIPE, cwd=ROOT
            )
            try:
                port = read_port(process, 60)
                run = drive(port, process, time.monotonic() + 30)
                run.exit_code = process.poll()
                run.oom_kills = cgroup.oom_kills()
            finally:
                if process.poll() is None:
                    process.kill()
                process.wait(30)
            return run
    except NoCgroup as e:
        pytest.skip(f"no memory cgroup can be created here: {e}")


@pytest.mark.parametrize("language", ["python", "go"])
def test_a_budget_above_the_cgroup_limit_sheds_before_the_oom_killer(
    language: str, request: pytest.FixtureRequest
) -> None:
    run = run_in_cgroup(language, dry_run=False, go_binary=binary(language, request))
    assert run.exit_code is None, f"the server died ({run.exit_code}): {run}"
    assert run.oom_kills in (0, -1), run
    assert run.codes["RESOURCE_EXHAUSTED"] >= 1 and 3 in run.levels, run
    # Entered at once, on the margin, well before the ladder's 95 % (+ 3 confirmations).
    assert float(run.usage_at_first_shed.rstrip("%")) < 90, run


@pytest.mark.parametrize("language", ["python", "go"])
def test_the_same_server_in_dry_run_is_oom_killed(
    language: str, request: pytest.FixtureRequest
) -> None:
    run = run_in_cgroup(language, dry_run=True, go_binary=binary(language, request))
    assert run.exit_code == -signal.SIGKILL, run  # the negative control: the kernel killed it
    assert run.codes["RESOURCE_EXHAUSTED"] == 0, run
