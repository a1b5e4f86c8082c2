"""Headless Chromium (Debian's ``chromium``) for tests that look at a page as a person would.

:func:`chromium` finds the browser, installing it with apt-get where it is missing and this is
root with apt-get (``make pytest`` does the same first, as ``make browser``). Where it cannot
be installed the test skips, saying why, except with ``MEMCONTRACT_REQUIRE_BROWSER=1`` (as
``.ci/run`` sets it) or ``CI`` set, where it fails: a page no browser rendered is not a checked
page.

:func:`inspect_page` loads a copy of a page with two scripts added: a ``window.onerror`` hook,
first in ``<head>``, that writes every script error into the DOM, and a last script that
writes, for each chart, how many of its series paths the browser drew with a non-zero
length. ``--dump-dom`` prints the DOM after the page's own scripts ran (root needs
``--no-sandbox``).
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import pytest

NAMES = ("chromium", "chromium-browser")
INSTALL_TIMEOUT_S = 540
RENDER_TIMEOUT_S = 90

_HOOK = """<script>
window.__errors = [];
window.onerror = function (message, source, line) {
  window.__errors.push(message + " (line " + line + ")");
  var out = document.getElementById("__errors") || document.createElement("pre");
  out.id = "__errors"; out.textContent = JSON.stringify(window.__errors);
  (document.body || document.documentElement).appendChild(out);
};
</script>"""

_PROBE = """<script>
(function () {
  var charts = [];
  document.querySelectorAll("svg").forEach(function (svg) {
    var drawn = 0;
    svg.querySelectorAll("path.series").forEach(function (path) {
      if (path.getAttribute("d") && path.getTotalLength() > 0) { drawn += 1; }
    });
    charts.push({label: svg.getAttribute("aria-label"),
                 stream: svg.getAttribute("data-stream"), drawn: drawn});
  });
  var out = document.createElement("pre");
  out.id = "__charts"; out.textContent = JSON.stringify(charts);
  document.body.appendChild(out);
})();
</script>"""


def _install() -> str | None:
    """Why Chromium cannot be installed here, or None once apt-get installed it."""
    if os.geteuid() != 0:
        return "not root: cannot apt-get install chromium"
    if shutil.which("apt-get") is None:
        return "no apt-get: install Chromium by hand"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (
        ["apt-get", "update", "-q"],
        ["apt-get", "install", "-y", "-q", "--no-install-recommends", "chromium"],
    ):
        done = subprocess.run(
            command, capture_output=True, text=True, env=env, timeout=INSTALL_TIMEOUT_S
        )
        if done.returncode != 0:
            return f"{' '.join(command)} failed: {done.stderr.strip()[-300:]}"
    return None


@cache
def _find_or_install() -> tuple[str | None, str]:
    for name in NAMES:
        if path := shutil.which(name):
            return path, ""
    reason = _install()
    for name in NAMES:
        if path := shutil.which(name):
            return path, ""
    return None, reason or "apt-get installed chromium, yet it is not on PATH"


def chromium() -> str:
    """The browser's path; skips (fails in CI) the calling test when there is none."""
    path, reason = _find_or_install()
    if path is None:
        if os.environ.get("MEMCONTRACT_REQUIRE_BROWSER") == "1" or os.environ.get("CI"):
            pytest.fail(f"Chromium is needed and could not be installed: {reason}")
        pytest.skip(f"Chromium is needed: {reason}")
    return path


@dataclass(frozen=True)
class Rendered:
    """What the browser made of a page: script errors, and per chart the drawn series."""

    errors: list[str]
    charts: list[dict[str, Any]]
    dom: str


def inspect_page(page: Path, work: Path) -> Rendered:
    """Load ``page`` (a copy, with the hooks added, in ``work``) in headless Chromium."""
    text = page.read_text()
    copy = work / f"inspected-{page.name}"
    copy.write_text(
        text.replace("<head>", "<head>" + _HOOK, 1).replace("</body>", _PROBE + "</body>", 1)
    )
    done = subprocess.run(
        [
            chromium(),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            f"--user-data-dir={work / 'chromium-profile'}",
            "--dump-dom",
            copy.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=RENDER_TIMEOUT_S,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    dom = done.stdout
    return Rendered(_json_in(dom, "__errors", required=False), _json_in(dom, "__charts"), dom)


def _json_in(dom: str, element: str, *, required: bool = True) -> list[Any]:
    """The JSON list a hook wrote into ``<pre id=ELEMENT>`` ([] when absent and optional)."""
    match = re.search(rf'<pre id="{element}">(.*?)</pre>', dom, re.S)
    if match is None:
        assert not required, f"#{element} is not in the DOM: the probe script did not run"
        return []
    value: list[Any] = json.loads(html.unescape(match[1]))
    return value
