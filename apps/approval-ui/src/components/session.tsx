'use client';

import { useRouter } from 'next/navigation';
import { createContext, useCallback, useContext, useEffect, useMemo, useRef, useState, type ReactNode } from 'react';
import { ApiError, apiRequest, type HttpMethod } from '../lib/api';
import type { Human, SessionAnswer } from '@writ/contracts';

/*
 * Who is signed in, and the session's CSRF token, kept in memory only (never in storage): every
 * POST and DELETE carries it as X-CSRF-Token (docs/approval.md, "Authentication and request
 * forgery"). It comes from sign-in and sign-up, and from GET /auth/session when a page loads.
 */

type SessionState =
  | { status: 'loading' }
  | { status: 'signed-out' }
  | { status: 'signed-in'; human: Human; csrfToken: string };

interface SessionContextValue {
  session: SessionState;
  /** After sign-in or sign-up: the answer carries the human and the CSRF token. */
  signedIn: (answer: SessionAnswer) => void;
  signedOut: () => void;
  /** The CSRF token, once the session is known (null when signed out). */
  csrfToken: () => Promise<string | null>;
}

const SessionContext = createContext<SessionContextValue | null>(null);

export function SessionProvider({ children }: { children: ReactNode }) {
  const [session, setSession] = useState<SessionState>({ status: 'loading' });
  const tokenRef = useRef<string | null>(null);
  // Resolved once the first GET /auth/session has answered, so an early POST waits for the token.
  const loaded = useRef<{ promise: Promise<void>; resolve: () => void } | null>(null);
  if (loaded.current === null) {
    let resolve = (): void => undefined;
    const promise = new Promise<void>((r) => {
      resolve = r;
    });
    loaded.current = { promise, resolve };
  }

  const signedIn = useCallback((answer: SessionAnswer) => {
    tokenRef.current = answer.csrf_token;
    setSession({ status: 'signed-in', human: answer.human, csrfToken: answer.csrf_token });
    loaded.current?.resolve();
  }, []);

  const signedOut = useCallback(() => {
    tokenRef.current = null;
    setSession({ status: 'signed-out' });
    loaded.current?.resolve();
  }, []);

  useEffect(() => {
    const controller = new AbortController();
    apiRequest<SessionAnswer>('GET', '/auth/session', { signal: controller.signal }).then(
      (answer) => signedIn(answer),
      (error: unknown) => {
        if (controller.signal.aborted) return;
        // Signed out, or the registry is down: either way there is no token to send.
        if (!(error instanceof ApiError) || error.code !== 'login_required') console.warn('session check failed', error);
        signedOut();
      },
    );
    return () => controller.abort();
  }, [signedIn, signedOut]);

  const csrfToken = useCallback(async () => {
    await loaded.current?.promise;
    return tokenRef.current;
  }, []);

  const value = useMemo(() => ({ session, signedIn, signedOut, csrfToken }), [session, signedIn, signedOut, csrfToken]);
  return <SessionContext.Provider value={value}>{children}</SessionContext.Provider>;
}

export function useSession(): SessionContextValue {
  const value = useContext(SessionContext);
  if (value === null) throw new Error('useSession is used outside SessionProvider');
  return value;
}

export interface Api {
  get: <T>(path: string, signal?: AbortSignal) => Promise<T>;
  post: <T>(path: string, body?: unknown) => Promise<T>;
  del: <T>(path: string) => Promise<T>;
}

/**
 * The API as the pages use it: the CSRF token added to POST and DELETE, and a page that needs a
 * session sent to /signin when the API answers 401 login_required.
 */
export function useApi(): Api {
  const { csrfToken, signedOut } = useSession();
  const router = useRouter();
  // Read through a ref: the API object stays the same for the page's life, so the loads that
  // depend on it run once, whatever the router object does between renders.
  const routerRef = useRef(router);
  useEffect(() => {
    routerRef.current = router;
  }, [router]);
  return useMemo(() => {
    const call = async <T,>(method: HttpMethod, path: string, body?: unknown, signal?: AbortSignal): Promise<T> => {
      try {
        const token = method === 'GET' ? null : await csrfToken();
        return await apiRequest<T>(method, path, { body, csrfToken: token, signal });
      } catch (error) {
        if (error instanceof ApiError && error.status === 401 && error.code === 'login_required') {
          signedOut();
          routerRef.current.replace('/signin');
        }
        throw error;
      }
    };
    return {
      get: <T,>(path: string, signal?: AbortSignal) => call<T>('GET', path, undefined, signal),
      post: <T,>(path: string, body?: unknown) => call<T>('POST', path, body ?? {}),
      del: <T,>(path: string) => call<T>('DELETE', path),
    };
  }, [csrfToken, signedOut]);
}
