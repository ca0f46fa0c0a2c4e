import { createConnection, type Socket } from 'node:net';
import { CoveError } from '../../../lib/errors';

/**
 * Screen capture over the X11 protocol itself: one connection to the display's socket, the connection setup, and
 * GetImage requests of the root window. `import` (ImageMagick) took 300-400 ms for a full HD display, most of it its
 * own start and its pixel-by-pixel reading; this takes a few milliseconds for the same pixels.
 *
 * Xvfb runs without access control (`-nolisten tcp`, no `-auth`): the connection sends no authorization.
 */

export interface PixelFormat {
  /** Bytes per pixel in ZPixmap images of the root depth. */
  bytesPerPixel: number;
  /** Each scanline is padded to a multiple of this many bytes. */
  scanlinePad: number;
  bigEndian: boolean;
  redMask: number;
  greenMask: number;
  blueMask: number;
}

interface XScreen {
  root: number;
  width: number;
  height: number;
  depth: number;
  format: PixelFormat;
}

/** An image as packed 8-bit RGB, row after row. */
export interface RgbImage {
  width: number;
  height: number;
  rgb: Buffer;
}

const SETUP_TIMEOUT_MS = 5000;
/** GetImage replies are asked for in strips of rows of at most this many bytes. */
const STRIP_BYTES = 4 * 1024 * 1024;
const GET_IMAGE = 73;
const Z_PIXMAP = 2;

/** The connection setup request: little-endian, protocol 11.0, no authorization. */
export function setupRequest(): Buffer {
  const b = Buffer.alloc(12);
  b[0] = 0x6c; // 'l': least significant byte first
  b.writeUInt16LE(11, 2);
  return b;
}

/** Bytes of the setup reply once its 8-byte head is in, or undefined before. */
export function setupReplyLength(head: Buffer): number | undefined {
  return head.length < 8 ? undefined : 8 + head.readUInt16LE(6) * 4;
}

/** The first screen of a setup reply, with the pixel layout of its root visual. */
export function parseSetupReply(reply: Buffer): XScreen {
  if (reply[0] !== 1) {
    const reason = reply.toString('latin1', 8, 8 + reply[1]).trim();
    throw new Error(`the X server refused the connection${reason ? `: ${reason}` : ''}`);
  }
  const vendorLength = reply.readUInt16LE(24);
  const screens = reply[28];
  const formats = reply[29];
  const bigEndian = reply[30] === 1;
  if (screens < 1) throw new Error('the X server has no screen');
  let at = 40 + Math.ceil(vendorLength / 4) * 4;
  const pixmapFormats = new Map<number, { bpp: number; pad: number }>();
  for (let i = 0; i < formats; i++, at += 8) pixmapFormats.set(reply[at], { bpp: reply[at + 1], pad: reply[at + 2] });
  const root = reply.readUInt32LE(at);
  const width = reply.readUInt16LE(at + 20);
  const height = reply.readUInt16LE(at + 22);
  const rootVisual = reply.readUInt32LE(at + 32);
  const depth = reply[at + 38];
  const depths = reply[at + 39];
  at += 40;
  for (let d = 0; d < depths; d++) {
    const visuals = reply.readUInt16LE(at + 2);
    at += 8;
    for (let v = 0; v < visuals; v++, at += 24) {
      if (reply.readUInt32LE(at) !== rootVisual) continue;
      const format = pixmapFormats.get(depth);
      if (!format || format.bpp % 8 !== 0) throw new Error(`the X server's root depth ${depth} has no byte-aligned pixel format`);
      return {
        root,
        width,
        height,
        depth,
        format: {
          bytesPerPixel: format.bpp / 8,
          scanlinePad: format.pad / 8,
          bigEndian,
          redMask: reply.readUInt32LE(at + 8),
          greenMask: reply.readUInt32LE(at + 12),
          blueMask: reply.readUInt32LE(at + 16),
        },
      };
    }
  }
  throw new Error('the X server did not describe its root visual');
}

/** A GetImage request (ZPixmap, all planes) of a rectangle of `drawable`. */
export function getImageRequest(drawable: number, x: number, y: number, width: number, height: number): Buffer {
  const b = Buffer.alloc(20);
  b[0] = GET_IMAGE;
  b[1] = Z_PIXMAP;
  b.writeUInt16LE(5, 2);
  b.writeUInt32LE(drawable, 4);
  b.writeInt16LE(x, 8);
  b.writeInt16LE(y, 10);
  b.writeUInt16LE(width, 12);
  b.writeUInt16LE(height, 14);
  b.writeUInt32LE(0xffffffff, 16);
  return b;
}

/** Bytes of a reply or error once its 32-byte head is in, or undefined before. */
export function replyLength(head: Buffer): number | undefined {
  if (head.length < 32) return undefined;
  return head[0] === 0 ? 32 : 32 + head.readUInt32LE(4) * 4;
}

/** The shift that brings a colour mask's value down to bit 0, and the scale to 0-255. */
function channel(mask: number): { shift: number; max: number } {
  let shift = 0;
  while (shift < 32 && ((mask >>> shift) & 1) === 0) shift++;
  return { shift, max: mask >>> shift };
}

/**
 * Packs ZPixmap pixel data (`rows` scanlines of `width` pixels) into 8-bit RGB at `out[offset…]`.
 */
export function zpixmapToRgb(data: Buffer, width: number, rows: number, format: PixelFormat, out: Buffer, offset: number): void {
  const bpp = format.bytesPerPixel;
  const stride = Math.ceil((width * bpp) / format.scanlinePad) * format.scanlinePad;
  const r = channel(format.redMask);
  const g = channel(format.greenMask);
  const b = channel(format.blueMask);
  // The common layout (24 bits of colour in 32-bit little-endian pixels, red in the high byte) without arithmetic.
  const bgrx = bpp === 4 && !format.bigEndian && r.shift === 16 && g.shift === 8 && b.shift === 0 && r.max === 255 && g.max === 255 && b.max === 255;
  let o = offset;
  for (let y = 0; y < rows; y++) {
    let p = y * stride;
    if (bgrx) {
      for (let x = 0; x < width; x++, p += 4, o += 3) {
        out[o] = data[p + 2];
        out[o + 1] = data[p + 1];
        out[o + 2] = data[p];
      }
      continue;
    }
    for (let x = 0; x < width; x++, p += bpp, o += 3) {
      let pixel = 0;
      for (let i = 0; i < bpp; i++) pixel = format.bigEndian ? pixel * 256 + data[p + i] : pixel + data[p + i] * 2 ** (8 * i);
      out[o] = Math.round((((pixel >>> r.shift) & r.max) * 255) / r.max);
      out[o + 1] = Math.round((((pixel >>> g.shift) & g.max) * 255) / g.max);
      out[o + 2] = Math.round((((pixel >>> b.shift) & b.max) * 255) / b.max);
    }
  }
}

/** The socket of an X display name such as `:0` (local displays only). */
export function displaySocket(display: string): string {
  const m = /^(?:unix)?:(\d+)(?:\.\d+)?$/.exec(display);
  if (!m) throw new CoveError('INTERNAL_ERROR', `The display ${display} is not a local X display`);
  return `/tmp/.X11-unix/X${m[1]}`;
}

/** Reads whole messages (setup reply, then replies) off one X connection, one at a time, in order. */
class XConnection {
  private buffered: Buffer[] = [];
  private size = 0;
  private waiter: { need: (head: Buffer) => number | undefined; resolve: (b: Buffer) => void; reject: (e: Error) => void } | undefined;
  private failure: Error | undefined;

  constructor(private readonly socket: Socket) {
    socket.on('data', (d: Buffer) => {
      this.buffered.push(d);
      this.size += d.length;
      this.pump();
    });
    const fail = (err: Error) => {
      this.failure ??= err;
      this.waiter?.reject(this.failure);
      this.waiter = undefined;
    };
    socket.on('error', fail);
    socket.on('close', () => fail(new Error('the X server closed the connection')));
  }

  /** The next message, whose length `need` tells from its head (undefined: more head bytes first). */
  next(need: (head: Buffer) => number | undefined): Promise<Buffer> {
    if (this.failure) return Promise.reject(this.failure);
    return new Promise((resolve, reject) => {
      this.waiter = { need, resolve, reject };
      this.pump();
    });
  }

  private pump(): void {
    if (!this.waiter || this.size === 0) return;
    // Joined only when the head is split or the whole message is in: a reply of megabytes comes in many pieces.
    if (this.buffered[0].length < 32 && this.buffered.length > 1) this.buffered = [Buffer.concat(this.buffered)];
    const length = this.waiter.need(this.buffered[0]);
    if (length === undefined || this.size < length) return;
    if (this.buffered.length > 1) this.buffered = [Buffer.concat(this.buffered)];
    const all = this.buffered[0];
    const { resolve } = this.waiter;
    this.waiter = undefined;
    this.buffered = all.length > length ? [all.subarray(length)] : [];
    this.size = all.length - length;
    resolve(all.subarray(0, length));
  }
}

/**
 * The pixels of a rectangle of the display's root window (the whole screen when `region` is not given) as RGB.
 * Failures are 500s that say what the X server did.
 */
export async function captureScreen(display: string, region?: { x: number; y: number; width: number; height: number }): Promise<RgbImage> {
  const socket = createConnection(displaySocket(display));
  socket.setTimeout(SETUP_TIMEOUT_MS, () => socket.destroy(new Error(`no answer from the X server in ${SETUP_TIMEOUT_MS / 1000} s`)));
  try {
    const x = new XConnection(socket);
    socket.write(setupRequest());
    const screen = parseSetupReply(await x.next(setupReplyLength));
    const r = region ?? { x: 0, y: 0, width: screen.width, height: screen.height };
    const rgb = Buffer.allocUnsafe(r.width * r.height * 3);
    const stride = Math.ceil((r.width * screen.format.bytesPerPixel) / screen.format.scanlinePad) * screen.format.scanlinePad;
    const rowsPerStrip = Math.max(1, Math.floor(STRIP_BYTES / stride));
    for (let y = 0; y < r.height; y += rowsPerStrip) {
      const rows = Math.min(rowsPerStrip, r.height - y);
      socket.write(getImageRequest(screen.root, r.x, r.y + y, r.width, rows));
      const reply = await x.next(replyLength);
      if (reply[0] === 0) throw new Error(`the X server answered GetImage with error ${reply[1]}`);
      if (reply.length - 32 < stride * rows) throw new Error(`the X server sent ${reply.length - 32} bytes of pixels for ${rows} rows of ${stride}`);
      zpixmapToRgb(reply.subarray(32), r.width, rows, screen.format, rgb, y * r.width * 3);
    }
    return { width: r.width, height: r.height, rgb };
  } catch (err) {
    throw new CoveError('INTERNAL_ERROR', `Could not capture the display ${display}: ${(err as Error).message}`);
  } finally {
    socket.destroy();
  }
}
