import { describe, expect, it } from 'vitest';
import { apiErrorOf } from './client';

describe('apiErrorOf', () => {
  it('says the server’s message with its status and code', () => {
    const err = apiErrorOf(404, JSON.stringify({ message: 'Sandbox x not found', code: 'SANDBOX_NOT_FOUND', source: 'DAYTONA_API' }));
    expect(err.message).toBe('Sandbox x not found (HTTP 404 SANDBOX_NOT_FOUND)');
    expect(err).toMatchObject({ status: 404, code: 'SANDBOX_NOT_FOUND' });
  });

  it('points at cove login on a 401, and falls back to the status for bodies that are not JSON', () => {
    expect(apiErrorOf(401, '{"message":"Invalid API key"}').message).toMatch(/Invalid API key \(check the API key, or run `cove login` again\)/);
    expect(apiErrorOf(502, '<html>bad gateway</html>').message).toBe('the server answered 502 (HTTP 502)');
    expect(apiErrorOf(500, 'plain words').message).toBe('plain words (HTTP 500)');
  });
});
