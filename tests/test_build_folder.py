"""build_folder: one avatar per photo, failures isolated, results and report per photo."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from avatarkit.build import build_folder, find_photos, pipeline, write_report
from avatarkit.build.folder import output_names
from avatarkit.errors import AvatarkitError
from tests.photo_cases import DATA, FAST, hero, save


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    """Two good portraits (one .PNG in capitals), one text file named .jpg, one cut-off face,
    and files folder mode must ignore."""
    folder = tmp_path_factory.mktemp("photos")
    shutil.copy(DATA / "hopper.jpg", folder / "hopper.jpg")
    save(hero(), folder / "Hero.PNG")
    (folder / "broken.jpg").write_text("not a photo")
    shutil.copy(DATA / "partial_face.jpg", folder / "partial.jpeg")
    (folder / "readme.txt").write_text("ignored")
    (folder / "._hopper.jpg").write_bytes(b"macOS resource fork")
    (folder / "sub").mkdir()
    shutil.copy(DATA / "obama.jpg", folder / "sub" / "obama.jpg")  # not recursive
    return folder


@pytest.fixture(scope="module")
def folder_run(photos, tmp_path_factory):
    out = tmp_path_factory.mktemp("out")
    seen = []
    results = build_folder(photos, out, FAST, jobs=2, on_result=seen.append)
    return out, results, seen


def test_finds_photos_case_insensitively(photos):
    assert [p.name for p in find_photos(photos)] == [
        "Hero.PNG", "broken.jpg", "hopper.jpg", "partial.jpeg"]


def test_good_photos_build_while_bad_ones_fail(folder_run):
    out, results, seen = folder_run
    assert [Path(r.photo).name for r in results] == [
        "Hero.PNG", "broken.jpg", "hopper.jpg", "partial.jpeg"]
    assert sorted(r.photo for r in seen) == sorted(r.photo for r in results)
    status = {Path(r.photo).name: r.status for r in results}
    assert status == {"Hero.PNG": "built", "broken.jpg": "failed", "hopper.jpg": "built",
                      "partial.jpeg": "failed"}
    errors = {Path(r.photo).name: r.error for r in results if r.error}
    assert errors == {
        "broken.jpg": "could not read broken.jpg: not an image file avatarkit can read "
                      "(use JPEG, PNG or WebP)",
        "partial.jpeg": "partial.jpeg: the face is cut off by the image edge - use a photo "
                        "that shows the whole face with some margin around it",
    }
    assert sorted(p.name for p in out.iterdir()) == ["Hero", "hopper"]  # nothing for failures
    for r in results:
        if r.status == "built":
            assert r.output and all(Path(f).is_file() for f in r.files)
            assert Path(r.output, "avatar.json").is_file()
        assert r.timings["total"] > 0


def test_rerun_skips_what_is_up_to_date(photos, folder_run):
    out, first, _ = folder_run
    again = build_folder(photos, out, FAST, jobs=1)
    assert [r.status for r in again] == ["skipped", "failed", "skipped", "failed"]
    assert [r.output for r in again if r.output] == [r.output for r in first if r.output]


def test_report(folder_run, photos, tmp_path):
    out, results, _ = folder_run
    write_report(tmp_path / "report.json", results, source=photos, out=out, options=FAST)
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["summary"] == {"built": 2, "skipped": 0, "failed": 2}
    assert report["options"]["idle"]["fps"] == 24
    by_name = {Path(p["photo"]).name: p for p in report["photos"]}
    assert by_name["broken.jpg"]["status"] == "failed"
    assert by_name["broken.jpg"]["error"].startswith("could not read broken.jpg:")
    assert by_name["hopper.jpg"]["output"] == str(out / "hopper")
    assert str(out / "hopper" / "atlas.png") in by_name["hopper.jpg"]["files"]
    assert {"load", "detect", "mouth", "total"} <= set(by_name["hopper.jpg"]["timings"])


def test_a_bug_in_one_photo_does_not_stop_the_others(tmp_path, monkeypatch):
    """An unexpected exception becomes a failed result naming it (in-process, jobs=1)."""
    calls = []

    def flaky(ctx):
        calls.append(ctx.photo.path.name)
        if len(calls) == 1:
            raise ZeroDivisionError("division by zero")
        return []

    monkeypatch.setattr(pipeline, "ASSET_STAGES", [*pipeline.ASSET_STAGES[:1], ("flaky", flaky)])
    (tmp_path / "in").mkdir()
    shutil.copy(DATA / "obama.jpg", tmp_path / "in" / "a.jpg")
    shutil.copy(DATA / "obama.jpg", tmp_path / "in" / "b.jpg")
    results = build_folder(tmp_path / "in", tmp_path / "out", FAST)
    assert [r.status for r in results] == ["failed", "built"]
    assert results[0].error.startswith("a.jpg: internal error ZeroDivisionError: division by "
                                       "zero (at test_build_folder.py:")
    assert results[0].error.endswith(") - please report it")


def test_colliding_names_get_their_extension():
    names = output_names([Path("a.jpg"), Path("A.png"), Path("b.webp")])
    assert names == {Path("a.jpg"): "a_jpg", Path("A.png"): "A_png", Path("b.webp"): "b"}


def test_empty_or_missing_folder(tmp_path):
    with pytest.raises(AvatarkitError, match=r"no photos found \(looked for \.jpg, \.jpeg, "
                                             r"\.png, \.webp files\)$"):
        build_folder(tmp_path, tmp_path / "out")
    with pytest.raises(AvatarkitError, match=r"^could not read .*/nope: no such folder$"):
        build_folder(tmp_path / "nope", tmp_path / "out")
