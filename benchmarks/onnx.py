"""Variant C throughput: a full-size Wav2Lip-architecture generator (random weights) exported to
ONNX and run through avatarkit.roi's runner, single-stream and batched.

    .venv/bin/pip install torch --index-url https://download.pytorch.org/whl/cpu   # once
    .venv/bin/pip install onnxconverter-common                                     # fp16
    .venv/bin/python benchmarks/onnx.py                          # CPU here
    .venv/bin/python benchmarks/onnx.py --provider cuda          # on a GPU machine with
    .venv/bin/python benchmarks/onnx.py --provider tensorrt      #   onnxruntime-gpu installed

PyTorch is a benchmark-only dependency (it builds and exports the network; avatarkit never
imports it). No weights are downloaded: a Wav2Lip user brings their own; speed does not depend
on the weight values. The network follows the Wav2Lip paper's generator: a face encoder of
strided conv blocks with residual convs (96 -> 1 px, 6 -> 512 channels), an audio encoder over
the 80x16 mel (-> 512), and a decoder of transposed convs that concatenates the encoder's
feature map of the same size at every step (U-Net skips), ending in a sigmoid RGB output.
Printed: parameter count, MACs per frame, then frames/s per batch size (median of --runs),
the per-frame CPU cost of face crops and paste-back at the example's size, and for a GPU how
many concurrent 25 fps sessions one device holds (batched frames/s / 25).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
# This file is called onnx.py: drop its folder from the path so `import onnx` (inside PyTorch's
# exporter too) finds the real package, not this script.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(ROOT))

from avatarkit.errors import AvatarkitWarning  # noqa: E402
from avatarkit.roi import OnnxRunner, RunnerOptions  # noqa: E402

try:
    import torch
    from torch import nn
except ImportError:  # pragma: no cover - printed for the user
    sys.exit("benchmarks/onnx.py needs PyTorch (CPU is enough):\n  .venv/bin/pip install torch "
             "--index-url https://download.pytorch.org/whl/cpu")


class Conv(nn.Module):
    """Conv + BatchNorm + ReLU, optionally residual (Wav2Lip's Conv2d block)."""

    def __init__(self, cin: int, cout: int, k: int, s: int | tuple, p: int,
                 residual: bool = False) -> None:
        super().__init__()
        self.block = nn.Sequential(nn.Conv2d(cin, cout, k, s, p), nn.BatchNorm2d(cout))
        self.residual = residual

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.block(x)
        return torch.relu(out + x if self.residual else out)


class UpConv(nn.Module):
    """Transposed conv + BatchNorm + ReLU (the decoder's upsampling step)."""

    def __init__(self, cin: int, cout: int, k: int, s: int, p: int, op: int = 0) -> None:
        super().__init__()
        self.block = nn.Sequential(nn.ConvTranspose2d(cin, cout, k, s, p, op),
                                   nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.block(x))


def _res(c: int, n: int) -> list[nn.Module]:
    return [Conv(c, c, 3, 1, 1, residual=True) for _ in range(n)]


class Wav2LipGenerator(nn.Module):
    """Wav2Lip's generator at 96 x 96: mel [B,1,80,16] + face [B,6,96,96] -> [B,3,96,96]."""

    def __init__(self) -> None:
        super().__init__()
        self.face_encoder = nn.ModuleList([
            nn.Sequential(Conv(6, 16, 7, 1, 3)),                                   # 96
            nn.Sequential(Conv(16, 32, 3, 2, 1), *_res(32, 2)),                    # 48
            nn.Sequential(Conv(32, 64, 3, 2, 1), *_res(64, 3)),                    # 24
            nn.Sequential(Conv(64, 128, 3, 2, 1), *_res(128, 2)),                  # 12
            nn.Sequential(Conv(128, 256, 3, 2, 1), *_res(256, 2)),                 # 6
            nn.Sequential(Conv(256, 512, 3, 2, 1), *_res(512, 1)),                 # 3
            nn.Sequential(Conv(512, 512, 3, 1, 0), Conv(512, 512, 1, 1, 0)),       # 1
        ])
        self.audio_encoder = nn.Sequential(
            Conv(1, 32, 3, 1, 1), *_res(32, 2),
            Conv(32, 64, 3, (3, 1), 1), *_res(64, 2),
            Conv(64, 128, 3, 3, 1), *_res(128, 2),
            Conv(128, 256, 3, (3, 2), 1), *_res(256, 1),
            Conv(256, 512, 3, 1, 0), Conv(512, 512, 1, 1, 0))
        self.face_decoder = nn.ModuleList([
            nn.Sequential(Conv(512, 512, 1, 1, 0)),                                # 1
            nn.Sequential(UpConv(1024, 512, 3, 1, 0), *_res(512, 1)),              # 3
            nn.Sequential(UpConv(1024, 512, 3, 2, 1, 1), *_res(512, 2)),           # 6
            nn.Sequential(UpConv(768, 384, 3, 2, 1, 1), *_res(384, 2)),            # 12
            nn.Sequential(UpConv(512, 256, 3, 2, 1, 1), *_res(256, 2)),            # 24
            nn.Sequential(UpConv(320, 128, 3, 2, 1, 1), *_res(128, 2)),            # 48
            nn.Sequential(UpConv(160, 64, 3, 2, 1, 1), *_res(64, 2)),              # 96
        ])
        self.output = nn.Sequential(Conv(80, 32, 3, 1, 1), nn.Conv2d(32, 3, 1, 1, 0),
                                    nn.Sigmoid())

    def forward(self, mel: torch.Tensor, face: torch.Tensor) -> torch.Tensor:
        x = face
        skips = []
        for block in self.face_encoder:
            x = block(x)
            skips.append(x)
        x = self.audio_encoder(mel)
        for block in self.face_decoder:
            x = torch.cat([block(x), skips.pop()], dim=1)
        return self.output(x)


def count_macs(model: nn.Module) -> int:
    """Multiply-accumulates of one 96x96 frame (convolutions; BatchNorm folds on export)."""
    total = 0

    def hook(mod: nn.Module, inputs: tuple, out: torch.Tensor) -> None:
        nonlocal total
        if isinstance(mod, nn.ConvTranspose2d):
            x = inputs[0]
            total += x[0].numel() * mod.out_channels * mod.kernel_size[0] * mod.kernel_size[1]
        elif isinstance(mod, nn.Conv2d):
            k = mod.in_channels // mod.groups * mod.kernel_size[0] * mod.kernel_size[1]
            total += out[0].numel() * k

    handles = [m.register_forward_hook(hook) for m in model.modules()
               if isinstance(m, nn.Conv2d | nn.ConvTranspose2d)]
    with torch.no_grad():
        model(torch.zeros(1, 1, 80, 16), torch.zeros(1, 6, 96, 96))
    for h in handles:
        h.remove()
    return total


def export(model: nn.Module, path: Path) -> None:
    """fp32 ONNX with a dynamic batch axis 'B' and the common Wav2Lip input names."""
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model, (torch.zeros(1, 1, 80, 16), torch.zeros(1, 6, 96, 96)), str(path),
            input_names=["mel_spectrogram", "video_frames"], output_names=["output"],
            dynamic_axes={"mel_spectrogram": {0: "B"}, "video_frames": {0: "B"},
                          "output": {0: "B"}}, opset_version=17, dynamo=False)


def to_fp16(src: Path, dst: Path) -> bool:
    """fp16 copy (inputs and outputs float16 too) via onnxconverter-common, if installed."""
    try:
        import onnx
        from onnxconverter_common import float16
    except ImportError:
        return False
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tiny random weights round to fp16's smallest values
        model = float16.convert_float_to_float16(onnx.load(str(src)), keep_io_types=False)
    onnx.save(model, str(dst))
    return True


def time_batches(runner: OnnxRunner, batches: list[int], runs: int) -> dict[int, float]:
    """Median seconds per call for each batch size (after one warm-up call)."""
    rng = np.random.default_rng(0)
    out = {}
    for b in batches:
        mels = rng.uniform(-4, 4, (b, 1, 80, 16)).astype(np.float32)
        faces = rng.uniform(0, 1, (b, 6, runner.size, runner.size)).astype(np.float32)
        runner.run(mels, faces)
        times = []
        for _ in range(runs):
            t0 = time.perf_counter()
            runner.run(mels, faces)
            times.append(time.perf_counter() - t0)
        out[b] = statistics.median(times)
    return out


def prep_and_paste_ms(runs: int = 20) -> tuple[float, float] | None:
    """CPU ms per frame for the face crop and the paste-back, on the example avatar."""
    from avatarkit.build import BuildOptions, build_avatar
    from avatarkit.idle import IdleOptions
    from avatarkit.native_stderr import quiet_native_stderr
    from avatarkit.roi import face_inputs, load_avatar, paste

    with tempfile.TemporaryDirectory() as d, quiet_native_stderr():
        build_avatar(ROOT / "examples" / "hero.jpg", Path(d), BuildOptions(
            idle=IdleOptions(seconds=3.0)))
        avatar = load_avatar(Path(d) / "hero")
    geom = avatar.geometry(96)
    patch = np.random.default_rng(1).uniform(0, 1, (3, 96, 96)).astype(np.float32)
    t0 = time.perf_counter()
    for i in range(runs):
        face_inputs([avatar.frame(i)], [avatar.affine(i)], avatar.box, 96)
    t1 = time.perf_counter()
    for i in range(runs):
        paste(avatar.frame(i), patch, avatar.affine(i), geom)
    t2 = time.perf_counter()
    return (t1 - t0) / runs * 1000, (t2 - t1) / runs * 1000


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--provider", default="auto", choices=["auto", "cpu", "cuda", "tensorrt"],
                    help="execution provider (default: auto = TensorRT -> CUDA -> CPU)")
    ap.add_argument("--batches", default="1,8,32", help="batch sizes (default 1,8,32)")
    ap.add_argument("--runs", type=int, default=5, help="timed runs per batch size (median)")
    ap.add_argument("--threads", type=int, default=0, help="intra-op threads (0 = all cores)")
    ap.add_argument("--no-fp16", action="store_true", help="skip the fp16 model")
    ap.add_argument("--keep", type=Path, help="write the .onnx files here (else a temp dir)")
    ap.add_argument("--trt-cache", type=Path, help="TensorRT engine cache folder")
    args = ap.parse_args()
    batches = [int(b) for b in args.batches.split(",")]

    torch.manual_seed(0)
    model = Wav2LipGenerator().eval()
    params = sum(p.numel() for p in model.parameters())
    macs = count_macs(model)
    print(f"Wav2Lip-architecture generator: {params / 1e6:.1f} M parameters, "
          f"{macs / 1e9:.2f} GMAC per 96x96 frame")

    with tempfile.TemporaryDirectory() as tmp:
        folder = args.keep or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        fp32 = folder / "wav2lip_random_fp32.onnx"
        t0 = time.perf_counter()
        export(model, fp32)
        print(f"exported {fp32.name} ({fp32.stat().st_size / 1e6:.0f} MB) in "
              f"{time.perf_counter() - t0:.1f} s")
        models = [("fp32", fp32)]
        fp16 = folder / "wav2lip_random_fp16.onnx"
        if not args.no_fp16:
            if to_fp16(fp32, fp16):
                models.append(("fp16", fp16))
            else:
                print("fp16: onnxconverter-common not installed (pip install "
                      "onnxconverter-common) - skipped")

        print(f"\n{'model':6} {'provider':9} {'batch':>5} {'ms/call':>9} {'frames/s':>9} "
              f"{'25fps sessions':>14}")
        for label, path in models:
            options = RunnerOptions(provider=args.provider, intra_op_threads=args.threads,
                                    max_batch=max(batches),
                                    trt_cache_dir=str(args.trt_cache) if args.trt_cache else None,
                                    trt_fp16=False)
            try:
                with warnings.catch_warnings(record=True) as caught:
                    warnings.simplefilter("always", AvatarkitWarning)
                    runner = OnnxRunner(path, options)
                    timings = time_batches(runner, batches, args.runs)
            except Exception as exc:  # e.g. fp16 kernels missing on this provider
                print(f"{label:6} {args.provider:9} failed: {str(exc).splitlines()[0][:120]}")
                continue
            for w in caught:
                print(f"  note: {w.message}")
            for b, sec in timings.items():
                fps = b / sec
                print(f"{label:6} {runner.provider:9} {b:5d} {sec * 1000:9.1f} {fps:9.1f} "
                      f"{fps / 25:14.1f}")

    costs = prep_and_paste_ms()
    if costs:
        print(f"\nCPU per frame besides the model (example avatar, 320x400): face crop + input "
              f"{costs[0]:.2f} ms, paste-back with colour matching {costs[1]:.2f} ms")


if __name__ == "__main__":
    main()
