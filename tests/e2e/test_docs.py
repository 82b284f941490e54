"""The docs' command blocks, run verbatim and in order in a scratch project (tiny params), as a
new user follows them: a documented command that fails fails this test.

Every ```bash block of the walkthroughs below runs, top to bottom, in one project per page (how
blocks are marked as skipped or set-up: walkthroughs.py). docs/team.md is walked by
test_team.py against its services, docs/comparing.md by test_sweep.py (its walk is the sweep).
"""

from __future__ import annotations

import re

import pytest

from .conftest import REPO_ROOT, copy_project
from .walkthroughs import command_blocks, run_page, runnable

pytestmark = pytest.mark.e2e

# The README's first two blocks are its set-up and its test command: CI runs them as they are.
README_OPENING_BLOCKS = 2


def test_every_skipped_block_says_why():
    for page in (REPO_ROOT / "README.md", REPO_ROOT / "docs/comparing.md", REPO_ROOT / "docs/guarantees.md",
                 REPO_ROOT / "docs/team.md"):
        for marker, body in command_blocks(page):
            if marker.startswith("skip"):
                assert re.match(r"skip \(.{8,}\)$", marker), f"{page.name}: a skip without its reason above:\n{body}"
            else:
                assert marker in ("", "setup"), f"{page.name}: unknown docs-test marker {marker!r}"


def test_the_readme_blocks_work_as_written(pipeline, tmp_path):
    blocks = command_blocks(REPO_ROOT / "README.md")[README_OPENING_BLOCKS:]
    # the first command's `dvc repro`, on the scratch project's tiny params (already run: up to date)
    run_page(copy_project(pipeline, tmp_path / "pricer"), "README.md", ["dvc repro\n"] + runnable(blocks))
