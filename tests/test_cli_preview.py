"""`avatarkit preview` end to end: real MP4s with sound, the sheet, and one red line per error."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from avatarkit.cli import app
from tests.render_cases import (
    decode_audio,
    probe,
)

runner = CliRunner()
TEXT = "Maybe five."


def preview(*args: str):  # noqa: ANN201
    return runner.invoke(app, ["preview", *args])


@pytest.fixture(scope="module")
def voice(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A WAV and its live-format timeline, made by `avatarkit visemes`."""
    folder = tmp_path_factory.mktemp("voice")
    wav, timeline = folder / "say.wav", folder / "say.jsonl"
    res = runner.invoke(app, ["visemes", "--text", TEXT, "--format", "live", "-o", str(timeline),
                              "--audio-out", str(wav)])
    assert res.exit_code == 0, res.output
    return wav, timeline


def test_text_to_mp4_with_sound(hero_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "hello.mp4"
    res = preview(str(hero_dir), "--text", TEXT, "--variant", "mesh", "-o", str(out))
    assert res.exit_code == 0, res.output
    assert res.stdout.startswith(f"preview: {out} (mesh, ")
    info = probe(out)
    assert "Video: h264" in info and "yuv420p" in info and "25 fps" in info
    assert "Audio: aac" in info
    data = out.read_bytes()
    assert data.index(b"moov") < data.index(b"mdat"), "+faststart"
    audio = decode_audio(out)
    assert np.abs(audio[: 22050 * 4 // 10]).max() < 0.01, "the lead-in is silent"
    assert np.abs(audio).max() > 0.1, "the speech is there"
    assert not list(tmp_path.glob(".*")), "no temporary files left behind"


def test_default_output_name(hero_dir: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    res = preview(str(hero_dir), "--text", "Hi.", "--lead-in", "0", "--tail", "0")
    assert res.exit_code == 0, res.output
    assert (tmp_path / "hero_preview.mp4").is_file()


def test_audio_and_timeline(hero_dir: Path, voice, tmp_path: Path) -> None:
    wav, timeline = voice
    out = tmp_path / "v.mp4"
    res = preview(str(hero_dir), "--audio", str(wav), "--timeline", str(timeline), "-o", str(out))
    assert res.exit_code == 0, res.output
    assert "warning" not in res.output
    assert "Audio: aac" in probe(out)


@pytest.mark.parametrize(("scale", "says"), [(1.5, "trimmed"), (0.5, "padded")])
def test_length_mismatch_warns(hero_dir: Path, voice, tmp_path: Path, scale: float,
                               says: str) -> None:
    wav, timeline = voice
    events = [json.loads(line) for line in timeline.read_text().splitlines()]
    for e in events:
        e["pts_ms"] = round(e["pts_ms"] * scale)
    stretched = tmp_path / "t.jsonl"
    stretched.write_text("".join(json.dumps(e) + "\n" for e in events))
    res = preview(str(hero_dir), "--audio", str(wav), "--timeline", str(stretched),
                  "-o", str(tmp_path / "o.mp4"))
    assert res.exit_code == 0, res.output
    assert "warning:" in res.stderr and says in res.stderr and "say.wav" in res.stderr


def test_sheet_only(hero_dir: Path, tmp_path: Path) -> None:
    sheet = tmp_path / "sheet.png"
    res = preview(str(hero_dir), "--sheet", str(sheet))
    assert res.exit_code == 0, res.output
    img = np.asarray(Image.open(sheet).convert("RGB"))
    half = img.shape[0] // 2
    assert img.shape[1] == 6 * 160 and img.shape[0] > 2 * img.shape[1] * 0.3
    # two blocks (sprites, mesh) showing the same face, not identical pixels
    assert 0 < np.abs(img[:half].astype(int) - img[half:2 * half]).mean() < 40
    assert not list(tmp_path.glob("*.mp4")), "--sheet alone renders no video"


def _bad_avatar(base: Path, hero_dir: Path, broken: str) -> Path:
    folder = base / "broken"
    shutil.copytree(hero_dir, folder)
    if broken == "atlas.png":
        (folder / broken).unlink()
    else:
        (folder / broken).write_text("{not json")
    return folder


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("not_avatar", "is not an avatar folder (no avatar.json)"),
        ("missing_file", "atlas.png is missing"),
        ("corrupt_file", "meshdef.json is damaged"),
        ("missing_timeline", "does not exist"),
        ("garbage_timeline", "is not a viseme timeline avatarkit can read"),
        ("rhubarb_timeline", "is a rhubarb timeline"),
        ("bad_audio", "could not read audio"),
        ("both_inputs", "or --timeline, not both"),
        ("bad_variant", "unknown variant 'flip'"),
        ("nothing", 'nothing to render: pass --text "...", --audio WAV or --sheet PNG'),
        ("bad_lead_in", "--lead-in (lead_in_s) must be between 0 and 10 seconds, got -3"),
        ("timeline_alone", "--timeline needs --audio"),
        ("track_fields", "track.json is damaged (no 'transforms' field) - rebuild the avatar"),
        ("binary_timeline", "is not a viseme timeline avatarkit can read (not text"),
    ],
)
def test_errors_are_one_red_line(hero_dir: Path, voice, tmp_path: Path, case: str,
                                 message: str) -> None:
    wav, timeline = voice
    out = tmp_path / "never.mp4"
    folder = str(hero_dir)
    args: list[str] = ["--text", "Hi."]
    if case == "not_avatar":
        folder = str(tmp_path)
    elif case == "missing_file":
        folder = str(_bad_avatar(tmp_path, hero_dir, "atlas.png"))
    elif case == "corrupt_file":
        folder = str(_bad_avatar(tmp_path, hero_dir, "meshdef.json"))
    elif case == "missing_timeline":
        args = ["--audio", str(wav), "--timeline", str(tmp_path / "none.json")]
    elif case == "garbage_timeline":
        (tmp_path / "g.json").write_text('{"hello": 1}')
        args = ["--audio", str(wav), "--timeline", str(tmp_path / "g.json")]
    elif case == "rhubarb_timeline":
        rh = tmp_path / "r.json"
        assert runner.invoke(app, ["visemes", "-t", "Hi.", "-f", "rhubarb", "-o", str(rh)]
                             ).exit_code == 0
        args = ["--audio", str(wav), "--timeline", str(rh)]
    elif case == "bad_audio":
        (tmp_path / "noise.wav").write_bytes(b"RIFF....not audio at all")
        args = ["--audio", str(tmp_path / "noise.wav"), "--timeline", str(timeline)]
    elif case == "both_inputs":
        args = ["--text", "Hi.", "--audio", str(wav), "--timeline", str(timeline)]
    elif case == "bad_variant":
        args = ["--text", "Hi.", "--variant", "flip"]
    elif case == "nothing":
        args = []
    elif case == "bad_lead_in":
        args = ["--text", "Hi.", "--lead-in", "-3"]
    elif case == "timeline_alone":
        args = ["--timeline", str(timeline)]
    elif case == "track_fields":
        folder = str(_bad_avatar(tmp_path, hero_dir, "track.json"))
        (Path(folder) / "track.json").write_text("{}")
    elif case == "binary_timeline":
        args = ["--audio", str(wav), "--timeline", str(wav)]
    res = preview(folder, *args, "-o", str(out))
    assert res.exit_code == 1, res.output
    assert res.stderr.startswith("error: ") and message in res.stderr, res.stderr
    assert len(res.stderr.strip().splitlines()) == 1 and "Traceback" not in res.output
    assert not out.exists()


def test_help_explains() -> None:
    res = runner.invoke(app, ["preview", "--help"], terminal_width=200)
    assert res.exit_code == 0
    for word in ("--text", "--audio", "--timeline", "--sheet", "--variant", "sprites", "mesh",
                 "H.264", "avatarkit visemes", "AVATAR_NAME_preview.mp4"):
        assert word in res.output, word


def test_interrupted_render_leaves_nothing(hero, tmp_path: Path) -> None:
    from avatarkit.render import VideoWriter

    target = tmp_path / "keep.mp4"
    target.write_bytes(b"previous good file")
    with pytest.raises(RuntimeError), VideoWriter(target, hero.size, hero.fps) as writer:
        writer.write(hero.frames[0])
        raise RuntimeError("interrupted")
    assert target.read_bytes() == b"previous good file"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.mp4"]
