"""The Wav2Lip model contract: which input is the mel, which the face, how big, which batch.

Users bring their own `.onnx` exports and name the tensors differently (`mel_spectrogram`,
`audio`, `input_1`, ...), so inputs are identified by shape: the audio is [B, 1, 80, 16], the
face [B, 6, S, S], the output [B, 3, S, S]. Names only break a tie. A model that does not fit
fails here, before any frame is rendered, with a message that says what was expected and what
the file has.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from avatarkit.errors import AvatarkitError

AUDIO_NAMES = ("mel_spectrogram", "audio", "mel", "audio_sequences")
FACE_NAMES = ("video_frames", "face", "faces", "face_sequences", "video")
EXPECTED = "audio [B,1,80,16] and face [B,6,S,S] in, [B,3,S,S] out (S = 96, 128, 256, ...)"
_DTYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16}


@dataclass(frozen=True)
class ModelContract:
    """What the runner needs to know about a model file."""

    audio: str  # name of the mel input
    face: str  # name of the face input
    output: str  # name of the patch output
    size: int  # S: the face crop side in pixels
    batch: int | None  # fixed batch size of the model, None when dynamic
    input_dtype: type  # np.float32 or np.float16 (fp16 models get cast inputs)
    output_dtype: type


def _dim(d: Any) -> int | None:
    """A fixed dimension as int, a symbolic one ('B', 'batch', -1, None) as None."""
    return d if isinstance(d, int) and d > 0 else None


def _describe(args: list) -> str:
    return ", ".join(f"{a.name} {_shape_str(a.shape)} {a.type}" for a in args) or "none"


def _shape_str(shape: list) -> str:
    return "[" + ",".join(str(d) if d not in (None, -1) else "?" for d in shape) + "]"


def _fits(shape: list, tail: tuple) -> bool:
    """shape is [B, *tail] where None in tail means 'any fixed or symbolic size'."""
    if len(shape) != 1 + len(tail):
        return False
    return all(t is None or _dim(d) in (None, t) for d, t in zip(shape[1:], tail, strict=True))


def _pick(candidates: list, names: tuple[str, ...]) -> Any | None:
    if len(candidates) == 1:
        return candidates[0]
    named = [c for c in candidates if c.name.lower() in names]
    return named[0] if len(named) == 1 else None


def read_contract(session: Any, source: str = "model") -> ModelContract:
    """Check an onnxruntime session's inputs/outputs against the Wav2Lip contract.

    Raises AvatarkitError naming what was expected and what `source` has.
    """
    inputs, outputs = session.get_inputs(), session.get_outputs()
    found = f"found inputs: {_describe(inputs)}; outputs: {_describe(outputs)}"

    def fail(why: str) -> AvatarkitError:
        return AvatarkitError(f"{source} is not a Wav2Lip-compatible model ({why}): expected "
                              f"{EXPECTED}; {found}")

    if len(inputs) != 2:
        raise fail(f"{len(inputs)} inputs instead of 2")
    for arg in [*inputs, *outputs]:
        if arg.type not in _DTYPES:
            raise fail(f"{arg.name} is {arg.type}, not float32/float16")
    audio = _pick([a for a in inputs if _fits(a.shape, (1, 80, 16))], AUDIO_NAMES)
    faces = [a for a in inputs if a is not audio and len(a.shape) == 4
             and _dim(a.shape[1]) == 6]
    face = _pick(faces, FACE_NAMES)
    if audio is None:
        raise fail("no input of shape [B,1,80,16] for the mel")
    if face is None:
        raise fail("no input of shape [B,6,S,S] for the face")
    side_h, side_w = _dim(face.shape[2]), _dim(face.shape[3])
    if side_h is None or side_w is None or side_h != side_w or side_h < 32:
        raise fail(f"face input {face.name} {_shape_str(face.shape)} is not a fixed square S x S")
    size = side_h
    patch = [o for o in outputs if _fits(o.shape, (3, size, size))]
    if not patch:
        raise fail(f"no output of shape [B,3,{size},{size}]")
    batch_dims = {_dim(audio.shape[0]), _dim(face.shape[0]), _dim(patch[0].shape[0])}
    fixed = {b for b in batch_dims if b is not None}
    if len(fixed) > 1:
        raise fail(f"inputs disagree on the batch size ({sorted(fixed)})")
    if audio.type != face.type:
        raise fail(f"{audio.name} is {audio.type} but {face.name} is {face.type}")
    return ModelContract(
        audio=audio.name, face=face.name, output=patch[0].name, size=size,
        batch=fixed.pop() if fixed else None,
        input_dtype=_DTYPES[audio.type], output_dtype=_DTYPES[patch[0].type])
