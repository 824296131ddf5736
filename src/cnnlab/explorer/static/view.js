// The input as the network sees it, with the Grad-CAM or saliency overlay and the clicked
// unit's receptive field.

import { $, say } from "./dom.js";
import { state } from "./state.js";
import { latest, STALE } from "./latest.js";
import { imageApi } from "./api.js";
import { jet } from "./colours.js";

export function drawView() {
  const canvas = $("view");
  const ctx = canvas.getContext("2d");
  ctx.imageSmoothingEnabled = false;
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  if (!state.inputImage) return;
  ctx.drawImage(state.inputImage, 0, 0, canvas.width, canvas.height);
  const heat = state.heat[state.overlay];
  if (heat) {
    const h = heat.length, w = heat[0].length;
    const off = document.createElement("canvas");
    off.width = w; off.height = h;
    const octx = off.getContext("2d");
    const image = octx.createImageData(w, h);
    for (let i = 0; i < h; i++) for (let j = 0; j < w; j++) {
      const [r, g, b] = jet(heat[i][j]);
      const k = 4 * (i * w + j);
      image.data[k] = r; image.data[k + 1] = g; image.data[k + 2] = b; image.data[k + 3] = 140;
    }
    octx.putImageData(image, 0, 0);
    ctx.drawImage(off, 0, 0, canvas.width, canvas.height);
  }
  if (state.trace) {  // the clicked unit's receptive field on the input (§3.2)
    // clipped to the image and drawn inside it: a field past every edge (behind a global
    // pool's gate) is the whole image, which an unclipped box outlined off the canvas
    const [, H, W] = state.model.input_shape;
    const f = state.trace.field, sy = canvas.height / H, sx = canvas.width / W;
    const top = Math.max(0, f.top), left = Math.max(0, f.left);
    const bottom = Math.min(H, f.top + f.height), right = Math.min(W, f.left + f.width);
    ctx.strokeStyle = "#ff3b30"; ctx.lineWidth = 2;
    ctx.strokeRect(left * sx + 1, top * sy + 1, (right - left) * sx - 2, (bottom - top) * sy - 2);
  }
  canvas.dataset.overlay = state.overlay;
}

export async function showOverlay() {  // saliency is fetched the first time it is asked for
  if (state.overlay === "saliency" && state.image && !state.heat.saliency) {
    try {
      const r = await latest("saliency", () => imageApi(() => `/api/heatmap?image=${state.image}&method=saliency`));
      if (r !== STALE) state.heat.saliency = r.map;  // not the last image's
    } catch (error) { say(error.message); }
  }
  drawView();
}

export async function refreshGradcam() {
  if (!state.image) return;
  try {
    const r = await latest("gradcam", () => imageApi(() => `/api/heatmap?image=${state.image}&method=gradcam&layer=${encodeURIComponent($("cam-layer").value)}`));
    if (r === STALE) return;  // a later layer's map, or another image's
    state.heat.gradcam = r.map;
    drawView();
  } catch (error) { say(error.message); }
}
