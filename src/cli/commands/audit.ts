import { parseArgs } from 'node:util';
import { DescribeKeyCommand, GetKeyPolicyCommand } from '@aws-sdk/client-kms';
import { auditKeyTrail, imageLabel, observedLabel, parsePolicy, type AuditReport } from '../../parent/index.js';
import { EXIT, UsageError, json, type Io } from '../io.js';
import { CLIENT_OPTIONS, kmsClient } from '../kms-client.js';
import { durationMs, fetchKeyTrail, MAX_LOOKBACK_MS, maxEventsFlag, type TrailReadOptions } from '../trail.js';

export const auditHelp = `Usage: nitro-enclave audit --key-id <key ARN> [--since 24h] [--ack <id>]... [--json] [options]

Reads the key's CloudTrail trail (LookupEvents by resource name) and its
current key policy (GetKeyPolicy), and reports every use of the TSK key:
attested releases by image (PCR0 from the recipient fields), refused calls,
policy and grant changes. Findings, each with its event id:

  UNATTESTED_RELEASE   key material released (or a blob of a known key minted) without attestation
  POLICY_CHANGED       PutKeyPolicy (says when the new policy no longer denies an unattested Decrypt)
  GRANT_CREATED        CreateGrant
  AUTHORITY_CHANGED    import, replication, alias re-pointing, tags, custom key stores
  IMAGE_NOT_ADMITTED   a release the policy in force then did not admit, or that only an unacknowledged
                       PutKeyPolicy (or the unknown policy before the window) allowed and the current
                       policy does not; a refused call by an image the current policy does not admit
  DEBUG_ENCLAVE_RELEASE  key material released to a debug-mode enclave (PCR0 all zeros)
  NON_ENCLAVE_RELEASE  an attested release to a NitroTPM (the instance itself) or without PCR0
  KEY_DELETION         ScheduleKeyDeletion, or KMS's DeleteKey / DeleteExpiredKeyMaterial
  TRAIL_TOO_LARGE      more events than --max-events: the rest was not judged (never acknowledged)
  UNKNOWN_OPERATION    a successful call this tool cannot classify
KMS's own RotateKey and SynchronizeMultiRegionKey events are not findings.

Exit 0 without findings, 4 with findings: run it from cron and alert on non-zero.
CloudTrail delivers events to LookupEvents within about 5 minutes (up to 15).

Options:
  --key-id <arn>           the TSK key's ARN (not an alias: whoever can re-point the alias
                           could make the audit read another key)
  --since <duration>       how far back: 30m, 24h, 7d … (default 24h, at most 90d)
  --ack <id>               an event id or request id whose finding is known (repeatable),
                           e.g. the PutKeyPolicy your own \`rollout add\` made
  --max-events <n>         read at most n events (default 10000, newest first); more is a
                           TRAIL_TOO_LARGE finding
  --cloudtrail-endpoint <url>  CloudTrail endpoint (default: the Region's; --endpoint when that is a
                           loopback kms-simulator, which serves both)
  --region <region>        AWS region (default: the AWS SDK chain)
  --endpoint <url>         KMS endpoint override (e.g. the kms-simulator)
  --ca-file <pem>          extra CA to trust for TLS (the kms-simulator's CA)
  --json                   the report as JSON
Needs kms:DescribeKey, kms:GetKeyPolicy and cloudtrail:LookupEvents.
`;

/** Prints a report for people: uses by image, refusals, changes, then the findings. */
function render(report: AuditReport): string {
  const lines = [`audit of ${report.keyArn}`, `  ${report.since} → ${report.until}: ${report.events} event(s) on the key`, ''];
  lines.push(`admitted by the current key policy: ${report.admitted.length ? '' : 'no image'}`);
  for (const image of report.admitted) lines.push(`  ${imageLabel(image)}`);
  lines.push('', 'attested use by image:');
  if (!report.images.length) lines.push('  none');
  for (const u of report.images) {
    lines.push(`  ${observedLabel(u.image)}${u.admitted ? '' : '  (NOT admitted now)'}: ${u.releases} release(s)${u.lastRelease ? `, last ${u.lastRelease}` : ''}; ${u.denied} refused; by ${u.principals.join(', ')}`);
  }
  lines.push('', 'refused calls:');
  if (!report.denied.length) lines.push('  none');
  for (const d of report.denied) lines.push(`  ${d.eventTime} ${d.eventName} by ${d.principal}: ${d.errorCode}${d.pcr0 ? ` (attested, PCR0 ${d.pcr0.slice(0, 12)}…)` : ' (no attestation)'}`);
  lines.push('', 'changes of authority (policy, grants, aliases, material):');
  if (!report.changes.length) lines.push('  none');
  for (const c of report.changes) {
    let detail = '';
    if (c.policy && 'images' in c.policy) {
      detail = `; admits ${c.policy.images.map(imageLabel).join(' | ') || 'no named image'}${c.policy.admitsAnyEnclave ? ' and ANY attested enclave' : c.policy.admitsDebugEnclave ? ' and debug-mode enclaves' : ''}; ${c.policy.deniesUnattestedDecrypt ? 'denies' : 'does NOT deny'} an unattested Decrypt`;
    }
    else if (c.policy) detail = `; policy unreadable: ${c.policy.unreadable}`;
    lines.push(`  ${c.eventTime} ${c.eventName} by ${c.principal} (event ${c.eventID})${detail}`);
  }
  if (report.acknowledged.length) lines.push('', `acknowledged: ${report.acknowledged.map((f) => `${f.code} ${f.eventID}`).join(', ')}`);
  lines.push('');
  if (!report.findings.length) lines.push('✔ no findings');
  else {
    lines.push(`✘ ${report.findings.length} finding(s):`);
    for (const f of report.findings) lines.push(`  ${f.code} ${f.eventTime} ${f.eventName} by ${f.principal} (event ${f.eventID}${f.requestID ? `, request ${f.requestID}` : ''}): ${f.message}`);
  }
  return `${lines.join('\n')}\n`;
}

const KEY_ARN = /^arn:aws[\w-]*:kms:[a-z0-9-]+:\d{12}:key\/[\w-]+$/;

export async function auditCommand(argv: string[], io: Io, now: () => Date = () => new Date(), trail: Pick<TrailReadOptions, 'sleep'> = {}): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: { ...CLIENT_OPTIONS, 'key-id': { type: 'string' }, since: { type: 'string' }, ack: { type: 'string', multiple: true }, 'max-events': { type: 'string' }, 'cloudtrail-endpoint': { type: 'string' }, json: { type: 'boolean' } },
  });
  if (!values['key-id']) throw new UsageError('--key-id is required');
  const sinceMs = durationMs('--since', values.since ?? '24h');
  if (sinceMs > MAX_LOOKBACK_MS) throw new UsageError('--since: CloudTrail keeps 90 days of events for LookupEvents; give at most 90d');
  // An alias (or a bare key id resolved in the caller's account) names whatever it points at when the audit runs.
  if (!KEY_ARN.test(values['key-id'])) throw new UsageError('--key-id must be the key ARN (arn:aws:kms:<region>:<account>:key/<id>): an alias can be re-pointed at another key by whoever may update it');
  const maxEvents = maxEventsFlag(values['max-events']);
  const until = now();
  const since = new Date(until.getTime() - sinceMs);
  const kms = kmsClient(values, io.env);
  let keyArn: string;
  let policyText: string;
  try {
    const { KeyMetadata } = await kms.send(new DescribeKeyCommand({ KeyId: values['key-id'] }));
    keyArn = KeyMetadata!.Arn!;
    if (keyArn !== values['key-id']) throw new Error(`DescribeKey of ${values['key-id']} answered for ${keyArn}`);
    policyText = (await kms.send(new GetKeyPolicyCommand({ KeyId: keyArn, PolicyName: 'default' }))).Policy ?? '';
  } finally {
    kms.destroy();
  }
  const { records, incomplete } = await fetchKeyTrail(values, io.env, keyArn, since, until, { maxEvents, ...trail });
  const report = auditKeyTrail(records, { keyArn, policy: parsePolicy(policyText), since, until, acknowledge: values.ack ?? [], ...(incomplete ? { incomplete } : {}) });
  io.stdout(values.json ? json(report) : render(report));
  return report.findings.length ? EXIT.FINDINGS : EXIT.OK;
}
