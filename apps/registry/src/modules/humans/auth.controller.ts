import { Body, Controller, Get, Header, HttpCode, Inject, Post, Req, Res, UseGuards } from '@nestjs/common';
import { ApiOperation, ApiResponse, ApiSecurity } from '@nestjs/swagger';
import {
  CeremonyAnswerSchema,
  FinishSchema,
  type LogoutEverywhereAnswer,
  LogoutEverywhereAnswerSchema,
  NameSchema,
  type SessionAnswer,
  SessionAnswerSchema,
} from '@writ/contracts';
import { LoginRequired } from '@writ/core';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { RegistryConfig } from '../../config/config.js';
import { CurrentHuman, CurrentSessionToken, HumanSessionGuard, OriginGuard, sessionCookie } from '../../http/human-session.guard.js';
import { ApiHumanErrors, ApiJsonBody, ApiJsonResponse, SECURITY } from '../../http/openapi.js';
import { Limited } from '../../http/rate-limit.js';
import { CONFIG } from '../../tokens.js';
import { type HumanView, HumansService, sessionCookieName, sessionCookieSecure, SESSION_TTL_MS, type StartedSession } from './humans.service.js';

/** Passkey sign-up and sign-in, and the session they start. */
@Controller('auth')
export class AuthController {
  constructor(
    @Inject(HumansService) private readonly humans: HumansService,
    @Inject(CONFIG) private readonly config: RegistryConfig,
  ) {}

  @Post('register/options')
  @UseGuards(OriginGuard)
  @Limited('ceremony-per-ip')
  @ApiOperation({ summary: 'Sign up, step 1: WebAuthn creation options for a new account' })
  @ApiJsonBody(NameSchema)
  @ApiJsonResponse(200, '{ceremony, options}', CeremonyAnswerSchema)
  @ApiHumanErrors(400, 403, 429)
  @HttpCode(200)
  @Header('cache-control', 'no-store')
  registerOptions(@Body() body: unknown) {
    return this.humans.beginRegistration(body);
  }

  @Post('register/verify')
  @UseGuards(OriginGuard)
  @Limited('signup-per-ip')
  @ApiOperation({ summary: 'Sign up, step 2: the new passkey creates the account and a session' })
  @ApiJsonBody(FinishSchema)
  @ApiJsonResponse(200, '{human, csrf_token}, and the session cookie', SessionAnswerSchema)
  @ApiHumanErrors(400, 403, 429)
  @HttpCode(200)
  @Header('cache-control', 'no-store')
  async registerVerify(@Body() body: unknown, @Res({ passthrough: true }) reply: FastifyReply) {
    return this.started(await this.humans.finishRegistration(body), reply);
  }

  @Post('login/options')
  @UseGuards(OriginGuard)
  @Limited('ceremony-per-ip')
  @ApiOperation({ summary: 'Sign in, step 1: WebAuthn request options for a discoverable passkey' })
  @ApiJsonResponse(200, '{ceremony, options}', CeremonyAnswerSchema)
  @ApiHumanErrors(403, 429)
  @HttpCode(200)
  @Header('cache-control', 'no-store')
  loginOptions() {
    return this.humans.beginLogin();
  }

  @Post('login/verify')
  @UseGuards(OriginGuard)
  @ApiOperation({ summary: 'Sign in, step 2: the assertion starts a session' })
  @ApiJsonBody(FinishSchema.omit({ label: true }))
  @ApiJsonResponse(200, '{human, csrf_token}, and the session cookie', SessionAnswerSchema)
  @ApiHumanErrors(400, 403)
  @HttpCode(200)
  @Header('cache-control', 'no-store')
  async loginVerify(@Body() body: unknown, @Res({ passthrough: true }) reply: FastifyReply) {
    return this.started(await this.humans.finishLogin(body), reply);
  }

  @Get('session')
  @ApiOperation({ summary: 'The signed-in human and the session CSRF token' })
  @ApiSecurity(SECURITY.session)
  @ApiJsonResponse(200, '{human, csrf_token}', SessionAnswerSchema)
  @ApiHumanErrors(401)
  @Header('cache-control', 'no-store')
  async session(@Req() request: FastifyRequest): Promise<SessionAnswer> {
    const token = sessionCookie(request, this.config.uiOrigins);
    const session = token === undefined ? null : await this.humans.session(token);
    if (!session) throw new LoginRequired('sign in with your passkey first');
    return { human: session.human, csrf_token: session.csrfToken };
  }

  @Post('logout')
  @UseGuards(HumanSessionGuard)
  @ApiOperation({ summary: 'Sign out: the session ends and its cookie is cleared' })
  @ApiSecurity(SECURITY.session)
  @ApiResponse({ status: 204, description: 'Signed out' })
  @ApiHumanErrors(401, 403)
  @HttpCode(204)
  @Header('cache-control', 'no-store')
  async logout(@CurrentSessionToken() token: string, @Res({ passthrough: true }) reply: FastifyReply): Promise<void> {
    await this.humans.endSession(token);
    void reply.clearCookie(sessionCookieName(this.config.uiOrigins), this.cookieOptions());
  }

  @Post('logout-everywhere')
  @UseGuards(HumanSessionGuard)
  @ApiOperation({ summary: 'Sign out everywhere: every session of this person ends, this one included' })
  @ApiSecurity(SECURITY.session)
  @ApiJsonResponse(200, '{sessions_ended}', LogoutEverywhereAnswerSchema)
  @ApiHumanErrors(401, 403)
  @HttpCode(200)
  @Header('cache-control', 'no-store')
  async logoutEverywhere(@CurrentHuman() human: HumanView, @Res({ passthrough: true }) reply: FastifyReply): Promise<LogoutEverywhereAnswer> {
    const ended = await this.humans.endAllSessions(human.id);
    void reply.clearCookie(sessionCookieName(this.config.uiOrigins), this.cookieOptions());
    return { sessions_ended: ended };
  }

  private started(session: StartedSession, reply: FastifyReply): SessionAnswer {
    void reply.setCookie(sessionCookieName(this.config.uiOrigins), session.token, { ...this.cookieOptions(), maxAge: SESSION_TTL_MS / 1000 });
    return { human: session.human, csrf_token: session.csrfToken };
  }

  /**
   * HttpOnly (no script reads it), SameSite=Strict (no other site sends it), Path=/ and no Domain,
   * and behind https Secure with the `__Host-` name ({@link sessionCookieName}).
   */
  private cookieOptions() {
    return { httpOnly: true, sameSite: 'strict' as const, path: '/', secure: sessionCookieSecure(this.config.uiOrigins) };
  }
}
