// Where files come in: the Open and Folder… pickers, a drop on the workspace, a paste. A file
// goes to onFile(file, name) (an image or a video: the caller decides); a folder's JPEG frames
// go to onFrames(form, name) as one multipart form, ordered by name on the gateway.

const $ = (selector) => document.querySelector(selector);

export function acceptFiles({ onFile, onFrames, showError }) {
  const folder = (files, name) => {
    const frames = files.filter((f) => /\.jpe?g$/i.test(f.name));
    if (!frames.length) return showError(`${name}: the folder holds no .jpg frames`);
    const form = new FormData();
    for (const f of frames) form.append("frame", f, f.name);
    return onFrames(form, `${name}/`);
  };
  $("#open").addEventListener("click", () => $("#file").click());
  $("#open-folder").addEventListener("click", () => $("#folder").click());
  $("#file").addEventListener("change", (e) => {
    const file = e.target.files[0];
    if (file) onFile(file);
    e.target.value = "";
  });
  $("#folder").addEventListener("change", (e) => {
    const files = [...e.target.files];
    // the picker lists subfolders' files too; the frames are the folder's own, as on a drop
    const own = files.filter((f) => f.webkitRelativePath.split("/").length === 2);
    if (files.length) folder(own, files[0].webkitRelativePath.split("/")[0] || "folder");
    e.target.value = "";
  });
  const workspace = $("#workspace");
  workspace.addEventListener("dragover", (e) => e.preventDefault());
  workspace.addEventListener("drop", (e) => {
    e.preventDefault();
    const entry = e.dataTransfer.items?.[0]?.webkitGetAsEntry?.();
    if (entry?.isDirectory) {
      droppedFiles(entry).then((files) => folder(files, entry.name), (error) => showError(`${entry.name}: ${error.message}`));
      return;
    }
    const file = e.dataTransfer.files[0];
    if (file) onFile(file);
  });
  document.addEventListener("paste", (e) => {
    const file = [...e.clipboardData.files][0];
    if (file) onFile(file, file.name || "pasted image");
  });
}

// A dropped folder's files (a directory entry is read in batches until one comes back empty).
async function droppedFiles(entry) {
  const reader = entry.createReader();
  const entries = [];
  for (let batch; (batch = await new Promise((ok, fail) => reader.readEntries(ok, fail))).length; ) {
    entries.push(...batch);
  }
  return Promise.all(entries.filter((e) => e.isFile).map((e) => new Promise((ok, fail) => e.file(ok, fail))));
}
