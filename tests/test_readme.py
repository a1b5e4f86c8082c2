"""The README and docs/ are reference: every code block is closed and parses as what it says it
is (YAML, Python, shell), and the README's Python snippet (how to add memcontract to a service)
runs as written against the README's contract."""

from __future__ import annotations

import ast
import pathlib
import re
import subprocess
import sys

import pytest
import yaml

ROOT = pathlib.Path(__file__).resolve().parent.parent
DOCUMENTS = [
    ROOT / "README.md",
    ROOT / "bench" / "README.md",
    ROOT / "examples" / "python" / "README.md",
    *sorted((ROOT / "docs").glob("*.md")),
]
_FENCE = re.compile(r"^(`{3,})(.*)$")


def fenced_blocks(text: str) -> list[tuple[str, str]]:
    """``(info, body)`` of each fenced block; raises AssertionError on a block left open.

    Every block opens with an info string (```sh, ```text) and closes with a bare fence, so an
    unclosed block shows as an opening fence where a closing one was due.
    """
    blocks: list[tuple[str, str]] = []
    info: str | None = None
    body: list[str] = []
    for number, line in enumerate(text.splitlines(), 1):
        fence = _FENCE.match(line)
        if info is None:
            if fence:
                assert fence.group(2).strip(), f"line {number}: a block opens with no info string"
                info, body = fence.group(2).strip(), []
        elif fence:
            assert not fence.group(2).strip(), f"line {number}: a block opens inside a block"
            blocks.append((info, "\n".join(body) + "\n"))
            info = None
        else:
            body.append(line)
    assert info is None, f"a {info} block is never closed"
    return blocks


def check_block(info: str, body: str) -> None:
    """Raise if a block does not parse as its info string says (yaml, python, sh)."""
    if info == "yaml":
        yaml.safe_load(body)
    elif info == "python":
        ast.parse(body)
    elif info == "sh":
        done = subprocess.run(["bash", "-n"], input=body, capture_output=True, text=True)
        if done.returncode:
            raise SyntaxError(done.stderr.strip())


def test_a_block_left_open_is_found() -> None:
    # The shape of a real slip: a YAML block never closed, the next block's line inside it, its
    # closing fence closing the YAML instead.
    text = "```yaml\nrepos:\n  - rev: v1\n.venv/bin/python x.py  # a benchmark\n```\n"
    (info, body), *_ = fenced_blocks(text)
    with pytest.raises(yaml.YAMLError):
        check_block(info, body)
    with pytest.raises(AssertionError, match="line 3: a block opens inside a block"):
        fenced_blocks("```sh\nls\n```text\n")
    with pytest.raises(AssertionError, match="never closed"):
        fenced_blocks("```sh\nls\n")


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_code_block_is_closed_and_parses(document: pathlib.Path) -> None:
    for info, body in fenced_blocks(document.read_text(encoding="utf-8")):
        try:
            check_block(info, body)
        except (yaml.YAMLError, SyntaxError) as err:
            raise AssertionError(f"a {info} block does not parse: {err}\n{body}") from None


def _readme_block(info: str, marker: str) -> str:
    blocks = fenced_blocks((ROOT / "README.md").read_text(encoding="utf-8"))
    matching = [body for kind, body in blocks if kind == info and marker in body]
    assert len(matching) == 1, f"expected one {info} block with {marker!r}, found {len(matching)}"
    return matching[0]


@pytest.mark.parametrize(
    "marker",
    ["interceptors=[server_interceptor(guard)]", "wrap_channel(grpc.aio"],
    ids=["grpcio", "grpc.aio"],
)
def test_the_python_snippet_runs_with_the_readme_contract(
    tmp_path: pathlib.Path, marker: str
) -> None:
    (tmp_path / "memory_contract.yaml").write_text(_readme_block("yaml", "max_heap_mb"))
    snippet = tmp_path / "snippet.py"
    snippet.write_text(_readme_block("python", marker))
    done = subprocess.run(
        [sys.executable, str(snippet)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "callee level 0"
