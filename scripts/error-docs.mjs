// Renders docs/errors.md from ERROR_INFO (src/errors.ts, via dist/). `npm run docs:errors` writes
// it; test/docs/errors-doc.test.ts fails when the committed file is stale.
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/** Groups in the order the layers stack; a code goes to the first prefix it matches. */
const GROUPS = [
  ['Attestation (`nitro-enclave-sdk/attestation`)', 'ERR_ATTESTATION_'],
  ['CMS envelopes (`nitro-enclave-sdk/kms`)', 'ERR_CMS_'],
  ['Nitro Secure Module and native helper (`nitro-enclave-sdk/nsm`)', 'ERR_NSM_', 'ERR_NATIVE_'],
  ['vsock (`nitro-enclave-sdk/vsock`)', 'ERR_VSOCK_'],
  ['Parent bootstrap (credentials and files from the parent)', 'ERR_PARENT_'],
  ['Attested KMS (`getTrustedSessionKey`, the Recipient client)', 'ERR_KMS_'],
  ['Trusted Session Key envelopes', 'ERR_TSK_'],
  ['Sealing to an attested enclave (`nitro-enclave-sdk/seal`)', 'ERR_SEAL_'],
  ['Attested TLS (`nitro-enclave-sdk/tls`)', 'ERR_TLS_'],
  ['Sealed workflow state and activities (`nitro-enclave-sdk/workflow`)', 'ERR_SEALED_', 'ERR_WORKFLOW_', 'ERR_ACTIVITY_'],
  ['Temporal payload codec (`nitro-enclave-sdk/temporal`)', 'ERR_CODEC_', 'ERR_TEMPORAL_'],
];

const cell = (s) => s.replace(/\|/g, '\\|').replace(/\n/g, ' ');

export function renderErrorDocs(info) {
  const codes = Object.keys(info);
  const placed = new Set();
  const out = [
    '# Error codes',
    '',
    '<!-- Generated from ERROR_INFO in src/errors.ts by `npm run docs:errors`. Do not edit by hand. -->',
    '',
    'Every failure is a `NitroEnclaveError` with a stable `code`: switch on the code, not on the message.',
    'Invalid *options* throw a plain `TypeError` before anything is done. Messages name fields, lengths',
    'and public measurements (PCRs), never key material or plaintext. `ERROR_INFO[code]` holds the same',
    'text at run time.',
  ];
  const groups = [...GROUPS, ['Other', '']];
  for (const [title, ...prefixes] of groups) {
    const mine = codes.filter((c) => !placed.has(c) && prefixes.some((p) => c.startsWith(p)));
    if (mine.length === 0) continue;
    out.push('', `## ${title}`, '', '| code | when | what to do |', '| --- | --- | --- |');
    for (const code of mine) {
      placed.add(code);
      out.push(`| \`${code}\` | ${cell(info[code].when)} | ${cell(info[code].remedy)} |`);
    }
  }
  return out.join('\n') + '\n';
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const { ERROR_INFO } = await import('../dist/errors.js');
  const target = fileURLToPath(new URL('../docs/errors.md', import.meta.url));
  writeFileSync(target, renderErrorDocs(ERROR_INFO));
  console.log(`wrote ${target} (${Object.keys(ERROR_INFO).length} codes)`);
}
