import { readFileSync } from 'node:fs';
import { Agent } from 'node:https';
import { setTimeout as delay } from 'node:timers/promises';
import { NodeHttpHandler } from '@smithy/node-http-handler';
import type { TrailRecord } from '../parent/index.js';
import { UsageError } from './io.js';
import type { ClientFlags } from './kms-client.js';

/** CloudTrail keeps 90 days of management events for LookupEvents. */
export const MAX_LOOKBACK_MS = 90 * 86_400_000;

/** How many events the audit reads at most by default: 200 pages of 50, about 100 s at LookupEvents' 2 requests a second. */
export const DEFAULT_MAX_EVENTS = 10_000;

/** LookupEvents allows two requests a second per account and Region: pages are spaced by this much. */
export const LOOKUP_INTERVAL_MS = 500;

/** How often one page is retried after ThrottlingException, with doubling waits from {@link LOOKUP_INTERVAL_MS}. */
const THROTTLE_RETRIES = 6;

/** `24h`, `90m`, `7d`, `30s` → milliseconds. */
export function durationMs(flag: string, value: string): number {
  const m = /^(\d+)(s|m|h|d)$/.exec(value);
  if (!m) throw new UsageError(`${flag} expects a duration such as 30m, 24h or 7d, got "${value}"`);
  return Number(m[1]) * { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[m[2] as 's' | 'm' | 'h' | 'd'];
}

/** `--max-events`: a positive integer. */
export function maxEventsFlag(value: string | undefined): number {
  if (value === undefined) return DEFAULT_MAX_EVENTS;
  if (!/^[1-9]\d{0,6}$/.test(value)) throw new UsageError(`--max-events expects a positive integer, got "${value}"`);
  return Number(value);
}

/**
 * The CloudTrail endpoint: `--cloudtrail-endpoint` when given; else
 * `--endpoint` when it is a loopback address (the kms-simulator serves both
 * APIs); else none, so the SDK uses the Region's CloudTrail endpoint (a FIPS
 * or VPC endpoint of KMS does not serve CloudTrail).
 */
export function cloudTrailEndpoint(flags: ClientFlags & { 'cloudtrail-endpoint'?: string }): string | undefined {
  if (flags['cloudtrail-endpoint']) return flags['cloudtrail-endpoint'];
  if (!flags.endpoint) return undefined;
  let host: string;
  try {
    host = new URL(flags.endpoint).hostname;
  } catch {
    return undefined;
  }
  return /^(localhost|127\.\d+\.\d+\.\d+|\[::1\])$/.test(host) ? flags.endpoint : undefined;
}

/** What {@link fetchKeyTrail} read: the records oldest first, and `incomplete` when it stopped at `maxEvents`. */
export interface KeyTrail {
  records: TrailRecord[];
  incomplete?: { readEvents: number; oldestRead: string };
}

/** Side effects of {@link fetchKeyTrail}, for tests. */
export interface TrailReadOptions {
  /** Stop after this many events (default {@link DEFAULT_MAX_EVENTS}). */
  maxEvents?: number;
  sleep?: (ms: number) => Promise<void>;
}

/**
 * Every CloudTrail record of `keyArn` between `since` and `until` (each optional), oldest
 * first: LookupEvents by ResourceName, page by page, newest first, spaced to
 * LookupEvents' two requests a second, a throttled page retried with doubling
 * waits. It stops after `maxEvents` and says so (`incomplete`): a trail
 * flooded with refused calls cannot make the audit run forever, and the
 * caller reports what it did not read. The CloudTrail client has the same
 * credentials and region chain as the KMS one; see {@link cloudTrailEndpoint}.
 */
export async function fetchKeyTrail(flags: ClientFlags & { 'cloudtrail-endpoint'?: string }, env: NodeJS.ProcessEnv, keyArn: string, since: Date | undefined, until: Date | undefined, options: TrailReadOptions = {}): Promise<KeyTrail> {
  // Loaded here, not at start: only audit and rollout read CloudTrail.
  const { CloudTrailClient, LookupEventsCommand } = await import('@aws-sdk/client-cloudtrail');
  const maxEvents = options.maxEvents ?? DEFAULT_MAX_EVENTS;
  const sleep = options.sleep ?? ((ms: number) => delay(ms));
  const region = flags.region ?? env.AWS_REGION ?? env.AWS_DEFAULT_REGION;
  const endpoint = cloudTrailEndpoint(flags);
  const ca = flags['ca-file'] ? readFileSync(flags['ca-file'], 'utf8') : undefined;
  const client = new CloudTrailClient({
    ...(region ? { region } : {}),
    ...(endpoint ? { endpoint } : {}),
    ...(ca ? { requestHandler: new NodeHttpHandler({ httpsAgent: new Agent({ ca, keepAlive: true }) }) } : {}),
    // Throttling is retried below, paced to LookupEvents' limit; any other failure ends the read (the audit fails closed).
    maxAttempts: 1,
  });
  const records: TrailRecord[] = [];
  let incomplete: KeyTrail['incomplete'];
  try {
    let nextToken: string | undefined;
    let first = true;
    do {
      if (!first) await sleep(LOOKUP_INTERVAL_MS);
      first = false;
      const input = { LookupAttributes: [{ AttributeKey: 'ResourceName' as const, AttributeValue: keyArn }], ...(since ? { StartTime: since } : {}), ...(until ? { EndTime: until } : {}), MaxResults: 50, ...(nextToken ? { NextToken: nextToken } : {}) };
      let page;
      for (let attempt = 0; ; attempt++) {
        try {
          page = await client.send(new LookupEventsCommand(input));
          break;
        } catch (err) {
          if ((err as Error).name !== 'ThrottlingException' || attempt >= THROTTLE_RETRIES) throw err;
          await sleep(LOOKUP_INTERVAL_MS * 2 ** (attempt + 1));
        }
      }
      let dropped = false;
      for (const e of page.Events ?? []) {
        if (records.length >= maxEvents) {
          dropped = true;
          break;
        }
        try {
          records.push(JSON.parse(e.CloudTrailEvent ?? '') as TrailRecord);
        } catch {
          throw new Error(`CloudTrail event ${e.EventId ?? '?'} has no readable CloudTrailEvent`);
        }
      }
      nextToken = page.NextToken;
      if (dropped || (records.length >= maxEvents && nextToken)) {
        incomplete = { readEvents: records.length, oldestRead: records.at(-1)!.eventTime };
        break;
      }
    } while (nextToken);
  } finally {
    client.destroy();
  }
  return { records: records.reverse(), ...(incomplete ? { incomplete } : {}) };
}
