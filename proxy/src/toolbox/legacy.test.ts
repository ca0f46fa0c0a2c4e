import { describe, expect, it } from 'vitest';
import { CoveError } from '../../../lib/errors';
import { legacyToolboxCall } from './legacy';

const ID = '0f8fad5b-d9cb-469f-a165-70867728950e';

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (err) {
    if (err instanceof CoveError) return err.code;
    throw err;
  }
  return undefined;
}

describe('legacyToolboxCall', () => {
  it("maps SDK 0.108's API toolbox paths onto the agent's, query kept", () => {
    expect(legacyToolboxCall(`/api/toolbox/${ID}/toolbox/process/execute`, undefined)).toEqual({ sandboxId: ID, path: '/process/execute', via: 'api' });
    expect(legacyToolboxCall(`/api/toolbox/${ID}/toolbox/files?path=%2Ftmp`, undefined)).toEqual({ sandboxId: ID, path: '/files?path=%2Ftmp', via: 'api' });
    expect(legacyToolboxCall(`/api/toolbox/${ID}/toolbox`, undefined)?.path).toBe('/');
    expect(legacyToolboxCall(`/api/toolbox/${ID}/toolbox?a=1`, undefined)?.path).toBe('/?a=1');
    expect(legacyToolboxCall(`/api/toolbox/${encodeURIComponent('my box')}/toolbox/version`, undefined)?.sandboxId).toBe('my box');
  });

  it('renames the paths whose spelling changed, and only those', () => {
    expect(legacyToolboxCall(`/api/toolbox/${ID}/toolbox/lsp/workspace-symbols?query=x`, undefined)?.path).toBe('/lsp/workspacesymbols?query=x');
    expect(legacyToolboxCall(`/api/toolbox/${ID}/toolbox/lsp/workspace-symbols/x`, undefined)?.path).toBe('/lsp/workspace-symbols/x');
  });

  it('takes the preview host of port 2280 as the toolbox, path as it is; other previews and signed hosts stay previews', () => {
    expect(legacyToolboxCall('/process/pty/t/connect', { port: 2280, label: ID, signed: false })).toEqual({ sandboxId: ID, path: '/process/pty/t/connect', via: 'agent-port' });
    expect(legacyToolboxCall('/lsp/workspace-symbols', { port: 2280, label: ID, signed: false })?.path).toBe('/lsp/workspace-symbols');
    expect(legacyToolboxCall('/x', { port: 3000, label: ID, signed: false })).toBeUndefined();
    expect(legacyToolboxCall('/x', { port: 2280, label: 'abcdefghijklmnopqrstuvwxyz012345', signed: true })).toBeUndefined();
  });

  it('leaves other paths alone', () => {
    for (const url of ['/api/sandbox', `/toolbox/${ID}/process/execute`, '/api/toolboxes', '/', '*']) expect(legacyToolboxCall(url, undefined), url).toBeUndefined();
  });

  it('answers 404 for other shapes under /api/toolbox/ and 400 for a malformed id, never another error', () => {
    for (const url of ['/api/toolbox/', `/api/toolbox/${ID}`, `/api/toolbox/${ID}/`, `/api/toolbox/${ID}/files`, `/api/toolbox/${ID}/toolboxes/x`, `/api/toolbox//toolbox/x`, `/api/toolbox/${ID}?x=/toolbox/a`]) {
      expect(codeOf(() => legacyToolboxCall(url, undefined)), url).toBe('NOT_FOUND');
    }
    expect(codeOf(() => legacyToolboxCall('/api/toolbox/%ZZ/toolbox/x', undefined))).toBe('INVALID_REQUEST');
  });
});
