// The architecture column: the run's layers with their shapes, parameters, receptive fields
// and lints, and the layer menus of the feature maps and Grad-CAM that it fills.

import { $, el, fit, say } from "./dom.js";
import { state } from "./state.js";
import { chooseFeatureLayer } from "./features.js";

export function showArchitecture(model) {
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
