'use client';

import Link from 'next/link';
import { usePathname } from 'next/navigation';
import { useSession } from './session';

const LINKS = [
  { href: '/', label: 'Inbox' },
  { href: '/grants', label: 'Grants' },
  { href: '/agents', label: 'Agents' },
  { href: '/transactions', label: 'Transactions' },
  { href: '/account', label: 'Account' },
] as const;

function isCurrent(pathname: string, href: string): boolean {
  return href === '/' ? pathname === '/' : pathname === href || pathname.startsWith(`${href}/`);
}

export function SiteHeader() {
  const pathname = usePathname();
  const { session } = useSession();
  return (
    <header className="site-header">
      <a className="skip-link" href="#main">
        Skip to content
      </a>
      <div className="site-header-inner">
        <Link href="/" className="brand">
          Writ
        </Link>
        <nav aria-label="Main">
          <ul>
            {LINKS.map((link) => (
              <li key={link.href}>
                <Link href={link.href} aria-current={isCurrent(pathname, link.href) ? 'page' : undefined}>
                  {link.label}
                </Link>
              </li>
            ))}
          </ul>
        </nav>
        {session.status === 'signed-in' ? <p className="who">Signed in as {session.human.name}</p> : null}
      </div>
    </header>
  );
}
