// The deep-layer panel: the test images that excite a channel most, and its activation
// maximisation image.

import { $, el, fmt, pressable } from "./dom.js";
import { state } from "./state.js";
import { drop, latest, STALE } from "./latest.js";
import { api } from "./api.js";
import { pickSample } from "./picker.js";
import { chainOf } from "./features.js";

// The deep-layer panel's layer: a conv's or BatchNorm's block ends at its activation, whose
// channel both the top images and the activation maximisation answer for (a BatchNorm with
// γ < 0 makes the conv's maximum the activation's minimum: one layer for the whole panel).
// Both read the call that ends the block (`relu #2` for a ReLU module shared by the blocks).
function blockLayer() {
  const chain = chainOf(state.featureLayer);
  const end = chain ? (chain.act || chain.bn || chain.conv) : state.featureLayer;
  return state.model.top_layers.includes(end) ? end : state.featureLayer;
}

export async function loadTop(c) {
  const layer = blockLayer();
  // the panel is the layer's and channel's, not the image's: kept for a new image, made again
  // for another layer (it kept the last layer's images and activation maximisation)
  if (state.topShown === `${layer} ${c} ${state.featureLayer}`) return;
  state.topShown = `${layer} ${c} ${state.featureLayer}`;
  drop("top", "actmax");  // what is still on its way is the last layer's or channel's
  const box = $("top-images");
  box.replaceChildren();
  $("actmax").replaceChildren();
  $("actmax-button").disabled = false;
  if (!state.model.test_images) {  // nothing to rank; the activation maximisation still works
    $("top-note").textContent = "No test images to rank: the run was imported without --data (import it again with cnnlab import … --data NAME|DIR to rank them). The activation maximisation below needs none.";
    return;
  }
  if (!state.model.top_layers.includes(layer)) {
    $("top-note").textContent = `Top test images are kept for each block's last layer: ${state.model.top_layers.join(", ")}`;
    return;
  }
  try {
    $("top-note").textContent = "finding the test images that excite it most…";
    const top = await latest("top", () => api(`/api/top?layer=${encodeURIComponent(layer)}&channel=${c}`));
    if (top === STALE) return;
    $("top-note").textContent = `${layer} channel ${c}: the strongest response (max over the map) among the test images`;
    for (const t of top.images) {  // each opens as the input, as in the grid (they looked it)
      const fig = el("figure");
      const img = el("img"); img.src = t.image; img.alt = `test image ${t.index}`;
      fig.append(img, el("figcaption", `${t.class} · ${fmt(t.value, 3)}`));
      pressable(fig, `test image ${t.index}, ${t.class}, response ${fmt(t.value, 3)}`, () => pickSample(t.index));
      box.append(fig);
    }
  } catch (error) {
    $("top-note").textContent = error.message;
    state.topShown = null;  // asked again at the next choice (a server that was down)
  }
}

export async function loadActmax() {
  const button = $("actmax-button");
  button.disabled = true;
  $("actmax").replaceChildren(el("p", "optimising an image…", "hint"));
  try {
    const r = await latest("actmax", () => api(`/api/actmax?layer=${encodeURIComponent(blockLayer())}&channel=${state.channel}`));
    if (r === STALE) return;  // another channel or layer was chosen meanwhile
    const img = el("img"); img.src = r.image; img.alt = "activation maximisation";
    // what the number is: it said "activation 23.52", of no unit, layer or optimisation named
    $("actmax").replaceChildren(img, el("p", `${r.layer} channel ${r.channel}: its centre unit reaches ${fmt(r.activation, 4)} on this image (${r.steps} steps of gradient ascent)`, "hint"));
  } catch (error) { $("actmax").replaceChildren(el("p", error.message, "bad")); }
  button.disabled = false;
}
