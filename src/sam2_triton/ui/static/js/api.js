// The gateway's JSON API (docs/ui.md). Errors carry the gateway's message, which names the
// problem ("image: 9000x9000 = 81000000 pixels exceeds the limit ...").

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

export async function call(method, url, { body, json, signal } = {}) {
  const init = { method, signal };
  if (json !== undefined) {
    init.body = JSON.stringify(json);
    init.headers = { "Content-Type": "application/json" };
  } else if (body !== undefined) {
    init.body = body;
  }
  let response;
  try {
    response = await fetch(url, init);
  } catch (error) {
    if (error.name === "AbortError") throw error;
    throw new ApiError(0, `the gateway is not answering (${error.message})`);
  }
  const text = await response.text();
  let payload = null;
  try {
    payload = JSON.parse(text);
  } catch {
    payload = null;
  }
  if (!response.ok) {
    throw new ApiError(response.status, (payload && payload.error) || `${response.status} ${response.statusText}`);
  }
  return payload;
}

export const openImage = (blob) => call("POST", "/api/images", { body: blob });
export const masks = (imageId, prompts, signal) =>
  call("POST", `/api/images/${imageId}/masks`, { json: prompts, signal });
export const startEverything = (imageId, params) =>
  call("POST", `/api/images/${imageId}/everything`, { json: params });
export const findAll = (imageId, question) =>
  call("POST", `/api/images/${imageId}/find`, { json: question });
export const job = (jobId) => call("GET", `/api/jobs/${jobId}`);
export const cancelJob = (jobId) => call("DELETE", `/api/jobs/${jobId}`);
export const samples = () => call("GET", "/api/samples");
export const openVideo = (blob) => call("POST", "/api/videos", { body: blob });
export const videoPrompt = (videoId, prompt) =>
  call("POST", `/api/videos/${videoId}/prompts`, { json: prompt });
export const removeVideoObject = (videoId, objId) =>
  call("DELETE", `/api/videos/${videoId}/objects/${objId}`);
export const closeVideo = (videoId) => call("DELETE", `/api/videos/${videoId}`);

// A tracking pass's frame records as the server sends them (server-sent events over fetch):
// onRecord(record) for each; resolves when the pass is done; aborted by `signal`.
export async function track(videoId, body, onRecord, signal) {
  const response = await fetch(`/api/videos/${videoId}/track`, {
    method: "POST", body: JSON.stringify(body), headers: { "Content-Type": "application/json" }, signal,
  });
  if (!response.ok) {
    const payload = await response.json().catch(() => null);
    throw new ApiError(response.status, (payload && payload.error) || `${response.status} ${response.statusText}`);
  }
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) throw new ApiError(0, "the tracking stream ended early");
    buffer += value;
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const line = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      if (!line.startsWith("data: ")) continue;
      const event = JSON.parse(line.slice(6));
      if (event.done) return;
      if (event.error) throw new ApiError(502, event.error);
      onRecord(event);
    }
  }
}
