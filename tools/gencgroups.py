"""Write tests/vectors/cgroups/trees.json: the fixture cgroup trees of tests/test_probe.py.

The Python probe tests build these trees in tmp_path; the Go sampler's tests build the same
trees from this file and want the same limits, binding directories and working sets. A test in
tests/test_probe.py fails when this file drifts from the Python fixtures.
Usage: python tools/gencgroups.py
"""

from __future__ import annotations

import json
import pathlib
import sys
from typing import Any

ROOT = pathlib.Path(__file__).resolve().parent.parent
OUT = ROOT / "tests" / "vectors" / "cgroups" / "trees.json"


def build() -> dict[str, Any]:
    """The three fixture tables of tests/test_probe.py as plain JSON."""
    sys.path.insert(0, str(ROOT))
    from tests import test_probe as t

    return {
        "limit": {
            name: {"files": files, "version": version, "limit": limit, "directory": directory}
            for name, (files, version, limit, directory) in t.LIMIT_CASES.items()
        },
        "working_set": {
            name: {"files": files, "limit": 256 * t.MIB, "used": used}
            for name, (files, used) in t.WORKING_SET_CASES.items()
        },
        "failing": {
            name: {"files": files, "limit": limit}
            for name, (files, limit) in t.FAILING_CASES.items()
        },
    }


def main() -> None:
    OUT.write_text(json.dumps(build(), indent=1, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
