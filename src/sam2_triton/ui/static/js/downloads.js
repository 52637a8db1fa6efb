// The download buttons: cut-out PNG, one mask PNG per object, COCO JSON (formats in exports.js).

import * as exporting from "./exports.js";

const $ = (selector) => document.querySelector(selector);

// Handlers over the page's state ({state, annotations, view, showError} from main.js).
export function downloads({ state, annotations, view, showError }) {
  const exported = () =>
    $("#export-scope").value === "all" ? annotations.objects : [annotations.selected()].filter(Boolean);
  const baseName = () => state.image.name.replace(/\.[^.]+$/, "") || "image";
  return {
    async cutout() {
      const objects = exported();
      if (!state.image || !objects.length) return showError("cut-out: no object selected");
      const crop = $("#crop").checked;
      const blob = await exporting.cutout(view.imageCanvas, objects, crop);
      exporting.download(blob, `${baseName()}-cutout${crop ? "-cropped" : ""}.png`);
    },
    async masks() {
      const objects = exported();
      if (!state.image || !objects.length) return showError("masks: no object selected");
      for (const object of objects) {
        const blob = await exporting.maskPng(object, state.image.width, state.image.height);
        exporting.download(blob, `${baseName()}-${object.name.replace(/[^\w.-]+/g, "_")}.png`);
      }
    },
    coco() {
      if (!state.image) return;
      exporting.download(exporting.coco(state.image, annotations.objects), `${baseName()}-coco.json`);
    },
  };
}
