import { describe, expect, it } from 'vitest';
import { createCountClamp } from './clamp';

const SIZE = { cols: 80, rows: 24 };
const bytes = (s: string) => Buffer.from(s, 'latin1');

/** Runs the pieces through one clamp and returns everything it let out, as latin1 text. */
function clamp(pieces: string[], size = () => SIZE): string {
  const c = createCountClamp(size);
  return Buffer.concat(pieces.map((p) => Buffer.from(c(bytes(p))))).toString('latin1');
}

describe('createCountClamp', () => {
  it('returns output without escapes as the very same chunk', () => {
    const c = createCountClamp(() => SIZE);
    const chunk = bytes('plain text\r\n');
    expect(c(chunk)).toBe(chunk);
  });

  it('cuts counts above the screen to its size: repeats to cells, lines to rows, tabs to columns', () => {
    expect(clamp(['x\x1b[2000000000b'])).toBe(`x\x1b[${80 * 24}b`);
    expect(clamp(['\x1b[100S\x1b[100T\x1b[100L\x1b[100M'])).toBe('\x1b[24S\x1b[24T\x1b[24L\x1b[24M');
    expect(clamp(['\x1b[1000I\x1b[1000Z'])).toBe('\x1b[80I\x1b[80Z');
    // A count past what a number holds saturates, and is cut all the same.
    expect(clamp([`\x1b[${'9'.repeat(30)}b`])).toBe(`\x1b[${80 * 24}b`);
  });

  it('leaves counts within the screen, default counts and other sequences as they are', () => {
    for (const s of ['\x1b[24S', '\x1b[5b', '\x1b[b', '\x1b[0L', '\x1b[9999H', '\x1b[9999;9999H', '\x1b[38;5;200m', '\x1b]0;title\x07', '\x1bM']) {
      expect(clamp([`a${s}b`]), JSON.stringify(s)).toBe(`a${s}b`);
    }
  });

  it('leaves private and intermediate forms alone (they are other sequences)', () => {
    expect(clamp(['\x1b[?9999S'])).toBe('\x1b[?9999S');
    expect(clamp(['\x1b[9999 S'])).toBe('\x1b[9999 S');
  });

  it('reads only the first parameter of the sequences it cuts', () => {
    expect(clamp(['\x1b[9999;1b'])).toBe(`\x1b[${80 * 24}b`);
    expect(clamp(['\x1b[1;9999b'])).toBe('\x1b[1;9999b');
  });

  it('cuts the 8-bit form (C1 CSI in UTF-8) too', () => {
    expect(clamp(['\xc2\x9b500L'])).toBe('\xc2\x9b24L');
    // A UTF-8 character that begins with 0xC2 but is not CSI passes.
    expect(clamp(['\xc2\xa9 2024'])).toBe('\xc2\xa9 2024');
  });

  it('gives the same output however the stream is cut into chunks', () => {
    const text = 'ab\x1b[2000b cd \x1b[5S\xc2\x9b99999Z\x1b[31mred\x1b[0m\x1b[300M end';
    const whole = clamp([text]);
    expect(whole).toBe(`ab\x1b[${80 * 24}b cd \x1b[5S\xc2\x9b80Z\x1b[31mred\x1b[0m\x1b[24M end`);
    for (let i = 1; i < text.length; i++) expect(clamp([text.slice(0, i), text.slice(i)]), `cut at ${i}`).toBe(whole);
    expect(clamp([...text])).toBe(whole);
  });

  it('reads the size when a sequence ends', () => {
    let size = { cols: 10, rows: 5 };
    const c = createCountClamp(() => size);
    expect(Buffer.from(c(bytes('\x1b[100'))).toString('latin1')).toBe('');
    size = { cols: 20, rows: 7 };
    expect(Buffer.from(c(bytes('S'))).toString('latin1')).toBe('\x1b[7S');
  });

  it('passes an abandoned sequence (CAN, SUB, a new ESC) as it is', () => {
    expect(clamp(['\x1b[9999\x18b'])).toBe('\x1b[9999\x18b');
    expect(clamp(['\x1b[9999\x1b[9999L'])).toBe('\x1b[9999\x1b[24L');
  });

  it('drops a sequence longer than 4 KiB that spans chunks, and resumes after its final byte', () => {
    const long = `\x1b[${'1'.repeat(5000)}`;
    expect(clamp(['before', long, 'bafter'])).toBe('beforeafter');
    expect(clamp(['x', long, '1'.repeat(100), '\x1b[500S'])).toBe('x\x1b[24S');
  });
});
