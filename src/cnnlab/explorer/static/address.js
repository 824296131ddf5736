// The address (#sample=3&layer=0&unit=1,4,5): what the page shows, kept in it and read back.

import { state } from "./state.js";
import { predict } from "./predict.js";
import { chainOf, chooseFeatureLayer, showLayer } from "./features.js";
import { carry, clearTrace } from "./trace.js";

// The test image, layer and unit shown, in the address (#sample=3&layer=0&unit=1,4,5): the
// back button, a reload or a copied link comes back to them (the page came back empty). A
// replaced entry, not a new one: the back button still leaves the page.
export function remember() {
  const q = new URLSearchParams();
  if (state.sample !== null && state.sample !== undefined) q.set("sample", state.sample);
  if (state.featureLayer) q.set("layer", state.featureLayer);
  if (state.unit) q.set("unit", state.unit.join(","));
  history.replaceState(null, "", String(q) ? `#${q}` : location.pathname);
}

// The address's layer and unit taken as the choice, and its test image asked for unless it is
// the one shown (`shown`): true when it is asked for (predict() then shows its maps and unit).
export function restore(q, shown = null) {
  const layer = q.get("layer"), sample = Number(q.get("sample") ?? NaN);
  if (layer !== null && layer in state.model.maps) showLayer(layer);
  const unit = (q.get("unit") || "").split(",").map(Number);
  const chain = chainOf(state.featureLayer);  // the unit is the conv's of the layer named
  if (unit.length === 3 && unit.every(Number.isInteger) && chain) [state.channel, state.unit, state.unitConv] = [unit[0], unit, chain.conv];
  if (!Number.isInteger(sample) || sample < 0 || sample >= state.model.test_images || String(sample) === shown) return false;
  const form = new FormData();
  form.append("sample", sample);
  predict(form);
  return true;
}

// The address changed under the open page (a link pasted into the address bar, the back or
// forward button between such addresses; the page's own changes replace its entry and fire no
// hashchange): the page shows what it names. It kept the image, layer and unit shown, and the
// address named others.
export function follow() {
  const q = new URLSearchParams(location.hash.slice(1));  // read first: clearTrace rewrites it
  clearTrace();  // the unit shown is the last address's
  if (restore(q, state.sample ?? null)) return;  // another test image, shown by predict()
  if (state.unit && state.image) state.waiting.push(carry);  // traced once the layer's maps are shown
  chooseFeatureLayer(state.featureLayer);  // the image shown, on the layer named
}
