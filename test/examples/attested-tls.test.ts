// examples/attested-tls: the demo runs as its README says (built package), and prints that the
// parent relayed no plaintext. test/tls/mutual.test.ts plays the attacker on the same code.
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

describe('examples/attested-tls demo', () => {
  it('serves an attested https request and relays a mutually attested exchange with nothing in clear', () => {
    const out = execFileSync(process.execPath, [join(import.meta.dirname, '..', '..', 'examples', 'attested-tls', 'demo.mjs')], { encoding: 'utf8', timeout: 60_000 });
    expect(out).toMatch(/^https with an attested certificate \(PCR0 [0-9a-f]{16}…\): hello from the enclave$/m);
    expect(out).toMatch(/^planner → writer through the parent: ack \{"ack":"plan","from":"[0-9a-f]{16}"\}; the parent relayed \d+ bytes, "outline" in clear: false$/m);
  });
});
