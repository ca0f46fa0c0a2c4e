import { describe, expect, it } from 'vitest';
import { STDERR_PREFIX, STDOUT_PREFIX } from '../../../wire/sessions';
import { CommandLog, type LogChunk } from './command-log';

const b = (s: string) => Buffer.from(s);

describe('CommandLog', () => {
  it('keeps chunks in arrival order, apart or interleaved', () => {
    const log = new CommandLog();
    log.append('stdout', b('a'));
    log.append('stderr', b('B'));
    log.append('stdout', b('c'));
    expect(log.text()).toBe('aBc');
    expect(log.text('stdout')).toBe('ac');
    expect(log.text('stderr')).toBe('B');
    expect(log.bytes).toBe(3);
  });

  it('copies what it is given: the caller may reuse its buffer', () => {
    const log = new CommandLog();
    const buf = b('abc');
    log.append('stdout', buf);
    buf.fill(0x7a);
    expect(log.text()).toBe('abc');
  });

  it('ignores empty chunks', () => {
    const log = new CommandLog();
    const seen: LogChunk[] = [];
    log.follow({ chunk: (c) => seen.push(c), end: () => {} });
    expect(log.append('stdout', Buffer.alloc(0))).toBe(0);
    expect(seen).toEqual([]);
  });

  it('drops the oldest bytes past its cap, cutting inside a chunk when needed, and counts them', () => {
    const log = new CommandLog(10);
    expect(log.append('stdout', b('0123456'))).toBe(7);
    expect(log.append('stderr', b('789ab'))).toBe(3);
    expect(log.bytes).toBe(10);
    expect(log.dropped).toBe(2);
    expect(log.text()).toBe('23456789ab');
    // A chunk larger than the cap keeps only its newest bytes.
    expect(log.append('stdout', b('ABCDEFGHIJKLMNOP'))).toBe(0);
    expect(log.text()).toBe('GHIJKLMNOP');
    expect(log.text('stderr')).toBe('');
    expect(log.dropped).toBe(18);
  });

  it('clears everything and reports what it freed', () => {
    const log = new CommandLog();
    log.append('stdout', b('hello'));
    expect(log.clear()).toBe(5);
    expect(log.bytes).toBe(0);
    expect(log.dropped).toBe(5);
    expect(log.text()).toBe('');
  });

  it('replays history to a follower, then live chunks, then the end once', () => {
    const log = new CommandLog();
    log.append('stdout', b('old'));
    const seen: string[] = [];
    const stop = log.follow({ chunk: (c) => seen.push(`${c.stream}:${c.data.toString()}`), end: () => seen.push('end') });
    log.append('stderr', b('new'));
    log.end();
    log.end();
    log.append('stdout', b('late'));
    expect(seen).toEqual(['stdout:old', 'stderr:new', 'end']);
    expect(log.isEnded).toBe(true);
    stop();
  });

  it('gives a follower that comes after the end the history and the end at once', () => {
    const log = new CommandLog();
    log.append('stdout', b('x'));
    log.end();
    const seen: string[] = [];
    log.follow({ chunk: (c) => seen.push(String(c.data)), end: () => seen.push('end') });
    expect(seen).toEqual(['x', 'end']);
  });

  it('stops telling a follower that unsubscribed', () => {
    const log = new CommandLog();
    const seen: string[] = [];
    const stop = log.follow({ chunk: (c) => seen.push(String(c.data)), end: () => seen.push('end') });
    log.append('stdout', b('1'));
    stop();
    log.append('stdout', b('2'));
    log.end();
    expect(seen).toEqual(['1']);
  });

  describe('marked()', () => {
    const prefixes = { stdout: STDOUT_PREFIX, stderr: STDERR_PREFIX };
    const OUT = '\x01\x01\x01';
    const ERR = '\x02\x02\x02';

    it('prefixes each run of one stream once', () => {
      const log = new CommandLog();
      log.append('stdout', b('a'));
      log.append('stdout', b('b'));
      log.append('stderr', b('E'));
      log.append('stdout', b('c'));
      expect(log.marked(prefixes)).toBe(`${OUT}ab${ERR}E${OUT}c`);
    });

    it('is empty for an empty log and starts with stderr when stderr came first', () => {
      expect(new CommandLog().marked(prefixes)).toBe('');
      const log = new CommandLog();
      log.append('stderr', b('oops'));
      expect(log.marked(prefixes)).toBe(`${ERR}oops`);
    });

    it('marks what is left after the cap dropped the oldest bytes', () => {
      const log = new CommandLog(4);
      log.append('stderr', b('xx'));
      log.append('stdout', b('abcd'));
      expect(log.marked(prefixes)).toBe(`${OUT}abcd`);
    });
  });
});
