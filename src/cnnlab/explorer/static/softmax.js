// The top classes' bars and the softmax, step by step (§5.5).

import { $, el, fmt } from "./dom.js";

export function showPrediction(p) {
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
