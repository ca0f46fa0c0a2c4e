import { mkdirSync, rmSync } from 'node:fs';
import { createServer, type Socket } from 'node:net';
import { inflateSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { encodePng } from './png';
import { captureScreen, displaySocket, getImageRequest, parseSetupReply, replyLength, setupReplyLength, setupRequest, zpixmapToRgb, type PixelFormat } from './xcapture';

/** A setup reply as an X server sends it: one pixmap format per depth given, one screen whose root visual has `masks`. */
function setupReply(opts: { width: number; height: number; depth: number; bpp: number; masks: [number, number, number]; bigEndian?: boolean }): Buffer {
  const vendor = Buffer.from('Cove test');
  const vendorPadded = Math.ceil(vendor.length / 4) * 4;
  const formats = [
    [1, 1, 32],
    [opts.depth, opts.bpp, 32],
  ];
  const body = Buffer.alloc(32 + vendorPadded + formats.length * 8 + 40 + 8 + 2 * 24);
  body.writeUInt16LE(vendor.length, 16); // offsets here are 8 less than in the whole reply
  body[20] = 1; // screens
  body[21] = formats.length;
  body[22] = opts.bigEndian ? 1 : 0;
  vendor.copy(body, 32);
  let at = 32 + vendorPadded;
  for (const [depth, bpp, pad] of formats) {
    body[at] = depth;
    body[at + 1] = bpp;
    body[at + 2] = pad;
    at += 8;
  }
  body.writeUInt32LE(0x1e2, at); // root window
  body.writeUInt16LE(opts.width, at + 20);
  body.writeUInt16LE(opts.height, at + 22);
  body.writeUInt32LE(0x21, at + 32); // root visual
  body[at + 38] = opts.depth;
  body[at + 39] = 1; // one allowed depth
  at += 40;
  body[at] = opts.depth;
  body.writeUInt16LE(2, at + 2); // two visuals: another one first, then the root's
  at += 8;
  body.writeUInt32LE(0x99, at);
  body.writeUInt32LE(0xf, at + 8);
  at += 24;
  body.writeUInt32LE(0x21, at);
  body.writeUInt32LE(opts.masks[0], at + 8);
  body.writeUInt32LE(opts.masks[1], at + 12);
  body.writeUInt32LE(opts.masks[2], at + 16);
  const head = Buffer.alloc(8);
  head[0] = 1;
  head.writeUInt16LE(11, 2);
  head.writeUInt16LE(body.length / 4, 6);
  return Buffer.concat([head, body]);
}

/** Decodes the PNGs encodePng writes (8-bit RGB, any filter per row is Up or None): the pixels, after checking every CRC. */
function decodePng(png: Buffer): { width: number; height: number; rgb: Buffer } {
  expect(png.subarray(0, 8).toString('hex')).toBe('89504e470d0a1a0a');
  let at = 8;
  let width = 0;
  let height = 0;
  const idat: Buffer[] = [];
  const types: string[] = [];
  while (at < png.length) {
    const length = png.readUInt32BE(at);
    const type = png.toString('latin1', at + 4, at + 8);
    const data = png.subarray(at + 8, at + 8 + length);
    types.push(type);
    const { crc32 } = process.getBuiltinModule('node:zlib');
    expect(png.readUInt32BE(at + 8 + length)).toBe(crc32(png.subarray(at + 4, at + 8 + length)));
    if (type === 'IHDR') {
      width = data.readUInt32BE(0);
      height = data.readUInt32BE(4);
      expect([...data.subarray(8)]).toEqual([8, 2, 0, 0, 0]);
    }
    if (type === 'IDAT') idat.push(data);
    at += 12 + length;
  }
  expect(types).toEqual(['IHDR', 'IDAT', 'IEND']);
  const raw = inflateSync(Buffer.concat(idat));
  const row = width * 3;
  const rgb = Buffer.alloc(width * height * 3);
  for (let y = 0; y < height; y++) {
    const filter = raw[y * (row + 1)];
    for (let i = 0; i < row; i++) {
      const v = raw[y * (row + 1) + 1 + i];
      rgb[y * row + i] = filter === 2 && y > 0 ? (v + rgb[(y - 1) * row + i]) & 0xff : v;
    }
  }
  return { width, height, rgb };
}

describe('X11 capture: protocol messages', () => {
  it('asks for a little-endian connection to protocol 11.0 without authorization', () => {
    expect([...setupRequest()]).toEqual([0x6c, 0, 11, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
  });

  it('reads the root window, size and pixel layout of the first screen', () => {
    const reply = setupReply({ width: 1920, height: 1080, depth: 24, bpp: 32, masks: [0xff0000, 0xff00, 0xff] });
    expect(setupReplyLength(reply.subarray(0, 7))).toBeUndefined();
    expect(setupReplyLength(reply)).toBe(reply.length);
    expect(parseSetupReply(reply)).toEqual({
      root: 0x1e2,
      width: 1920,
      height: 1080,
      depth: 24,
      format: { bytesPerPixel: 4, scanlinePad: 4, bigEndian: false, redMask: 0xff0000, greenMask: 0xff00, blueMask: 0xff },
    });
  });

  it('says why the server refused', () => {
    const refused = Buffer.concat([Buffer.from([0, 13, 11, 0, 0, 0, 4, 0]), Buffer.from('No protocol\0\0\0\0\0')]);
    expect(() => parseSetupReply(refused)).toThrow(/refused the connection: No protocol/);
  });

  it('builds GetImage requests and sizes replies and errors', () => {
    expect([...getImageRequest(0x1e2, 10, 20, 300, 200)]).toEqual([73, 2, 5, 0, 0xe2, 0x01, 0, 0, 10, 0, 20, 0, 0x2c, 0x01, 200, 0, 0xff, 0xff, 0xff, 0xff]);
    const reply = Buffer.alloc(32);
    reply[0] = 1;
    reply.writeUInt32LE(600, 4);
    expect(replyLength(reply)).toBe(32 + 2400);
    expect(replyLength(reply.subarray(0, 31))).toBeUndefined();
    const error = Buffer.alloc(32);
    error.writeUInt32LE(999, 4);
    expect(replyLength(error)).toBe(32);
  });

  it('maps display names to their sockets and refuses remote ones', () => {
    expect(displaySocket(':0')).toBe('/tmp/.X11-unix/X0');
    expect(displaySocket(':12.0')).toBe('/tmp/.X11-unix/X12');
    expect(displaySocket('unix:3')).toBe('/tmp/.X11-unix/X3');
    expect(() => displaySocket('remote:0')).toThrow(/not a local X display/);
  });
});

describe('X11 capture: pixels', () => {
  const bgrx: PixelFormat = { bytesPerPixel: 4, scanlinePad: 4, bigEndian: false, redMask: 0xff0000, greenMask: 0xff00, blueMask: 0xff };

  it('packs 32-bit BGRX pixels as RGB', () => {
    const data = Buffer.from([3, 2, 1, 0, 30, 20, 10, 0, 0xff, 0x80, 0x00, 0]);
    const out = Buffer.alloc(6 + 6);
    zpixmapToRgb(data, 1, 3, bgrx, out, 3);
    expect([...out]).toEqual([0, 0, 0, 1, 2, 3, 10, 20, 30, 0x00, 0x80, 0xff]);
  });

  it('packs 16-bit RGB565 pixels, scanlines padded to 4 bytes, scaling each channel to 0-255', () => {
    const rgb565: PixelFormat = { bytesPerPixel: 2, scanlinePad: 4, bigEndian: false, redMask: 0xf800, greenMask: 0x07e0, blueMask: 0x001f };
    // One pixel per row, each row padded with two bytes: white, pure red, pure green, pure blue.
    const data = Buffer.from([0xff, 0xff, 9, 9, 0x00, 0xf8, 9, 9, 0xe0, 0x07, 9, 9, 0x1f, 0x00, 9, 9]);
    const out = Buffer.alloc(12);
    zpixmapToRgb(data, 1, 4, rgb565, out, 0);
    expect([...out]).toEqual([255, 255, 255, 255, 0, 0, 0, 255, 0, 0, 0, 255]);
  });

  it('reads big-endian pixels', () => {
    const out = Buffer.alloc(3);
    zpixmapToRgb(Buffer.from([0, 1, 2, 3]), 1, 1, { ...bgrx, bigEndian: true }, out, 0);
    expect([...out]).toEqual([1, 2, 3]);
  });
});

describe('PNG encoding', () => {
  it('writes a PNG whose pixels are exactly the image', async () => {
    const width = 37;
    const height = 23;
    const rgb = Buffer.alloc(width * height * 3);
    for (let i = 0; i < rgb.length; i++) rgb[i] = (i * 7919) % 251;
    const png = await encodePng({ width, height, rgb });
    expect(decodePng(png)).toEqual({ width, height, rgb });
  });

  it('compresses the flat areas of a screen to almost nothing', async () => {
    const width = 1920;
    const height = 1080;
    const rgb = Buffer.alloc(width * height * 3, 0x40);
    const png = await encodePng({ width, height, rgb });
    expect(png.length).toBeLessThan(20_000);
    expect(decodePng(png).rgb.equals(rgb)).toBe(true);
  });
});

describe('captureScreen against a scripted X server', () => {
  /**
   * An X server on display :N's socket that answers the setup with a 4x3 BGRX screen and each GetImage with the rows
   * asked for (pixel value: row * 16 + column), or with `short` bytes fewer than it should.
   */
  async function withServer(short: number, run: (display: string) => Promise<void>): Promise<void> {
    const n = 9000 + (process.pid % 900);
    mkdirSync('/tmp/.X11-unix', { recursive: true });
    const file = `/tmp/.X11-unix/X${n}`;
    rmSync(file, { force: true });
    const server = createServer((socket: Socket) => {
      let setup = false;
      let pending = Buffer.alloc(0);
      socket.on('data', (d: Buffer) => {
        pending = Buffer.concat([pending, d]);
        if (!setup && pending.length >= 12) {
          setup = true;
          pending = pending.subarray(12);
          socket.write(setupReply({ width: 4, height: 3, depth: 24, bpp: 32, masks: [0xff0000, 0xff00, 0xff] }));
        }
        while (setup && pending.length >= 20) {
          const y = pending.readInt16LE(10);
          const rows = pending.readUInt16LE(14);
          pending = pending.subarray(20);
          const data = Buffer.alloc(Math.max(0, rows * 16 - short));
          for (let i = 0; i + 4 <= data.length; i += 4) data[i] = (y + Math.floor(i / 16)) * 16 + (i / 4) % 4;
          const head = Buffer.alloc(32);
          head[0] = 1;
          head.writeUInt32LE(Math.ceil(data.length / 4), 4);
          socket.write(Buffer.concat([head, data]));
        }
      });
    });
    await new Promise<void>((resolve) => server.listen(file, resolve));
    try {
      await run(`:${n}`);
    } finally {
      server.close();
      rmSync(file, { force: true });
    }
  }

  it('reads the whole screen and a region as RGB', async () => {
    await withServer(0, async (display) => {
      const whole = await captureScreen(display);
      expect({ width: whole.width, height: whole.height }).toEqual({ width: 4, height: 3 });
      // Blue is the pixel's low byte: row * 16 + column.
      expect(Array.from({ length: 12 }, (_, i) => whole.rgb[i * 3 + 2])).toEqual([0, 1, 2, 3, 16, 17, 18, 19, 32, 33, 34, 35]);
      const region = await captureScreen(display, { x: 1, y: 1, width: 2, height: 2 });
      expect({ width: region.width, height: region.height, length: region.rgb.length }).toEqual({ width: 2, height: 2, length: 12 });
    });
  });

  it('refuses a reply with fewer pixels than asked for, with a 500 that says so', async () => {
    await withServer(8, async (display) => {
      const capture = captureScreen(display);
      await expect(capture).rejects.toThrow(/bytes of pixels for 3 rows/);
      await expect(capture).rejects.toMatchObject({ code: 'INTERNAL_ERROR' });
    });
  });

  it('says so when no X server listens on the display', async () => {
    const capture = captureScreen(':8999');
    await expect(capture).rejects.toThrow(/Could not capture the display :8999/);
    await expect(capture).rejects.toMatchObject({ code: 'INTERNAL_ERROR' });
  });
});
