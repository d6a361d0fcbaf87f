"""Renderer parts with known answers: weight sampling and ramps, timeline files in every
format `avatarkit visemes` writes, audio files, patch placement, the mesh warp, and the
avatar loader's errors."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import cv2
import imageio_ffmpeg
import numpy as np
import pytest

from avatarkit.errors import AvatarkitError, AvatarkitWarning
from avatarkit.mouth.mesh import triangles
from avatarkit.mouth.warp import warp_maps
from avatarkit.render import (
    Audio,
    WeightTrack,
    fit_to_audio,
    load_avatar,
    parse_timeline,
    place_patch,
    read_audio,
)
from avatarkit.render.timeline_file import detect_format
from avatarkit.render.weights import CLASS_INDEX, REST
from avatarkit.visemes.exporters import FORMATS, export
from avatarkit.visemes.timeline import speak
from tests.render_cases import write_wav

AI, MBP = CLASS_INDEX["AI"], CLASS_INDEX["MBP"]


@pytest.fixture(scope="module")
def timeline():  # noqa: ANN201
    return speak("Bob bought five thin maps.")[0]


def test_sampling_interpolates_and_ramps() -> None:
    track = WeightTrack.from_events([(100, {"AI": 1.0}), (200, {"MBP": 1.0})], 300)
    w = track.sample(np.array([100.0, 150.0, 200.0]), ramp_ms=80)
    assert w[0, AI] == 1 and w[2, MBP] == 1
    assert w[1, AI] == pytest.approx(0.5) and w[1, MBP] == pytest.approx(0.5)
    # before the first frame: eases from Rest into it, and reaches it exactly at its time
    times = np.arange(0.0, 101.0, 5.0)
    ramp = track.sample(times, ramp_ms=80)
    assert ramp[0, REST] == 1 and ramp[times <= 20][:, REST].min() == 1
    assert np.all(np.diff(ramp[:, AI]) >= 0) and ramp[-1, AI] == 1
    assert np.abs(np.diff(ramp[:, AI])).max() <= 0.15, "no pop: at most 15% per 5 ms"
    # after the last frame: back to Rest within the ramp
    after = track.sample(np.array([200.0, 240.0, 280.0, 400.0]), ramp_ms=80)
    assert after[0, MBP] == 1 and 0 < after[1, MBP] < 1 and after[2, REST] == 1
    assert np.allclose(after.sum(axis=1), 1)


def test_fit_to_audio_warns_and_trims(recwarn) -> None:
    track = WeightTrack.from_events([(t, {"AI": 1.0}) for t in range(0, 1000, 20)], 1000)
    audio = Audio(np.zeros(8000, np.int16), 16000)  # 0.5 s
    with pytest.warns(AvatarkitWarning, match="trimmed the timeline's last 0.50 s"):
        fitted = fit_to_audio(track, audio)
    assert fitted.duration_ms == 500 and fitted.pts_ms[-1] <= 500
    long_audio = Audio(np.zeros(32000, np.int16), 16000)
    with pytest.warns(AvatarkitWarning, match="padded the timeline with Rest"):
        padded = fit_to_audio(track, long_audio)
    assert padded.sample(np.array([1900.0]))[0, REST] == 1
    fit_to_audio(track, Audio(np.zeros(16010, np.int16), 16000))  # within tolerance: quiet
    assert not [w for w in recwarn if issubclass(w.category, AvatarkitWarning)]


@pytest.mark.parametrize("fmt", ["json", "live"])
def test_weight_formats_round_trip(timeline, fmt: str) -> None:
    parsed = parse_timeline(export(timeline, fmt))
    direct = WeightTrack.from_timeline(timeline)
    assert detect_format(export(timeline, fmt)) == fmt
    assert np.array_equal(parsed.pts_ms, direct.pts_ms)
    assert np.abs(parsed.weights - direct.weights).max() < 0.01
    assert parsed.duration_ms == pytest.approx(timeline.duration_ms, abs=1000 / timeline.fps)


def test_oculus_maps_back_to_the_classes(timeline) -> None:
    parsed = parse_timeline(export(timeline, "oculus"))
    direct = WeightTrack.from_timeline(timeline)
    same = parsed.weights.argmax(axis=1) == direct.weights.argmax(axis=1)
    assert same.mean() >= 0.9
    assert np.abs(parsed.weights[:, MBP] - direct.weights[:, MBP]).max() < 0.01


@pytest.mark.parametrize("fmt", ["rhubarb", "tsv", "azure"])
def test_shape_only_formats_are_refused_by_name(timeline, fmt: str) -> None:
    with pytest.raises(AvatarkitError, match=f"is a {fmt} timeline.*--format json"):
        parse_timeline(export(timeline, fmt))


def test_all_formats_are_known() -> None:
    assert set(FORMATS) == {"json", "live", "oculus", "rhubarb", "tsv", "azure"}


@pytest.mark.parametrize(("text", "message"), [
    ("", "is empty"),
    ("hello world", "not a viseme timeline"),
    ('{"events": [{"pts_ms": 0}]}', "lacks pts_ms/weights"),
    ('{"events": [{"pts_ms": 0, "weights": {"Zz": 1}}]}', "unknown viseme class 'Zz'"),
    ('{"events": []}', "no frames"),
])
def test_bad_timelines(text: str, message: str) -> None:
    with pytest.raises(AvatarkitError, match=message):
        parse_timeline(text)


def test_audio_files(tmp_path: Path) -> None:
    rate = 16000
    t = np.arange(rate // 2) / rate
    tone = 0.5 * np.sin(2 * np.pi * 440 * t)
    pcm16 = read_audio(write_wav(tmp_path / "a.wav", tone, rate))
    assert pcm16.sample_rate == rate and len(pcm16.samples) == len(tone)
    assert np.abs(pcm16.samples / 32768 - tone).max() < 1e-3
    # float WAV (not readable by `wave`) goes through ffmpeg
    f32 = tmp_path / "f.wav"
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-loglevel", "error", "-i",
                    str(tmp_path / "a.wav"), "-c:a", "pcm_f32le", str(f32)], check=True)
    decoded = read_audio(f32)
    assert decoded.duration_ms == pytest.approx(500, abs=2)
    assert np.abs(decoded.samples).max() / 32768 == pytest.approx(0.5, abs=0.02)
    padded = pcm16.padded(0.25, 1.0)
    assert len(padded.samples) == rate and not padded.samples[:rate // 4].any()
    assert np.array_equal(padded.samples[rate // 4:rate * 3 // 4], pcm16.samples)
    (tmp_path / "x.wav").write_bytes(b"\x00" * 100)
    with pytest.raises(AvatarkitError, match="could not read audio .*x.wav"):
        read_audio(tmp_path / "x.wav")
    with pytest.raises(AvatarkitError, match="no such file"):
        read_audio(tmp_path / "missing.wav")
    (tmp_path / "empty.wav").write_bytes(b"")
    with pytest.raises(AvatarkitError, match="empty.wav: the file is empty"):
        read_audio(tmp_path / "empty.wav")


def test_a_cut_off_wav_is_an_error_and_a_streamed_one_is_read(tmp_path: Path) -> None:
    """A header that promises more than the file holds is a damaged or incomplete file (a
    copy cut short); a header written before the length was known (0xFFFFFFFF, what
    streaming writers leave) is no promise, and the samples there are read."""
    rate = 16000
    whole = write_wav(tmp_path / "a.wav", 0.3 * np.sin(np.arange(rate * 2) / 10.0), rate)
    data = whole.read_bytes()
    cut = tmp_path / "cut.wav"
    cut.write_bytes(data[:len(data) // 4])
    with pytest.raises(AvatarkitError, match=r"cut.wav: the file is damaged or incomplete "
                                             r"\(its header promises 2.0 s, it holds 0.5 s\)"):
        read_audio(cut)
    streamed = bytearray(data[:len(data) // 4])
    at = streamed.index(b"data")
    streamed[4:8] = streamed[at + 4:at + 8] = (0xFFFFFFFF).to_bytes(4, "little")
    (tmp_path / "streamed.wav").write_bytes(streamed)
    got = read_audio(tmp_path / "streamed.wav")
    assert got.sample_rate == rate and len(got.samples) == (len(streamed) - at - 8) // 2
    for unknown in (0x7FFFFFFF, 0x7FFFF000, 0):  # what other writers put there
        streamed[at + 4:at + 8] = unknown.to_bytes(4, "little")
        (tmp_path / "streamed.wav").write_bytes(streamed)
        assert read_audio(tmp_path / "streamed.wav").duration_ms == pytest.approx(
            got.duration_ms, abs=0.1)
    short = bytearray(data)
    short[at + 4:at + 8] = (len(data) - at - 8 + 2).to_bytes(4, "little")  # one sample more
    (tmp_path / "short.wav").write_bytes(short)
    with pytest.raises(AvatarkitError, match=r"promises 32001 samples, it holds 32000\)"):
        read_audio(tmp_path / "short.wav")


def test_place_patch_lands_where_the_affine_says() -> None:
    frame = np.zeros((100, 120, 3), np.uint8)
    patch = np.zeros((20, 30, 3), np.uint8)
    patch[5:15, 10:20] = 255  # a white square in the patch's middle
    alpha = np.ones((20, 30), np.float32)
    angle = np.radians(20)
    affine = np.array([[np.cos(angle), -np.sin(angle), 50.0],
                       [np.sin(angle), np.cos(angle), 30.0]])
    out = place_patch(frame, patch, alpha, affine)
    ys, xs = np.nonzero(out[..., 0] > 127)
    centre = affine[:, :2] @ np.array([14.5, 9.5]) + affine[:, 2]
    assert np.hypot(xs.mean() - centre[0], ys.mean() - centre[1]) < 0.5
    assert len(xs) == pytest.approx(100, rel=0.15)
    assert np.array_equal(place_patch(frame + 7, patch, 0 * alpha, affine), frame + 7)


def test_mesh_maps_are_piecewise_affine(hero) -> None:
    """Inside every drawn triangle a pixel samples the source at the same barycentric
    coordinates in the undeformed triangle (the drawing a GPU client does); no offsets: the
    identity, pixel for pixel."""
    mesh = hero.mesh
    size = (hero.roi.w, hero.roi.h)
    tris = triangles()
    ys, xs = np.mgrid[0:size[1], 0:size[0]].astype(np.float64)
    pixels = np.stack([xs.ravel(), ys.ravel()])
    for cls in ("AI", "MBP", "O"):
        offsets = mesh.targets[CLASS_INDEX[cls]] * 0.8
        map_x, map_y = warp_maps(mesh.points, offsets, size)
        got = np.stack([map_x.ravel(), map_y.ravel()], axis=1)
        drawn = mesh.points + offsets
        bary = []
        for tri in tris:
            d = drawn[tri]
            t = np.array([[d[0, 0] - d[2, 0], d[1, 0] - d[2, 0]],
                          [d[0, 1] - d[2, 1], d[1, 1] - d[2, 1]]])
            if abs(np.linalg.det(t)) < 1.0:
                bary.append(None)
                continue
            lam = np.linalg.solve(t, pixels - d[2][:, None])
            # barycentric coordinate i x (twice the area / opposite edge) = distance to it, px
            heights = abs(np.linalg.det(t)) / np.linalg.norm(d[[1, 2, 0]] - d[[2, 0, 1]], axis=1)
            bary.append((np.vstack([lam, 1 - lam.sum(axis=0)]), heights))
        # pixels one triangle alone covers (a fold puts two triangles over some)
        covers = sum((b[0] * b[1][:, None] > -1.0).all(axis=0) for b in bary if b is not None)
        checked = 0
        for tri, b in zip(tris, bary, strict=True):
            if b is None:
                continue
            # a pixel away from every edge: the rasteriser has no choice to make
            inside = (b[0] * b[1][:, None] > 1.0).all(axis=0) & (covers == 1)
            b = b[0]
            want = b[:, inside].T @ mesh.points[tri]
            assert np.abs(got[inside] - want).max(initial=0.0) < 1e-3, cls
            checked += int(inside.sum())
        assert checked > 0.2 * size[0] * size[1]
    ident = warp_maps(mesh.points, np.zeros_like(mesh.points), size)
    img = cv2.remap(hero.cells["Rest"][..., :3], *ident, cv2.INTER_LINEAR)
    assert np.array_equal(img, hero.cells["Rest"][..., :3])


@pytest.mark.parametrize(("damage", "message"), [
    ("no_folder", "is not a folder"),
    ("no_manifest", "is not an avatar folder"),
    ("no_track", "track.json is missing"),
    ("bad_mask", "mask_mouth.png is damaged"),
    ("small_mask", "mask_mouth.png is 4x4, expected"),
    ("bad_atlas_json", "atlas.json is damaged"),
    ("bad_video", "could not read"),
])
def test_loader_errors_name_the_file(hero_dir: Path, tmp_path: Path, damage: str,
                                     message: str) -> None:
    folder = tmp_path / "a"
    shutil.copytree(hero_dir, folder)
    if damage == "no_folder":
        folder = tmp_path / "nothing"
    elif damage == "no_manifest":
        (folder / "avatar.json").unlink()
    elif damage == "no_track":
        (folder / "track.json").unlink()
    elif damage == "bad_mask":
        (folder / "mask_mouth.png").write_bytes(b"\x89PNG broken")
    elif damage == "small_mask":
        cv2.imwrite(str(folder / "mask_mouth.png"), np.zeros((4, 4), np.uint8))
    elif damage == "bad_atlas_json":
        (folder / "atlas.json").write_text("[")
    elif damage == "bad_video":
        data = (folder / "idle.mp4").read_bytes()
        (folder / "idle.mp4").write_bytes(data[: len(data) // 3])
    with pytest.raises(AvatarkitError, match=message):
        avatar = load_avatar(folder)
        _ = avatar.frames  # the video is decoded on first use


def test_loader_reads_the_contract(hero) -> None:
    assert hero.frames.shape == (hero.loop_frames, 400, 320, 3) and hero.fps == 25
    assert not hero.frames.flags.writeable
    assert hero.mask[0].max() == 0 and hero.mask.max() == 255
    assert set(hero.cells) == set(CLASS_INDEX)
    assert np.all(hero.mesh.targets[REST] == 0)
    a = hero.roi_affine(3)
    assert np.allclose(a @ [0, 0, 1], hero.track.apply(3, np.array([[hero.roi.x, hero.roi.y]]))[0])
    assert json.loads((hero.folder / "avatar.json").read_text())["roi"] == hero.roi.as_dict()
