"""The idle loop: the photo come alive (head motion, parallax, breathing, blinks), the mouth
track that keeps overlays on the moving mouth, and readers for both.

Names load on first use: the options are read by every command line, the loop itself pulls in
OpenCV and video encoding.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from avatarkit.lazy import lazy_getattr

if TYPE_CHECKING:
    from avatarkit.idle.encode import read_frames
    from avatarkit.idle.loop import IDLE_MP4, POSTER_PNG, IdleLoop, make_idle_loop
    from avatarkit.idle.options import IdleOptions
    from avatarkit.idle.track import TRACK_JSON, Track, read_track

#: Public name -> the module that defines it.
_EXPORTS = {
    "read_frames": "avatarkit.idle.encode",
    "IDLE_MP4": "avatarkit.idle.loop", "POSTER_PNG": "avatarkit.idle.loop",
    "IdleLoop": "avatarkit.idle.loop", "make_idle_loop": "avatarkit.idle.loop",
    "IdleOptions": "avatarkit.idle.options",
    "TRACK_JSON": "avatarkit.idle.track", "Track": "avatarkit.idle.track",
    "read_track": "avatarkit.idle.track",
}

__all__ = [
    "IDLE_MP4", "POSTER_PNG", "TRACK_JSON", "IdleLoop", "IdleOptions", "Track",
    "make_idle_loop", "read_frames", "read_track",
]


__getattr__ = lazy_getattr(__name__, _EXPORTS, globals())
