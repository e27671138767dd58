import sharp from 'sharp';

/** The demo's test image: a plain red square, as a PNG (what the colour classifier must call red). */
export async function redSquarePng(size = 64): Promise<Buffer> {
  return sharp({ create: { width: size, height: size, channels: 3, background: { r: 220, g: 30, b: 30 } } })
    .png()
    .toBuffer();
}
