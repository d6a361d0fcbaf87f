"""Face box, face inputs and paste-back on a real built avatar: the mouth follows the audio,
and no box or colour step shows where the patch meets the frame."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from PIL import Image

from avatarkit.face import regions
from avatarkit.face.landmarks import detect_faces
from avatarkit.roi import (
    OnnxRunner,
    RunnerOptions,
    crop_face,
    face_box,
    face_inputs,
    lipsync_frames,
    load_avatar,
    mouth_patch,
    paste,
)
from avatarkit.roi.faces import frame_to_model, model_to_frame
from avatarkit.roi.mel import SAMPLE_RATE
from avatarkit.roi.paste import blend_alpha, paste_box
from tests.photo_cases import DATA, HERO
from tests.roi_cases import MOUTH_COLS, MOUTH_ROWS, audio_driven_model

CPU = RunnerOptions(provider="cpu", intra_op_threads=1)


@pytest.fixture(scope="module")
def avatar(hero_dir):
    return load_avatar(hero_dir)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    d = tmp_path_factory.mktemp("roi_models")
    return {"plain": OnnxRunner(audio_driven_model(d / "a.onnx"), CPU),
            "cast": OnnxRunner(audio_driven_model(d / "b.onnx", shift=0.12), CPU)}


def speech_and_silence(fps: float) -> tuple[np.ndarray, slice]:
    """0.6 s silence, 0.8 s of a voiced signal, 0.6 s silence (16 kHz); the speech frames."""
    t = np.arange(int(0.8 * SAMPLE_RATE)) / SAMPLE_RATE
    voiced = sum(np.sin(2 * np.pi * f * t) / k for k, f in enumerate((150, 300, 750, 1300), 1))
    quiet = np.zeros(int(0.6 * SAMPLE_RATE))
    return np.concatenate([quiet, 0.25 * voiced, quiet]), slice(round(0.6 * fps), round(1.4 * fps))


def _lips_photo(avatar) -> np.ndarray:
    import json

    doc = json.loads((avatar.folder / "avatar.json").read_text())
    return np.asarray(doc["landmarks"]["points"])[list(regions.LIPS_ALL)]


@pytest.mark.parametrize("photo", [HERO, DATA / "obama.jpg", DATA / "biden.jpg",
                                   DATA / "hopper.jpg"])
def test_face_box_lower_half_holds_the_mouth(photo):
    face = detect_faces(np.asarray(Image.open(photo).convert("RGB")))[0]
    box = face_box(face.bbox)
    lips = face.points[list(regions.LIPS_ALL)]
    rel = (lips - [box.x, box.y]) / box.side  # 0..1 inside the box
    margin = 0.05
    assert rel[:, 1].min() >= 0.5 + margin, f"lips reach into the upper half: {rel[:, 1].min()}"
    assert rel[:, 1].max() <= 1 - margin and rel[:, 0].min() >= margin
    assert rel[:, 0].max() <= 1 - margin
    chin = face.points[regions.CHIN]
    assert 0.9 <= (chin[1] - box.y) / box.side < 1.0  # Wav2Lip's box ends just below the chin


def test_crop_follows_the_head(avatar):
    """Through the track, the mouth stays put in the crop while the head moves in the frame."""
    lips = _lips_photo(avatar)
    moved = []
    for i in range(avatar.track.frames):
        m = avatar.affine(i)
        in_frame = lips @ m[:, :2].T + m[:, 2]
        crop_pos = in_frame @ frame_to_model(avatar.box, m, 96)[:, :2].T + \
            frame_to_model(avatar.box, m, 96)[:, 2]
        moved.append(np.abs(in_frame - lips).max())
        np.testing.assert_allclose(crop_pos, lips @ avatar.box.to_model(96)[:, :2].T +
                                   avatar.box.to_model(96)[:, 2], atol=1e-6)
    assert max(moved) > 0.3  # the head does move in the frame (else this test shows nothing)
    # pixels: compensated crops of the most-moved frame and frame 0 agree better than fixed ones
    worst = int(np.argmax(moved))
    ident = np.array([[1.0, 0, 0], [0, 1.0, 0]])
    tracked = [crop_face(avatar.frame(i), avatar.box, avatar.affine(i), 96).astype(float)
               for i in (0, worst)]
    fixed = [crop_face(avatar.frame(i), avatar.box, ident, 96).astype(float) for i in (0, worst)]
    assert np.abs(tracked[0] - tracked[1]).mean() < np.abs(fixed[0] - fixed[1]).mean()


def test_face_input_layout(avatar):
    batch = face_inputs([avatar.frame(3)], [avatar.affine(3)], avatar.box, 96)
    assert batch.shape == (1, 6, 96, 96) and batch.dtype == np.float32
    crop_rgb = crop_face(avatar.frame(3), avatar.box, avatar.affine(3), 96)
    np.testing.assert_allclose(batch[0, 3], crop_rgb[:, :, 2] / 255.0, atol=1e-6)  # B first
    np.testing.assert_allclose(batch[0, 5], crop_rgb[:, :, 0] / 255.0, atol=1e-6)
    np.testing.assert_array_equal(batch[0, :3, 48:], 0.0)  # lower half masked
    np.testing.assert_allclose(batch[0, :3, :48], batch[0, 3:, :48])
    assert 0.0 <= batch.min() and batch.max() <= 1.0


def _mouth_level(frame: np.ndarray, avatar, i: int) -> float:
    """Mean brightness where the test model paints its mouth, located through the box."""
    s = avatar.box.side
    cx = avatar.box.x + s * np.mean(MOUTH_COLS)
    cy = avatar.box.y + s * np.mean(MOUTH_ROWS)
    m = avatar.affine(i)
    x, y = np.array([cx, cy]) @ m[:, :2].T + m[:, 2]
    r = max(2, int(0.04 * s))
    return float(frame[int(y) - r:int(y) + r, int(x) - r:int(x) + r].mean())


def test_mouth_follows_the_audio(avatar, models):
    wav, speech = speech_and_silence(avatar.fps)
    frames = list(lipsync_frames(avatar, models["plain"], wav))
    assert len(frames) == round(2.0 * avatar.fps)
    levels = np.array([_mouth_level(f, avatar, i) for i, f in enumerate(frames)])
    # Wav2Lip's window starts at the frame: speech shows from ~0.2 s before it is heard
    talking = levels[speech.start + 1:speech.stop - 5]
    silent = np.concatenate([levels[:speech.start - 6], levels[speech.stop + 1:]])
    assert talking.min() > silent.max() + 15, (talking, silent)
    # outside the ROI every frame is the idle frame, byte for byte
    for i in (0, 20, 45):
        x0, y0, x1, y1 = paste_box(avatar.geometry(96), avatar.affine(i), frames[i].shape)
        outside = np.ones(frames[i].shape[:2], bool)
        outside[y0:y1, x0:x1] = False
        np.testing.assert_array_equal(frames[i][outside], avatar.frame(i)[outside])


def _gradient_energy(img: np.ndarray, band: np.ndarray) -> float:
    g = img.astype(np.float64).mean(axis=2)
    gy, gx = np.gradient(g)
    return float(np.mean((gx**2 + gy**2)[band]))


def _patches(avatar, runner, frames_idx, level: float):
    mels = np.full((len(frames_idx), 1, 80, 16), level * 8 - 4, np.float32)
    faces = face_inputs([avatar.frame(i) for i in frames_idx],
                        [avatar.affine(i) for i in frames_idx], avatar.box, 96)
    return runner.run(mels, faces)


@pytest.mark.parametrize("level", [0.0, 0.5])
def test_no_seam_even_with_a_colour_cast(avatar, models, level):
    """Where the paste fades, the composite is no busier than the idle frame itself, although
    the model adds a colour cast of +0.12 (31 levels); a hard box paste fails the same floor."""
    geom = avatar.geometry(96)
    idx = [0, 17, 40]
    patches = _patches(avatar, models["cast"], idx, level)
    for i, patch in zip(idx, patches, strict=True):
        frame = avatar.frame(i)
        rect = paste_box(geom, avatar.affine(i), frame.shape)
        x0, y0, x1, y1 = rect
        alpha = blend_alpha(geom, avatar.affine(i), rect)
        band = (alpha > 0.08) & (alpha < 0.92)
        assert band.sum() > 200
        idle_e = _gradient_energy(frame[y0:y1, x0:x1], band)
        out = paste(frame, patch, avatar.affine(i), geom)
        energy = _gradient_energy(out[y0:y1, x0:x1], band)
        assert energy <= idle_e * 1.10 + 1.0, f"frame {i}: {energy:.1f} vs idle {idle_e:.1f}"
        # ring colour: matched to the frame within 2 levels; unmatched it is ~31 levels off
        ring = (alpha > 0.05) & (alpha < 0.6)
        region = frame[y0:y1, x0:x1].astype(float)
        matched = out[y0:y1, x0:x1].astype(float)
        assert np.abs(matched[ring].mean(0) - region[ring].mean(0)).max() < 2.0
        raw = paste(frame, patch, avatar.affine(i), geom, match_colour=False)
        assert (raw[y0:y1, x0:x1].astype(float)[ring].mean(0) - region[ring].mean(0)).min() > 8
    # Wav2Lip's hard paste of the box: along the box outline the same measure shows the step
    frame, patch, m = avatar.frame(0), patches[0], avatar.affine(0)
    to_frame = model_to_frame(avatar.box, m, 96)
    size = (frame.shape[1], frame.shape[0])
    warped = cv2.warpAffine((patch[::-1].transpose(1, 2, 0) * 255).astype(np.float32),
                            to_frame, size)
    lower = np.zeros((96, 96), np.float32)
    lower[48:] = 1.0  # the part a Wav2Lip model redraws
    inside = cv2.warpAffine(lower, to_frame, size) > 0.5
    hard = frame.copy()
    hard[inside] = np.clip(warped[inside], 0, 255).astype(np.uint8)
    outline = cv2.dilate(inside.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool) & \
        ~cv2.erode(inside.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
    ours = paste(frame, patch, m, geom)
    idle_e = _gradient_energy(frame, outline)
    assert _gradient_energy(ours, outline) <= idle_e * 1.10 + 1.0
    assert _gradient_energy(hard, outline) > idle_e * 1.5 + 1.0


def test_mouth_patch_matches_paste(avatar, models):
    """The RGBA patch a client composites (like a sprite) gives the same picture as paste."""
    from avatarkit.mouth.place import place_patch

    geom = avatar.geometry(96)
    patch = _patches(avatar, models["cast"], [11], 0.6)[0]
    frame = avatar.frame(11)
    rgba = mouth_patch(frame, patch, avatar.affine(11), geom)
    roi = avatar.track.roi
    assert rgba.shape == (roi.h, roi.w, 4)
    assert rgba[0, :, 3].max() == 0 and rgba[:, -1, 3].max() == 0  # no edge ever shows
    roi_affine = avatar.affine(11) @ np.array([[1, 0, roi.x], [0, 1, roi.y], [0, 0, 1.0]])
    client = place_patch(frame, rgba, np.ones((roi.h, roi.w), np.float32), roi_affine)
    server = paste(frame, patch, avatar.affine(11), geom)
    diff = np.abs(client.astype(float) - server.astype(float))
    assert diff.mean() < 0.5 and np.percentile(diff, 99.9) < 12
