import { crc32, deflate } from 'node:zlib';
import { promisify } from 'node:util';
import type { RgbImage } from './xcapture';

const deflateAsync = promisify(deflate);
const SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
/** PNG's "Up" filter: each byte minus the one above it, which turns the long runs of a screen into zeros. */
const FILTER_UP = 2;

function chunk(type: string, data: Buffer): Buffer {
  const out = Buffer.alloc(12 + data.length);
  out.writeUInt32BE(data.length, 0);
  out.write(type, 4, 'latin1');
  data.copy(out, 8);
  out.writeUInt32BE(crc32(out.subarray(4, 8 + data.length)), 8 + data.length);
  return out;
}

/**
 * An 8-bit RGB PNG of `image` (no colour-space chunks: the pixels are the display's own). The compression runs on
 * libuv's thread pool, not on the event loop.
 */
export async function encodePng(image: RgbImage, level = 6): Promise<Buffer> {
  const { width, height, rgb } = image;
  const row = width * 3;
  const filtered = Buffer.allocUnsafe(height * (row + 1));
  for (let y = 0; y < height; y++) {
    const out = y * (row + 1);
    const at = y * row;
    filtered[out] = FILTER_UP;
    if (y === 0) {
      rgb.copy(filtered, out + 1, 0, row);
      continue;
    }
    for (let i = 0; i < row; i++) filtered[out + 1 + i] = (rgb[at + i] - rgb[at - row + i]) & 0xff;
  }
  const header = Buffer.alloc(13);
  header.writeUInt32BE(width, 0);
  header.writeUInt32BE(height, 4);
  header[8] = 8; // bits per channel
  header[9] = 2; // truecolour (RGB)
  return Buffer.concat([SIGNATURE, chunk('IHDR', header), chunk('IDAT', await deflateAsync(filtered, { level })), chunk('IEND', Buffer.alloc(0))]);
}
