"""Server settings: one dataclass the CLI, tests and benchmarks fill the same way.

The CLI (typer) parses the options and three secrets come from the environment
(`from_env`); a settings library (pydantic-settings) would add a dependency for three
variables, so `checked()` validates by hand with one actionable message per field."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from avatarkit.errors import AvatarkitError
from avatarkit.tts.elevenlabs import DEFAULT_VOICE_ID


@dataclass(frozen=True)
class ServerConfig:
    """Everything `create_app` needs; every limit has a safe default."""

    #: Folder of avatars (`<id>/avatar.json` ...); uploads are built into it. None: a
    #: temporary folder that lives as long as the server.
    avatars_dir: Path | None = None
    #: Bearer token required on every route and the WebSocket; None/"" = no auth.
    token: str | None = field(default=None, repr=False)
    #: Origins allowed to call the API from browsers (`*` = any); empty = same-origin only.
    #: State-changing requests and WebSocket upgrades from any other browser origin are
    #: refused (403 bad_origin), token or not.
    cors_origins: tuple[str, ...] = ()
    #: Host names the server answers to besides IP addresses and `localhost` (`*` = any):
    #: a `Host` header naming anything else is refused (403 bad_host, DNS rebinding).
    allowed_hosts: tuple[str, ...] = ()
    #: Addresses of reverse proxies whose `X-Forwarded-For` names the client for the
    #: per-client limits (its last entry: the address the proxy saw). Empty: the peer.
    trusted_proxies: tuple[str, ...] = ()
    #: ElevenLabs API key (server side only). None: the embedded voice is the default.
    elevenlabs_api_key: str | None = field(default=None, repr=False)
    #: Default ElevenLabs voice when a session names none.
    elevenlabs_voice_id: str = DEFAULT_VOICE_ID
    #: ElevenLabs model.
    elevenlabs_model_id: str = "eleven_flash_v2_5"
    #: ElevenLabs PCM output format (`pcm_16000`, `pcm_22050`, `pcm_24000`, `pcm_44100`).
    elevenlabs_output_format: str = "pcm_16000"
    #: Base URLs of the ElevenLabs API (tests point them at a fake); None = the real service.
    elevenlabs_ws_base_url: str | None = None
    elevenlabs_http_base_url: str | None = None
    #: OpenAI API key (server side only) for `provider: "openai"` sessions (the Realtime
    #: API); None: that provider is unavailable.
    openai_api_key: str | None = field(default=None, repr=False)
    #: Realtime model, and the WebSocket base URL (tests point it at a fake).
    openai_model: str = "gpt-realtime"
    openai_ws_base_url: str = "wss://api.openai.com/v1/realtime"
    #: Voice of the Realtime model, and optional instructions sent in `session.update`.
    openai_voice: str | None = None
    openai_instructions: str | None = None
    #: Default espeak-ng language / G2P language for sessions.
    default_lang: str = "en-us"

    #: Viseme frame rate on the wire. 30 keeps up with the 25 fps video (the player
    #: interpolates between frames) at half the blending and sending cost of 60
    #: (README "avatarkit serve" has both accuracy and load figures).
    viseme_fps: float = 30.0
    #: Longest audio frame, ms (longer provider chunks are sliced).
    audio_frame_ms: float = 100.0
    #: How far ahead of the session's playback clock events are sent, ms.
    send_ahead_ms: float = 200.0
    #: Period of the pacing tick, ms: a session is written to at the last tick before its
    #: earliest waiting event is due (never later; keep it well under send-ahead).
    tick_ms: float = 40.0
    #: A session being written to takes every event due within this, ms (at least one
    #: tick): one socket write per client per ~120 ms of audio instead of per tick - the
    #: writes were a fifth of a relaying server's CPU; 160 rather than 80 ms cut a relayed
    #: session's server CPU by a further ~14 % (docs/scaling.md) - and events leave at most
    #: this early (viseme frames up to a window minus a tick more: server/events.py).
    write_window_ms: float = 160.0
    #: Length of the barge-in ramp back to Rest, ms (100-200).
    ramp_ms: float = 150.0

    #: Longest `text` of one speak command, characters.
    max_text_chars: int = 5000
    #: Longest audio turn a client may push, seconds (`audio_start` .. `audio_end`), and
    #: longest OpenAI Realtime answer. Queued turns hold their audio until played: 120 s is
    #: ~11 MB at 48 kHz, times `max_queued_utterances` at most per session.
    max_audio_turn_s: float = 120.0
    #: Open sessions per server.
    max_sessions: int = 500
    #: WebSocket clients per session.
    max_clients_per_session: int = 16
    #: Utterances waiting behind the current one, per session.
    max_queued_utterances: int = 32
    #: A session with no client and no command for this long is closed, seconds.
    session_idle_ttl_s: float = 600.0
    #: Largest upload request (the whole multipart body), bytes.
    max_upload_bytes: int = 20 * 1024 * 1024

    #: New sessions per client address per minute (token bucket; 0 = no limit) ...
    client_session_rate: float = 30.0
    #: ... of which this many at once.
    client_session_burst: int = 10
    #: Open sessions per client address.
    max_sessions_per_client: int = 32
    #: Uploads (`/avatarize-2d`) per client address per minute (0 = no limit), burst 3.
    client_upload_rate: float = 6.0
    #: Speak commands per session per minute (HTTP and WebSocket together; 0 = no limit) ...
    session_speak_rate: float = 60.0
    #: ... of which this many at once.
    session_speak_burst: int = 10
    #: Concurrent streams to a networked TTS provider (ElevenLabs) for the whole server;
    #: more wait their turn (0 = no cap). The embedded voice is not capped.
    max_upstream: int = 4
    #: Longest wait for an upstream slot before the utterance fails (`upstream_busy`), s.
    upstream_wait_s: float = 30.0
    #: WebSocket messages (text and binary) one socket may send per second, as many at once;
    #: beyond it the server reads that socket slower (TCP backpressure), nothing is dropped.
    #: 0 = no limit. 500/s leaves room for audio pushed in 10 ms frames faster than real time.
    ws_message_rate: float = 500.0
    #: Longest silence of the voice provider in the middle of an utterance (ElevenLabs
    #: between messages, OpenAI Realtime between audio deltas) before it fails with
    #: `provider_timeout`, seconds.
    provider_timeout_s: float = 15.0
    #: Retries of a voice request the provider refused before any audio (429, 5xx, a dropped
    #: or garbled answer), with backoff 0.5 s, 1 s, ...; never once audio went out.
    provider_retries: int = 2
    #: Voice ids sessions may ask for (`voice_id`); empty = any well-formed id.
    allowed_voices: tuple[str, ...] = ()
    #: Accept speak commands for a session that no WebSocket client watches (a pipeline
    #: that connects later); False: `409 no_client`, nothing is synthesised for nobody.
    speak_without_client: bool = False
    #: When the last client of a session leaves and none is back within this, what it is
    #: saying and has queued is stopped, seconds (not with speak_without_client).
    orphan_grace_s: float = 10.0
    #: Unsent bytes to a client above which its viseme frames are skipped.
    viseme_drop_bytes: int = 64 * 1024
    #: Unsent bytes to a client above which it is closed (4008 slow_client).
    max_client_backlog_bytes: int = 1024 * 1024
    #: Kernel send buffer of each WebSocket (SO_SNDBUF); small enough that a stalled
    #: client shows up as backlog instead of disappearing into megabytes of socket buffer.
    socket_send_buffer_bytes: int = 256 * 1024
    #: Worker processes for `/avatarize-2d` builds.
    build_workers: int = 1
    #: Uploads being received, queued or built at once; more answer 429 busy.
    max_pending_builds: int = 2
    #: A build that runs longer is stopped (its worker killed) and answers 504, seconds.
    build_timeout_s: float = 300.0
    #: Avatars built from uploads kept on disk; beyond it the least recently uploaded
    #: one no session uses is deleted (folders of --avatars that were not uploaded never are).
    max_uploaded_avatars: int = 100
    #: With --model: decoded idle loops of this many avatars stay in memory (~250-320 MB each
    #: for a 1024 px upload); older ones are dropped and decoded again when next needed.
    lipsync_avatar_cache: int = 4
    #: Longest side of uploaded photos after downscaling (BuildOptions.max_side).
    build_max_side: int = 1024
    #: Threads for viseme computation (off the event loop).
    viseme_threads: int = 2
    #: Worker processes that run the acoustic front end of audio-driven speech (pushed
    #: audio, OpenAI Realtime), each utterance in one of them: its work and its model loads
    #: stay off the event loop's GIL. 0: in the `viseme_threads` pool instead.
    listen_workers: int = 1
    #: Blend the embedded voice's visemes in a worker process (server/blend.py), which keeps
    #: the event loop free for pacing; False: on the loop, in slices.
    blend_worker: bool = True
    #: Folder of the browser player (index.html + assets); None = `server/static`.
    static_dir: Path | None = None

    #: Variant C (docs/onnx.md): a Wav2Lip-compatible ONNX model. With one, sessions may ask
    #: for `lipsync: "onnx"` and receive mouth patches; None = visemes only.
    model: Path | None = None
    #: Execution provider of the model: auto (TensorRT -> CUDA -> CPU), tensorrt, cuda, cpu.
    onnx_provider: str = "auto"
    #: The inference worker runs a batch as soon as this many frames wait (all sessions) ...
    batch_max_frames: int = 32
    #: ... or when the oldest waiting frame has waited this long, ms.
    batch_max_wait_ms: float = 8.0
    #: Mouth patch encoding on the wire: `png` (lossless, ~1 ms, ~11 KB at 90x86) or `webp`
    #: (lossy q90 with alpha, ~4 ms, ~2 KB).
    patch_codec: str = "png"
    #: Threads for the per-frame image work of patches (face crops, blending, encoding).
    lipsync_threads: int = 2

    #: Start of every session id: letters and `_`. `serve --workers N` gives worker i
    #: `<letters><i>_`, so the front (and a load balancer across machines, each with its own
    #: letters: `serve --session-prefix`) can route a session's requests by its id.
    session_id_prefix: str = "s_"
    #: `serve --workers N`: the other workers' internal HTTP sockets (Unix paths), asked by
    #: /health and /metrics so that they cover every worker.
    peer_sockets: tuple[str, ...] = ()

    def checked(self) -> ServerConfig:
        """Validate the values a user can set, with actionable messages."""
        if not 100 <= self.ramp_ms <= 200:
            raise AvatarkitError(f"ramp_ms must be 100-200, got {self.ramp_ms}")
        if not 1 <= self.viseme_fps <= 120:
            raise AvatarkitError(f"viseme fps must be 1-120, got {self.viseme_fps}")
        if self.send_ahead_ms < 0 or self.tick_ms <= 0 or self.audio_frame_ms < 10:
            raise AvatarkitError("send_ahead_ms >= 0, tick_ms > 0 and audio_frame_ms >= 10")
        if self.write_window_ms < self.tick_ms:
            raise AvatarkitError(f"write_window_ms ({self.write_window_ms:g}) must be at least "
                                 f"tick_ms ({self.tick_ms:g})")
        if self.max_client_backlog_bytes <= self.viseme_drop_bytes:
            raise AvatarkitError("max_client_backlog_bytes must exceed viseme_drop_bytes")
        if self.avatars_dir is not None and not Path(self.avatars_dir).is_dir():
            what = "not a folder" if Path(self.avatars_dir).exists() else "no such folder"
            raise AvatarkitError(f"--avatars {self.avatars_dir}: {what}")
        if self.model is not None and not Path(self.model).is_file():
            raise AvatarkitError(f"--model {self.model}: no such file (a Wav2Lip-compatible "
                                 ".onnx, see docs/onnx.md)")
        if self.onnx_provider not in ("auto", "tensorrt", "cuda", "cpu"):
            raise AvatarkitError(f"--onnx-provider must be auto, tensorrt, cuda or cpu, got "
                                 f"{self.onnx_provider!r}")
        if self.listen_workers < 0:
            raise AvatarkitError(f"--listen-workers must be >= 0, got {self.listen_workers}")
        if self.batch_max_frames < 1 or self.batch_max_wait_ms < 0:
            raise AvatarkitError("--batch-frames must be >= 1 and --batch-wait-ms >= 0")
        if self.patch_codec not in ("png", "webp"):
            raise AvatarkitError(f"--patch-codec must be png or webp, got {self.patch_codec!r}")
        if self.lipsync_threads < 1:
            raise AvatarkitError(f"lipsync_threads must be >= 1, got {self.lipsync_threads}")
        # A negative count or rate would not fail later: it would refuse every session or
        # speak (counts) or switch the limit off like 0 (rates), so it is refused here.
        for flag, value in (("--max-sessions", self.max_sessions),
                            ("--max-text", self.max_text_chars),
                            ("--max-clients-per-session", self.max_clients_per_session)):
            if value < 1:
                raise AvatarkitError(f"{flag} must be >= 1, got {value}")
        if self.max_queued_utterances < 0:
            raise AvatarkitError(f"--max-queue must be >= 0, got {self.max_queued_utterances}")
        for flag, number in (("--max-upstream", self.max_upstream),
                             ("--session-rate", self.client_session_rate),
                             ("--upload-rate", self.client_upload_rate),
                             ("--speak-rate", self.session_speak_rate)):
            if number < 0:
                raise AvatarkitError(f"{flag} must be >= 0 (0 = no limit), got {number:g}")
        if self.session_idle_ttl_s <= 0 or self.max_upload_bytes <= 0:
            raise AvatarkitError("--idle-ttl and --max-upload-mb must be > 0")
        if (self.client_session_burst < 1 or self.session_speak_burst < 1
                or self.max_sessions_per_client < 1):
            raise AvatarkitError("rate-limit bursts and --max-sessions-per-client must be >= 1")
        if (self.max_pending_builds < 1 or self.build_timeout_s <= 0
                or self.max_uploaded_avatars < 1 or self.lipsync_avatar_cache < 1):
            raise AvatarkitError("--max-pending-builds, --build-timeout, --max-uploads and "
                                 "--lipsync-cache must be >= 1")
        if self.ws_message_rate < 0 or self.provider_timeout_s <= 0 or self.provider_retries < 0:
            raise AvatarkitError("--ws-message-rate and --provider-retries must be >= 0 and "
                                 "--provider-timeout > 0")
        if self.upstream_wait_s <= 0 or self.orphan_grace_s < 0:
            raise AvatarkitError("--upstream-wait must be > 0 and --orphan-grace >= 0 seconds")
        return self

    @property
    def static_root(self) -> Path:
        return self.static_dir or Path(__file__).with_name("static")

    @classmethod
    def from_env(cls, **overrides: object) -> ServerConfig:
        """Defaults + `AVATARKIT_TOKEN` / `ELEVENLABS_API_KEY` / `OPENAI_API_KEY` from the
        environment."""
        values: dict[str, object] = {
            "token": os.environ.get("AVATARKIT_TOKEN") or None,
            "elevenlabs_api_key": os.environ.get("ELEVENLABS_API_KEY") or None,
            "openai_api_key": os.environ.get("OPENAI_API_KEY") or None,
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)  # type: ignore[arg-type]
