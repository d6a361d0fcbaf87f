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
 *   6. patches   - with ?lipsync=onnx the server's model draws the mouth: binary patch frames
 *                  (RGBA, photo-ROI coordinates) shown at their pts on the audio clock through
 *                  the frame's track affine; any frame whose patch is not here in time falls
 *                  back to the viseme pose
 * window.avatarkitPlayer exposes read-only stats for tests and debugging.
 */
(() => {
  "use strict";

  const CLASSES = ["Rest", "AI", "E", "U", "O", "MBP", "FV", "L", "WQ", "R", "CH", "TH"];
  const RAMP_S = 0.15; // local ramp back to Rest on barge-in
  // The reference fills the opening polygon with OpenCV's anti-aliased rasteriser, whose
  // coverage reaches about this far past the edge; growing the strip by it matches its look.
  const OPENING_GROW_PX = 0.75;
  const EDGE_RAMP_MS = 80; // fade from / to Rest outside an utterance's timeline (as the renderer)
  // First chunk of an utterance plays this far after it arrives. With model patches
  // (?lipsync=onnx) a little more, so the first frames' patches (which need 0.2 s of audio
  // and one inference) are usually here in time instead of falling back to visemes.
  const LEAD_S = new URLSearchParams(location.search).get("lipsync") === "onnx" ? 0.12 : 0.04;

  const $ = (id) => document.getElementById(id);
  const params = new URLSearchParams(location.search);
  const TOKEN = params.get("token") || "";
  const LIPSYNC = params.get("lipsync") === "onnx" ? "onnx" : "visemes";

  // ---------------------------------------------------------------- stats (read-only export)
  const stats = {
    avatar: null, variant: null, renderer: null, videoFrames: 0, trackFrame: 0, renders: 0,
    audioFrames: 0, audioBytes: 0, samplesScheduled: 0, secondsScheduled: 0, underruns: 0,
    visemeEvents: 0, visemesApplied: 0, utterancesStarted: 0, utterancesEnded: 0, micChunks: 0,
    lastEnd: null, errors: [], events: [], weights: { Rest: 1 }, mouthActive: false,
    latency: { firstAudioMs: null, firstVisemeMs: null, audibleMs: null },
    ws: "closed", session: null, hello: null, latencyUtterance: null, playingSources: 0,
    audioLevel: 0, audioPeak: 0,
    lipsync: LIPSYNC, patchFrames: 0, patchBytes: 0, patchesShown: 0, patchesLate: 0,
    patchErrors: 0, patchOnScreen: null,
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
  // Credentials go to this server only: ?assets= and meshdef.interior_layers.file may name
  // any URL, and a token sent there would be the page's token given away.
  function sameServer(url) {
    const u = new URL(url, location.href);
    return u.host === location.host
      && (u.protocol === location.protocol || u.protocol === (location.protocol === "https:" ? "wss:" : "ws:"));
  }
  function authHeaders(url, extra = {}, token = TOKEN) {
    return token && sameServer(url) ? { ...extra, Authorization: `Bearer ${token}` } : extra;
  }
  async function fetchOk(url, init = {}, token = TOKEN) {
    const res = await fetch(url, { ...init, headers: authHeaders(url, init.headers || {}, token) });
    if (!res.ok) {
      let detail = "";
      try { const body = await res.json(); detail = body.message || body.error || JSON.stringify(body); }
      catch { detail = res.statusText; }
      throw new Error(`${init.method || "GET"} ${url}: ${res.status} ${detail}`);
    }
    return res;
  }
  const fetchJson = async (url, init, token) => (await fetchOk(url, init, token)).json();
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
    // Optional interior layers (meshdef.interior_layers): stacked ROI-sized cells.
    const il = meshdef.interior_layers;
    const layers = il && il.file && Array.isArray(il.layers)
      ? await fetchBitmap(new URL(il.file, new URL(urls.meshdef, location.href)).href) : null;
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
      layers, meshdef, points: Float32Array.from(meshdef.points.flat()), targets,
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
  /** Viseme weights {class: w} -> Float32Array in CLASSES order, normalised to sum 1 (all
   * zero -> Rest), as the Python renderer does (avatarkit/render/weights.py). */
  function toVector(weights) {
    const v = new Float32Array(CLASSES.length);
    let sum = 0;
    for (let i = 0; i < CLASSES.length; i++) {
      const w = Math.max(0, Number(weights[CLASSES[i]]) || 0);
      v[i] = w; sum += w;
    }
    if (sum < 1e-9) { v[0] = 1; return v; }
    for (let i = 0; i < v.length; i++) v[i] /= sum;
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
  /** The edge frame faded towards Rest, smoothstep over EDGE_RAMP_MS (0 ms: the frame). */
  function edgeFade(w, distMs) {
    const t = Math.min(1, Math.max(0, distMs / EDGE_RAMP_MS));
    return lerpVec(w, REST, t * t * (3 - 2 * t));
  }
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
  /** Cross-fades atlas cells by weight, as avatarkit/render/variants.py SpriteVariant: the
   * live idle mouth stands in for the Rest cell, so the non-Rest cells are summed with their
   * weights (additive 'lighter' blend of premultiplied cells whose alpha is the mask cut below
   * each cell's chin: the sum has alpha sum w_i a_i) and drawn over the frame at the ROI. */
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
      for (let i = 1; i < CLASSES.length; i++) {
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
    uniform sampler2D uInterior; uniform sampler2D uMask; uniform float uReveal;
    varying vec2 vVideo; varying vec2 vRoi;
    void main() {
      vec4 t = texture2D(uInterior, vRoi);
      gl_FragColor = vec4(t.rgb, t.a * uReveal * texture2D(uMask, vRoi).r);
    }`;
  // The lip seam: vVideo.x = vertical ROI-pixel distance from the upper inner lip row.
  const FS_SEAM = `
    precision mediump float;
    uniform sampler2D uMask; uniform vec3 uRgb; uniform float uAlpha; uniform float uSigma;
    varying vec2 vVideo; varying vec2 vRoi;
    void main() {
      float d = vVideo.x / uSigma;
      gl_FragColor = vec4(uRgb, uAlpha * exp(-d * d) * texture2D(uMask, vRoi).r);
    }`;
  // A narrowing opening in shadow: vVideo.x = the column's shade.
  const FS_SHADE = `
    precision mediump float;
    uniform sampler2D uMask; uniform vec3 uRgb;
    varying vec2 vVideo; varying vec2 vRoi;
    void main() { gl_FragColor = vec4(uRgb, vVideo.x * texture2D(uMask, vRoi).r); }`;
  // One interior layer: vRoi = where to sample it (within its cell), vVideo = ROI position
  // of the fragment (for the mask).
  const FS_LAYER = `
    precision mediump float;
    uniform sampler2D uLayers; uniform sampler2D uMask; uniform float uReveal;
    uniform float uCell; uniform float uCells; uniform float uRoiH;
    varying vec2 vVideo; varying vec2 vRoi;
    void main() {
      float y = clamp(vRoi.y, 0.5 / uRoiH, 1.0 - 0.5 / uRoiH);
      vec4 t = texture2D(uLayers, vec2(vRoi.x, (uCell + y) / uCells));
      gl_FragColor = vec4(t.rgb, t.a * uReveal * texture2D(uMask, vVideo).r);
    }`;

  /** Interpolates meshdef targets by weight, warps the current video frame's ROI through the
   * grid triangles (texture = undeformed points, vertices = deformed points, both moved by the
   * frame's track affine), blends by the mask, and shows the interior texture inside the
   * opening polygon of the deformed inner-lip rows, faded in as the lips part beyond their
   * rest gap, then the optional interior layers over it - as avatarkit/render/variants.py
   * MeshVariant. */
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
      const seam = assets.meshdef.seam;
      if (seam) {
        this.progSeam = this.program(VS, FS_SEAM);
        this.progShade = this.program(VS, FS_SHADE);
        this.seam = {
          rgb: seam.rgb.map((v) => v / 255), strength: seam.strength, sigma: seam.sigma_px,
          classes: CLASSES.map((c) => (seam.classes && seam.classes[c]) || 0),
          shadeBelow: seam.shade_below || 0, minGap: seam.min_photo_gap_px || 0,
        };
      }
      gl.pixelStorei(gl.UNPACK_PREMULTIPLY_ALPHA_WEBGL, false);
      gl.pixelStorei(gl.UNPACK_COLORSPACE_CONVERSION_WEBGL, gl.NONE);
      this.texVideo = this.texture(null);
      this.texMask = this.texture(assets.mask);
      this.texInterior = this.texture(assets.interior);
      const il = assets.meshdef.interior_layers;
      if (assets.layers) {
        this.progLayer = this.program(VS, FS_LAYER);
        this.texLayers = this.texture(assets.layers);
        this.layers = il.layers.map((l) => ({
          cell: l.cell, jaw: l.follows === "jaw",
          classes: CLASSES.map((c) => (l.classes && l.classes[c]) || 0),
        }));
        this.layerCells = assets.layers.height / assets.roi.h;
      } else {
        this.layers = [];
      }
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
      const [c0, c1] = op.cols, third = Math.floor((c1 - c0) / 3);
      this.midCols = [c0 + third, c1 - third];
      const pts = assets.points;
      this.mouthWidth = pts[2 * (op.upper_row * cols + c1)] - pts[2 * (op.upper_row * cols + c0)];
      this.restGap = this.centreGap(pts);
      const quad = [-0.5, -0.5, 0, 0, 0, 0, width - 0.5, -0.5, 1, 0, 0, 0,
        -0.5, height - 0.5, 0, 1, 0, 0, width - 0.5, height - 0.5, 1, 1, 0, 0];
      this.quad = new Float32Array(quad);
    }
    /** Mean height of the opening over the middle third of the mouth (ROI pixels). */
    centreGap(p) {
      const { upper_row: ur, lower_row: lr } = this.opening;
      let sum = 0, n = 0;
      for (let c = this.midCols[0]; c <= this.midCols[1]; c++, n++) {
        sum += p[2 * (lr * this.cols + c) + 1] - p[2 * (ur * this.cols + c) + 1];
      }
      return sum / n;
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
      const dst = Float32Array.from(a.points);
      let moved = 0;
      if (!isRest(weights)) {
        for (let k = 1; k < CLASSES.length; k++) {
          const w = weights[k], t = a.targets[k];
          if (w < 1e-4 || !t) continue;
          for (let i = 0; i < dst.length; i++) dst[i] += w * t[i];
        }
        for (let i = 0; i < dst.length; i++) moved = Math.max(moved, Math.abs(dst[i] - a.points[i]));
      }
      const active = moved >= 1e-3;
      if (active) {
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
          const ly = Math.max(dst[2 * l + 1], uy), grow = ly > uy ? OPENING_GROW_PX : 0;
          strip[j++] = dst[2 * u]; strip[j++] = uy - grow;
          strip[j++] = dst[2 * l]; strip[j++] = ly + grow;
        }
        const idx = [];
        for (let k = 0; k < c1 - c0; k++) {
          const p = 2 * k, q = p + 2; // upper k, upper k+1; lower = +1
          idx.push(p, q, q + 1, p, q + 1, p + 1);
        }
        const reveal = Math.min(1, Math.max(0,
          (this.centreGap(dst) - this.restGap) / Math.max(0.05 * this.mouthWidth, 1)));
        if (reveal > 0) {
          gl.useProgram(this.progInterior);
          gl.uniform1f(gl.getUniformLocation(this.progInterior, "uReveal"), reveal);
          this.drawWith(this.progInterior, this.vertices(strip, affine, strip),
            new Uint16Array(idx), [["uInterior", this.texInterior], ["uMask", this.texMask]]);
          this.drawLayers(strip, new Uint16Array(idx), dst, weights, reveal, affine);
        }
        this.drawShade(strip, dst, new Uint16Array(idx), affine);
        this.drawSeam(dst, weights, affine);
      }
      ctx.setTransform(1, 0, 0, 1, 0, 0);
      ctx.drawImage(this.canvas, 0, 0);
      return active;
    }
    /** A narrowing opening shaded towards the seam colour (meshdef.seam.shade_below): per
     * column, alpha = clamp(1 - (gap / photo gap) / shade_below, 0, 1), 0 where the photo's
     * lips are under min_photo_gap_px apart; the warp squeezes the photo's teeth into it. */
    drawShade(strip, dst, idx, affine) {
      if (!this.seam || !(this.seam.shadeBelow > 0)) return;
      const { a } = this;
      const { upper_row: ur, lower_row: lr, cols: [c0, c1] } = this.opening;
      const v = this.vertices(strip, affine, strip);
      let any = false;
      for (let c = c0; c <= c1; c++) {
        const u = ur * this.cols + c, l = lr * this.cols + c;
        const photoGap = a.points[2 * l + 1] - a.points[2 * u + 1];
        const gap = dst[2 * l + 1] - dst[2 * u + 1];
        let shade = 0;
        if (photoGap > this.seam.minGap) {
          shade = Math.min(1, Math.max(0, 1 - gap / photoGap / this.seam.shadeBelow));
        }
        any = any || shade > 0;
        const i = 2 * (c - c0);
        v[6 * i + 2] = shade; v[6 * (i + 1) + 2] = shade;
      }
      if (!any) return;
      const gl = this.gl, prog = this.progShade;
      gl.useProgram(prog);
      gl.uniform3f(gl.getUniformLocation(prog, "uRgb"), ...this.seam.rgb);
      this.drawWith(prog, v, idx, [["uMask", this.texMask]]);
    }
    /** The lip seam (meshdef.seam): a dark line along the deformed upper inner lip row
     * between the corner columns, faded by the weights of the closing classes: alpha =
     * strength x amount x exp(-(d / sigma)^2), d the vertical distance from the row. A strip
     * 3 sigma above and below the row carries d in vVideo.x. */
    drawSeam(dst, weights, affine) {
      if (!this.seam) return;
      let amount = 0;
      for (let k = 0; k < CLASSES.length; k++) amount += weights[k] * this.seam.classes[k];
      amount = Math.min(1, Math.max(0, amount));
      if (amount <= 0) return;
      const { upper_row: ur, cols: [c0, c1] } = this.opening;
      const reach = 3 * this.seam.sigma;
      const strip = new Float32Array(4 * (c1 - c0 + 1));
      let j = 0;
      for (let c = c0; c <= c1; c++) {
        const u = ur * this.cols + c;
        strip[j++] = dst[2 * u]; strip[j++] = dst[2 * u + 1] - reach;
        strip[j++] = dst[2 * u]; strip[j++] = dst[2 * u + 1] + reach;
      }
      const v = this.vertices(strip, affine, strip);
      for (let i = 0; i < strip.length / 2; i++) {
        v[6 * i + 2] = i % 2 ? reach : -reach; v[6 * i + 3] = 0;
      }
      const idx = [];
      for (let k = 0; k < c1 - c0; k++) {
        const p = 2 * k, q = p + 2;
        idx.push(p, q, q + 1, p, q + 1, p + 1);
      }
      const gl = this.gl, prog = this.progSeam;
      gl.useProgram(prog);
      gl.uniform3f(gl.getUniformLocation(prog, "uRgb"), ...this.seam.rgb);
      gl.uniform1f(gl.getUniformLocation(prog, "uAlpha"), this.seam.strength * amount);
      gl.uniform1f(gl.getUniformLocation(prog, "uSigma"), this.seam.sigma);
      this.drawWith(prog, v, new Uint16Array(idx), [["uMask", this.texMask]]);
    }
    /** The interior layers over the opening strip, each faded in by the weights of its
     * classes. "jaw" layers move with the deformed lower inner lip row: a strip vertex of
     * column c samples x = that column's undeformed x, y = its y less the row's dy. */
    drawLayers(strip, idx, dst, weights, reveal, affine) {
      if (!this.layers.length) return;
      const { a } = this;
      const { lower_row: lr, cols: [c0] } = this.opening;
      const base = this.vertices(strip, affine, strip);
      const { w: rw, h: rh } = a.roi;
      for (const layer of this.layers) {
        let amount = 0;
        for (let k = 0; k < CLASSES.length; k++) amount += weights[k] * layer.classes[k];
        amount = Math.min(1, Math.max(0, amount)) * reveal;
        if (amount <= 0) continue;
        const v = Float32Array.from(base);
        for (let i = 0; i < strip.length / 2; i++) {
          v[6 * i + 2] = base[6 * i + 4]; v[6 * i + 3] = base[6 * i + 5]; // mask at the fragment
          if (layer.jaw) {
            const l = lr * this.cols + c0 + (i >> 1);
            v[6 * i + 4] = (a.points[2 * l] + 0.5) / rw;
            v[6 * i + 5] = (strip[2 * i + 1] - (dst[2 * l + 1] - a.points[2 * l + 1]) + 0.5) / rh;
          }
        }
        const gl = this.gl;
        gl.useProgram(this.progLayer);
        gl.uniform1f(gl.getUniformLocation(this.progLayer, "uReveal"), amount);
        gl.uniform1f(gl.getUniformLocation(this.progLayer, "uCell"), layer.cell);
        gl.uniform1f(gl.getUniformLocation(this.progLayer, "uCells"), this.layerCells);
        gl.uniform1f(gl.getUniformLocation(this.progLayer, "uRoiH"), rh);
        this.drawWith(this.progLayer, v, idx,
          [["uLayers", this.texLayers], ["uMask", this.texMask]]);
      }
    }
  }

  // ---------------------------------------------------------------- 3. audio scheduler
  /** Plays each utterance's PCM16 chunks back to back on the AudioContext clock. An
   * utterance is anchored when its first chunk arrives: t0 = the context time where its
   * pts 0 plays. Chunk n then starts at t0 + pts_n, so chunks are gapless whatever their
   * sizes; an AudioBuffer at the chunk's own sample rate lets Web Audio resample. */
  class AudioClock {
    constructor() {
      this.ctx = null;
      this.master = null;
      this.utterances = new Map(); // utterance_id -> state
      this.order = [];
      this.tailEnd = 0; // context time where the last scheduled audio ends
      this.ramp = null; // local ramp {from, start} when audio was cut without a server ramp
    }
    ensure() {
      if (!this.ctx) {
        this.ctx = new AudioContext({ latencyHint: "interactive" });
        this.master = this.ctx.createGain();
        this.master.connect(this.ctx.destination);
        // A level meter on what is actually rendered (stats.audioPeak), for the readout/tests.
        this.analyser = this.ctx.createAnalyser();
        this.analyser.fftSize = 2048;
        this.master.connect(this.analyser);
        this.levels = new Float32Array(this.analyser.fftSize);
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
        u = { id, t0: null, end: 0, sources: [], frames: [], ended: false, interrupted: false,
          gain: null, cutAt: null, patches: new Map(), patchSeen: new Set() };
        this.utterances.set(id, u);
        this.order.push(id);
        while (this.order.length > 16) {
          const gone = this.utterances.get(this.order.shift());
          if (!gone) continue;
          for (const bmp of gone.patches.values()) bmp.close();
          this.utterances.delete(gone.id);
        }
      }
      return u;
    }
    /** Schedule one PCM16 mono chunk at its pts; returns the context time it starts. */
    schedule(id, ptsMs, sampleRate, pcm16) {
      const ctx = this.ensure();
      const u = this.utterance(id);
      if (u.cutAt !== null || pcm16.length === 0) return null;
      const floor = ctx.currentTime + 0.005;
      if (u.t0 === null) {
        u.t0 = Math.max(ctx.currentTime + LEAD_S, this.tailEnd) - ptsMs / 1000;
        u.gain = ctx.createGain();
        u.gain.connect(this.master);
      }
      let at = u.t0 + ptsMs / 1000;
      if (at < floor) { // a late chunk: slide this utterance's clock so audio stays gapless
        u.t0 += floor - at;
        at = floor;
        stats.underruns++;
      }
      const buf = ctx.createBuffer(1, pcm16.length, sampleRate);
      const ch = buf.getChannelData(0);
      for (let i = 0; i < pcm16.length; i++) ch[i] = pcm16[i] / 32768;
      const src = ctx.createBufferSource();
      src.buffer = buf;
      src.connect(u.gain);
      src.start(at);
      u.sources.push(src);
      src.onended = () => { const k = u.sources.indexOf(src); if (k >= 0) u.sources.splice(k, 1); };
      u.end = Math.max(u.end, at + buf.duration);
      this.tailEnd = Math.max(this.tailEnd, u.end);
      stats.samplesScheduled += pcm16.length;
      stats.secondsScheduled = Math.round((stats.secondsScheduled + buf.duration) * 1e4) / 1e4;
      return at;
    }
    /** utterance_end: mark it over. Interrupted: stop its audio at the end pts (the server's
     * ramp runs until then), fading it out; if that moment has passed here, stop now and
     * ramp the mouth locally from what it shows. */
    end(id, endPtsMs, interrupted, shownWeights) {
      const u = this.utterance(id);
      u.ended = true;
      if (!interrupted) return;
      u.interrupted = true;
      if (u.t0 === null || !this.ctx) { u.cutAt = 0; return; } // never started playing
      const ctx = this.ctx;
      let at = u.t0 + endPtsMs / 1000;
      const now = ctx.currentTime;
      if (at <= now + 0.01) {
        at = now;
        this.ramp = { from: shownWeights, start: this.now() };
        u.frames = [];
      }
      u.cutAt = at;
      const fadeFrom = Math.max(now, at - RAMP_S);
      u.gain.gain.cancelScheduledValues(now);
      u.gain.gain.setValueAtTime(1, fadeFrom);
      u.gain.gain.linearRampToValueAtTime(0, at + 0.005);
      for (const s of u.sources) { try { s.stop(at + 0.01); } catch { /* already stopped */ } }
      u.end = Math.min(u.end, at);
      // Queued utterances start right after the ramp on the session clock, not after the
      // audio this one had buffered.
      this.tailEnd = Math.max(now, at);
    }
    /** Local cut without the server (socket lost): everything stops now. */
    cutAll(shownWeights) {
      for (const id of this.order) {
        const u = this.utterances.get(id);
        if (u && !u.ended) this.end(id, 0, true, shownWeights);
      }
      this.ramp = { from: shownWeights, start: this.now() };
    }
    /** Peak level of the last ~46 ms of rendered output (0..1). */
    level() {
      if (!this.analyser) return 0;
      this.analyser.getFloatTimeDomainData(this.levels);
      let peak = 0;
      for (let i = 0; i < this.levels.length; i++) peak = Math.max(peak, Math.abs(this.levels[i]));
      return peak;
    }
    playingSources() {
      let n = 0;
      for (const u of this.utterances.values()) n += u.sources.length;
      return n;
    }
    /** The utterance being heard and the position in it, ms; null between utterances. */
    position() {
      const now = this.now();
      let cur = null;
      for (const id of this.order) {
        const u = this.utterances.get(id);
        if (u && u.t0 !== null && u.t0 <= now && now < u.end) cur = u;
      }
      return cur ? { u: cur, ms: (now - cur.t0) * 1000 } : null;
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
        if (u && u.t0 !== null && u.frames.length && u.t0 - EDGE_RAMP_MS / 1000 <= now
            && (!u.ended || now <= u.end + EDGE_RAMP_MS / 1000 + 0.5)) cur = u;
      }
      if (!cur) return { w: REST, fromTimeline: false };
      const ms = (now - cur.t0) * 1000;
      const f = cur.frames;
      if (ms < f[0].pts) return { w: edgeFade(f[0].w, f[0].pts - ms), fromTimeline: true };
      let lo = 0, hi = f.length - 1;
      while (lo < hi) { const mid = (lo + hi + 1) >> 1; if (f[mid].pts <= ms) lo = mid; else hi = mid - 1; }
      const a = f[lo], b = f[lo + 1];
      if (b) return { w: lerpVec(a.w, b.w, (ms - a.pts) / Math.max(1e-3, b.pts - a.pts)), fromTimeline: true };
      // Past the last frame: hold it while more may come, fade to Rest once the utterance ended.
      if (!cur.ended) return { w: a.w, fromTimeline: true };
      return { w: edgeFade(a.w, ms - a.pts), fromTimeline: true };
    }
    /** A viseme frame. Protocol rule: a frame whose pts is not after the last one held
     * replaces everything held from that pts on (the barge-in ramp overwrites look-ahead). */
    addViseme(id, ptsMs, weights) {
      const u = this.utterance(id);
      if (u.cutAt !== null && this.ctx && u.t0 !== null && u.t0 + ptsMs / 1000 > u.cutAt + 0.001) return;
      const f = u.frames;
      while (f.length && f[f.length - 1].pts >= ptsMs) f.pop();
      f.push({ pts: ptsMs, w: toVector(weights) });
    }
  }

  // ---------------------------------------------------------------- player state + loop
  const video = $("idle");
  const stage = $("stage");
  const sctx = stage.getContext("2d");
  const audio = new AudioClock();
  let assets = null;
  let renderer = null;
  let held = null; // a pose held for inspection (debug), instead of the audio timeline
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
    // With requestVideoFrameCallback we know exactly which frame is shown (its mediaTime);
    // without it, currentTime is a close guess.
    const mt = video.requestVideoFrameCallback && stats.videoFrames ? lastMediaTime : video.currentTime;
    const frame = trackFrame(mt);
    stats.trackFrame = frame;
    const { w, fromTimeline } = held ? { w: held, fromTimeline: false } : audio.weightsNow();
    shown = w;
    stats.weights = toObject(w);
    const affine = assets.track.transforms[frame];
    if (!(LIPSYNC === "onnx" && !held && drawPatch(affine))) {
      stats.mouthActive = renderer.draw(sctx, video, w, affine);
    }
    stats.renders++;
    stats.playingSources = audio.playingSources();
    if (stats.playingSources) {
      const level = audio.level();
      stats.audioLevel = Math.round(level * 1e4) / 1e4;
      stats.audioPeak = Math.max(stats.audioPeak, stats.audioLevel);
    } else stats.audioLevel = 0;
    if (fromTimeline && !isRest(w)) stats.visemesApplied++;
    const name = dominant(w);
    if ($("cur-viseme").textContent !== name) $("cur-viseme").textContent = name;
  }

  // ---------------------------------------------------------------- 6. mouth patches (lipsync onnx)
  /** Draw the idle frame and the patch of the frame being heard, if it is here: true when
   * drawn. A frame that starts without its patch counts as late and shows the viseme pose. */
  function drawPatch(affine) {
    const pos = audio.position();
    if (!pos) { stats.patchOnScreen = null; return false; }
    const fps = (stats.hello && stats.hello.patch_fps) || assets.track.fps;
    const i = Math.floor(pos.ms * fps / 1000 + 1e-6);
    const u = pos.u;
    const bmp = u.patches.get(i);
    const first = !u.patchSeen.has(i);
    u.patchSeen.add(i);
    for (const [k, old] of u.patches) { // frames already past are never shown again
      if (k >= i - 1) break;
      old.close();
      u.patches.delete(k);
    }
    if (!bmp) {
      if (first) stats.patchesLate++;
      stats.patchOnScreen = null;
      return false;
    }
    if (stats.patchOnScreen === null || stats.patchOnScreen.index !== i
        || stats.patchOnScreen.utterance_id !== u.id) stats.patchesShown++;
    stats.patchOnScreen = { utterance_id: u.id, index: i };
    sctx.setTransform(1, 0, 0, 1, 0, 0);
    sctx.drawImage(video, 0, 0, sctx.canvas.width, sctx.canvas.height);
    sctx.setTransform(...canvasAffine(affine));
    sctx.drawImage(bmp, assets.roi.x, assets.roi.y); // its alpha is the feathered mouth mask
    sctx.setTransform(1, 0, 0, 1, 0, 0);
    stats.mouthActive = true;
    return true;
  }

  /** A binary patch frame (docs/protocol.md "Mouth patch frames"): decode, keep by index. */
  function onPatch(buf) {
    const v = new DataView(buf);
    const headerLen = v.getUint16(6, true);
    const codec = v.getUint8(5) === 2 ? "image/webp" : "image/png";
    const uid = v.getUint32(8, true);
    const index = v.getUint32(28, true);
    stats.patchFrames++;
    stats.patchBytes += buf.byteLength - headerLen;
    const u = audio.utterance(uid);
    if (u.cutAt !== null) return;
    createImageBitmap(new Blob([new Uint8Array(buf, headerLen)], { type: codec }))
      .then((bmp) => {
        if (u.patches.has(index) || u.cutAt !== null) { bmp.close(); return; }
        u.patches.set(index, bmp);
        if (u.patches.size > 1 && [...u.patches.keys()].some((k, j, a) => j && a[j - 1] > k)) {
          u.patches = new Map([...u.patches].sort((a, b) => a[0] - b[0])); // keep index order
        }
      })
      .catch(() => { stats.patchErrors++; });
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

  // ---------------------------------------------------------------- 5. transport (docs/protocol.md)
  const AUDIO_MAGIC = 0x55414b41; // "AKAU" read as little-endian u32
  const PATCH_MAGIC = 0x504d4b41; // "AKMP"
  let session = null; // {id, wsUrl, avatarId}
  let ws = null;
  let wsWanted = false;
  let nextRequestId = 1;

  function withToken(url, token) {
    const u = new URL(url, location.href);
    if (token && sameServer(u.href)) u.searchParams.set("token", token);
    return u.toString();
  }
  function wsUrlFor(s) {
    const u = new URL(s.wsUrl, location.href);
    if (u.protocol === "http:") u.protocol = "ws:";
    if (u.protocol === "https:") u.protocol = "wss:";
    // the session's own token (POST /session-2d), not the server's: a socket URL ends up
    // in more logs than a header does
    return withToken(u.toString(), s.token);
  }

  // Latency of the last Speak click: click -> first audio frame / first viseme frame of the
  // utterance it created (known from the ack; before the ack, any utterance newer than
  // those seen at the click).
  const lat = { click: null, uid: null, newerThan: 0 };
  let maxUid = 0;
  function isLatencyUtterance(uid) {
    if (lat.click === null) return false;
    return lat.uid !== null ? uid === lat.uid : uid > lat.newerThan;
  }
  function recordLatency(field, uid, el, extraMs = 0) {
    if (!isLatencyUtterance(uid) || stats.latency[field] !== null) return;
    const ms = Math.round(performance.now() - lat.click + extraMs);
    stats.latency[field] = ms;
    $(el).textContent = `${ms} ms`;
  }

  function onAudio(uid, ptsMs, rate, samples) {
    maxUid = Math.max(maxUid, uid);
    stats.audioFrames++;
    stats.audioBytes += samples.byteLength;
    recordLatency("firstAudioMs", uid, "lat-audio");
    const at = audio.schedule(uid, ptsMs, rate, samples);
    if (at !== null) { // when the first sample will be heard
      const ahead = (at - audio.ctx.currentTime + (audio.ctx.outputLatency || 0)) * 1000;
      recordLatency("audibleMs", uid, "lat-audible", ahead);
    }
  }

  function onBinary(buf) {
    const v = new DataView(buf);
    if (buf.byteLength >= 32 && v.getUint32(0, true) === PATCH_MAGIC) { onPatch(buf); return; }
    if (buf.byteLength < 24 || v.getUint32(0, true) !== AUDIO_MAGIC) {
      stats.errors.push("bad audio frame");
      return;
    }
    const headerLen = v.getUint16(6, true);
    const uid = v.getUint32(8, true);
    const rate = v.getUint32(12, true);
    const pts = v.getFloat64(16, true);
    onAudio(uid, pts, rate, new Int16Array(buf, headerLen));
  }

  function base64ToInt16(b64) {
    const bin = atob(b64);
    const bytes = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
    return new Int16Array(bytes.buffer, 0, bytes.length >> 1);
  }

  function onMessage(msg) {
    switch (msg.type) {
      case "hello":
        stats.hello = msg;
        $("mic").hidden = msg.provider !== "openai"; // a speech-to-speech model listens
        note("hello", { provider: msg.provider });
        log(`connected: ${msg.provider} voice, ${msg.sample_rate} Hz, visemes at ${msg.viseme_fps} fps`
          + (msg.lipsync === "onnx" ? `, model patches at ${msg.patch_fps} fps` : ""));
        break;
      case "utterance_start":
        stats.utterancesStarted++;
        maxUid = Math.max(maxUid, msg.utterance_id);
        note("utterance_start", { utterance_id: msg.utterance_id, resumed: msg.resumed });
        audio.utterance(msg.utterance_id);
        $("stop").disabled = false;
        break;
      case "viseme":
        stats.visemeEvents++;
        maxUid = Math.max(maxUid, msg.utterance_id);
        recordLatency("firstVisemeMs", msg.utterance_id, "lat-viseme");
        audio.addViseme(msg.utterance_id, msg.pts_ms, msg.weights);
        break;
      case "audio":
        onAudio(msg.utterance_id, msg.pts_ms, msg.sample_rate, base64ToInt16(msg.data));
        break;
      case "utterance_end":
        stats.utterancesEnded++;
        stats.lastEnd = { utterance_id: msg.utterance_id, interrupted: msg.interrupted,
          reason: msg.reason, pts_ms: msg.pts_ms };
        note("utterance_end", stats.lastEnd);
        audio.end(msg.utterance_id, msg.pts_ms, msg.interrupted, shown);
        if (msg.interrupted) log(`utterance ${msg.utterance_id} interrupted (${msg.reason})`);
        break;
      case "ack":
        if (msg.command === "speak" && msg.id === lat.requestId) {
          lat.uid = msg.utterance_id;
          stats.latencyUtterance = msg.utterance_id;
        }
        break;
      case "error":
        stats.errors.push(`${msg.code}: ${msg.message}`);
        log(`error: ${msg.message}`);
        break;
      case "pong":
        break;
      default:
        note("unknown", { type: msg.type });
    }
  }

  function connect() {
    if (!session) return;
    wsWanted = true;
    const sock = new WebSocket(wsUrlFor(session));
    sock.binaryType = "arraybuffer";
    ws = sock;
    stats.ws = "connecting";
    sock.onopen = () => { stats.ws = "open"; $("speak").disabled = false; };
    sock.onmessage = (ev) => {
      if (typeof ev.data === "string") {
        let msg;
        try { msg = JSON.parse(ev.data); } catch { stats.errors.push("bad JSON from server"); return; }
        onMessage(msg);
      } else {
        onBinary(ev.data);
      }
    };
    sock.onclose = (ev) => {
      if (ws !== sock) return;
      stats.ws = "closed";
      $("speak").disabled = true;
      ws = null;
      if (ev.code === 4000) { log("session closed by the server"); session = null; return; }
      if (wsWanted) { // reconnect: the server resumes us at the current utterance
        log(`connection lost (${ev.code}); reconnecting`);
        setTimeout(() => { if (wsWanted && !ws) connect(); }, 1000);
      }
    };
  }

  async function openSession(avatarId) {
    wsWanted = false;
    if (ws) { ws.close(1000); ws = null; }
    const joined = params.get("session"); // watch a session made elsewhere (a voice pipeline)
    if (joined) {
      session = { id: joined, wsUrl: `session-2d/${encodeURIComponent(joined)}/ws`, avatarId };
      stats.session = joined;
      connect();
      return;
    }
    const body = { avatar_id: avatarId, lipsync: LIPSYNC };
    for (const k of ["provider", "voice_id", "lang"]) if (params.get(k)) body[k] = params.get(k);
    const res = await fetchJson("session-2d", {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
    });
    session = { id: res.session_id, wsUrl: res.ws_url, avatarId, token: res.session_token || TOKEN };
    stats.session = res.session_id;
    connect();
  }

  function send(obj) {
    if (ws && ws.readyState === WebSocket.OPEN) { ws.send(JSON.stringify(obj)); return true; }
    return false;
  }

  // The microphone, for OpenAI Realtime sessions: PCM16 24 kHz mono as `user_audio` messages
  // (the model's server VAD hears the user, answers, and barges in when the user talks over it).
  let mic = null;
  async function toggleMic() {
    if (mic) { mic.stop(); mic = null; $("mic").textContent = "Talk"; return; }
    const media = await navigator.mediaDevices.getUserMedia({
      audio: { channelCount: 1, echoCancellation: true, noiseSuppression: true } });
    const ctx = new AudioContext({ sampleRate: 24000 });
    const src = ctx.createMediaStreamSource(media);
    const proc = ctx.createScriptProcessor(2048, 1, 1); // ~85 ms per message
    proc.onaudioprocess = (ev) => {
      const x = ev.inputBuffer.getChannelData(0);
      const pcm = new Int16Array(x.length);
      for (let i = 0; i < x.length; i++) pcm[i] = Math.max(-1, Math.min(1, x[i])) * 32767;
      const bytes = new Uint8Array(pcm.buffer);
      let bin = "";
      for (let i = 0; i < bytes.length; i += 0x8000) {
        bin += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
      }
      if (send({ type: "user_audio", data: btoa(bin) })) stats.micChunks++;
    };
    src.connect(proc);
    proc.connect(ctx.destination); // (silent: the processor only runs when connected)
    mic = { stop() { proc.disconnect(); src.disconnect(); media.getTracks().forEach((t) => t.stop());
                     ctx.close(); } };
    $("mic").textContent = "Mute";
  }

  async function speak() {
    const text = $("text").value.trim();
    if (!text || !session) return;
    audio.ensure(); // inside the click: browsers only start audio from a user gesture
    const id = nextRequestId++;
    Object.assign(lat, { click: performance.now(), uid: null, newerThan: maxUid, requestId: id });
    stats.latency = { firstAudioMs: null, firstVisemeMs: null, audibleMs: null };
    stats.latencyUtterance = null;
    for (const el of ["lat-audio", "lat-viseme", "lat-audible"]) $(el).textContent = "…";
    const msg = { type: "speak", text, barge_in: $("barge").checked, id };
    if (!send(msg)) {
      const res = await fetchJson(`session-2d/${encodeURIComponent(session.id)}/speak`, {
        method: "POST", headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ text, barge_in: msg.barge_in }),
      }, session.token);
      lat.uid = res.utterance_id;
      stats.latencyUtterance = res.utterance_id;
    }
  }

  async function stop() {
    if (!session) return;
    if (send({ type: "stop", id: nextRequestId++ })) return;
    audio.cutAll(shown); // no socket: cut locally, then tell the server
    await fetchOk(`session-2d/${encodeURIComponent(session.id)}/stop`, { method: "POST" }, session.token)
      .catch((e) => log(e.message));
  }

  async function avatarInfo(id) {
    const assetsBase = params.get("assets");
    if (assetsBase) return { avatar_id: id, base: assetsBase }; // files only, no server session
    return fetchJson(`avatars/${encodeURIComponent(id)}`);
  }

  async function loadAvatar(id) {
    const info = await avatarInfo(id);
    const urls = info.base ? urlsFromBase(info.base) : urlsFromBase(`avatars/${encodeURIComponent(id)}/`, info);
    await showAvatar(id, urls);
    if (!info.base) await openSession(id);
    const opts = $("avatar-list");
    if (![...opts.options].some((o) => o.value === id)) opts.append(new Option(id, id));
  }

  // ---------------------------------------------------------------- UI wiring
  function guard(fn) {
    return async (ev) => {
      if (ev) ev.preventDefault();
      try { await fn(ev); } catch (e) {
        stats.errors.push(e.message);
        log(`error: ${e.message}`);
        setStatus(e.message);
      }
    };
  }
  $("avatar-form").addEventListener("submit", guard(() => loadAvatar($("avatar").value.trim())));
  $("photo").addEventListener("change", guard(async () => {
    const file = $("photo").files[0];
    if (!file) return;
    setStatus(`building an avatar from ${file.name}… (this takes a while)`);
    const form = new FormData();
    form.append("hero_image", file);
    const info = await fetchJson("avatarize-2d", { method: "POST", body: form });
    $("avatar").value = info.avatar_id;
    await loadAvatar(info.avatar_id);
  }));
  $("speak-form").addEventListener("submit", guard(speak));
  $("stop").addEventListener("click", guard(stop));
  $("mic").addEventListener("click", guard(toggleMic));
  $("variant").addEventListener("change", () => {
    if (!assets) return;
    renderer = makeRenderer($("variant").value);
    stats.variant = $("variant").value;
    stats.renderer = renderer.name;
  });
  $("text").addEventListener("keydown", (ev) => {
    if (ev.key === "Enter" && (ev.ctrlKey || ev.metaKey)) $("speak").click();
  });
  if (params.get("variant")) $("variant").value = params.get("variant");

  // ---------------------------------------------------------------- debug export
  window.avatarkitPlayer = Object.freeze({
    classes: CLASSES.slice(),
    /** A deep copy of the counters: reading it never changes the player. */
    get stats() { return JSON.parse(JSON.stringify(stats)); },
    get roi() { return assets ? { ...assets.roi } : null; },
    /** The track affine of the frame on screen. */
    get affine() { return assets ? assets.track.transforms[stats.trackFrame].slice() : null; },
    /** The context time being heard, and the anchor of every known utterance. */
    get clock() {
      const u = {};
      for (const [id, s] of audio.utterances) u[id] = { t0: s.t0, end: s.end, frames: s.frames.length };
      return { now: audio.now(), utterances: u };
    },
    /** Hold a pose (e.g. {AI: 1}) instead of the audio timeline; null releases it. */
    hold(weights) { held = weights ? toVector(weights) : null; },
    /** Pause the idle loop on the frame at `seconds`, for still-frame inspection. */
    async seek(seconds) {
      video.pause();
      const done = new Promise((r) => { video.onseeked = r; });
      video.currentTime = seconds;
      await done;
      lastMediaTime = seconds;
    },
    play() { return video.play(); },
  });

  requestAnimationFrame(render);
  const initial = params.get("avatar");
  if (initial) { $("avatar").value = initial; guard(() => loadAvatar(initial))(); }
})();
