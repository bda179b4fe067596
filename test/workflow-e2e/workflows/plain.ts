// Workflow code for the stand-in tests (bundled by the worker's webpack bundler).
import { ActivityCancellationType, ApplicationFailure, CancellationScope, isCancellation, proxyActivities, sleep } from '@temporalio/workflow';

export interface PlainActivities {
  research(topic: string): Promise<string>;
  analyse(notes: string, angle: string): Promise<string>;
  flaky(text: string): Promise<string>;
  refuse(text: string): Promise<string>;
}

const acts = proxyActivities<PlainActivities>({
  startToCloseTimeout: '20s',
  retry: { initialInterval: '20ms', backoffCoefficient: 1, maximumAttempts: 3 },
});

/** Two sequential activities, then two in parallel. */
export async function plainPipeline(topic: string): Promise<string> {
  const notes = await acts.research(topic);
  const [a, b] = await Promise.all([acts.analyse(notes, 'risk'), acts.analyse(notes, 'cost')]);
  return `${a} | ${b}`;
}

/** An activity that fails twice and succeeds on its third attempt (server-side retries). */
export async function retried(text: string): Promise<string> {
  return acts.flaky(text);
}

/** An activity that fails for good: the workflow fails with the activity's failure. */
export async function refused(text: string): Promise<string> {
  try {
    return await acts.refuse(text);
  } catch (err) {
    throw ApplicationFailure.nonRetryable(`pipeline stopped: ${(err as Error).cause instanceof Error ? ((err as Error).cause as Error).message : 'unknown'}`);
  }
}

const slow = proxyActivities<{ waitForCancel(): Promise<string> }>({
  startToCloseTimeout: '20s',
  heartbeatTimeout: '1s', // the SDK sends heartbeats at most every 80% of this
  cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
});

/** A heartbeating activity cancelled by the workflow after a timer: the cancel reaches the activity. */
export async function cancelAfterTimer(): Promise<string> {
  const scope = new CancellationScope();
  const pending = scope.run(() => slow.waitForCancel());
  await sleep(300);
  scope.cancel();
  try {
    return await pending;
  } catch (err) {
    return isCancellation(err) ? 'activity cancelled' : `unexpected ${String(err)}`;
  }
}

const bounded = proxyActivities<{ hangOnce(): Promise<number> }>({
  startToCloseTimeout: '1s',
  retry: { initialInterval: '20ms', maximumAttempts: 2 },
});

/** The first attempt outlives its start-to-close timeout; the server times it out and retries. */
export async function timedOutOnce(): Promise<number> {
  return bounded.hangOnce();
}

const silent = proxyActivities<{ silentOnce(): Promise<number> }>({
  startToCloseTimeout: '20s',
  heartbeatTimeout: '500ms',
  retry: { initialInterval: '20ms', maximumAttempts: 2 },
});

/** The first attempt stops heartbeating; the server times it out on its heartbeat timeout and retries. */
export async function heartbeatLost(): Promise<number> {
  return silent.silentOnce();
}

const beating = proxyActivities<{ heartbeatPast(): Promise<number> }>({
  startToCloseTimeout: '1s',
  heartbeatTimeout: '500ms',
  retry: { initialInterval: '20ms', maximumAttempts: 2 },
});

/** The first attempt heartbeats well past its start-to-close timeout: heartbeats must not extend it. */
export async function heartbeatsDoNotExtend(): Promise<number> {
  return beating.heartbeatPast();
}

const unpolled = proxyActivities<{ research(topic: string): Promise<string> }>({
  taskQueue: 'nobody-polls-activities',
  scheduleToStartTimeout: '300ms',
  startToCloseTimeout: '1s',
  retry: { initialInterval: '20ms', maximumAttempts: 5 },
});

/** An activity no worker picks up: schedule-to-start times it out, and it is not retried. */
export async function neverStarted(): Promise<string> {
  try {
    return await unpolled.research('x');
  } catch (err) {
    const cause = (err as Error).cause as { name?: string; timeoutType?: number } | undefined;
    return `${cause?.name}:${cause?.timeoutType}`;
  }
}
