// COCO RLE (what sam2_session's "rle" output and sam2_automatic's records hold) -> 0/1 masks.
// The compressed "counts" string is pycocotools' rleFrString format: run lengths, column-major,
// starting with a run of zeros, each a little-endian base-32 number of printable characters
// with a sign bit, delta-coded against the run two before.

export function countsFromString(s) {
  const counts = [];
  let p = 0;
  while (p < s.length) {
    let x = 0;
    let k = 0;
    let more = true;
    while (more) {
      const c = s.charCodeAt(p) - 48;
      x += (c & 0x1f) * 2 ** (5 * k);
      more = (c & 0x20) !== 0;
      p += 1;
      k += 1;
      if (!more && (c & 0x10)) x -= 2 ** (5 * k);
    }
    if (counts.length > 2) x += counts[counts.length - 2];
    counts.push(x);
  }
  return counts;
}

// {size: [h, w], counts: string} -> Uint8Array of h*w, row-major (1 inside the mask).
export function decodeRle(rle) {
  const [h, w] = rle.size;
  const mask = new Uint8Array(h * w);
  const counts = typeof rle.counts === "string" ? countsFromString(rle.counts) : rle.counts;
  let i = 0; // column-major index
  for (let r = 0; r < counts.length; r += 1) {
    const n = counts[r];
    if (r % 2 === 1) {
      let x = Math.floor(i / h);
      let y = i % h;
      for (let j = 0; j < n; j += 1) {
        mask[y * w + x] = 1;
        y += 1;
        if (y === h) {
          y = 0;
          x += 1;
        }
      }
    }
    i += n;
  }
  if (i !== h * w) throw new Error(`RLE covers ${i} pixels, not ${h}x${w}`);
  return mask;
}

// Decoded masks, keyed by their counts string: undo/redo and re-renders decode once. Bounded
// by bytes (a 12 MP mask is 12 MB), least recently used out first.
const CACHE_BYTES = 512 * 2 ** 20;
const cache = new Map();
let cachedBytes = 0;
export function maskOf(rle) {
  const key = `${rle.size}:${rle.counts}`;
  let mask = cache.get(key);
  if (mask) {
    cache.delete(key); // most recently used goes last
  } else {
    mask = decodeRle(rle);
    cachedBytes += mask.length;
  }
  cache.set(key, mask);
  while (cachedBytes > CACHE_BYTES && cache.size > 1) {
    const [oldest, old] = cache.entries().next().value;
    cache.delete(oldest);
    cachedBytes -= old.length;
  }
  return mask;
}
