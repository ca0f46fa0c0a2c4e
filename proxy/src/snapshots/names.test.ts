import { describe, expect, it } from 'vitest';
import { CoveError } from '../../../lib/errors';
import { parseSnapshotName } from './names';

/** The message of the 400 a name gets. */
function refusal(name: string): string {
  try {
    parseSnapshotName(name);
  } catch (err) {
    expect(err).toBeInstanceOf(CoveError);
    expect((err as CoveError).status).toBe(400);
    return (err as CoveError).message;
  }
  throw new Error(`${name} was accepted`);
}

describe('parseSnapshotName', () => {
  it('reads image names as Docker does, tag latest when none is given', () => {
    expect(parseSnapshotName('my-snapshot')).toEqual({ repository: 'my-snapshot', tag: 'latest' });
    expect(parseSnapshotName('team/app.v2:Build_7')).toEqual({ repository: 'team/app.v2', tag: 'Build_7' });
    expect(parseSnapshotName('example.com/a__b/c-d')).toEqual({ repository: 'example.com/a__b/c-d', tag: 'latest' });
  });

  it('says what is wrong with a name that no image can have', () => {
    expect(refusal('')).toMatch(/^Invalid snapshot name "": a name is required/);
    expect(refusal('My Snapshot')).toMatch(/spaces and control characters are not allowed/);
    expect(refusal('a\nb')).toMatch(/spaces and control characters/);
    expect(refusal('MySnapshot')).toMatch(/^Invalid snapshot name "MySnapshot": image names are lowercase/);
    expect(refusal('snap:')).toMatch(/the tag after ':'/);
    expect(refusal('snap:.hidden')).toMatch(/the tag after ':'/);
    expect(refusal(`snap:${'t'.repeat(129)}`)).toMatch(/the tag after ':'/);
    expect(refusal(`snap@sha256:${'a'.repeat(64)}`)).toMatch(/a digest/);
    expect(refusal('-snap')).toMatch(/each part between '\/'/);
    expect(refusal('a//b')).toMatch(/each part between '\/'/);
    expect(refusal('localhost:5000/snap')).toMatch(/no registry port/);
    expect(refusal(':v1')).toMatch(/each part between '\/'/);
    expect(refusal('x'.repeat(256))).toMatch(/at most 255 characters/);
    expect(refusal('ab'.repeat(32))).toMatch(/would read as an image id/);
  });

  it("keeps the repository of fork images for Cove's forks", () => {
    expect(refusal('cove-fork')).toMatch(/cove-fork is the name of the images Cove keeps for forks/);
    expect(refusal('cove-fork:mine')).toMatch(/cove-fork is the name/);
    expect(parseSnapshotName('cove-fork-2')).toEqual({ repository: 'cove-fork-2', tag: 'latest' });
  });
});
