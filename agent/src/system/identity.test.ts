import { describe, expect, it } from 'vitest';
import { userGroups } from './identity';

describe('userGroups', () => {
  it('is the primary group, then every group that lists the account, once each', () => {
    const groups = 'root:x:0:\nsudo:x:27:alice,cove\naudio:x:29:cove\ndocker:x:999: cove \ncove:x:1000:\nstaff:x:50:covey\n\nbad line\n';
    expect(userGroups(groups, 'cove', 1000)).toEqual([1000, 27, 29, 999]);
    expect(userGroups(groups, 'alice', 1001)).toEqual([1001, 27]);
    expect(userGroups('', 'cove', 1000)).toEqual([1000]);
  });
});
