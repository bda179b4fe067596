/**
 * LD_PRELOAD for a child that loads a test shim. Under `npm run test:native:sanitize` the
 * sanitizer runtime is already preloaded and must stay first, so the shim is appended.
 */
export function preload(shim: string): string {
  return [process.env.LD_PRELOAD, shim].filter(Boolean).join(' ');
}
