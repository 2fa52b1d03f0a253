/** Debian's `age` CLI, the requester's tool for encrypted copies. CI installs it (.ci/run); locally tests skip without it. */
import { spawnSync } from 'node:child_process';

export const ageCliAvailable: boolean = (() => {
  const available = spawnSync('age', ['--version'], { stdio: 'ignore' }).status === 0 && spawnSync('age-keygen', ['--version'], { stdio: 'ignore' }).status === 0;
  if (!available && process.env.CI) throw new Error('CI must test interoperability with the age CLI: install the Debian package age.');
  return available;
})();
