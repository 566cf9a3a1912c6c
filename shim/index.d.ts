// Types for @rtp-middlebox/peerconnection-shim.

/** Reasons carried by the proxy's `error` stream event. */
export type ProxyErrorReason = 'consent-lost' | 'upstream-unreachable' | 'srtcp-auth-failure' | 'idle' | (string & {});

/** callstats.js `webRTCFunctions` names the shim maps proxy errors to. */
export type CallstatsFunction = 'iceConnectionFailure' | 'applicationLog';

export declare const CALLSTATS_FUNCTION_FOR_REASON: Readonly<Record<string, CallstatsFunction>>;
export declare function callstatsFunctionFor(reason: string): CallstatsFunction;
export declare function connectionStateFromIce(ice: string): RTCPeerConnectionStateLike | undefined;

export type RTCIceConnectionStateLike = 'new' | 'checking' | 'connected' | 'completed' | 'disconnected' | 'failed' | 'closed';
export type RTCPeerConnectionStateLike = 'new' | 'connecting' | 'connected' | 'disconnected' | 'failed' | 'closed';
export type RTCSignalingStateLike =
  | 'stable'
  | 'have-local-offer'
  | 'have-remote-offer'
  | 'have-local-pranswer'
  | 'have-remote-pranswer'
  | 'closed';
export type RTCIceGatheringStateLike = 'new' | 'gathering' | 'complete';

/** One W3C webrtc-stats dictionary as the proxy serves it (spec units; proxy-only members start with `x-`). */
export interface ProxyStats {
  id: string;
  type: string;
  timestamp: number;
  [member: string]: unknown;
}

export interface ReconnectOptions {
  /** First reconnection delay in ms (default 500; an SSE `retry:` field replaces it). */
  initialMs?: number;
  /** Largest delay in ms (default 30000). */
  maxMs?: number;
  /** Fraction 0..1 of each delay taken off at random (default 0.5). */
  jitter?: number;
}

export interface ProxyPeerConnectionOptions {
  /** The proxy's `GET /v1/stream` URL, e.g. `http://127.0.0.1:8080/v1/stream`. */
  streamUrl: string | URL;
  /** The proxy session to mirror (an id from `GET /v1/sessions`). */
  sessionId: string;
  /** Bearer token when the proxy's `[api] token` is set. */
  token?: string;
  /** fetch implementation (default `globalThis.fetch`); its response body must be a ReadableStream. */
  fetch?: typeof fetch;
  reconnect?: ReconnectOptions;
  /** Re-read `GET /v1/sessions` after every (re)connect to catch up on state (default true). */
  resync?: boolean;
  /** URL of `GET /v1/sessions` (default: `sessions` next to streamUrl). */
  sessionsUrl?: string;
  /** How long the stream stays open after the session closed, for events sent with the end (default 1000 ms). */
  closeGraceMs?: number;
  /** Keep the proxy's order of stats objects instead of sdkOrder() (default false). */
  preserveOrder?: boolean;
  /** Random source for the reconnection jitter (tests). */
  random?: () => number;
}

/** Maplike RTCStatsReport. */
export declare class ProxyStatsReport implements Iterable<[string, ProxyStats]> {
  constructor(stats?: ProxyStats[]);
  readonly size: number;
  get(id: string): ProxyStats | undefined;
  has(id: string): boolean;
  forEach(callback: (value: ProxyStats, key: string, report: ProxyStatsReport) => void, thisArg?: unknown): void;
  entries(): IterableIterator<[string, ProxyStats]>;
  keys(): IterableIterator<string>;
  values(): IterableIterator<ProxyStats>;
  [Symbol.iterator](): IterableIterator<[string, ProxyStats]>;
}

export interface SseEvent {
  event: string;
  data: string;
  id: string;
}

export declare class SseParser {
  constructor(options?: { onRetry?: (ms: number) => void });
  lastEventId: string;
  onRetry?: (ms: number) => void;
  push(text: string): SseEvent[];
}

/** The report with every inbound-rtp that shares its SSRC with a remote-inbound-rtp moved last (see README). */
export declare function sdkOrder<T extends { type: string; ssrc?: unknown }>(stats: T[]): T[];

export declare function backoffDelay(attempt: number, options?: ReconnectOptions, random?: () => number): number;

export interface ProxySessionDescription {
  readonly type: string;
  readonly sdp: string;
  toJSON(): { type: string; sdp: string };
}

/** The `proxyerror` event. */
export interface ProxyErrorEvent extends Event {
  readonly reason: ProxyErrorReason;
  readonly message: string;
  /** ms since the Unix epoch, as the proxy stamped it. */
  readonly timestamp: number;
  /** What to pass as callstats' `reportError` fnName. */
  readonly callstatsFunction: CallstatsFunction;
  /** An Error to pass as callstats' `reportError` domError argument. */
  readonly error: Error;
  readonly session: string;
}

/** The `streamerror` event: the event stream failed or ended; the shim reconnects. */
export interface StreamErrorEvent extends Event {
  readonly message: string;
  readonly status?: number;
  readonly attempt: number;
}

export interface ProxyPeerConnectionEventMap {
  icecandidate: Event & { readonly candidate: null };
  icecandidateerror: Event;
  iceconnectionstatechange: Event;
  icegatheringstatechange: Event;
  signalingstatechange: Event;
  negotiationneeded: Event;
  track: Event;
  connectionstatechange: Event;
  datachannel: Event;
  proxyerror: ProxyErrorEvent;
  streamerror: StreamErrorEvent;
}

type Handler<E> = ((this: ProxyPeerConnection, ev: E) => unknown) | null;
/** A typed listener for the connection's event `K`. */
type Listener<K extends keyof ProxyPeerConnectionEventMap> = (this: ProxyPeerConnection, ev: ProxyPeerConnectionEventMap[K]) => unknown;

export declare class ProxyPeerConnection extends EventTarget {
  constructor(options: ProxyPeerConnectionOptions);
  readonly sessionId: string;
  readonly signalingState: RTCSignalingStateLike;
  readonly iceConnectionState: RTCIceConnectionStateLike;
  readonly iceGatheringState: RTCIceGatheringStateLike;
  readonly connectionState: RTCPeerConnectionStateLike;
  readonly localDescription: ProxySessionDescription | null;
  readonly remoteDescription: ProxySessionDescription | null;
  readonly currentLocalDescription: ProxySessionDescription | null;
  readonly currentRemoteDescription: ProxySessionDescription | null;
  readonly pendingLocalDescription: null;
  readonly pendingRemoteDescription: null;
  readonly canTrickleIceCandidates: null;
  readonly sctp: null;
  readonly lastProxyError: { reason: string; message: string; timestamp: number; callstatsFunction: CallstatsFunction } | null;
  readonly streamConnected: boolean;
  readonly streamConnects: number;
  /** The latest `stats` report as an array of copies. */
  readonly latestReport: ProxyStats[];
  /** Newest timestamp in the latest report (ms since epoch), or null. */
  readonly reportTimestamp: number | null;

  onicecandidate: Handler<ProxyPeerConnectionEventMap['icecandidate']>;
  onicecandidateerror: Handler<Event>;
  oniceconnectionstatechange: Handler<Event>;
  onicegatheringstatechange: Handler<Event>;
  onsignalingstatechange: Handler<Event>;
  onnegotiationneeded: Handler<Event>;
  ontrack: Handler<Event>;
  onconnectionstatechange: Handler<Event>;
  ondatachannel: Handler<Event>;
  onproxyerror: Handler<ProxyErrorEvent>;
  onstreamerror: Handler<StreamErrorEvent>;

  /** Chrome's legacy form: answered with `{ result: () => [] }`. */
  getStats(callback: (legacy: { result(): unknown[] }) => void): Promise<void>;
  /** The latest report; a selector (track) does not narrow it. */
  getStats(selector?: unknown): Promise<ProxyStatsReport>;
  /** Old Firefox/Temasys form. */
  getStats(
    selector: unknown,
    success: (report: ProxyStatsReport) => void,
    failure?: (err: unknown) => void,
  ): Promise<ProxyStatsReport>;
  createOffer(): Promise<never>;
  createAnswer(): Promise<never>;
  setLocalDescription(): Promise<never>;
  setRemoteDescription(): Promise<never>;
  addIceCandidate(): Promise<void>;
  getSenders(): [];
  getReceivers(): [];
  getTransceivers(): [];
  getConfiguration(): {
    iceServers: [];
    iceTransportPolicy: 'all';
    bundlePolicy: 'max-bundle';
    rtcpMuxPolicy: 'require';
    sdpSemantics: 'unified-plan';
  };
  close(): void;

  addEventListener<K extends keyof ProxyPeerConnectionEventMap>(type: K, listener: Listener<K>, options?: boolean | AddEventListenerOptions): void;
  addEventListener(type: string, listener: EventListenerOrEventListenerObject | null, options?: boolean | AddEventListenerOptions): void;
  removeEventListener<K extends keyof ProxyPeerConnectionEventMap>(type: K, listener: Listener<K>, options?: boolean | EventListenerOptions): void;
  removeEventListener(type: string, listener: EventListenerOrEventListenerObject | null, options?: boolean | EventListenerOptions): void;
}

export default ProxyPeerConnection;
