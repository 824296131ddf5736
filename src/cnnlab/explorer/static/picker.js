// The input picker: the test images' grid, the drawing canvas and the file upload.

import { $, el, pressable, say } from "./dom.js";
import { state } from "./state.js";
import { latest, STALE } from "./latest.js";
import { api } from "./api.js";
import { predict } from "./predict.js";

export async function loadSamples() {
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
export function pickSample(index) {
  // the image shown or on its way, chosen again: nothing to do (it asked for its prediction
  // and maps again)
  if (String(index) === state.choice) return;
  const form = new FormData();
  form.append("sample", index);
  predict(form);
}

// The test image asked for (or null), highlighted in the grid: whoever chose it (a click, the
// address, an upload, a refusal), the figure highlighted is state.choice's. Set only here.
export function choose(index) {
  state.choice = index;
  for (const f of $("samples").children) f.classList.toggle("chosen", f.dataset.index === index);
}

// The drawing canvas and the file chooser: each sends its image to predict().
export function setupDrawing() {
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
