/* avatarkit reference player: idle loop + mouth overlay driven by streamed audio and visemes.
 *
 * No build step, no dependencies. Read top to bottom, it is the recipe a native client follows:
 *   1. assets   - load the avatar folder (idle.mp4, track.json, atlas, meshdef, mask, interior)
 *   2. renderers - draw one frame: the idle video frame, then the mouth for given viseme weights,
 *                  moved by that video frame's track affine (sprites on a 2D canvas, or the
 *                  mesh warp in WebGL)
 *   3. audio     - schedule PCM16 chunks gaplessly on the Web Audio clock, one utterance after
 *                  another, each anchored at the context time where its pts 0 plays
 *   4. visemes   - per drawn frame, the weights at (audible context time - utterance anchor)
 *   5. transport - the session WebSocket (see docs/protocol.md), Speak / Stop
 * window.avatarkitPlayer exposes read-only stats for tests and debugging.
 */
(() => {
  "use strict";

  const CLASSES = ["Rest", "AI", "E", "U", "O", "MBP", "FV", "L", "WQ", "R", "CH", "TH"];
  const RAMP_S = 0.15; // local ramp back to Rest on barge-in
  const LEAD_S = 0.04; // first chunk of an utterance plays this far after it arrives
  const MAX_HOLD_MS = 250; // a viseme frame older than this with no successor is held, not lerped

  const $ = (id) => document.getElementById(id);
  const params = new URLSearchParams(location.search);
  const TOKEN = params.get("token") || "";

  // ---------------------------------------------------------------- stats (read-only export)
  const stats = {
    avatar: null, variant: null, renderer: null, videoFrames: 0, trackFrame: 0, renders: 0,
    audioFrames: 0, audioBytes: 0, samplesScheduled: 0, secondsScheduled: 0, underruns: 0,
    visemeEvents: 0, visemesApplied: 0, utterancesStarted: 0, utterancesEnded: 0,
    lastEnd: null, errors: [], events: [], weights: { Rest: 1 }, mouthActive: false,
    latency: { firstAudioMs: null, firstVisemeMs: null, audibleMs: null },
    ws: "closed", session: null,
  };
  function note(kind, data) {
    stats.events.push({ kind, t: Math.round(performance.now()), ...data });
    if (stats.events.length > 200) stats.events.shift();
  }
  function log(msg) {
    const el = $("log");
    el.textContent = `${new Date().toISOString().slice(11, 23)} ${msg}\n` + el.textContent.slice(0, 4000);
  }
  function setStatus(msg) { $("status").textContent = msg; }

  // ---------------------------------------------------------------- HTTP helpers
  function authHeaders(extra = {}) {
    return TOKEN ? { ...extra, Authorization: `Bearer ${TOKEN}` } : extra;
  }
  async function fetchOk(url, init = {}) {
    const res = await fetch(url, { ...init, headers: authHeaders(init.headers || {}) });
    if (!res.ok) {
      let detail = "";
      try { const body = await res.json(); detail = body.message || body.error || JSON.stringify(body); }
      catch { detail = res.statusText; }
      throw new Error(`${init.method || "GET"} ${url}: ${res.status} ${detail}`);
    }
    return res;
  }
  const fetchJson = async (url, init) => (await fetchOk(url, init)).json();
  async function fetchBitmap(url) {
    // premultiplyAlpha "none": the shaders and the 2D cross-fade want straight alpha.
    const blob = await (await fetchOk(url)).blob();
    return createImageBitmap(blob, { premultiplyAlpha: "none", colorSpaceConversion: "none" });
  }

  // ---------------------------------------------------------------- 1. assets
  /** Load one avatar folder. `urls` holds absolute or page-relative URLs of its files. */
  async function loadAssets(urls) {
    const [atlasMeta, meshdef, track, atlas, mask, interior] = await Promise.all([
      fetchJson(urls.atlas_json), fetchJson(urls.meshdef), fetchJson(urls.track),
      fetchBitmap(urls.atlas), fetchBitmap(urls.mask), fetchBitmap(urls.interior),
    ]);
    const roi = atlasMeta.roi;
    const order = atlasMeta.classes || CLASSES;
    const cells = order.map((name, i) => {
      const cell = atlasMeta.cells && atlasMeta.cells[name];
      const col = cell ? cell.col : i % atlasMeta.grid.cols;
      const row = cell ? cell.row : Math.floor(i / atlasMeta.grid.cols);
      return { name, sx: col * atlasMeta.cell.w, sy: row * atlasMeta.cell.h };
    });
    const targets = CLASSES.map((name) => {
      const t = meshdef.targets[name];
      return t ? Float32Array.from(t.flat()) : null;
    });
    // The video is fetched as a blob so a bearer token works for it too.
    const videoBlob = await (await fetchOk(urls.idle)).blob();
    return {
      roi, cellW: atlasMeta.cell.w, cellH: atlasMeta.cell.h, cells, atlas, mask, interior,
      meshdef, points: Float32Array.from(meshdef.points.flat()), targets,
      track: { fps: track.fps, transforms: track.transforms },
      videoUrl: URL.createObjectURL(videoBlob),
    };
  }

  /** Assets of an avatar from the file names fixed by the avatar folder contract. */
  function urlsFromBase(base, info = {}) {
    const b = base.endsWith("/") ? base : base + "/";
    const la = info.lipsync_assets || {};
    return {
      idle: info.idle_url || b + "idle.mp4",
      atlas: la.atlas_url || b + "atlas.png",
      atlas_json: la.atlas_json_url || b + "atlas.json",
      meshdef: la.meshdef_url || b + "meshdef.json",
      mask: la.mask_url || b + "mask_mouth.png",
      track: la.track_url || b + "track.json",
      interior: la.interior_url || b + "mouth_interior.png",
    };
  }

  // ---------------------------------------------------------------- weights
  /** Viseme weights {class: w} -> Float32Array in CLASSES order; the remainder goes to Rest. */
  function toVector(weights) {
    const v = new Float32Array(CLASSES.length);
    let sum = 0;
    for (let i = 1; i < CLASSES.length; i++) {
      const w = Math.max(0, Number(weights[CLASSES[i]]) || 0);
      v[i] = w; sum += w;
    }
    if (sum > 1) { for (let i = 1; i < v.length; i++) v[i] /= sum; sum = 1; }
    v[0] = 1 - sum;
    return v;
  }
  const REST = toVector({});
  function toObject(v) {
    const o = {};
    CLASSES.forEach((c, i) => { if (v[i] > 1e-4) o[c] = Math.round(v[i] * 1e4) / 1e4; });
    return o;
  }
  function lerpVec(a, b, t) {
    const out = new Float32Array(a.length);
    for (let i = 0; i < a.length; i++) out[i] = a[i] + (b[i] - a[i]) * t;
    return out;
  }
  const isRest = (v) => v[0] > 0.999;
  function dominant(v) {
    let best = 0;
    for (let i = 1; i < v.length; i++) if (v[i] > v[best]) best = i;
    return CLASSES[best];
  }

  /** Canvas transform for a track affine [a,b,tx,c,d,ty] given on pixel centres. */
  function canvasAffine(m) {
    const [a, b, tx, c, d, ty] = m;
    return [a, c, b, d, tx + 0.5 - 0.5 * a - 0.5 * b, ty + 0.5 - 0.5 * c - 0.5 * d];
  }

  // ---------------------------------------------------------------- 2a. sprite renderer
  /** Cross-fades atlas cells by weight (additive 'lighter' blend of premultiplied cells whose
   * alpha is the shared mask, so the sum keeps that alpha) and draws the result at the ROI. */
  class SpriteRenderer {
    constructor(assets) {
      this.a = assets;
      this.name = "sprite";
      this.off = document.createElement("canvas");
      this.off.width = assets.cellW;
      this.off.height = assets.cellH;
      this.octx = this.off.getContext("2d");
    }
    draw(ctx, video, weights, affine) {
      ctx.setTransform(1, 0, 0, 1, 0, 0);
      ctx.drawImage(video, 0, 0, ctx.canvas.width, ctx.canvas.height);
      if (isRest(weights)) return false;
      const { octx, a } = this;
      octx.globalCompositeOperation = "copy";
      octx.globalAlpha = 1;
      octx.clearRect(0, 0, a.cellW, a.cellH);
      octx.globalCompositeOperation = "lighter";
      for (let i = 0; i < CLASSES.length; i++) {
        const w = weights[i];
        if (w < 1 / 512) continue;
        const cell = a.cells.find((c) => c.name === CLASSES[i]);
        if (!cell) continue;
        octx.globalAlpha = w;
        octx.drawImage(a.atlas, cell.sx, cell.sy, a.cellW, a.cellH, 0, 0, a.cellW, a.cellH);
      }
      ctx.setTransform(...canvasAffine(affine));
      ctx.drawImage(this.off, a.roi.x, a.roi.y);
      ctx.setTransform(1, 0, 0, 1, 0, 0);
      return true;
    }
  }

  // ---------------------------------------------------------------- 2b. mesh renderer (WebGL)
  const VS = `
    attribute vec2 aPos; attribute vec2 aVideo; attribute vec2 aRoi;
    uniform vec2 uFrame;
    varying vec2 vVideo; varying vec2 vRoi;
    void main() {
      vec2 c = (aPos + 0.5) / uFrame;
      gl_Position = vec4(c.x * 2.0 - 1.0, 1.0 - c.y * 2.0, 0.0, 1.0);
      vVideo = aVideo; vRoi = aRoi;
    }`;
  const FS_VIDEO = `
    precision mediump float;
    uniform sampler2D uVideo; varying vec2 vVideo; varying vec2 vRoi;
    void main() { gl_FragColor = vec4(texture2D(uVideo, vVideo).rgb, 1.0); }`;
  const FS_MOUTH = `
    precision mediump float;
    uniform sampler2D uVideo; uniform sampler2D uMask;
    varying vec2 vVideo; varying vec2 vRoi;
    void main() {
      gl_FragColor = vec4(texture2D(uVideo, vVideo).rgb, texture2D(uMask, vRoi).r);
    }`;
  const FS_INTERIOR = `
    precision mediump float;
    uniform sampler2D uInterior; uniform sampler2D uMask;
    varying vec2 vVideo; varying vec2 vRoi;
    void main() {
      vec4 t = texture2D(uInterior, vRoi);
      gl_FragColor = vec4(t.rgb, t.a * texture2D(uMask, vRoi).r);
    }`;

  /** Interpolates meshdef targets by weight, warps the current video frame's ROI through the
   * grid triangles (texture = undeformed points, vertices = deformed points, both moved by the
   * frame's track affine), blends by the mask, and shows the interior texture inside the
   * opening polygon of the deformed inner-lip rows. */
  class MeshRenderer {
    constructor(assets, width, height) {
      this.a = assets;
      this.name = "mesh";
      this.canvas = document.createElement("canvas");
      this.canvas.width = width;
      this.canvas.height = height;
      const gl = this.canvas.getContext("webgl", {
        alpha: false, antialias: true, premultipliedAlpha: false, preserveDrawingBuffer: true,
      });
      if (!gl) throw new Error("WebGL is not available");
      this.gl = gl;
      this.progVideo = this.program(VS, FS_VIDEO);
      this.progMouth = this.program(VS, FS_MOUTH);
      this.progInterior = this.program(VS, FS_INTERIOR);
      gl.pixelStorei(gl.UNPACK_PREMULTIPLY_ALPHA_WEBGL, false);
      gl.pixelStorei(gl.UNPACK_COLORSPACE_CONVERSION_WEBGL, gl.NONE);
      this.texVideo = this.texture(null);
      this.texMask = this.texture(assets.mask);
      this.texInterior = this.texture(assets.interior);
      this.buf = gl.createBuffer();
      this.idx = gl.createBuffer();
      const { cols, rows } = assets.meshdef.grid;
      this.cols = cols; this.rows = rows;
      const tris = [];
      for (let r = 0; r < rows - 1; r++) {
        for (let c = 0; c < cols - 1; c++) {
          const p = r * cols + c, q = p + 1, s = p + cols, t = s + 1;
          tris.push(p, q, t, p, t, s); // split along the top-left/bottom-right diagonal
        }
      }
      this.gridTris = new Uint16Array(tris);
      const op = assets.meshdef.opening || { upper_row: 3, lower_row: 4, cols: [3, 12] };
      this.opening = op;
      const quad = [-0.5, -0.5, 0, 0, 0, 0, width - 0.5, -0.5, 1, 0, 0, 0,
        -0.5, height - 0.5, 0, 1, 0, 0, width - 0.5, height - 0.5, 1, 1, 0, 0];
      this.quad = new Float32Array(quad);
    }
    program(vs, fs) {
      const gl = this.gl;
      const make = (type, src) => {
        const s = gl.createShader(type);
        gl.shaderSource(s, src);
        gl.compileShader(s);
        if (!gl.getShaderParameter(s, gl.COMPILE_STATUS)) throw new Error(gl.getShaderInfoLog(s));
        return s;
      };
      const p = gl.createProgram();
      gl.attachShader(p, make(gl.VERTEX_SHADER, vs));
      gl.attachShader(p, make(gl.FRAGMENT_SHADER, fs));
      gl.linkProgram(p);
      if (!gl.getProgramParameter(p, gl.LINK_STATUS)) throw new Error(gl.getProgramInfoLog(p));
      return p;
    }
    texture(source) {
      const gl = this.gl;
      const t = gl.createTexture();
      gl.bindTexture(gl.TEXTURE_2D, t);
      gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_WRAP_S, gl.CLAMP_TO_EDGE);
      gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_WRAP_T, gl.CLAMP_TO_EDGE);
      gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_MIN_FILTER, gl.LINEAR);
      gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_MAG_FILTER, gl.LINEAR);
      if (source) gl.texImage2D(gl.TEXTURE_2D, 0, gl.RGBA, gl.RGBA, gl.UNSIGNED_BYTE, source);
      return t;
    }
    drawWith(prog, verts, indices, textures) {
      const gl = this.gl;
      gl.useProgram(prog);
      gl.bindBuffer(gl.ARRAY_BUFFER, this.buf);
      gl.bufferData(gl.ARRAY_BUFFER, verts, gl.STREAM_DRAW);
      const stride = 6 * 4;
      [["aPos", 0], ["aVideo", 8], ["aRoi", 16]].forEach(([name, offset]) => {
        const loc = gl.getAttribLocation(prog, name);
        if (loc < 0) return;
        gl.enableVertexAttribArray(loc);
        gl.vertexAttribPointer(loc, 2, gl.FLOAT, false, stride, offset);
      });
      gl.uniform2f(gl.getUniformLocation(prog, "uFrame"), this.canvas.width, this.canvas.height);
      textures.forEach(([name, tex], unit) => {
        gl.activeTexture(gl.TEXTURE0 + unit);
        gl.bindTexture(gl.TEXTURE_2D, tex);
        gl.uniform1i(gl.getUniformLocation(prog, name), unit);
      });
      gl.bindBuffer(gl.ELEMENT_ARRAY_BUFFER, this.idx);
      gl.bufferData(gl.ELEMENT_ARRAY_BUFFER, indices, gl.STREAM_DRAW);
      gl.drawElements(gl.TRIANGLES, indices.length, gl.UNSIGNED_SHORT, 0);
    }
    /** Vertex array [frame x, frame y, video u, video v, roi u, roi v] for deformed points. */
    vertices(dst, affine, src = this.a.points) {
      const { a } = this;
      const { x: rx, y: ry, w: rw, h: rh } = a.roi;
      const [m0, m1, m2, m3, m4, m5] = affine;
      const W = this.canvas.width, H = this.canvas.height;
      const n = dst.length / 2;
      const out = new Float32Array(n * 6);
      for (let i = 0; i < n; i++) {
        const sx = src[2 * i] + rx, sy = src[2 * i + 1] + ry; // photo, undeformed
        const dx = dst[2 * i] + rx, dy = dst[2 * i + 1] + ry; // photo, deformed
        out[6 * i] = m0 * dx + m1 * dy + m2;
        out[6 * i + 1] = m3 * dx + m4 * dy + m5;
        out[6 * i + 2] = (m0 * sx + m1 * sy + m2 + 0.5) / W;
        out[6 * i + 3] = (m3 * sx + m4 * sy + m5 + 0.5) / H;
        out[6 * i + 4] = (dst[2 * i] + 0.5) / rw;
        out[6 * i + 5] = (dst[2 * i + 1] + 0.5) / rh;
      }
      return out;
    }
    draw(ctx, video, weights, affine) {
      const { gl, a } = this;
      gl.viewport(0, 0, this.canvas.width, this.canvas.height);
      gl.bindTexture(gl.TEXTURE_2D, this.texVideo);
      gl.texImage2D(gl.TEXTURE_2D, 0, gl.RGBA, gl.RGBA, gl.UNSIGNED_BYTE, video);
      gl.disable(gl.BLEND);
      this.drawWith(this.progVideo, this.quad, new Uint16Array([0, 1, 3, 0, 3, 2]),
        [["uVideo", this.texVideo]]);
      const active = !isRest(weights);
      if (active) {
        const dst = Float32Array.from(a.points);
        for (let k = 1; k < CLASSES.length; k++) {
          const w = weights[k], t = a.targets[k];
          if (w < 1e-4 || !t) continue;
          for (let i = 0; i < dst.length; i++) dst[i] += w * t[i];
        }
        gl.enable(gl.BLEND);
        gl.blendFunc(gl.SRC_ALPHA, gl.ONE_MINUS_SRC_ALPHA);
        this.drawWith(this.progMouth, this.vertices(dst, affine), this.gridTris,
          [["uVideo", this.texVideo], ["uMask", this.texMask]]);
        // Opening: a strip between the deformed upper and lower inner-lip rows; where the
        // lower row lies above the upper one the lips overlap and nothing opens.
        const { upper_row: ur, lower_row: lr, cols: [c0, c1] } = this.opening;
        const cols = this.cols;
        const strip = new Float32Array(2 * 2 * (c1 - c0 + 1));
        let j = 0;
        for (let c = c0; c <= c1; c++) {
          const u = ur * cols + c, l = lr * cols + c;
          const uy = dst[2 * u + 1];
          strip[j++] = dst[2 * u]; strip[j++] = uy;
          strip[j++] = dst[2 * l]; strip[j++] = Math.max(dst[2 * l + 1], uy);
        }
        const idx = [];
        for (let k = 0; k < c1 - c0; k++) {
          const p = 2 * k, q = p + 2; // upper k, upper k+1; lower = +1
          idx.push(p, q, q + 1, p, q + 1, p + 1);
        }
        this.drawWith(this.progInterior, this.vertices(strip, affine, strip), new Uint16Array(idx),
          [["uInterior", this.texInterior], ["uMask", this.texMask]]);
      }
      ctx.setTransform(1, 0, 0, 1, 0, 0);
      ctx.drawImage(this.canvas, 0, 0);
      return active;
    }
  }

  // ---------------------------------------------------------------- 3. audio scheduler
  class AudioClock {
    constructor() {
      this.ctx = null;
      this.gain = null;
      this.utterances = new Map(); // utterance_id -> state
      this.order = [];
      this.tailEnd = 0; // context time where the last scheduled audio ends
      this.ramp = null; // {from, start}
    }
    ensure() {
      if (!this.ctx) {
        this.ctx = new AudioContext({ latencyHint: "interactive" });
        this.gain = this.ctx.createGain();
        this.gain.connect(this.ctx.destination);
      }
      if (this.ctx.state === "suspended") this.ctx.resume();
      return this.ctx;
    }
    /** The context time being heard now (currentTime runs ahead by the output latency). */
    now() {
      if (!this.ctx) return 0;
      return this.ctx.currentTime - (this.ctx.outputLatency || 0);
    }
    utterance(id) {
      let u = this.utterances.get(id);
      if (!u) {
        u = { id, t0: null, end: 0, sources: [], frames: [], ended: false, interrupted: false };
        this.utterances.set(id, u);
        this.order.push(id);
        while (this.order.length > 16) this.utterances.delete(this.order.shift());
      }
      return u;
    }
    /** Schedule one PCM16 mono chunk at its pts; returns the context time it starts. */
    schedule(id, ptsMs, sampleRate, pcm16) {
      const ctx = this.ensure();
      const u = this.utterance(id);
      if (u.interrupted || pcm16.length === 0) return null;
      const floor = ctx.currentTime + 0.01;
      if (u.t0 === null) {
        u.t0 = Math.max(ctx.currentTime + LEAD_S, this.tailEnd) - ptsMs / 1000;
        stats.utterancesStarted += 0; // counted on utterance_start
      }
      let at = u.t0 + ptsMs / 1000;
      if (at < floor) { // late chunk: slide the utterance clock so audio stays gapless
        u.t0 += floor - at;
        at = floor;
        stats.underruns++;
      }
      const buf = ctx.createBuffer(1, pcm16.length, sampleRate);
      const ch = buf.getChannelData(0);
      for (let i = 0; i < pcm16.length; i++) ch[i] = pcm16[i] / 32768;
      const src = ctx.createBufferSource();
      src.buffer = buf;
      src.connect(this.gain);
      src.start(at);
      u.sources.push(src);
      src.onended = () => { const k = u.sources.indexOf(src); if (k >= 0) u.sources.splice(k, 1); };
      u.end = Math.max(u.end, at + buf.duration);
      this.tailEnd = Math.max(this.tailEnd, u.end);
      stats.samplesScheduled += pcm16.length;
      stats.secondsScheduled += buf.duration;
      return at;
    }
    /** Cut an utterance's audio now and ramp the mouth back to Rest from what it shows. */
    interrupt(id, shownWeights) {
      const u = this.utterance(id);
      if (u.interrupted) return;
      u.interrupted = true;
      for (const s of u.sources) { try { s.stop(); } catch { /* not started */ } }
      u.sources = [];
      if (this.ctx) {
        this.tailEnd = Math.min(this.tailEnd, this.ctx.currentTime);
        this.ramp = { from: shownWeights, start: this.now() };
      }
    }
    interruptAll(shownWeights) {
      for (const id of this.order) {
        const u = this.utterances.get(id);
        if (u && !u.ended) this.interrupt(id, shownWeights);
      }
    }
    /** Weights to show now: the playing utterance's timeline at the audio clock. */
    weightsNow() {
      const now = this.now();
      if (this.ramp) {
        const t = (now - this.ramp.start) / RAMP_S;
        if (t < 1) return { w: lerpVec(this.ramp.from, REST, Math.max(0, t)), fromTimeline: false };
        this.ramp = null;
      }
      let cur = null;
      for (const id of this.order) {
        const u = this.utterances.get(id);
        if (u && u.t0 !== null && !u.interrupted && u.t0 <= now && now <= u.end + 0.25) cur = u;
      }
      if (!cur || cur.frames.length === 0) return { w: REST, fromTimeline: false };
      const ms = (now - cur.t0) * 1000;
      const f = cur.frames;
      if (ms < f[0].pts) return { w: REST, fromTimeline: false };
      let lo = 0, hi = f.length - 1;
      while (lo < hi) { const mid = (lo + hi + 1) >> 1; if (f[mid].pts <= ms) lo = mid; else hi = mid - 1; }
      const a = f[lo], b = f[lo + 1];
      if (now > cur.end && cur.ended) return { w: REST, fromTimeline: false };
      if (!b) return { w: ms - a.pts > MAX_HOLD_MS && cur.ended ? REST : a.w, fromTimeline: true };
      return { w: lerpVec(a.w, b.w, (ms - a.pts) / Math.max(1, b.pts - a.pts)), fromTimeline: true };
    }
    addViseme(id, ptsMs, weights) {
      const u = this.utterance(id);
      if (u.interrupted) return;
      const frame = { pts: ptsMs, w: toVector(weights) };
      const f = u.frames;
      if (!f.length || f[f.length - 1].pts <= ptsMs) f.push(frame);
      else { // out of order: insert in place
        let k = f.length - 1;
        while (k > 0 && f[k - 1].pts > ptsMs) k--;
        f.splice(k, 0, frame);
      }
    }
  }

  // ---------------------------------------------------------------- player state + loop
  const video = $("idle");
  const stage = $("stage");
  const sctx = stage.getContext("2d", { willReadFrequently: true });
  const audio = new AudioClock();
  let assets = null;
  let renderer = null;
  let held = null; // weights held for inspection (debug)
  let shown = REST;
  let lastMediaTime = 0;

  function trackFrame(mediaTime) {
    const t = assets.track;
    const n = t.transforms.length;
    return ((Math.floor(mediaTime * t.fps + 0.5) % n) + n) % n;
  }

  function render() {
    requestAnimationFrame(render);
    if (!assets || !renderer || video.readyState < 2) return;
    const mt = video.requestVideoFrameCallback ? lastMediaTime : video.currentTime;
    const frame = trackFrame(mt);
    stats.trackFrame = frame;
    const { w, fromTimeline } = held ? { w: held, fromTimeline: false } : audio.weightsNow();
    shown = w;
    stats.weights = toObject(w);
    stats.mouthActive = renderer.draw(sctx, video, w, assets.track.transforms[frame]);
    stats.renders++;
    if (fromTimeline && !isRest(w)) stats.visemesApplied++;
    const name = dominant(w);
    if ($("cur-viseme").textContent !== name) $("cur-viseme").textContent = name;
  }

  function onVideoFrame(_now, meta) {
    lastMediaTime = meta.mediaTime;
    stats.videoFrames++;
    video.requestVideoFrameCallback(onVideoFrame);
  }

  function makeRenderer(variant) {
    if (variant === "mesh") {
      try { return new MeshRenderer(assets, stage.width, stage.height); }
      catch (e) { log(`mesh variant unavailable (${e.message}); using sprites`); }
    }
    return new SpriteRenderer(assets);
  }

  async function showAvatar(id, urls) {
    setStatus(`loading ${id}…`);
    const loaded = await loadAssets(urls);
    if (assets && assets.videoUrl) URL.revokeObjectURL(assets.videoUrl);
    assets = loaded;
    video.src = assets.videoUrl;
    await new Promise((resolve, reject) => {
      video.onloadeddata = resolve;
      video.onerror = () => reject(new Error(`could not play ${urls.idle}`));
    });
    stage.width = video.videoWidth;
    stage.height = video.videoHeight;
    renderer = makeRenderer($("variant").value);
    stats.avatar = id;
    stats.variant = $("variant").value;
    stats.renderer = renderer.name;
    if (video.requestVideoFrameCallback) video.requestVideoFrameCallback(onVideoFrame);
    await video.play().catch((e) => log(`video: ${e.message}`));
    setStatus(`${id} · ${stage.width}×${stage.height} · ${renderer.name}`);
  }

  // ---------------------------------------------------------------- debug export
  window.avatarkitPlayer = Object.freeze({
    classes: CLASSES.slice(),
    /** A deep copy of the counters: reading it never changes the player. */
    get stats() { return JSON.parse(JSON.stringify(stats)); },
    get roi() { return assets ? { ...assets.roi } : null; },
    /** The track affine of the frame on screen. */
    get affine() { return assets ? assets.track.transforms[stats.trackFrame].slice() : null; },
    /** Hold a pose (e.g. {AI: 1}) instead of the audio timeline; null releases it. */
    hold(weights) { held = weights ? toVector(weights) : null; },
    /** Pause / resume the idle loop at a time, for still-frame inspection. */
    async seek(seconds) {
      video.pause();
      video.currentTime = seconds;
      await new Promise((r) => { video.onseeked = r; });
      lastMediaTime = seconds;
    },
    play() { return video.play(); },
  });

  // Transport and UI wiring follow (see docs/protocol.md).
  window.__avatarkit = { $, params, TOKEN, stats, note, log, setStatus, fetchOk, fetchJson,
    urlsFromBase, showAvatar, audio, get shown() { return shown; } };
  requestAnimationFrame(render);
})();
