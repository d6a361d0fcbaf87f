"""Viseme classes, phoneme tables, coarticulation and exporters."""

from avatarkit.visemes.classes import VISEME_CLASSES

__all__ = ["VISEME_CLASSES"]
