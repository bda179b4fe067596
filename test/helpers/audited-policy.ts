import { actionsOf, auditedOperations } from '../../src/kms/key-policy-audit.js';
import type { PolicyDocument, PolicyStatement } from '../../src/internal/iam-policy.js';

/**
 * The smallest policy the key audit passes, built from the operation classification (not a list):
 * the seed's three statements, the role's audit reads, and explicit Deny statements for every
 * audited operation (attested ones unless the attestation is of `pcr0`, the others outright).
 */
export function auditablePolicy(accountId: string, pcr0: string, options: { role?: string; extra?: PolicyStatement[] } = {}): PolicyDocument {
  const role = `arn:aws:iam::${accountId}:role/${options.role ?? 'EnclaveInstanceRole'}`;
  const attested = auditedOperations().filter((o) => o.takesRecipient).flatMap(actionsOf);
  const outright = auditedOperations().filter((o) => !o.takesRecipient).flatMap(actionsOf);
  return {
    Version: '2012-10-17',
    Statement: [
      { Sid: 'Enable IAM User Permissions', Effect: 'Allow', Principal: { AWS: `arn:aws:iam::${accountId}:root` }, Action: 'kms:*', Resource: '*' },
      { Sid: 'Allow Enclave Decrypt', Effect: 'Allow', Principal: { AWS: role }, Action: 'kms:Decrypt', Resource: '*', Condition: { StringEqualsIgnoreCase: { 'kms:RecipientAttestation:ImageSha384': pcr0 } } },
      { Sid: 'Allow Enclave Key Audit', Effect: 'Allow', Principal: { AWS: role }, Action: ['kms:DescribeKey', 'kms:GetKeyPolicy', 'kms:ListGrants'], Resource: '*' },
      { Sid: 'Allow Key Administrators', Effect: 'Allow', Principal: { AWS: `arn:aws:iam::${accountId}:user/admin` }, Action: ['kms:Create*', 'kms:Describe*', 'kms:Put*', 'kms:Get*', 'kms:List*', 'kms:GenerateDataKeyWithoutPlaintext'], Resource: '*' },
      { Sid: 'Deny Without Enclave Attestation', Effect: 'Deny', Principal: { AWS: '*' }, Action: attested, Resource: '*', Condition: { StringNotEqualsIgnoreCase: { 'kms:RecipientAttestation:ImageSha384': pcr0 } } },
      { Sid: 'Deny Minting', Effect: 'Deny', Principal: { AWS: '*' }, Action: outright, Resource: '*' },
      ...(options.extra ?? []),
    ],
  };
}
