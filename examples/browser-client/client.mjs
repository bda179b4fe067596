// The page's logic. Bundled for the browser by build.mjs (esbuild) into client.js.
import { sealToEnclave } from 'nitro-enclave-sdk/seal';

const $ = (id) => document.getElementById(id);
const encoder = new TextEncoder();

const base64 = {
  encode(bytes) {
    let text = '';
    for (const b of bytes) text += String.fromCharCode(b);
    return btoa(text);
  },
  decode(text) {
    return Uint8Array.from(atob(text.replace(/\s+/g, '')), (c) => c.charCodeAt(0));
  },
};

async function post(op, body) {
  const res = await fetch(new URL(op, new URL($('gateway').value, location.href)), {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  const answer = await res.json().catch(() => ({}));
  if (!res.ok || !answer.ok) throw Object.assign(new Error(`the gateway refused ${op}`), { code: answer.error ?? `HTTP_${res.status}` });
  return answer;
}

function show(state, text) {
  $('status').dataset.state = state;
  $('status').textContent = text;
}

$('form').addEventListener('submit', async (event) => {
  event.preventDefault();
  $('sealed').value = '';
  $('send').disabled = true;
  show('working', 'verifying…');
  const plaintext = encoder.encode($('message').value);
  try {
    const pasted = $('document').value.trim();
    const nonce = crypto.getRandomValues(new Uint8Array(32));
    // A pasted document cannot carry our nonce: only its age vouches for its freshness then.
    const document = pasted ? base64.decode(pasted) : base64.decode((await post('attest', { nonce: base64.encode(nonce) })).document);
    const anchor = $('anchor').value.trim();
    const sealed = await sealToEnclave(document, plaintext, {
      expected: { pcrs: { 0: $('pcr0').value.trim() }, maxAgeMs: Number($('maxAge').value) * 1000, ...(pasted ? {} : { nonce }) },
      ...(anchor ? { trustAnchors: [anchor] } : {}),
      info: encoder.encode(`agent:${$('agent').value}`),
    });
    $('sealed').value = base64.encode(sealed);
    $('send').disabled = false;
    show('sealed', `enclave verified (PCR0 ${$('pcr0').value.trim().slice(0, 16)}…); message sealed, ${sealed.length} bytes`);
  } catch (err) {
    show('error', `${err.code ?? err.name}: ${err.message}`);
  } finally {
    plaintext.fill(0);
  }
});

$('send').addEventListener('click', async () => {
  show('working', 'sending…');
  try {
    await post('open', { agent: $('agent').value, sealed: $('sealed').value });
    show('sent', 'the enclave opened the message');
  } catch (err) {
    show('error', `${err.code ?? err.name}: ${err.message}`);
  }
});
