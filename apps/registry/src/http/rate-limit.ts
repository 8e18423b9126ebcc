import { applyDecorators, type CanActivate, type ExecutionContext, Inject, Injectable, SetMetadata, UseGuards } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import { type Clock, RateLimited } from '@writ/core';
import type { FastifyRequest } from 'fastify';
import { createHash } from 'node:crypto';
import { BlockList, isIP } from 'node:net';
import type { RegistryConfig } from '../config/config.js';

/**
 * Limits on what anyone can start in bulk on the human side (issue 17, finding 7; ADR 0020):
 * WebAuthn ceremonies and sign-ups per client address, ceremonies per account, and open event
 * streams per session and long-polls per agent. Counted in this process.
 */

/** The most keys one limit table holds; past it, expired windows go, then the oldest. */
const MAX_KEYS = 100_000;
/** `Retry-After` for a cap on open connections: one of them must end first. */
const CAP_RETRY_AFTER_S = 5;

const MINUTE_MS = 60_000;
const HOUR_MS = 3_600_000;

/**
 * A fixed-window counter per key: at most `limit` in each `windowMs`, the window starting at the
 * first request of a key.
 */
export class FixedWindows {
  private readonly windows = new Map<string, { start: number; count: number }>();

  constructor(
    private readonly limit: number,
    private readonly windowMs: number,
  ) {}

  /** Counts one request for `key`: `undefined` when it may go on, else the seconds to wait. */
  take(key: string, now: number): number | undefined {
    let window = this.windows.get(key);
    if (window === undefined || now - window.start >= this.windowMs) {
      this.windows.delete(key);
      if (this.windows.size >= MAX_KEYS) this.makeRoom(now);
      window = { start: now, count: 0 };
      this.windows.set(key, window);
    }
    if (window.count >= this.limit) return Math.max(1, Math.ceil((window.start + this.windowMs - now) / 1000));
    window.count += 1;
    return undefined;
  }

  private makeRoom(now: number): void {
    for (const [key, window] of this.windows) if (now - window.start >= this.windowMs) this.windows.delete(key);
    // Still full (a flood from very many addresses): forget the oldest, memory stays bounded.
    for (const key of this.windows.keys()) {
      if (this.windows.size < MAX_KEYS) break;
      this.windows.delete(key);
    }
  }
}

/** Open connections per key, at most `max` at once. */
export class OpenSlots {
  private readonly open = new Map<string, number>();

  constructor(private readonly max: number) {}

  /** Takes a slot for `key`, or `undefined` when all are taken; the function gives it back (once). */
  acquire(key: string): (() => void) | undefined {
    const held = this.open.get(key) ?? 0;
    if (held >= this.max) return undefined;
    this.open.set(key, held + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const now = (this.open.get(key) ?? 1) - 1;
      if (now === 0) this.open.delete(key);
      else this.open.set(key, now);
    };
  }
}

/** `WRIT_TRUSTED_PROXIES` as a set of addresses and subnets. */
export function trustedProxies(entries: readonly string[]): BlockList {
  const list = new BlockList();
  for (const entry of entries) {
    const [address = '', prefix] = entry.split('/');
    const type = isIP(address) === 6 ? 'ipv6' : 'ipv4';
    if (prefix === undefined) list.addAddress(address, type);
    else list.addSubnet(address, Number(prefix), type);
  }
  return list;
}

/** `::ffff:a.b.c.d` is the IPv4 address a.b.c.d. */
function unmapped(address: string): string {
  const v4 = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  return v4?.[1] ?? address;
}

function isTrusted(list: BlockList, address: string): boolean {
  const family = isIP(address);
  return family !== 0 && list.check(address, family === 6 ? 'ipv6' : 'ipv4');
}

/**
 * The client's address: the socket peer, unless that is a trusted proxy (the approval UI's
 * server); then the right-most `X-Forwarded-For` hop that is not itself trusted. Hops left of it
 * were written by the client and are never believed.
 */
export function clientAddress(request: FastifyRequest, trusted: BlockList): string {
  const peer = unmapped(request.raw.socket.remoteAddress ?? '');
  if (!isTrusted(trusted, peer)) return peer;
  const header = request.headers['x-forwarded-for'];
  const hops = (Array.isArray(header) ? header.join(',') : (header ?? ''))
    .split(',')
    .map((hop) => unmapped(hop.trim()))
    .filter((hop) => hop !== '');
  for (let i = hops.length - 1; i >= 0; i -= 1) {
    const hop = hops[i]!;
    // Not an address: written by something trusted but broken; count it as that proxy.
    if (isIP(hop) === 0) return peer;
    if (!isTrusted(trusted, hop)) return hop;
  }
  return hops[0] ?? peer;
}

/**
 * The key an address is counted under: an IPv4 address, or an IPv6 address's /64 (one
 * subscriber usually has a whole /64, and could otherwise take a fresh address per request).
 */
export function addressKey(address: string): string {
  if (isIP(address) !== 6) return address;
  const [head = '', tail] = address.toLowerCase().split('::');
  const left = head === '' ? [] : head.split(':');
  const right = tail === undefined || tail === '' ? [] : tail.split(':');
  const groups = tail === undefined ? left : [...left, ...Array<string>(8 - left.length - right.length).fill('0'), ...right];
  return `${groups.slice(0, 4).map((g) => g.replace(/^0+(?=.)/, '')).join(':')}::/64`;
}

/** The limits of ADR 0020, shared by every request of this process. */
export class RequestLimits {
  private readonly trusted: BlockList;
  private readonly ceremoniesPerIp: FixedWindows;
  private readonly signupsPerIp: FixedWindows;
  private readonly ceremoniesPerAccount: FixedWindows;
  private readonly eventStreams: OpenSlots;
  private readonly longPolls: OpenSlots;

  constructor(
    config: RegistryConfig,
    private readonly clock: Clock,
  ) {
    const { limits } = config;
    this.trusted = trustedProxies(config.trustedProxies);
    this.ceremoniesPerIp = new FixedWindows(limits.ceremoniesPerIpPerMinute, MINUTE_MS);
    this.signupsPerIp = new FixedWindows(limits.signupsPerIpPerHour, HOUR_MS);
    this.ceremoniesPerAccount = new FixedWindows(limits.ceremoniesPerAccountPerMinute, MINUTE_MS);
    this.eventStreams = new OpenSlots(limits.eventStreamsPerSession);
    this.longPolls = new OpenSlots(limits.longPollsPerAgent);
  }

  /** A passkey ceremony started without a session (sign-up or sign-in options), per client address. */
  ceremonyFrom(request: FastifyRequest): void {
    const wait = this.ceremoniesPerIp.take(addressKey(clientAddress(request, this.trusted)), this.clock.now());
    if (wait !== undefined) throw new RateLimited('too many passkey ceremonies from this address: try again later', wait);
  }

  /** A sign-up (a new account), per client address. */
  signupFrom(request: FastifyRequest): void {
    const wait = this.signupsPerIp.take(addressKey(clientAddress(request, this.trusted)), this.clock.now());
    if (wait !== undefined) throw new RateLimited('too many sign-ups from this address: try again later', wait);
  }

  /** A passkey ceremony started by a signed-in human (a decision, adding a passkey), per account. */
  ceremonyBy(humanId: string): void {
    const wait = this.ceremoniesPerAccount.take(humanId, this.clock.now());
    if (wait !== undefined) throw new RateLimited('too many passkey ceremonies for this account: try again later', wait);
  }

  /** Holds one of a session's live-event streams; the function gives it back. */
  holdEventStream(sessionToken: string): () => void {
    // Keyed by a hash: the table never holds a usable session token.
    const release = this.eventStreams.acquire(createHash('sha256').update(sessionToken).digest('base64url'));
    if (!release) throw new RateLimited('this session has too many live-event streams open: close one first', CAP_RETRY_AFTER_S);
    return release;
  }

  /** Holds one of an agent's long-polls; the function gives it back. */
  holdLongPoll(clientId: string): () => void {
    const release = this.longPolls.acquire(clientId);
    if (!release) throw new RateLimited('this agent has too many long-polls open: wait for one to answer first', CAP_RETRY_AFTER_S);
    return release;
  }
}

type LimitKind = 'ceremony-per-ip' | 'signup-per-ip' | 'ceremony-per-account';

const LIMIT_KIND = 'writ:limit-kind';

/** Counts the request against one of {@link RequestLimits}; `429 rate_limited` past it. */
@Injectable()
export class RequestLimitGuard implements CanActivate {
  constructor(
    @Inject(Reflector) private readonly reflector: Reflector,
    @Inject(RequestLimits) private readonly limits: RequestLimits,
  ) {}

  canActivate(context: ExecutionContext): boolean {
    const kind = this.reflector.get<LimitKind | undefined>(LIMIT_KIND, context.getHandler());
    const request = context.switchToHttp().getRequest<FastifyRequest & { writHuman?: { id: string } }>();
    switch (kind) {
      case 'ceremony-per-ip':
        this.limits.ceremonyFrom(request);
        return true;
      case 'signup-per-ip':
        this.limits.signupFrom(request);
        return true;
      case 'ceremony-per-account': {
        // After HumanSessionGuard (class guards run before method guards), which sets the human.
        const human = request.writHuman;
        if (!human) throw new Error('ceremony-per-account limit on a route without HumanSessionGuard');
        this.limits.ceremonyBy(human.id);
        return true;
      }
      case undefined:
        throw new Error('RequestLimitGuard on a route without @Limited');
    }
  }
}

/** Puts the route under one of the limits of ADR 0020. */
export function Limited(kind: LimitKind): MethodDecorator {
  return applyDecorators(SetMetadata(LIMIT_KIND, kind), UseGuards(RequestLimitGuard));
}
