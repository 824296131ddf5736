// cnnlab explorer: the page. No build step, no library, nothing from the network: native ES
// modules, one job each, served from the same static directory; this one wires the controls
// to the panels and loads the run. Every text that comes from the run (class names, layer
// names, messages) is set with textContent, never parsed as HTML.

import { $, say } from "./dom.js";
import { state } from "./state.js";
import { api } from "./api.js";
import { showArchitecture } from "./architecture.js";
import { loadSamples, setupDrawing } from "./picker.js";
import { refreshGradcam, showOverlay } from "./view.js";
import { chooseFeatureLayer, setupChannelClick, whenShown } from "./features.js";
import { follow, restore } from "./address.js";
import { showTrace, step } from "./trace.js";
import { loadActmax } from "./deep.js";
import { setupGeometry, updateGeometry } from "./geometry.js";

async function start() {
  setupDrawing();
  setupChannelClick();
  setupGeometry();
  document.querySelectorAll("input[name=overlay]").forEach((r) => r.addEventListener("change", () => { state.overlay = r.value; showOverlay(); }));
  $("cam-layer").addEventListener("change", refreshGradcam);
  $("feature-layer").addEventListener("change", () => chooseFeatureLayer($("feature-layer").value));
  $("more-samples").addEventListener("click", () => loadSamples().catch((error) => say(error.message)));
  $("dot-channel").addEventListener("change", () => state.trace && showTrace(state.trace));
  $("actmax-button").addEventListener("click", loadActmax);
  // a step taken while a layer's maps load is taken on them: it stepped the old conv's unit
  // on the new conv (past its rows, a refusal), or was cancelled by their arrival
  for (const [id, di, dj] of [["step-left", 0, -1], ["step-right", 0, 1], ["step-up", -1, 0], ["step-down", 1, 0]]) $(id).addEventListener("click", () => whenShown(() => step(di, dj)));
  document.addEventListener("keydown", (e) => {
    // a unit asked for or carried to a new image, its dot product not shown yet, is stepped
    // from (the key was dropped while a new image's maps loaded)
    if (!state.unit || ["INPUT", "SELECT", "TEXTAREA"].includes(document.activeElement.tagName)) return;
    const move = { ArrowLeft: [0, -1], ArrowRight: [0, 1], ArrowUp: [-1, 0], ArrowDown: [1, 0] }[e.key];
    if (move) { e.preventDefault(); whenShown(() => state.unit && step(...move)); }
  });
  try {
    state.model = await api("/api/model");
    $("upload").accept = state.model.upload.accept;  // what the server reads, from its one list
    $("upload-formats").textContent = state.model.upload.formats.join("/");
    showArchitecture(state.model);
    await Promise.all([loadSamples(), updateGeometry()]);
    restore(new URLSearchParams(location.hash.slice(1)));
    window.addEventListener("hashchange", follow);
    document.body.dataset.ready = "1";
  } catch (error) { say(`Could not load the run: ${error.message}`); }
}
// A module's names are not the window's, as a classic script's were: the page's state and the
// deep-layer panel's action stay reachable from the browser's console (and its tests) by name.
Object.assign(window, { state, loadActmax });
start();
