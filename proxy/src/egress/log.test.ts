import { describe, expect, it } from 'vitest';
import { createEgressLog } from './log';

describe('egress log', () => {
  it('keeps the last entries per sandbox, counts what it dropped, and cuts long fields', () => {
    const log = createEgressLog({ maxEntries: 3 });
    for (let i = 0; i < 5; i++) log.add('a', { protocol: 'http', host: `h${i}.test`, port: 80, path: `/${'x'.repeat(1000)}`, decision: 'allowed' });
    log.add('b', { protocol: 'dns', host: 'b.test', port: 53, decision: 'refused' });
    const a = log.list('a');
    expect(a.entries.map((e) => e.host)).toEqual(['h2.test', 'h3.test', 'h4.test']);
    expect(a.dropped).toBe(2);
    expect(a.entries[0].path).toHaveLength(512);
    expect(log.list('a', 1).entries.map((e) => e.host)).toEqual(['h4.test']);
    expect(log.list('b').entries).toHaveLength(1);
    log.drop('a');
    expect(log.list('a')).toEqual({ entries: [], dropped: 0 });
  });
});
