import { GetKeyPolicyCommand, type KMSClient } from '@aws-sdk/client-kms';
import { NitroEnclaveError } from '../errors.js';
import type { VerifiedAttestation } from '../attestation/index.js';
import { asArray, parsePolicy, statementApplies, unmetConditions, type PolicyStatement } from '../internal/iam-policy.js';
import { resourceOf } from './kms-errors.js';

function attestationKeys(facts: VerifiedAttestation): Record<string, string> {
  const keys: Record<string, string> = { 'kms:RecipientAttestation:ImageSha384': facts.pcrsHex[0] ?? '' };
  for (const [i, v] of Object.entries(facts.pcrsHex)) keys[`kms:RecipientAttestation:PCR${i}`] = v;
  return keys;
}

function mentionsAttestation(s: PolicyStatement): boolean {
  return JSON.stringify(s.Condition ?? {}).toLowerCase().includes('kms:recipientattestation:');
}

/**
 * Turns an AccessDenied into the seed's troubleshooting: shows this enclave's
 * PCR0, calls out debug mode (all-zero PCRs never match an ImageSha384
 * condition), and — when these credentials may read the key policy — says
 * which attestation condition did not match. The policy read is bounded by
 * `signal` (the caller's signal and what is left of its deadline).
 */
export async function explainAccessDenied(err: NitroEnclaveError, facts: VerifiedAttestation, kms: KMSClient, action: string, keyId?: string, signal: AbortSignal = AbortSignal.timeout(3000)): Promise<NitroEnclaveError> {
  const pcr0 = facts.pcrsHex[0] ?? '(none)';
  const lines = [`KMS denied ${action} to this enclave (PCR0 ${pcr0}).`];
  if (facts.debugMode) {
    lines.push('This enclave runs in debug mode: its PCRs are all zero, so it can never match a kms:RecipientAttestation:ImageSha384 condition. Run it without --debug-mode.');
  }
  const keyArn = resourceOf(err.message);
  // GetKeyPolicy takes a key id or key ARN only: an alias ARN cannot name the policy.
  const resource = keyArn ?? (keyId && /:key\//.test(keyId) ? keyId : undefined);
  if (resource && signal.aborted) lines.push('(No time was left before the deadline to read the key policy.)');
  else if (resource) {
    try {
      const { Policy } = await kms.send(new GetKeyPolicyCommand({ KeyId: resource, PolicyName: 'default' }), { abortSignal: signal });
      const policy = parsePolicy(Policy ?? '');
      const keys = attestationKeys(facts);
      const request = { action, resource: keyArn ?? resource };
      const relevant = policy.Statement.filter((s) => s.Effect === 'Allow' && statementApplies(s, request) && mentionsAttestation(s));
      for (const s of relevant) {
        const unmet = unmetConditions(s, { principalArn: '', ...request, conditions: keys }).filter((u) => /recipientattestation/i.test(u));
        const who = s.Principal === '*' ? '*' : asArray(s.Principal?.AWS).join(', ');
        if (unmet.length) lines.push(`Key policy statement ${s.Sid ? `"${s.Sid}"` : '(no Sid)'} does not match this enclave: ${unmet.join('; ')}. Update the policy with the PCR0 from nitro-cli build-enclave, or rebuild the image you meant to run.`);
        else lines.push(`Key policy statement ${s.Sid ? `"${s.Sid}"` : '(no Sid)'} matches this enclave's measurements; check the caller: it allows ${who}, and the credentials in use must belong to one of them (the parent instance role).`);
      }
      if (relevant.length === 0) lines.push(`The key policy has no Allow statement for ${action} with a kms:RecipientAttestation condition.`);
    } catch {
      if (signal.aborted) lines.push('(Reading the key policy was cut short by the deadline or the caller\'s signal.)');
      else lines.push('(The key policy could not be read with these credentials, so the mismatching condition cannot be shown.)');
    }
  }
  lines.push(`KMS said: ${err.message}`);
  return new NitroEnclaveError('ERR_KMS_ACCESS_DENIED', lines.join(' '), { cause: err.cause ?? err });
}
