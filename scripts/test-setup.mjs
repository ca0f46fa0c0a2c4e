// Makes this machine ready for the test suite: dependencies, and the Debian packages the tests drive.
// Every install step lives here or in .ci/run: CI runs on fresh machines.
import { execSync } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';

const root = new URL('..', import.meta.url);
const run = (cmd) => execSync(cmd, { stdio: 'inherit', cwd: root });
const has = (cmd) => {
  try {
    execSync(`command -v ${cmd}`, { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
};

const installed = new URL('node_modules/.package-lock.json', root);
if (!existsSync(installed) || statSync(installed).mtimeMs < statSync(new URL('package-lock.json', root)).mtimeMs) {
  run('npm ci --no-audit --no-fund');
}

// Commands the tests run: full-screen programs for the PTY tests, python3 for code-run, git, and Debian's Chromium
// for the preview browser tests (driven by playwright-core, which never downloads a browser of its own).
const needed = {
  top: 'procps', vi: 'vim-tiny', python3: 'python3', git: 'git', curl: 'curl', chromium: 'chromium',
  // The SSH gateway tests drive the real OpenSSH client and a terminal multiplexer.
  ssh: 'openssh-client', scp: 'openssh-client', sftp: 'openssh-client', 'ssh-keyscan': 'openssh-client', tmux: 'tmux',
  // OpenSSH's SFTP server, which the agent runs for SFTP (and the agent bundle carries).
  '/usr/lib/openssh/sftp-server': 'openssh-sftp-server',
  // The storage-opt disk test: a second Docker engine on a file system with quotas made on a loop device (xfs with
  // project quotas, or btrfs where the kernel has no XFS quotas).
  '/usr/sbin/mkfs.xfs': 'xfsprogs', '/usr/sbin/mkfs.btrfs': 'btrfs-progs',
  // The registry tests: a real registry on loopback (the CNCF distribution registry) and htpasswd for its credentials.
  'docker-registry': 'docker-registry', htpasswd: 'apache2-utils',
};
const missing = [...new Set(Object.entries(needed).filter(([cmd]) => !has(cmd)).map(([, pkg]) => pkg))];
if (missing.length) {
  if (process.getuid?.() !== 0) {
    console.error(`Missing test prerequisites; install them with: sudo apt-get install -y ${missing.join(' ')}`);
    process.exit(1);
  }
  run('apt-get update -qq');
  run(`DEBIAN_FRONTEND=noninteractive apt-get install -y -qq ${missing.join(' ')}`);
}

// matplotlib for the chart tests (interpreter and code-run), from Debian as the default image has it. The tests
// use the first python3 on PATH that imports it, or Debian's /usr/bin/python3 (where apt installs it).
const importsMatplotlib = (python) => {
  try {
    execSync(`${python} -c 'import matplotlib'`, { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
};
if (!importsMatplotlib('python3') && !importsMatplotlib('/usr/bin/python3')) {
  if (process.getuid?.() !== 0) {
    console.error('Missing test prerequisite matplotlib; install it with: sudo apt-get install -y python3-matplotlib');
    process.exit(1);
  }
  run('apt-get update -qq');
  run('DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-matplotlib');
}

// gVisor's runsc, for the sandboxes of `cove serve --runtime runsc` (test/proxy/runsc.test.ts); Cove registers it with
// the Docker engine itself. Debian has it from bookworm on, Ubuntu from 23.04.
if (!has('runsc')) {
  const how = 'sudo apt-get install -y runsc (or see https://gvisor.dev/docs/user_guide/install/)';
  if (process.getuid?.() !== 0) {
    console.error(`Missing test prerequisite runsc (gVisor); install it with: ${how}`);
    process.exit(1);
  }
  try {
    run('apt-get update -qq');
    run('DEBIAN_FRONTEND=noninteractive apt-get install -y -qq runsc');
  } catch (err) {
    console.error(`Could not install runsc (gVisor), which test/proxy/runsc.test.ts needs (${err.message.split('\n')[0]}); install it with: ${how}`);
    // Under CI nothing is silently skipped; elsewhere that test file fails alone, saying the same.
    if (process.env.CI) process.exit(1);
  }
}

// The Docker engine (installed and started when it is missing or stopped, as root) and the images the tests start:
// `cove images build` does both, as `cove serve` does at its start. Once here, so no test file waits for a build.
execSync(`"${process.execPath}" bin/cove.mjs images build`, { stdio: ['ignore', 'ignore', 'inherit'], cwd: root });
