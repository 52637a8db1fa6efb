// What a person takes away, built in the browser from the masks on the page: the cut-out as an
// RGBA PNG (alpha 255 inside the mask, 0 outside; full size or cropped to the mask's box), the
// masks as PNGs (white inside), and one COCO JSON (RLE as the server sent it, with the prompts).

import { chosenCandidate, maskOfObject } from "./objects.js";

export function download(blob, name) {
  const link = document.createElement("a");
  link.href = URL.createObjectURL(blob);
  link.download = name;
  document.body.appendChild(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(link.href), 10_000);
}

const toPng = (canvas) => new Promise((resolve) => canvas.toBlob(resolve, "image/png"));

function union(objects, length) {
  const mask = new Uint8Array(length);
  for (const object of objects) {
    const m = maskOfObject(object);
    if (m) for (let i = 0; i < length; i += 1) mask[i] |= m[i];
  }
  return mask;
}

// [x0, y0, x1, y1) of the mask's pixels, or the whole frame for an empty mask.
function bounds(mask, width, height) {
  let x0 = width, y0 = height, x1 = -1, y1 = -1;
  for (let y = 0; y < height; y += 1) {
    for (let x = 0; x < width; x += 1) {
      if (mask[y * width + x]) {
        if (x < x0) x0 = x;
        if (x > x1) x1 = x;
        if (y < y0) y0 = y;
        if (y > y1) y1 = y;
      }
    }
  }
  return x1 < 0 ? [0, 0, width, height] : [x0, y0, x1 + 1, y1 + 1];
}

export async function cutout(imageCanvas, objects, crop) {
  const { width, height } = imageCanvas;
  const mask = union(objects, width * height);
  const pixels = imageCanvas.getContext("2d").getImageData(0, 0, width, height);
  for (let i = 0; i < mask.length; i += 1) pixels.data[i * 4 + 3] = mask[i] ? 255 : 0;
  const [x0, y0, x1, y1] = crop ? bounds(mask, width, height) : [0, 0, width, height];
  const canvas = document.createElement("canvas");
  canvas.width = x1 - x0;
  canvas.height = y1 - y0;
  canvas.getContext("2d").putImageData(pixels, -x0, -y0, x0, y0, x1 - x0, y1 - y0);
  return toPng(canvas);
}

export async function maskPng(object, width, height) {
  const mask = maskOfObject(object);
  const canvas = document.createElement("canvas");
  canvas.width = width;
  canvas.height = height;
  const ctx = canvas.getContext("2d");
  const pixels = ctx.createImageData(width, height);
  for (let i = 0; i < width * height; i += 1) {
    const v = mask && mask[i] ? 255 : 0;
    pixels.data.set([v, v, v, 255], i * 4);
  }
  ctx.putImageData(pixels, 0, 0);
  return toPng(canvas);
}

export function coco(image, objects) {
  const annotations = objects
    .filter((o) => chosenCandidate(o))
    .map((o, i) => {
      const { rle, score } = chosenCandidate(o);
      return {
        id: i + 1,
        image_id: 1,
        category_id: 1,
        name: o.name,
        segmentation: { size: rle.size, counts: rle.counts },
        area: rle.area,
        bbox: rle.bbox,
        iscrowd: 0,
        score,
        prompts: { points: o.points, labels: o.labels, box: o.box, source: o.source },
      };
    });
  const document_ = {
    info: { description: "sam2-triton ui", date_created: new Date().toISOString() },
    images: [{ id: 1, file_name: image.name, width: image.width, height: image.height }],
    categories: [{ id: 1, name: "object" }],
    annotations,
  };
  return new Blob([JSON.stringify(document_, null, 1)], { type: "application/json" });
}
