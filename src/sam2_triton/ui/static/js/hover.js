// The hover preview (as Meta's SAM demo shows it): while the pointer rests on the image, the
// mask a click there would give, i.e. the target object's prompts plus a foreground point at
// the pointer. Requests wait for the pointer to rest; at most one is in flight, and a newer
// position aborts it (the gateway then cancels the server's work). A click where the pointer
// rested takes the preview's answer instead of asking the decoder again.

export const REST_MS = 80; // the pointer counts as resting after this long without moving

export class Hover {
  // request(body, signal) -> the gateway's answer; show() -> redraw with this.preview.
  constructor(request, show) {
    this.request = request;
    this.show = show;
    this.timer = null;
    this.pending = null; // {key, controller, promise} of the request in flight
    this.preview = null; // {key, x, y, candidates} of the last answer shown
    this.stats = { sent: 0, shown: 0, aborted: 0, adopted: 0, inflight: 0, maxInflight: 0 };
    this.movedAt = 0;
    this.restToShownMs = []; // from the last move to its preview drawn (benchmarks/ui_video.py)
  }

  // The pointer is at image pixel (x, y) over `base` ({key, points, labels, box}: the prompts
  // a click would add to).
  move(x, y, base) {
    const key = previewKey(x, y, base);
    this.movedAt = performance.now();
    if (this.preview && this.preview.key !== key) this.clear();
    if (this.pending && this.pending.key !== key) this.abort(); // moved on: its answer is stale
    clearTimeout(this.timer);
    if (this.pending?.key === key || this.preview?.key === key) return;
    this.timer = setTimeout(() => this.send(x, y, base, key), REST_MS);
  }

  // A button went down: no new request (one in flight stays, for the click to take).
  hold() {
    clearTimeout(this.timer);
  }

  // The pointer left the image or the image changed: nothing is previewed.
  leave() {
    clearTimeout(this.timer);
    this.abort();
    this.clear();
  }

  clear() {
    if (!this.preview) return;
    this.preview = null;
    this.show();
  }

  abort() {
    if (!this.pending) return;
    this.pending.controller.abort();
    this.pending = null;
  }

  send(x, y, base, key) {
    this.abort(); // superseded: at most one request in flight
    const controller = new AbortController();
    const body = {
      points: [...base.points, [x, y]],
      labels: [...base.labels, 1],
      box: base.box,
    };
    this.stats.sent += 1;
    this.stats.inflight += 1;
    this.stats.maxInflight = Math.max(this.stats.maxInflight, this.stats.inflight);
    const promise = this.request(body, controller.signal)
      .then((answer) => {
        if (this.pending?.controller !== controller) return null;
        this.pending = null;
        this.preview = { key, x, y, candidates: answer.candidates, answer };
        this.stats.shown += 1;
        this.show();
        this.restToShownMs.push(performance.now() - this.movedAt);
        return answer;
      })
      .catch((error) => {
        if (error.name === "AbortError") this.stats.aborted += 1;
        if (this.pending?.controller === controller) this.pending = null;
        return null; // a preview that fails is simply not shown; a click asks again
      })
      .finally(() => {
        this.stats.inflight -= 1;
      });
    this.pending = { key, controller, promise };
  }

  // The answer a click at (x, y) over `base` would get, when the preview asked exactly that
  // (awaited if still in flight); null otherwise.
  async take(x, y, base) {
    const key = previewKey(x, y, base);
    clearTimeout(this.timer);
    let answer = null;
    if (this.preview?.key === key) answer = this.preview.answer;
    else if (this.pending?.key === key) answer = await this.pending.promise;
    this.preview = null;
    if (answer) this.stats.adopted += 1;
    return answer;
  }
}

export function previewKey(x, y, base) {
  return JSON.stringify([x, y, base.key, base.points, base.labels, base.box]);
}
