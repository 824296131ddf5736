// The geometry playground (§2.2–2.4): the output-size formula on numbers typed in, drawn.

import { $, el, fmt } from "./dom.js";
import { state } from "./state.js";
import { drop, latest, STALE } from "./latest.js";
import { api } from "./api.js";

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

export async function updateGeometry() {
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

// The playground's controls: a number typed in asks for its geometry; the buttons step the
// window shown over the padded input.
export function setupGeometry() {
  $("geometry-form").addEventListener("input", updateGeometry);
  $("geometry-form").addEventListener("submit", (e) => e.preventDefault());
  $("g-prev").addEventListener("click", () => { if (state.geometry) { state.window = Math.max(0, state.window - 1); drawGeometry(); } });
  $("g-next").addEventListener("click", () => { if (state.geometry) { state.window = Math.min(state.geometry.output ** 2 - 1, state.window + 1); drawGeometry(); } });
}
