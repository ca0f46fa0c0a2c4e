import { describe, expect, it } from 'vitest';
import { FRAME, FrameDecoder, frameHeader, jsonFrame, MAX_CONTROL_FRAME, SshExit, SshSessionStart } from './ssh';

const STREAMS = new Set<number>([FRAME.stdin, FRAME.stdout, FRAME.stderr]);

/** Decodes `bytes` fed in pieces of `step`; stream bytes are joined per frame type, control frames kept whole. */
function decode(bytes: Buffer, step: number) {
  const data = new Map<number, Buffer[]>();
  const controls: Array<[number, string]> = [];
  const d = new FrameDecoder(
    STREAMS,
    (type, chunk) => data.set(type, [...(data.get(type) ?? []), Buffer.from(chunk)]),
    (type, payload) => controls.push([type, payload.toString()]),
  );
  for (let i = 0; i < bytes.length; i += step) d.push(bytes.subarray(i, i + step));
  return { data: new Map([...data].map(([t, parts]) => [t, Buffer.concat(parts).toString()])), controls };
}

describe('SSH tunnel frames', () => {
  it('writes a 5-byte header: type, then the length as u32 big-endian', () => {
    expect(frameHeader(FRAME.stdout, 0x01020304)).toEqual(Buffer.from([10, 1, 2, 3, 4]));
    expect(frameHeader(FRAME.stdinEof, 0)).toEqual(Buffer.from([3, 0, 0, 0, 0]));
    const frame = jsonFrame(FRAME.resize, { cols: 80, rows: 24 });
    expect(frame[0]).toBe(FRAME.resize);
    expect(frame.readUInt32BE(1)).toBe(frame.length - 5);
    expect(JSON.parse(frame.subarray(5).toString())).toEqual({ cols: 80, rows: 24 });
  });

  it('decodes a sequence of frames the same whatever the pieces', () => {
    const bytes = Buffer.concat([
      jsonFrame(FRAME.start, { kind: 'shell' }),
      frameHeader(FRAME.stdin, 5),
      Buffer.from('hello'),
      frameHeader(FRAME.stdinEof, 0),
      frameHeader(FRAME.stdout, 3),
      Buffer.from('out'),
      frameHeader(FRAME.stdout, 0),
      jsonFrame(FRAME.exit, { code: 3 }),
    ]);
    for (const step of [1, 2, 5, 6, 13, bytes.length]) {
      const { data, controls } = decode(bytes, step);
      expect(controls, `step ${step}`).toEqual([
        [FRAME.start, '{"kind":"shell"}'],
        [FRAME.stdinEof, ''],
        [FRAME.exit, '{"code":3}'],
      ]);
      expect(data.get(FRAME.stdin)).toBe('hello');
      expect(data.get(FRAME.stdout)).toBe('out');
    }
  });

  it('hands stream bytes on as they arrive, without waiting for the end of the frame', () => {
    const pieces: string[] = [];
    const d = new FrameDecoder(STREAMS, (_t, chunk) => pieces.push(chunk.toString()), () => {});
    d.push(Buffer.concat([frameHeader(FRAME.stdout, 1_000_000), Buffer.from('first')]));
    d.push(Buffer.from('second'));
    expect(pieces).toEqual(['first', 'second']);
  });

  it('refuses a control frame larger than the limit, but not a stream frame', () => {
    const d = new FrameDecoder(STREAMS, () => {}, () => {});
    expect(() => d.push(frameHeader(FRAME.resize, MAX_CONTROL_FRAME + 1))).toThrow(/too large/);
    const ok = new FrameDecoder(STREAMS, () => {}, () => {});
    expect(() => ok.push(frameHeader(FRAME.stdout, 0xffffffff))).not.toThrow();
    const exact = new FrameDecoder(STREAMS, () => {}, () => {});
    expect(() => exact.push(frameHeader(FRAME.resize, MAX_CONTROL_FRAME))).not.toThrow();
  });

  it('checks what the control frames carry', () => {
    expect(SshSessionStart.parse({ kind: 'exec', command: 'ls' })).toEqual({ kind: 'exec', command: 'ls', env: {} });
    expect(SshSessionStart.safeParse({ kind: 'subsystem' }).success).toBe(false);
    expect(SshSessionStart.safeParse({ kind: 'shell', pty: { term: 'xterm', cols: 0, rows: 24 } }).success).toBe(false);
    expect(SshExit.safeParse({ code: 1 }).success).toBe(true);
    expect(SshExit.safeParse({ signal: 'TERM', coreDumped: false }).success).toBe(true);
    expect(SshExit.safeParse({ signal: 'TERM' }).success).toBe(false);
  });
});
