"""Cost and capacity limits: per-client and per-session rate limits, the cap on concurrent
upstream TTS connections, and what a provider failure may tell a client.

A billed TTS account has a low concurrency limit and a budget; the server must not let one
client (or one session) spend either. Everything here is in-process, keyed by client address
or session id, and bounded in size itself.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from avatarkit.tts.provider import Provider, ProviderError, SpeechChunk

log = logging.getLogger("avatarkit.server")


class RateLimiter:
    """A token bucket per key: `burst` at once, refilled at `per_minute` / 60 a second.

    `per_minute <= 0` disables it. Keys whose bucket is full again are forgotten when the
    table grows, so a flood of distinct keys cannot grow it without bound.
    """

    def __init__(self, per_minute: float, burst: int,
                 clock: Callable[[], float] = time.monotonic, max_keys: int = 10_000) -> None:
        self.rate = per_minute / 60.0
        self.burst = max(1, burst)
        self._clock = clock
        self._max_keys = max_keys
        self._buckets: dict[str, tuple[float, float]] = {}

    @property
    def enabled(self) -> bool:
        return self.rate > 0

    def take(self, key: str) -> float:
        """Spend one token of `key`: 0.0 when allowed, else the seconds until one is free."""
        if not self.enabled:
            return 0.0
        now = self._clock()
        tokens, last = self._buckets.get(key, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - last) * self.rate)
        if tokens < 1.0:
            self._buckets[key] = (tokens, now)
            return (1.0 - tokens) / self.rate
        if key not in self._buckets and len(self._buckets) >= self._max_keys:
            self._prune(now)
        self._buckets[key] = (tokens - 1.0, now)
        return 0.0

    def forget(self, key: str) -> None:
        self._buckets.pop(key, None)

    def _prune(self, now: float) -> None:
        full = [k for k, (tokens, last) in self._buckets.items()
                if tokens + (now - last) * self.rate >= self.burst]
        for k in full:
            del self._buckets[k]
        if len(self._buckets) >= self._max_keys:  # all busy: drop the oldest half
            oldest = sorted(self._buckets, key=lambda k: self._buckets[k][1])
            for k in oldest[: len(oldest) // 2]:
                del self._buckets[k]


#: What a client is told when the voice provider fails. The provider's own text (account
#: balance, "You have 12 credits remaining", key names, request ids) goes to the server log
#: only: it describes the operator's account, not the client's request.
PUBLIC_PROVIDER_ERRORS = {
    "unauthorized": "the voice provider rejected the server's credentials; the operator has "
                    "the details in the server log",
    "quota_exceeded": "the voice provider refused: the server's account is out of quota; the "
                      "operator has the details in the server log",
    "rate_limited": "the voice provider is busy (rate or concurrency limit); retry shortly",
    "bad_request": "the voice provider refused this text or voice; check voice_id and the "
                   "text",
    "timeout": "the voice provider timed out; retry the utterance",
    "connection_lost": "the connection to the voice provider was lost; retry the utterance",
    "upstream_busy": "every connection to the voice provider is in use and none came free in "
                     "time; retry shortly",
}


def public_provider_error(exc: ProviderError, label: str) -> ProviderError:
    """`exc` with a message fit for clients; the original is logged on the server."""
    text = PUBLIC_PROVIDER_ERRORS.get(exc.code)
    if text is None:
        text = "the voice provider failed; the operator has the details in the server log"
    log.warning("voice provider %s failed (%s): %s", label, exc.code, exc)
    return ProviderError(text, exc.code)


class UpstreamGate:
    """At most `limit` concurrent upstream TTS streams for the whole server; the others
    wait in order (FIFO) up to `wait_s`, then fail with `upstream_busy`. `limit <= 0`:
    no cap."""

    def __init__(self, limit: int, wait_s: float) -> None:
        self.limit = limit
        self.wait_s = wait_s
        self._sem = asyncio.Semaphore(limit) if limit > 0 else None
        #: Streams holding a connection now / waiting for one (metrics, tests).
        self.active = 0
        self.waiting = 0

    async def acquire(self) -> None:
        if self._sem is None:
            self.active += 1
            return
        sem = self._sem

        def give_back(task: asyncio.Future[bool]) -> None:
            # an acquire that completed after we stopped waiting (timeout or barge-in) must
            # not keep its slot: wait_for on Python 3.11 could lose it in that race
            if not task.cancelled() and task.exception() is None:
                sem.release()

        self.waiting += 1
        task = asyncio.ensure_future(sem.acquire())
        try:
            done, _ = await asyncio.wait({task}, timeout=self.wait_s)
        except BaseException:
            task.add_done_callback(give_back)
            task.cancel()
            raise
        finally:
            self.waiting -= 1
        if not done:
            task.add_done_callback(give_back)
            task.cancel()
            raise ProviderError(PUBLIC_PROVIDER_ERRORS["upstream_busy"], "upstream_busy")
        self.active += 1

    def release(self) -> None:
        self.active -= 1
        if self._sem is not None:
            self._sem.release()


class GuardedProvider:
    """A session's provider behind the server's limits: an upstream provider's streams
    take a slot of the `UpstreamGate` for as long as the service sends, and provider errors
    reach the client without the provider's own words.

    An upstream stream is read to its end as fast as the service sends it (`_read_ahead`),
    while the session takes its chunks when they are due (server/produce.py): the slot and
    the connection are held for the seconds the service needs, not for the utterance's
    playing time, and blending each chunk shortly before it plays spreads the work of
    hundreds of sessions over time."""

    def __init__(self, inner: Provider, label: str, gate: UpstreamGate | None) -> None:
        self.inner = inner
        self.label = label
        self.gate = gate
        self.sample_rate = inner.sample_rate

    def __getattr__(self, name: str) -> Any:  # aclose, options, ... of the real provider
        return getattr(self.inner, name)

    async def stream(self, text: str) -> AsyncIterator[SpeechChunk]:
        """The inner stream (read ahead inside a gate slot when upstream); ProviderError
        made public."""
        source = self.inner.stream(text) if self.gate is None else self._read_ahead(text)
        try:
            async for chunk in source:
                yield chunk
        except ProviderError as exc:
            if exc.code == "upstream_busy":
                raise
            raise public_provider_error(exc, self.label) from None
        finally:
            aclose = getattr(source, "aclose", None)
            if aclose is not None:
                await aclose()

    async def _read_ahead(self, text: str) -> AsyncIterator[SpeechChunk]:
        """The inner stream, read by a task of its own into a queue inside a gate slot; its
        chunks, then its failure (if any), in order."""
        gate = self.gate
        assert gate is not None
        queue: asyncio.Queue[SpeechChunk | BaseException | None] = asyncio.Queue()

        async def read() -> None:
            try:
                await gate.acquire()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # upstream_busy
                queue.put_nowait(exc)
                return
            stream = self.inner.stream(text)
            try:
                async for chunk in stream:
                    queue.put_nowait(chunk)
                queue.put_nowait(None)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # raised to the reader after the chunks before it
                queue.put_nowait(exc)
            finally:
                aclose = getattr(stream, "aclose", None)
                try:
                    if aclose is not None:
                        await aclose()
                finally:
                    gate.release()

        reader = asyncio.create_task(read())
        try:
            while True:
                item = await queue.get()
                if item is None:
                    return
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            if not reader.done():  # the session stopped listening (barge-in, close)
                reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)
