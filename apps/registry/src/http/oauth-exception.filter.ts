import { type ArgumentsHost, Catch, type ExceptionFilter, HttpException, Logger } from '@nestjs/common';
import { HumanApiError } from '@writ/contracts';
import { OAuthError, RateLimited, TemporarilyUnavailable, toOAuthError, UseDpopNonce } from '@writ/core';
import type { FastifyReply } from 'fastify';
import { isDatabaseUnreachable } from '../infra/database.js';

/**
 * Turns every error into `{error, error_description}` with `Cache-Control: no-store`
 * (RFC 6749 §5.2), plus `DPoP-Nonce` for `use_dpop_nonce` (RFC 9449 §8). Protocol errors keep
 * their code and status, and so do the human API's own errors (libs/contracts' HUMAN_ERRORS);
 * framework HTTP errors (404, 413, ...) keep their status; anything else is a `500 server_error`
 * with a fixed text, and the detail goes only to the log.
 */
@Catch()
export class OAuthExceptionFilter implements ExceptionFilter {
  private readonly logger = new Logger('http');

  catch(exception: unknown, host: ArgumentsHost): void {
    const reply = host.switchToHttp().getResponse<FastifyReply>();
    void reply.header('cache-control', 'no-store').header('pragma', 'no-cache');
    if (exception instanceof HttpException) {
      const status = exception.getStatus();
      void reply.status(status).send({ error: status === 404 ? 'not_found' : 'invalid_request', error_description: exception.message });
      return;
    }
    if (exception instanceof HumanApiError) {
      void reply.status(exception.status).send(exception.toJSON());
      return;
    }
    // Issue 19: the database restarting is a 503 to try again, not a 500.
    const error = isDatabaseUnreachable(exception) ? new TemporarilyUnavailable('the database cannot be reached: try again shortly') : toOAuthError(exception);
    if (!(exception instanceof OAuthError)) this.logger.error(exception instanceof Error ? exception.stack : String(exception));
    const challenge = error.wwwAuthenticate();
    if (challenge) void reply.header('www-authenticate', challenge);
    // RFC 9449 §8, §9: use_dpop_nonce hands the client the nonce to put in its next proof.
    if (exception instanceof UseDpopNonce && exception.nonce !== '') void reply.header('dpop-nonce', exception.nonce);
    // RFC 6585 §4, RFC 9110 §10.2.3: how long to wait before trying again, in seconds.
    if (exception instanceof RateLimited) void reply.header('retry-after', String(exception.retryAfter));
    void reply.status(error.status).send(error.toJSON());
  }
}
