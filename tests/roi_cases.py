"""Small ONNX models of the Wav2Lip signature, built with the onnx helper API (no downloads).

The audio-driven model passes the reference face through and paints the mouth area of the
face box with a grey level set by the mean mel value: silence (mel -4) gives black, speech a
light grey, so a test can see from pixels whether the mouth follows the audio.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

# Where the fake "mouth" sits in the S x S face box (rows, cols as fractions of S): around the
# lips, which the Wav2Lip-style box puts at about 3/4 of its height.
MOUTH_ROWS = (0.62, 0.86)
MOUTH_COLS = (0.32, 0.68)


def mouth_region(size: int) -> np.ndarray:
    m = np.zeros((size, size), dtype=np.float32)
    r0, r1 = (int(f * size) for f in MOUTH_ROWS)
    c0, c1 = (int(f * size) for f in MOUTH_COLS)
    m[r0:r1, c0:c1] = 1.0
    return m


def _save(graph: onnx.GraphProto, path: Path) -> Path:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def audio_driven_model(path: Path, size: int = 96, batch: int | str = "B", fp16: bool = False,
                       names: tuple[str, str] = ("mel_spectrogram", "video_frames"),
                       output: str = "output", shift: float = 0.0) -> Path:
    """Output = reference face, except the mouth area = (mean(mel) + 4) / 8; `shift` adds a
    constant to the whole output (a model with a colour cast, for colour matching)."""
    elem = TensorProto.FLOAT16 if fp16 else TensorProto.FLOAT
    mel_name, face_name = names
    inputs = [helper.make_tensor_value_info(mel_name, elem, [batch, 1, 80, 16]),
              helper.make_tensor_value_info(face_name, elem, [batch, 6, size, size])]
    outputs = [helper.make_tensor_value_info(output, elem, [batch, 3, size, size])]
    region = mouth_region(size)[None, None]
    inits = [
        numpy_helper.from_array(region, "region"),
        numpy_helper.from_array(1.0 - region, "keep"),
        numpy_helper.from_array(np.array([3], dtype=np.int64), "c3"),
        numpy_helper.from_array(np.array([6], dtype=np.int64), "c6"),
        numpy_helper.from_array(np.array([1], dtype=np.int64), "axis1"),
        numpy_helper.from_array(np.array(4.0, dtype=np.float32), "four"),
        numpy_helper.from_array(np.array(0.125, dtype=np.float32), "eighth"),
        numpy_helper.from_array(np.array(shift, dtype=np.float32), "shift"),
    ]
    nodes = []
    mel, face = mel_name, face_name
    if fp16:
        nodes += [helper.make_node("Cast", [mel_name], ["mel32"], to=TensorProto.FLOAT),
                  helper.make_node("Cast", [face_name], ["face32"], to=TensorProto.FLOAT)]
        mel, face = "mel32", "face32"
    nodes += [
        helper.make_node("Slice", [face, "c3", "c6", "axis1"], ["ref"]),
        helper.make_node("ReduceMean", [mel], ["energy"], axes=[1, 2, 3], keepdims=1),
        helper.make_node("Add", ["energy", "four"], ["e4"]),
        helper.make_node("Mul", ["e4", "eighth"], ["level"]),
        helper.make_node("Mul", ["ref", "keep"], ["face_part"]),
        helper.make_node("Mul", ["level", "region"], ["mouth_part"]),
        helper.make_node("Add", ["face_part", "mouth_part"], ["sum"]),
        helper.make_node("Add", ["sum", "shift"], ["out32" if fp16 else output]),
    ]
    if fp16:
        nodes.append(helper.make_node("Cast", ["out32"], [output], to=TensorProto.FLOAT16))
    graph = helper.make_graph(nodes, "wav2lip_like", inputs, outputs, inits)
    return _save(graph, path)


def wrong_signature_model(path: Path) -> Path:
    """Face input with 3 channels and a 64 px output: not the Wav2Lip contract."""
    inputs = [helper.make_tensor_value_info("mel_spectrogram", TensorProto.FLOAT,
                                            ["B", 1, 80, 16]),
              helper.make_tensor_value_info("video_frames", TensorProto.FLOAT,
                                            ["B", 3, 96, 96])]
    outputs = [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["B", 3, 96, 96])]
    graph = helper.make_graph([helper.make_node("Identity", ["video_frames"], ["output"])],
                              "wrong", inputs, outputs)
    return _save(graph, path)


def reference_outputs(mels: np.ndarray, faces: np.ndarray, shift: float = 0.0) -> np.ndarray:
    """What `audio_driven_model` computes, in numpy (float64)."""
    size = faces.shape[-1]
    region = mouth_region(size)[None, None]
    level = (mels.astype(np.float64).mean(axis=(1, 2, 3), keepdims=True) + 4) / 8
    return faces[:, 3:6] * (1 - region) + level * region + shift
