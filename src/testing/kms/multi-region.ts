import { authorizeIam } from './access.js';
import { KmsError } from './errors.js';
import { authorize, checkPolicy, defaultPolicy, findKey, metadata, requireString, type Handler } from './shared.js';

const unsupported = (message: string) => new KmsError('UnsupportedOperationException', message);

/** ReplicateKey and UpdatePrimaryRegion: multi-Region keys, whose replicas share the key id and material, each with its own policy. */
export const MULTI_REGION_HANDLERS: Record<string, Handler> = {
  async ReplicateKey(cfg, body, ctx) {
    const primary = findKey(cfg, requireString(body, 'KeyId'), ctx, 'key', false);
    const region = requireString(body, 'ReplicaRegion');
    if (!/^[a-z]{2}(-[a-z]+)+-\d$/.test(region)) throw new KmsError('ValidationException', `1 validation error detected: Value '${region}' at 'replicaRegion' failed to satisfy constraint: Member must satisfy regular expression pattern: ^([a-z]+-){2,3}\\d+$`);
    if (body.Tags !== undefined) throw new KmsError('ValidationException', 'The simulator has no tags (Tags)');
    if (body.Description !== undefined && typeof body.Description !== 'string') throw new KmsError('SerializationException', 'Description must be a string');
    ctx.audit.resources.push(primary.arn);
    // kms:ReplicateKey on the primary (its key policy), kms:CreateKey in the replica Region (IAM).
    authorize(cfg, primary, 'kms:ReplicateKey', ctx, { 'kms:ReplicaRegion': region });
    if (!primary.multiRegion) throw unsupported(`${primary.arn} is not a multi-Region key.`);
    if (!primary.primary) throw unsupported(`${primary.arn} is not a multi-Region primary key.`);
    if (primary.keyState === 'PendingDeletion' || primary.keyState === 'PendingReplicaDeletion') throw new KmsError('KMSInvalidStateException', `${primary.arn} is pending deletion.`);
    if (region === primary.region) throw new KmsError('ValidationException', `The replica Region ${region} is the Region of the primary key.`);
    if (!cfg.regions.includes(region)) throw new KmsError('ValidationException', `The simulator does not serve ${region} (startKmsSimulator's regions option)`);
    const replicaArn = cfg.state.keyArn(region, primary.accountId, primary.keyId);
    if (cfg.state.keys.has(replicaArn)) throw new KmsError('AlreadyExistsException', `Multi-Region key ${primary.keyId} already has a replica in ${region}.`);
    authorizeIam('kms:CreateKey', ctx.caller, '*', { 'kms:MultiRegion': 'true', 'kms:MultiRegionKeyType': 'REPLICA' });
    const account = primary.accountId;
    // The replica's policy is its own: the Policy parameter, or the default key policy (never the primary's), checked in the replica's Region.
    const policy =
      body.Policy === undefined
        ? defaultPolicy(account)
        : checkPolicy(cfg, body.Policy, { arn: replicaArn, accountId: account }, { ...ctx, region }, body.BypassPolicyLockoutSafetyCheck);
    const replica = cfg.state.replicate(primary, region, policy, typeof body.Description === 'string' ? body.Description : '', ctx.now);
    ctx.audit.resources.push(replica.arn);
    // KMS answers while the replica is still being created; it is usable once Creating ends (at once here).
    const replicaMetadata = { ...metadata(cfg, replica), ...(replica.keyState === 'Enabled' ? { KeyState: 'Creating', Enabled: false } : {}) };
    return { ReplicaKeyMetadata: replicaMetadata, ReplicaPolicy: policy, ReplicaTags: [] };
  },

  async UpdatePrimaryRegion(cfg, body, ctx) {
    const primary = findKey(cfg, requireString(body, 'KeyId'), ctx, 'key', false);
    const region = requireString(body, 'PrimaryRegion');
    ctx.audit.resources.push(primary.arn);
    // kms:UpdatePrimaryRegion on the current primary and on the replica that becomes primary, each by its own key policy.
    authorize(cfg, primary, 'kms:UpdatePrimaryRegion', ctx, { 'kms:PrimaryRegion': region });
    if (!primary.multiRegion) throw unsupported(`${primary.arn} is not a multi-Region key.`);
    if (!primary.primary) throw unsupported(`${primary.arn} is not a multi-Region primary key.`);
    const replica = cfg.state.key(region, primary.accountId, primary.keyId);
    if (!replica) throw unsupported(`Multi-Region key ${primary.keyId} has no replica in ${region}.`);
    authorize(cfg, replica, 'kms:UpdatePrimaryRegion', { ...ctx, region }, { 'kms:PrimaryRegion': region });
    for (const k of [primary, replica]) {
      if (k.keyState === 'PendingDeletion' || k.keyState === 'PendingReplicaDeletion') throw new KmsError('KMSInvalidStateException', `${k.arn} is pending deletion.`);
    }
    primary.primary = false;
    replica.primary = true;
    cfg.state.save();
    ctx.audit.resources.push(replica.arn);
    return {};
  },
};
