import { describe, expect, it } from 'vitest';
import { parsePreviewHost, previewUrl } from './host';

const ID = '0f8fad5b-d9cb-469f-a165-70867728950e';
const SIGNED = 'abcdefghijklmnopqrstuvwxyz012345';

describe('parsePreviewHost', () => {
  it('reads the port and a sandbox id or a signed token, any case, with or without a port', () => {
    expect(parsePreviewHost(`3000-${ID}.preview.example`, 'preview.example')).toEqual({ port: 3000, label: ID, signed: false });
    expect(parsePreviewHost(`8080-${ID.toUpperCase()}.Preview.Example:443`, 'preview.example')).toEqual({ port: 8080, label: ID, signed: false });
    expect(parsePreviewHost(`1-${SIGNED}.localhost:3000`, 'localhost')).toEqual({ port: 1, label: SIGNED, signed: true });
  });

  it('is undefined for the API host and anything else that is not a preview host', () => {
    for (const host of [
      undefined,
      '',
      'preview.example',
      `3000-${ID}.other.example`,
      `3000-${ID}.xpreview.example`,
      `0-${ID}.preview.example`,
      `65536-${ID}.preview.example`,
      `123456-${ID}.preview.example`,
      `3000${ID}.preview.example`,
      `3000-not-a-sandbox.preview.example`,
      `3000-${SIGNED}x.preview.example`,
      `a.3000-${ID}.preview.example`,
      `-3000-${ID}.preview.example`,
    ]) {
      expect(parsePreviewHost(host, 'preview.example'), String(host)).toBeUndefined();
    }
  });
});

describe('previewUrl', () => {
  it('keeps the scheme and port of the public URL', () => {
    expect(previewUrl('https://cove.example.com', 'cove.example.com', 8000, ID)).toBe(`https://8000-${ID}.cove.example.com`);
    expect(previewUrl('http://localhost:3000/', 'localhost', 5173, SIGNED)).toBe(`http://5173-${SIGNED}.localhost:3000`);
  });
});
