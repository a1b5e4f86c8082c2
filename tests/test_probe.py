"""SystemProbe, cgroup resolution and GC pause tests against fixture trees built in tmp_path.

Each fixture is a dict {path under the fake root: file content}; the probe reads it through its
``root`` argument, so the code under test runs unmodified against v1, v2 and hybrid layouts.
"""

from __future__ import annotations

import gc
import json
import logging
import sys
from pathlib import Path

import psutil
import pytest

from memcontract import _cgroup
from memcontract._gcpause import GcPauseMonitor
from memcontract.probe import Probe, SystemProbe

MIB = 1024 * 1024
GIB = 1024 * MIB
SENTINEL = "9223372036854771712"  # v1 "no limit": the page counter max, page-aligned

V1_MOUNT = "35 31 0:32 {root} /sys/fs/cgroup/memory rw,relatime shared:9 - cgroup cgroup rw,memory"
V1_CPU_MOUNT = "32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu"
V2_MOUNT = "41 31 0:38 {root} {point} rw,nosuid shared:4 - cgroup2 cgroup2 rw,nsdelegate"
OTHER_MOUNT = "22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw"

V1_DIR = "sys/fs/cgroup/memory/app"
V2_DIR = "sys/fs/cgroup/app.slice/svc.service"
V2_PARENT = "sys/fs/cgroup/app.slice"

Files = dict[str, str]


def build(tmp_path: Path, files: Files) -> str:
    """Write ``files`` under ``tmp_path`` and return it, the root to give the probe."""
    for rel, content in files.items():
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)
    return str(tmp_path)


def without(files: Files, name: str) -> Files:
    """``files`` minus those whose basename is ``name``."""
    return {k: v for k, v in files.items() if Path(k).name != name}


def mountinfo(*lines: str) -> str:
    return "\n".join([OTHER_MOUNT, *lines]) + "\n"


def v1_stat(hierarchical: str | None = SENTINEL, inactive: int = 0) -> str:
    lines = [f"cache {inactive}", f"inactive_file {inactive}"]
    if hierarchical is not None:
        lines.append(f"hierarchical_memory_limit {hierarchical}")
    lines.append(f"total_inactive_file {inactive}")
    return "\n".join(lines) + "\n"


def v1_tree(limit: str, stat: str, *, proc: str = "5:cpu,memory:/app\n0::/\n") -> Files:
    return {
        "proc/self/cgroup": proc,
        "proc/self/mountinfo": mountinfo(V1_CPU_MOUNT, V1_MOUNT.format(root="/")),
        f"{V1_DIR}/memory.limit_in_bytes": limit + "\n",
        f"{V1_DIR}/memory.stat": stat,
        f"{V1_DIR}/memory.usage_in_bytes": f"{200 * MIB}\n",
    }


def v2_cgroup(directory: str, limit: str) -> Files:
    """One v2 cgroup directory with a limit and (small) usage files."""
    return {
        f"{directory}/memory.max": limit + "\n",
        f"{directory}/memory.current": f"{10 * MIB}\n",
        f"{directory}/memory.stat": "anon 10485760\ninactive_file 0\n",
    }


def v2_tree(own: str, parent: str, *, current: int = 200 * MIB, inactive: int = 0) -> Files:
    stat = f"anon {current - inactive}\nfile {inactive}\ninactive_file {inactive}\n"
    return {
        "proc/self/cgroup": "0::/app.slice/svc.service\n",
        "proc/self/mountinfo": mountinfo(V2_MOUNT.format(root="/", point="/sys/fs/cgroup")),
        "sys/fs/cgroup/cgroup.controllers": "memory\n",  # the root cgroup has no memory.max
        f"{V2_PARENT}/memory.max": parent + "\n",
        f"{V2_PARENT}/memory.current": f"{current + 10 * MIB}\n",
        f"{V2_PARENT}/memory.stat": stat,
        f"{V2_DIR}/memory.max": own + "\n",
        f"{V2_DIR}/memory.current": f"{current}\n",
        f"{V2_DIR}/memory.stat": stat,
    }


# --- cgroup resolution and limits -----------------------------------------------------------

LIMIT_CASES: dict[str, tuple[Files, int | None, int | None, str | None]] = {
    # name: (tree, version, limit bytes, directory whose limit binds)
    "v1 limit": (v1_tree(str(256 * MIB), v1_stat()), 1, 256 * MIB, V1_DIR),
    "v1 limit only hierarchical": (
        v1_tree(SENTINEL, v1_stat(hierarchical=str(128 * MIB))),
        1,
        128 * MIB,
        V1_DIR,
    ),
    "v1 smaller of both": (
        v1_tree(str(64 * MIB), v1_stat(hierarchical=str(128 * MIB))),
        1,
        64 * MIB,
        V1_DIR,
    ),
    "v1 unlimited sentinel": (v1_tree(SENTINEL, v1_stat()), 1, None, None),
    "v1 unlimited -1, no hierarchical key": (v1_tree("-1", v1_stat(None)), 1, None, None),
    "v1 controller line alone": (
        v1_tree(str(32 * MIB), v1_stat(), proc="4:memory:/app\n"),
        1,
        32 * MIB,
        V1_DIR,
    ),
    "v2 limit on own cgroup": (v2_tree(str(200 * MIB), str(GIB)), 2, 200 * MIB, V2_DIR),
    "v2 limit only on parent": (v2_tree("max", str(300 * MIB)), 2, 300 * MIB, V2_PARENT),
    "v2 max everywhere": (v2_tree("max", "max"), 2, None, None),
    "v2 mount root is not /": (
        {
            "proc/self/cgroup": "0::/kubepods/pod1/ctr\n",
            "proc/self/mountinfo": mountinfo(
                V2_MOUNT.format(root="/kubepods/pod1/ctr", point="/sys/fs/cgroup")
            ),
            **v2_cgroup("sys/fs/cgroup", str(64 * MIB)),
        },
        2,
        64 * MIB,
        "sys/fs/cgroup",
    ),
    "v2 mount root is a parent": (
        {
            "proc/self/cgroup": "0::/kubepods/pod1/ctr\n",
            "proc/self/mountinfo": mountinfo(
                V2_MOUNT.format(root="/kubepods", point="/sys/fs/cgroup")
            ),
            **v2_cgroup("sys/fs/cgroup", str(GIB)),
            **v2_cgroup("sys/fs/cgroup/pod1", str(96 * MIB)),
            **v2_cgroup("sys/fs/cgroup/pod1/ctr", "max"),
        },
        2,
        96 * MIB,
        "sys/fs/cgroup/pod1",
    ),
    "v2 path outside the mount root: mount point": (
        {
            "proc/self/cgroup": "0::/../../system.slice/x\n",
            "proc/self/mountinfo": mountinfo(
                V2_MOUNT.format(root="/kubepods/pod1", point="/sys/fs/cgroup")
            ),
            **v2_cgroup("sys/fs/cgroup", str(40 * MIB)),
        },
        2,
        40 * MIB,
        "sys/fs/cgroup",
    ),
    "v1 own directory not visible: mount point": (
        {
            "proc/self/cgroup": "4:memory:/docker/abc\n",
            "proc/self/mountinfo": mountinfo(V1_MOUNT.format(root="/")),
            "sys/fs/cgroup/memory/memory.limit_in_bytes": f"{56 * MIB}\n",
            "sys/fs/cgroup/memory/memory.stat": v1_stat(),
            "sys/fs/cgroup/memory/memory.usage_in_bytes": f"{10 * MIB}\n",
        },
        1,
        56 * MIB,
        "sys/fs/cgroup/memory",
    ),
    "v2 cgroup namespace": (
        {
            "proc/self/cgroup": "0::/\n",
            "proc/self/mountinfo": mountinfo(V2_MOUNT.format(root="/", point="/sys/fs/cgroup")),
            **v2_cgroup("sys/fs/cgroup", str(48 * MIB)),
        },
        2,
        48 * MIB,
        "sys/fs/cgroup",
    ),
    "hybrid: v1 memory wins over v2": (
        {
            "proc/self/cgroup": "9:name=systemd:/\n4:memory:/app\n1:cpu:/\n0::/app\n",
            "proc/self/mountinfo": mountinfo(
                V1_CPU_MOUNT,
                V1_MOUNT.format(root="/"),
                V2_MOUNT.format(root="/", point="/sys/fs/cgroup/unified"),
            ),
            f"{V1_DIR}/memory.limit_in_bytes": f"{80 * MIB}\n",
            f"{V1_DIR}/memory.stat": v1_stat(),
            f"{V1_DIR}/memory.usage_in_bytes": f"{10 * MIB}\n",
            "sys/fs/cgroup/unified/app/memory.max": f"{GIB}\n",  # decoy
        },
        1,
        80 * MIB,
        V1_DIR,
    ),
    "hybrid: memory controller not mounted in v1": (
        {
            "proc/self/cgroup": "4:memory:/app\n0::/app\n",
            "proc/self/mountinfo": mountinfo(
                V1_CPU_MOUNT, V2_MOUNT.format(root="/", point="/sys/fs/cgroup/unified")
            ),
            **v2_cgroup("sys/fs/cgroup/unified/app", str(72 * MIB)),
        },
        2,
        72 * MIB,
        "sys/fs/cgroup/unified/app",
    ),
}


@pytest.mark.parametrize("case", LIMIT_CASES, ids=list(LIMIT_CASES))
def test_cgroup_limit(tmp_path: Path, case: str) -> None:
    files, version, limit, directory = LIMIT_CASES[case]
    root = build(tmp_path, files)

    paths = _cgroup.resolve(root)
    assert paths is not None and paths.version == version
    got = _cgroup.read_limit(paths)
    assert got.errors == ()
    assert got.limit_bytes == limit
    assert got.directory == (None if directory is None else str(tmp_path / directory))

    with SystemProbe(root=root) as probe:
        assert probe.cgroup_version == version
        assert probe.cgroup_limit_bytes == limit
        reading = probe.read(4 * GIB)
    assert reading.capacity_bytes == min(4 * GIB, limit or 4 * GIB, probe.physical_bytes)
    assert reading.limit_bytes == limit
    assert reading.failed_sources == ()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("max\n", None),
        ("-1\n", None),
        (SENTINEL, None),
        (str(0x7FFFFFFFFFFFFFFF), None),
        ("268435456\n", 256 * MIB),
        ("0", 0),
    ],
)
def test_parse_limit(text: str, expected: int | None) -> None:
    assert _cgroup.parse_limit(text) == expected


@pytest.mark.parametrize("text", ["", "garbage", "-5", "1.5"])
def test_parse_limit_rejects_garbage(text: str) -> None:
    with pytest.raises(ValueError):
        _cgroup.parse_limit(text)


def test_parse_mountinfo_unescapes_and_skips_other_mounts() -> None:
    text = mountinfo(
        r"50 31 0:40 /a\040b /sys/fs/cgroup/my\040mem rw - cgroup cgroup rw,memory",
        "51 31 0:41 / /sys/fs/cgroup rw shared:1 shared:2 - cgroup2 cgroup2 rw",
    )
    mounts = _cgroup.parse_mountinfo(text)
    assert [(m.root, m.point, m.fstype) for m in mounts] == [
        ("/a b", "/sys/fs/cgroup/my mem", "cgroup"),
        ("/", "/sys/fs/cgroup", "cgroup2"),
    ]
    assert "memory" in mounts[0].super_options


def test_parse_proc_cgroup_path_with_colon() -> None:
    assert _cgroup.parse_proc_cgroup("3:cpu,memory:/a:b\n0::/c\n") == ("/a:b", "/c")
    with pytest.raises(ValueError):
        _cgroup.parse_proc_cgroup("not a cgroup line\n")


# --- failing sources: skipped, named, logged once, never raised ------------------------------

FAILING_CASES: dict[str, tuple[Files, int | None]] = {
    # name: (tree, limit still found from the files that could be read)
    "v2 garbage memory.max on own, parent readable": (
        v2_tree("garbage", str(300 * MIB)),
        300 * MIB,
    ),
    "v1 unreadable memory.limit_in_bytes, hierarchical readable": (
        {
            **without(v1_tree("", v1_stat(hierarchical=str(128 * MIB))), "memory.limit_in_bytes"),
            f"{V1_DIR}/memory.limit_in_bytes/x": "",  # a directory: reading it fails
        },
        128 * MIB,
    ),
    "v1 garbage memory.stat and limit": (
        v1_tree("lots", "hierarchical_memory_limit many\n"),
        None,
    ),
    "garbage /proc/self/cgroup": ({"proc/self/cgroup": "garbage\n"}, None),
    "cgroup without mountinfo": ({"proc/self/cgroup": "0::/x\n"}, None),
}


@pytest.mark.parametrize("case", FAILING_CASES, ids=list(FAILING_CASES))
def test_failing_cgroup_source_is_skipped_and_logged_once(
    tmp_path: Path, case: str, caplog: pytest.LogCaptureFixture
) -> None:
    files, limit = FAILING_CASES[case]
    root = build(tmp_path, files)
    caplog.set_level(logging.WARNING, logger="memcontract.probe")

    with SystemProbe(root=root) as probe:
        first, second = probe.read(4 * GIB), probe.read(4 * GIB)

    for reading in (first, second):
        assert reading.failed_sources == ("cgroup",)
        assert reading.capacity_bytes == min(4 * GIB, limit or 4 * GIB, probe.physical_bytes)
        assert reading.used_bytes > 0
    warnings = [r for r in caplog.records if r.name == "memcontract.probe"]
    assert len(warnings) == 1 and "'cgroup'" in warnings[0].getMessage()


def test_missing_proc_self_cgroup_means_no_cgroup(tmp_path: Path) -> None:
    with SystemProbe(root=str(tmp_path)) as probe:
        reading = probe.read(100 * MIB)
        assert probe.cgroup_version is None and probe.cgroup_limit_bytes is None
        assert probe.describe()["cgroup_version"] is None
    assert reading.capacity_bytes == 100 * MIB
    assert reading.psi_some_avg10 is None
    assert reading.failed_sources == ()


def test_rss_failure_raises(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def denied(self: psutil.Process) -> None:
        raise psutil.AccessDenied(self.pid)

    with SystemProbe(root=str(tmp_path)) as probe:
        monkeypatch.setattr(psutil.Process, "memory_info", denied)
        with pytest.raises(psutil.AccessDenied):
            probe.read(100 * MIB)


# --- used: working set when the cgroup binds, RSS otherwise ----------------------------------

WORKING_SET_CASES: dict[str, tuple[Files, int]] = {
    # name: (tree with a 256 MiB limit, expected working set)
    "v2 own": (v2_tree(str(256 * MIB), "max", current=200 * MIB, inactive=50 * MIB), 150 * MIB),
    "v2 parent binds: its usage counts": (
        v2_tree("max", str(256 * MIB), current=200 * MIB, inactive=50 * MIB),
        160 * MIB,
    ),
    "v1": (v1_tree(str(256 * MIB), v1_stat(inactive=30 * MIB)), 170 * MIB),
    "v1 floored at 0": (v1_tree(str(256 * MIB), v1_stat(inactive=300 * MIB)), 0),
}


@pytest.mark.parametrize("case", WORKING_SET_CASES, ids=list(WORKING_SET_CASES))
def test_used_is_working_set_when_cgroup_binds(tmp_path: Path, case: str) -> None:
    files, working_set = WORKING_SET_CASES[case]
    with SystemProbe(root=build(tmp_path, files)) as probe:
        reading = probe.read(GIB)
    assert (reading.used_bytes, reading.capacity_bytes) == (working_set, 256 * MIB)
    assert reading.limit_bytes == 256 * MIB  # the hard limit, reported beside the capacity


@pytest.mark.parametrize("case", WORKING_SET_CASES, ids=list(WORKING_SET_CASES))
def test_used_is_rss_when_budget_binds(tmp_path: Path, case: str) -> None:
    files, working_set = WORKING_SET_CASES[case]
    with SystemProbe(root=build(tmp_path, files)) as probe:
        reading = probe.read(128 * MIB)
    rss = psutil.Process().memory_info().rss
    assert reading.capacity_bytes == 128 * MIB
    assert reading.limit_bytes == 256 * MIB  # reported though the budget binds
    assert reading.used_bytes != working_set
    assert abs(reading.used_bytes - rss) < 64 * MIB


def test_unreadable_working_set_falls_back_to_rss(tmp_path: Path) -> None:
    files = v2_tree(str(256 * MIB), "max")
    files[f"{V2_DIR}/memory.stat"] = "anon 5\n"  # no inactive_file
    with SystemProbe(root=build(tmp_path, files)) as probe:
        reading = probe.read(GIB)
    assert reading.capacity_bytes == 256 * MIB
    assert reading.failed_sources == ("cgroup",)
    assert abs(reading.used_bytes - psutil.Process().memory_info().rss) < 64 * MIB


def test_refresh_every_picks_up_a_moved_process(tmp_path: Path) -> None:
    root = build(tmp_path, v2_tree(str(200 * MIB), str(300 * MIB)))
    with SystemProbe(root=root, refresh_every=1e-9) as probe:
        assert probe.read(GIB).capacity_bytes == 200 * MIB
        (tmp_path / "proc/self/cgroup").write_text("0::/app.slice\n")
        assert probe.read(GIB).capacity_bytes == 300 * MIB


# --- PSI -------------------------------------------------------------------------------------

PSI_CGROUP = (
    "some avg10=12.50 avg60=3.00 avg300=1.00 total=123\n"
    "full avg10=1.00 avg60=0.20 avg300=0.00 total=9\n"
)
PSI_HOST = (
    "some avg10=0.75 avg60=0.10 avg300=0.00 total=45\n"
    "full avg10=0.00 avg60=0.00 avg300=0.00 total=0\n"
)

PSI_CASES: dict[str, tuple[Files, float | None, tuple[str, ...]]] = {
    # name: (extra files over a v2 tree, psi some avg10, failed sources)
    "cgroup file preferred": (
        {f"{V2_DIR}/memory.pressure": PSI_CGROUP, "proc/pressure/memory": PSI_HOST},
        12.5,
        (),
    ),
    "host file": ({"proc/pressure/memory": PSI_HOST}, 0.75, ()),
    "unparsable cgroup file, host fallback": (
        {f"{V2_DIR}/memory.pressure": "", "proc/pressure/memory": PSI_HOST},
        0.75,
        (),
    ),
    "absent: not a source": ({}, None, ()),
    "garbage: failed": ({"proc/pressure/memory": "some avg10=lots\n"}, None, ("psi",)),
}


@pytest.mark.parametrize("case", PSI_CASES, ids=list(PSI_CASES))
def test_psi(tmp_path: Path, case: str) -> None:
    extra, psi, failed = PSI_CASES[case]
    root = build(tmp_path, {**v2_tree("max", "max"), **extra})
    with SystemProbe(root=root) as probe:
        reading = probe.read(GIB)
    assert reading.psi_some_avg10 == psi
    assert reading.failed_sources == failed


def test_psi_file_vanishing_later_is_a_failure(tmp_path: Path) -> None:
    root = build(tmp_path, {**v2_tree("max", "max"), "proc/pressure/memory": PSI_HOST})
    with SystemProbe(root=root) as probe:
        (tmp_path / "proc/pressure/memory").unlink()
        reading = probe.read(GIB)
    assert reading.psi_some_avg10 is None
    assert reading.failed_sources == ("psi",)


# --- GC pauses -------------------------------------------------------------------------------


def test_gc_pause_monitor_records_pauses_and_uninstalls() -> None:
    monitor = GcPauseMonitor(maxlen=8)
    try:
        assert monitor.p99_ms() is None
        for _ in range(20):
            gc.collect()
        p99 = monitor.p99_ms()
        assert isinstance(p99, float) and p99 > 0
        assert monitor.pause_count() == 8  # bounded
    finally:
        monitor.close()
    assert monitor._on_gc not in gc.callbacks
    assert not monitor.installed
    monitor.close()  # idempotent


def test_gc_pause_window_drops_old_pauses() -> None:
    monitor = GcPauseMonitor(window_seconds=1e-9)
    try:
        gc.collect()
        assert monitor.pause_count() >= 1
        assert monitor.p99_ms() is None  # every pause is older than the window
    finally:
        monitor.close()


def test_gc_pause_monitor_rejects_bad_options() -> None:
    with pytest.raises(ValueError, match="maxlen"):
        GcPauseMonitor(maxlen=0)
    with pytest.raises(ValueError, match="window_seconds"):
        GcPauseMonitor(window_seconds=0)


def test_probe_reports_gc_pauses_and_close_removes_hook(tmp_path: Path) -> None:
    hooks = len(gc.callbacks)
    probe = SystemProbe(root=str(tmp_path))
    assert len(gc.callbacks) == hooks + 1
    gc.collect()
    p99 = probe.read(GIB).gc_pause_p99_ms
    assert p99 is not None and p99 > 0
    probe.close()
    assert len(gc.callbacks) == hooks


# --- the real machine ------------------------------------------------------------------------


def test_system_probe_on_this_machine() -> None:
    with SystemProbe() as probe:
        assert isinstance(probe, Probe)
        reading = probe.read(512 * MIB)
        summary = probe.describe()
    assert reading.used_bytes > 0
    assert 0 < reading.capacity_bytes <= 512 * MIB
    assert reading.alloc_rate_bytes_per_sec is None
    assert summary["physical_bytes"] == psutil.virtual_memory().total
    assert reading.psi_some_avg10 is None or 0.0 <= reading.psi_some_avg10 <= 100.0


def test_limit_and_psi_are_cached_for_slow_every(tmp_path: Path) -> None:
    root = build(tmp_path, v2_tree(str(256 * MIB), "max"))
    limit_file = tmp_path / V2_DIR / "memory.max"
    with (
        SystemProbe(root=root, slow_every=3600) as cached,
        SystemProbe(root=root, slow_every=0) as fresh,
    ):
        assert cached.read(GIB).capacity_bytes == fresh.read(GIB).capacity_bytes == 256 * MIB
        limit_file.write_text(f"{128 * MIB}\n")
        assert cached.read(GIB).capacity_bytes == 256 * MIB  # no file read on this sample
        assert fresh.read(GIB).capacity_bytes == 128 * MIB


def test_rss_from_the_open_statm_file_matches_psutil() -> None:
    with SystemProbe() as probe:
        ours = probe.read(64 * GIB).used_bytes
        theirs = psutil.Process().memory_info().rss
    assert abs(ours - theirs) < 8 * MIB


def test_garbage_statm_raises_and_a_closed_probe_falls_back_to_psutil(tmp_path: Path) -> None:
    root = build(tmp_path, {"proc/self/statm": "garbage\n"})
    probe = SystemProbe(root=root)
    with pytest.raises((IndexError, ValueError)):
        probe.read(GIB)
    probe.close()
    assert probe.read(GIB).used_bytes > 0


def test_shared_cgroup_vectors_match_these_fixtures() -> None:
    # The Go sampler's tests read the same trees from tests/vectors/cgroups/trees.json.
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tools"))
    import gencgroups  # type: ignore[import-not-found]

    assert json.loads(gencgroups.OUT.read_text()) == gencgroups.build(), (
        "run python tools/gencgroups.py"
    )
