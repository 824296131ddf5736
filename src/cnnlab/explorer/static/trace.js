// The dot product behind one activation (§2.1): a unit of a conv's map traced, shown, stepped.

import { $, el, fmt, say } from "./dom.js";
import { state } from "./state.js";
import { drop, latest, STALE } from "./latest.js";
import { imageApi } from "./api.js";
import { diverging } from "./colours.js";
import { drawView } from "./view.js";
import { chainOf, notConv, paintMap } from "./features.js";
import { remember } from "./address.js";

// The unit carried to a new image, traced on its maps: unless the layer now shown is another
// conv's (its maps' arrival then dropped the unit) or the unit is traced already.
export function carry() {
  const unit = state.unit;
  if (unit && !state.trace && state.maps) traceAt(state.channel, unit[1], unit[2]);
}

export async function traceAt(f, i, j) {
  const chain = chainOf(state.featureLayer);
  // the maps shown are the conv's or its norm's or activation's: all of the conv's H×W
  const H = state.maps.h, W = state.maps.w;
  i = Math.max(0, Math.min(H - 1, i)); j = Math.max(0, Math.min(W - 1, j));
  state.unit = [f, i, j];  // where the next arrow key steps from, before this answer comes
  state.unitConv = chain.conv;
  const image = state.image;
  try {
    const t = await latest("trace", () => imageApi(() => `/api/trace?image=${state.image}&layer=${encodeURIComponent(chain.conv)}&channel=${f}&row=${i}&col=${j}`));
    if (t === STALE) return;  // a later unit was asked for
    t.image = image;
    state.trace = t;
    remember();
    showTrace(t);
    paintMap($("channel-view"), state.channel, [i, j]);
    drawView();
    say(state.note);  // an earlier refusal no longer applies; the image's note still does
  } catch (error) { say(error.message); }
}

export function clearTrace() {
  state.trace = null;
  [state.unit, state.unitConv] = [null, null];
  remember();
  drop("trace");  // a dot product still on its way belongs to the map left
  for (const id of ["dot-patch", "dot-filter", "dot-products", "dot-chain", "dot-shares", "dot-channel"]) $(id).replaceChildren();
  delete $("dot-channel").dataset.key;  // its options are gone: the next trace lists them
  for (const id of ["dot-sum", "dot-bias", "dot-output", "dot-network", "dot-slice"]) $(id).textContent = "";
  $("dot-title").textContent = "Click a unit of a convolution's map (or of its BatchNorm's or activation's) to see its dot product.";
  drawView();
}

function fillGrid(table, rows, limit) {
  table.replaceChildren();
  for (const row of rows) {
    const tr = el("tr");
    for (const v of row) { const td = el("td", fmt(v, 4)); td.style.background = diverging(v, limit); tr.append(td); }
    table.append(tr);
  }
}

export function showTrace(t) {
  const [f, i, j] = t.index;
  const channels = t.patch.length;
  $("dot-title").textContent = `${t.layer}: filter ${f} at output row ${i}, column ${j} of ${t.out_shape[1]}×${t.out_shape[2]} (H×W); window top-left at input (row ${t.origin[0]}, column ${t.origin[1]}), kernel ${t.kernel.join("×")}, stride ${t.stride.join("×")}, padding ${t.padding.join(",")}${t.padding_mode && t.padding_mode !== "zeros" ? ` (${t.padding_mode}: the padded cells hold image pixels, not zeros)` : ""}`;
  const select = $("dot-channel");
  // rebuilt for another conv or another group of a grouped conv: same count, other channels
  // (filter 9 of a 4-group conv read input channels 4 and 5; the list still said 0 and 1)
  // numbered as channels of the tensor the conv's input was split from (a torch.chunk's
  // second half reads its channels 4-7, which the page called 0-3)
  const key = `${t.layer} ${t.input_channels.join("-")}`;
  $("dot-slice").textContent = sliceNote(t);
  if (select.dataset.key !== key) {
    select.dataset.key = key;
    select.replaceChildren();
    for (let c = 0; c < channels; c++) { const o = el("option", `${t.input_channels[c]}`); o.value = c; select.append(o); }
    let best = 0;  // start on the channel that contributes most
    t.channel_sums.forEach((s, c) => { if (Math.abs(s) > Math.abs(t.channel_sums[best])) best = c; });
    select.value = best;
  }
  const c = Number(select.value);
  const limit = (a) => Math.max(1e-12, ...a.flat().map(Math.abs));
  fillGrid($("dot-patch"), t.patch[c], limit(t.patch[c]));
  fillGrid($("dot-filter"), t.filter[c], limit(t.filter[c]));
  fillGrid($("dot-products"), t.products[c], limit(t.products[c]));
  $("dot-sum").textContent = fmt(t.sum, 7);
  $("dot-bias").textContent = fmt(t.bias, 7);
  $("dot-output").textContent = fmt(t.output, 7);
  $("dot-network").textContent = fmt(t.network, 7);
  const chain = $("dot-chain");
  chain.replaceChildren();
  for (const s of t.chain) {
    let text = `conv output (${s.layer}), before any norm or activation: ${fmt(s.value, 6)}`;
    if (s.stage === "batchnorm") text = `batchnorm (${s.layer}): ${fmt(s.value, 6)}`;
    if (s.stage === "batchnorm" && s.mean !== undefined) text = `batchnorm (${s.layer}): (x − μ) / √(σ² + ε) · γ + β = (${fmt(t.chain[0].value, 6)} − (${fmt(s.mean, 4)})) / √(${fmt(s.var, 4)} + ${s.eps}) · ${fmt(s.gamma, 4)} + (${fmt(s.beta, 4)}) = ${fmt(s.value, 6)}`;
    if (s.stage === "groupnorm" || s.stage === "instancenorm") text = normText(s, t.chain[0].value);
    if (s.stage === "activation") text = `${s.kind} (${s.layer}), the activation: ${fmt(s.value, 6)}`;
    const li = el("li", text);
    if (s.layer === state.featureLayer) { li.append(el("strong", "  ← the map shown")); li.className = "shown"; }
    chain.append(li);
  }
  const shares = $("dot-shares");
  shares.replaceChildren();
  const order = t.channel_sums.map((s, k) => k).sort((a, b) => Math.abs(t.channel_sums[b]) - Math.abs(t.channel_sums[a]));
  for (const k of order.slice(0, 8)) shares.append(el("li", `input channel ${t.input_channels[k]}: ${fmt(t.channel_sums[k], 5)}`));
  if (order.length > 8) shares.append(el("li", `… and ${order.length - 8} more channels`));
}

// A GroupNorm's or InstanceNorm's step: μ and σ² are this image's, over the unit's group of
// channels (or its channel) and every position, or the running ones an InstanceNorm tracks.
function normText(s, x) {
  if (s.mean === undefined) return `${s.kind} (${s.layer}): ${fmt(s.value, 6)}`;
  const [lo, hi] = s.channels;
  const over = hi - lo === 1 ? `channel ${lo}` : `channels ${lo}–${hi - 1}`;
  const where = s.statistics === "running" ? `μ, σ²: its running statistics of ${over}` : `μ, σ² of this image over ${over}, all positions (${s.count} numbers)`;
  return `${s.kind} (${s.layer}): (x − μ) / √(σ² + ε) · γ + β = (${fmt(x, 6)} − (${fmt(s.mean, 4)})) / √(${fmt(s.var, 4)} + ${s.eps}) · ${fmt(s.gamma, 4)} + (${fmt(s.beta, 4)}) = ${fmt(s.value, 6)}; ${where}`;
}

function sliceNote(t) {
  const s = t.input_slice;
  if (!s) return "";
  const of = s.source === "input" ? "the input image" : s.source ? `${s.source}'s output` : "a tensor the model's forward makes (no layer's output)";
  const shown = t.input_channels;
  const range = s.step === 1 ? `${shown[0]}–${shown[shown.length - 1]}` : `${shown.join(", ")}`;
  const own = `${t.group_channels[0]}–${t.group_channels[1] - 1}`;
  return `This conv reads a slice of ${of} (${s.channels} channels; a torch.chunk, split or slice in the forward): the input channels shown are that tensor's channels ${range}, numbered so here (the conv itself numbers them ${own}).`;
}

export function step(di, dj) {
  if (!state.maps) return;  // an image whose maps were refused
  // from the unit last asked for (five quick presses: five steps), its dot product maybe on
  // its way or carried to a new image; its conv is the maps' (their arrival drops another's)
  const unit = state.unit;
  if (!unit) {  // no unit clicked yet: the buttons start at the top-left unit (keyboard)
    if (chainOf(state.featureLayer)) traceAt(state.channel, 0, 0);
    else notConv();
    return;
  }
  traceAt(unit[0], unit[1] + di, unit[2] + dj);
}
