import { readFileSync } from 'node:fs';
import { Agent } from 'node:https';
import { NodeHttpHandler } from '@smithy/node-http-handler';
import type { TrailRecord } from '../parent/index.js';
import { UsageError } from './io.js';
import type { ClientFlags } from './kms-client.js';

/** CloudTrail keeps 90 days of management events for LookupEvents. */
export const MAX_LOOKBACK_MS = 90 * 86_400_000;

/** `24h`, `90m`, `7d`, `30s` → milliseconds. */
export function durationMs(flag: string, value: string): number {
  const m = /^(\d+)(s|m|h|d)$/.exec(value);
  if (!m) throw new UsageError(`${flag} expects a duration such as 30m, 24h or 7d, got "${value}"`);
  return Number(m[1]) * { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[m[2] as 's' | 'm' | 'h' | 'd'];
}

/**
 * Every CloudTrail record of `keyArn` between `since` and `until`, oldest
 * first: LookupEvents by ResourceName, all pages. The CloudTrail client has
 * the same credentials and region chain as the KMS one; `--cloudtrail-endpoint`
 * (default `--endpoint`: the kms-simulator serves both) and `--ca-file` point
 * it elsewhere.
 */
export async function fetchKeyTrail(flags: ClientFlags & { 'cloudtrail-endpoint'?: string }, env: NodeJS.ProcessEnv, keyArn: string, since: Date, until: Date): Promise<TrailRecord[]> {
  // Loaded here, not at start: only audit and rollout read CloudTrail.
  const { CloudTrailClient, paginateLookupEvents } = await import('@aws-sdk/client-cloudtrail');
  const region = flags.region ?? env.AWS_REGION ?? env.AWS_DEFAULT_REGION;
  const endpoint = flags['cloudtrail-endpoint'] ?? flags.endpoint;
  const ca = flags['ca-file'] ? readFileSync(flags['ca-file'], 'utf8') : undefined;
  const client = new CloudTrailClient({
    ...(region ? { region } : {}),
    ...(endpoint ? { endpoint } : {}),
    ...(ca ? { requestHandler: new NodeHttpHandler({ httpsAgent: new Agent({ ca, keepAlive: true }) }) } : {}),
    // LookupEvents allows two calls a second per account and Region: ride out throttling on long trails.
    maxAttempts: 8,
  });
  const records: TrailRecord[] = [];
  try {
    const pages = paginateLookupEvents({ client, pageSize: 50 }, { LookupAttributes: [{ AttributeKey: 'ResourceName', AttributeValue: keyArn }], StartTime: since, EndTime: until });
    for await (const page of pages) {
      for (const e of page.Events ?? []) {
        try {
          records.push(JSON.parse(e.CloudTrailEvent ?? '') as TrailRecord);
        } catch {
          throw new Error(`CloudTrail event ${e.EventId ?? '?'} has no readable CloudTrailEvent`);
        }
      }
    }
  } finally {
    client.destroy();
  }
  return records.reverse();
}
