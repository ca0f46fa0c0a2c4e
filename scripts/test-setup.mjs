// Checks what the test suite needs on this machine before it runs, and installs what is missing.
// Everything the tests use must be installable from here: CI runs on fresh machines.
import { execSync } from 'node:child_process';
import { existsSync } from 'node:fs';

const run = (cmd) => execSync(cmd, { stdio: 'inherit' });
const has = (cmd) => {
  try {
    execSync(`command -v ${cmd}`, { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
};

if (!existsSync(new URL('../node_modules/.package-lock.json', import.meta.url))) run('npm ci --no-audit --no-fund');

// Debian packages the agent tests drive: full-screen programs for the PTY tests, python3 for code-run.
const needed = { top: 'procps', vi: 'vim-tiny', python3: 'python3', git: 'git' };
const missing = [...new Set(Object.entries(needed).filter(([cmd]) => !has(cmd)).map(([, pkg]) => pkg))];
if (missing.length) {
  if (process.getuid?.() !== 0) {
    console.error(`Missing test prerequisites; install them with: sudo apt-get install -y ${missing.join(' ')}`);
    process.exit(1);
  }
  run('apt-get update -qq');
  run(`DEBIAN_FRONTEND=noninteractive apt-get install -y -qq ${missing.join(' ')}`);
}
