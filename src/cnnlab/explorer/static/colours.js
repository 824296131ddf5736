// Colour maps: values as colours on the feature maps, the overlays and the dot-product grids.

export function jet(v) {  // v in [0, 1] -> [r, g, b]
  const r = Math.min(1, Math.max(0, 1.5 - Math.abs(4 * v - 3)));
  const g = Math.min(1, Math.max(0, 1.5 - Math.abs(4 * v - 2)));
  const b = Math.min(1, Math.max(0, 1.5 - Math.abs(4 * v - 1)));
  return [r * 255, g * 255, b * 255];
}
export function diverging(v, limit) {  // blue (negative) - white - red (positive)
  const t = limit > 0 ? Math.max(-1, Math.min(1, v / limit)) : 0;
  return t >= 0 ? `rgb(255,${255 - 160 * t},${255 - 160 * t})` : `rgb(${255 + 160 * t},${255 + 160 * t},255)`;
}
