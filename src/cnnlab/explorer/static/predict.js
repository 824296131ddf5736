// A chosen image's prediction: asked for, then shown in every panel that depends on it.

import { $, say } from "./dom.js";
import { state } from "./state.js";
import { drop, latest, STALE } from "./latest.js";
import { api } from "./api.js";
import { choose } from "./picker.js";
import { showPrediction } from "./softmax.js";
import { drawView, refreshGradcam, showOverlay } from "./view.js";
import { loadFeatures } from "./features.js";
import { remember } from "./address.js";
import { carry } from "./trace.js";

export async function predict(form, drawing = false) {
  say("computing…");
  choose(form.get("sample"));
  drop("note");  // the note of an image still loading its maps is not said over this one's
  try {
    const sent = new FormData();  // the image alone, to send again (imageApi)
    for (const [key, value] of form) sent.append(key, value);
    const layer = $("cam-layer").value;
    form.append("layer", layer);
    const p = await latest("predict", () => api("/api/predict", { method: "POST", body: form }));
    if (p === STALE) return;  // another image was chosen meanwhile
    state.sent = sent;
    state.prediction = p;
    state.image = p.image;
    // said again after a click, which clears a refusal. Not for a drawing: the page made it
    // (an opaque RGBA PNG of the canvas) and says its size by the canvas; the server's words
    // for a file ("224×224 resized", "RGBA->L; transparent pixels are black") were noise
    const notes = (p.note || "").split("; ");  // of which "no Grad-CAM: …" is the model's
    state.note = (drawing ? notes.filter((n) => n.startsWith("no Grad-CAM")) : notes).join("; ");
    state.heat = { gradcam: p.gradcam };
    drop("gradcam", "saliency");  // a map still on its way is the last image's
    if (layer !== $("cam-layer").value) refreshGradcam();  // changed while predicting
    // the saliency overlay chosen stays shown: this image's map is fetched (it showed none)
    if (state.overlay === "saliency") showOverlay();
    // the unit clicked stays clicked: its dot product on this image (it showed the last
    // image's numbers, and the arrow keys did nothing). The unit last asked for, its answer
    // maybe still on its way: that answer is the last image's, and it is cancelled (it came
    // after this one and showed the last image's numbers under this image)
    state.trace = null;
    drop("trace");
    // traced on the channel shown (an address's channel past the layer's is not: channel 0
    // then) once this image's maps are shown, first of what waits for them: a step taken
    // meanwhile steps from it (it ran before the unit was carried and started at the top left)
    if (state.unit) state.waiting.unshift(carry);
    state.sample = form.get("sample");  // null for an upload or a drawing
    remember();
    const img = new Image();
    img.onload = () => { state.inputImage = img; drawView(); };
    img.src = p.input;
    showPrediction(p);
    // its maps, then its note: unless they were refused (the refusal stays said) or another
    // image was chosen meanwhile (its "computing…" stays)
    const shown = await latest("note", loadFeatures);
    if (shown === false || shown === STALE) return;
    say(state.note);  // an image of another size: resized to the run's input, as predict
  } catch (error) {  // an image left's refusal, come after the image chosen, is STALE: not said
    choose(null);  // chosen again, it is asked for again
    say(`Could not use this image: ${error.message}`);
  }
}
