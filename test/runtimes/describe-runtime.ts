import { describe, it } from 'vitest';
import { IN_CI, type Runtime } from './harness.js';

/**
 * `describe` for one runtime. Missing runtime: fails under CI=true, otherwise skipped with a
 * loud warning (vitest lists the tests as skipped, never as passed).
 */
export function describeRuntime(runtime: Runtime, body: () => void): void {
  const missing = runtime.missing();
  if (missing && IN_CI) {
    describe(runtime.name, () => {
      it(`is installed (CI=true: no runtime may be skipped)`, () => {
        throw new Error(`${runtime.name} is missing: ${missing}`);
      });
    });
    return;
  }
  if (missing) console.warn(`\n!!! [runtime tests] SKIPPED ${runtime.name}: ${missing}\n`);
  describe.skipIf(missing !== null)(runtime.name, body);
}
