"""Execution providers and session settings: TensorRT, then CUDA, then the CPU.

The best provider present in the installed onnxruntime wheel is used unless the caller asks
for one. Asking for a provider that is missing is an error (the user expects a GPU and would
otherwise get a silently slow CPU run); automatic selection that ends up on the CPU, or on a
lesser provider than it asked onnxruntime for, warns.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from typing import Any

from avatarkit.errors import AvatarkitError, AvatarkitWarning

PROVIDER_NAMES = {
    "tensorrt": "TensorrtExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "cpu": "CPUExecutionProvider",
}
PREFERENCE = ("tensorrt", "cuda", "cpu")
CHOICES = ("auto", *PREFERENCE)
GPU_HINT = "install onnxruntime-gpu instead of onnxruntime (pip install 'avatarkit[gpu]')"


@dataclass(frozen=True)
class RunnerOptions:
    """How the ONNX model runs. Every field has a default that suits one machine."""

    provider: str = "auto"  # 'auto' (TensorRT -> CUDA -> CPU) | 'tensorrt' | 'cuda' | 'cpu'
    device_id: int = 0  # GPU index for CUDA / TensorRT
    intra_op_threads: int = 0  # threads inside one operator; 0 = one per CPU core
    inter_op_threads: int = 1  # threads across independent operators (graphs here are serial)
    spinning: bool = False  # let idle ORT threads spin; off, so shared machines stay responsive
    max_batch: int = 32  # most frames per inference call; larger requests are split
    io_binding: bool = True  # on GPU, inputs and outputs live in device memory during a run
    trt_fp16: bool = False  # TensorRT may build fp16 engines for an fp32 model
    trt_cache_dir: str | None = None  # where TensorRT keeps built engines (None = no cache)

    def validate(self) -> None:
        if self.provider not in CHOICES:
            raise AvatarkitError(f"unknown provider {self.provider!r}: use one of "
                                 f"{', '.join(CHOICES)}")
        if self.intra_op_threads < 0 or self.inter_op_threads < 0:
            raise AvatarkitError("thread counts must be 0 (automatic) or positive")
        if self.max_batch < 1:
            raise AvatarkitError(f"max_batch must be at least 1, got {self.max_batch}")

    @property
    def intra_threads(self) -> int:
        return self.intra_op_threads or (os.cpu_count() or 1)


def available() -> list[str]:
    """Provider names the installed onnxruntime offers."""
    import onnxruntime as ort

    return list(ort.get_available_providers())


def choose(options: RunnerOptions, present: list[str] | None = None) -> list[str]:
    """Ordered short names ('tensorrt', 'cuda', 'cpu') to hand to onnxruntime.

    A GPU provider is followed by the ones below it, so nodes it cannot run fall back.
    """
    present = available() if present is None else present
    have = [p for p in PREFERENCE if PROVIDER_NAMES[p] in present]
    if options.provider != "auto":
        if options.provider not in have:
            hint = f"; {GPU_HINT}" if options.provider != "cpu" else ""
            raise AvatarkitError(
                f"execution provider {options.provider!r} is not available in this onnxruntime "
                f"(available: {', '.join(have) or 'none'}){hint}")
        return have[have.index(options.provider):]
    if not have:
        raise AvatarkitError("onnxruntime offers no usable execution provider")
    if have[0] == "cpu":
        warnings.warn(f"no GPU execution provider available, running the ONNX model on the CPU "
                      f"(slow); {GPU_HINT}", AvatarkitWarning, stacklevel=3)
    return have


def provider_config(name: str, options: RunnerOptions) -> tuple[str, dict[str, Any]]:
    """(onnxruntime provider name, provider options) for one short name."""
    if name == "tensorrt":
        cfg: dict[str, Any] = {"device_id": options.device_id,
                               "trt_fp16_enable": options.trt_fp16}
        if options.trt_cache_dir:
            cfg.update(trt_engine_cache_enable=True, trt_engine_cache_path=options.trt_cache_dir)
        return PROVIDER_NAMES[name], cfg
    if name == "cuda":
        return PROVIDER_NAMES[name], {"device_id": options.device_id}
    return PROVIDER_NAMES[name], {}


def session_options(options: RunnerOptions) -> Any:
    """onnxruntime SessionOptions with the thread settings spelled out."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = options.intra_threads
    so.inter_op_num_threads = options.inter_op_threads
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.add_session_config_entry("session.intra_op.allow_spinning",
                                "1" if options.spinning else "0")
    so.log_severity_level = 3  # errors only: ORT's own warnings are not the user's business
    return so


def check_active(wanted: list[str], active: list[str], options: RunnerOptions) -> str:
    """The provider actually running the model; onnxruntime drops a GPU provider silently when
    its libraries fail to load, which is an error when asked for and a warning otherwise."""
    short = {v: k for k, v in PROVIDER_NAMES.items()}
    got = [short[p] for p in active if p in short]
    first = got[0] if got else "cpu"
    if first != wanted[0]:
        msg = (f"onnxruntime could not start the {wanted[0]!r} provider (CUDA/cuDNN/TensorRT "
               f"libraries missing or no GPU?); running on {first!r}")
        if options.provider != "auto":
            raise AvatarkitError(msg)
        warnings.warn(msg, AvatarkitWarning, stacklevel=3)
    return first
