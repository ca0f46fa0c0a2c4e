import { describe, expect, it } from 'vitest';
import { STDERR_PREFIX, STDOUT_PREFIX } from '../wire/sessions';
import { demuxFrame } from './logs';

describe('demuxFrame', () => {
  it('splits the stream prefix off a follow frame', () => {
    expect(demuxFrame(Buffer.concat([STDOUT_PREFIX, Buffer.from('out')]))).toEqual({ stream: 'stdout', data: Buffer.from('out') });
    expect(demuxFrame(Buffer.concat([STDERR_PREFIX, Buffer.from('err')]))).toEqual({ stream: 'stderr', data: Buffer.from('err') });
    expect(demuxFrame(Buffer.from('bare'))).toEqual({ stream: 'stdout', data: Buffer.from('bare') });
  });
});
