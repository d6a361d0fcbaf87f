"""Fixtures every test module sees: the example avatar, built once per test session, and a
placeholder avatars folder for the server tests.

Building it takes seconds; the renderer, ROI, server and browser tests all read the same
folder. Tests must not change it: `tests.server_support.avatars_with_hero` copies it into a
folder of the test's own (a server's avatars directory).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from avatarkit.build import BuildOptions, build_avatar
from avatarkit.render import Avatar, load_avatar
from tests.server_support import make_avatar

HERO = Path(__file__).resolve().parent.parent / "examples" / "hero.jpg"


@pytest.fixture(scope="session")
def hero_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example avatar folder (`hero`), built with the default settings. Read only."""
    result = build_avatar(HERO, tmp_path_factory.mktemp("avatars"), BuildOptions())
    assert result.status == "built", result.error
    return Path(result.output)


@pytest.fixture(scope="session")
def hero(hero_dir: Path) -> Avatar:
    """The example avatar, loaded (idle frames decoded once for the session)."""
    return load_avatar(hero_dir)


@pytest.fixture
def avatars(tmp_path: Path) -> Path:
    """An avatars folder with a placeholder `hero` (a manifest and stand-in files, no build):
    for server tests that never draw it."""
    make_avatar(tmp_path)
    return tmp_path
