"""Per-stage and total `avatarkit build` time: the example at its own size, and upscaled to
1024 px and 2048 px on the longer side. In-process with the landmark model warm (one untimed
build per size first), median of N forced builds.

    python benchmarks/build.py [--runs 5]

Budgets (issues 2, 3 and 13, on the 2-core development machine): mouth assets under 1 s for
the example; the whole build of the example, idle loop included, under 3 s; the whole build
of a 512 px photo (all assets and the 4 s loop) under 1.5 s.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from avatarkit.build import BuildOptions, build_avatar  # noqa: E402
from avatarkit.native_stderr import quiet_native_stderr  # noqa: E402

HERO = ROOT / "examples" / "hero.jpg"
BUDGETS_S = {("example", "mouth"): 1.0, ("example", "total"): 3.0, ("512 px", "total"): 1.5}


def photos(workdir: Path) -> dict[str, Path]:
    """The example, and LANCZOS-upscaled copies whose longer side is 512, 1024 and 2048 px."""
    hero = Image.open(HERO).convert("RGB")
    out = {"example": HERO}
    for side in (512, 1024, 2048):
        scale = side / max(hero.size)
        size = (round(hero.width * scale), round(hero.height * scale))
        path = workdir / f"hero_{side}.jpg"
        hero.resize(size, Image.LANCZOS).save(path, quality=95)
        out[f"{side} px"] = path
    return out


def measure(photo: Path, workdir: Path, runs: int) -> dict[str, float]:
    """Median seconds per stage over `runs` forced builds (after one warm-up build)."""
    options = BuildOptions(force=True)
    build_avatar(photo, workdir / "warm", options)
    samples: dict[str, list[float]] = {}
    for _ in range(runs):
        result = build_avatar(photo, workdir / "out", options)
        for stage, seconds in result.timings.items():
            samples.setdefault(stage, []).append(seconds)
    return {stage: statistics.median(values) for stage, values in samples.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="timed builds per size (median)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, quiet_native_stderr():
        workdir = Path(tmp)
        rows = {}
        for label, photo in photos(workdir).items():
            size = Image.open(photo).size
            rows[f"{label} ({size[0]}x{size[1]})"] = measure(photo, workdir, args.runs)

    stages = list(dict.fromkeys(s for timings in rows.values() for s in timings))
    stages = [s for s in stages if s != "total"] + ["total"]
    print(f"avatarkit build, median of {args.runs} runs, seconds")
    print(f"{'photo':<24}" + "".join(f"{s:>10}" for s in stages))
    for label, timings in rows.items():
        print(f"{label:<24}" + "".join(f"{timings.get(s, 0.0):>10.3f}" for s in stages))
    for (photo, stage), budget in BUDGETS_S.items():
        row = next((t for label, t in rows.items() if label.startswith(photo)), {})
        value = row.get(stage)
        if value is not None:
            verdict = "ok" if value < budget else "OVER BUDGET"
            print(f"budget: {photo} {stage} {value:.3f} s < {budget:g} s: {verdict}")


if __name__ == "__main__":
    main()
