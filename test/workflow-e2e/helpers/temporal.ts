import { Client, Connection } from '@temporalio/client';
import { temporal } from '@temporalio/proto';
import { NativeConnection } from '@temporalio/worker';
import { startTemporalStandIn, type TemporalStandIn } from '../../../src/testing/temporal/index.js';

/** Set to run the suite against a real Temporal server as well. */
export const realServerConfigured = Boolean(process.env.TEMPORAL_ADDRESS || process.env.TEMPORAL_CLI_PATH);
export const realServerSkipNote =
  'real Temporal server: skipped — set TEMPORAL_ADDRESS (a running server) or TEMPORAL_CLI_PATH (a temporal CLI binary) to run; none can be fetched on this machine';

export interface TemporalUnderTest {
  kind: 'stand-in' | 'real';
  client: Client;
  nativeConnection: NativeConnection;
  namespace: string;
  standIn?: TemporalStandIn;
  close(): Promise<void>;
}

/** The in-process stand-in, or the real server named by the environment. */
export async function startTemporal(kind: 'stand-in' | 'real'): Promise<TemporalUnderTest> {
  if (kind === 'stand-in') {
    const standIn = await startTemporalStandIn();
    const connection = await Connection.connect({ address: standIn.address });
    const nativeConnection = await NativeConnection.connect({ address: standIn.address });
    return {
      kind,
      client: new Client({ connection }),
      nativeConnection,
      namespace: standIn.namespace,
      standIn,
      async close() {
        await connection.close();
        await nativeConnection.close();
        await standIn.close();
      },
    };
  }
  if (process.env.TEMPORAL_ADDRESS) {
    const address = process.env.TEMPORAL_ADDRESS;
    const namespace = process.env.TEMPORAL_NAMESPACE ?? 'default';
    const connection = await Connection.connect({ address });
    const nativeConnection = await NativeConnection.connect({ address });
    return {
      kind,
      client: new Client({ connection, namespace }),
      nativeConnection,
      namespace,
      async close() {
        await connection.close();
        await nativeConnection.close();
      },
    };
  }
  const { TestWorkflowEnvironment } = await import('@temporalio/testing');
  const env = await TestWorkflowEnvironment.createLocal({
    server: { executable: { type: 'existing-path', path: process.env.TEMPORAL_CLI_PATH! } },
  });
  return { kind, client: env.client, nativeConnection: env.nativeConnection, namespace: env.namespace ?? 'default', close: () => env.teardown() };
}

/**
 * Whether the server holds `needle` for this workflow: in the history it returns (what it
 * persists) and, for the stand-in, in anything it received or stored.
 */
export async function serverHolds(env: TemporalUnderTest, workflowId: string, needle: string | Uint8Array): Promise<boolean> {
  const n = Buffer.from(typeof needle === 'string' ? new TextEncoder().encode(needle) : needle);
  const history = await env.client.workflow.getHandle(workflowId).fetchHistory();
  const bytes = Buffer.from(temporal.api.history.v1.History.encode(history).finish());
  return bytes.includes(n) || (env.standIn?.sawBytes(n, { workflowId }) ?? false);
}
