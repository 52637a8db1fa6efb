// The side panel: the list of objects (colour, name, the candidates and their scores, delete)
// and the buttons whose state depends on it; segment-everything's fields and progress.

const $ = (selector) => document.querySelector(selector);

export function renderObjects(list, annotations, handlers) {
  list.replaceChildren();
  for (const object of annotations.objects) {
    const item = document.createElement("li");
    item.dataset.objectId = object.id;
    item.className = object.id === annotations.selectedId ? "object selected" : "object";
    item.addEventListener("click", () => handlers.select(object.id));

    const swatch = document.createElement("span");
    swatch.className = "swatch";
    swatch.style.background = `rgb(${object.color.join(",")})`;

    const name = document.createElement("input");
    name.className = "name";
    name.value = object.name;
    name.setAttribute("aria-label", "object name");
    name.addEventListener("change", () => handlers.rename(object.id, name.value));
    name.addEventListener("click", (e) => e.stopPropagation());

    const remove = document.createElement("button");
    remove.className = "delete";
    remove.title = "delete this object (Del)";
    remove.textContent = "×";
    remove.addEventListener("click", (e) => {
      e.stopPropagation();
      handlers.remove(object.id);
    });

    const candidates = document.createElement("div");
    candidates.className = "candidates";
    if (object.pending) candidates.append(text("span", "pending", "…"));
    (object.candidates || []).forEach((candidate, index) => {
      const button = document.createElement("button");
      button.className = index === object.chosen ? "candidate chosen" : "candidate";
      button.dataset.index = index;
      button.title = `candidate ${index + 1}: predicted IoU ${candidate.score.toFixed(3)}`;
      button.textContent = `${index + 1} · ${candidate.score.toFixed(2)}`;
      button.addEventListener("click", (e) => {
        e.stopPropagation();
        handlers.choose(object.id, index);
      });
      candidates.append(button);
    });
    const prompts = text("span", "prompts", describe(object));
    item.append(swatch, name, remove, candidates, prompts);
    list.append(item);
  }
}

function describe(object) {
  const fg = object.labels.filter((l) => l === 1).length;
  const bg = object.labels.length - fg;
  const parts = [];
  if (fg) parts.push(`${fg} fg`);
  if (bg) parts.push(`${bg} bg`);
  if (object.box) parts.push("box");
  if (object.source === "everything") parts.push("from segment everything");
  if (object.source === "found") parts.push(`found as "${object.phrase}"`);
  return parts.join(" · ");
}

function text(tag, className, content) {
  const node = document.createElement(tag);
  node.className = className;
  node.textContent = content;
  return node;
}

// Segment-everything's parameters as the panel's fields set them.
export function everythingParams() {
  const params = { points_per_side: Number($("#points-per-side").value) };
  for (const [id, name] of [
    ["#pred-iou", "pred_iou_thresh"],
    ["#stability", "stability_score_thresh"],
    ["#min-area", "min_mask_region_area"],
  ]) {
    const value = $(id).value.trim();
    if (value !== "") params[name] = Number(value);
  }
  // "NAME=VALUE, ...": the gateway checks the names and types, the server the ranges
  for (const pair of $("#more-params").value.split(",")) {
    const [name, value] = pair.split("=").map((part) => part.trim());
    if (!name) continue;
    params[name] = value === "true" ? true : value === "false" ? false : Number(value);
  }
  return params;
}

// A segment-everything job's progress bar and text.
export function showProgress(job) {
  const done = job.state !== "running";
  $("#progress-bar").style.width = `${Math.round(job.progress * 100)}%`;
  $("#progress-text").textContent = done
    ? `${job.state} after ${job.elapsed_s.toFixed(1)} s`
    : `${job.elapsed_s.toFixed(1)} s of ≈ ${job.estimate_s.toFixed(0)} s (estimated)`;
}

// Rebuild `list` with `rebuild()` (lists are redrawn at every change, a video's at every frame):
// a name being typed in it keeps its text, focus and caret.
export function keepingTyping(list, rebuild) {
  const active = document.activeElement;
  const typing = active && list.contains(active) && active.matches("input.name")
    ? { id: active.closest("li").dataset.objectId, value: active.value, caret: active.selectionStart }
    : null;
  rebuild();
  const input = typing && list.querySelector(`li[data-object-id="${typing.id}"] input.name`);
  if (input) {
    input.value = typing.value;
    input.focus();
    input.setSelectionRange(typing.caret, typing.caret);
  }
}
