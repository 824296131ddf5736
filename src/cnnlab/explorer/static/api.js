// The explorer's server: a JSON request that throws the server's own words, and a request
// about the image shown, which sends the image again where the server forgot it.

import { state } from "./state.js";

export async function api(path, options) {
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
export async function imageApi(path) {
  try {
    return await api(path());
  } catch (error) {
    if (!error.resend || !state.sent) throw error;
    await sameRun();
    await api("/api/predict", { method: "POST", body: state.sent });
    return api(path());
  }
}
