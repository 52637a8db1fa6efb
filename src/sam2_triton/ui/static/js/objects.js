// The objects of the open image, their prompts and masks, with undo and redo.
// Every user action records a snapshot first; masks that arrive from the server later are
// applied to the object only if its prompts have not changed since (its "rev", drawn from a
// counter that undo and redo do not rewind, so an answer for undone prompts never matches).

import { maskOf } from "./rle.js";

export const PALETTE = [
  [230, 25, 75], [60, 180, 75], [0, 130, 200], [245, 130, 48], [145, 30, 180],
  [70, 240, 240], [240, 50, 230], [210, 245, 60], [0, 128, 128], [170, 110, 40],
];
const MAX_HISTORY = 200;

export class Annotations {
  constructor() {
    this.revisions = 0;
    this.reset();
  }

  reset() {
    this.objects = [];
    this.selectedId = null;
    this.nextId = 1;
    this.undoStack = [];
    this.redoStack = [];
  }

  // --- history ---------------------------------------------------------------------------
  snapshot() {
    return JSON.stringify({ objects: this.objects, selectedId: this.selectedId, nextId: this.nextId });
  }

  restore(text) {
    const state = JSON.parse(text);
    this.objects = state.objects;
    this.selectedId = state.selectedId;
    this.nextId = state.nextId;
  }

  record() {
    this.undoStack.push(this.snapshot());
    if (this.undoStack.length > MAX_HISTORY) this.undoStack.shift();
    this.redoStack = [];
  }

  undo() {
    if (!this.undoStack.length) return false;
    this.redoStack.push(this.snapshot());
    this.restore(this.undoStack.pop());
    this.renumberPending();
    return true;
  }

  redo() {
    if (!this.redoStack.length) return false;
    this.undoStack.push(this.snapshot());
    this.restore(this.redoStack.pop());
    this.renumberPending();
    return true;
  }

  // Restored objects still waiting for masks get fresh revisions: they are asked again.
  renumberPending() {
    for (const object of this.objects) if (object.pending) object.rev = this.nextRevision();
  }

  // --- objects ---------------------------------------------------------------------------
  get(id) {
    return this.objects.find((o) => o.id === id) || null;
  }

  selected() {
    return this.get(this.selectedId);
  }

  create(source = "prompts") {
    const id = this.nextId;
    this.nextId += 1;
    const object = {
      id, name: `object ${id}`, color: PALETTE[(id - 1) % PALETTE.length], source,
      points: [], labels: [], box: null, candidates: null, chosen: 0, rev: 0, pending: false,
    };
    this.objects.push(object);
    this.selectedId = id;
    return object;
  }

  newObject() {
    this.record();
    return this.create();
  }

  // The selected object, or a new one if none is selected (one history entry either way).
  target() {
    this.record();
    return this.selected() || this.create();
  }

  addPoint(x, y, label) {
    const object = this.target();
    object.points.push([x, y]);
    object.labels.push(label);
    return this.changed(object);
  }

  setBox(box) {
    const object = this.target();
    object.box = box;
    return this.changed(object);
  }

  changed(object) {
    object.rev = this.nextRevision();
    object.pending = true;
    return object;
  }

  nextRevision() {
    this.revisions += 1;
    return this.revisions;
  }

  clearPrompts() {
    const object = this.selected();
    if (!object) return null;
    this.record();
    Object.assign(object, { points: [], labels: [], box: null, candidates: null, chosen: 0, pending: false });
    object.rev = this.nextRevision();
    return object;
  }

  remove(id) {
    if (!this.get(id)) return;
    this.record();
    this.objects = this.objects.filter((o) => o.id !== id);
    if (this.selectedId === id) this.selectedId = this.objects.length ? this.objects.at(-1).id : null;
  }

  select(id) {
    this.selectedId = this.get(id) ? id : null;
  }

  choose(index) {
    const object = this.selected();
    if (!object || !object.candidates || index >= object.candidates.length) return false;
    this.record();
    object.chosen = index;
    return true;
  }

  rename(id, name) {
    const object = this.get(id);
    if (!object || object.name === name) return;
    this.record();
    object.name = name;
  }

  // Masks for prompts at revision `rev`: dropped if the prompts changed meanwhile.
  applyMasks(id, rev, candidates) {
    const object = this.get(id);
    if (!object || object.rev !== rev) return false;
    object.candidates = candidates;
    object.chosen = bestIndex(candidates);
    object.pending = false;
    return true;
  }

  // Segment-everything masks kept as objects (one history entry): a mask's grid point is its
  // prompt, so a click on it refines it.
  addFound(annotations) {
    this.record();
    return annotations.map((annotation) => {
      const object = this.create(annotation.label ? "found" : "everything");
      object.points = annotation.point_coords.map((p) => [p[0], p[1]]);
      object.labels = object.points.map(() => 1);
      if (annotation.label) object.phrase = annotation.label; // SAM 3's "find all"
      if (annotation.box) object.box = [...annotation.box]; // its instance's box prompts
      const rle = { ...annotation.segmentation, bbox: annotation.bbox, area: annotation.area };
      object.candidates = [{ score: annotation.predicted_iou, rle }];
      return object;
    });
  }

  // Objects whose prompts have no masks yet (after an undo over a pending click, say).
  needingMasks() {
    return this.objects.filter((o) => o.pending && (o.points.length || o.box));
  }
}

export function bestIndex(candidates) {
  let best = 0;
  candidates.forEach((c, i) => {
    if (c.score > candidates[best].score) best = i;
  });
  return best;
}

export function chosenCandidate(object) {
  return object && object.candidates ? object.candidates[object.chosen] : null;
}

export function maskOfObject(object) {
  const candidate = chosenCandidate(object);
  return candidate ? maskOf(candidate.rle) : null;
}
