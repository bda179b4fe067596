import { createRequire } from 'node:module';
import type * as TemporalProto from '@temporalio/proto';

/**
 * The protobuf root shipped by `@temporalio/proto` (the same definitions the
 * Temporal client and the Rust core are built from). Loaded on first use so
 * that importing this subpath without Temporal installed fails only when the
 * stand-in is started.
 */
export type ProtoRoot = typeof TemporalProto;

let root: ProtoRoot | undefined;

/** Loads `@temporalio/proto` (an optional peer dependency). */
export function loadProto(): ProtoRoot {
  if (root === undefined) {
    const require = createRequire(import.meta.url);
    root = require('@temporalio/proto') as ProtoRoot;
  }
  return root;
}

/** Minimal view of a protobufjs reflection type: all the gRPC wiring needs. */
export interface ReflectedType {
  encode(message: unknown): { finish(): Uint8Array };
  decode(bytes: Uint8Array): unknown;
  fullName: string;
}

/** Minimal view of a protobufjs reflection method. */
export interface ReflectedMethod {
  name: string;
  requestStream?: boolean;
  responseStream?: boolean;
  resolve(): unknown;
  resolvedRequestType: ReflectedType | null;
  resolvedResponseType: ReflectedType | null;
}

/** The reflected `temporal.api.workflowservice.v1.WorkflowService`. */
export function workflowServiceMethods(proto: ProtoRoot): ReflectedMethod[] {
  const service = proto.temporal.api.workflowservice.v1.WorkflowService as unknown as { methodsArray: ReflectedMethod[] };
  return service.methodsArray.map((method) => {
    method.resolve();
    return method;
  });
}
