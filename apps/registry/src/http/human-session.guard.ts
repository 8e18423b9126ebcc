import { type CanActivate, createParamDecorator, type ExecutionContext, Inject, Injectable } from '@nestjs/common';
import { humanError } from '@writ/contracts';
import { LoginRequired } from '@writ/core';
import type { FastifyRequest } from 'fastify';
import type { RegistryConfig } from '../config/config.js';
import { type HumanView, HumansService, sameSecret, sessionCookieName } from '../modules/humans/humans.service.js';
import { CONFIG } from '../tokens.js';

/** The header that carries the session's CSRF token on state-changing requests. */
export const CSRF_HEADER = 'x-csrf-token';

type HumanRequest = FastifyRequest & { writHuman?: HumanView; writSessionToken?: string };

const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

/**
 * The browser's `Origin` must be one of the approval UI's: a page elsewhere cannot make a
 * signed-in browser act (ARCHITECTURE.md "Security defaults"). Safe methods are not checked.
 */
export function checkOrigin(request: FastifyRequest, allowed: readonly string[]): void {
  if (SAFE_METHODS.has(request.method)) return;
  const origin = request.headers.origin;
  if (origin === undefined || origin === '') throw humanError('origin_missing');
  if (!allowed.includes(origin)) throw humanError('origin_not_allowed');
}

/**
 * The session cookie's value, if the request has one. Only the name these UI origins use is read:
 * behind https that is the `__Host-` name, so a plain `writ_session` planted by a sibling
 * subdomain or an http page is ignored.
 */
export function sessionCookie(request: FastifyRequest, uiOrigins: readonly string[]): string | undefined {
  const value = request.cookies?.[sessionCookieName(uiOrigins)];
  return value === undefined || value === '' ? undefined : value;
}

/** For routes used before sign-in (sign-up, sign-in): only the Origin check. */
@Injectable()
export class OriginGuard implements CanActivate {
  constructor(@Inject(CONFIG) private readonly config: RegistryConfig) {}

  canActivate(context: ExecutionContext): boolean {
    checkOrigin(context.switchToHttp().getRequest<FastifyRequest>(), this.config.uiOrigins);
    return true;
  }
}

/**
 * The human API's gate: Origin on state-changing requests, then a live session cookie, then
 * the session's CSRF token in `X-CSRF-Token` on state-changing requests (synchroniser token,
 * derived from the session). Puts the human on the request ({@link CurrentHuman}).
 */
@Injectable()
export class HumanSessionGuard implements CanActivate {
  constructor(
    @Inject(CONFIG) private readonly config: RegistryConfig,
    @Inject(HumansService) private readonly humans: HumansService,
  ) {}

  async canActivate(context: ExecutionContext): Promise<boolean> {
    const request = context.switchToHttp().getRequest<HumanRequest>();
    checkOrigin(request, this.config.uiOrigins);
    const token = sessionCookie(request, this.config.uiOrigins);
    if (token === undefined) throw new LoginRequired('sign in with your passkey first');
    const session = await this.humans.session(token);
    if (!session) throw new LoginRequired('your session has ended: sign in with your passkey again');
    if (!SAFE_METHODS.has(request.method)) {
      const sent = request.headers[CSRF_HEADER];
      if (sent === undefined || sent === '') throw humanError('csrf_token_missing');
      if (typeof sent !== 'string' || !sameSecret(sent, session.csrfToken)) throw humanError('csrf_token_mismatch');
    }
    request.writHuman = session.human;
    request.writSessionToken = token;
    return true;
  }
}

/** The signed-in human, put on the request by {@link HumanSessionGuard}. */
export const CurrentHuman = createParamDecorator((_: unknown, context: ExecutionContext): HumanView => {
  const human = context.switchToHttp().getRequest<HumanRequest>().writHuman;
  if (!human) throw new Error('CurrentHuman used on a route without HumanSessionGuard');
  return human;
});

/** The session cookie of the signed-in human's request, put there by {@link HumanSessionGuard}. */
export const CurrentSessionToken = createParamDecorator((_: unknown, context: ExecutionContext): string => {
  const token = context.switchToHttp().getRequest<HumanRequest>().writSessionToken;
  if (token === undefined) throw new Error('CurrentSessionToken used on a route without HumanSessionGuard');
  return token;
});
