"""`avatarkit visemes` end to end, and every export format on a real timeline."""

from __future__ import annotations

import json
import wave
from pathlib import Path

import pytest
from typer.testing import CliRunner

from avatarkit.cli import app
from avatarkit.visemes.exporters import FORMATS, RHUBARB_SHAPES, azure_events, export, oculus_json
from avatarkit.visemes.phoneme_tables import OCULUS_VISEMES
from avatarkit.visemes.timeline import speak

runner = CliRunner()
TEXT = "Bob bought five thin maps."


@pytest.fixture(scope="module")
def timeline():  # noqa: ANN201
    return speak(TEXT)[0]


def test_json_timeline_and_wav(tmp_path: Path) -> None:
    out, wav = tmp_path / "t.json", tmp_path / "s.wav"
    res = runner.invoke(app, ["visemes", "--text", TEXT, "--fps", "30", "-o", str(out),
                              "--audio-out", str(wav)])
    assert res.exit_code == 0, res.output
    doc = json.loads(out.read_text())
    assert set(doc) == {"fps", "duration_ms", "classes", "phonemes", "events"}
    with wave.open(str(wav)) as w:
        wav_ms = w.getnframes() / w.getframerate() * 1000
    assert doc["duration_ms"] == pytest.approx(wav_ms, abs=1)
    assert len(doc["events"]) == int(wav_ms * 30 / 1000) + 1
    b = next(p for p in doc["phonemes"] if p["symbol"] == "b")
    mid = (b["start_ms"] + b["end_ms"]) / 2
    near = [e for e in doc["events"] if abs(e["pts_ms"] - mid) <= 30]
    assert max(e["weights"].get("MBP", 0) for e in near) >= 0.8


def test_rhubarb_json_names_its_sound_file(tmp_path: Path) -> None:
    """As Rhubarb's own output does: the recording listened to, or the speech written."""
    wav = tmp_path / "s.wav"
    res = runner.invoke(app, ["visemes", "--text", "Maybe.", "-f", "rhubarb",
                              "--audio-out", str(wav), "-o", str(tmp_path / "a.json")])
    assert res.exit_code == 0, res.output
    assert json.loads((tmp_path / "a.json").read_text())["metadata"]["soundFile"] == str(wav)
    res = runner.invoke(app, ["visemes", "--audio", str(wav), "-f", "rhubarb",
                              "-o", str(tmp_path / "b.json")])
    assert res.exit_code == 0, res.output
    doc = json.loads((tmp_path / "b.json").read_text())
    assert doc["metadata"]["soundFile"] == str(wav) and doc["mouthCues"]
    res = runner.invoke(app, ["visemes", "--text", "Maybe.", "-f", "rhubarb"])
    assert json.loads(res.stdout)["metadata"]["soundFile"] == ""  # no sound file at all


def test_alignment_input(tmp_path: Path) -> None:
    text = "Maybe both."
    al = {"chars": list(text), "charStartTimesMs": [i * 70 for i in range(len(text))],
          "charsDurationsMs": [70] * len(text)}
    path = tmp_path / "al.json"
    path.write_text(json.dumps([{"audio": "", "alignment": al, "isFinal": False},
                                {"isFinal": True}]))
    res = runner.invoke(app, ["visemes", "--alignment", str(path), "--format", "rhubarb"])
    assert res.exit_code == 0, res.output
    cues = json.loads(res.stdout)["mouthCues"]
    assert cues[0]["start"] == 0 and cues[-1]["end"] == pytest.approx(len(text) * 0.07, abs=0.02)
    assert "A" in {c["value"] for c in cues}  # the closures of m and b


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--text", "hi", "--lang", "xx"], "unknown language"),
        (["--text", "  "], "nothing to say"),
        (["--text", "hi", "--format", "mp4"], "unknown format"),
        (["--text", "hi", "--fps", "0"], "fps"),
        (["--text", "hi", "--rate", "0"], "rate must be 80–449 words per minute, got 0"),
        (["--text", "hi", "--rate", "450"], "rate must be 80–449"),
        (["--alignment", "/nonexistent.json"], "could not read"),
        (["--audio", str(Path(__file__).parent / "data" / "speech" / "cold_corpus3.wav"),
          "--rate", "200"], "--rate are for synthesis; with --audio the speech is yours"),
        (["--alignment", "/nonexistent.json", "--voice", "m3"],
         "--voice and --rate are for synthesis; with --alignment"),
        (["--audio", str(Path(__file__).parent)], "a folder, not an audio file"),
        (["-a", str(Path(__file__).parent / "data" / "speech" / "cold_corpus3.wav")],
         "not text, so not JSON or JSON Lines (for a recording use --audio)"),
    ],
)
def test_errors_are_one_red_line(args: list[str], message: str) -> None:
    res = runner.invoke(app, ["visemes", *args])
    assert res.exit_code == 1
    assert message in res.output and "Traceback" not in res.output
    assert len(res.output.strip().splitlines()) == 1


def test_every_format_renders(timeline) -> None:  # noqa: ANN001
    for fmt in FORMATS:
        assert export(timeline, fmt).strip()
    live = [json.loads(x) for x in export(timeline, "live").splitlines()]
    assert live[0]["type"] == "viseme" and {"pts_ms", "weights"} <= set(live[0])
    tsv = [line.split("\t") for line in export(timeline, "tsv").splitlines()]
    assert all(v in set(RHUBARB_SHAPES.values()) for _, v in tsv) and tsv[-1][1] == "X"
    assert [float(t) for t, _ in tsv] == sorted(float(t) for t, _ in tsv)
    oc = oculus_json(timeline)
    names = {n for f in oc["frames"] for n in f["weights"]}
    assert names <= set(OCULUS_VISEMES) and {"PP", "FF", "TH"} <= names
    assert all(sum(f["weights"].values()) == pytest.approx(1, abs=0.01) for f in oc["frames"])
    az = azure_events(timeline)
    assert az[0] == {"audio_offset_ms": 0, "viseme_id": 0} and az[-1]["viseme_id"] == 0
    assert {21, 18, 19} <= {e["viseme_id"] for e in az}  # b/m, f/v, th
