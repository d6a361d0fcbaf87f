"""Variant C: a user's Wav2Lip-compatible ONNX model on the mouth ROI.

Stages, one module each: `contract` (is this file a Wav2Lip model, which input is which),
`mel` (Wav2Lip's audio features, batch and streaming), `faces` (the face box cut from the idle
frame), `providers` (TensorRT -> CUDA -> CPU, threads), `runner` (a batched session),
`batcher` (one worker per device batching frames of many sessions), `paste` (blend back with
the feathered mask and colour matching), `avatar` (what an avatar folder gives this variant)
and `lipsync` (the offline recipe).
"""

from avatarkit.roi.avatar import RoiAvatar, load_avatar
from avatarkit.roi.batcher import BatcherOptions, InferenceBatcher
from avatarkit.roi.contract import ModelContract, read_contract
from avatarkit.roi.faces import FaceBox, crop_face, face_box, face_input, face_inputs
from avatarkit.roi.lipsync import lipsync_frames
from avatarkit.roi.mel import MelStream, frame_count, mel_window, mel_windows, melspectrogram
from avatarkit.roi.paste import PasteGeometry, colour_match, mouth_patch, paste, paste_geometry
from avatarkit.roi.providers import RunnerOptions
from avatarkit.roi.runner import OnnxRunner

__all__ = [
    "BatcherOptions", "FaceBox", "InferenceBatcher", "MelStream", "ModelContract", "OnnxRunner",
    "PasteGeometry", "RoiAvatar", "RunnerOptions", "colour_match", "crop_face", "face_box",
    "face_input", "face_inputs", "frame_count", "lipsync_frames", "load_avatar", "mel_window",
    "mel_windows", "melspectrogram", "mouth_patch", "paste", "paste_geometry", "read_contract",
]
