"""One ONNX Runtime session of a user's Wav2Lip-compatible model, run in batches.

`OnnxRunner.run(mels, faces)` takes float32 model inputs of any batch size and returns the
float32 patches. It splits work into batches the model accepts (`max_batch`, or the model's
own fixed batch, padding the last one), casts for fp16 models, and on a GPU binds inputs and
outputs to device memory so a batch crosses the bus once each way.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from avatarkit.errors import AvatarkitError
from avatarkit.roi import providers
from avatarkit.roi.contract import ModelContract, read_contract
from avatarkit.roi.mel import MEL_STEP, N_MELS
from avatarkit.roi.providers import RunnerOptions


def _import_ort() -> Any:
    try:
        import onnxruntime as ort
    except ImportError as exc:
        raise AvatarkitError("the ONNX variant needs onnxruntime: pip install 'avatarkit[onnx]' "
                             "(or 'avatarkit[gpu]' for CUDA/TensorRT)") from exc
    return ort


class OnnxRunner:
    """A loaded, contract-checked model. Thread-safe: `run` may be called from any thread."""

    def __init__(self, model: str | Path, options: RunnerOptions | None = None) -> None:
        self.options = options or RunnerOptions()
        self.options.validate()
        ort = _import_ort()
        self.path = Path(model)
        if not self.path.is_file():
            raise AvatarkitError(f"ONNX model {self.path} not found")
        wanted = providers.choose(self.options)
        try:
            self.session = ort.InferenceSession(
                str(self.path), sess_options=providers.session_options(self.options),
                providers=[providers.provider_config(p, self.options) for p in wanted])
        except Exception as exc:  # onnxruntime raises its own Fail/InvalidProtobuf/... types
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise AvatarkitError(f"could not load the ONNX model {self.path.name}: {first}") \
                from exc
        self.provider = providers.check_active(wanted, self.session.get_providers(),
                                               self.options)
        self.contract: ModelContract = read_contract(self.session, self.path.name)
        self._bind = self.options.io_binding and self.provider in ("cuda", "tensorrt")

    @property
    def size(self) -> int:
        """S: the side of the model's face input and output."""
        return self.contract.size

    @property
    def batch_limit(self) -> int:
        """Frames per inference call (the model's fixed batch, else `max_batch`)."""
        return self.contract.batch or self.options.max_batch

    def run(self, mels: np.ndarray, faces: np.ndarray) -> np.ndarray:
        """mels [B,1,80,16] and faces [B,6,S,S] (float, [0,1] faces) -> [B,3,S,S] float32."""
        s = self.size
        mels = np.asarray(mels)
        faces = np.asarray(faces)
        if mels.ndim == 3:
            mels = mels[:, None]
        if mels.shape[1:] != (1, N_MELS, MEL_STEP) or faces.shape[1:] != (6, s, s) \
                or len(mels) != len(faces):
            raise AvatarkitError(f"model inputs must be mel [B,1,80,16] and face [B,6,{s},{s}] "
                                 f"with one batch size; got {list(mels.shape)} and "
                                 f"{list(faces.shape)}")
        n = len(mels)
        out = np.empty((n, 3, s, s), dtype=np.float32)
        step = self.batch_limit
        for i in range(0, n, step):
            m, f = mels[i:i + step], faces[i:i + step]
            k = len(m)
            if self.contract.batch and k < self.contract.batch:  # fixed-batch model: pad
                pad = self.contract.batch - k
                m = np.concatenate([m, np.repeat(m[-1:], pad, axis=0)])
                f = np.concatenate([f, np.repeat(f[-1:], pad, axis=0)])
            out[i:i + k] = self._run_batch(m, f)[:k]
        np.clip(out, 0.0, 1.0, out=out)
        return out

    def _run_batch(self, mels: np.ndarray, faces: np.ndarray) -> np.ndarray:
        dtype = self.contract.input_dtype
        feeds = {self.contract.audio: np.ascontiguousarray(mels, dtype=dtype),
                 self.contract.face: np.ascontiguousarray(faces, dtype=dtype)}
        try:
            if self._bind:
                result = self._run_bound(feeds)
            else:
                result = self.session.run([self.contract.output], feeds)[0]
        except Exception as exc:
            raise AvatarkitError(f"inference with {self.path.name} failed: "
                                 f"{str(exc).strip().splitlines()[0]}") from exc
        return np.asarray(result, dtype=np.float32)

    def _run_bound(self, feeds: dict[str, np.ndarray]) -> np.ndarray:
        """GPU path: copy inputs to device memory once, keep the output there until the end."""
        ort = _import_ort()
        binding = self.session.io_binding()
        for name, array in feeds.items():
            value = ort.OrtValue.ortvalue_from_numpy(array, "cuda", self.options.device_id)
            binding.bind_ortvalue_input(name, value)
        binding.bind_output(self.contract.output, "cuda", self.options.device_id)
        self.session.run_with_iobinding(binding)
        return binding.copy_outputs_to_cpu()[0]
