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
export const job = (jobId) => call("GET", `/api/jobs/${jobId}`);
export const cancelJob = (jobId) => call("DELETE", `/api/jobs/${jobId}`);
export const samples = () => call("GET", "/api/samples");
