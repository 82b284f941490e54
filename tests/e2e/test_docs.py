"""The docs' command blocks, run verbatim and in order in a scratch project (tiny params), as a
new user follows them: a documented command that fails fails this test.

Every ```bash block of the walkthroughs below runs, top to bottom, in one project per page.
A block that cannot run here says so in the line right above it, in an HTML comment that the
reader does not see: ``<!-- docs-test: skip (why) -->`` (a GPU, the network, a cloud account,
a server that runs until Ctrl-C; each such block names its local stand-in in the text).
``<!-- docs-test: setup -->`` marks a set-up block the scratch project has already done (the
clone and the virtual environment).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from .conftest import REPO_ROOT, Project, copy_project

pytestmark = pytest.mark.e2e

BLOCK = re.compile(r"(?:<!--\s*docs-test:\s*(?P<marker>[^>]*?)\s*-->\s*\n)?```bash\n(?P<body>.*?)```", re.S)
# The README's first two blocks are its set-up and its test command: CI runs them as they are.
README_OPENING_BLOCKS = 2


def command_blocks(page: Path) -> list[tuple[str, str]]:
    """(marker, body) of every bash block of ``page``, in order."""
    return [(match["marker"] or "", match["body"]) for match in BLOCK.finditer(page.read_text(encoding="utf-8"))]


def runnable(blocks: list[tuple[str, str]]) -> list[str]:
    return [body for marker, body in blocks if not marker.startswith(("skip", "setup"))]


def test_every_skipped_block_says_why():
    for page in (REPO_ROOT / "README.md", REPO_ROOT / "docs/comparing.md", REPO_ROOT / "docs/guarantees.md"):
        for marker, body in command_blocks(page):
            if marker.startswith("skip"):
                assert re.match(r"skip \(.{8,}\)$", marker), f"{page.name}: a skip without its reason above:\n{body}"
            else:
                assert marker in ("", "setup"), f"{page.name}: unknown docs-test marker {marker!r}"


def _run_page(project: Project, blocks: list[str]) -> None:
    """Each block in ``bash -euo pipefail``, its output to files (a `dvc queue` worker a block
    starts outlives it), at most 900 s each; the queue workers stopped at the end."""
    try:
        for number, body in enumerate(blocks, start=1):
            done = project.run("bash", "-euo", "pipefail", "-c", body, check=False, timeout=900)
            assert done.returncode == 0, (f"block {number} failed ({done.returncode}):\n{body}\n--- stdout:\n"
                                          f"{done.stdout[-3000:]}\n--- stderr:\n{done.stderr[-3000:]}")
    finally:
        project.stop_queue_workers()


def test_the_readme_blocks_work_as_written(pipeline, tmp_path):
    blocks = command_blocks(REPO_ROOT / "README.md")[README_OPENING_BLOCKS:]
    # the first command's `dvc repro`, on the scratch project's tiny params (already run: up to date)
    _run_page(copy_project(pipeline, tmp_path / "pricer"), ["dvc repro\n"] + runnable(blocks))


def test_the_comparing_walkthrough_works_as_written(pipeline, tmp_path):
    # reproduced, not committed: the page's first block (`dvc repro`, then a commit) finds it up to date
    _run_page(copy_project(pipeline, tmp_path / "pricer"), runnable(command_blocks(REPO_ROOT / "docs/comparing.md")))
