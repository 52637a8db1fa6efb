// Segment everything on the open image: start a job (sam2_automatic through the gateway), poll
// its progress, then let the person pick the found masks that become objects (a click keeps
// the smallest under the pointer, K keeps all, Esc ends). `page` is main.js's: its state,
// annotations and messages; set by bindEverything before any call.

import * as api from "./api.js";
import { everythingParams, showProgress } from "./panel.js";
import { maskOf } from "./rle.js";

const $ = (selector) => document.querySelector(selector);
const POLL_MS = 250;
let page = null; // {state, annotations, reopen, showError, setStatus, refresh}

export function bindEverything(context) {
  page = context;
}

export async function everything() {
  const { state, reopen, showError, setStatus, refresh } = page;
  if (!state.image) return;
  stopEverything();
  showError("");
  const image = state.image;
  let job;
  try {
    try {
      job = await api.startEverything(image.id, everythingParams());
    } catch (error) {
      if (error.status !== 404 || !error.message.includes("not open here")) throw error;
      await reopen(image);
      job = await api.startEverything(image.id, everythingParams());
    }
  } catch (error) {
    showError(`segment everything: ${error.message}`);
    return;
  }
  state.job = job.job_id;
  $("#progress").hidden = false;
  $("#cancel-everything").hidden = false;
  while (state.job === job.job_id && job.state === "running") {
    showProgress(job);
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
    try {
      job = await api.job(job.job_id);
    } catch (error) {
      job = { ...job, state: "failed", error: error.message };
      break;
    }
  }
  if (state.job !== job.job_id) return; // superseded or cancelled here
  state.job = null;
  showProgress(job);
  $("#cancel-everything").hidden = true;
  if (job.state === "done" && state.image === image && !job.annotations.length) {
    setStatus("segment everything: no mask passed the thresholds; try lower ones");
  } else if (job.state === "done" && state.image === image) {
    state.found = job.annotations;
    document.body.classList.add("picking");
    setStatus(
      `segment everything: ${job.annotations.length} masks in ${job.elapsed_s.toFixed(1)} s. ` +
        "Click masks to keep them as objects, K keeps all, Esc ends.",
    );
    refresh();
  } else if (job.state === "failed") {
    showError(`segment everything: ${job.error}`);
  } else {
    setStatus("segment everything: cancelled");
  }
}

// "Find all" (SAM 3's sam3_concepts): every instance of a phrase, picked among as segment
// everything's masks are.
export async function findAll() {
  const { state, reopen, showError, setStatus, refresh } = page;
  const text = $("#find-text").value.trim();
  if (!state.image || !text) return;
  stopEverything();
  showError("");
  const image = state.image;
  const threshold = Number($("#find-threshold").value);
  const question = { text, threshold: Number.isFinite(threshold) ? threshold : 0.5 };
  setStatus(`finding "${text}"…`);
  let answer;
  try {
    try {
      answer = await api.findAll(image.id, question);
    } catch (error) {
      if (error.status !== 404 || !error.message.includes("not open here")) throw error;
      await reopen(image);
      answer = await api.findAll(image.id, question);
    }
  } catch (error) {
    showError(`find all: ${error.message}`);
    return;
  }
  if (state.image !== image) return;
  if (!answer.annotations.length) {
    setStatus(`find all: no "${text}" above ${question.threshold}; try a lower threshold`);
    return;
  }
  state.found = answer.annotations;
  document.body.classList.add("picking");
  setStatus(
    `find all: ${answer.annotations.length} "${text}" in ${answer.elapsed_s.toFixed(1)} s. ` +
      "Click masks to keep them as objects, K keeps all, Esc ends.",
  );
  refresh();
}

export function stopEverything() {
  const { state } = page;
  if (state.job) {
    api.cancelJob(state.job).catch(() => {});
    state.job = null;
    $("#cancel-everything").hidden = true;
    $("#progress-text").textContent = "cancelled";
  }
}

// The smallest found mask under the pointer becomes an object.
export function pickFound(x, y) {
  const { state, annotations, refresh } = page;
  const at = Math.min(Math.floor(y), state.image.height - 1) * state.image.width +
    Math.min(Math.floor(x), state.image.width - 1);
  const hits = state.found
    .map((a, k) => [a, k])
    .filter(([a]) => maskOf(a.segmentation)[at])
    .sort(([a], [b]) => a.area - b.area);
  if (!hits.length) return;
  annotations.addFound([hits[0][0]]);
  state.found = state.found.filter((_, k) => k !== hits[0][1]);
  if (!state.found.length) endPicking();
  refresh();
}

export function keepAllFound() {
  const { state, annotations } = page;
  if (!state.found) return;
  annotations.addFound(state.found);
  endPicking();
}

export function endPicking() {
  const { state, annotations, setStatus, refresh } = page;
  state.found = null;
  document.body.classList.remove("picking");
  setStatus(`${state.image.name}: ${annotations.objects.length} objects`);
  refresh();
}
