// The stage: the image and the mask overlay as canvases at the image's own size, scaled by CSS
// to fit, and the prompts as SVG in image coordinates. Pointer positions map back to image
// pixels exactly: x = (clientX - left) * width / displayed width.

import { maskOfObject, PALETTE } from "./objects.js";
import { maskOf } from "./rle.js";

const SVG = "http://www.w3.org/2000/svg";
export const MASK_ALPHA = 128;
export const DRAG_PX = 4; // a press that moves further than this (on screen) draws a box
export const SELECTED_ALPHA = 176;
const FOUND_ALPHA = 96;
const PREVIEW_ALPHA = 110;
const PREVIEW_COLOR = [30, 144, 255]; // a new object's preview, before it has a colour

export class View {
  constructor(stage) {
    this.stage = stage;
    this.imageCanvas = stage.querySelector("#image-layer");
    this.maskCanvas = stage.querySelector("#mask-layer");
    this.svg = stage.querySelector("#prompt-layer");
    this.width = 0;
    this.height = 0;
  }

  show(bitmap) {
    this.width = bitmap.width;
    this.height = bitmap.height;
    for (const canvas of [this.imageCanvas, this.maskCanvas]) {
      canvas.width = this.width;
      canvas.height = this.height;
    }
    this.imageCanvas.getContext("2d").drawImage(bitmap, 0, 0);
    this.svg.setAttribute("viewBox", `0 0 ${this.width} ${this.height}`);
    this.fit();
  }

  // Largest display size that fits the stage's box, keeping the aspect ratio.
  fit() {
    if (!this.width) return;
    const parent = this.stage.parentElement;
    const style = getComputedStyle(parent);
    const width = parent.clientWidth - parseFloat(style.paddingLeft) - parseFloat(style.paddingRight);
    const height = parent.clientHeight - parseFloat(style.paddingTop) - parseFloat(style.paddingBottom);
    const scale = Math.min(1, width / this.width, Math.max(200, height) / this.height);
    this.stage.style.width = `${Math.floor(this.width * scale)}px`;
    this.stage.style.height = `${Math.floor(this.height * scale)}px`;
  }

  // Image pixel coordinates (continuous, 0..width) of a pointer event.
  toImage(event) {
    const rect = this.maskCanvas.getBoundingClientRect();
    const x = ((event.clientX - rect.left) * this.width) / rect.width;
    const y = ((event.clientY - rect.top) * this.height) / rect.height;
    return [Math.min(Math.max(x, 0), this.width), Math.min(Math.max(y, 0), this.height)];
  }

  // Image pixels per screen pixel (marker sizes stay constant on screen).
  get pixelRatio() {
    const rect = this.maskCanvas.getBoundingClientRect();
    return rect.width ? this.width / rect.width : 1;
  }

  // Objects' masks, the selected one on top, then the hover preview ({rle, color}); or, while
  // picking, segment-everything's masks. The other objects' layer is cached: a click repaints
  // only the selected object's mask.
  render(annotations, found = null, preview = null) {
    const ctx = this.maskCanvas.getContext("2d");
    const image = ctx.createImageData(this.width, this.height);
    const selected = found ? null : annotations.selected();
    if (found) {
      const order = [...found.keys()].sort((a, b) => found[b].area - found[a].area);
      for (const k of order) {
        paint(image.data, maskOf(found[k].segmentation), PALETTE[k % PALETTE.length], FOUND_ALPHA);
      }
    } else {
      image.data.set(this.othersLayer(annotations.objects.filter((o) => o !== selected)));
      const mask = maskOfObject(selected);
      if (mask) paint(image.data, mask, selected.color, SELECTED_ALPHA);
      if (preview) paint(image.data, maskOf(preview.rle), preview.color || PREVIEW_COLOR, PREVIEW_ALPHA);
    }
    ctx.putImageData(image, 0, 0);
    this.drawPrompts(selected);
  }

  othersLayer(objects) {
    const key = JSON.stringify([this.width, this.height, objects.map((o) => [o.id, o.rev, o.pending, o.chosen, o.color])]);
    if (this.cachedKey !== key) {
      this.cached = new Uint8ClampedArray(this.width * this.height * 4);
      for (const object of objects) {
        const mask = maskOfObject(object);
        if (mask) paint(this.cached, mask, object.color, MASK_ALPHA);
      }
      this.cachedKey = key;
    }
    return this.cached;
  }

  // The selected object's points (green foreground, red background) and box; a box being
  // dragged is drawn too.
  drawPrompts(object, dragBox = null) {
    this.svg.replaceChildren();
    const ratio = this.pixelRatio;
    const add = (tag, attrs) => {
      const node = document.createElementNS(SVG, tag);
      for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
      this.svg.appendChild(node);
    };
    const boxes = [];
    if (object && object.box) boxes.push(object.box);
    if (dragBox) boxes.push(dragBox);
    for (const [x0, y0, x1, y1] of boxes) {
      add("rect", {
        x: x0, y: y0, width: x1 - x0, height: y1 - y0, class: "box", "stroke-width": 2 * ratio,
      });
    }
    if (!object) return;
    object.points.forEach(([x, y], i) => {
      add("circle", {
        cx: x, cy: y, r: 5 * ratio, "stroke-width": 1.5 * ratio,
        class: object.labels[i] === 1 ? "point foreground" : "point background",
      });
    });
  }
}

function paint(data, mask, [r, g, b], alpha) {
  for (let i = 0; i < mask.length; i += 1) {
    if (mask[i]) {
      const j = i * 4;
      data[j] = r;
      data[j + 1] = g;
      data[j + 2] = b;
      data[j + 3] = alpha;
    }
  }
}
