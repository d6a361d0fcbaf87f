"""`avatarkit build` from the command line: exit codes, one red line, clean output."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from avatarkit.cli import app
from tests.photo_cases import DATA, FAST_CLI, HERO, ROOT, two_faces

runner = CliRunner()


def run(*args: str):
    return runner.invoke(app, ["build", *args, *FAST_CLI])


def test_one_photo(tmp_path):
    result = run(str(HERO), "-o", str(tmp_path / "out"))
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(f"built {tmp_path / 'out' / 'hero'}/ in ")
    assert (tmp_path / "out" / "hero" / "avatar.json").is_file()
    again = run(str(HERO), "-o", str(tmp_path / "out"))
    assert again.exit_code == 0
    assert "up to date" in again.stdout and "--force" in again.stdout
    forced = run(str(HERO), "-o", str(tmp_path / "out"), "--force")
    assert forced.exit_code == 0 and forced.stdout.startswith("built ")


def test_bad_photo_is_one_red_line(tmp_path):
    (tmp_path / "notes.jpg").write_text("hello")
    result = run(str(tmp_path / "notes.jpg"), "-o", str(tmp_path / "out"))
    assert result.exit_code == 1
    assert result.stderr == ("error: could not read notes.jpg: not an image file avatarkit "
                             "can read (use JPEG, PNG or WebP)\n")
    assert "Traceback" not in result.output
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("name", ["photo[1].jpg", "a[b].jpg", "[red]x.jpg"])
def test_file_names_print_as_they_are(tmp_path, name):
    """Square brackets in a file name are text, not terminal markup (nothing lost, no crash)."""
    (tmp_path / name).write_text("hello")
    result = run(str(tmp_path / name), "-o", str(tmp_path / "out"))
    assert result.exit_code == 1
    assert result.stderr == (f"error: could not read {name}: not an image file avatarkit "
                             "can read (use JPEG, PNG or WebP)\n")


def test_missing_photo(tmp_path):
    result = run(str(tmp_path / "gone.jpg"), "-o", str(tmp_path / "out"))
    assert result.exit_code == 1
    assert result.stderr == f"error: could not read {tmp_path / 'gone.jpg'}: no such file\n"


def test_two_faces_warn_in_yellow_and_face_picks(tmp_path):
    photo = two_faces(tmp_path / "two.jpg")
    result = run(str(photo), "-o", str(tmp_path / "out"))
    assert result.exit_code == 0
    assert ("warning: two.jpg: 2 faces found; using the largest - pass --face N to pick another"
            in result.stderr)
    picked = run(str(photo), "-o", str(tmp_path / "out"), "--face", "1")
    assert picked.exit_code == 0 and "warning" not in picked.stderr
    assert json.loads((tmp_path / "out" / "two" / "avatar.json").read_text())["face"]["index"] == 1
    wrong = run(str(photo), "-o", str(tmp_path / "out"), "--face", "5")
    assert wrong.exit_code == 1
    assert wrong.stderr == ("error: two.jpg: --face 5 asked for, but only 2 faces found "
                            "(0-1, largest first)\n")


def test_folder_with_a_bad_photo(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    shutil.copy(DATA / "obama.jpg", folder / "obama.jpg")
    shutil.copy(DATA / "partial_face.jpg", folder / "partial.jpg")
    report = tmp_path / "report.json"
    result = run(str(folder), "-o", str(tmp_path / "out"), "--report", str(report))
    assert result.exit_code == 1
    assert result.stderr.rstrip().endswith("error: 1 of 2 photos failed (see above)")
    assert "failed partial.jpg: the face is cut off by the image edge" in result.stderr
    assert "1 built, 0 skipped, 1 failed" in result.stdout
    data = json.loads(report.read_text())
    assert data["summary"] == {"built": 1, "skipped": 0, "failed": 1}
    assert [p["status"] for p in data["photos"]] == ["built", "failed"]
    assert data["photos"][1]["error"].startswith("partial.jpg: the face is cut off")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["obama"]


def test_report_for_a_failed_single_photo(tmp_path):
    report = tmp_path / "r.json"
    result = run(str(DATA / "partial_face.jpg"), "-o", str(tmp_path / "out"),
                 "--report", str(report))
    assert result.exit_code == 1
    assert json.loads(report.read_text())["photos"][0]["status"] == "failed"


@pytest.mark.parametrize("args, fragment", [
    (["--fps", "60"], "Invalid value for '--fps'"),
    (["--seconds", "11"], "Invalid value for '--seconds'"),
    (["--max-side", "10"], "Invalid value for '--max-side'"),
])
def test_option_ranges(tmp_path, args, fragment):
    result = runner.invoke(app, ["build", str(HERO), "-o", str(tmp_path), *args])
    assert result.exit_code == 2 and fragment in result.output


@pytest.mark.parametrize("args, fragment", [
    (["build", str(HERO), "--bogus"], "No such option: --bogus"),
    (["build", str(HERO), "--jobs", "0"], "Invalid value for '--jobs'"),
    (["buidl"], "No such command 'buidl'"),
])
def test_usage_errors_are_one_red_line(args, fragment):
    """From the real entry point: a mistyped option is one line like every other failure
    (typer alone draws a boxed panel under two usage lines), still exit 2."""
    done = subprocess.run([sys.executable, "-m", "avatarkit.cli", *args], capture_output=True,
                          text=True, cwd=ROOT, timeout=120)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1, done.stderr
    assert lines[0].startswith("error: ") and fragment in lines[0], lines
    assert "--help" in lines[0] and not done.stdout


def test_help_explains_options_and_defaults():
    result = runner.invoke(app, ["build", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    for text in ("--out", "--jobs", "--report", "--force", "--face", "--max-side", "--seconds",
                 "--fps", "--blinks", "--motion", "--seed", "[default: 2048]", "[default: 25]",
                 "[default: 4.0]", "[default: the largest, with a warning]"):
        assert text in result.output, text


def test_help_names_every_file_a_build_writes(hero_dir):
    from avatarkit.cli.build import HELP

    written = sorted(p.name for p in hero_dir.iterdir())
    assert "mouth_interior_layers.png" in written
    assert [name for name in written if name not in HELP] == []


def test_terminal_output_is_clean(tmp_path):
    """A real process: mediapipe's C++ log lines must not reach the user's terminal."""
    result = subprocess.run(
        [sys.executable, "-c", "from avatarkit.cli import main; main()", "build", str(HERO),
         "-o", str(tmp_path / "out"), *FAST_CLI],
        capture_output=True, text=True, cwd=ROOT, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"built {tmp_path / 'out' / 'hero'}/ in ")
    for noise in ("W0000", "I0000", "XNNPACK", "absl", "inference_feedback"):
        assert noise not in result.stderr, result.stderr


def test_idle_option_checked_by_the_idle_stage(tmp_path):
    """Ranges that depend on each other (blinks per loop length) are checked by IdleOptions."""
    result = run(str(HERO), "-o", str(tmp_path / "out"), "--blinks", "9")
    assert result.exit_code == 1
    assert result.stderr.startswith("error: --blinks must be between 0 and 3")
    assert result.stderr.count("\n") == 1
    assert not (tmp_path / "out").exists()


def test_engine_ray_without_ray_says_how_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # as if the cluster extra were not installed
    result = run(str(DATA), "-o", str(tmp_path / "out"), "--engine", "ray")
    assert result.exit_code == 1
    assert result.stderr == ("error: --engine ray needs Ray, which is not installed: "
                             "pip install 'avatarkit[cluster]'\n")
    assert not (tmp_path / "out").exists()


def test_engine_and_shard_need_a_folder(tmp_path):
    result = run(str(HERO), "-o", str(tmp_path / "out"), "--shard", "1/2")
    assert result.exit_code == 1
    assert result.stderr == f"error: --shard needs a folder of photos; {HERO} is not a folder\n"


@pytest.mark.parametrize("args, message", [
    (["--engine", "spark"], "error: --engine spark: use one of local, ray\n"),
    (["--address", "head:6379"], "error: --address names a Ray cluster: add --engine ray\n"),
])
def test_engine_options_are_checked_first(tmp_path, args, message):
    result = run(str(DATA), "-o", str(tmp_path / "out"), *args)
    assert result.exit_code == 1
    assert result.stderr == message
    assert not (tmp_path / "out").exists()
