"""ctypes binding to the espeak-ng library shipped in the `espeakng-loader` wheel.

espeak-ng keeps global state (current voice, rate, one synth callback), so every call goes
through a single worker thread owned by `EspeakEngine`: callers from any thread or event
loop are serialised there, and no two syntheses can interleave inside the library.
"""

from __future__ import annotations

import ctypes
import re
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TypeVar

from avatarkit.errors import AvatarkitError
from avatarkit.tts.provider import TimedPhoneme

T = TypeVar("T")

# espeak_ng API constants (speak_lib.h).
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INIT_PHONEME_EVENTS = 0x0001
_INIT_PHONEME_IPA = 0x0002
_POS_CHARACTER = 1
_CHARS_UTF8 = 1
_EVENT_LIST_TERMINATED = 0
_EVENT_WORD = 1
_EVENT_PHONEME = 7
_PARAM_RATE = 1
_PARAM_PITCH = 3
_PHONEMES_IPA = 0x02
_SEPARATOR = "_"
#: Audio per synth callback, ms. The callback (Python, so it takes the GIL) runs once per
#: buffer: long buffers mean a handful of GIL hand-offs per sentence instead of ~100 at
#: espeak's 60 ms default, which kept a busy server's event loop waiting. The PCM and the
#: event timing are the same whatever the length.
_BUFFER_MS = 1000

#: Symbol used for espeak's pause "phonemes" (they carry no name in IPA mode).
PAUSE = "_"
#: espeak-ng marks a word it speaks with another language's rules: "(en)" before it, "(de)"
#: after. Markers, not sounds: they are dropped from phoneme lists and timings.
_LANGUAGE_SWITCH = re.compile(r"\([a-z]{2,3}(?:-[a-z0-9]+)*\)")


class _EventId(ctypes.Union):
    _fields_ = [("number", ctypes.c_int), ("name", ctypes.c_char_p), ("string", ctypes.c_char * 8)]


class _Event(ctypes.Structure):
    _fields_ = [
        ("type", ctypes.c_int),
        ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int),
        ("length", ctypes.c_int),
        ("audio_position", ctypes.c_int),
        ("sample", ctypes.c_int),
        ("user_data", ctypes.c_void_p),
        ("id", _EventId),
    ]


_SynthCallback = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event)
)


@dataclass(frozen=True)
class WordEvent:
    """A word of the input text: character span (0-based, in code points) and its audio onset."""

    text_start: int
    text_length: int
    start_ms: float


@dataclass(frozen=True)
class Synthesis:
    """PCM16 mono audio with espeak-ng's own phoneme and word timing for it."""

    pcm: bytes
    sample_rate: int
    phonemes: tuple[TimedPhoneme, ...]
    words: tuple[WordEvent, ...]

    @property
    def duration_ms(self) -> float:
        """Length of the audio in milliseconds."""
        return len(self.pcm) / 2 / self.sample_rate * 1000.0


def data_path() -> Path:
    """Directory of espeak-ng's voice and dictionary data inside the wheel."""
    import espeakng_loader

    return Path(espeakng_loader.get_data_path())


@lru_cache(maxsize=1)
def _voice_files() -> dict[str, str]:
    """Language code -> espeak voice file name (what `espeak_SetVoiceByName` resolves)."""
    by_code: dict[str, tuple[int, str]] = {}
    for path in sorted((data_path() / "lang").rglob("*")):
        if not path.is_file():
            continue
        by_code.setdefault(path.name.lower(), (0, path.name))
        for line in path.read_text("utf-8", "ignore").splitlines():
            parts = line.split()
            if len(parts) >= 2 and parts[0] == "language":
                prio = int(parts[2]) if len(parts) > 2 and parts[2].isdigit() else 5
                code = parts[1].lower()
                if code not in by_code or by_code[code][0] > prio:
                    by_code[code] = (prio, path.name)
    return {code: name for code, (_, name) in by_code.items()}


def available_languages() -> tuple[str, ...]:
    """Language codes espeak-ng can speak here (voice file names and their `language` lines)."""
    return tuple(sorted(_voice_files()))


@lru_cache(maxsize=1)
def available_variants() -> tuple[str, ...]:
    """Voice variants (`en-us+Annie` style) shipped with the data."""
    root = data_path() / "voices" / "!v"
    return tuple(sorted(p.name for p in root.iterdir() if p.is_file())) if root.is_dir() else ()


def check_language(lang: str) -> str:
    """Return `lang` normalised, or raise an actionable error naming close alternatives."""
    code = lang.strip().lower().replace("_", "-")
    langs = available_languages()
    if code in langs:
        return code
    base = code.split("-")[0]
    near = [c for c in langs if c.split("-")[0] == base][:6] or ["en-us", "en-gb", "de", "fr"]
    raise AvatarkitError(
        f"unknown language {lang!r} for the embedded espeak-ng voice; try one of "
        f"{', '.join(near)} ({len(langs)} codes are available)"
    )


def check_variant(variant: str | None) -> str | None:
    """Return a known voice variant name (case-insensitive) or raise an actionable error."""
    if not variant:
        return None
    by_lower = {v.lower(): v for v in available_variants()}
    if variant.lower() not in by_lower:
        some = ", ".join(list(by_lower.values())[:8])
        raise AvatarkitError(f"unknown espeak-ng voice variant {variant!r}; try one of {some}, ...")
    return by_lower[variant.lower()]


class EspeakEngine:
    """The process-wide espeak-ng instance, driven from one dedicated worker thread."""

    def __init__(self) -> None:
        self._executor = ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="espeak-ng", initializer=self._mark_worker
        )
        self._lock = threading.RLock()
        self._lib: ctypes.CDLL | None = None
        self._sample_rate = 0
        self._voice: tuple[str, str | None] | None = None
        self._params: tuple[int, int] | None = None
        self._worker_ident: int | None = None
        # Filled by the callback during one synthesis (only ever on the worker thread).
        self._chunks: list[bytes] = []
        self._events: list[tuple[int, int, int, int, bytes]] = []
        self._callback = _SynthCallback(self._on_synth)

    @property
    def executor(self) -> ThreadPoolExecutor:
        """The single-thread executor that owns espeak-ng; use it with `run_in_executor`."""
        return self._executor

    def call(self, fn: Callable[[], T]) -> T:
        """Run `fn` on the espeak worker thread and wait for it (re-entrant on that thread)."""
        if threading.get_ident() == self._worker_ident:
            return self._guarded(fn)
        future: Future[T] = self._executor.submit(self._guarded, fn)
        return future.result()

    def _mark_worker(self) -> None:
        self._worker_ident = threading.get_ident()

    def _guarded(self, fn: Callable[[], T]) -> T:
        with self._lock:
            self._ensure_initialised()
            return fn()

    # -- library setup (worker thread only) ------------------------------------------------
    def _ensure_initialised(self) -> None:
        if self._lib is not None:
            return
        import espeakng_loader

        try:
            lib = ctypes.CDLL(espeakng_loader.get_library_path())
        except OSError as exc:
            raise AvatarkitError(
                f"could not load espeak-ng from the espeakng-loader wheel: {exc}; "
                "reinstall it with `pip install --force-reinstall espeakng-loader`"
            ) from exc
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_Initialize.restype = ctypes.c_int
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetVoiceByName.restype = ctypes.c_int
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_SetParameter.restype = ctypes.c_int
        lib.espeak_SetSynthCallback.argtypes = [_SynthCallback]
        lib.espeak_SetSynthCallback.restype = None
        lib.espeak_Synth.argtypes = [
            ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int, ctypes.c_uint,
            ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p,
        ]
        lib.espeak_Synth.restype = ctypes.c_int
        lib.espeak_TextToPhonemes.argtypes = [
            ctypes.POINTER(ctypes.c_char_p), ctypes.c_int, ctypes.c_int,
        ]
        lib.espeak_TextToPhonemes.restype = ctypes.c_char_p
        rate = lib.espeak_Initialize(
            _AUDIO_OUTPUT_SYNCHRONOUS, _BUFFER_MS, str(data_path()).encode(),
            _INIT_PHONEME_EVENTS | _INIT_PHONEME_IPA,
        )
        if rate <= 0:
            raise AvatarkitError(
                f"espeak-ng failed to initialise with data at {data_path()}; "
                "reinstall espeakng-loader"
            )
        lib.espeak_SetSynthCallback(self._callback)
        self._lib = lib
        self._sample_rate = rate

    def _set_voice(self, lang: str, variant: str | None, rate_wpm: int, pitch: int) -> None:
        assert self._lib is not None
        if self._voice != (lang, variant):
            base = _voice_files().get(lang, lang)
            name = f"{base}+{variant}" if variant else base
            if self._lib.espeak_SetVoiceByName(name.encode()) != 0:
                self._voice = None
                raise AvatarkitError(f"espeak-ng could not load voice {name!r}; check the code")
            self._voice = (lang, variant)
            self._params = None  # a voice change resets rate and pitch
        if self._params != (rate_wpm, pitch):
            self._lib.espeak_SetParameter(_PARAM_RATE, rate_wpm, 0)
            self._lib.espeak_SetParameter(_PARAM_PITCH, pitch, 0)
            self._params = (rate_wpm, pitch)

    def _on_synth(self, wav: ctypes.Array, n: int, events: ctypes.Array) -> int:
        if wav and n > 0:
            self._chunks.append(ctypes.string_at(wav, n * 2))
        i = 0
        while events[i].type != _EVENT_LIST_TERMINATED:
            ev = events[i]
            raw = bytes(ev.id.string) if ev.type == _EVENT_PHONEME else b""
            self._events.append((ev.type, ev.text_position, ev.length, ev.audio_position, raw))
            i += 1
        return 0

    # -- public operations -------------------------------------------------------------------
    @property
    def sample_rate(self) -> int:
        """Output sample rate of espeak-ng (22050 Hz for the bundled data)."""
        return self.call(lambda: self._sample_rate)

    def synthesize(
        self, text: str, lang: str = "en-us", *, variant: str | None = None,
        rate_wpm: int = 175, pitch: int = 50,
    ) -> Synthesis:
        """Speak `text` and return PCM16 with exact phoneme timing (blocking; thread-safe)."""
        lang = check_language(lang)
        variant = check_variant(variant)
        return self.call(lambda: self._synthesize(text, lang, variant, rate_wpm, pitch))

    def _synthesize(
        self, text: str, lang: str, variant: str | None, rate_wpm: int, pitch: int
    ) -> Synthesis:
        assert self._lib is not None
        self._set_voice(lang, variant, rate_wpm, pitch)
        self._chunks, self._events = [], []
        data = text.encode("utf-8")
        err = self._lib.espeak_Synth(data, len(data) + 1, 0, _POS_CHARACTER, 0, _CHARS_UTF8,
                                     None, None)
        chunks, events = self._chunks, self._events
        self._chunks, self._events = [], []
        if err != 0:
            raise AvatarkitError(f"espeak-ng failed to synthesise the text (error {err})")
        pcm = b"".join(chunks)
        total_ms = len(pcm) / 2 / self._sample_rate * 1000.0
        return Synthesis(pcm, self._sample_rate, *_timed(events, total_ms))

    def text_to_phonemes(
        self, text: str, lang: str = "en-us", *, ipa: bool = True
    ) -> list[list[str]]:
        """G2P: phonemes per spoken word (IPA, or espeak mnemonics), stress marks kept."""
        lang = check_language(lang)
        return self.call(lambda: self._text_to_phonemes(text, lang, ipa))

    def _text_to_phonemes(self, text: str, lang: str, ipa: bool) -> list[list[str]]:
        assert self._lib is not None
        rate, pitch = self._params or (175, 50)
        self._set_voice(lang, None, rate, pitch)
        buf = ctypes.create_string_buffer(text.encode("utf-8"))
        ptr = ctypes.c_char_p(ctypes.addressof(buf))
        mode = (_PHONEMES_IPA if ipa else 0) | (ord(_SEPARATOR) << 8)
        words: list[list[str]] = []
        while ptr.value:
            out = self._lib.espeak_TextToPhonemes(ctypes.byref(ptr), _CHARS_UTF8, mode)
            for word in (out or b"").decode("utf-8", "replace").split():
                symbols = [s for s in word.split(_SEPARATOR)
                           if s and not _LANGUAGE_SWITCH.fullmatch(s)]
                if symbols:
                    words.append(symbols)
        return words


def _decode_name(raw: bytes) -> str:
    name = raw.split(b"\0", 1)[0]
    # espeak truncates long IPA names at 8 bytes, possibly inside a UTF-8 sequence.
    return name.decode("utf-8", "ignore") or PAUSE


def _timed(
    events: list[tuple[int, int, int, int, bytes]], total_ms: float
) -> tuple[tuple[TimedPhoneme, ...], tuple[WordEvent, ...]]:
    """Turn raw callback events into phoneme spans (each ends where the next starts)."""
    onsets: list[tuple[str, float]] = []
    words: list[WordEvent] = []
    for etype, text_pos, length, audio_ms, raw in events:
        if etype == _EVENT_PHONEME:
            name = _decode_name(raw)
            if not _LANGUAGE_SWITCH.fullmatch(name):  # the sound before it lasts until the next
                onsets.append((name, float(audio_ms)))
        elif etype == _EVENT_WORD:
            words.append(WordEvent(max(text_pos - 1, 0), length, float(audio_ms)))
    phonemes: list[TimedPhoneme] = []
    for i, (symbol, start) in enumerate(onsets):
        end = onsets[i + 1][1] if i + 1 < len(onsets) else max(total_ms, start)
        if end > start:
            phonemes.append(TimedPhoneme(symbol, start, end))
    return tuple(phonemes), tuple(words)


_engine: EspeakEngine | None = None
_engine_lock = threading.Lock()


def engine() -> EspeakEngine:
    """The shared espeak-ng engine (created on first use)."""
    global _engine
    with _engine_lock:
        if _engine is None:
            _engine = EspeakEngine()
        return _engine
