"""The idle loop: the photo come alive (head motion, parallax, breathing, blinks), the mouth
track that keeps overlays on the moving mouth, and readers for both."""

from avatarkit.idle.encode import read_frames
from avatarkit.idle.loop import IDLE_MP4, POSTER_PNG, IdleLoop, make_idle_loop
from avatarkit.idle.options import IdleOptions
from avatarkit.idle.track import TRACK_JSON, Track, read_track

__all__ = [
    "IDLE_MP4", "POSTER_PNG", "TRACK_JSON", "IdleLoop", "IdleOptions", "Track",
    "make_idle_loop", "read_frames", "read_track",
]
