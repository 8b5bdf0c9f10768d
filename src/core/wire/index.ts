/**
 * Wire format v1: what a stream entry and a snapshot hold, how an update is
 * encoded and an entry decoded, stream ids, and the lenient reading of
 * entries written by old publishers.
 *
 * @module
 */
export * from "./decode.ts";
export * from "./encode.ts";
export * from "./format.ts";
export * from "./ids.ts";
export * from "./lenient.ts";
