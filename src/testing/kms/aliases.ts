import { authorizeIam } from './access.js';
import { KmsError } from './errors.js';
import { authorize, findKey, notPendingDeletion, requireString, type CallContext, type Handler, type OperationConfig } from './shared.js';
import type { KeyRecord } from './state.js';

/** The key an existing alias of the caller's account and Region points to (KMS: `Alias <arn> is not found.`). */
function aliasTarget(cfg: OperationConfig, name: string, ctx: CallContext): { arn: string; key: KeyRecord } {
  if (!/^alias\/[a-zA-Z0-9/_-]+$/.test(name)) throw new KmsError('ValidationException', `Alias ${name} is not a valid alias name`);
  const arn = cfg.state.aliasArn(ctx.region, ctx.caller.accountId, name);
  // aws/ aliases belong to AWS managed keys, which the simulator has none of: they never exist for a customer.
  const keyId = cfg.state.aliases.get(arn);
  const key = keyId === undefined ? undefined : cfg.state.key(ctx.region, ctx.caller.accountId, keyId);
  if (!key) throw new KmsError('NotFoundException', `Alias ${arn} is not found.`);
  return { arn, key };
}

/** The key type KMS compares in UpdateAlias: both symmetric encryption, or both the same asymmetric/key agreement kind. */
const keyType = (k: KeyRecord) => (k.spec === 'SYMMETRIC_DEFAULT' ? 'SYMMETRIC' : 'ASYMMETRIC');

/** UpdateAlias and DeleteAlias, authorized on the alias (IAM) and on each key involved (key policy), as KMS does. */
export const ALIAS_HANDLERS: Record<string, Handler> = {
  async UpdateAlias(cfg, body, ctx) {
    const name = requireString(body, 'AliasName');
    const target = findKey(cfg, requireString(body, 'TargetKeyId'), ctx, 'key', false);
    const { arn, key: current } = aliasTarget(cfg, name, ctx);
    ctx.audit.resources.push(arn, current.arn, target.arn);
    authorizeIam('kms:UpdateAlias', ctx.caller, arn);
    authorize(cfg, current, 'kms:UpdateAlias', ctx, {});
    authorize(cfg, target, 'kms:UpdateAlias', ctx, {});
    notPendingDeletion(target);
    if (keyType(current) !== keyType(target) || current.usage !== target.usage) {
      throw new KmsError(
        'ValidationException',
        `${target.arn} key usage is ${target.usage} and key spec is ${target.spec}; the alias points to a key with key usage ${current.usage} and key spec ${current.spec}. An alias can only be updated to a key of the same type and key usage.`,
      );
    }
    cfg.state.aliases.set(arn, target.keyId);
    cfg.state.save();
    return {};
  },

  async DeleteAlias(cfg, body, ctx) {
    const name = requireString(body, 'AliasName');
    const { arn, key } = aliasTarget(cfg, name, ctx);
    ctx.audit.resources.push(arn, key.arn);
    authorizeIam('kms:DeleteAlias', ctx.caller, arn);
    authorize(cfg, key, 'kms:DeleteAlias', ctx, {});
    cfg.state.aliases.delete(arn);
    cfg.state.save();
    return {};
  },
};
