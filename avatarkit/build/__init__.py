"""`avatarkit build` as a library: the CLI and the server both call these.

    from avatarkit.build import BuildOptions, build_avatar, build_folder
    result = build_avatar("hero.jpg", "out")          # -> out/hero/
    results = build_folder("photos/", "out", jobs=2)  # -> out/<stem>/ per photo

Names load on first use: the options are cheap, the pipeline pulls in mediapipe and OpenCV
(a command line that only needs the options should not wait for them).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from avatarkit.lazy import lazy_getattr

if TYPE_CHECKING:
    from avatarkit.build.folder import build_folder, find_photos, summarise, write_report
    from avatarkit.build.options import BuildOptions, IdleOptions
    from avatarkit.build.pipeline import ASSET_STAGES, BuildResult, StageContext, build_avatar

#: Public name -> the module that defines it.
_EXPORTS = {
    "build_folder": "avatarkit.build.folder", "find_photos": "avatarkit.build.folder",
    "summarise": "avatarkit.build.folder", "write_report": "avatarkit.build.folder",
    "BuildOptions": "avatarkit.build.options", "IdleOptions": "avatarkit.build.options",
    "ASSET_STAGES": "avatarkit.build.pipeline", "BuildResult": "avatarkit.build.pipeline",
    "StageContext": "avatarkit.build.pipeline", "build_avatar": "avatarkit.build.pipeline",
}

__all__ = [
    "ASSET_STAGES", "BuildOptions", "BuildResult", "IdleOptions", "StageContext",
    "build_avatar", "build_folder", "find_photos", "summarise", "write_report",
]


__getattr__ = lazy_getattr(__name__, _EXPORTS, globals())
