"""Runnable shell examples in the Markdown docs: find them, run them, check links.

A runnable example is a fenced ``sh`` (or ``bash``) block directly after a line that is exactly
``<!-- runnable -->``. :func:`run_example` runs it as written with ``bash -euo pipefail`` in an empty
folder, with the test interpreter's ``bin`` folder (the avforge venv) first on ``PATH`` and
``AVFORGE_REPO`` set to the repository root, in a session of its own: on a timeout, and after it ends,
the whole process group is killed, so background processes an example starts (a Dask scheduler) never
outlive it.

(The interop docs use ``<!-- example: NAME -->`` for Python examples tested in ``tests/interop``; this
module ignores those.)
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
MARKER = "<!-- runnable -->"
SHELL_FENCES = ("```sh", "```bash")
_LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)|!\[[^\]]*\]\(([^)\s]+)\)")
_FENCE = re.compile(r"^\s*```")


class DocsExampleError(ValueError):
    """A ``<!-- runnable -->`` marker that is not directly followed by a complete shell block."""


@dataclass(frozen=True)
class ShellExample:
    page: Path
    line: int
    """1-based line of the opening fence."""
    code: str

    @property
    def name(self) -> str:
        return f"{self.page.relative_to(REPO)}:{self.line}"


@dataclass(frozen=True)
class ExampleRun:
    returncode: int
    output: str
    timed_out: bool
    wall_s: float


def doc_pages(repo: Path = REPO) -> list[Path]:
    """README.md and every Markdown page under docs/ (recursively), sorted."""
    return [repo / "README.md", *sorted((repo / "docs").rglob("*.md"))]


def extract_runnable(text: str, page: Path) -> list[ShellExample]:
    """The runnable shell examples of one page, in order; :class:`DocsExampleError` when malformed."""
    lines = text.splitlines()
    examples = []
    for i, line in enumerate(lines):
        if line.strip() != MARKER:
            continue
        where = f"{page}:{i + 1}"
        if i + 1 >= len(lines) or lines[i + 1].strip() not in SHELL_FENCES:
            raise DocsExampleError(f"{where}: {MARKER} must be directly followed by a ```sh block")
        end = next((j for j in range(i + 2, len(lines)) if lines[j].strip() == "```"), None)
        if end is None:
            raise DocsExampleError(f"{where}: the runnable block is never closed")
        examples.append(ShellExample(page, i + 2, "\n".join(lines[i + 2 : end]) + "\n"))
    return examples


def shell_blocks(text: str) -> int:
    """How many fenced ``sh``/``bash`` blocks the page has (marked or not)."""
    return sum(line.strip() in SHELL_FENCES for line in text.splitlines())


def example_env(repo: Path = REPO) -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["AVFORGE_REPO"] = str(repo)
    env["MPLBACKEND"] = "Agg"
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _kill_group(pgid: int) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            return
        time.sleep(0.5)


def run_example(code: str, workdir: Path, timeout_s: float, repo: Path = REPO) -> ExampleRun:
    """Run ``code`` with ``bash -euo pipefail`` in ``workdir`` (created; the script lives beside it)."""
    workdir.mkdir(parents=True, exist_ok=True)
    script = workdir.parent / f"{workdir.name}.sh"
    script.write_text(code)
    t0 = time.monotonic()
    proc = subprocess.Popen(
        ["bash", "-euo", "pipefail", str(script)],
        cwd=workdir,
        env=example_env(repo),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    timed_out = False
    try:
        output, _ = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        timed_out = True
        _kill_group(proc.pid)
        output, _ = proc.communicate()
    _kill_group(proc.pid)
    return ExampleRun(proc.returncode, output, timed_out, time.monotonic() - t0)


def github_anchor(heading: str) -> str:
    """The anchor GitHub gives a Markdown heading (lowercase, punctuation dropped, spaces to '-')."""
    text = heading.strip().lstrip("#").strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(text: str) -> set[str]:
    """Anchors of every heading outside fenced blocks."""
    out, in_fence = set(), False
    for line in text.splitlines():
        if _FENCE.match(line):
            in_fence = not in_fence
        elif not in_fence and line.startswith("#"):
            out.add(github_anchor(line))
    return out


def relative_links(text: str) -> list[str]:
    """Link and image targets outside fenced blocks that are not URLs or mail addresses."""
    out, in_fence = [], False
    for line in text.splitlines():
        if _FENCE.match(line):
            in_fence = not in_fence
            continue
        if in_fence:
            continue
        for match in _LINK.finditer(line):
            target = match.group(1) or match.group(2)
            if not re.match(r"^[a-z][a-z0-9+.-]*:", target):
                out.append(target)
    return out
