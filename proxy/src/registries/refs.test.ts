import { describe, expect, it } from 'vitest';
import { coverage, parseRegistryUrl, placeOfImage, projectProblem, serverAddress } from './refs';

describe('parseRegistryUrl', () => {
  it('reads host[:port][/path], dropping an http(s) scheme and final slashes', () => {
    expect(parseRegistryUrl('127.0.0.1:5000')).toEqual({ host: '127.0.0.1:5000', path: '' });
    expect(parseRegistryUrl('https://Registry.Example.com/team/sub/')).toEqual({ host: 'registry.example.com', path: 'team/sub' });
    expect(parseRegistryUrl('http://localhost:80')).toEqual({ host: 'localhost:80', path: '' });
    expect(parseRegistryUrl('[::1]:5000')).toEqual({ host: '[::1]:5000', path: '' });
  });

  it("names Docker Hub's hosts docker.io", () => {
    for (const url of ['docker.io', 'https://index.docker.io/v1/', 'registry-1.docker.io']) expect(parseRegistryUrl(url)).toMatchObject({ host: 'docker.io' });
  });

  it('says what is wrong with anything else', () => {
    for (const [url, why] of [
      ['', /needs a host/],
      ['ftp://x.example', /scheme must be http or https/],
      ['user:pw@host.example', /without user/],
      ['host.example?x=1', /without user, query/],
      ['host.example:99999', /port 99999/],
      ['host.example:0', /port 0/],
      ['-bad-.example', /not a host/],
      ['host.example/Upper', /path components/],
      ['host.example//x', /path components/],
      ['has space.example', /without user/],
    ] as const) {
      const parsed = parseRegistryUrl(url);
      expect(parsed, url).toHaveProperty('problem');
      expect((parsed as { problem: string }).problem, url).toMatch(why);
    }
  });
});

describe('placeOfImage', () => {
  it('finds the registry host as the engine does', () => {
    expect(placeOfImage('127.0.0.1:5000/x:1')).toEqual({ host: '127.0.0.1:5000', path: 'x' });
    expect(placeOfImage('registry.example.com/team/app@sha256:' + 'a'.repeat(64))).toEqual({ host: 'registry.example.com', path: 'team/app' });
    expect(placeOfImage('localhost/app')).toEqual({ host: 'localhost', path: 'app' });
    expect(placeOfImage('ubuntu:22.04')).toEqual({ host: 'docker.io', path: 'library/ubuntu' });
    expect(placeOfImage('someone/app:1')).toEqual({ host: 'docker.io', path: 'someone/app' });
    expect(placeOfImage('index.docker.io/someone/app')).toEqual({ host: 'docker.io', path: 'someone/app' });
  });
});

describe('coverage', () => {
  it('matches the host and a path prefix by whole components, longer prefixes scoring higher', () => {
    const image = placeOfImage('reg.example/team/app:1');
    expect(coverage({ host: 'reg.example', path: '' }, image)).toBe(0);
    expect(coverage({ host: 'reg.example', path: 'team' }, image)).toBe(4);
    expect(coverage({ host: 'reg.example', path: 'team/app' }, image)).toBe(8);
    expect(coverage({ host: 'reg.example', path: 'tea' }, image)).toBe(-1);
    expect(coverage({ host: 'reg.example:5000', path: '' }, image)).toBe(-1);
    expect(coverage({ host: 'other.example', path: '' }, image)).toBe(-1);
  });
});

describe('projectProblem and serverAddress', () => {
  it('checks projects as repository paths; gives the engine its address for Docker Hub', () => {
    expect(projectProblem('')).toBeUndefined();
    expect(projectProblem('team/sub')).toBeUndefined();
    expect(projectProblem('Team')).toMatch(/lowercase/);
    expect(serverAddress('docker.io')).toBe('https://index.docker.io/v1/');
    expect(serverAddress('127.0.0.1:5000')).toBe('127.0.0.1:5000');
  });
});
