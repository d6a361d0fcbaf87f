"""Push a recording to an `avatarkit serve` session as a voice pipeline would, and watch it.

    avatarkit serve --avatars out &
    python examples/push_audio.py speech.wav --avatar hero
    # open the printed URL: the browser player joins the session and lip-syncs the audio

The WAV (16-bit PCM, any rate from 8 to 48 kHz, mono or stereo) is sent in 20 ms binary
frames at real-time pace between `audio_start` and `audio_end` (docs/protocol.md, "Pushing
audio"); `--text` adds its transcript. The browser player must be open before the audio
starts to hear it from the beginning: the script waits for Enter first.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import wave

import aiohttp


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("wav")
    ap.add_argument("--server", default="http://127.0.0.1:8000")
    ap.add_argument("--avatar", default="hero")
    ap.add_argument("--text", default="", help="transcript of the recording (optional)")
    args = ap.parse_args()
    with wave.open(args.wav) as w:
        if w.getsampwidth() != 2:
            raise SystemExit(f"{args.wav}: 16-bit PCM WAV needed")
        rate, channels = w.getframerate(), w.getnchannels()
        pcm = w.readframes(w.getnframes())
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{args.server}/session-2d", json={
                "avatar_id": args.avatar, "provider": "audio", "sample_rate": rate}) as r:
            body = await r.json()
            if r.status != 200:
                raise SystemExit(f"error: {body.get('message', body)}")
        sid = body["session_id"]
        print(f"open {args.server}/?avatar={args.avatar}&session={sid} then press Enter")
        await asyncio.get_running_loop().run_in_executor(None, input)
        async with http.ws_connect(body["ws_url"]) as ws:
            await ws.send_str(json.dumps({"type": "audio_start", "sample_rate": rate,
                                          "channels": channels, "text": args.text}))
            step = rate // 50 * 2 * channels  # 20 ms
            t = asyncio.get_running_loop().time()
            for off in range(0, len(pcm), step):
                await ws.send_bytes(pcm[off:off + step])
                t += 0.02
                await asyncio.sleep(max(0.0, t - asyncio.get_running_loop().time()))
            await ws.send_str(json.dumps({"type": "audio_end"}))
            async for msg in ws:  # until the utterance has played out
                if msg.type == aiohttp.WSMsgType.TEXT:
                    data = json.loads(msg.data)
                    if data["type"] == "error":
                        print("error:", data["message"])
                    if data["type"] == "utterance_end":
                        print("done:", data["reason"])
                        break


if __name__ == "__main__":
    asyncio.run(main())
