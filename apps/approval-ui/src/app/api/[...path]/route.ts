import { proxyToRegistry } from '../../../lib/registry-proxy';

// Every request goes to the registry as it comes: nothing here is cached or rendered ahead.
export const dynamic = 'force-dynamic';

export function GET(request: Request): Promise<Response> {
  return proxyToRegistry(request);
}

export function POST(request: Request): Promise<Response> {
  return proxyToRegistry(request);
}

export function DELETE(request: Request): Promise<Response> {
  return proxyToRegistry(request);
}
