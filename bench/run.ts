/** Runs every benchmark in bench/, one after another, each printing its own table. */
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const dir = fileURLToPath(new URL('.', import.meta.url));
// Names to run (parts of file names); `--` (which npm may pass through) is not one.
const only = process.argv.slice(2).filter((a) => a !== '--');
const files = readdirSync(dir).filter((f) => f.endsWith('.ts') && !['lib.ts', 'run.ts'].includes(f) && (only.length === 0 || only.some((o) => f.includes(o))));
if (files.length === 0) {
  console.error(`no benchmark matches ${only.join(', ')}`);
  process.exit(1);
}
let failed = 0;
for (const file of files) {
  console.log(`\n## ${file}`);
  const result = spawnSync(process.execPath, ['--import', 'tsx', `${dir}${file}`], { stdio: 'inherit' });
  if (result.status !== 0) {
    failed++;
    console.error(`${file} failed (exit ${result.status ?? result.signal})`);
  }
}
if (failed) console.error(`${failed} of ${files.length} benchmarks failed`);
process.exitCode = failed ? 1 : 0;
