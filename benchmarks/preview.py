"""`avatarkit preview` speed and quality, both variants: the example avatar and one built from
the example upscaled to 1024 px on the longer side.

    python benchmarks/preview.py [--runs 5] [--no-quality]

Speed is video seconds per wall second (multiple of real time) for drawing + encoding the
MP4 with sound, median of N runs, speech synthesised once beforehand (its time is printed
apart). Quality is measured on the decoded example MP4s with re-detected landmarks - the
same measures the tests assert floors on (tests/test_render_quality.py).

Budget (issue 5, on the 2-core development machine): at least 5x real time at the example
size, for both variants.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from avatarkit.audio.io import read_audio  # noqa: E402
from avatarkit.build import BuildOptions, build_avatar  # noqa: E402
from avatarkit.face import regions  # noqa: E402
from avatarkit.idle import quality as q  # noqa: E402
from avatarkit.native_stderr import quiet_native_stderr  # noqa: E402
from avatarkit.render import (  # noqa: E402
    PreviewOptions,
    load_avatar,
    make_variant,
    open_weight,
    plan_frames,
    render_frames,
    render_preview,
    speech_from_files,
    speech_from_text,
)
from avatarkit.render.decode import read_video  # noqa: E402
from avatarkit.render.weights import CLASS_INDEX, class_openness  # noqa: E402

HERO = ROOT / "examples" / "hero.jpg"
SENTENCE = "Bob bought five thin maps, and we all sang a song about the sea."
BUDGET_X = 5.0
VARIANTS = ("sprites", "mesh")


def avatars(workdir: Path) -> dict[str, Path]:
    """The example avatar and one from the example LANCZOS-upscaled to 1024 px."""
    hero = Image.open(HERO).convert("RGB")
    scale = 1024 / max(hero.size)
    big = workdir / "hero_1024.jpg"
    hero.resize((round(hero.width * scale), round(hero.height * scale)),
                Image.LANCZOS).save(big, quality=95)
    out = {}
    for label, photo in (("example", HERO), ("1024 px", big)):
        out[label] = Path(build_avatar(photo, workdir / label.replace(" ", ""),
                                       BuildOptions()).output)
    return out


def speed(folder: Path, speech, variant: str, runs: int, workdir: Path) -> dict[str, float]:  # noqa: ANN001
    avatar = load_avatar(folder)
    _ = avatar.frames
    opts = PreviewOptions(variant=variant)
    plan = plan_frames(speech.weights, speech.duration_ms, avatar.fps, opts)
    mouth = make_variant(avatar, variant)
    draw, total = [], []
    for _ in range(runs):
        t = time.perf_counter()
        for _frame in render_frames(avatar, mouth, plan):
            pass
        draw.append(time.perf_counter() - t)
        result = render_preview(avatar, speech, workdir / f"{variant}.mp4", opts)
        total.append(result.render_s)
    seconds = plan.duration_s
    return {"w": avatar.size[0], "h": avatar.size[1], "video_s": seconds,
            "draw_ms": 1000 * statistics.median(draw) / plan.frames,
            "total_ms": 1000 * statistics.median(total) / plan.frames,
            "speed": seconds / statistics.median(total)}


def quality(folder: Path, speech, variant: str, workdir: Path) -> dict[str, float]:  # noqa: ANN001
    avatar = load_avatar(folder)
    out = workdir / f"q_{variant}.mp4"
    result = render_preview(avatar, speech, out, PreviewOptions(variant=variant))
    frames = read_video(out)
    points = q.redetect(frames)
    opening = np.array([regions.inner_lip_opening(p) for p in points])
    mesh = avatar.mesh
    openness = class_openness([mesh.centre_gap(t) for t in mesh.targets])
    weights = result.plan.weights
    r = float(np.corrcoef(open_weight(weights, openness), opening)[0, 1])
    mbp = weights[:, CLASS_INDEX["MBP"]] >= 0.9
    errors = []
    for i, w in enumerate(weights):
        off = mesh.offsets(w).reshape(mesh.rows, mesh.cols, 2)[2:6]
        moved = np.stack([off[:, c].mean(axis=0) for c in mesh.corner_cols])
        pred = avatar.track.apply(i, avatar.landmarks[[61, 291]] + moved)
        errors.append(np.linalg.norm(pred - points[i][[61, 291]], axis=1))
    idle = avatar.frames
    rest = [i for i in range(len(weights)) if weights[i, CLASS_INDEX["Rest"]] == 1.0]
    diff = np.stack([frames[i].astype(int) - idle[i % len(idle)] for i in rest])
    return {"r": r, "rest_open": float(np.median(opening[:result.plan.lead_frames])),
            "mbp_open": float(np.median(opening[mbp])), "ai_open": float(opening.max()),
            "corner_med": float(np.median(errors)), "corner_p90": float(np.percentile(errors, 90)),
            "rest_abs": float(np.abs(diff).mean()),
            "rest_bias": float(np.abs(diff.reshape(-1, 3).mean(axis=0)).max()),
            "sync_ms": sync_offset_ms(avatar, variant, workdir)}


def sync_offset_ms(avatar, variant: str, workdir: Path) -> float:  # noqa: ANN001
    """Mouth opening minus audio onset (ms) on a tone that starts between two video frames,
    with a timeline opening the mouth exactly while it sounds; both read from the MP4."""
    rate, onset = 22050, 0.713
    t = np.arange(int(1.6 * rate)) / rate
    tone = 0.5 * np.sin(2 * np.pi * 330 * t) * ((t >= onset) & (t < onset + 0.3))
    wav = workdir / "tone.wav"
    import wave

    with wave.open(str(wav), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes((tone * 32767).astype("<i2").tobytes())
    events = [{"pts_ms": round(k * 1000 / 60),
               "weights": {"AI": 1.0} if onset <= k / 60 < onset + 0.3 else {"Rest": 1.0}}
              for k in range(97)]
    timeline = workdir / "tone.json"
    timeline.write_text(json.dumps({"fps": 60, "duration_ms": 1600, "events": events}))
    out = workdir / "sync.mp4"
    result = render_preview(avatar, speech_from_files(wav, timeline), out,
                            PreviewOptions(variant=variant, ramp_ms=0))
    audio = read_audio(out)
    loud = np.flatnonzero(np.abs(audio.samples) > 0.05 * 32768)
    audio_at = loud[0] / audio.sample_rate
    opening = np.array([regions.inner_lip_opening(p) for p in q.redetect(read_video(out))])
    rest = np.median(opening[:result.plan.lead_frames])
    first = int(np.flatnonzero(opening > rest + 0.5 * (opening.max() - rest))[0])
    return 1000 * (first / result.plan.fps - audio_at)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="timed renders per case (median)")
    parser.add_argument("--no-quality", action="store_true", help="speed only")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, quiet_native_stderr():
        workdir = Path(tmp)
        folders = avatars(workdir)
        t = time.perf_counter()
        speech = speech_from_text(SENTENCE)
        tts_s = time.perf_counter() - t
        rows = {(label, v): speed(folder, speech, v, args.runs, workdir)
                for label, folder in folders.items() for v in VARIANTS}
        checks = {} if args.no_quality else {
            v: quality(folders["example"], speech, v, workdir) for v in VARIANTS}

    print(f"avatarkit preview: {speech.duration_ms / 1000:.2f} s of speech "
          f"(+0.5 s lead-in and tail), median of {args.runs} runs; TTS took {tts_s:.2f} s apart")
    print(f"{'avatar':<20}{'variant':<10}{'draw ms/f':>11}{'total ms/f':>12}{'x real time':>13}")
    for (label, variant), row in rows.items():
        size = f"{label} ({row['w']}x{row['h']})"
        print(f"{size:<20}{variant:<10}{row['draw_ms']:>11.2f}{row['total_ms']:>12.2f}"
              f"{row['speed']:>13.1f}")
    for variant in VARIANTS:
        value = rows[("example", variant)]["speed"]
        verdict = "ok" if value >= BUDGET_X else "UNDER BUDGET"
        print(f"budget: example {variant} {value:.1f}x >= {BUDGET_X:g}x real time: {verdict}")
    if checks:
        print("\nquality on the decoded example MP4 (re-detected landmarks):")
        print(f"{'variant':<10}{'r(open)':>9}{'rest px':>9}{'MBP px':>8}{'max px':>8}"
              f"{'corner med':>12}{'p90':>6}{'Rest |d|':>10}{'bias':>6}{'sync ms':>9}")
        for v, c in checks.items():
            print(f"{v:<10}{c['r']:>9.3f}{c['rest_open']:>9.1f}{c['mbp_open']:>8.1f}"
                  f"{c['ai_open']:>8.1f}{c['corner_med']:>12.2f}{c['corner_p90']:>6.2f}"
                  f"{c['rest_abs']:>10.2f}{c['rest_bias']:>6.2f}{c['sync_ms']:>+9.0f}")


if __name__ == "__main__":
    main()
