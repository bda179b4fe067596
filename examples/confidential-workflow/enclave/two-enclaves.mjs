// Two agent enclaves of different images (least privilege: each image carries only its agents):
//   image A "research": research and analysis, and the starter;
//   image B "report":   report.
// analysis (in A) hands its result to report (in B) over mutually attested TLS through the parent;
// Temporal carries only the sealed receipt. Both images get the same TSK (the key policy admits
// both PCR0s), so every state in Temporal stays sealed as in the one-enclave pipeline.
import { fetchParentFile, fromParentCredentials, getTrustedSessionKey } from 'nitro-enclave-sdk';
import { createNsmClient, openNsm } from 'nitro-enclave-sdk/nsm';
import { createAttestedTlsIdentity } from 'nitro-enclave-sdk/tls';
import { connectSocket, forwardTcpToVsock } from 'nitro-enclave-sdk/vsock';
import { serveSealedActivities } from 'nitro-enclave-sdk/workflow';
import { agents, fromBytes, toBytes } from './agents.mjs';
import { createHandoffSender, startHandoffReceiver } from './handoff.mjs';
import { HANDOFFS, ROUTES } from './steps.mjs';

/** The vsock port the parent relays handoffs on: A connects to the parent's, the parent to B's. */
export const HANDOFF_PORT = 6000;

async function attestedBasics(config) {
  const nsm = config.nsm ? createNsmClient(config.nsm) : await openNsm();
  const credentialsAddress = config.credentialsAddress ? { address: config.credentialsAddress } : {};
  const tsk = await getTrustedSessionKey({
    ciphertextBlob: config.ciphertextBlob ?? (await fetchParentFile('tsk', credentialsAddress)),
    keyId: config.keyId,
    region: config.region,
    credentials: config.credentials ?? fromParentCredentials(credentialsAddress),
    nsm,
    ...(config.transport ? { transport: config.transport } : {}),
    ...(config.attestationTrustAnchors ? { attestationTrustAnchors: config.attestationTrustAnchors } : {}),
    ...(config.tlsCa ? { tlsCa: config.tlsCa } : {}),
  });
  // The TLS key is made here and never leaves; the NSM commits to it in the certificate's document.
  const identity = await createAttestedTlsIdentity({ nsm });
  return { tsk, identity };
}

/** What the other image must show: PCRs from this image (never the parent), and test trust anchors if any. */
function peerOptions(config) {
  if (!config.peerPcrs) throw new TypeError('peerPcrs (the other image’s PCRs, baked into this image) is required');
  return { expectedPcrs: config.peerPcrs, ...(config.attestationTrustAnchors ? { trustAnchors: config.attestationTrustAnchors } : {}) };
}

/**
 * Serves `handlers` as sealed activities (vsock 5000 by default). `extra` is the image's handoff
 * end (A's forwarder or B's receiver): returned beside the server and closed after it.
 */
function serveAgents(config, { tsk, identity, handlers, extra }) {
  const server = serveSealedActivities({ listen: config.listen ?? { family: 'vsock', cid: 0xffffffff, port: 5000 }, key: tsk, handlers });
  return {
    tsk,
    identity,
    server,
    ...extra,
    async close() {
      await server.close();
      for (const part of Object.values(extra)) await part.close();
      identity.close();
      tsk.dispose();
    },
  };
}

/**
 * Image A: serves research and analysis. analysis sends its result to image B over attested TLS
 * (through `handoffTarget`, the parent's vsock port, reached from a loopback TCP forwarder) and
 * returns B's receipt, which the sealed-activity server seals for report, step 3.
 */
export async function startResearchEnclave(config) {
  const { tsk, identity } = await attestedBasics(config);
  const target = config.handoffTarget ?? { cid: 3, port: HANDOFF_PORT };
  // Clients that only take host:port reach the parent through a TCP-to-vsock forwarder (native relay).
  const forwarder = await forwardTcpToVsock({ listen: { port: 0 }, target: { cid: target.cid ?? 3, port: target.port ?? HANDOFF_PORT }, ...(config.connectHandoff ? { connect: config.connectHandoff } : {}) });
  const sender = createHandoffSender({ identity, receivers: peerOptions(config), connect: async () => ({ host: forwarder.host, port: forwarder.port }), timeoutMs: config.handoffTimeoutMs ?? 30_000 });
  const handlers = {
    research: { ...ROUTES.research, run: (plaintext) => toBytes(agents.research(fromBytes(plaintext))) },
    analysis: {
      ...ROUTES.analysis,
      async run(plaintext, context) {
        const result = toBytes(agents.analysis(fromBytes(plaintext)));
        try {
          // The binding comes from the authenticated input state: this workflow, this run, the next step.
          const receipt = await sender.send({ workflowId: context.workflowId, chainId: context.chainId, seq: context.seq + 1, ...HANDOFFS.analysis }, result, { signal: context.signal });
          return toBytes(receipt);
        } finally {
          result.fill(0);
        }
      },
    },
  };
  return serveAgents(config, { tsk, identity, handlers, extra: { forwarder } });
}

/**
 * Image B: serves report. Its input state (sealed by A's server for report, step 3) holds B's own
 * receipt; the result it names arrived over attested TLS from image A on `handoffListen`.
 */
export async function startReportEnclave(config) {
  const { tsk, identity } = await attestedBasics(config);
  const receiver = startHandoffReceiver({
    identity,
    senders: peerOptions(config),
    accepts: Object.values(HANDOFFS),
    listen: config.handoffListen ?? { family: 'vsock', cid: 0xffffffff, port: HANDOFF_PORT },
    ...(config.onHandoffRefused ? { onRefused: config.onHandoffRefused } : {}),
  });
  const handlers = {
    report: {
      ...ROUTES.report,
      run(plaintext, context) {
        const result = receiver.redeem(fromBytes(plaintext), context);
        try {
          return toBytes(agents.report(fromBytes(result)));
        } finally {
          result.fill(0);
        }
      },
    },
  };
  return serveAgents(config, { tsk, identity, handlers, extra: { receiver } });
}

/** For tests and the demo: a stand-in `connectHandoff` that reaches the parent over AF_UNIX instead of vsock. */
export const unixHandoff = (path) => () => connectSocket({ family: 'unix', path }, { allowHalfOpen: true });
