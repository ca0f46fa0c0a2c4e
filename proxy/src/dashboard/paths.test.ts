import { describe, expect, it } from 'vitest';
import { contentTypeOf, dashboardTarget, isDashboardPath } from './paths';

describe('dashboardTarget', () => {
  it('serves index.html for the folder and plain names below it', () => {
    expect(dashboardTarget('/dashboard/')).toEqual({ file: 'index.html' });
    expect(dashboardTarget('/dashboard/?x=1')).toEqual({ file: 'index.html' });
    expect(dashboardTarget('/dashboard/main.js')).toEqual({ file: 'main.js' });
    expect(dashboardTarget('/dashboard/main.js.map?v=2')).toEqual({ file: 'main.js.map' });
    expect(dashboardTarget('/dashboard/assets/font_1-a.woff2')).toEqual({ file: 'assets/font_1-a.woff2' });
    expect(dashboardTarget('/dashboard/st%79le.css')).toEqual({ file: 'style.css' });
  });

  it('redirects the bare path to the folder, keeping the query', () => {
    expect(dashboardTarget('/dashboard')).toEqual({ redirect: '/dashboard/' });
    expect(dashboardTarget('/dashboard?a=b')).toEqual({ redirect: '/dashboard/?a=b' });
  });

  it('never names anything outside the folder, hidden or malformed', () => {
    for (const url of [
      '/dashboard/..',
      '/dashboard/../package.json',
      '/dashboard/%2e%2e/package.json',
      '/dashboard/%2E%2E%2Fpackage.json',
      '/dashboard/a/../../x',
      '/dashboard/..%5c..%5cx',
      '/dashboard/.env',
      '/dashboard/./index.html',
      '/dashboard//etc/passwd',
      '/dashboard/%2fetc%2fpasswd',
      '/dashboard/index.html%00.js',
      '/dashboard/%zz',
      '/dashboard/a b',
      '/dashboard/main.js/',
    ]) {
      expect(dashboardTarget(url), url).toHaveProperty('missing');
    }
  });

  it('knows its own paths only', () => {
    expect(isDashboardPath('/dashboard')).toBe(true);
    expect(isDashboardPath('/dashboard?x')).toBe(true);
    expect(isDashboardPath('/dashboard/x')).toBe(true);
    expect(isDashboardPath('/dashboards')).toBe(false);
    expect(isDashboardPath('/api/dashboard')).toBe(false);
    expect(isDashboardPath(undefined)).toBe(false);
  });
});

describe('contentTypeOf', () => {
  it('names the types of the built files, and octet-stream for anything else', () => {
    expect(contentTypeOf('index.html')).toBe('text/html; charset=utf-8');
    expect(contentTypeOf('main.js')).toBe('text/javascript; charset=utf-8');
    expect(contentTypeOf('style.css')).toBe('text/css; charset=utf-8');
    expect(contentTypeOf('main.js.map')).toBe('application/json; charset=utf-8');
    expect(contentTypeOf('README')).toBe('application/octet-stream');
    expect(contentTypeOf('x.exe')).toBe('application/octet-stream');
  });
});
