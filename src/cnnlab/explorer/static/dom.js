// The page's small DOM helpers: an element by id, a new element whose text is never parsed
// as HTML (every text from the run, a class or layer name, is set with textContent), a
// number as text, the status line, a picture that acts as a button, a canvas shaped as an image.

export const $ = (id) => document.getElementById(id);

export function el(tag, text, cls) {
  const e = document.createElement(tag);
  if (text !== undefined && text !== null) e.textContent = String(text);
  if (cls) e.className = cls;
  return e;
}
export function fmt(x, digits = 6) {
  if (!Number.isFinite(x)) return String(x);
  const a = Math.abs(x);
  if (a !== 0 && (a < 1e-4 || a >= 1e6)) return x.toExponential(digits - 1);
  return x.toPrecision(digits).replace(/(\.\d*?)0+$/, "$1").replace(/\.$/, "");
}
export function say(text) { $("message").textContent = text || ""; }
// A picture that acts as a button (a test image, a channel's map): reached with Tab and
// chosen with Enter or Space, as a button is; a mouse alone could choose them.
export function pressable(node, label, action) {
  node.tabIndex = 0;
  node.setAttribute("role", "button");
  node.setAttribute("aria-label", label);
  node.addEventListener("click", action);
  node.addEventListener("keydown", (e) => {
    if (e.key === "Enter" || e.key === " ") { e.preventDefault(); action(); }
  });
}

// A canvas (or its CSS box) shaped as an H×W image, its longer side `side` pixels: a 40×52
// input or a 40×26 map was drawn square, stretched, and its receptive-field box with it.
export function fit(canvas, h, w, side, css) {
  const s = side / Math.max(h, w);
  const [width, height] = [Math.max(1, Math.round(w * s)), Math.max(1, Math.round(h * s))];
  if (css) { canvas.style.width = `${width}px`; canvas.style.height = `${height}px`; return; }
  if (canvas.width !== width || canvas.height !== height) [canvas.width, canvas.height] = [width, height];
}
