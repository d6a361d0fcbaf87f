"""pyproject's dependency floors admit only releases that have the APIs the code calls."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import aiohttp
from aiohttp import web

ROOT = Path(__file__).resolve().parents[1]

#: aiohttp API the product uses -> the first release that has it (checked against the
#: 3.10.11 and 3.11.0 wheels: ClientWSTimeout and WebSocketResponse.send_frame are new in 3.11).
AIOHTTP_FIRST_RELEASE = {
    "ClientWSTimeout": (3, 11),
    "send_frame": (3, 11),
    "AppKey": (3, 9),
}


def _floor(package: str) -> tuple[int, ...]:
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    spec = next(d for d in deps if re.match(rf"{package}\b", d))
    found = re.search(r">=\s*([0-9.]+)", spec)
    assert found, f"{package} has no >= floor in pyproject.toml: {spec!r}"
    return tuple(int(x) for x in found.group(1).split("."))


def test_aiohttp_floor_covers_the_api_the_code_uses() -> None:
    sources = "\n".join(p.read_text() for folder in ("avatarkit", "server")
                        for p in (ROOT / folder).rglob("*.py"))
    used = {name for name in AIOHTTP_FIRST_RELEASE if re.search(rf"\b{name}\b", sources)}
    assert {"ClientWSTimeout", "send_frame"} <= used, "update AIOHTTP_FIRST_RELEASE"
    need = max(AIOHTTP_FIRST_RELEASE[name] for name in used)
    floor = _floor("aiohttp")
    newest = sorted(n for n in used if AIOHTTP_FIRST_RELEASE[n] == need)
    assert floor[:len(need)] >= need, (
        f"pyproject says aiohttp>={'.'.join(map(str, floor))}, the code needs "
        f"{'.'.join(map(str, need))} ({newest})")
    # and the installed aiohttp has them (the table names real attributes)
    assert hasattr(aiohttp, "ClientWSTimeout") and hasattr(web.WebSocketResponse, "send_frame")


def _recipes() -> dict[str, tuple[str, list[str]]]:
    """Makefile target -> (its prerequisites, its recipe lines)."""
    text = (ROOT / "Makefile").read_text()
    return {m.group(1): (m.group(2), [x.strip() for x in m.group(3).splitlines()])
            for m in re.finditer(r"^(\S+):([^=\n]*)\n((?:\t[^\n]*\n)*)", text, re.M)}


def test_make_demo_installs_the_tool_only_and_make_test_adds_the_test_extra() -> None:
    rules = _recipes()
    assert "$(DEMO_STAMP)" in rules["demo"][0] and "$(TEST_STAMP)" in rules["test"][0]
    demo, test = rules["$(DEMO_STAMP)"][1], rules["$(TEST_STAMP)"][1]
    assert "$(BIN)/pip install -e ." in demo and not any("[" in line for line in demo)
    assert "$(BIN)/pip install -e '.[test]'" in test
    # every install is followed by the headless OpenCV swap (pip restores the GUI wheel)
    for recipe in (demo, test):
        install = next(i for i, line in enumerate(recipe) if "pip install -e" in line)
        assert recipe[install + 1] == "$(headless_cv2)", recipe
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert not {"librosa", "playwright", "pytest"} & {
        re.match(r"[\w-]+", d).group(0) for d in extras["dependencies"]}
