"""Rendering what a client shows: idle loop + mouth driven by viseme weights.

Shared by `avatarkit preview` and the server. The pieces, smallest first:

    avatar = load_avatar("out/hero")                 # assets, checked; idle frames cached
    speech = speech_from_text("Hello there")          # or speech_from_files(wav, timeline)
    render_preview(avatar, speech, "hero.mp4", PreviewOptions(variant="mesh"))

    variant = make_variant(avatar, "sprites")         # or MeshVariant(avatar), or your own
    frame = variant.draw(avatar.frames[i % avatar.loop_frames], i, weights)
    frame = place_patch(idle_frame, roi_patch, avatar.mask / 255, avatar.roi_affine(i))
"""

from avatarkit.audio.io import Audio, read_audio
from avatarkit.mouth.place import frame_box, place_patch
from avatarkit.render.avatar import Avatar, MeshDef, load_avatar
from avatarkit.render.preview import (
    FramePlan,
    PreviewOptions,
    PreviewResult,
    plan_frames,
    render_frames,
    render_preview,
)
from avatarkit.render.sheet import variant_sheet
from avatarkit.render.speech import (
    Speech,
    fit_to_audio,
    speech_from_audio,
    speech_from_files,
    speech_from_text,
)
from avatarkit.render.timeline_file import parse_timeline, read_timeline
from avatarkit.render.variants import (
    VARIANTS,
    MeshVariant,
    MouthVariant,
    SpriteVariant,
    make_variant,
)
from avatarkit.render.video import VideoOptions, VideoWriter
from avatarkit.render.weights import WeightTrack, open_weight

__all__ = [
    "VARIANTS", "Audio", "Avatar", "FramePlan", "MeshDef", "MeshVariant", "MouthVariant",
    "PreviewOptions", "PreviewResult", "Speech", "SpriteVariant", "VideoOptions", "VideoWriter",
    "WeightTrack", "fit_to_audio", "frame_box", "load_avatar", "make_variant", "open_weight",
    "parse_timeline", "place_patch", "plan_frames", "read_audio", "read_timeline",
    "render_frames", "render_preview", "speech_from_audio", "speech_from_files",
    "speech_from_text", "variant_sheet",
]
