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
from .walkthroughs import command_blocks, readme_after_shared_start, run_page, shared_start

pytestmark = pytest.mark.e2e


def test_every_skipped_block_says_why():
    for page in (REPO_ROOT / "README.md", REPO_ROOT / "docs/comparing.md", REPO_ROOT / "docs/guarantees.md",
                 REPO_ROOT / "docs/team.md"):
        for marker, body in command_blocks(page):
            if marker.startswith("skip"):
                assert re.match(r"skip \(.{8,}\)$", marker), f"{page.name}: a skip without its reason above:\n{body}"
            else:
                assert marker in ("", "setup"), f"{page.name}: unknown docs-test marker {marker!r}"


def test_the_readme_blocks_work_as_written(experiments, tmp_path):
    # the first command's `dvc repro` (on the tiny params: up to date), the baseline commit and the
    # two experiments ran in `experiments` (walkthroughs.shared_start); the rest of the page here
    project, outputs = experiments
    assert list(outputs) == shared_start()
    run_page(copy_project(project, tmp_path / "pricer"), "README.md", readme_after_shared_start())
