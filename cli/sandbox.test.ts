import { describe, expect, it } from 'vitest';
import type { SandboxDto } from '../wire/sandbox';
import { parseVolume, sandboxTable } from './sandbox';

describe('parseVolume', () => {
  it('reads VOLUME:/PATH', () => {
    expect(parseVolume('data:/mnt/data')).toEqual({ volumeId: 'data', mountPath: '/mnt/data' });
    expect(() => parseVolume('data')).toThrow(/VOLUME:\/PATH/);
    expect(() => parseVolume('data:relative')).toThrow(/VOLUME:\/PATH/);
    expect(() => parseVolume(':/x')).toThrow(/VOLUME:\/PATH/);
  });
});

describe('sandboxTable', () => {
  it('shows id, name, state, image, resources and age', () => {
    const now = Date.parse('2026-01-10T12:00:00Z');
    const sandbox = { id: 'abc', name: 'web', state: 'started', snapshot: 'cove-sandbox:latest', cpu: 1, memory: 2, disk: 10, createdAt: '2026-01-10T11:00:00Z' } as SandboxDto;
    const unnamed = { ...sandbox, id: 'def', name: 'def', state: 'stopped', createdAt: '2026-01-10T11:59:00Z' } as SandboxDto;
    expect(sandboxTable([sandbox, unnamed], now).split('\n')).toEqual([
      'ID   NAME  STATE    IMAGE                CPU/MEM/DISK  AGE',
      'abc  web   started  cove-sandbox:latest  1/2G/10G      1h',
      'def  -     stopped  cove-sandbox:latest  1/2G/10G      1m',
    ]);
  });
});
