// Inside the enclave: the gateway's three operations. `attest` hands out a document binding the
// browser's nonce and the receiver's HPKE key; `intake` opens a browser's sealed request (the
// workflow's input, relayed by the parent's worker), draws the run's chain id and seals the first
// agent's state under the TSK; `deliver` opens the last agent's state and seals the report to the key
// the browser put inside its request. No operation answers with plaintext.
import { NitroEnclaveError } from 'nitro-enclave-sdk';
import { listenSocket } from 'nitro-enclave-sdk/vsock';
import { newChainId, openState, sealState, serveSealedActivities } from 'nitro-enclave-sdk/workflow';
import { createAttestedReceiver } from 'nitro-enclave-sdk/seal';
import { agents, fromBytes, toBytes } from '../../confidential-workflow/enclave/agents.mjs';
import { base64url, GatewayFormatError, parseRequest, REQUEST_INFO, requestHashOf, sealResponse, WORKFLOW_ID_PREFIX } from '../wire.mjs';

const encoder = new TextEncoder();
const fromBase64 = (text) => new Uint8Array(Buffer.from(text, 'base64'));
const toBase64 = (bytes) => Buffer.from(bytes).toString('base64');

/** Where the request's state goes first, and what deliver accepts: part of the image (PCR0). */
export const INTAKE = { activity: 'research', seq: 1, producer: 'intake' };
export const DELIVER = { activity: 'deliver', seq: 4, producer: 'report' };
export const ROUTES = {
  research: { from: 'intake', next: 'analysis' },
  analysis: { from: 'research', next: 'report' },
  report: { from: 'analysis', next: 'deliver' },
};

/**
 * The agents as sealed-activity handlers. Each state is `{ reply, data }`: the agent sees `data`,
 * and `reply` (request id, chain id, the browser's response key, the request's hash) rides along,
 * sealed, to `deliver`: the parent never holds the response key except inside ciphertext.
 */
export const handlers = Object.fromEntries(
  Object.entries(agents).map(([name, agent]) => [
    name,
    {
      ...ROUTES[name],
      run(plaintext) {
        const { reply, data } = fromBytes(plaintext);
        return toBytes({ reply, data: agent(data) });
      },
    },
  ]),
);

/** The operations, transport-free (tests call them directly too). */
export function createBrowserService({ tsk, receiver }) {
  async function intake(workflowId, sealed) {
    const requestHash = await requestHashOf(sealed);
    // With replayWindowMs the receiver opens each request once: the parent cannot start it twice.
    const plaintext = await receiver.open(sealed, { info: encoder.encode(REQUEST_INFO) });
    try {
      const request = parseRequest(plaintext);
      // The browser chose the request id; the workflow id must be made from it, so the parent cannot
      // run this request under another workflow id (Temporal keeps one open run per id).
      if (workflowId !== WORKFLOW_ID_PREFIX + request.requestId) throw new GatewayFormatError(`the workflow id is not ${WORKFLOW_ID_PREFIX}<the request's id>`);
      const chainId = newChainId();
      const state = toBytes({
        reply: { requestId: request.requestId, chainId, responseKey: base64url.encode(request.responseKey), requestHash: base64url.encode(requestHash) },
        data: { question: request.question, sources: request.sources },
      });
      try {
        return sealState(tsk, state, { workflowId, chainId, ...INTAKE });
      } finally {
        state.fill(0);
      }
    } finally {
      plaintext.fill(0);
    }
  }

  async function deliver(workflowId, state) {
    // Any chain here; the chain id intake drew travels inside the sealed state and must match.
    const opened = openState(tsk, state, { workflowId, chainId: null, ...DELIVER });
    try {
      const { reply, data } = fromBytes(opened.plaintext);
      if (reply.chainId !== opened.binding.chainId) throw new NitroEnclaveError('ERR_SEALED_WRONG_CHAIN', 'the report belongs to another run than its request');
      if (workflowId !== WORKFLOW_ID_PREFIX + reply.requestId) throw new GatewayFormatError('the report belongs to another request');
      return sealResponse({ responseKey: base64url.decode(reply.responseKey), requestHash: base64url.decode(reply.requestHash), requestId: reply.requestId, chainId: reply.chainId, report: data });
    } finally {
      opened.plaintext.fill(0);
    }
  }

  return {
    intake,
    deliver,
    /** One JSON request line → one JSON answer line; errors carry only their code. */
    async handleLine(line) {
      try {
        const r = JSON.parse(line);
        if (r.op === 'attest' && typeof r.nonce === 'string') return { ok: true, document: toBase64(await receiver.attest(fromBase64(r.nonce))) };
        if (r.op === 'intake' && typeof r.workflowId === 'string' && typeof r.sealed === 'string') return { ok: true, state: toBase64(await intake(r.workflowId, fromBase64(r.sealed))) };
        if (r.op === 'deliver' && typeof r.workflowId === 'string' && typeof r.state === 'string') return { ok: true, sealed: toBase64(await deliver(r.workflowId, fromBase64(r.state))) };
        return { ok: false, error: 'BAD_REQUEST' };
      } catch (err) {
        return { ok: false, error: err instanceof NitroEnclaveError || err instanceof GatewayFormatError ? err.code : 'BAD_REQUEST' };
      }
    },
  };
}

/** Serves the line protocol on a stream socket (vsock in the enclave); answers in request order. */
export function serveLines(service, socket, { maxLineBytes = 256 * 1024 } = {}) {
  let buffer = '';
  let queue = Promise.resolve();
  socket.setEncoding('utf8');
  socket.on('error', () => socket.destroy());
  socket.on('data', (chunk) => {
    buffer += chunk;
    let at;
    while ((at = buffer.indexOf('\n')) >= 0) {
      const line = buffer.slice(0, at);
      buffer = buffer.slice(at + 1);
      if (line.trim()) queue = queue.then(async () => socket.write(`${JSON.stringify(await service.handleLine(line))}\n`));
    }
    if (buffer.length > maxLineBytes) socket.destroy();
  });
}

/**
 * Starts the browser gateway's enclave side on a TSK the enclave already holds: the HPKE receiver
 * (made here; replay protection on), the agents as sealed activities, and the gateway operations.
 */
export async function startBrowserEnclave({ tsk, nsm, agentsListen, serviceListen, replayWindowMs = 5 * 60_000 }) {
  const receiver = await createAttestedReceiver({ nsm, replayWindowMs });
  const service = createBrowserService({ tsk, receiver });
  const agentServer = serveSealedActivities({ listen: agentsListen, key: tsk, handlers });
  const listener = listenSocket(serviceListen, (socket) => serveLines(service, socket));
  return {
    receiver,
    service,
    async close() {
      listener.close();
      await agentServer.close();
    },
  };
}
