"""What the model sees: a Wav2Lip-style face box cut from the idle-loop frame.

Wav2Lip was trained on face-detector boxes (brows to chin, 10 px extra below the chin at
~100-200 px faces) squeezed to S x S; its lower half is the part it redraws. A model fed a
tight mouth crop instead would see no face it knows, so the crop here mimics that box:

- in photo pixels (the frame `avatar.json` describes), a square of side
  max(face width, face height * (1 + BOTTOM_PAD)) whose bottom edge is the chin plus
  BOTTOM_PAD of the face height and whose centre column is the face's; the face height runs
  from the top of the face oval (forehead) to the chin, so the lips fall at about 3/4 of the
  box and the lower half (nose base to chin) holds the whole mouth region with margin;
- per idle-loop frame the box moves with the head: the crop is one `cv2.warpAffine` of the
  frame through (photo -> S x S) composed with the inverse of the frame's track affine
  (photo -> frame), so the head's micro motion never shifts the mouth inside the crop;
- large faces are cut at their own resolution and reduced with area averaging (no aliasing);
- model input: masked copy (rows S/2.. zeroed) and the unmasked reference, BGR, [0, 1],
  concatenated to 6 channels, NCHW.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from avatarkit.errors import AvatarkitError

BOTTOM_PAD = 0.05  # of the face height, below the chin (Wav2Lip's default pads: 10 px below)


@dataclass(frozen=True)
class FaceBox:
    """The model's square view of the face, in photo pixels."""

    x: float
    y: float
    side: float

    def to_model(self, size: int) -> np.ndarray:
        """2x3 affine from photo pixels to the S x S model crop."""
        k = size / self.side
        return np.array([[k, 0.0, -self.x * k], [0.0, k, -self.y * k]])

    def as_dict(self) -> dict[str, float]:
        return {"x": round(self.x, 3), "y": round(self.y, 3), "side": round(self.side, 3)}


def face_box(bbox: tuple[float, float, float, float] | list[float]) -> FaceBox:
    """The Wav2Lip-style square for a face whose oval spans bbox (x0, y0, x1, y1)."""
    x0, y0, x1, y1 = (float(v) for v in bbox)
    w, h = x1 - x0, y1 - y0
    if w <= 0 or h <= 0:
        raise AvatarkitError(f"face box {list(bbox)} is empty; rebuild the avatar")
    bottom = y1 + BOTTOM_PAD * h
    side = max(w, bottom - y0)
    return FaceBox(x=(x0 + x1) / 2 - side / 2, y=bottom - side, side=side)


def _h(m: np.ndarray) -> np.ndarray:
    return np.vstack([np.asarray(m, dtype=np.float64).reshape(2, 3), [0.0, 0.0, 1.0]])


def frame_to_model(box: FaceBox, track_affine: np.ndarray, size: int) -> np.ndarray:
    """2x3 affine from idle-frame pixels to the S x S crop (the track maps photo -> frame)."""
    return (_h(box.to_model(size)) @ np.linalg.inv(_h(track_affine)))[:2]


def model_to_frame(box: FaceBox, track_affine: np.ndarray, size: int) -> np.ndarray:
    """Inverse of `frame_to_model`: S x S crop pixels to idle-frame pixels."""
    return np.linalg.inv(_h(frame_to_model(box, track_affine, size)))[:2]


def crop_face(frame_bgr: np.ndarray, box: FaceBox, track_affine: np.ndarray,
              size: int) -> np.ndarray:
    """(S, S, 3) uint8 crop of the face box from one frame (same channel order as the frame)."""
    native = int(np.ceil(box.side * float(np.sqrt(abs(np.linalg.det(
        np.asarray(track_affine, dtype=np.float64).reshape(2, 3)[:, :2]))))))
    if native > 1.5 * size:  # cut at native resolution, then area-average down
        m = frame_to_model(box, track_affine, native)
        big = cv2.warpAffine(frame_bgr, m, (native, native), flags=cv2.INTER_LINEAR,
                             borderMode=cv2.BORDER_REPLICATE)
        return cv2.resize(big, (size, size), interpolation=cv2.INTER_AREA)
    m = frame_to_model(box, track_affine, size)
    return cv2.warpAffine(frame_bgr, m, (size, size), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REPLICATE)


def face_input(crop_bgr: np.ndarray, reference_bgr: np.ndarray | None = None) -> np.ndarray:
    """(6, S, S) float32 model input: lower half zeroed, then the reference, BGR in [0, 1]."""
    ref = crop_bgr if reference_bgr is None else reference_bgr
    masked = crop_bgr.copy()
    masked[crop_bgr.shape[0] // 2:] = 0
    both = np.concatenate([masked, ref], axis=2).astype(np.float32) * (1.0 / 255.0)
    return np.ascontiguousarray(both.transpose(2, 0, 1))


def face_inputs(frames_rgb: list[np.ndarray], affines: list[np.ndarray], box: FaceBox,
                size: int) -> np.ndarray:
    """(B, 6, S, S) batch for RGB frames and their track affines (the reference is the frame
    itself, as in Wav2Lip's inference)."""
    out = np.empty((len(frames_rgb), 6, size, size), dtype=np.float32)
    for i, (frame, affine) in enumerate(zip(frames_rgb, affines, strict=True)):
        out[i] = face_input(crop_face(frame, box, affine, size)[:, :, ::-1])
    return out
