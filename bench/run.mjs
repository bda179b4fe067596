// `npm run bench`: prints figures and ratios against floors measured in the same run.
import { cpus } from 'node:os';
import { benchAttestation } from './attestation.mjs';
import { benchKeygen } from './keygen.mjs';
import { benchRelay } from './relay.mjs';
import { benchTsk } from './tsk.mjs';
import { benchDeps } from './deps.mjs';
import { benchEnvelopeIsolated } from './envelope.mjs';
import { benchWorkflow } from './workflow.mjs';
import { benchSeal } from './seal.mjs';
import { benchCodec } from './codec.mjs';
import { benchTls } from './tls.mjs';
import { captureMarkdown } from './markdown.mjs';

const finish = process.argv.includes('--markdown') ? captureMarkdown(new URL('../docs/performance.md', import.meta.url)) : () => {};

console.log(`# nitro-enclave-sdk bench — node ${process.version}, ${cpus().length} x ${cpus()[0]?.model ?? 'cpu'}`);
await benchAttestation();
await benchTsk();
await benchEnvelopeIsolated();
await benchWorkflow();
await benchKeygen();
await benchRelay();
await benchDeps();
await benchSeal();
await benchCodec();
await benchTls();
finish();
