// cnnlab explorer: the page. No build step, no library, nothing from the network.
// Every text that comes from the run (class names, layer names, messages) is set with
// textContent, never parsed as HTML.
"use strict";

const $ = (id) => document.getElementById(id);
const state = { model: null, image: null, prediction: null, overlay: "none", heat: {},
  featureLayer: null, maps: null, channel: null, trace: null, traceChannel: null,
  unit: null, unitConv: null, waiting: [],
  sampleOffset: 0, choice: null, geometry: null, window: 0 };
// state.choice: the test image asked for last, its answer maybe on its way (null: an upload, a
// drawing, or a refusal, so that chosen again it is asked again); its figure is highlighted.
// state.sample: the test image whose prediction is shown (null: an upload or a drawing), in
// the address.

// Requests answered out of order (two test images clicked in a row, a layer chosen while the
// last one loads): of each kind, only the answer to the request sent last is used.
// latest(kind, request) awaits request() and gives its answer, or STALE once a later request
// of that kind was sent or drop(kind) was called; a refusal is thrown only while it is the
// latest (a refusal for a choice left is not said over the one chosen).
const STALE = Symbol("stale");
const asked = { samples: 0, predict: 0, note: 0, features: 0, trace: 0, gradcam: 0, saliency: 0, top: 0, actmax: 0, geometry: 0 };  // sent so far
const drop = (...kinds) => { for (const kind of kinds) asked[kind]++; };  // answers on their way: stale
async function latest(kind, request) {
  const mine = ++asked[kind];
  try {
    const answer = await request();
    return asked[kind] === mine ? answer : STALE;
  } catch (error) {
    if (asked[kind] === mine) throw error;
    return STALE;
  }
}

function el(tag, text, cls) {
  const e = document.createElement(tag);
  if (text !== undefined && text !== null) e.textContent = String(text);
  if (cls) e.className = cls;
  return e;
}
function fmt(x, digits = 6) {
  if (!Number.isFinite(x)) return String(x);
  const a = Math.abs(x);
  if (a !== 0 && (a < 1e-4 || a >= 1e6)) return x.toExponential(digits - 1);
  return x.toPrecision(digits).replace(/(\.\d*?)0+$/, "$1").replace(/\.$/, "");
}
function say(text) { $("message").textContent = text || ""; }
// A picture that acts as a button (a test image, a channel's map): reached with Tab and
// chosen with Enter or Space, as a button is; a mouse alone could choose them.
function pressable(node, label, action) {
  node.tabIndex = 0;
  node.setAttribute("role", "button");
  node.setAttribute("aria-label", label);
  node.addEventListener("click", action);
  node.addEventListener("keydown", (e) => {
    if (e.key === "Enter" || e.key === " ") { e.preventDefault(); action(); }
  });
}

async function api(path, options) {
  let response;
  try {
    response = await fetch(path, options);
  } catch (e) {  // no answer at all: the browser's own words were "Failed to fetch"
    throw new Error("The explorer's server does not answer: start `cnnlab serve` again (same run and port), then retry.");
  }
  let body = null;
  try { body = await response.json(); } catch (e) { body = null; }
  if (!response.ok) {
    const detail = body && (body.error || (body.detail && JSON.stringify(body.detail)));
    const error = new Error(detail || `${response.status} ${response.statusText}`);
    error.resend = Boolean(body && body.resend);
    throw error;
  }
  return body;
}

// A server that forgot the image may have been restarted on another run (same port): its
// layers, classes and input are then not the page's, and every answer would be about a
// model the page does not show. Compared once per resend, and said with the fix.
async function sameRun() {
  const now = await api("/api/model");
  const key = (m) => JSON.stringify([m.name, m.input_shape, m.classes, m.maps, m.convs]);
  if (key(now) !== key(state.model)) {
    throw new Error(`The server now serves another run (${now.name}, input ${now.input_shape.join("×")}): reload the page to explore it.`);
  }
}

// A request about the image shown. The server keeps the last images only, and none after a
// restart: where it no longer has this one, the page sends it again (its id is a hash of its
// pixels, so the id stays) and asks once more, instead of "send it again" on every control.
async function imageApi(path) {
  try {
    return await api(path());
  } catch (error) {
    if (!error.resend || !state.sent) throw error;
    await sameRun();
    await api("/api/predict", { method: "POST", body: state.sent });
    return api(path());
  }
}

// --- colour maps ------------------------------------------------------------------------
function jet(v) {  // v in [0, 1] -> [r, g, b]
  const r = Math.min(1, Math.max(0, 1.5 - Math.abs(4 * v - 3)));
  const g = Math.min(1, Math.max(0, 1.5 - Math.abs(4 * v - 2)));
  const b = Math.min(1, Math.max(0, 1.5 - Math.abs(4 * v - 1)));
  return [r * 255, g * 255, b * 255];
}
function diverging(v, limit) {  // blue (negative) - white - red (positive)
  const t = limit > 0 ? Math.max(-1, Math.min(1, v / limit)) : 0;
  return t >= 0 ? `rgb(255,${255 - 160 * t},${255 - 160 * t})` : `rgb(${255 + 160 * t},${255 + 160 * t},255)`;
}
// A canvas (or its CSS box) shaped as an H×W image, its longer side `side` pixels: a 40×52
// input or a 40×26 map was drawn square, stretched, and its receptive-field box with it.
function fit(canvas, h, w, side, css) {
  const s = side / Math.max(h, w);
  const [width, height] = [Math.max(1, Math.round(w * s)), Math.max(1, Math.round(h * s))];
  if (css) { canvas.style.width = `${width}px`; canvas.style.height = `${height}px`; return; }
  if (canvas.width !== width || canvas.height !== height) [canvas.width, canvas.height] = [width, height];
}
function bytesOf(b64) { const s = atob(b64); const a = new Uint8Array(s.length); for (let i = 0; i < s.length; i++) a[i] = s.charCodeAt(i); return a; }

// --- architecture -----------------------------------------------------------------------
function showArchitecture(model) {
  const arch = model.architecture;
  $("run-info").textContent = `${model.name}: input ${model.input_shape.join("×")} (C×H×W), ${model.classes.length} classes, data ${model.data ?? "none (imported without --data)"}`;
  $("arch-total").textContent = `${arch.total_params.toLocaleString()} parameters; RF = receptive field in input pixels`;
  const list = $("layers");
  list.replaceChildren();
  for (const row of arch.rows) {
    const li = el("li", null, (row.conv ? "conv" : "") + (row.lints.length ? " lint" : ""));
    li.dataset.layer = row.label;  // one row per call: "name", then "name #2", ... (the summary's labels)
    li.append(el("strong", `${row.label} ${row.kind}`));
    li.append(el("div", `${row.output_shape.join("×")} · ${row.params.toLocaleString()} params · RF ${row.receptive_field} (jump ${row.jump})`, "meta"));
    for (const lint of row.lints) li.append(el("div", `⚠ ${lint.code}: ${lint.message}`, "lint-text"));
    // a layer without a map (a Linear, a flatten, a global pooling to C): a click said nothing
    if (row.spatial) li.addEventListener("click", () => chooseFeatureLayer(row.label));
    else li.addEventListener("click", () => say(`${row.label} ${row.kind} outputs ${row.output_shape.join("×")} per image, not a (C, H, W) map: no feature maps to show; choose a layer whose output has three sizes`));
    list.append(li);
  }
  const lints = $("model-lints");
  lints.replaceChildren();
  for (const lint of arch.lints) {  // a whole model's lint is "(model)": not put in parentheses twice
    const where = lint.layer.startsWith("(") ? lint.layer : `(${lint.layer})`;
    lints.append(el("p", `⚠ ${lint.code} ${where}: ${lint.message}`, "lint-text"));
  }
  if (arch.note) lints.append(el("p", `no layer list: ${arch.note}`, "lint-text"));  // the summary refused the model
  // feature maps and Grad-CAM: one entry per call of a layer (`relu #2`: its second call)
  // each named with its kind, so a conv's map (before its activation) is told from its ReLU's
  state.kinds = { ...model.kinds, ...Object.fromEntries(arch.rows.map((r) => [r.label, r.kind])) };
  for (const [select, layers] of [[$("feature-layer"), model.maps], [$("cam-layer"), model.spatial]]) {
    select.replaceChildren();
    for (const name of Object.keys(layers)) {
      const kind = state.kinds[name] ? ` ${state.kinds[name]}` : "";
      const option = el("option", `${name}${kind} ${layers[name].join("×")}`);
      option.value = name;
      select.append(option);
    }
  }
  // explain's default layer (the last map the logits read), not merely the last map
  $("cam-layer").value = model.cam_layer ?? Object.keys(model.spatial).slice(-1)[0];
  $("feature-layer").value = model.convs.length ? model.convs[0].conv : Object.keys(model.maps)[0];
  state.featureLayer = $("feature-layer").value;
  const [c, h, w] = model.input_shape;
  fit($("view"), h, w, 280);
  fit($("draw"), h, w, 224);
  $("draw-clear").click();  // a resized canvas is transparent: black again
  $("draw-size").textContent = `(scaled to ${h}×${w} (H×W)${c === 1 ? ", grey" : ""})`;
}

// --- input picker -----------------------------------------------------------------------
async function loadSamples() {
  if (!state.model.test_images) {  // imported without --data: an empty grid and a dead button
    $("samples").replaceChildren(el("p", "No test images: the run was imported without --data. Upload or draw an image (or import the run again with cnnlab import … --data NAME|DIR).", "hint"));
    $("more-samples").hidden = true;
    return;
  }
  // a double click asks twice for the same page: one answer is shown, and the next page is
  // the one after it (both answers advanced the offset, and a page was skipped)
  const offset = state.sampleOffset;
  const data = await latest("samples", () => api(`/api/samples?offset=${offset}&count=24`));
  if (data === STALE) return;
  const box = $("samples");
  box.replaceChildren();
  for (const s of data.samples) {
    const fig = el("figure");
    const img = el("img");
    img.src = s.image;
    img.alt = `test image ${s.index}`;
    fig.append(img, el("figcaption", s.class));
    fig.dataset.index = s.index;
    pressable(fig, `test image ${s.index}, ${s.class}`, () => pickSample(s.index));
    box.append(fig);
  }
  choose(state.choice);
  state.sampleOffset = (offset + 24) % Math.max(1, data.total);
}

// A test image clicked (in the grid, or among a channel's top images): its prediction and maps.
function pickSample(index) {
  // the image shown or on its way, chosen again: nothing to do (it asked for its prediction
  // and maps again)
  if (String(index) === state.choice) return;
  const form = new FormData();
  form.append("sample", index);
  predict(form);
}

// The test image asked for (or null), highlighted in the grid: whoever chose it (a click, the
// address, an upload, a refusal), the figure highlighted is state.choice's. Set only here.
function choose(index) {
  state.choice = index;
  for (const f of $("samples").children) f.classList.toggle("chosen", f.dataset.index === index);
}

async function predict(form, drawing = false) {
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

// The unit carried to a new image, traced on its maps: unless the layer now shown is another
// conv's (its maps' arrival then dropped the unit) or the unit is traced already.
function carry() {
  const unit = state.unit;
  if (unit && !state.trace && state.maps) traceAt(state.channel, unit[1], unit[2]);
}

function setupDrawing() {
  const canvas = $("draw");
  const ctx = canvas.getContext("2d");
  const clear = () => { ctx.fillStyle = "#000"; ctx.fillRect(0, 0, canvas.width, canvas.height); };
  clear();
  let down = false;
  const at = (e) => { const r = canvas.getBoundingClientRect(); return [(e.clientX - r.left) * canvas.width / r.width, (e.clientY - r.top) * canvas.height / r.height]; };
  canvas.addEventListener("pointerdown", (e) => { down = true; const [x, y] = at(e); ctx.beginPath(); ctx.moveTo(x, y); });
  canvas.addEventListener("pointermove", (e) => {
    if (!down) return;
    const [x, y] = at(e);
    ctx.lineWidth = 18; ctx.lineCap = "round"; ctx.strokeStyle = "#fff";
    ctx.lineTo(x, y); ctx.stroke();
  });
  window.addEventListener("pointerup", () => { down = false; });
  $("draw-clear").addEventListener("click", clear);
  $("draw-predict").addEventListener("click", () => {
    canvas.toBlob((blob) => { const form = new FormData(); form.append("image", blob, "drawing.png"); predict(form, true); }, "image/png");
  });
  // the same file chosen again (after a test image, or after editing it) fires no `change`
  // while the input still holds it: emptied as the chooser opens, every choice is a change
  $("upload").addEventListener("click", () => { $("upload").value = ""; });
  $("upload").addEventListener("change", () => {
    const file = $("upload").files[0];
    if (!file) return;
    const most = state.model.upload.max_bytes;
    // refused before it is sent, in the server's words for the file: the server refused the
    // body unread ("request body over 10 MiB"), naming no file, after the whole upload
    if (file.size > most) {
      choose(null);  // as an upload refused by the server: no test image is the choice
      say(`Could not use this image: ${file.name} (${(file.size / 2 ** 20).toFixed(1)} MiB) is over ${most / 2 ** 20} MiB, the largest image the explorer takes: resize or compress it`);
      return;
    }
    const form = new FormData();
    form.append("image", file, file.name);
    predict(form);
  });
}

// --- prediction, overlays, softmax ------------------------------------------------------
function showPrediction(p) {
  const bars = $("bars");
  bars.replaceChildren();
  for (const t of p.top) {
    const li = el("li");
    li.title = `logit ${fmt(t.logit)}`;
    const label = el("div", null, "label");
    label.append(el("span", t.class, "class-name"), el("span", `${(100 * t.probability).toFixed(1)} %`, "num"));
    const bar = el("div", null, "bar");
    bar.style.width = `${Math.max(1, 100 * t.probability)}%`;
    li.append(label, bar);
    bars.append(li);
  }
  $("true-class").textContent = p.true_class !== undefined ? `true class: ${p.true_class}` : "";
  const body = $("softmax").tBodies[0];
  body.replaceChildren();
  p.classes.forEach((name, i) => {
    const tr = el("tr");
    tr.append(el("td", name), el("td", fmt(p.logits[i], 5), "num"), el("td", fmt(p.exp[i], 5), "num"), el("td", fmt(p.probabilities[i], 5), "num"));
    body.append(tr);
  });
  const foot = $("softmax").tFoot;
  foot.replaceChildren();
  const tr = el("tr");
  const shifted = p.shifted ? ` (e^(z − ${fmt(p.shifted, 4)}))` : "";
  tr.append(el("td", "Σ"), el("td", ""), el("td", fmt(p.sum, 6) + shifted, "num"), el("td", "1", "num"));
  foot.append(tr);
}

function drawView() {
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

async function showOverlay() {  // saliency is fetched the first time it is asked for
  if (state.overlay === "saliency" && state.image && !state.heat.saliency) {
    try {
      const r = await latest("saliency", () => imageApi(() => `/api/heatmap?image=${state.image}&method=saliency`));
      if (r !== STALE) state.heat.saliency = r.map;  // not the last image's
    } catch (error) { say(error.message); }
  }
  drawView();
}

async function refreshGradcam() {
  if (!state.image) return;
  try {
    const r = await latest("gradcam", () => imageApi(() => `/api/heatmap?image=${state.image}&method=gradcam&layer=${encodeURIComponent($("cam-layer").value)}`));
    if (r === STALE) return;  // a later layer's map, or another image's
    state.heat.gradcam = r.map;
    drawView();
  } catch (error) { say(error.message); }
}

// --- feature maps -----------------------------------------------------------------------
function chainOf(layer) {
  return state.model.convs.find((c) => c.conv === layer || c.bn === layer || c.act === layer) || null;
}

// The feature layer as the choice, in the menu and the layer list alike.
function showLayer(name) {
  $("feature-layer").value = state.featureLayer = name;
  for (const li of $("layers").children) li.classList.toggle("selected", li.dataset.layer === name);
}

function chooseFeatureLayer(name) {
  showLayer(name);
  remember();
  loadFeatures();
}

async function loadFeatures() {
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
function whenShown(action) {
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

function paintMap(canvas, c, box) {
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

function notConv() {  // a conv of the model's own (F.conv2d on its parameter) is no nn.Conv2d
  say(`${state.featureLayer} is not an nn.Conv2d (nor its BatchNorm or activation): choose one of the layers marked blue in the list to see a dot product`);
}

function setupChannelClick() {
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

// --- the dot product --------------------------------------------------------------------
// The test image, layer and unit shown, in the address (#sample=3&layer=0&unit=1,4,5): the
// back button, a reload or a copied link comes back to them (the page came back empty). A
// replaced entry, not a new one: the back button still leaves the page.
function remember() {
  const q = new URLSearchParams();
  if (state.sample !== null && state.sample !== undefined) q.set("sample", state.sample);
  if (state.featureLayer) q.set("layer", state.featureLayer);
  if (state.unit) q.set("unit", state.unit.join(","));
  history.replaceState(null, "", String(q) ? `#${q}` : location.pathname);
}

// The address's layer and unit taken as the choice, and its test image asked for unless it is
// the one shown (`shown`): true when it is asked for (predict() then shows its maps and unit).
function restore(q, shown = null) {
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
function follow() {
  const q = new URLSearchParams(location.hash.slice(1));  // read first: clearTrace rewrites it
  clearTrace();  // the unit shown is the last address's
  if (restore(q, state.sample ?? null)) return;  // another test image, shown by predict()
  if (state.unit && state.image) state.waiting.push(carry);  // traced once the layer's maps are shown
  chooseFeatureLayer(state.featureLayer);  // the image shown, on the layer named
}

async function traceAt(f, i, j) {
  const chain = chainOf(state.featureLayer);
  // the maps shown are the conv's or its BatchNorm's or activation's: all of the conv's H×W
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

function clearTrace() {
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

function showTrace(t) {
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
    let text = `conv output (${s.layer}), before any BatchNorm or activation: ${fmt(s.value, 6)}`;
    if (s.stage === "batchnorm") text = `batchnorm (${s.layer}): ${fmt(s.value, 6)}`;
    if (s.stage === "batchnorm" && s.mean !== undefined) text = `batchnorm (${s.layer}): (x − μ) / √(σ² + ε) · γ + β = (${fmt(t.chain[0].value, 6)} − (${fmt(s.mean, 4)})) / √(${fmt(s.var, 4)} + ${s.eps}) · ${fmt(s.gamma, 4)} + (${fmt(s.beta, 4)}) = ${fmt(s.value, 6)}`;
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

function sliceNote(t) {
  const s = t.input_slice;
  if (!s) return "";
  const of = s.source === "input" ? "the input image" : s.source ? `${s.source}'s output` : "a tensor the model's forward makes (no layer's output)";
  const shown = t.input_channels;
  const range = s.step === 1 ? `${shown[0]}–${shown[shown.length - 1]}` : `${shown.join(", ")}`;
  const own = `${t.group_channels[0]}–${t.group_channels[1] - 1}`;
  return `This conv reads a slice of ${of} (${s.channels} channels; a torch.chunk, split or slice in the forward): the input channels shown are that tensor's channels ${range}, numbered so here (the conv itself numbers them ${own}).`;
}

function step(di, dj) {
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

// --- the deep-layer panel ---------------------------------------------------------------
// The deep-layer panel's layer: a conv's or BatchNorm's block ends at its activation, whose
// channel both the top images and the activation maximisation answer for (a BatchNorm with
// γ < 0 makes the conv's maximum the activation's minimum: one layer for the whole panel).
// Both read the call that ends the block (`relu #2` for a ReLU module shared by the blocks).
function blockLayer() {
  const chain = chainOf(state.featureLayer);
  const end = chain ? (chain.act || chain.bn || chain.conv) : state.featureLayer;
  return state.model.top_layers.includes(end) ? end : state.featureLayer;
}

async function loadTop(c) {
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

async function loadActmax() {
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

// --- geometry playground ----------------------------------------------------------------
// The playground's number fields, as their labels name them.
const GEOMETRY_FIELDS = [["g-size", "input size"], ["g-kernel", "kernel"], ["g-padding", "padding"],
  ["g-stride", "stride"], ["g-dilation", "dilation"], ["g-in", "input channels"], ["g-filters", "filters"]];

// A field emptied to type another number, or out of its range: said in the field's own name
// and bounds, without asking the server. Its refusal read "kernel = '': Input should be a valid
// integer, unable to parse string as an integer", shown in red at every emptied field.
function geometryFieldProblem() {
  for (const [id, name] of GEOMETRY_FIELDS) {
    const field = $(id);
    if (field.disabled || field.checkValidity() && field.value !== "") continue;
    const typed = field.value === "" ? "" : ` (not ${field.value})`;
    return `${name}: type a whole number from ${field.min} to ${field.max}${typed}`;
  }
  return null;
}

async function updateGeometry() {
  const kind = $("g-padding-kind").value;
  const q = new URLSearchParams({ size: $("g-size").value, kernel: $("g-kernel").value,
    padding: kind === "number" ? $("g-padding").value : kind, stride: $("g-stride").value,
    dilation: $("g-dilation").value, in_channels: $("g-in").value, filters: $("g-filters").value });
  $("g-padding").disabled = kind !== "number";
  const out = $("g-results");
  const problem = geometryFieldProblem();
  if (problem) {
    drop("geometry");  // an answer on its way is for numbers no longer shown
    state.geometry = null;
    out.replaceChildren(el("p", problem, "hint"));
    drawGeometry();
    return;
  }
  try {  // a field typed in, "5" then "28": the answer for 5 came last
    const g = await latest("geometry", () => api(`/api/geometry?${q}`));
    if (g === STALE) return;
    state.geometry = g;
    state.window = Math.min(state.window, g.output * g.output - 1);
    const skipped = g.skipped_pixels.length;  // between windows or taps: not the floor's
    out.replaceChildren(
      el("p", `O = ⌊(I + P_before + P_after − D(K − 1) − 1) / S⌋ + 1 = ⌊(${g.size} + ${g.padding[0]} + ${g.padding[1]} − ${g.dilation}·${g.kernel - 1} − 1) / ${g.stride}⌋ + 1 = ⌊${fmt(g.exact - 1, 4)}⌋ + 1 = ${g.output}`),
      el("p", `output: ${g.output}×${g.output}` + (g.floored ? " — not an integer before the floor" : "")),
      el("p", g.dropped ? `the floor problem: ${g.dropped} pixel(s) at the right/bottom edge are never read (red)` : skipped ? "the floor drops no real pixel" : "no real pixel is dropped", g.dropped ? "bad" : ""),
      ...(skipped ? [el("p", `${skipped} more pixel(s) of each row and column are never read (red): ${skips(g)}`, "bad")] : []),
      el("p", `'same' padding for this kernel: ${g.same_padding.join(" before, ")} after (stride 1)`),
      el("p", `parameters: ${g.params_formula} = ${g.params.toLocaleString()}`));
    drawGeometry();
  } catch (error) {
    state.geometry = null;
    out.replaceChildren(el("p", error.message, "bad"));
    drawGeometry();
  }
}

// Why real pixels before the floor's are never read: no window reaches them.
function skips(g) {
  const span = g.dilation * (g.kernel - 1) + 1;
  const between = g.stride > span ? `the stride (${g.stride}) is longer than the kernel's span (${span}): windows leave gaps` : "";
  const holes = g.dilation > 1 ? `the dilated kernel (dilation ${g.dilation}) has holes no window fills` : "";
  return [between, holes].filter(Boolean).join("; ") + ` (index ${g.skipped_pixels.join(", ")})`;
}

function drawGeometry() {
  const canvas = $("g-canvas");
  const ctx = canvas.getContext("2d");
  ctx.fillStyle = "#fff"; ctx.fillRect(0, 0, canvas.width, canvas.height);
  const g = state.geometry;
  if (!g) return;
  const [pb, pa] = g.padding, n = g.size + pb + pa, cell = canvas.width / n;
  const unread = [...g.dropped_pixels, ...g.skipped_pixels];  // red: no window reads them
  for (let y = 0; y < n; y++) for (let x = 0; x < n; x++) {
    const ry = y - pb, rx = x - pb;
    const real = ry >= 0 && ry < g.size && rx >= 0 && rx < g.size;
    const dropped = real && (unread.includes(ry) || unread.includes(rx));
    ctx.fillStyle = !real ? "#e5e7eb" : dropped ? "#fca5a5" : "#f8fafc";
    ctx.fillRect(x * cell, y * cell, cell, cell);
    ctx.strokeStyle = "#cbd5e1"; ctx.strokeRect(x * cell, y * cell, cell, cell);
  }
  const wi = Math.floor(state.window / g.output), wj = state.window % g.output;
  ctx.fillStyle = "rgba(37, 99, 235, 0.45)";
  for (const ty of g.windows[wi]) for (const tx of g.windows[wj]) ctx.fillRect((tx + pb) * cell, (ty + pb) * cell, cell, cell);
  $("g-window").textContent = `window (${wi}, ${wj}) of ${g.output}×${g.output}; grey = padding, blue = taps`;
}

// --- start ------------------------------------------------------------------------------
async function start() {
  setupDrawing();
  setupChannelClick();
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
  $("geometry-form").addEventListener("input", updateGeometry);
  $("geometry-form").addEventListener("submit", (e) => e.preventDefault());
  $("g-prev").addEventListener("click", () => { if (state.geometry) { state.window = Math.max(0, state.window - 1); drawGeometry(); } });
  $("g-next").addEventListener("click", () => { if (state.geometry) { state.window = Math.min(state.geometry.output ** 2 - 1, state.window + 1); drawGeometry(); } });
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
start();
