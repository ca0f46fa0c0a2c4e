import { describe, expect, it } from 'vitest';
import { planAccount } from './accounts';

const passwd = 'root:x:0:0:root:/root:/bin/bash\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n';
const group = 'root:x:0:\nnogroup:x:65534:\n';

describe('planAccount', () => {
  it('takes uid and gid 1000 in a bare image, with its own group, home and bash', () => {
    expect(planAccount({ name: 'cove', passwd, group, hasBash: true })).toEqual({
      uid: 1000,
      gid: 1000,
      home: '/home/cove',
      shell: '/bin/bash',
      passwdLine: 'cove:x:1000:1000::/home/cove:/bin/bash',
      groupLine: 'cove:x:1000:',
    });
    expect(planAccount({ name: 'cove', passwd, group, hasBash: false }).shell).toBe('/bin/sh');
  });

  it('skips ids the image uses, as uid or as gid, so that both are the same number', () => {
    const busy = planAccount({ name: 'cove', passwd: `${passwd}node:x:1000:1000::/home/node:/bin/sh\n`, group: `${group}node:x:1000:\nstaff:x:1001:\n`, hasBash: true });
    expect([busy.uid, busy.gid]).toEqual([1002, 1002]);
  });

  it('joins the group of the same name when the image has one', () => {
    const plan = planAccount({ name: 'cove', passwd, group: `${group}cove:x:4242:\n`, hasBash: true });
    expect(plan).toMatchObject({ uid: 1000, gid: 4242, groupLine: undefined });
  });

  it('refuses names that would corrupt the files', () => {
    for (const bad of ['a:b', 'x\nroot:x:0:0::/:/bin/sh', '', '-rf']) expect(() => planAccount({ name: bad, passwd, group, hasBash: true }), bad).toThrow();
  });
});
