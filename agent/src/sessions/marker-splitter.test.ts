import { describe, expect, it } from 'vitest';
import { MARKER_END, MarkerSplitter, type SplitEvent } from './marker-splitter';

const M = '@@COVE-END-1234@@';
const MARKER = Buffer.from(M);
const END = String.fromCharCode(MARKER_END);

/** Feeds the pieces one by one and joins adjacent data events, so the result does not depend on how data was cut. */
function split(pieces: Array<string | Buffer>, splitter = new MarkerSplitter(MARKER)): Array<string | { marker: string }> {
  const events: SplitEvent[] = pieces.flatMap((p) => splitter.push(Buffer.isBuffer(p) ? p : Buffer.from(p, 'latin1')));
  const rest = splitter.flush();
  if (rest.length) events.push({ type: 'data', data: rest });
  const out: Array<string | { marker: string }> = [];
  for (const e of events) {
    const last = out[out.length - 1];
    if (e.type === 'marker') out.push({ marker: e.trailer });
    else if (typeof last === 'string') out[out.length - 1] = last + e.data.toString('latin1');
    else out.push(e.data.toString('latin1'));
  }
  return out;
}

describe('MarkerSplitter', () => {
  it('passes output through and cuts out a whole marker with its trailer', () => {
    expect(split(['hello\n'])).toEqual(['hello\n']);
    expect(split([`out\n${M}0${END}more`])).toEqual(['out\n', { marker: '0' }, 'more']);
    expect(split([`${M}127${END}${M}${END}`])).toEqual([{ marker: '127' }, { marker: '' }]);
  });

  it('finds markers cut across chunks at every position', () => {
    const text = `before${M}42${END}after`;
    for (let i = 1; i < text.length; i++) {
      expect(split([text.slice(0, i), text.slice(i)]), `cut at ${i}`).toEqual(['before', { marker: '42' }, 'after']);
    }
    // One byte at a time.
    expect(split([...text])).toEqual(['before', { marker: '42' }, 'after']);
  });

  it('holds back only a tail that could begin the marker, and passes the rest at once', () => {
    const s = new MarkerSplitter(MARKER);
    const events = s.push(Buffer.from('abc@@CO'));
    expect(events).toEqual([{ type: 'data', data: Buffer.from('abc') }]);
    // The held tail turns out not to be a marker: it comes out with what follows.
    expect(s.push(Buffer.from('X'))).toEqual([{ type: 'data', data: Buffer.from('@@COX') }]);
    expect(s.flush().length).toBe(0);
  });

  it('gives back a held tail as output when the stream ends', () => {
    expect(split(['data@@COVE-E'])).toEqual(['data@@COVE-E']);
    expect(split([`data${M}12`])).toEqual([`data${M}12`]);
  });

  it('stops waiting for the end of a trailer after 32 bytes: the bytes are output, and scanning goes on after them', () => {
    const long = 'x'.repeat(40);
    expect(split([`${M}${long}`, `${M}7${END}`])).toEqual([`${M}${long}`, { marker: '7' }]);
    const s = new MarkerSplitter(MARKER);
    expect(s.push(Buffer.from(`${M}${'y'.repeat(32)}`))).toEqual([]);
    const after = s.push(Buffer.from('y'));
    expect(after.every((e) => e.type === 'data')).toBe(true);
    expect(Buffer.concat(after.map((e) => (e.type === 'data' ? e.data : Buffer.alloc(0)))).toString()).toBe(`${M}${'y'.repeat(33)}`);
  });

  it('takes no marker whose trailer is over 32 bytes, even when its end byte came with it', () => {
    const long = 'z'.repeat(33);
    expect(split([`a${M}${long}${END}b`])).toEqual([`a${M}${long}${END}b`]);
    expect(split([`a${M}${'z'.repeat(32)}${END}b`])).toEqual(['a', { marker: 'z'.repeat(32) }, 'b']);
  });

  it('keeps bytes that are not UTF-8 as they are', () => {
    const bytes = Buffer.from([0xff, 0xfe, 0x00, 0x1f, 0x80]);
    const s = new MarkerSplitter(MARKER);
    const out = Buffer.concat(s.push(bytes).map((e) => (e.type === 'data' ? e.data : Buffer.alloc(0))));
    expect(Buffer.concat([out, s.flush()])).toEqual(bytes);
  });
});
