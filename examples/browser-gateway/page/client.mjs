// The page's logic, bundled for browsers by build.mjs. Verifies the enclave (a fresh document for
// each question), seals the question with a response key made for it, asks the gateway, and opens
// the sealed report here. The expected PCR0 comes from the URL fragment (never sent to the gateway).
import { createEnclaveSealer } from 'nitro-enclave-sdk/seal';
import { encodeRequest, hex, openResponse, REQUEST_INFO } from '../wire.mjs';

const $ = (id) => document.getElementById(id);
const encoder = new TextEncoder();
const base64 = {
  encode(bytes) {
    let text = '';
    for (const b of bytes) text += String.fromCharCode(b);
    return btoa(text);
  },
  decode: (text) => Uint8Array.from(atob(text), (c) => c.charCodeAt(0)),
};

const fragment = new URLSearchParams(location.hash.slice(1));
$('pcr0').value = fragment.get('pcr0') ?? '';
$('anchor').value = fragment.get('anchor') ?? '';

async function post(op, body) {
  const res = await fetch(new URL(op, location.href), { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  const answer = await res.json().catch(() => ({}));
  if (res.status === 202 && answer.error === 'PENDING') return { pending: true };
  if (!res.ok || !answer.ok) throw Object.assign(new Error(`the gateway refused ${op}`), { code: answer.error ?? `HTTP_${res.status}` });
  return answer;
}

function show(id, state, text) {
  $(id).dataset.state = state;
  $(id).textContent = text;
}

/** A sealer for the enclave, from a document bound to a fresh nonce, verified here. */
async function verifiedSealer() {
  const pcr0 = $('pcr0').value.trim();
  const anchor = $('anchor').value.trim();
  const nonce = crypto.getRandomValues(new Uint8Array(32));
  const answer = await post('attest', { nonce: base64.encode(nonce) });
  const sealer = await createEnclaveSealer(base64.decode(answer.document), {
    expected: { pcrs: { 0: pcr0 }, nonce, maxAgeMs: 5 * 60_000 },
    ...(anchor ? { trustAnchors: [anchor] } : {}),
    info: encoder.encode(REQUEST_INFO),
  });
  const at = sealer.attestation;
  const box = $('enclave');
  box.dataset.state = 'verified';
  const pcr0Code = Object.assign(document.createElement('code'), { id: 'verified-pcr0', textContent: at.pcrsHex[0] });
  box.replaceChildren('Verified enclave: image PCR0 ', pcr0Code, ` (module ${at.moduleId}, document of ${at.timestamp.toISOString()}, nonce checked).`);
  return sealer;
}

async function verify() {
  try {
    await verifiedSealer();
  } catch (err) {
    show('enclave', 'error', `Not verified: ${err.code ?? err.name}: ${err.message}`);
  }
}

function render(report, chainId) {
  const box = $('report');
  box.replaceChildren();
  const h = document.createElement('h2');
  h.textContent = report.title;
  const verdict = document.createElement('p');
  verdict.id = 'verdict';
  verdict.textContent = `Verdict: ${report.verdict} (confidence ${report.confidence})`;
  const list = document.createElement('ul');
  for (const c of report.citations) list.append(Object.assign(document.createElement('li'), { textContent: c }));
  const run = document.createElement('p');
  run.innerHTML = '<small></small>';
  run.firstChild.textContent = `Run ${chainId}, opened in this page.`;
  box.append(h, verdict, list, run);
  box.hidden = false;
}

$('verify').addEventListener('click', verify);
$('form').addEventListener('submit', async (event) => {
  event.preventDefault();
  $('ask').disabled = true;
  $('report').hidden = true;
  const plaintext = [];
  try {
    show('status', 'working', 'verifying the enclave…');
    const sealer = await verifiedSealer();
    // The response key: made for this question, private half non-extractable, public half sealed inside the request.
    const keyPair = await crypto.subtle.generateKey({ name: 'ECDH', namedCurve: 'P-256' }, false, ['deriveBits']);
    const responseKey = new Uint8Array(await crypto.subtle.exportKey('raw', keyPair.publicKey));
    const requestId = hex(crypto.getRandomValues(new Uint8Array(16)));
    const sources = $('sources').value.split('\n').map((s) => s.trim()).filter(Boolean);
    const request = encodeRequest({ requestId, responseKey, question: $('question').value.trim(), sources });
    plaintext.push(request);
    const sealedRequest = await sealer.seal(request);
    show('status', 'working', `question sealed (${sealedRequest.length} bytes); the agents are working…`);
    await post('ask', { requestId, sealed: base64.encode(sealedRequest) });
    let answer = { pending: true };
    for (let i = 0; i < 6 && answer.pending; i++) answer = await post('result', { requestId });
    if (answer.pending) throw Object.assign(new Error('no report yet; try again later'), { code: 'PENDING' });
    const { report, chainId } = await openResponse(base64.decode(answer.sealed), { keyPair, sealedRequest, requestId });
    render(report, chainId);
    show('status', 'done', 'report opened in this page');
  } catch (err) {
    show('status', 'error', `${err.code ?? err.name}: ${err.message}`);
  } finally {
    for (const p of plaintext) p.fill(0);
    $('ask').disabled = false;
  }
});
if ($('pcr0').value) void verify();
