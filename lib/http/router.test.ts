import { Hono } from 'hono';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { CoveError } from '../errors';
import { setErrorReporter } from '../guard';
import { checkResponse, Router, shapeOf, undocumentedFields } from './router';

/** What the programs' logs would get: each unexpected error's id, where, and message. */
const reported: Array<{ id: string; where: string; message: string }> = [];
setErrorReporter(({ id, where, err }) => reported.push({ id, where, message: (err as Error).message }));
/** The message of what checkResponse threw and reported. */
function reportOf(fn: () => void): string {
  reported.length = 0;
  expect(fn).toThrow(/error id [0-9a-f]{12}/);
  expect(reported).toHaveLength(1);
  return reported[0].message;
}

/** An app with the router's routes and an error handler that answers as the programs do (unexpected → 500). */
function appWith(opts: { checkResponses?: boolean }, register: (router: Router) => void): Hono {
  const app = new Hono();
  app.onError((err, c) => {
    const error = err instanceof CoveError ? err : new CoveError('INTERNAL_ERROR', 'unexpected', err.message);
    return c.json(error.toBody('DAYTONA_DAEMON'), error.status as 400);
  });
  register(new Router(app, opts));
  return app;
}

const Thing = z.object({ name: z.string(), size: z.number().int() });

describe('response checks', () => {
  const routes = (router: Router) => {
    router.route({ method: 'get', path: '/good', summary: '', tag: 't', response: Thing }, () => ({ name: 'a', size: 1 }));
    router.route({ method: 'get', path: '/bad', summary: '', tag: 't', response: Thing }, () => ({ name: 'a', size: '1' }));
    router.route({ method: 'get', path: '/undocumented', summary: '', tag: 't' }, () => ({ anything: true }));
    router.route({ method: 'post', path: '/none', summary: '', tag: 't', response: Thing }, () => undefined);
    router.route({ method: 'get', path: '/raw', summary: '', tag: 't', response: Thing, rawResponse: 'text/plain' }, ({ c }) => c.text('not json'));
    router.route({ method: 'post', path: '/accepted', summary: '', tag: 't', response: Thing }, ({ c }) => c.json({ name: 'a', size: 1 }, 202));
    router.route({ method: 'post', path: '/accepted-bad', summary: '', tag: 't', response: Thing }, ({ c }) => c.json({ name: 'a' }, 202));
  };

  it('answers a route whose value does not match its schema with a 500 when checking', async () => {
    const app = appWith({ checkResponses: true }, routes);
    expect((await app.request('/good')).status).toBe(200);
    const bad = await app.request('/bad');
    expect(bad.status).toBe(500);
    const body = (await bad.json()) as { message: string; code: string };
    const id = /error id ([0-9a-f]+)/.exec(body.message)?.[1];
    expect(body.code).toBe('INTERNAL_ERROR');
    // The answer names an error id; the log line with the same id names the route and what differs.
    const entry = reported.find((r) => r.id === id);
    expect(entry?.where).toBe('GET /bad');
    expect(entry?.message).toContain('response.size');
    // Routes without a schema, without a body, or answering a Response of their own are not checked.
    expect((await app.request('/undocumented')).status).toBe(200);
    expect((await app.request('/none', { method: 'POST' })).status).toBe(204);
    expect(await (await app.request('/raw')).text()).toBe('not json');
    // JSON answered as a Response of the handler's own (another status) is checked too, and still readable.
    const accepted = await app.request('/accepted', { method: 'POST' });
    expect([accepted.status, await accepted.json()]).toEqual([202, { name: 'a', size: 1 }]);
    expect((await app.request('/accepted-bad', { method: 'POST' })).status).toBe(500);
  });

  it('sends whatever the handler returns when not checking', async () => {
    const app = appWith({ checkResponses: false }, routes);
    const bad = await app.request('/bad');
    expect(bad.status).toBe(200);
    expect(await bad.json()).toEqual({ name: 'a', size: '1' });
  });

  it('checks the value as a client receives it, through JSON', () => {
    const spec = { method: 'get' as const, path: '/x' };
    // undefined fields disappear, Dates become strings.
    expect(() => checkResponse(spec, z.object({ a: z.string().optional() }), { a: undefined })).not.toThrow();
    expect(() => checkResponse(spec, z.object({ at: z.string() }), { at: new Date(0) })).not.toThrow();
    expect(reportOf(() => checkResponse(spec, z.object({ at: z.date() }), { at: new Date(0) }))).toMatch(/response\.at/);
    expect(reportOf(() => checkResponse(spec, z.array(z.number()), [1, 'x']))).toMatch(/GET \/x.*response\.1/);
  });

  it('refuses fields the schema does not declare, at any depth, but not in records or loose objects', () => {
    const spec = { method: 'get' as const, path: '/z' };
    const Listing = z.object({ files: z.array(z.object({ name: z.string() })), meta: z.record(z.string(), z.string()), extra: z.looseObject({}) });
    const ok = { files: [{ name: 'a' }], meta: { any: 'key' }, extra: { free: 1 } };
    expect(() => checkResponse(spec, Listing, ok)).not.toThrow();
    expect(reportOf(() => checkResponse(spec, Listing, { ...ok, files: [{ name: 'a' }, { name: 'b', mode: 'x' }], total: 2 }))).toContain(
      'fields the schema does not declare: response.files.1.mode, response.total',
    );
    // A default the schema adds is no drift.
    expect(() => checkResponse(spec, z.object({ a: z.string().default('x') }), {})).not.toThrow();
  });

  it('names at most ten undocumented fields', () => {
    const many = Object.fromEntries(Array.from({ length: 30 }, (_, i) => [`f${i}`, i]));
    expect(undocumentedFields(many, {})).toHaveLength(10);
    expect(undocumentedFields([{ a: 1 }], [{}])).toEqual(['response.0.a']);
    expect(undocumentedFields('x', 'y')).toEqual([]);
  });

  it('logs the shape of a value, never the value', () => {
    const secret = 'password-123';
    const message = reportOf(() =>
      checkResponse({ method: 'post', path: '/y' }, Thing, { name: secret, size: 'big', files: Array.from({ length: 500 }, () => ({ path: secret })) }),
    );
    expect(message).toMatch(/^Response of POST \/y does not match its schema: response\.size: /);
    expect(message).toContain('shape {name: string, size: string, files: [{path: string} ×500]}');
    expect(message).not.toContain(secret);
  });
});

describe('shapeOf', () => {
  it('describes types, counts array items and stops at its depth and width', () => {
    expect(shapeOf(null)).toBe('null');
    expect(shapeOf(undefined)).toBe('undefined');
    expect(shapeOf([])).toBe('[]');
    expect(shapeOf([1])).toBe('[number]');
    expect(shapeOf({ a: { b: { c: { d: 1 } } } })).toBe('{a: {b: {c: {…}}}}');
    expect(shapeOf([[[[1]]]])).toBe('[[[[… ×1]]]]');
    const wide = Object.fromEntries(Array.from({ length: 25 }, (_, i) => [`k${i}`, i]));
    expect(shapeOf(wide)).toMatch(/k19: number, … 5 more\}$/);
    expect(shapeOf({ ['x'.repeat(100)]: true })).toBe(`{${'x'.repeat(40)}…: boolean}`);
  });
});
