"""A stand-in for the acoustic front end in server tests: known answers, known delay.

`LoudListener` has the interface of `avatarkit.listen.AudioVisemeStream` and a rule a test can
check on the wire: the frame at pts p is `{"AI": 1}` when the audio in [p, p + 1/fps) is
loud (RMS over 1000), else `{"Rest": 1}`; a frame leaves once `lookahead_ms` of audio past
its pts has been pushed (as a recogniser that needs look-ahead would), the rest at
`finish`. It tests the server's plumbing and clock, not recognition (the real front end
has its own tests and benchmark).
"""

from __future__ import annotations

import numpy as np

from avatarkit.visemes.coarticulation import Frame


class LoudListener:
    def __init__(self, sample_rate: int, fps: float, lang: str = "en-us",
                 lookahead_ms: float = 100.0) -> None:
        self.sample_rate = sample_rate
        self.fps = fps
        self.lang = lang
        self.lookahead_ms = lookahead_ms
        self.samples = np.zeros(0, dtype=np.int16)
        self.texts: list[str] = []
        self.k = 0  # next frame index
        self.finished = False
        #: The channel estimate the server started this turn from; `channel` is what the
        #: turn hands on when it finishes (here: a label naming the turn).
        self.channel: str | None = None
        self.started_from: str | None = None

    @property
    def audio_ms(self) -> float:
        return len(self.samples) / self.sample_rate * 1000.0

    def _frame(self, k: int) -> Frame:
        pts = round(k * 1000 / self.fps)
        a = int(pts * self.sample_rate / 1000)
        b = int((pts + 1000 / self.fps) * self.sample_rate / 1000)
        x = self.samples[a:b].astype(np.float64)
        loud = x.size and float(np.sqrt(np.mean(x * x))) > 1000.0
        return Frame(pts, {"AI": 1.0} if loud else {"Rest": 1.0})

    def push(self, pcm: bytes) -> list[Frame]:
        assert not self.finished
        self.samples = np.concatenate([self.samples, np.frombuffer(pcm, dtype="<i2")])
        out = []
        while round(self.k * 1000 / self.fps) + self.lookahead_ms <= self.audio_ms:
            out.append(self._frame(self.k))
            self.k += 1
        return out

    def add_text(self, text: str) -> None:
        self.texts.append(text)

    def finish(self) -> list[Frame]:
        self.finished = True
        self.started_from = self.channel
        self.channel = f"learned from {len(self.samples)} samples"
        out = []
        while round(self.k * 1000 / self.fps) <= self.audio_ms:
            out.append(self._frame(self.k))
            self.k += 1
        return out


class LoudListeners:
    """A listener factory that keeps every listener it made (for assertions)."""

    def __init__(self, lookahead_ms: float = 100.0) -> None:
        self.lookahead_ms = lookahead_ms
        self.made: list[LoudListener] = []

    def __call__(self, sample_rate: int, fps: float, lang: str) -> LoudListener:
        listener = LoudListener(sample_rate, fps, lang, self.lookahead_ms)
        self.made.append(listener)
        return listener
