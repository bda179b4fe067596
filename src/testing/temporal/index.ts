export { startTemporalStandIn } from './server.js';
export type { TemporalStandIn, TemporalStandInOptions, RecordedCall, StartedTask } from './server.js';
