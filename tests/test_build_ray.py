"""--engine ray on a real local Ray (2 CPUs, started once for this module): same assets as a
local build, failures as rows, a lost worker retried once, Ctrl-C leaves no partial avatar."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from avatarkit.build import build_folder
from avatarkit.build.output import read_manifest
from avatarkit.build.ray_engine import TASK_RETRIES, land
from avatarkit.cli import app
from tests.photo_cases import DATA, FAST, FAST_CLI, ROOT

ray = pytest.importorskip("ray", reason="the cluster extra: pip install -e '.[test]'")

VOLATILE = ("built_at", "timings_s")  # the only avatar.json fields that differ run to run


@pytest.fixture(scope="module")
def local_ray():
    """One local Ray for the module (startup costs seconds); small object store, since the
    machine is shared and an avatar is ~1 MB."""
    ray.init(address="local", num_cpus=2, include_dashboard=False,
             object_store_memory=96 * 1024 * 1024, log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("photos")
    shutil.copy(DATA / "obama.jpg", folder / "obama.jpg")
    shutil.copy(DATA / "hopper.jpg", folder / "hopper.jpg")
    (folder / "broken.jpg").write_text("not a photo")
    return folder


@pytest.fixture(scope="module")
def both_builds(local_ray, photos, tmp_path_factory):
    local_out = tmp_path_factory.mktemp("local")
    ray_out = tmp_path_factory.mktemp("ray")
    local = build_folder(photos, local_out, FAST)
    seen = []
    on_ray = build_folder(photos, ray_out, FAST, engine="ray", on_result=seen.append)
    return local_out, local, ray_out, on_ray, seen


def test_ray_build_writes_the_same_assets_as_a_local_build(both_builds):
    local_out, local, ray_out, on_ray, seen = both_builds
    assert [r.status for r in on_ray] == [r.status for r in local] == [
        "failed", "built", "built"]
    assert sorted(r.photo for r in seen) == sorted(r.photo for r in on_ray)
    assert on_ray[0].error == local[0].error == (
        "could not read broken.jpg: not an image file avatarkit can read (use JPEG, PNG or WebP)")
    for name in ("hopper", "obama"):
        local_files = sorted(p.name for p in (local_out / name).iterdir())
        assert sorted(p.name for p in (ray_out / name).iterdir()) == local_files
        for file in local_files:
            if file.endswith(".json") and file != "avatar.json":
                assert (ray_out / name / file).read_bytes() == \
                    (local_out / name / file).read_bytes(), file
        manifests = [read_manifest(ray_out / name), read_manifest(local_out / name)]
        for manifest in manifests:
            for key in VOLATILE:
                manifest.pop(key)
        assert manifests[0] == manifests[1]
    # the driver's paths in the results, not the workers' temporary ones
    built = on_ray[1]
    assert built.output == str(ray_out / "hopper")
    assert built.files == [str(ray_out / "hopper" / Path(f).name) for f in local[1].files]
    assert all(Path(f).is_file() for f in built.files)
    assert not [p for p in ray_out.iterdir() if p.name.startswith(".")]  # no staging left


def test_ray_rerun_skips_on_the_driver(both_builds, photos):
    _, _, ray_out, first, _ = both_builds
    before = {p: p.stat().st_mtime_ns for p in (ray_out / "obama").iterdir()}
    again = build_folder(photos, ray_out, FAST, engine="ray")
    assert [r.status for r in again] == ["failed", "skipped", "skipped"]
    assert [sorted(r.files) for r in again[1:]] == [sorted(r.files) for r in first[1:]]
    assert {p: p.stat().st_mtime_ns for p in (ray_out / "obama").iterdir()} == before


def test_cli_ray_build_prints_the_same_table_and_report(both_builds, photos, tmp_path):
    _, _, ray_out, _, _ = both_builds
    report = tmp_path / "r.json"
    result = CliRunner().invoke(app, ["build", str(photos), "-o", str(ray_out), "--engine", "ray",
                                      "--report", str(report), *FAST_CLI])
    assert result.exit_code == 1
    assert result.stderr.rstrip().endswith("error: 1 of 3 photos failed (see above)")
    assert "0 built, 2 skipped, 1 failed" in result.stdout
    data = json.loads(report.read_text())
    assert [p["status"] for p in data["photos"]] == ["failed", "skipped", "skipped"]


def crash_worker(marker: str) -> None:
    """A task whose worker process dies (as on a lost node), counting its attempts."""
    with open(marker, "a") as f:
        f.write("attempt\n")
    os._exit(1)


def test_a_lost_worker_is_retried_once_then_one_failed_row(local_ray, tmp_path):
    marker = tmp_path / "attempts"
    task = ray.remote(num_cpus=1, max_retries=TASK_RETRIES, retry_exceptions=False)(crash_worker)
    result = land(ray, task.remote(str(marker)), tmp_path / "a.jpg", tmp_path / "out" / "a")
    assert result.status == "failed"
    assert result.error.startswith("a.jpg: the Ray worker building it was lost (")
    assert result.error.endswith(") - it was retried once")
    assert marker.read_text() == "attempt\n" * 2
    assert not (tmp_path / "out").exists()


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_ctrl_c_leaves_only_complete_avatars(tmp_path):
    """A real process with its own local Ray: interrupt it after the first avatar lands."""
    folder = tmp_path / "in"
    folder.mkdir()
    # enough photos that the interrupt lands mid-folder even when builds are fast (with 4,
    # a quiet machine finished them all between the first avatar and the signal)
    for i in range(16):
        shutil.copy(DATA / "obama.jpg", folder / f"p{i}.jpg")
    out = tmp_path / "out"
    proc = subprocess.Popen(
        [sys.executable, "-m", "avatarkit.cli", "build", str(folder), "-o", str(out),
         "--engine", "ray", "--jobs", "1", *FAST_CLI],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        # a test run started in the background (`make test &`) inherits SIGINT ignored, and
        # so would the command: give it the default disposition a terminal gives
        preexec_fn=_default_sigint)
    try:
        deadline = time.monotonic() + 240
        while not (out.is_dir() and any(p.name.startswith("p") for p in out.iterdir())):
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "no avatar was written"
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 1, (stdout, stderr)
    # (once, in a whole-suite run, stderr held only the first "built" line here: stdout is
    # in the message to tell where the interrupt went)
    assert "error: interrupted" in stderr, (stdout, stderr)
    avatars = sorted(p.name for p in out.iterdir())
    assert 1 <= len(avatars) < 16
    assert not [a for a in avatars if a.startswith(".")]  # no staging folder left behind
    for name in avatars:
        manifest = read_manifest(out / name)
        assert manifest and all((out / name / f).is_file() for f in manifest["files"])
