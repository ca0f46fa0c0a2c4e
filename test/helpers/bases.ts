import { Readable } from 'node:stream';
import { chmodSync, mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { BASE_IMAGE } from '../../images/src/base';
import { CONTENT_HASH_LABEL, defaultCacheDir, ensureImages } from '../../images/src/build';
import { BUSYBOX_IMAGE, buildBusyboxImage, importBusyboxRoot } from '../../images/src/busybox';
import { docker, imageLabel, run, sha256, withLock, type BuildLog } from '../../images/src/host';

/**
 * Base images of the kinds people start sandboxes from, built here from Debian packages since no public registry can
 * be reached: each stands in for a family of public images, and says which.
 */
export interface TestBase {
  /** Short name: busybox, musl, debian, python, node. */
  key: string;
  image: string;
  /** What it stands in for. */
  standsFor: string;
  /** The account user code runs as there, and its home. */
  user: string;
  home: string;
  /** The working directory of commands (the image's WORKDIR, else the user's home). */
  workdir: string;
  /** Commands the image has. */
  has: { git: boolean; python: boolean };
}

/** Alpine-like: musl's loader and libc and busybox's userland, an /etc/passwd with users; no glibc, no package manager. */
const MUSL_IMAGE = 'cove-test-musl:latest';
/** python:*-like: Debian's python3 on the Debian base; USER is a bare uid, WORKDIR /app, CMD a Python web server. */
const PYTHON_IMAGE = 'cove-test-python:latest';
/** node:*-like: Debian's nodejs and git; a `node` account, no USER, ENTRYPOINT docker-entrypoint.sh, CMD node. */
const NODE_IMAGE = 'cove-test-node:latest';

/** Bumped when the musl image's recipe changes (its content hash includes it). */
const MUSL_RECIPE = 2;

const MUSL_PASSWD = [
  'root:x:0:0:root:/root:/bin/sh',
  'daemon:x:2:2:daemon:/sbin:/sbin/nologin',
  'guest:x:405:100:guest:/dev/null:/sbin/nologin',
  'nobody:x:65534:65534:nobody:/:/sbin/nologin',
].join('\n');
const MUSL_GROUP = ['root:x:0:root', 'daemon:x:2:root,bin,daemon', 'users:x:100:games', 'nogroup:x:65533:', 'nobody:x:65534:'].join('\n');

const PYTHON_DOCKERFILE = `FROM ${BASE_IMAGE}
RUN apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3 >/dev/null \\
 && rm -rf /var/lib/apt/lists/* && ln -s python3 /usr/bin/python
RUN useradd --uid 1000 --create-home --shell /bin/bash app && mkdir /app && chown app:app /app
WORKDIR /app
USER 1000
CMD ["python3", "-m", "http.server", "8080"]
`;

const NODE_DOCKERFILE = `FROM ${BASE_IMAGE}
RUN apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nodejs git ca-certificates >/dev/null \\
 && rm -rf /var/lib/apt/lists/*
RUN groupadd --gid 1000 node && useradd --uid 1000 --gid node --create-home --shell /bin/bash node
RUN printf '#!/bin/sh\\nset -e\\nif [ "\${1#-}" != "$1" ]; then set -- node "$@"; fi\\nexec "$@"\\n' > /usr/local/bin/docker-entrypoint.sh \\
 && chmod 755 /usr/local/bin/docker-entrypoint.sh
ENTRYPOINT ["docker-entrypoint.sh"]
CMD ["node"]
`;

/** The bases the tests prove, with what each should give user code. */
export const TEST_BASES: readonly TestBase[] = [
  { key: 'busybox', image: BUSYBOX_IMAGE, standsFor: 'busybox', user: 'cove', home: '/home/cove', workdir: '/home/cove', has: { git: false, python: false } },
  { key: 'musl', image: MUSL_IMAGE, standsFor: 'alpine', user: 'cove', home: '/home/cove', workdir: '/home/cove', has: { git: false, python: false } },
  { key: 'debian', image: BASE_IMAGE, standsFor: 'debian:*-slim, ubuntu', user: 'cove', home: '/home/cove', workdir: '/home/cove', has: { git: false, python: false } },
  { key: 'python', image: PYTHON_IMAGE, standsFor: 'python:*', user: 'app', home: '/home/app', workdir: '/app', has: { git: false, python: true } },
  { key: 'node', image: NODE_IMAGE, standsFor: 'node:*', user: 'cove', home: '/home/cove', workdir: '/home/cove', has: { git: true, python: false } },
];

let ensured: Promise<readonly TestBase[]> | undefined;

/**
 * Builds the test bases once per process (and the default images first: the Debian ones are built from
 * cove-base:bookworm). Each is kept while an image of that name carries the same content hash; concurrent runs wait
 * for each other through a lock in the cache dir. The Debian-based ones install packages with apt from Debian's
 * mirror (network during `docker build`); the musl one is made from Debian's musl and busybox-static on the host.
 */
export function ensureTestBases(log: BuildLog = (line) => process.stderr.write(`[bases] ${line}\n`)): Promise<readonly TestBase[]> {
  ensured ??= (async () => {
    await ensureImages(log);
    await withLock(path.join(defaultCacheDir(), 'test-bases.lock'), log, async () => {
      await buildBusyboxImage({ log });
      await buildMuslImage(log);
      const baseId = docker(['image', 'inspect', '--format', '{{.Id}}', BASE_IMAGE]);
      await buildFromDockerfile(PYTHON_IMAGE, PYTHON_DOCKERFILE, baseId, log);
      await buildFromDockerfile(NODE_IMAGE, NODE_DOCKERFILE, baseId, log);
    });
    return TEST_BASES;
  })().catch((err) => {
    ensured = undefined;
    throw err;
  });
  return ensured;
}

async function buildMuslImage(log: BuildLog): Promise<void> {
  const hash = sha256(`musl recipe ${MUSL_RECIPE}`, MUSL_PASSWD, MUSL_GROUP);
  if (imageLabel(MUSL_IMAGE, CONTENT_HASH_LABEL) === hash) return;
  await replacing(MUSL_IMAGE, () => importBusyboxRoot({
    name: MUSL_IMAGE,
    packages: ['musl'],
    changes: [`LABEL ${CONTENT_HASH_LABEL}=${hash}`],
    log,
    prepare(rootfs) {
      // Alpine's name for the libc, beside the loader's (/lib/ld-musl-x86_64.so.1, from the package).
      symlinkSync('x86_64-linux-musl/libc.so', path.join(rootfs, 'lib/libc.musl-x86_64.so.1'));
      mkdirSync(path.join(rootfs, 'etc'), { recursive: true });
      writeFileSync(path.join(rootfs, 'etc/passwd'), `${MUSL_PASSWD}\n`);
      writeFileSync(path.join(rootfs, 'etc/group'), `${MUSL_GROUP}\n`);
      writeFileSync(
        path.join(rootfs, 'etc/os-release'),
        'NAME="Cove test musl"\nID=cove-test-musl\nPRETTY_NAME="Stand-in for Alpine: musl libc and busybox, from Debian packages"\n',
      );
      mkdirSync(path.join(rootfs, 'root'), { mode: 0o700 });
      chmodSync(path.join(rootfs, 'root'), 0o700);
      mkdirSync(path.join(rootfs, 'home'));
    },
  }));
}

/** `docker build` of a Dockerfile without context (from stdin), labelled with the hash of it and of its base. */
async function buildFromDockerfile(name: string, dockerfile: string, baseId: string, log: BuildLog): Promise<void> {
  const hash = sha256(dockerfile, baseId);
  if (imageLabel(name, CONTENT_HASH_LABEL) === hash) return;
  log(`docker build ${name} (apt-get from Debian's mirror)`);
  await replacing(name, () => run('docker', ['build', '-q', '--label', `${CONTENT_HASH_LABEL}=${hash}`, '-t', name, '-'], { input: Readable.from([dockerfile]), log }));
}

/** Runs a build of `name`, then removes the image it replaced (an older recipe's) unless something still uses it. */
async function replacing(name: string, build: () => Promise<void>): Promise<void> {
  let previous: string | undefined;
  try {
    previous = docker(['image', 'inspect', '--format', '{{.Id}}', name]);
  } catch {
    /* first build */
  }
  await build();
  if (previous && previous !== docker(['image', 'inspect', '--format', '{{.Id}}', name])) {
    try {
      docker(['image', 'rm', previous]);
    } catch {
      // Used by a container or another tag: left alone.
    }
  }
}
