// The feature maps: the layer and channel chosen, the grid of a layer's channels, the
// channel view, and actions taken while a new layer's or image's maps are on their way.

import { $, el, fit, fmt, pressable, say } from "./dom.js";
import { state } from "./state.js";
import { latest, STALE } from "./latest.js";
import { imageApi } from "./api.js";
import { jet } from "./colours.js";
import { choose } from "./picker.js";
import { remember } from "./address.js";
import { carry, clearTrace, showTrace, traceAt } from "./trace.js";
import { loadTop } from "./deep.js";

function bytesOf(b64) { const s = atob(b64); const a = new Uint8Array(s.length); for (let i = 0; i < s.length; i++) a[i] = s.charCodeAt(i); return a; }

export function chainOf(layer) {
  return state.model.convs.find((c) => c.conv === layer || c.bn === layer || c.act === layer) || null;
}

// The feature layer as the choice, in the menu and the layer list alike.
export function showLayer(name) {
  $("feature-layer").value = state.featureLayer = name;
  for (const li of $("layers").children) li.classList.toggle("selected", li.dataset.layer === name);
}

export function chooseFeatureLayer(name) {
  showLayer(name);
  remember();
  loadFeatures();
}

export async function loadFeatures() {
  if (!state.image) return;
  const layer = state.featureLayer;
  if (!layer) {  // an MLP: no layer has a (C, H, W) map, and the prediction stands without one
    $("feature-info").textContent = "no feature maps: the model has no layer with a (C, H, W) map";
    return;
  }
  let maps;
  const image = state.image;
  try {
    maps = await latest("features", () => imageApi(() => `/api/features?image=${state.image}&layer=${encodeURIComponent(layer)}`));
  } catch (error) {  // a layer switch awaits nobody: say it here
    state.waiting = [];
    say(error.message);
    refused();
    return false;
  }
  if (maps === STALE) return;  // another layer or image was chosen meanwhile
  maps.bytes = bytesOf(maps.data);
  [maps.layer, maps.image] = [layer, image];
  state.maps = maps;
  const chain = chainOf(layer);
  // a dot product belongs to one conv: on another layer's maps its unit may not exist (a
  // 7×7 map has no row 26), and its window box and numbers would describe a map not shown.
  // So does a unit asked for, its answer on its way (a first click, no dot product shown):
  // conv 0's answer came after conv 7's maps and was shown under them
  const conv = chain ? chain.conv : null;
  if ([state.trace && state.trace.layer, state.unitConv].some((c) => c && c !== conv)) clearTrace();
  else if (state.trace) showTrace(state.trace);  // the same conv: mark the map now shown
  $("feature-info").textContent = `${maps.channels} channels of ${maps.h}×${maps.w} (H×W)` + (maps.n < maps.channels ? ` (first ${maps.n} shown)` : "") + (chain ? ` · part of conv ${chain.conv}: click a unit to see its dot product` : "");
  const grid = $("feature-grid");
  grid.replaceChildren();
  for (let c = 0; c < maps.n; c++) {
    const canvas = el("canvas");
    canvas.width = maps.w; canvas.height = maps.h;
    fit(canvas, maps.h, maps.w, 48, true);
    paintMap(canvas, c);
    canvas.title = `channel ${c}: ${fmt(maps.min[c], 3)} … ${fmt(maps.max[c], 3)}`;
    canvas.dataset.channel = c;
    pressable(canvas, `channel ${c}`, () => whenShown(() => c < state.maps.n && chooseChannel(c)));
    grid.append(canvas);
  }
  fit($("channel-view"), maps.h, maps.w, 280);
  const keep = state.channel !== null && state.channel < maps.n ? state.channel : 0;
  chooseChannel(keep);
  const waiting = state.waiting;  // what was done while these maps were on their way
  state.waiting = [];
  for (const action of waiting) action();
  return true;
}

// An action on the maps (a click on a unit or a channel, a step, a unit carried to a new
// image), taken while the maps of the layer or image just chosen are on their way, is done
// when they arrive, as if it had been taken just after: done at once, it was done against the
// old maps (their unit or channel, on the new conv or image), and the maps' arrival then
// cancelled it or showed it on maps it does not belong to, depending on which answer came first.
export function whenShown(action) {
  const m = state.maps;
  if (m && (m.layer !== state.featureLayer || m.image !== state.image)) state.waiting.push(action);
  else action();
}

// Maps refused: those on screen are the choice again, so an action on them is taken at once
// (each waited, silently, for maps that never came, and all ran at the next layer's). Another
// image's maps are taken away: the choice is this image, which has none; a unit carried to it
// is traced on its next maps (another layer chosen, or the same again).
function refused() {
  const m = state.maps;
  if (m && m.image === state.image) {
    showLayer(m.layer);
    remember();
  } else {  // a first image's too (an address's unit is carried to it)
    state.maps = null;
    choose(null);  // chosen again, its maps are asked for again
    $("feature-grid").replaceChildren();
    const view = $("channel-view");
    view.getContext("2d").clearRect(0, 0, view.width, view.height);
    $("channel-title").textContent = "";
    $("feature-info").textContent = "no feature maps for this image";
    if (state.unit) state.waiting.push(carry);
  }
}

export function paintMap(canvas, c, box) {
  const { h, w, bytes } = state.maps;
  const ctx = canvas.getContext("2d");
  const image = ctx.createImageData(w, h);
  for (let k = 0; k < h * w; k++) {
    const [r, g, b] = jet(bytes[c * h * w + k] / 255);
    image.data[4 * k] = r; image.data[4 * k + 1] = g; image.data[4 * k + 2] = b; image.data[4 * k + 3] = 255;
  }
  if (canvas.width === w) { ctx.putImageData(image, 0, 0); return; }
  const off = document.createElement("canvas");
  off.width = w; off.height = h;
  off.getContext("2d").putImageData(image, 0, 0);
  ctx.imageSmoothingEnabled = false;
  ctx.drawImage(off, 0, 0, canvas.width, canvas.height);
  if (box) {
    ctx.strokeStyle = "#fff"; ctx.lineWidth = 2;
    ctx.strokeRect(box[1] * canvas.width / w, box[0] * canvas.height / h, canvas.width / w, canvas.height / h);
  }
}

function chooseChannel(c) {
  state.channel = c;
  for (const canvas of $("feature-grid").children) canvas.classList.toggle("chosen", Number(canvas.dataset.channel) === c);
  $("channel-title").textContent = `${state.featureLayer}${state.kinds[state.featureLayer] ? " " + state.kinds[state.featureLayer] : ""}, channel ${c} (${fmt(state.maps.min[c], 4)} … ${fmt(state.maps.max[c], 4)})`;
  const at = state.trace && state.trace.index[0] === c ? state.trace.index.slice(1) : null;
  paintMap($("channel-view"), c, at);
  loadTop(c);  // asks the server only for another layer or channel than the one shown
  // the unit last asked for, its answer maybe still on its way (the shown one's row and
  // column cancelled a click in flight; with none shown yet, the click's answer came for the
  // last channel under this one)
  const unit = state.unit;
  if (unit && chainOf(state.featureLayer) && unit[0] !== c) traceAt(c, unit[1], unit[2]);
}

export function notConv() {  // a conv of the model's own (F.conv2d on its parameter) is no nn.Conv2d
  say(`${state.featureLayer} is not an nn.Conv2d (nor its BatchNorm or activation): choose one of the layers marked blue in the list to see a dot product`);
}

export function setupChannelClick() {
  $("channel-view").addEventListener("click", (e) => {
    if (!state.maps) return;
    const chain = chainOf(state.featureLayer);
    if (!chain) { notConv(); return; }
    const r = e.target.getBoundingClientRect();
    const at = [(e.clientY - r.top) / r.height, (e.clientX - r.left) / r.width];
    // a layer just chosen, its maps still on their way: the click is for them (it was sent
    // for the old maps' unit, and their arrival cancelled it as a trace of another conv)
    whenShown(() => chainOf(state.featureLayer) && traceAt(state.channel, Math.floor(at[0] * state.maps.h), Math.floor(at[1] * state.maps.w)));
  });
}
