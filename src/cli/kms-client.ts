import { readFileSync } from 'node:fs';
import { Agent } from 'node:https';
import { KMSClient } from '@aws-sdk/client-kms';
import { NodeHttpHandler } from '@smithy/node-http-handler';

export interface ClientFlags {
  region?: string;
  endpoint?: string;
  'ca-file'?: string;
}

/** A KMSClient with the normal AWS credential and region chain; `--endpoint`/`--ca-file` point it at a simulator. */
export function kmsClient(flags: ClientFlags, env: NodeJS.ProcessEnv): KMSClient {
  const region = flags.region ?? env.AWS_REGION ?? env.AWS_DEFAULT_REGION;
  const ca = flags['ca-file'] ? readFileSync(flags['ca-file'], 'utf8') : undefined;
  return new KMSClient({
    ...(region ? { region } : {}),
    ...(flags.endpoint ? { endpoint: flags.endpoint } : {}),
    ...(ca ? { requestHandler: new NodeHttpHandler({ httpsAgent: new Agent({ ca, keepAlive: true }) }) } : {}),
  });
}

export const CLIENT_OPTIONS = {
  region: { type: 'string' },
  endpoint: { type: 'string' },
  'ca-file': { type: 'string' },
} as const;
