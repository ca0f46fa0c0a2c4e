import { describe, expect, it } from 'vitest';
import { openableUrl } from './preview';

describe('openableUrl', () => {
  it('adds the token as cove_preview_token, keeping the path', () => {
    expect(openableUrl('http://8000-abc.localhost:3000', 't0k')).toBe('http://8000-abc.localhost:3000/?cove_preview_token=t0k');
    expect(openableUrl('https://8000-abc.cove.example.com/app?x=1', 'a b')).toBe('https://8000-abc.cove.example.com/app?x=1&cove_preview_token=a+b');
  });
});
