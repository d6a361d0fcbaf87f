"""`avatarkit build` as a library: the CLI and the server both call these.

    from avatarkit.build import BuildOptions, build_avatar, build_folder
    result = build_avatar("hero.jpg", "out")          # -> out/hero/
    results = build_folder("photos/", "out", jobs=2)  # -> out/<stem>/ per photo
"""

from avatarkit.build.folder import build_folder, find_photos, summarise, write_report
from avatarkit.build.options import BuildOptions, IdleOptions
from avatarkit.build.pipeline import ASSET_STAGES, BuildResult, StageContext, build_avatar

__all__ = [
    "ASSET_STAGES", "BuildOptions", "BuildResult", "IdleOptions", "StageContext",
    "build_avatar", "build_folder", "find_photos", "summarise", "write_report",
]
