// The page's wiring: opening images, prompts from the pointer, keyboard shortcuts, undo/redo;
// files coming in in opening.js, segment everything in everything.js, the hover preview in
// hover.js, the downloads in downloads.js, video in video.js. State lives in Annotations
// (objects.js); drawing in View.

import * as api from "./api.js";
import { downloads } from "./downloads.js";
import {
  bindEverything, endPicking, everything, findAll, keepAllFound, pickFound, stopEverything,
} from "./everything.js";
import { Hover, previewKey } from "./hover.js";
import { Annotations } from "./objects.js";
import { acceptFiles } from "./opening.js";
import { keepingTyping, renderObjects } from "./panel.js";
import { VideoMode } from "./video.js";
import { DRAG_PX, View } from "./view.js";

const $ = (selector) => document.querySelector(selector);

const annotations = new Annotations();
const view = new View($("#stage"));
const state = {
  image: null, // {id, name, width, height, blob}
  inflight: new Map(), // object id -> AbortController of its pending click
  latencies: [], // {browser_ms, server_ms, gateway_ms, reembedded} per answered prompt
  cancelled: 0, // superseded prompts whose answer was not awaited
  found: null, // segment-everything's annotations while picking among them
  job: null, // the running segment-everything job's id
  drag: null,
};
const video = new VideoMode(view, { onStart: closeImage, showError, setStatus });
const hover = new Hover((body, signal) => api.masks(state.image.id, body, signal), () => refresh());
window.sam2ui = { annotations, state, view, hover, video }; // for the tests and the console

// --- messages ----------------------------------------------------------------------------
function showError(text) {
  const node = $("#message");
  node.textContent = text;
  node.hidden = !text;
}

function setStatus(text) {
  $("#status").textContent = text;
}

// --- images ------------------------------------------------------------------------------
let opening = 0; // the newest open wins, whichever answers first

async function openBlob(blob, name) {
  const ticket = (opening += 1);
  showError("");
  setStatus(`opening ${name} …`);
  const fail = (message) => {
    if (ticket !== opening) return;
    showError(`${name}: ${message}`);
    setStatus(state.image ? state.image.name : "open an image to start");
  };
  let info;
  try {
    info = await api.openImage(blob);
  } catch (error) {
    return fail(error.message);
  }
  // Shown as the browser decodes it when that is the server's size; else as the server does.
  let bitmap = await createImageBitmap(blob).catch(() => null);
  if (!bitmap || bitmap.width !== info.width || bitmap.height !== info.height) {
    try {
      const response = await fetch(`/api/images/${info.image_id}/view`);
      if (!response.ok) throw new Error(`${response.status} ${response.statusText}`);
      bitmap = await createImageBitmap(await response.blob());
    } catch (error) {
      return fail(`the image cannot be shown (${error.message})`);
    }
  }
  if (ticket !== opening) return; // a newer open is under way
  stopEverything(); // only now: a refused file leaves the open image as it was
  hover.leave();
  video.close();
  for (const controller of state.inflight.values()) controller.abort();
  state.image = { id: info.image_id, name, width: info.width, height: info.height, blob };
  state.found = null;
  document.body.classList.remove("picking");
  $("#progress").hidden = true;
  $("#progress-text").textContent = "";
  annotations.reset();
  view.show(bitmap);
  refresh();
  setStatus(`${name}: ${info.width}×${info.height}, encoded in ${Math.round(info.encode_ms)} ms. Click to segment.`);
  document.body.dataset.imageId = info.image_id;
}

// A video opens: the image and its work go.
function closeImage() {
  stopEverything();
  hover.leave();
  for (const controller of state.inflight.values()) controller.abort();
  state.image = null;
  state.found = null;
  annotations.reset();
  delete document.body.dataset.imageId;
}

// A file picked, dropped or pasted: a video (or a zip of frames) opens in video mode.
function openFile(file, name = file.name) {
  const isVideo = file.type.startsWith("video/") || /\.(zip|mp4|webm|mov|mkv|avi)$/i.test(name);
  return isVideo ? video.open(file, name) : openBlob(file, name);
}

// The gateway forgot the image (restarted): send it again, unnoticed.
async function reopen(image) {
  const info = await api.openImage(image.blob);
  image.id = info.image_id;
}

// --- prompts -----------------------------------------------------------------------------
function prompt(object, startedAt) {
  refresh();
  requestMasks(object, startedAt);
}

async function requestMasks(object, startedAt = performance.now()) {
  const image = state.image;
  const { id, rev } = object;
  state.inflight.get(id)?.abort(); // a newer prompt supersedes the one in flight
  const controller = new AbortController();
  state.inflight.set(id, controller);
  const body = { points: object.points, labels: object.labels, box: object.box };
  try {
    let answer;
    try {
      answer = await api.masks(image.id, body, controller.signal);
    } catch (error) {
      if (error.status !== 404 || !error.message.includes("not open here")) throw error;
      await reopen(image);
      answer = await api.masks(image.id, body, controller.signal);
    }
    if (state.image !== image || !annotations.applyMasks(id, rev, answer.candidates)) return;
    refresh();
    const latency = { browser_ms: performance.now() - startedAt, ...timings(answer) };
    state.latencies.push(latency);
    $("#latency").textContent =
      `click → mask ${latency.browser_ms.toFixed(0)} ms (server ${latency.server_ms.toFixed(0)} ms)` +
      (latency.reembedded ? " · the server had evicted the image: re-sent" : "");
  } catch (error) {
    if (error.name === "AbortError") {
      state.cancelled += 1;
      return;
    }
    showError(error.message);
    const current = annotations.get(id);
    if (current && current.rev === rev) current.pending = false;
    refresh();
  } finally {
    if (state.inflight.get(id) === controller) state.inflight.delete(id);
  }
}

// The prompts a click would add to (the selected object's, or a new object's), for the preview.
function hoverBase() {
  const object = annotations.selected();
  if (!object) return { key: "new", points: [], labels: [], box: null };
  return {
    key: `${object.id}:${object.rev}`,
    points: object.points.map((p) => [...p]),
    labels: [...object.labels],
    box: object.box ? [...object.box] : null,
  };
}

// A foreground click: the preview's answer when it asked exactly this, else a request.
async function clickAt(x, y, startedAt) {
  const base = hoverBase();
  const object = annotations.addPoint(x, y, 1);
  refresh();
  const answer = await hover.take(x, y, base);
  if (!answer) return requestMasks(object, startedAt);
  if (state.image && annotations.applyMasks(object.id, object.rev, answer.candidates)) {
    const browser_ms = performance.now() - startedAt;
    state.latencies.push({ ...timings(answer), browser_ms, from_preview: true });
    refresh();
  }
}

const timings = (answer) => ({
  server_ms: answer.server_ms,
  gateway_ms: answer.gateway_ms,
  reembedded: answer.reembedded,
});

function onPointerDown(event) {
  hover.hold();
  if (!state.image || event.button !== 0) return;
  state.drag = { start: view.toImage(event), x: event.clientX, y: event.clientY, moved: false, box: null };
  try {
    $("#stage").setPointerCapture(event.pointerId); // a drag may leave the stage
  } catch {
    // a synthetic event has no pointer to capture
  }
}

function onPointerMove(event) {
  const drag = state.drag;
  if (!drag) {
    if (state.image && !state.found && event.buttons === 0) hover.move(...view.toImage(event), hoverBase());
    return;
  }
  if (Math.hypot(event.clientX - drag.x, event.clientY - drag.y) > DRAG_PX) drag.moved = true;
  if (!drag.moved || state.found) return;
  const [x, y] = view.toImage(event);
  const [x0, y0] = drag.start;
  drag.box = [Math.min(x0, x), Math.min(y0, y), Math.max(x0, x), Math.max(y0, y)];
  view.drawPrompts(annotations.selected(), drag.box);
}

function onPointerUp(event) {
  if (!state.image) return;
  const startedAt = performance.now();
  if (event.button === 2) {
    // a background point refines an object: with none selected there is nothing to refine
    if (!state.found && annotations.selected()) {
      prompt(annotations.addPoint(...view.toImage(event), 0), startedAt);
    }
    return;
  }
  const drag = state.drag;
  state.drag = null;
  if (!drag || event.button !== 0) return;
  if (state.found) {
    pickFound(...view.toImage(event));
  } else if (drag.moved && drag.box) {
    hover.leave();
    prompt(annotations.setBox(drag.box), startedAt);
  } else if (!drag.moved && event.shiftKey) {
    prompt(annotations.addPoint(...drag.start, 0), startedAt);
  } else if (!drag.moved) {
    clickAt(...drag.start, startedAt);
  }
}

// --- history -----------------------------------------------------------------------------
function afterHistory(changed) {
  if (!changed) return;
  for (const object of annotations.needingMasks()) requestMasks(object);
  refresh();
}

const undo = () => afterHistory(annotations.undo());
const redo = () => afterHistory(annotations.redo());

function clearSelected() {
  if (state.drag) {
    state.drag = null;
    view.drawPrompts(annotations.selected());
  } else if (state.found) {
    endPicking();
  } else if (annotations.clearPrompts()) {
    refresh();
  }
}

// --- the page ----------------------------------------------------------------------------
// The hover preview's best mask while it still is what a click there would give.
function previewed() {
  const preview = hover.preview;
  if (!preview || state.found || previewKey(preview.x, preview.y, hoverBase()) !== preview.key) return null;
  const best = preview.candidates.reduce((a, b) => (b.score > a.score ? b : a));
  return { rle: best.rle, color: annotations.selected()?.color };
}

function refresh() {
  if (!state.image) return;
  view.render(annotations, state.found, previewed());
  const list = $("#objects");
  keepingTyping(list, () => renderObjects(list, annotations, {
    select: (id) => {
      annotations.select(id);
      refresh();
    },
    rename: (id, name) => annotations.rename(id, name),
    remove: (id) => {
      annotations.remove(id);
      refresh();
    },
    choose: (id, index) => {
      annotations.select(id);
      annotations.choose(index);
      refresh();
    },
  }));
  $("#undo").disabled = !annotations.undoStack.length;
  $("#redo").disabled = !annotations.redoStack.length;
}

function onKey(event) {
  if (event.target.matches("input, select, textarea")) return;
  const ctrl = event.ctrlKey || event.metaKey;
  const key = event.key.toLowerCase();
  const actions = {
    z: ctrl && (event.shiftKey ? redo : undo),
    y: ctrl && redo,
    escape: clearSelected,
    n: !ctrl && (() => { annotations.newObject(); refresh(); }),
    delete: () => { annotations.remove(annotations.selectedId); refresh(); },
    backspace: () => { annotations.remove(annotations.selectedId); refresh(); },
    e: !ctrl && everything,
    k: !ctrl && keepAllFound,
    o: !ctrl && (() => $("#file").click()),
    1: () => annotations.choose(0) && refresh(),
    2: () => annotations.choose(1) && refresh(),
    3: () => annotations.choose(2) && refresh(),
  };
  const action = actions[key];
  if (!action || (!state.image && key !== "o")) return;
  event.preventDefault();
  action();
}

async function loadSamples() {
  const select = $("#sample");
  for (const sample of await api.samples().catch(() => [])) {
    select.append(new Option(sample.name, sample.url));
  }
  select.addEventListener("change", async () => {
    if (!select.value) return;
    const response = await fetch(select.value);
    await openBlob(await response.blob(), select.selectedOptions[0].text);
    select.value = "";
  });
}

function init() {
  bindEverything({ state, annotations, reopen, showError, setStatus, refresh });
  const stage = $("#stage");
  stage.addEventListener("pointerdown", onPointerDown);
  stage.addEventListener("pointermove", onPointerMove);
  stage.addEventListener("pointerup", onPointerUp);
  stage.addEventListener("pointerleave", () => hover.leave());
  stage.addEventListener("contextmenu", (e) => e.preventDefault());
  acceptFiles({ onFile: openFile, onFrames: (form, name) => video.open(form, name), showError });
  document.addEventListener("keydown", onKey);
  window.addEventListener("resize", () => {
    view.fit();
    refresh();
  });
  $("#new-object").addEventListener("click", () => { annotations.newObject(); refresh(); });
  $("#undo").addEventListener("click", undo);
  $("#redo").addEventListener("click", redo);
  $("#clear").addEventListener("click", clearSelected);
  $("#everything").addEventListener("click", everything);
  $("#find-all").addEventListener("click", findAll);
  $("#find-text").addEventListener("keydown", (event) => {
    if (event.key === "Enter") findAll();
  });
  $("#cancel-everything").addEventListener("click", stopEverything);
  $("#keep-all").addEventListener("click", keepAllFound);
  const download = downloads({ state, annotations, view, showError });
  $("#download-cutout").addEventListener("click", download.cutout);
  $("#download-masks").addEventListener("click", download.masks);
  $("#download-coco").addEventListener("click", download.coco);
  loadSamples();
  document.body.dataset.ready = "true";
}

init();
