#!/usr/bin/env node
// sam2_segment from Node.js 18+ with no npm packages: fetch + the KServe v2 binary extension.
//
//     node client_examples/segment_node.mjs IMAGE X Y [--url http://127.0.0.1:8000] [--out mask.png]
//
// The request body is a JSON header followed by the image file's raw bytes (its length in the
// Inference-Header-Content-Length header, the byte count in the image input's
// "binary_data_size"). The outputs come back binary too: a JSON header, then each output's
// bytes in header order (FP32 little-endian; BYTES as 4-byte little-endian length + data per
// element). With output_format "png" each mask is a PNG file; the best one (highest predicted
// IoU) is written to --out and the scores are printed.

import { createHash } from "node:crypto";
import { readFile, writeFile } from "node:fs/promises";
import { parseArgs } from "node:util";

const { values: options, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    url: { type: "string", default: "http://127.0.0.1:8000" },
    out: { type: "string", default: "mask.png" },
  },
});
if (positionals.length !== 3) {
  console.error("usage: node segment_node.mjs IMAGE X Y [--url URL] [--out mask.png]");
  process.exit(2);
}
const [imagePath, x, y] = [positionals[0], Number(positionals[1]), Number(positionals[2])];

const image = await readFile(imagePath); // the encoded file's bytes, not decoded pixels
const header = {
  inputs: [
    {
      name: "image",
      datatype: "UINT8",
      shape: [image.length],
      parameters: { binary_data_size: image.length },
    },
    { name: "point_coords", datatype: "FP32", shape: [1, 2], data: [x, y] }, // original pixels
    { name: "point_labels", datatype: "INT32", shape: [1], data: [1] }, // 1 fg, 0 bg
    { name: "multimask_output", datatype: "BOOL", shape: [1], data: [true] },
    { name: "output_format", datatype: "BYTES", shape: [1], data: ["png"] },
  ],
  outputs: [
    { name: "iou_scores", parameters: { binary_data: true } },
    { name: "encoded_masks", parameters: { binary_data: true } },
  ],
};
const headerBytes = Buffer.from(JSON.stringify(header), "utf8");

const endpoint = `${options.url}/v2/models/sam2_segment/infer`;
const reply = await fetch(endpoint, {
  method: "POST",
  headers: {
    "Content-Type": "application/octet-stream",
    "Inference-Header-Content-Length": String(headerBytes.length),
    // sha256 of the image file: behind several replicas, one image's requests reach one replica
    "sam2-image-id": createHash("sha256").update(image).digest("hex"),
  },
  body: Buffer.concat([headerBytes, image]),
}).catch((error) => {
  console.error(`cannot reach ${endpoint}: ${error.cause?.message ?? error.message}`);
  process.exit(1);
});
const body = Buffer.from(await reply.arrayBuffer());
if (!reply.ok) {
  console.error(`HTTP ${reply.status}: ${body.toString("utf8")}`);
  process.exit(1);
}

// Split the response: JSON header, then the outputs' binary data in header order.
const jsonLength = Number(reply.headers.get("inference-header-content-length") ?? body.length);
const response = JSON.parse(body.subarray(0, jsonLength).toString("utf8"));
const outputs = {};
let offset = jsonLength;
for (const output of response.outputs) {
  const size = output.parameters?.binary_data_size;
  outputs[output.name] = size === undefined ? output.data : body.subarray(offset, offset + size);
  offset += size ?? 0;
}

const scoreBytes = outputs.iou_scores;
const scores = Array.from({ length: scoreBytes.length / 4 }, (_, k) =>
  scoreBytes.readFloatLE(4 * k),
);
const pngs = [];
for (let at = 0; at < outputs.encoded_masks.length; ) {
  const length = outputs.encoded_masks.readUInt32LE(at);
  pngs.push(outputs.encoded_masks.subarray(at + 4, at + 4 + length));
  at += 4 + length;
}
const best = scores.indexOf(Math.max(...scores));
await writeFile(options.out, pngs[best]);
console.log(`iou_scores ${JSON.stringify(scores)}`);
console.log(`best ${best} of ${pngs.length} masks -> ${options.out}`);
