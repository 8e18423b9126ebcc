// @ts-check
import { PHASE_DEVELOPMENT_SERVER } from 'next/constants.js';

/**
 * Only this origin, and nothing from elsewhere: no CDN, no remote font or image. Next's App Router
 * streams its page data as inline <script> tags, so without per-request nonces (which would make
 * every page dynamic) script-src needs 'unsafe-inline'; the dev server also needs 'unsafe-eval'.
 * connect-src 'self' covers fetch and EventSource to the /api proxy.
 *
 * @param {boolean} dev
 */
function contentSecurityPolicy(dev) {
  return [
    "default-src 'self'",
    `script-src 'self' 'unsafe-inline'${dev ? " 'unsafe-eval'" : ''}`,
    "style-src 'self' 'unsafe-inline'",
    "img-src 'self' data:",
    "font-src 'self'",
    "connect-src 'self'",
    "object-src 'none'",
    "base-uri 'self'",
    "form-action 'self'",
    "frame-ancestors 'none'",
  ].join('; ');
}

/** @type {(phase: string) => import('next').NextConfig} */
export default function nextConfig(phase) {
  const dev = phase === PHASE_DEVELOPMENT_SERVER;
  return {
    // libs/core and libs/contracts are TypeScript source (their package.json exports ./src/index.ts).
    transpilePackages: ['@writ/core', '@writ/contracts'],
    poweredByHeader: false,
    reactStrictMode: true,
    // libs/core imports its own files as `./x.js` (TypeScript's ESM convention) while only `x.ts`
    // exists. Turbopack cannot map `.js` to `.ts` (vercel/next.js#82945), so this app builds with
    // webpack (`next build --webpack`), whose extensionAlias does.
    webpack(config) {
      config.resolve.extensionAlias = { ...config.resolve.extensionAlias, '.js': ['.ts', '.tsx', '.js'] };
      return config;
    },
    // `nx run approval-ui:typecheck` checks types (and CI runs it); the build only compiles.
    typescript: { ignoreBuildErrors: true },
    async headers() {
      return [
        {
          source: '/:path*',
          headers: [
            { key: 'Content-Security-Policy', value: contentSecurityPolicy(dev) },
            { key: 'X-Content-Type-Options', value: 'nosniff' },
            { key: 'Referrer-Policy', value: 'no-referrer' },
            { key: 'X-Frame-Options', value: 'DENY' },
            { key: 'Cross-Origin-Opener-Policy', value: 'same-origin' },
            {
              key: 'Permissions-Policy',
              value: 'publickey-credentials-create=(self), publickey-credentials-get=(self), camera=(), microphone=(), geolocation=()',
            },
          ],
        },
      ];
    },
  };
}
