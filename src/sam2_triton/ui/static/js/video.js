// Video mode (issue 33), as Meta's SAM 2 demo works: open a clip, click objects on any frame,
// Track propagates them forward then backward from the first prompted frame, each frame shown
// as the server sends it; a click on a tracked frame corrects the object and tracking resumes
// from there. Frames are the server's own (GET /api/videos/{id}/frames/{k}); masks are the
// per-frame records `sam2-triton track` writes. The session is closed when the page goes.

import * as api from "./api.js";
import { PALETTE } from "./objects.js";
import { keepingTyping } from "./panel.js";
import { maskOf } from "./rle.js";
import { DRAG_PX } from "./view.js";

const $ = (selector) => document.querySelector(selector);
const ALPHA = 140;

export class VideoMode {
  // view: the stage (view.js); hooks: {onStart() before a video is shown, showError, setStatus}
  constructor(view, hooks) {
    this.view = view;
    this.hooks = hooks;
    this.reset();
    $("#timeline").addEventListener("input", (e) => this.pause() || this.show(Number(e.target.value)));
    $("#play").addEventListener("click", () => (this.playing ? this.pause() : this.play()));
    $("#track").addEventListener("click", () => this.track());
    $("#cancel-track").addEventListener("click", () => this.cancel());
    $("#video-new-object").addEventListener("click", () => this.newObject());
    $("#export-video").addEventListener("click", () => this.exportJson());
    $("#export-png").addEventListener("click", () => this.exportFile("masks.zip"));
    $("#export-mp4").addEventListener("click", () => this.exportFile("overlay.mp4"));
    const stage = $("#stage");
    stage.addEventListener("pointerdown", (e) => this.onDown(e));
    stage.addEventListener("pointermove", (e) => this.onMove(e));
    stage.addEventListener("pointerup", (e) => this.onClick(e));
    window.addEventListener("pagehide", () => this.close(true));
  }

  reset() {
    this.video = null; // {video_id, name, width, height, fps, num_frames}
    this.frame = 0;
    this.bitmaps = new Map(); // frame -> ImageBitmap
    this.records = new Map(); // frame -> Map(obj_id -> segmentation)
    this.objects = []; // {id, name, color, prompts: {frame: {points, labels, box}}}
    this.selected = null;
    this.drag = null; // {start, x, y, box} while the button is down
    this.tracking = null; // AbortController of the tracking under way
    this.tracked = false; // Track ran: a correction resumes it
    this.playing = null;
    this.calls = []; // every prompt sent, in order: SAM 2 refines a frame from its last mask
    this.stats = { prompts: 0, records: 0, passes: 0, cancelled: 0 };
    this.stamps = []; // performance.now() at Track and at each frame drawn (benchmarks/ui_video.py)
  }

  get active() {
    return this.video !== null;
  }

  // `body`: a video file, a zip, or a folder's frames (FormData, one file part each).
  async open(body, name) {
    this.hooks.showError("");
    this.hooks.setStatus(`opening ${name} …`);
    let info;
    try {
      info = await api.openVideo(body);
    } catch (error) {
      this.hooks.showError(`${name}: ${error.message}`);
      this.hooks.setStatus(this.video ? this.video.name : "open an image or a video to start");
      return;
    }
    this.close();
    this.hooks.onStart();
    this.video = { ...info, name };
    document.body.classList.add("video");
    $("#video-panel").hidden = false;
    $("#timeline").max = String(info.num_frames - 1);
    this.newObject();
    await this.show(0);
    this.hooks.setStatus(`${name}: ${info.num_frames} frames, ${info.width}×${info.height}. Click an object, then Track.`);
    document.body.dataset.videoId = info.video_id;
  }

  close(beacon = false) {
    if (!this.video) return;
    const id = this.video.video_id;
    this.cancel();
    this.pause();
    if (beacon) navigator.sendBeacon(`/api/videos/${id}/close`);
    else api.closeVideo(id).catch(() => {});
    this.reset();
    document.body.classList.remove("video");
    delete document.body.dataset.videoId;
    $("#video-panel").hidden = true;
  }

  async bitmap(k) {
    if (!this.bitmaps.has(k)) {
      const load = fetch(`/api/videos/${this.video.video_id}/frames/${k}`).then((r) => {
        if (!r.ok) throw new Error(`frame ${k}: ${r.status} ${r.statusText}`);
        return r.blob();
      }).then((blob) => createImageBitmap(blob));
      this.bitmaps.set(k, load);
    }
    return this.bitmaps.get(k);
  }

  async show(k) {
    if (!this.video) return;
    this.frame = k;
    const bitmap = await this.bitmap(k);
    if (this.frame !== k || !this.video) return; // a newer frame was asked for meanwhile
    if (this.view.width !== bitmap.width || this.view.height !== bitmap.height) this.view.show(bitmap);
    else this.view.imageCanvas.getContext("2d").drawImage(bitmap, 0, 0);
    this.draw();
    $("#timeline").value = String(k);
    $("#frame-label").textContent = `frame ${k + 1} / ${this.video.num_frames}`;
  }

  // Every object's mask on the shown frame in its colour; the selected object's prompts.
  draw() {
    const { width, height } = this.view;
    if (!width || !height) return this.renderObjects(); // no frame shown yet
    const ctx = this.view.maskCanvas.getContext("2d");
    const image = ctx.createImageData(width, height);
    const masks = this.records.get(this.frame) || new Map();
    for (const object of this.objects) {
      const segmentation = masks.get(object.id);
      if (!segmentation) continue;
      const mask = maskOf(segmentation);
      const [r, g, b] = object.color;
      for (let i = 0; i < mask.length; i += 1) {
        if (!mask[i]) continue;
        const j = i * 4;
        image.data[j] = r;
        image.data[j + 1] = g;
        image.data[j + 2] = b;
        image.data[j + 3] = ALPHA;
      }
    }
    ctx.putImageData(image, 0, 0);
    const prompts = this.selected?.prompts[this.frame];
    this.view.drawPrompts(prompts ? { points: prompts.points, labels: prompts.labels, box: prompts.box } : null);
    this.renderObjects();
  }

  newObject() {
    const id = this.objects.reduce((m, o) => Math.max(m, o.id), 0) + 1;
    const object = { id, name: `object ${id}`, color: PALETTE[(id - 1) % PALETTE.length], prompts: {} };
    this.objects.push(object);
    this.selected = object;
    if (this.video) this.draw();
    return object;
  }

  renderObjects() {
    const list = $("#video-objects");
    keepingTyping(list, () => this.fillObjects(list)); // rebuilt at every frame drawn
  }

  fillObjects(list) {
    list.replaceChildren();
    for (const object of this.objects) {
      const item = document.createElement("li");
      item.className = `object${object === this.selected ? " selected" : ""}`;
      item.dataset.objectId = object.id;
      const swatch = document.createElement("span");
      swatch.className = "swatch";
      swatch.style.background = `rgb(${object.color.join(",")})`;
      const name = document.createElement("input");
      name.className = "name";
      name.value = object.name;
      name.setAttribute("aria-label", "object name");
      name.addEventListener("change", () => { object.name = name.value.trim() || `object ${object.id}`; });
      const count = document.createElement("span");
      count.className = "prompted";
      count.textContent = `${Object.keys(object.prompts).length} prompted frame(s)`;
      const remove = document.createElement("button");
      remove.textContent = "Remove";
      remove.className = "remove";
      remove.addEventListener("click", (e) => {
        e.stopPropagation();
        this.remove(object);
      });
      item.append(swatch, name, remove, count);
      item.addEventListener("click", () => {
        this.selected = object;
        this.draw();
      });
      list.append(item);
    }
  }

  onDown(event) {
    if (!this.video || this.tracking || event.button !== 0) return;
    this.drag = { start: this.view.toImage(event), x: event.clientX, y: event.clientY, box: null };
  }

  onMove(event) {
    const drag = this.drag;
    if (!drag || Math.hypot(event.clientX - drag.x, event.clientY - drag.y) <= DRAG_PX) return;
    const [x, y] = this.view.toImage(event);
    const [x0, y0] = drag.start;
    drag.box = [Math.min(x0, x), Math.min(y0, y), Math.max(x0, x), Math.max(y0, y)];
    const prompts = this.selected?.prompts[this.frame];
    this.view.drawPrompts(prompts ? { ...prompts } : null, drag.box);
  }

  // A click adds a point to the selected object on this frame (right or Shift: background);
  // a drag sets its box there (SAM 2 takes a box with the frame's points in one call).
  async onClick(event) {
    const drag = this.drag;
    this.drag = null;
    if (!this.video || this.tracking || (event.button !== 0 && event.button !== 2)) return;
    const object = this.selected || this.newObject();
    const frame = this.frame;
    const prompts = (object.prompts[frame] ||= { points: [], labels: [], box: null });
    const before = structuredClone(prompts);
    if (drag?.box) {
      prompts.box = drag.box;
    } else {
      prompts.points.push(this.view.toImage(event));
      prompts.labels.push(event.button === 2 || event.shiftKey ? 0 : 1);
    }
    this.draw();
    try {
      const call = { frame, obj_id: object.id, ...structuredClone(prompts) };
      const record = await api.videoPrompt(this.video.video_id, call);
      this.calls.push(call);
      this.stats.prompts += 1;
      this.store(record);
      if (this.frame === frame) this.draw();
    } catch (error) {
      Object.assign(prompts, before);
      this.hooks.showError(error.message);
      this.draw();
      return;
    }
    if (this.tracked) await this.track(frame, false); // a correction: tracking resumes from here
  }

  store(record) {
    const masks = new Map();
    for (const o of record.objects) masks.set(o.obj_id, { ...o.segmentation, area: o.area, bbox: o.bbox });
    this.records.set(record.frame, masks);
  }

  // Forward from `from` (default: the first prompted frame), then backward from it when
  // `both` and it is not frame 0, as `sam2-triton track` does.
  async track(from = null, both = true) {
    if (!this.video || this.tracking) return;
    const prompted = this.objects.flatMap((o) => Object.keys(o.prompts).map(Number));
    if (!prompted.length) return this.hooks.showError("track: click an object first");
    const start = from ?? Math.min(...prompted);
    const controller = new AbortController();
    this.tracking = controller;
    document.body.classList.add("tracking");
    this.hooks.showError("");
    const total = this.video.num_frames;
    let count = 0;
    this.stamps = [performance.now()];
    try {
      for (const reverse of both && start > 0 ? [false, true] : [false]) {
        await api.track(this.video.video_id, { start, reverse }, (record) => {
          this.store(record);
          this.stats.records += 1;
          count += 1;
          $("#track-progress").textContent = `tracked frame ${record.frame + 1} (${count} of ${total})`;
          this.show(record.frame).then(() => this.stamps.push(performance.now()));
        }, controller.signal);
        this.stats.passes += 1;
      }
      this.tracked = true;
      $("#track-progress").textContent = `tracked ${count} frames`;
    } catch (error) {
      if (error.name === "AbortError") {
        this.stats.cancelled += 1;
        $("#track-progress").textContent = `cancelled after ${count} frames`;
      } else {
        this.hooks.showError(`track: ${error.message}`);
      }
    } finally {
      if (this.tracking === controller) this.tracking = null;
      document.body.classList.remove("tracking");
    }
  }

  cancel() {
    this.tracking?.abort();
  }

  async remove(object) {
    if (!this.video) return;
    try {
      await api.removeVideoObject(this.video.video_id, object.id);
    } catch (error) {
      if (error.status !== 404) return this.hooks.showError(error.message);
    }
    this.objects = this.objects.filter((o) => o !== object);
    for (const masks of this.records.values()) masks.delete(object.id);
    if (this.selected === object) this.selected = this.objects.at(-1) || null;
    this.draw();
  }

  play() {
    if (!this.video || this.playing) return;
    $("#play").textContent = "Pause";
    if (this.frame >= this.video.num_frames - 1) this.show(0);
    this.playing = setInterval(() => {
      if (this.frame >= this.video.num_frames - 1) return this.pause();
      this.show(this.frame + 1);
    }, 1000 / this.video.fps);
  }

  pause() {
    if (this.playing) clearInterval(this.playing);
    this.playing = null;
    $("#play").textContent = "Play";
  }

  // The masks as `sam2-triton track` records them, a frame each, with the prompts that made
  // them in the video's pixels: every call in order (an object's points on a frame so far),
  // so that replaying them through SAM2VideoPredictor gives the same masks.
  exportable() {
    const prompts = this.calls;
    const frames = [...this.records.keys()].sort((a, b) => a - b).map((frame) => ({
      frame,
      objects: [...this.records.get(frame)].map(([obj_id, s]) => ({
        obj_id, segmentation: { size: s.size, counts: s.counts }, area: s.area, bbox: s.bbox,
      })),
    }));
    const { name, width, height, fps, num_frames } = this.video;
    const objects = this.objects.map((o) => ({ obj_id: o.id, name: o.name, color: o.color }));
    return { video: { name, width, height, fps, num_frames }, objects, prompts, frames };
  }

  // PNG masks (zip) and the overlay (MP4), written by the gateway from the masks shown here.
  exportFile(name) {
    if (!this.video) return;
    const link = document.createElement("a");
    link.href = `/api/videos/${this.video.video_id}/export/${name}`;
    link.download = `${this.video.name.replace(/\.[^.]+$/, "") || "video"}-${name}`;
    link.click();
  }

  exportJson() {
    if (!this.video) return;
    const blob = new Blob([JSON.stringify(this.exportable())], { type: "application/json" });
    const link = document.createElement("a");
    link.href = URL.createObjectURL(blob);
    link.download = `${this.video.name.replace(/\.[^.]+$/, "") || "video"}-track.json`;
    link.click();
    setTimeout(() => URL.revokeObjectURL(link.href), 1000);
  }
}
