"""Index sets into mediapipe's 478-point face mesh, named for the regions we use."""

import numpy as np

# Lip contours, each running from the image-left mouth corner to the image-right corner.
LIPS_OUTER_UPPER = (61, 185, 40, 39, 37, 0, 267, 269, 270, 409, 291)
LIPS_OUTER_LOWER = (61, 146, 91, 181, 84, 17, 314, 405, 321, 375, 291)
LIPS_INNER_UPPER = (78, 191, 80, 81, 82, 13, 312, 311, 310, 415, 308)
LIPS_INNER_LOWER = (78, 95, 88, 178, 87, 14, 317, 402, 318, 324, 308)
LIPS_ALL = tuple(sorted(set(LIPS_OUTER_UPPER + LIPS_OUTER_LOWER + LIPS_INNER_UPPER
                            + LIPS_INNER_LOWER)))

MOUTH_LEFT, MOUTH_RIGHT = 61, 291  # outer corners (image left / right)
INNER_LIP_TOP, INNER_LIP_BOTTOM = 13, 14  # centre of the inner contour
OUTER_LIP_TOP, OUTER_LIP_BOTTOM = 0, 17

# Face outline, clockwise from the forehead top.
FACE_OVAL = (10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379, 378,
             400, 377, 152, 148, 176, 149, 150, 136, 172, 58, 132, 93, 234, 127, 162, 21, 54,
             103, 67, 109)
# The jaw part of the outline (image left to right, through the chin).
JAW = (172, 136, 150, 149, 176, 148, 152, 377, 400, 378, 379, 365, 397)
CHIN = 152
NOSE_TIP, SUBNASALE = 1, 2
CHEEK_LEFT, CHEEK_RIGHT = 234, 454  # outline points at eye height (image left / right)

# Eyes for the eye aspect ratio: (outer corner, inner corner, upper lid pair, lower lid pair).
EYE_IMAGE_LEFT = {"corners": (33, 133), "upper": (160, 158), "lower": (144, 153),
                  "upper_lid": (246, 161, 160, 159, 158, 157, 173),
                  "lower_lid": (7, 163, 144, 145, 153, 154, 155)}
EYE_IMAGE_RIGHT = {"corners": (263, 362), "upper": (387, 385), "lower": (373, 380),
                   "upper_lid": (466, 388, 387, 386, 385, 384, 398),
                   "lower_lid": (249, 390, 373, 374, 380, 381, 382)}
# Eyebrows above the image-left / image-right eye (upper then lower edge, outer to inner).
BROW_IMAGE_LEFT = (70, 63, 105, 66, 107, 46, 53, 52, 65, 55)
BROW_IMAGE_RIGHT = (300, 293, 334, 296, 336, 276, 283, 282, 295, 285)
IRIS_IMAGE_LEFT = tuple(range(468, 473))
IRIS_IMAGE_RIGHT = tuple(range(473, 478))


def eye_aspect_ratio(points: np.ndarray, eye: dict) -> float:
    """Lid opening over eye width: about 0.25-0.35 open, under 0.1 closed."""
    a, b = eye["corners"]
    (u1, u2), (l1, l2) = eye["upper"], eye["lower"]
    vertical = np.linalg.norm(points[u1] - points[l1]) + np.linalg.norm(points[u2] - points[l2])
    return float(vertical / (2.0 * np.linalg.norm(points[a] - points[b]) + 1e-9))


def inner_lip_opening(points: np.ndarray) -> float:
    """Mean gap between the inner lip contours over the middle of the mouth, in pixels."""
    upper = points[list(LIPS_INNER_UPPER[3:8])]
    lower = points[list(LIPS_INNER_LOWER[3:8])]
    return float(np.mean(np.linalg.norm(upper - lower, axis=1)))


def mouth_width(points: np.ndarray) -> float:
    """Distance between the outer mouth corners, in pixels."""
    return float(np.linalg.norm(points[MOUTH_LEFT] - points[MOUTH_RIGHT]))
