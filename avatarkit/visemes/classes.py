"""The canonical 12 viseme classes, in the atlas order every client relies on."""

VISEME_CLASSES: tuple[str, ...] = (
    "Rest", "AI", "E", "U", "O", "MBP", "FV", "L", "WQ", "R", "CH", "TH",
)
