import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { DescribeKeyCommand, GetKeyPolicyCommand, PutKeyPolicyCommand, type KMSClient } from '@aws-sdk/client-kms';
import { asArray } from '../../internal/iam-policy.js';
import { admittedImages, auditKeyTrail, buildKeyPolicy, imageAdmits, imageLabel, observedLabel, parsePolicy, type EnclaveImage, type PolicyDocument } from '../../parent/index.js';
import { EXIT, UsageError, json, type Io } from '../io.js';
import { CLIENT_OPTIONS, kmsClient } from '../kms-client.js';
import { durationMs, fetchKeyTrail, MAX_LOOKBACK_MS } from '../trail.js';
import { checkPolicyCommand } from './kms.js';

export const rolloutHelp = `Usage: nitro-enclave rollout <status|add|remove> --key-id <id> [<image>] [options]

Changes which enclave images the TSK key releases to, one image at a time,
on a key policy written by \`nitro-enclave policy\` / \`setup\`:

  status   the admitted images, and each one's last attested use from CloudTrail
  add      admit <image>: read the policy, add the image, put it (never bypassing
           KMS's lockout safety check), then run check-policy when --blob is given
  remove   drop <image>; refused (exit 5) while CloudTrail shows a release of key
           material to that image within --drain-window, unless --force

add and remove print the policy diff and are idempotent (a second run changes
nothing). remove never reports success while the image stays admitted: when
another admitted image still admits it (say it was admitted as PCR0 + PCR1 and
you name only PCR0), it refuses (exit 5) and names that image. KMS has no
conditional put: rollout re-reads the policy just before and after its put and
checks the trail for another PutKeyPolicy in between; run one rollout at a time. They refuse (exit 5) a policy they cannot reproduce exactly (edited by
hand or by something else): write that one with \`nitro-enclave policy\` and
\`setup --policy\` first. The AWS CLI sees the same policy (aws kms get-key-policy).

<image> (add, remove):
  --pcr0 <hex> [--pcr1 <hex>] [--pcr2 <hex>]   by PCR0, optionally with PCR1 and PCR2
  --pcr8 <hex>                                 every EIF signed with one certificate
  --measurements <file>                        a build: nitro-cli build-enclave / describe-eif JSON
                                               (PCR0, PCR1, PCR2, and PCR8 when signed). add admits
                                               its PCR0; remove drops every admitted PCR0 image
                                               that admits the build

Options:
  --key-id <id>            the TSK key (ARN, id or alias)
  --since <duration>       status: how far back to look for uses (default 7d, at most 90d)
  --drain-window <d>       remove: how recent a use blocks removal (default 1h; CloudTrail
                           shows events after about 5 minutes, up to 15: at least 15m)
  --force                  remove even though the image was used within the drain window
  --dry-run                print the diff, change nothing
  --blob <file>            after add/remove, run check-policy on this TSK blob
  --cloudtrail-endpoint <url>  CloudTrail endpoint (default: the Region's; --endpoint when that
                           is a loopback kms-simulator)
  --region, --endpoint, --ca-file   as for the other KMS commands
  --json                   machine-readable output
Needs kms:DescribeKey, kms:GetKeyPolicy, kms:PutKeyPolicy and cloudtrail:LookupEvents.
`;

const OPTIONS = {
  ...CLIENT_OPTIONS,
  'key-id': { type: 'string' },
  pcr0: { type: 'string' },
  pcr1: { type: 'string' },
  pcr2: { type: 'string' },
  pcr8: { type: 'string' },
  measurements: { type: 'string' },
  since: { type: 'string' },
  'drain-window': { type: 'string' },
  force: { type: 'boolean' },
  'dry-run': { type: 'boolean' },
  blob: { type: 'string' },
  'cloudtrail-endpoint': { type: 'string' },
  json: { type: 'boolean' },
} as const;

type Flags = ReturnType<typeof parseArgs<{ args: string[]; options: typeof OPTIONS }>>['values'];

const HEX384 = /^[0-9a-fA-F]{96}$/;

function pcrFlag(name: string, value: string | undefined): string | undefined {
  if (value === undefined) return undefined;
  const v = value.replace(/^0x/, '');
  if (!HEX384.test(v)) throw new UsageError(`--${name} must be 96 hex characters (SHA-384)`);
  return v.toLowerCase();
}

/**
 * What the flags name: an image (`--pcr0 [--pcr1 --pcr2]`, `--pcr8`), or a
 * build (`--measurements`: every PCR nitro-cli printed for one EIF, PCR8 when
 * it was signed). `add` admits a build by its PCR0; `remove` drops every
 * admitted image that admits the build.
 */
function imageOf(values: Flags): { image: EnclaveImage; build?: EnclaveImage } {
  let pcr0 = pcrFlag('pcr0', values.pcr0);
  let build: EnclaveImage | undefined;
  if (values.measurements) {
    if (pcr0 || values.pcr1 || values.pcr2 || values.pcr8) throw new UsageError('give --measurements alone, or name the image with --pcr0/--pcr1/--pcr2/--pcr8');
    let parsed: { Measurements?: Record<string, string> };
    try {
      parsed = JSON.parse(readFileSync(values.measurements, 'utf8'));
    } catch {
      throw new UsageError(`${values.measurements} is not the JSON that nitro-cli prints`);
    }
    const m = parsed.Measurements ?? {};
    pcr0 = pcrFlag('measurements PCR0', m.PCR0);
    if (!pcr0) throw new UsageError(`${values.measurements} has no Measurements.PCR0`);
    build = { pcr0 };
    for (const k of ['pcr1', 'pcr2', 'pcr8'] as const) {
      const v = pcrFlag(`measurements ${k.toUpperCase()}`, m[k.toUpperCase()]);
      if (v) build[k] = v;
    }
    return { image: { pcr0 }, build };
  }
  const pcr1 = pcrFlag('pcr1', values.pcr1);
  const pcr2 = pcrFlag('pcr2', values.pcr2);
  const pcr8 = pcrFlag('pcr8', values.pcr8);
  if (pcr8 && (pcr0 || pcr1 || pcr2)) throw new UsageError('an image is PCR0 (with PCR1/PCR2) or PCR8, not both');
  if (!pcr8 && !pcr0) throw new UsageError('name the image: --pcr0 <hex> [--pcr1 --pcr2], --pcr8 <hex>, or --measurements <file>');
  if (pcr8) return { image: { pcr8 } };
  return { image: { pcr0: pcr0!, ...(pcr1 ? { pcr1 } : {}), ...(pcr2 ? { pcr2 } : {}) } };
}

const sameImage = (a: EnclaveImage, b: EnclaveImage) => a.pcr0 === b.pcr0 && a.pcr1 === b.pcr1 && a.pcr2 === b.pcr2 && a.pcr8 === b.pcr8;

/** Whether some enclave could match both: they name a PCR in common, and agree on every PCR both name. */
function overlaps(a: EnclaveImage, b: EnclaveImage): boolean {
  const shared = (['pcr0', 'pcr1', 'pcr2', 'pcr8'] as const).filter((k) => a[k] !== undefined && b[k] !== undefined);
  return shared.length > 0 && shared.every((k) => a[k] === b[k]);
}

/** Key order does not matter to KMS, so policies compare as canonical JSON. */
function canonical(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonical).join(',')}]`;
  if (value && typeof value === 'object') return `{${Object.keys(value).sort().map((k) => `${JSON.stringify(k)}:${canonical((value as Record<string, unknown>)[k])}`).join(',')}}`;
  return JSON.stringify(value);
}

class Refusal extends Error {}

/**
 * The buildKeyPolicy options a key policy was written from, read back from
 * it; refused unless buildKeyPolicy rebuilds exactly that policy from them,
 * so rollout never rewrites a policy it does not fully understand.
 */
function optionsOf(policy: PolicyDocument, keyArn: string) {
  const accountId = /^arn:aws[\w-]*:kms:[^:]+:(\d{12}):key\//.exec(keyArn)![1]!;
  const gated = policy.Statement.filter((s) => s.Effect === 'Allow' && Object.values(s.Condition ?? {}).some((block) => Object.keys(block).some((k) => /^kms:RecipientAttestation:/i.test(k))));
  const roles = [...new Set(gated.flatMap((s) => (s.Principal && s.Principal !== '*' ? asArray(s.Principal.AWS) : ['*'])))];
  const admins = policy.Statement.find((s) => s.Sid === 'Allow Key Administrators');
  const images = admittedImages(policy);
  const options = {
    accountId,
    enclaveRole: roles[0] ?? '',
    admins: admins?.Principal && admins.Principal !== '*' ? asArray(admins.Principal.AWS) : [],
    enclaveActions: asArray(gated[0]?.Action),
    denyUnattested: policy.Statement.some((s) => s.Effect === 'Deny'),
    allowDebugPcr0: images.some((i) => /^0+$/.test(i.pcr0 ?? '') || /^0+$/.test(i.pcr8 ?? '')),
  };
  let rebuilt: PolicyDocument | undefined;
  try {
    if (roles.length === 1 && images.length > 0) rebuilt = buildKeyPolicy({ ...options, images });
  } catch {
    rebuilt = undefined;
  }
  if (!rebuilt || canonical(rebuilt) !== canonical(policy)) {
    throw new Refusal(`the key policy of ${keyArn} is not one \`nitro-enclave policy\` writes (edited by hand, by another tool or version); rollout will not rewrite it. Write the policy you want with \`nitro-enclave policy\`, apply it with \`nitro-enclave setup --policy\`, then use rollout`);
  }
  return { options, images };
}

/** A line diff of two pretty-printed policies (longest common subsequence). */
export function policyDiff(before: PolicyDocument, after: PolicyDocument): string {
  const a = JSON.stringify(before, null, 2).split('\n');
  const b = JSON.stringify(after, null, 2).split('\n');
  const lcs: number[][] = Array.from({ length: a.length + 1 }, () => new Array<number>(b.length + 1).fill(0));
  for (let i = a.length - 1; i >= 0; i--) for (let j = b.length - 1; j >= 0; j--) lcs[i]![j] = a[i] === b[j] ? lcs[i + 1]![j + 1]! + 1 : Math.max(lcs[i + 1]![j]!, lcs[i]![j + 1]!);
  const out: string[] = [];
  let i = 0;
  let j = 0;
  while (i < a.length || j < b.length) {
    if (i < a.length && j < b.length && a[i] === b[j]) {
      out.push(`  ${a[i]}`);
      i++;
      j++;
    } else if (j < b.length && (i === a.length || lcs[i]![j + 1]! >= lcs[i + 1]![j]!)) out.push(`+ ${b[j++]}`);
    else out.push(`- ${a[i++]}`);
  }
  // Only the changed lines with two lines of context, as `diff -U2` would.
  const keep = out.map((line, k) => out.slice(Math.max(0, k - 2), k + 3).some((l) => !l.startsWith('  ')));
  return `${out.map((line, k) => (keep[k] ? line : keep[k - 1] ? '  …' : null)).filter((l) => l !== null).join('\n')}\n`;
}

async function readKey(kms: KMSClient, keyId: string): Promise<{ keyArn: string; policy: PolicyDocument }> {
  const { KeyMetadata } = await kms.send(new DescribeKeyCommand({ KeyId: keyId }));
  const keyArn = KeyMetadata!.Arn!;
  const { Policy } = await kms.send(new GetKeyPolicyCommand({ KeyId: keyArn, PolicyName: 'default' }));
  return { keyArn, policy: parsePolicy(Policy ?? '') };
}

/** The last release of key material to each admitted image in the trail window. */
async function lastUses(values: Flags, io: Io, keyArn: string, policy: PolicyDocument, since: Date, until: Date) {
  const { records, incomplete } = await fetchKeyTrail(values, io.env, keyArn, since, until);
  // The drain check must see the newest uses; a trail too large to read whole still gives those.
  const report = auditKeyTrail(records, { keyArn, policy, since, until, ...(incomplete ? { incomplete } : {}) });
  const last = (image: EnclaveImage) =>
    report.images
      .filter((u) => u.lastRelease && imageAdmits(image, u.image))
      .map((u) => u.lastRelease!)
      .sort()
      .at(-1);
  return { report, last };
}

/**
 * Puts `after` in place of `before`. KMS has no conditional put, so a
 * concurrent change (another rollout, an administrator) could be overwritten
 * unseen: the policy is read again just before the put and must still be
 * `before`; after the put it must read back as `after`; and in the trail
 * the PutKeyPolicy just before ours must be the one that set `before`, with
 * none after ours (CloudTrail shows one up to 15 minutes late: see
 * docs/operations.md).
 */
async function change(values: Flags, io: Io, kms: KMSClient, keyArn: string, before: PolicyDocument, after: PolicyDocument, what: { do: string; done: string }): Promise<number> {
  io.stdout(`policy diff (${keyArn}):\n${policyDiff(before, after)}`);
  if (values['dry-run']) {
    io.stdout(`dry run: would ${what.do}; nothing changed\n`);
    return EXIT.OK;
  }
  const current = (await kms.send(new GetKeyPolicyCommand({ KeyId: keyArn, PolicyName: 'default' }))).Policy ?? '';
  if (canonical(parsePolicy(current)) !== canonical(before)) {
    throw new Refusal(`the key policy of ${keyArn} changed while this command ran (someone else put a policy); nothing changed: run \`nitro-enclave rollout status\` and try again`);
  }
  // Never BypassPolicyLockoutSafetyCheck: KMS refuses a policy that would lock these credentials out of PutKeyPolicy.
  const put = await kms.send(new PutKeyPolicyCommand({ KeyId: keyArn, PolicyName: 'default', Policy: JSON.stringify(after) }));
  const requestId = put.$metadata.requestId;
  const { Policy } = await kms.send(new GetKeyPolicyCommand({ KeyId: keyArn, PolicyName: 'default' }));
  if (canonical(parsePolicy(Policy ?? '')) !== canonical(after)) throw new Error(`the key policy read back from KMS is not the one just put (someone else changed it?): run \`nitro-enclave rollout status\``);
  // A PutKeyPolicy by someone else between our read and our put is overwritten by ours. The trail
  // orders puts, its times are whole seconds: the put before ours must be the one that set `before`.
  // The newest events of the key, by no clock of ours (an injected or skewed one must not hide them).
  const { records, incomplete } = await fetchKeyTrail(values, io.env, keyArn, undefined, undefined, { maxEvents: 200 });
  const puts = records.filter((r) => r.eventName === 'PutKeyPolicy' && !r.errorCode && (r.resources ?? []).some((res) => res.ARN === keyArn));
  const ours = puts.findIndex((r) => r.requestID === requestId);
  const previous = ours > 0 ? puts[ours - 1]! : undefined;
  if (ours >= 0 && !previous && incomplete) io.stderr(`warning: more than ${incomplete.readEvents} events on the key since the policy before this one: a concurrent put cannot be ruled out from here; \`nitro-enclave audit\` shows every PutKeyPolicy\n`);
  let previousPolicy: string | undefined;
  try {
    previousPolicy = previous ? canonical(parsePolicy(String(previous.requestParameters?.policy))) : undefined;
  } catch {
    previousPolicy = '(unreadable)';
  }
  const intruders = [...(previous && previousPolicy !== canonical(before) ? [previous] : []), ...puts.slice(ours + 1)];
  if (ours >= 0 && intruders.length) {
    throw new Error(
      `another PutKeyPolicy on ${keyArn} (event ${intruders.map((r) => `${r.eventID ?? '?'} by ${r.userIdentity?.arn ?? '?'}`).join(', ')}) ran around this command's put (request ${requestId ?? '?'}): one change overwrote the other. Run \`nitro-enclave rollout status\` and redo what is missing`,
    );
  }
  // CloudTrail delivers events about 5 (up to 15) minutes late: until then a race cannot be ruled out from here.
  if (ours < 0) io.stderr(`warning: the trail does not show this PutKeyPolicy yet (CloudTrail delivers events minutes late), so a concurrent put cannot be ruled out: any other PutKeyPolicy shows as POLICY_CHANGED in \`nitro-enclave audit\`\n`);
  io.stdout(`✔ ${what.done}\n  PutKeyPolicy request ${requestId ?? '?'}: \`nitro-enclave audit --ack ${requestId ?? '<request id>'}\` acknowledges this change\n`);
  if (!values.blob) {
    io.stdout('  next: nitro-enclave check-policy --blob <TSK blob> (or rerun with --blob)\n');
    return EXIT.OK;
  }
  io.stdout('check-policy:\n');
  const flags = (['region', 'endpoint', 'ca-file'] as const).flatMap((f) => (values[f] ? [`--${f}`, values[f]!] : []));
  return checkPolicyCommand(['--blob', values.blob, '--key-id', keyArn, ...flags], io);
}

export async function rolloutCommand(argv: string[], io: Io, now: () => Date = () => new Date()): Promise<number> {
  const [action, ...rest] = argv;
  if (action !== 'status' && action !== 'add' && action !== 'remove') throw new UsageError('give one of: rollout status | add | remove (see --help)');
  const { values } = parseArgs({ args: rest, options: OPTIONS });
  if (!values['key-id']) throw new UsageError('--key-id is required');
  const named = action === 'status' ? undefined : imageOf(values);
  const sinceMs = durationMs('--since', values.since ?? '7d');
  const drainMs = durationMs('--drain-window', values['drain-window'] ?? '1h');
  if (sinceMs > MAX_LOOKBACK_MS || drainMs > MAX_LOOKBACK_MS) throw new UsageError('CloudTrail keeps 90 days of events for LookupEvents: --since and --drain-window are at most 90d');
  // A release can reach LookupEvents up to 15 minutes after it happened: a shorter window could miss the last one.
  if (drainMs < 15 * 60_000) throw new UsageError('--drain-window must be at least 15m: CloudTrail shows an event up to 15 minutes after the call');
  const kms = kmsClient(values, io.env);
  try {
    const { keyArn, policy } = await readKey(kms, values['key-id']);
    const until = now();
    if (action === 'status') {
      const images = admittedImages(policy);
      const { report, last } = await lastUses(values, io, keyArn, policy, new Date(until.getTime() - sinceMs), until);
      const rows = images.map((i) => ({ image: i, lastRelease: last(i) ?? null }));
      const others = report.images.filter((u) => !u.admitted);
      const tooLarge = report.findings.find((f) => f.code === 'TRAIL_TOO_LARGE');
      if (tooLarge) io.stderr(`warning: ${tooLarge.message}: a last release older than that is not shown\n`);
      if (values.json) io.stdout(json({ keyArn, since: report.since, admitted: rows, notAdmitted: others }));
      else {
        io.stdout(`${keyArn} admits ${images.length} image(s):\n`);
        for (const r of rows) io.stdout(`  ${imageLabel(r.image)}  last release ${r.lastRelease ?? `none since ${report.since}`}\n`);
        for (const u of others) io.stdout(`  not admitted: ${observedLabel(u.image)} seen ${u.lastSeen} (${u.releases} release(s), ${u.denied} refused)\n`);
      }
      return EXIT.OK;
    }
    const { options, images } = optionsOf(policy, keyArn);
    const { image, build } = named!;
    if (action === 'add') {
      if (images.some((i) => sameImage(i, image))) {
        io.stdout(`✔ no change: ${imageLabel(image)} is already admitted by ${keyArn}\n`);
        return EXIT.OK;
      }
      return await change(values, io, kms, keyArn, policy, buildKeyPolicy({ ...options, images: [...images, image] }), { do: `admit ${imageLabel(image)}`, done: `admitted ${imageLabel(image)}` });
    }
    // A build goes with every admitted PCR0 image that admits it; a named image only as named.
    const subject = build ?? image;
    const targets = build ? images.filter((i) => i.pcr0 !== undefined && imageAdmits(i, build)) : images.filter((i) => sameImage(i, image));
    const remaining = images.filter((i) => !targets.some((t) => sameImage(t, i)));
    const still = remaining.filter((i) => overlaps(i, subject));
    const subjectLabel = build ? `the build ${imageLabel(build)}` : imageLabel(image);
    if (still.length) {
      throw new Refusal(
        `${subjectLabel} would stay admitted by ${still.map(imageLabel).join(' and ')}; nothing changed. ` +
          (build ? 'A PCR8 image admits every EIF signed with its certificate: remove it with --pcr8 <hex> if that is what you mean' : 'Name the admitted image exactly (with the same --pcr0/--pcr1/--pcr2), or give the build with --measurements to remove every admitted image it matches'),
      );
    }
    if (!targets.length) {
      io.stdout(`✔ no change: ${subjectLabel} is not admitted by ${keyArn}\n`);
      return EXIT.OK;
    }
    const targetLabel = targets.map(imageLabel).join(' and ');
    if (remaining.length === 0) throw new Refusal(`${targetLabel} ${targets.length > 1 ? 'are' : 'is'} the only admitted image${targets.length > 1 ? 's' : ''}: removing ${targets.length > 1 ? 'them' : 'it'} would leave the TSK to no enclave. Add its successor first (rollout add)`);
    const since = new Date(until.getTime() - drainMs);
    const { report, last } = await lastUses(values, io, keyArn, policy, since, until);
    const tooLarge = report.findings.find((f) => f.code === 'TRAIL_TOO_LARGE');
    if (tooLarge && !values.force) throw new Refusal(`the drain check could not read the whole trail: ${tooLarge.message}`);
    const used = targets.map(last).filter((t): t is string => t !== undefined).sort().at(-1);
    if (used && !values.force) {
      throw new Refusal(`${targetLabel} received key material at ${used}, within --drain-window ${values['drain-window'] ?? '1h'}: its enclaves may still be running. Drain them, wait, and run this again (or --force)`);
    }
    if (used) io.stderr(`warning: --force: ${targetLabel} was used at ${used}, within the drain window\n`);
    return await change(values, io, kms, keyArn, policy, buildKeyPolicy({ ...options, images: remaining }), { do: `remove ${targetLabel}`, done: `removed ${targetLabel}` });
  } catch (err) {
    if (!(err instanceof Refusal)) throw err;
    io.stderr(`nitro-enclave rollout ${action}: refused: ${err.message}\n`);
    return EXIT.REFUSED;
  } finally {
    kms.destroy();
  }
}
