import { describe, expect, it } from 'vitest';
import { baseImages } from './dockerfile';

describe('baseImages', () => {
  it("finds every stage's image and the images COPY --from and RUN --mount name, not earlier stages", () => {
    const dockerfile = [
      '# syntax=docker/dockerfile:1',
      'FROM --platform=linux/amd64 python:3.12-slim AS build',
      'RUN --mount=type=cache,from=cache-image:1,target=/root/.cache pip install x',
      'FROM build AS test',
      'FROM debian:bookworm',
      'COPY --from=build /app /app',
      'COPY --from=0 /x /x',
      'COPY --from=registry.local:5000/tools/bin:2 \\',
      '  /bin/tool /usr/bin/tool',
      'ADD --chown=1 --from=python:3.12-slim /a /a',
      'FROM scratch',
    ].join('\n');
    expect(baseImages(dockerfile)).toEqual(['python:3.12-slim', 'cache-image:1', 'debian:bookworm', 'registry.local:5000/tools/bin:2']);
  });

  it('refuses what cannot be known before the build', () => {
    expect(() => baseImages('ARG BASE=debian\nFROM ${BASE}\n')).toThrow(/build argument/);
    expect(() => baseImages('FROM debian\nCOPY --from=$X /a /a\n')).toThrow(/build argument/);
    expect(() => baseImages('FROM Not An Image\n')).toThrow(/not an image reference/);
    expect(() => baseImages('FROM\n')).toThrow(/names no image/);
  });
});
