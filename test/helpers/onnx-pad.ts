function varint(n: number): number[] {
  const out: number[] = [];
  while (n > 127) {
    out.push((n & 127) | 128);
    n = Math.floor(n / 128);
  }
  out.push(n);
  return out;
}

/**
 * Makes an ONNX model about `bytes` long without changing what it computes: one unknown
 * length-delimited field (number 1000) is appended, and protobuf readers (onnxruntime, OpenCV)
 * skip fields they do not know. `fill` is the padding byte, so versions of one model can differ
 * in bytes and sha256. Big models for download, resume and disk-full tests, generated not stored.
 */
export function padOnnx(model: Uint8Array, bytes: number, fill: number): Buffer {
  const pad = Buffer.alloc(Math.max(0, bytes - model.length - 10), fill & 0xff);
  return Buffer.concat([Buffer.from(model), Buffer.from([...varint((1000 << 3) | 2), ...varint(pad.length)]), pad]);
}
