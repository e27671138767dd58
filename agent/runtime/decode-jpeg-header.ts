/**
 * The few header facts the decode mode needs (agent/runtime/decode.ts), read from the JPEG's
 * markers in TypeScript: the frame's stored width and height (SOFn) and the EXIF orientation
 * (APP1 "Exif", IFD0 tag 0x0112). sharp's metadata() reads the same in about 0.4 ms (a libvips
 * header load through the thread pool); this walk reads a few dozen bytes. Anything it does not
 * understand returns null, and the image is then decoded in full, where sharp judges it.
 */
export interface JpegHeader {
  width: number;
  height: number;
  /** 1-8 (1 when there is no EXIF orientation). */
  orientation: number;
}

export function readJpegHeader(b: Uint8Array): JpegHeader | null {
  if (b.length < 4 || b[0] !== 0xff || b[1] !== 0xd8) return null;
  let orientation = 1;
  let i = 2;
  while (i + 4 <= b.length) {
    if (b[i] !== 0xff) return null;
    const marker = b[i + 1]!;
    if (marker === 0xff) {
      i++; // fill byte
      continue;
    }
    // Standalone markers carry no length.
    if (marker === 0x01 || (marker >= 0xd0 && marker <= 0xd7)) {
      i += 2;
      continue;
    }
    if (marker === 0xd9 || marker === 0xda) return null; // no frame header before the scan
    const len = (b[i + 2]! << 8) | b[i + 3]!;
    if (len < 2 || i + 2 + len > b.length) return null;
    const seg = i + 4;
    if (marker === 0xe1 && orientation === 1) orientation = exifOrientation(b, seg, i + 2 + len);
    // SOF0-SOF15 except DHT (C4), JPG (C8) and DAC (CC).
    if (marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 && marker !== 0xcc) {
      if (len < 7) return null;
      const height = (b[seg + 1]! << 8) | b[seg + 2]!;
      const width = (b[seg + 3]! << 8) | b[seg + 4]!;
      return width > 0 && height > 0 ? { width, height, orientation } : null;
    }
    i += 2 + len;
  }
  return null;
}

/** The orientation tag of IFD0 in an APP1 segment [start, end), or 1. */
function exifOrientation(b: Uint8Array, start: number, end: number): number {
  // "Exif\0\0" then a TIFF header: "II" or "MM", 42, the offset of IFD0.
  if (end - start < 14 || b[start] !== 0x45 || b[start + 1] !== 0x78 || b[start + 2] !== 0x69 || b[start + 3] !== 0x66)
    return 1;
  const t = start + 6;
  const little = b[t] === 0x49 && b[t + 1] === 0x49;
  if (!little && !(b[t] === 0x4d && b[t + 1] === 0x4d)) return 1;
  const u16 = (o: number) => (little ? b[o]! | (b[o + 1]! << 8) : (b[o]! << 8) | b[o + 1]!);
  const u32 = (o: number) => (little ? u16(o) + u16(o + 2) * 65536 : u16(o) * 65536 + u16(o + 2));
  const ifd = t + u32(t + 4);
  if (ifd + 2 > end) return 1;
  const n = u16(ifd);
  for (let k = 0; k < n; k++) {
    const e = ifd + 2 + k * 12;
    if (e + 12 > end) return 1;
    if (u16(e) === 0x0112) {
      const v = u16(e + 8);
      return v >= 1 && v <= 8 ? v : 1;
    }
  }
  return 1;
}

/**
 * A PNG's size from its IHDR (which the format requires to be the first chunk), or null. Beside
 * the JPEG walk because the admission and the native path read both the same way: a few bytes,
 * no sharp.
 */
export function readPngHeader(b: Uint8Array): { width: number; height: number } | null {
  const sig = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];
  if (b.length < 33 || sig.some((v, i) => b[i] !== v)) return null;
  if (b[12] !== 0x49 || b[13] !== 0x48 || b[14] !== 0x44 || b[15] !== 0x52) return null; // "IHDR"
  const u32 = (o: number) => b[o]! * 0x1000000 + ((b[o + 1]! << 16) | (b[o + 2]! << 8) | b[o + 3]!);
  const width = u32(16);
  const height = u32(20);
  return width > 0 && height > 0 ? { width, height } : null;
}
