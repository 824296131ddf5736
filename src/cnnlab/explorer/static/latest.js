// Which answer of each kind of request the page still wants: only the latest.

// Requests answered out of order (two test images clicked in a row, a layer chosen while the
// last one loads): of each kind, only the answer to the request sent last is used.
// latest(kind, request) awaits request() and gives its answer, or STALE once a later request
// of that kind was sent or drop(kind) was called; a refusal is thrown only while it is the
// latest (a refusal for a choice left is not said over the one chosen).
export const STALE = Symbol("stale");
const asked = { samples: 0, predict: 0, note: 0, features: 0, trace: 0, gradcam: 0, saliency: 0, top: 0, actmax: 0, geometry: 0 };  // sent so far
export const drop = (...kinds) => { for (const kind of kinds) asked[kind]++; };  // answers on their way: stale
export async function latest(kind, request) {
  const mine = ++asked[kind];
  try {
    const answer = await request();
    return asked[kind] === mine ? answer : STALE;
  } catch (error) {
    if (asked[kind] === mine) throw error;
    return STALE;
  }
}
