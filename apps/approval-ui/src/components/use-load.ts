'use client';

import { useCallback, useEffect, useRef, useState } from 'react';
import { describeError } from '../lib/errors';

export type Loaded<T> =
  | { status: 'loading' }
  | { status: 'ready'; data: T }
  | { status: 'error'; message: string };

/**
 * Loads what a page shows, once on mount and again on `reload()`. A reload keeps the data on
 * screen until the new answer arrives, so a live refresh never blanks the page; an answer that
 * arrives after a newer request started is dropped.
 */
export function useLoad<T>(load: (signal: AbortSignal) => Promise<T>): { state: Loaded<T>; reload: () => void } {
  const [state, setState] = useState<Loaded<T>>({ status: 'loading' });
  const latest = useRef<AbortController | null>(null);

  const reload = useCallback(() => {
    latest.current?.abort();
    const controller = new AbortController();
    latest.current = controller;
    load(controller.signal).then(
      (data) => {
        if (!controller.signal.aborted) setState({ status: 'ready', data });
      },
      (error: unknown) => {
        if (!controller.signal.aborted) setState({ status: 'error', message: describeError(error) });
      },
    );
  }, [load]);

  useEffect(() => {
    reload();
    return () => latest.current?.abort();
  }, [reload]);

  return { state, reload };
}
