// What the page shows and has asked for: one object that every panel reads and sets.

export const state = { model: null, image: null, prediction: null, overlay: "none", heat: {},
  featureLayer: null, maps: null, channel: null, trace: null, traceChannel: null,
  unit: null, unitConv: null, waiting: [],
  sampleOffset: 0, choice: null, geometry: null, window: 0 };
// state.choice: the test image asked for last, its answer maybe on its way (null: an upload, a
// drawing, or a refusal, so that chosen again it is asked again); its figure is highlighted.
// state.sample: the test image whose prediction is shown (null: an upload or a drawing), in
// the address.
