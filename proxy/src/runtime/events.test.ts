import { PassThrough } from 'node:stream';
import fc from 'fast-check';
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { setErrorReporter } from '../../../lib/guard';
import { createExitTracker, createLineSplitter, followContainerEvents, nextDelay, parseEngineEvent, type ContainerEnd, type ContainerEvent } from './events';

const ID = 'a'.repeat(64);
/** An event as Docker 20.10 writes it on /events. */
const engineEvent = (action: string, attributes: Record<string, string> = {}, timeNano = 1_000_000_000_000) => ({
  status: action,
  id: ID,
  from: 'cove-sandbox:latest',
  Type: 'container',
  Action: action,
  Actor: { ID, Attributes: { 'dev.cove.managed': '1', image: 'cove-sandbox:latest', name: 'cove-x', ...attributes } },
  scope: 'local',
  time: Math.floor(timeNano / 1e9),
  timeNano,
});

describe('parseEngineEvent', () => {
  it('reads the events Cove follows, with exit codes, signals and labels', () => {
    expect(parseEngineEvent(engineEvent('die', { exitCode: '137' }))).toEqual({
      action: 'die',
      containerId: ID,
      labels: { 'dev.cove.managed': '1', image: 'cove-sandbox:latest', name: 'cove-x' },
      exitCode: 137,
      time: 1_000_000,
    });
    expect(parseEngineEvent(engineEvent('kill', { signal: '9' }))?.signal).toBe(9);
    expect(parseEngineEvent(engineEvent('kill', { signal: 'TERM' }))?.signal).toBe(15);
    expect(parseEngineEvent(engineEvent('oom'))?.action).toBe('oom');
  });

  it('ignores other actions, other types and malformed events', () => {
    for (const value of [
      engineEvent('exec_die', { exitCode: '0' }),
      engineEvent('health_status: healthy'),
      { ...engineEvent('die'), Type: 'network' },
      { ...engineEvent('die'), Actor: { ID: 'not-an-id' }, id: 'not-an-id' },
      null,
      [],
      'die',
      { Action: 'die' },
    ]) {
      expect(parseEngineEvent(value)).toBeUndefined();
    }
  });

  it('never throws, whatever JSON it is given', () => {
    fc.assert(
      fc.property(fc.jsonValue(), (value) => {
        parseEngineEvent(value);
      }),
    );
    fc.assert(
      fc.property(fc.record({ Action: fc.constantFrom('die', 'kill', 'oom'), Actor: fc.record({ ID: fc.constant(ID), Attributes: fc.dictionary(fc.string(), fc.jsonValue()) }), timeNano: fc.anything() }), (value) => {
        const event = parseEngineEvent(value);
        expect(event?.containerId).toBe(ID);
      }),
    );
  });
});

describe('createExitTracker', () => {
  function track() {
    const ends: ContainerEnd[] = [];
    const reports: number[] = [];
    const tracker = createExitTracker({ onEnd: (e) => ends.push(e), onOomKills: (_id, _labels, n) => reports.push(n), reportDelayMs: 20 });
    const feed = (action: ContainerEvent['action'], extra: Partial<ContainerEvent> = {}, time = 1000) =>
      tracker.feed({ action, containerId: ID, labels: {}, time, ...extra });
    return { tracker, ends, reports, feed };
  }

  it('an OOM kill right before the agent died is its cause', () => {
    const { ends, feed, tracker } = track();
    feed('oom', {}, 1000);
    feed('die', { exitCode: 137 }, 1020);
    expect(ends).toEqual([{ containerId: ID, labels: {}, kind: 'exited', exitCode: 137, oom: true, signals: [] }]);
    expect(tracker.size()).toBe(0);
  });

  it('an OOM kill long before, or in an earlier run, is not', () => {
    const { ends, feed } = track();
    feed('oom', {}, 1000);
    feed('die', { exitCode: 137 }, 60_000);
    feed('oom', {}, 70_000);
    feed('start', {}, 71_000);
    feed('die', { exitCode: 1 }, 71_500);
    expect(ends.map((e) => e.oom)).toEqual([false, false]);
  });

  it('collects the signals sent through the engine during the run', () => {
    const { ends, feed } = track();
    feed('kill', { signal: 15 });
    feed('kill', { signal: 9 });
    feed('die', { exitCode: 137 });
    feed('destroy');
    expect(ends).toEqual([
      { containerId: ID, labels: {}, kind: 'exited', exitCode: 137, oom: false, signals: [15, 9] },
      { containerId: ID, labels: {}, kind: 'removed', oom: false, signals: [] },
    ]);
  });

  it('reports OOM kills of a container that lives on, once, as a count', async () => {
    const { reports, feed, ends } = track();
    for (let i = 0; i < 5; i++) feed('oom');
    await new Promise((r) => setTimeout(r, 60));
    expect(reports).toEqual([5]);
    expect(ends).toEqual([]);
    // Kills that end in the container's death are reported as the death, not as kills.
    feed('oom');
    feed('die', { exitCode: 137 });
    await new Promise((r) => setTimeout(r, 60));
    expect(reports).toEqual([5]);
  });

  it('keeps no evidence without bound', () => {
    const tracker = createExitTracker({ onEnd: () => {}, onOomKills: () => {} });
    for (let i = 0; i < 12_000; i++) tracker.feed({ action: 'kill', containerId: i.toString(16).padStart(12, '0'), labels: {}, signal: 1, time: i });
    expect(tracker.size()).toBeLessThanOrEqual(10_000);
  });
});

describe('createLineSplitter', () => {
  it('gives the lines of any chunking of the stream, and drops lines over the limit', () => {
    fc.assert(
      fc.property(fc.array(fc.stringMatching(/^[^\n]{0,40}$/), { maxLength: 20 }), fc.array(fc.nat(200), { maxLength: 10 }), (lines, cuts) => {
        const text = Buffer.from(lines.map((l) => `${l}\n`).join(''));
        const got: string[] = [];
        const split = createLineSplitter((l) => got.push(l), 32);
        let at = 0;
        for (const cut of [...cuts].sort((a, b) => a - b)) {
          split(text.subarray(at, Math.max(at, Math.min(cut, text.length))));
          at = Math.max(at, Math.min(cut, text.length));
        }
        split(text.subarray(at));
        expect(got).toEqual(lines.filter((l) => l.trim() && Buffer.byteLength(l) <= 32));
      }),
    );
  });
});

describe('nextDelay', () => {
  const backoff = { initialMs: 250, maxMs: 10_000, healthyMs: 10_000 };
  it('doubles up to the maximum, and starts over after a connection that lasted', () => {
    let delay = backoff.initialMs;
    const waits: number[] = [];
    for (let i = 0; i < 8; i++) {
      const { wait, next } = nextDelay(backoff, delay, i === 6 ? 60_000 : 10);
      waits.push(wait);
      delay = next;
    }
    expect(waits).toEqual([250, 500, 1000, 2000, 4000, 8000, 250, 500]);
    expect(nextDelay(backoff, 10_000, undefined)).toEqual({ wait: 10_000, next: 10_000 });
  });
});

describe('followContainerEvents', () => {
  const log = pino({ level: 'silent' });
  const backoff = { initialMs: 5, maxMs: 40, healthyMs: 10_000 };

  it('delivers events, and after the stream ends opens it again and reconciles each time', async () => {
    const streams: PassThrough[] = [];
    const events: ContainerEvent[] = [];
    let connected = 0;
    const follower = followContainerEvents({
      open: () => {
        const s = new PassThrough();
        streams.push(s);
        return Promise.resolve(s);
      },
      onEvent: (e) => events.push(e),
      onConnected: () => {
        connected++;
        return Promise.resolve();
      },
      log,
      backoff,
    });
    await waitUntil(() => connected === 1);
    const line = JSON.stringify(engineEvent('die', { exitCode: '3' }));
    // Split mid-event, with garbage and an event of another kind around it.
    streams[0].write(`not json\n${line.slice(0, 10)}`);
    streams[0].write(`${line.slice(10)}\n${JSON.stringify(engineEvent('exec_start'))}\n`);
    await waitUntil(() => events.length === 1);
    expect(events[0]).toMatchObject({ action: 'die', exitCode: 3 });

    streams[0].end(); // the engine went away
    await waitUntil(() => connected === 2);
    expect(streams).toHaveLength(2);
    streams[1].destroy(new Error('socket hang up'));
    await waitUntil(() => connected === 3);
    streams[2].write(`${JSON.stringify(engineEvent('oom'))}\n`);
    await waitUntil(() => events.length === 2);
    follower.close();
    expect(streams[2].destroyed).toBe(true);
  });

  it('retries with growing delays while the engine cannot be reached', async () => {
    const attempts: number[] = [];
    let connected = 0;
    const follower = followContainerEvents({
      open: () => {
        attempts.push(Date.now());
        if (attempts.length < 5) return Promise.reject(Object.assign(new Error('connect ENOENT /var/run/docker.sock'), { code: 'ENOENT' }));
        return Promise.resolve(new PassThrough());
      },
      onEvent: () => {},
      onConnected: () => {
        connected++;
        return Promise.resolve();
      },
      log,
      backoff,
    });
    await waitUntil(() => connected === 1);
    follower.close();
    const gaps = attempts.slice(1).map((t, i) => t - attempts[i]);
    expect(gaps).toHaveLength(4);
    // 5, 10, 20, 40 ms (timers may fire a little late, never early).
    gaps.forEach((gap, i) => expect(gap).toBeGreaterThanOrEqual([5, 10, 20, 40][i] - 1));
  });

  it('drops a connection whose reconciliation failed, and tries again; a throwing handler is reported, not fatal', async () => {
    const reported: string[] = [];
    setErrorReporter(({ where }) => reported.push(where));
    const streams: PassThrough[] = [];
    let calls = 0;
    const follower = followContainerEvents({
      open: () => {
        const s = new PassThrough();
        streams.push(s);
        return Promise.resolve(s);
      },
      onEvent: () => {
        throw new Error('a handler that throws must not end the follower');
      },
      onConnected: () => {
        calls++;
        return calls === 1 ? Promise.reject(new Error('Docker failed to list containers')) : Promise.resolve();
      },
      log,
      backoff,
    });
    await waitUntil(() => calls === 2);
    expect(streams[0].destroyed).toBe(true);
    streams[1].write(`${JSON.stringify(engineEvent('die', { exitCode: '0' }))}\n`);
    await new Promise((r) => setTimeout(r, 20));
    expect(streams[1].destroyed).toBe(false);
    expect(reported).toEqual(['engine events: event']);
    follower.close();
  });

  it('stops for good once closed, even while waiting to reconnect', async () => {
    let opened = 0;
    const follower = followContainerEvents({
      open: () => {
        opened++;
        return Promise.reject(new Error('down'));
      },
      onEvent: () => {},
      onConnected: () => Promise.resolve(),
      log,
      backoff,
    });
    await waitUntil(() => opened === 2);
    follower.close();
    await new Promise((r) => setTimeout(r, 100));
    expect(opened).toBe(2);
  });
});

async function waitUntil(predicate: () => boolean, timeoutMs = 2000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 2));
  }
}
