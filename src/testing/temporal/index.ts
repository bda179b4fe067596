export { startTemporalStandIn } from './server.js';
export type { TemporalStandIn, TemporalStandInOptions, RecordedCall } from './server.js';
