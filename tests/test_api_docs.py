"""docs/api.md runs as written, and `import avatarkit` is the documented, cheap facade."""

from __future__ import annotations

import contextlib
import inspect
import io
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import avatarkit

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "api.md"


def test_the_examples_run_in_order(tmp_path: Path, monkeypatch) -> None:
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S)
    assert len(blocks) >= 5
    (tmp_path / "examples").mkdir()
    shutil.copy(ROOT / "examples" / "hero.jpg", tmp_path / "examples" / "hero.jpg")
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {}
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        for block in blocks:
            exec(compile(block, str(DOC), "exec"), namespace)  # noqa: S102
    lines = printed.getvalue().splitlines()
    assert lines[0] == f"built {Path('out') / 'hero'}"
    assert (tmp_path / "out" / "hero" / "avatar.json").is_file()
    assert (tmp_path / "out" / "hello.wav").stat().st_size > 10_000
    assert (tmp_path / "out" / "hero_preview.mp4").stat().st_size > 10_000
    # text, recording and live stream all found speech and mouth shapes in it
    for name in ("timeline", "heard"):
        frames = namespace[name].frames
        assert any(f.weights.get("MBP", 0) > 0.5 for f in frames), name
    assert any(f.weights.get("MBP", 0) > 0.5 for f in namespace["frames"])


def test_every_public_name_resolves_and_the_import_stays_light() -> None:
    assert set(avatarkit.__all__) == {"AvatarkitError", "__version__", *avatarkit._EXPORTS}
    for name in avatarkit.__all__:
        assert getattr(avatarkit, name) is not None, name
    code = ("import sys, avatarkit; "
            "print(sorted(m for m in ('mediapipe', 'cv2', 'pocketsphinx', 'aiohttp') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=ROOT).stdout
    assert out.strip() == "[]"


def test_the_package_ships_its_type_hints() -> None:
    assert (ROOT / "avatarkit" / "py.typed").is_file()
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert "py.typed" in data["package-data"]["avatarkit"]


def test_the_public_surface_is_typed() -> None:
    for name in avatarkit.__all__:
        obj = getattr(avatarkit, name)
        fn = obj.__init__ if inspect.isclass(obj) else obj
        if not callable(fn):
            continue
        sig = inspect.signature(fn)
        untyped = [p.name for p in sig.parameters.values() if p.name != "self"
                   and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
                   and p.annotation is inspect.Parameter.empty]
        assert not untyped and sig.return_annotation is not inspect.Signature.empty, name
