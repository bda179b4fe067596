import { readdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import * as kmsSdk from '@aws-sdk/client-kms';
import { describe, expect, it } from 'vitest';
import { KMS_OPERATIONS, kmsOperation } from '../../src/internal/kms-operations.js';

// The SDK's own files, not this project's table, are the ground truth for the model's operations
// and for which requests take Recipient / DryRun.
const sdkRoot = join(dirname(createRequire(import.meta.url).resolve('@aws-sdk/client-kms/package.json')));
const typesDir = join(sdkRoot, 'dist-types');

function modelOperations(): string[] {
  return readdirSync(join(typesDir, 'commands'))
    .filter((f) => f.endsWith('Command.d.ts'))
    .map((f) => f.slice(0, -'Command.d.ts'.length))
    .sort();
}

let modelTypes: string | undefined;
function requestMembers(operation: string): string[] {
  const models = (modelTypes ??= readdirSync(join(typesDir, 'models')).map((f) => readFileSync(join(typesDir, 'models', f), 'utf8')).join('\n'));
  const match = models.match(new RegExp(`export interface ${operation}Request \\{([\\s\\S]*?)\\n\\}`));
  if (!match) throw new Error(`no ${operation}Request in the SDK's model types`);
  return [...match[1]!.matchAll(/^\s{4}(\w+)\??:/gm)].map((m) => m[1]!);
}

describe('KMS_OPERATIONS', () => {
  it('classifies exactly the operations of the KMS API model the SDK ships (a new one fails until classified)', () => {
    const model = modelOperations();
    expect(model.length).toBeGreaterThanOrEqual(55);
    expect(KMS_OPERATIONS.map((o) => o.operation).sort()).toEqual(model);
    // The runtime exports agree with the type files: every operation is a real Command class.
    for (const op of model) expect(typeof (kmsSdk as Record<string, unknown>)[`${op}Command`], op).toBe('function');
  });

  it('takesRecipient and takesDryRun are what the SDK model says each request takes', () => {
    for (const info of KMS_OPERATIONS) {
      const members = requestMembers(info.operation);
      expect({ op: info.operation, recipient: info.takesRecipient, dryRun: info.takesDryRun }).toEqual({
        op: info.operation,
        recipient: members.includes('Recipient'),
        dryRun: members.includes('DryRun'),
      });
    }
  });

  it('names the IAM action from the API reference text the SDK carries for each command', () => {
    for (const info of KMS_OPERATIONS) {
      const doc = readFileSync(join(typesDir, 'commands', `${info.operation}Command.d.ts`), 'utf8');
      const required = doc.slice(doc.indexOf('Required permissions'), doc.indexOf('Required permissions') + 600);
      const named = [...new Set([...required.matchAll(/kms:([A-Za-z]+)/g)].map((m) => `kms:${m[1]}`))];
      // Some commands word their permissions in prose (aliases, replication); where the text names
      // actions, ours is among them.
      if (named.length > 0) expect(named, info.operation).toContain(info.action);
      expect(info.actions[0]).toBe(info.action);
    }
    expect(kmsOperation('ReEncrypt')?.actions).toEqual(['kms:ReEncryptFrom', 'kms:ReEncryptTo']);
  });

  it('puts every way to read or mint the TSK in (a)/(b), and blind provisioning in (d)', () => {
    const cls = (op: string) => kmsOperation(op)?.class;
    expect(['Decrypt', 'ReEncrypt', 'DeriveSharedSecret', 'Decapsulate'].map(cls)).toEqual(['plaintext', 'plaintext', 'plaintext', 'plaintext']);
    expect(['Encrypt', 'GenerateDataKey', 'GenerateDataKeyPair', 'GenerateDataKeyPairWithoutPlaintext', 'Encapsulate'].map(cls)).toEqual(Array(5).fill('ciphertext'));
    expect(['CreateGrant', 'ReplicateKey', 'UpdatePrimaryRegion', 'ImportKeyMaterial', 'GetParametersForImport', 'UpdateAlias', 'DeleteAlias', 'CreateAlias', 'PutKeyPolicy'].map(cls)).toEqual(Array(9).fill('authority'));
    expect(cls('GenerateDataKeyWithoutPlaintext')).toBe('none');
    expect(kmsOperation('Nope')).toBeUndefined();
    for (const info of KMS_OPERATIONS) expect(info.why.length, info.operation).toBeGreaterThan(10);
  });
});
