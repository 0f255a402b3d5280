"""Drawing the map's points in this machine's headless Chromium (SwiftShader: WebGL is software here), the two ways
the issue weighed, on the same points (10k, 100k) in a 1000x540 canvas, each frame a pan (new offsets): a 2-D canvas
whose points are written into an ImageData (as ui/explore/live/map_draw.js drawPoints does: 5-px discs, 3 px past 50k
points), against WebGL2 drawing gl.POINTS of the same size from one vertex buffer, each frame finished (gl.finish and
one pixel read back, so the software rasteriser's work is counted). Prints the median and p95 ms per frame of each;
the map draws with the one that measures faster here (ImageData: README). `python -m bench.bench_map_draw`."""
from __future__ import annotations

import json

from harness.browser import launch_chromium

FRAMES = 60
_DRAW_JS = """([n, frames]) => {
  const W = 1000, H = 540, xy = new Float32Array(2 * n);
  for (let i = 0; i < 2 * n; i++) xy[i] = Math.random();
  const colours = new Uint32Array(12).map((_, c) => (0xff000000 | (c * 2000003)) >>> 0);
  const level = new Uint8Array(n).map((_, i) => i % 12);
  const median = (v) => v.slice().sort((a, b) => a - b)[Math.floor(v.length / 2)];
  const p95 = (v) => v.slice().sort((a, b) => a - b)[Math.floor(v.length * 0.95)];
  // ImageData, as map_draw.js
  const canvas = Object.assign(document.createElement('canvas'), {width: W, height: H}); document.body.append(canvas);
  const ctx = canvas.getContext('2d'), image = new ImageData(W, H), buf = new Uint32Array(image.data.buffer);
  const r = n > 50000 ? 1.5 : 2.5, steps = []; // the disc of map_draw.js (3 px past 50k points), as buffer steps
  for (let dy = -3; dy <= 3; dy++) {
    for (let dx = -3; dx <= 3; dx++) if (Math.hypot(dx, dy) <= r) steps.push(dy * W + dx);
  }
  const times2d = [];
  for (let f = 0; f < frames; f++) {
    const t0 = performance.now(), ox = 10 + f, k = 900;
    buf.fill(0);
    for (let i = 0; i < n; i++) {
      const px = Math.round(ox + k * xy[2 * i]), py = Math.round(10 + 500 * xy[2 * i + 1]), c = colours[level[i]];
      if (px < 4 || px >= W - 4 || py < 4 || py >= H - 4) continue;
      const at = py * W + px;
      for (let j = 0; j < steps.length; j++) buf[at + steps[j]] = c;
    }
    ctx.putImageData(image, 0, 0);
    ctx.getImageData(0, 0, 1, 1);
    times2d.push(performance.now() - t0);
  }
  // WebGL2 points
  const glCanvas = Object.assign(document.createElement('canvas'), {width: W, height: H});
  document.body.append(glCanvas);
  const gl = glCanvas.getContext('webgl2');
  if (!gl) return {imagedata: {median: median(times2d), p95: p95(times2d)}, webgl2: null};
  const shader = (type, src) => {
    const s = gl.createShader(type); gl.shaderSource(s, src); gl.compileShader(s); return s;
  };
  const prog = gl.createProgram();
  gl.attachShader(prog, shader(gl.VERTEX_SHADER, `#version 300 es
    in vec2 p; in float c; uniform vec2 off; out float vc;
    void main() {
      gl_Position = vec4(p * 1.8 - 0.9 + off, 0, 1); gl_PointSize = ${n > 50000 ? '3.0' : '5.0'}; vc = c;
    }`));
  gl.attachShader(prog, shader(gl.FRAGMENT_SHADER, `#version 300 es
    precision mediump float; in float vc; out vec4 o;
    void main() { if (length(gl_PointCoord - 0.5) > 0.5) discard; o = vec4(vc / 12.0, 0.5, 1.0 - vc / 12.0, 1); }`));
  gl.linkProgram(prog); gl.useProgram(prog);
  const bind = (name, data, size) => { const b = gl.createBuffer(); gl.bindBuffer(gl.ARRAY_BUFFER, b);
    gl.bufferData(gl.ARRAY_BUFFER, data, gl.STATIC_DRAW); const at = gl.getAttribLocation(prog, name);
    gl.enableVertexAttribArray(at); gl.vertexAttribPointer(at, size, gl.FLOAT, false, 0, 0); };
  bind('p', xy, 2); bind('c', Float32Array.from(level), 1);
  const off = gl.getUniformLocation(prog, 'off'), pixel = new Uint8Array(4), timesGl = [];
  for (let f = 0; f < frames; f++) {
    const t0 = performance.now();
    gl.clearColor(0, 0, 0, 0); gl.clear(gl.COLOR_BUFFER_BIT);
    gl.uniform2f(off, f / 500, 0); gl.drawArrays(gl.POINTS, 0, n);
    gl.finish(); gl.readPixels(0, 0, 1, 1, gl.RGBA, gl.UNSIGNED_BYTE, pixel);
    timesGl.push(performance.now() - t0);
  }
  return {imagedata: {median: median(times2d), p95: p95(times2d)}, webgl2: {median: median(timesGl), p95: p95(timesGl)},
          renderer: gl.getParameter(gl.RENDERER)};
}"""


def measure(sizes: tuple[int, ...] = (10_000, 100_000)) -> dict:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        page = browser.new_page()
        page.set_content("<html><body></body></html>")
        result = {f"{n // 1000}k": page.evaluate(_DRAW_JS, [n, FRAMES]) for n in sizes}
        browser.close()
    return result


if __name__ == "__main__":
    print(json.dumps(measure(), indent=2))
