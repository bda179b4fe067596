/**
 * The README's threat model, claim by claim: the parent instance plays the
 * adversary. It serves the credentials and the blob (serveParentCredentials),
 * relays every byte to KMS (a recording relay standing in for vsock-proxy),
 * and owns a second AWS account in the same KMS simulator, where
 * `alias/confidential-workflow-tsk` names a permissive key whose plaintext it
 * knows (it made the blob with GenerateDataKey).
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { createConnection, createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CreateAliasCommand, CreateKeyCommand, DecryptCommand, EncryptCommand, GenerateDataKeyCommand, GetKeyPolicyCommand, PutKeyPolicyCommand, ReEncryptCommand } from '@aws-sdk/client-kms';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { clearTrustedSessionKeyCache, decryptCiphertextForRecipient, fetchParentFile, fromParentCredentials, getTrustedSessionKey, type GetTrustedSessionKeyOptions } from '../../src/kms/index.js';
import { evaluatePolicy, parsePolicy, serveParentCredentials } from '../../src/parent/index.js';
import { buildKeyPolicy } from '../../src/parent/key-policy.js';
import { createSimulatedEnclave, createSimulatedNsm, defaultPrincipals, startKmsSimulator, type KmsSimulator, type SimulatedPrincipal } from '../../src/testing/index.js';
import * as kmsSdk from '@aws-sdk/client-kms';
import { KMS_OPERATIONS, type KmsOperationInfo } from '../../src/internal/kms-operations.js';
import { keyPolicyTreatment } from '../../src/parent/key-policy.js';
import { connectSocket, type SocketAddress } from '../../src/vsock/index.js';
import { answerForKey, client, interceptedClient, recipient, rsaPair, knownDataKey } from '../helpers/kms.js';

const VICTIM = '111122223333';
const ATTACKER = '444455556666';
const ALIAS = 'alias/confidential-workflow-tsk';
/** What an application's instance role typically carries: the example, kms:CreateGrant included. */
const APPLICATION_IAM_POLICY = { Version: '2012-10-17', Statement: [{ Effect: 'Allow' as const, Action: ['kms:Encrypt', 'kms:Decrypt', 'kms:GenerateDataKey*', 'kms:ReEncrypt*', 'kms:CreateGrant'], Resource: '*' }] };
const enclave = createSimulatedEnclave();
const tmp = mkdtempSync(join(tmpdir(), 'nes-hostile-'));
const relayPath = join(tmp, 'vsock-proxy.sock');
const sdkTypes = join(createRequire(import.meta.url).resolve('@aws-sdk/client-kms/package.json'), '..', 'dist-types');

let sim: KmsSimulator;
let relay: Server;
/** Every byte the parent's relay carried, both directions. */
const relayed: Buffer[] = [];
let relayConnections = 0;
const victim = { keyArn: '', aliasArn: '', blob: new Uint8Array(), plaintext: new Uint8Array(), oldBlob: new Uint8Array(), oldPlaintext: new Uint8Array() };
const attacker = { keyArn: '', blob: new Uint8Array(), plaintext: new Uint8Array() };

beforeAll(async () => {
  // The parent's instance role carries an ordinary application IAM policy (issue 17); the admin has IAM kms:*.
  const principals = [...defaultPrincipals(VICTIM), ...defaultPrincipals(ATTACKER)].map((p) =>
    p.arn.includes(':assumed-role/EnclaveInstanceRole/') && p.arn.includes(`::${VICTIM}:`) ? { ...p, identityPolicies: [APPLICATION_IAM_POLICY] } : p,
  );
  sim = await startKmsSimulator({ principals, trustAnchors: [enclave.trustAnchor] });
  // The parent's vsock-proxy: it relays, and it records everything it sees.
  relay = createServer((inbound) => {
    relayConnections++;
    const outbound = createConnection({ port: sim.port, host: '127.0.0.1' });
    inbound.on('data', (d: Buffer) => relayed.push(Buffer.from(d)));
    outbound.on('data', (d: Buffer) => relayed.push(Buffer.from(d)));
    inbound.pipe(outbound).pipe(inbound);
    inbound.on('error', () => outbound.destroy());
    outbound.on('error', () => inbound.destroy());
  });
  await new Promise<void>((r) => relay.listen(relayPath, r));

  // The victim's operator: the hardened policy for the enclave's image, the TSK under its alias, and an older TSK
  // (each bound to its version in the encryption context).
  const victimAdmin = client(sim, sim.principal('user/admin', VICTIM));
  const policy = buildKeyPolicy({ accountId: VICTIM, enclaveRole: 'EnclaveInstanceRole', pcr0: enclave.imageSha384 });
  const key = (await victimAdmin.send(new CreateKeyCommand({ Policy: JSON.stringify(policy) }))).KeyMetadata!;
  victim.keyArn = key.Arn!;
  victim.aliasArn = `arn:aws:kms:us-east-1:${VICTIM}:${ALIAS}`;
  await victimAdmin.send(new CreateAliasCommand({ AliasName: ALIAS, TargetKeyId: key.KeyId }));
  // The test learns the plaintexts (GenerateDataKey) only to check what the enclave ends up with.
  // (Attested: the policy denies GenerateDataKey to everyone else.)
  const old = await knownDataKey(victimAdmin, enclave, { KeyId: victim.keyArn, EncryptionContext: { tsk: 'v1' } });
  const current = await knownDataKey(victimAdmin, enclave, { KeyId: victim.keyArn, EncryptionContext: { tsk: 'v2' } });
  Object.assign(victim, { oldBlob: old.CiphertextBlob!, oldPlaintext: old.Plaintext!, blob: current.CiphertextBlob!, plaintext: current.Plaintext! });
  victimAdmin.destroy();

  // The attacker's account: the same alias name on a key anyone may use; the parent knows its plaintext.
  const attackerAdmin = client(sim, sim.principal('user/admin', ATTACKER));
  const permissive = { Version: '2012-10-17', Statement: [{ Sid: 'Anyone', Effect: 'Allow', Principal: { AWS: '*' }, Action: 'kms:*', Resource: '*' }] };
  const evil = (await attackerAdmin.send(new CreateKeyCommand({ Policy: JSON.stringify(permissive) }))).KeyMetadata!;
  attacker.keyArn = evil.Arn!;
  await attackerAdmin.send(new CreateAliasCommand({ AliasName: ALIAS, TargetKeyId: evil.KeyId }));
  const dk = await attackerAdmin.send(new GenerateDataKeyCommand({ KeyId: ALIAS, KeySpec: 'AES_256', EncryptionContext: { tsk: 'v2' } }));
  Object.assign(attacker, { blob: dk.CiphertextBlob!, plaintext: dk.Plaintext! });
  attackerAdmin.destroy();
});
afterAll(async () => {
  relay?.close();
  await sim?.close();
  rmSync(tmp, { recursive: true, force: true });
});
beforeEach(() => clearTrustedSessionKeyCache());

let parents = 0;
/** The parent's bootstrap server: whatever credentials and blob it chooses, to any local peer. */
async function parentServing(principal: SimulatedPrincipal, blob: Uint8Array, allow = true) {
  const path = join(tmp, `parent-${++parents}.sock`);
  const server = await serveParentCredentials({
    address: { family: 'unix', path },
    allowPeer: () => allow,
    credentials: async () => ({ accessKeyId: principal.accessKeyId, secretAccessKey: principal.secretAccessKey, ...(principal.sessionToken ? { sessionToken: principal.sessionToken } : {}), expiration: new Date(Date.now() + 3_600_000) }),
    files: { tsk: blob },
  });
  return { address: { family: 'unix', path } as SocketAddress, close: () => server.close() };
}

/** The enclave, as the README writes it: blob and credentials from the parent, everything else from the image. */
async function enclaveStarts(parent: { address: SocketAddress }, keyId: string, extra: Partial<GetTrustedSessionKeyOptions> = {}) {
  return getTrustedSessionKey({
    ciphertextBlob: await fetchParentFile('tsk', { address: parent.address }),
    keyId,
    encryptionContext: { tsk: 'v2' },
    region: 'us-east-1',
    credentials: fromParentCredentials({ address: parent.address }),
    transport: { kind: 'custom', connect: () => connectSocket({ family: 'unix', path: relayPath }) },
    tlsCa: sim.caPem,
    nsm: createSimulatedNsm(enclave),
    attestationTrustAnchors: [enclave.trustAnchor],
    retry: { maxAttempts: 2, baseDelayMs: 1 },
    ...extra,
  });
}

async function failure(p: Promise<unknown>): Promise<{ code?: string; name: string; message: string }> {
  try {
    await p;
  } catch (err) {
    return err as { code?: string; name: string; message: string };
  }
  throw new Error('the enclave accepted a key');
}

const role = (account: string) => sim.principal('EnclaveInstanceRole', account);

describe('the hostile parent cannot make the enclave adopt another key', () => {
  it('why a bare alias is dangerous: KMS resolves it in the account of the credentials, so it names the parent\'s key', async () => {
    // What the enclave's Decrypt looked like before keyId had to be an ARN: bare alias, parent's credentials.
    const kms = client(sim, role(ATTACKER));
    const out = await kms.send(new DecryptCommand({ CiphertextBlob: attacker.blob, KeyId: ALIAS, EncryptionContext: { tsk: 'v2' }, Recipient: recipient(enclave, rsaPair().spki) }));
    expect(out.KeyId).toBe(attacker.keyArn); // KMS released the attacker's key to the enclave's attested request
    const opened = await decryptCiphertextForRecipient(out.CiphertextForRecipient!, rsaPair().privateKey);
    expect(opened).toEqual(attacker.plaintext); // … whose plaintext the parent knows
    kms.destroy();
  });

  it('a bare alias (or key id) is refused up front with a TypeError: nothing is sent', async () => {
    const parent = await parentServing(role(ATTACKER), attacker.blob);
    const before = relayConnections;
    for (const keyId of [ALIAS, victim.keyArn.split('/').at(-1)!]) {
      const err = await failure(enclaveStarts(parent, keyId));
      expect(err).toBeInstanceOf(TypeError);
      expect(err.message).toMatch(/could make a bare alias name a key of its own account/);
    }
    expect(relayConnections).toBe(before);
    parent.close();
  });

  it('with the pinned ARN, the parent\'s credentials and blob get nothing: KMS refuses', async () => {
    for (const keyId of [victim.aliasArn, victim.keyArn]) {
      // Its own credentials and its own blob: KMS checks the blob against KeyId, the victim's key, and refuses.
      const own = await parentServing(role(ATTACKER), attacker.blob);
      expect((await failure(enclaveStarts(own, keyId))).code).toBe('ERR_KMS_INCORRECT_KEY');
      own.close();
      // The enclave role's real credentials with the parent's blob: the same.
      const mixed = await parentServing(role(VICTIM), attacker.blob);
      expect((await failure(enclaveStarts(mixed, keyId))).code).toBe('ERR_KMS_INCORRECT_KEY');
      mixed.close();
      // Its own credentials with the real blob: the victim's key policy does not admit the attacker's account.
      const foreign = await parentServing(role(ATTACKER), victim.blob);
      expect((await failure(enclaveStarts(foreign, keyId))).code).toBe('ERR_KMS_ACCESS_DENIED');
      foreign.close();
    }
  });

  it('even an answer naming its key would be refused (ERR_KMS_KEY_MISMATCH), the envelope zeroed unopened', async () => {
    // The parent cannot forge a TLS answer from KMS; this checks the last line of defence behind that.
    const parent = await parentServing(role(VICTIM), victim.blob);
    const kms = interceptedClient(sim, role(VICTIM), (_op, forward) => forward(), () => connectSocket({ family: 'unix', path: relayPath }));
    const answer = answerForKey(kms, attacker.keyArn);
    const err = await failure(enclaveStarts(parent, victim.aliasArn, { kms }));
    expect(err.code).toBe('ERR_KMS_KEY_MISMATCH');
    expect(answer.envelope!.every((b) => b === 0)).toBe(true);
    kms.destroy();
    parent.close();
  });
});

describe('the hostile parent cannot read the TSK', () => {
  it('relays only TLS: the key never crosses the parent in the clear', async () => {
    const parent = await parentServing(role(VICTIM), victim.blob);
    relayed.length = 0;
    const tsk = await enclaveStarts(parent, victim.aliasArn);
    expect(tsk.keyObject.export()).toEqual(Buffer.from(victim.plaintext));
    const seen = Buffer.concat(relayed);
    expect(seen[0]).toBe(0x16); // a TLS handshake record
    for (const form of [Buffer.from(victim.plaintext), Buffer.from(Buffer.from(victim.plaintext).toString('base64')), Buffer.from(Buffer.from(victim.plaintext).toString('hex'))]) {
      expect(seen.includes(form)).toBe(false);
    }
    tsk.dispose();
    parent.close();
  });

  it('cannot decrypt the blob itself, with the role it holds or with an administrator\'s kms:*, nor re-encrypt it to its own key', async () => {
    for (const who of [role(VICTIM), sim.principal('user/admin', VICTIM)]) {
      const kms = client(sim, who);
      await expect(kms.send(new DecryptCommand({ CiphertextBlob: victim.blob, EncryptionContext: { tsk: 'v2' } }))).rejects.toMatchObject({ name: 'AccessDeniedException' });
      await expect(kms.send(new ReEncryptCommand({ CiphertextBlob: victim.blob, SourceEncryptionContext: { tsk: 'v2' }, DestinationKeyId: attacker.keyArn }))).rejects.toMatchObject({ name: 'AccessDeniedException' });
      kms.destroy();
    }
  });

  it('replaying the enclave\'s attestation document only gets an envelope it cannot open', async () => {
    // The parent holds a genuine document (bound to the enclave's public key) and the role's credentials.
    const kms = client(sim, role(VICTIM));
    const document = enclave.attest({ publicKey: rsaPair().spki });
    const out = await kms.send(new DecryptCommand({ CiphertextBlob: victim.blob, EncryptionContext: { tsk: 'v2' }, Recipient: { KeyEncryptionAlgorithm: 'RSAES_OAEP_SHA_256', AttestationDocument: document } }));
    expect(out.Plaintext).toBeUndefined();
    const { generateKeyPairSync } = await import('node:crypto');
    const parentsOwn = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;
    await expect(decryptCiphertextForRecipient(out.CiphertextForRecipient!, parentsOwn)).rejects.toMatchObject({ code: 'ERR_CMS_DECRYPT_FAILED' });
    // A document of its own making (its own signing chain, the right PCR0) is not an NSM's: KMS refuses it.
    const forged = createSimulatedEnclave();
    await expect(kms.send(new DecryptCommand({ CiphertextBlob: victim.blob, EncryptionContext: { tsk: 'v2' }, Recipient: recipient(forged, rsaPair().spki) }))).rejects.toThrow();
    kms.destroy();
  });
});

describe('what the hostile parent can do', () => {
  it('deny service: refuse credentials or the relay; the enclave gets an error, never a key', async () => {
    const refusing = await parentServing(role(VICTIM), victim.blob, false);
    const err = await failure(fromParentCredentials({ address: refusing.address })());
    expect(err.code).toBe('ERR_PARENT_REFUSED'); // however the close lands: reset, EPIPE or an empty answer
    expect((await failure(fetchParentFile('tsk', { address: refusing.address }))).code).toBe('ERR_PARENT_REFUSED');
    refusing.close();
    const parent = await parentServing(role(VICTIM), victim.blob);
    const noRelay = await failure(enclaveStarts(parent, victim.aliasArn, { transport: { kind: 'custom', connect: () => connectSocket({ family: 'unix', path: join(tmp, 'no-proxy.sock') }) } }));
    expect(noRelay.code).toBe('ERR_VSOCK_CONNECT');
    parent.close();
  });

  it('replay an old blob of the pinned key: accepted, unless the image pins the blob\'s version in the encryption context', async () => {
    const parent = await parentServing(role(VICTIM), victim.oldBlob);
    // Without a version binding the enclave cannot tell an old TSK from the current one.
    const old = await enclaveStarts(parent, victim.aliasArn, { encryptionContext: { tsk: 'v1' } });
    expect(old.keyObject.export()).toEqual(Buffer.from(victim.oldPlaintext));
    old.dispose();
    // With { tsk: 'v2' } baked into the image, the replayed v1 blob is refused by KMS.
    expect((await failure(enclaveStarts(parent, victim.aliasArn))).code).toBe('ERR_KMS_INVALID_CIPHERTEXT');
    parent.close();
  });

  it('serve other credentials: the enclave is denied, and never gets a key the parent knows', async () => {
    for (const who of [sim.principal('user/other', VICTIM), role(ATTACKER), sim.principal('user/admin', ATTACKER)]) {
      const parent = await parentServing(who, victim.blob);
      expect((await failure(enclaveStarts(parent, victim.aliasArn))).code).toBe('ERR_KMS_ACCESS_DENIED');
      parent.close();
    }
  });

  it('watch traffic: it sees the endpoint name and the sizes of the records, not their content', async () => {
    const parent = await parentServing(role(VICTIM), victim.blob);
    relayed.length = 0;
    (await enclaveStarts(parent, victim.aliasArn)).dispose();
    const seen = Buffer.concat(relayed);
    expect(seen.includes(Buffer.from('kms.us-east-1.amazonaws.com'))).toBe(true); // SNI is in the clear
    expect(seen.includes(Buffer.from('TrentService.Decrypt'))).toBe(false); // the request itself is not
    expect(seen.includes(Buffer.from('confidential-workflow-tsk'))).toBe(false);
    expect(seen.length).toBeGreaterThan(1000); // sizes and timing are visible
    parent.close();
  });
});

describe('the hostile parent cannot mint a TSK it knows', () => {
  const CHOSEN = new Uint8Array(32).fill(7); // the key the parent would like the enclave to adopt
  const OUTCOME_DENIED = 'AccessDeniedException';
  /** KMS refuses the operation for this key's spec or usage, which never change: it cannot act on the TSK key. */
  const NOT_FOR_THIS_KEY = new Set(['InvalidKeyUsageException', 'UnsupportedOperationException']);
  const minting = (o: KmsOperationInfo) => o.class === 'plaintext' || o.class === 'ciphertext';
  const keyParameters = ['KeyId', 'TargetKeyId', 'SourceKeyId', 'DestinationKeyId'];

  /** A real request (no DryRun) for each (a)/(b)/(c) operation, against the victim's key. A new operation of the model fails the test until one is written. */
  const attempt = (ctx: { keyArn: string; keyId: string; blob: Uint8Array; own: string; grantTokens?: string[] }): Record<string, Record<string, unknown> | null> => {
    const g = ctx.grantTokens ? { GrantTokens: ctx.grantTokens } : {};
    const ec = { EncryptionContext: { tsk: 'v2' } };
    return {
      Decrypt: { CiphertextBlob: ctx.blob, KeyId: ctx.keyArn, ...ec, ...g },
      ReEncrypt: { CiphertextBlob: ctx.blob, SourceKeyId: ctx.keyArn, SourceEncryptionContext: { tsk: 'v2' }, DestinationKeyId: ctx.own, ...g },
      DeriveSharedSecret: { KeyId: ctx.keyArn, KeyAgreementAlgorithm: 'ECDH', PublicKey: rsaPair().spki, ...g },
      Decapsulate: { KeyId: ctx.keyArn, EncapsulationAlgorithm: 'ML_KEM', SharedSecretCiphertextBlob: new Uint8Array(1088), ...g },
      Encrypt: { KeyId: ctx.keyArn, Plaintext: CHOSEN, ...ec, ...g },
      GenerateDataKey: { KeyId: ctx.keyArn, KeySpec: 'AES_256', ...ec, ...g },
      GenerateDataKeyPair: { KeyId: ctx.keyArn, KeyPairSpec: 'ECC_NIST_P256', ...ec, ...g },
      GenerateDataKeyPairWithoutPlaintext: { KeyId: ctx.keyArn, KeyPairSpec: 'ECC_NIST_P256', ...ec, ...g },
      Encapsulate: { KeyId: ctx.keyArn, EncapsulationAlgorithm: 'ML_KEM', ...g },
      CreateGrant: { KeyId: ctx.keyArn, GranteePrincipal: role(VICTIM).arn.replace(/^arn:aws:sts::(\d+):assumed-role\/([^/]+)\/.*$/, 'arn:aws:iam::$1:role/$2'), Operations: ['Decrypt', 'Encrypt', 'GenerateDataKey', 'GenerateDataKeyPair', 'ReEncryptFrom', 'ReEncryptTo'] },
      CreateAlias: { AliasName: `alias/another-name-${Math.random().toString(36).slice(2)}`, TargetKeyId: ctx.keyId },
      UpdateAlias: { AliasName: ALIAS, TargetKeyId: ctx.own },
      DeleteAlias: { AliasName: ALIAS },
      ReplicateKey: { KeyId: ctx.keyArn, ReplicaRegion: 'eu-west-1' },
      UpdatePrimaryRegion: { KeyId: ctx.keyArn, PrimaryRegion: 'eu-west-1' },
      GetParametersForImport: { KeyId: ctx.keyArn, WrappingAlgorithm: 'RSAES_OAEP_SHA_256', WrappingKeySpec: 'RSA_2048' },
      ImportKeyMaterial: { KeyId: ctx.keyArn, ImportToken: new Uint8Array(64), EncryptedKeyMaterial: new Uint8Array(256), ExpirationModel: 'KEY_MATERIAL_DOES_NOT_EXPIRE' },
      DeleteImportedKeyMaterial: { KeyId: ctx.keyArn },
      TagResource: { KeyId: ctx.keyArn, Tags: [{ TagKey: 'owner', TagValue: 'parent' }] },
      UntagResource: { KeyId: ctx.keyArn, TagKeys: ['owner'] },
      // PutKeyPolicy is the trust placed in the key's administrators (README): tried with the same policy, to show who holds it.
      PutKeyPolicy: null,
      // Custom key stores are account-level: their requests cannot name a key (checked below against the SDK model).
      ConnectCustomKeyStore: null,
      CreateCustomKeyStore: null,
      DeleteCustomKeyStore: null,
      DisconnectCustomKeyStore: null,
      UpdateCustomKeyStore: null,
    };
  };

  async function send(who: SimulatedPrincipal, operation: string, input: Record<string, unknown>): Promise<{ name: string; output?: Record<string, unknown> }> {
    const kms = client(sim, who);
    const Command = (kmsSdk as unknown as Record<string, new (i: unknown) => never>)[`${operation}Command`]!;
    try {
      return { name: 'OK', output: (await kms.send(new Command(input))) as unknown as Record<string, unknown> };
    } catch (err) {
      return { name: (err as Error).name };
    } finally {
      kms.destroy();
    }
  }

  it('tries every (a)/(b)/(c) operation of the model as the parent\'s role (application IAM policy) and as an IAM kms:* admin: every (a)/(b) and every closed (c) one is denied, and no grant reopens them', async () => {
    const admin = sim.principal('user/admin', VICTIM);
    const adminKms = client(sim, admin);
    // A key the admin fully controls, in the same account: where a moved alias or a re-encrypted blob would go.
    const permissive = { Version: '2012-10-17', Statement: [{ Effect: 'Allow', Principal: { AWS: `arn:aws:iam::${VICTIM}:root` }, Action: 'kms:*', Resource: '*' }] };
    const own = (await adminKms.send(new CreateKeyCommand({ Policy: JSON.stringify(permissive) }))).KeyMetadata!.Arn!;
    adminKms.destroy();
    const keyId = victim.keyArn.split('/').pop()!;
    const model = readFileSync(join(sdkTypes, 'models', 'models_0.d.ts'), 'utf8');
    const admins0 = client(sim, admin);
    const keyPolicy = parsePolicy((await admins0.send(new GetKeyPolicyCommand({ KeyId: victim.keyArn, PolicyName: 'default' }))).Policy!);
    admins0.destroy();
    const explicitlyDenied = (who: SimulatedPrincipal, action: string) => {
      const d = evaluatePolicy(keyPolicy, { principalArn: who.arn, action, resource: victim.keyArn, conditions: {} }, who.identityPolicies ?? []);
      return d.effect === 'Deny' && d.explicit;
    };
    const minted: string[] = [];
    const grantTokens: string[] = [];
    for (const who of [role(VICTIM), admin]) {
      const requests = attempt({ keyArn: victim.keyArn, keyId, blob: victim.blob, own });
      for (const op of KMS_OPERATIONS.filter((o) => o.class !== 'none')) {
        expect(op.operation in requests, `no attempt written for ${op.operation}`).toBe(true);
        const input = requests[op.operation];
        if (!input) {
          if (op.operation === 'PutKeyPolicy') continue;
          const members = model.match(new RegExp(`export interface ${op.operation}Request \\{([\\s\\S]*?)\\n\\}`))![1]!;
          expect(keyParameters.filter((k) => new RegExp(`\\n\\s+${k}\\??:`).test(members)), op.operation).toEqual([]);
          continue;
        }
        const r = await send(who, op.operation, input);
        if (op.operation === 'CreateGrant' && r.name === 'OK') grantTokens.push(String(r.output!.GrantToken));
        if (minting(op) || keyPolicyTreatment(op) === 'denied') {
          // The simulator has no ML-KEM keys and does not serve Encapsulate/Decapsulate: judged by its own policy evaluator instead.
          const closed = r.name === 'UnknownOperationException' ? op.actions.every((action) => explicitlyDenied(who, action)) : r.name === OUTCOME_DENIED || (minting(op) && NOT_FOR_THIS_KEY.has(r.name));
          if (!closed) minted.push(`${who.arn} ${op.operation} → ${r.name}`);
        }
      }
    }
    expect(minted).toEqual([]);
    expect(grantTokens).toHaveLength(2); // the role (its IAM allows kms:CreateGrant) and the admin each made one
    // A grant (the role's IAM allows kms:CreateGrant) names Decrypt, Encrypt, GenerateDataKey...: the key policy's Deny still wins.
    for (const token of grantTokens) {
      const requests = attempt({ keyArn: victim.keyArn, keyId, blob: victim.blob, own, grantTokens: [token] });
      for (const op of KMS_OPERATIONS.filter(minting)) {
        const r = await send(role(VICTIM), op.operation, requests[op.operation] as Record<string, unknown>);
        if (!(r.name === OUTCOME_DENIED || NOT_FOR_THIS_KEY.has(r.name) || (r.name === 'UnknownOperationException' && op.actions.every((a) => explicitlyDenied(role(VICTIM), a))))) minted.push(`with a grant: ${op.operation} → ${r.name}`);
      }
    }
    expect(minted).toEqual([]);
    // The alias still names the victim's key: the enclave pinned to the alias ARN gets the victim's TSK, not one the parent knows.
    const parent = await parentServing(role(VICTIM), victim.blob);
    const tsk = await enclaveStarts(parent, victim.aliasArn);
    expect(tsk.keyObject.export()).toEqual(Buffer.from(victim.plaintext));
    tsk.dispose();
    parent.close();
    // What stays open is only what reveals nothing: PutKeyPolicy (the administrators' trust, in CloudTrail) and the rest of (c).
    const admins = client(sim, admin);
    const { Policy } = await admins.send(new GetKeyPolicyCommand({ KeyId: victim.keyArn, PolicyName: 'default' }));
    await admins.send(new PutKeyPolicyCommand({ KeyId: victim.keyArn, PolicyName: 'default', Policy: Policy! }));
    admins.destroy();
    expect(sim.audit.at(-1)).toMatchObject({ eventName: 'PutKeyPolicy', userIdentity: { arn: admin.arn } });
  });

  it('on the previous policy (Decrypt and ReEncrypt closed only), the role\'s Encrypt would make the enclave adopt a key the parent chose: the key audit refuses it (without the audit it is adopted); on the default policy it is denied', async () => {
    const admin = client(sim, sim.principal('user/admin', VICTIM));
    const hardened = buildKeyPolicy({ accountId: VICTIM, enclaveRole: 'EnclaveInstanceRole', pcr0: enclave.imageSha384 });
    const previous = {
      ...hardened,
      Statement: [
        ...hardened.Statement.filter((s) => s.Effect === 'Allow'),
        ...hardened.Statement.filter((s) => s.Sid === 'Deny Without Admitted Attestation' || s.Sid === 'Deny Without Any Attestation').map((s) => ({ ...s, Action: 'kms:Decrypt' })),
        { Sid: 'Deny ReEncrypt For Everyone', Effect: 'Deny' as const, Principal: { AWS: '*' }, Action: 'kms:ReEncrypt*', Resource: '*' },
      ],
    };
    const key = (await admin.send(new CreateKeyCommand({ Policy: JSON.stringify(previous) }))).KeyMetadata!;
    const parentKms = client(sim, role(VICTIM));
    const { CiphertextBlob } = await parentKms.send(new EncryptCommand({ KeyId: key.Arn!, Plaintext: CHOSEN, EncryptionContext: { tsk: 'v2' } }));
    const parent = await parentServing(role(VICTIM), CiphertextBlob!);
    // The enclave's audit of its key sees that Encrypt (and GenerateDataKey…) is open, and uses nothing KMS released.
    const refused = await failure(enclaveStarts(parent, key.Arn!));
    expect(refused.code).toBe('ERR_KMS_KEY_UNSAFE');
    expect(refused.message).toContain(`kms:Encrypt is allowed without attestation via "Enable IAM User Permissions" (for arn:aws:iam::${VICTIM}:root)`);
    expect(refused.message).toContain(`kms:GenerateDataKey is allowed without attestation via "Enable IAM User Permissions"`);
    // Without the audit (keyAudit: false, documented as dangerous; main's behaviour before it), the parent's key is adopted.
    const adopted = await enclaveStarts(parent, key.Arn!, { keyAudit: false });
    expect(adopted.keyObject.export()).toEqual(Buffer.from(CHOSEN)); // the parent now opens every sealed state
    adopted.dispose();
    parent.close();
    // The default policy: the same Encrypt, and GenerateDataKey, are denied to the role and to the admin.
    await admin.send(new PutKeyPolicyCommand({ KeyId: key.KeyId!, PolicyName: 'default', Policy: JSON.stringify(hardened) }));
    for (const who of [parentKms, admin]) {
      await expect(who.send(new EncryptCommand({ KeyId: key.Arn!, Plaintext: CHOSEN, EncryptionContext: { tsk: 'v2' } }))).rejects.toMatchObject({ name: 'AccessDeniedException', message: expect.stringContaining('kms:Encrypt on resource') });
      await expect(who.send(new GenerateDataKeyCommand({ KeyId: key.Arn!, KeySpec: 'AES_256', EncryptionContext: { tsk: 'v2' } }))).rejects.toMatchObject({ name: 'AccessDeniedException' });
    }
    parentKms.destroy();
    admin.destroy();
  });
});
