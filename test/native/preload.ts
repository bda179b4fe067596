import { spawn } from 'node:child_process';

/**
 * LD_PRELOAD for a child that loads a test shim. Under `npm run test:native:sanitize` the
 * sanitizer runtime is already preloaded and must stay first, so the shim is appended.
 */
export function preload(shim: string): string {
  return [process.env.LD_PRELOAD, shim].filter(Boolean).join(' ');
}

/**
 * Runs `node script ...args` with `shim` preloaded and `env` added, and resolves with its stdout
 * once it exits 0 (rejects with its stderr otherwise, or after 20 s if it hangs).
 */
export function runShimmedChild(script: string, args: string[], shim: string, env: Record<string, string> = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [script, ...args], { env: { ...process.env, ...env, LD_PRELOAD: preload(shim) }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`child hung; stdout: ${stdout} stderr: ${stderr}`));
    }, 20_000);
    child.on('close', (code) => {
      clearTimeout(timer);
      if (code !== 0) return reject(new Error(`child exited ${code}: ${stderr}`));
      resolve(stdout);
    });
  });
}
