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
