import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** A private CA and a server certificate it signed, valid for `localhost` and `127.0.0.1`. */
export interface TestTls {
  caPem: string;
  /** The CA as a file, for NODE_EXTRA_CA_CERTS in child processes. */
  caFile: string;
  keyPem: string;
  certPem: string;
}

const CACHE_DIR = join(tmpdir(), 'switchboard-test-tls-v1');
const FILES = ['ca.pem', 'server.key', 'server.pem'];
// Certificates are made valid for 30 days and replaced after 7, so a cached one never expires mid-run.
const MAX_AGE_MS = 7 * 24 * 3600_000;

/**
 * Generated once with the openssl CLI (EC P-256, ~50 ms) and cached in the temp dir for later test files and
 * runs. Concurrent test processes each build into their own directory and rename it into place.
 */
export function testTls(): TestTls {
  if (!fresh()) build();
  const read = (f: string) => readFileSync(join(CACHE_DIR, f), 'utf8');
  return { caPem: read('ca.pem'), caFile: join(CACHE_DIR, 'ca.pem'), keyPem: read('server.key'), certPem: read('server.pem') };
}

function fresh(): boolean {
  if (!FILES.every((f) => existsSync(join(CACHE_DIR, f)))) return false;
  return Date.now() - statSync(join(CACHE_DIR, 'ca.pem')).mtimeMs < MAX_AGE_MS;
}

function build(): void {
  mkdirSync(tmpdir(), { recursive: true });
  const dir = mkdtempSync(join(tmpdir(), 'switchboard-test-tls-build-'));
  const ssl = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  ssl('req', '-x509', ...ec, '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '30', '-subj', '/CN=Switchboard test CA',
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign');
  ssl('req', ...ec, '-keyout', 'server.key', '-out', 'server.csr', '-subj', '/CN=localhost');
  writeFileSync(join(dir, 'server.ext'),
    'subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n');
  ssl('x509', '-req', '-in', 'server.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-set_serial', `0x${Date.now().toString(16)}`,
    '-days', '30', '-extfile', 'server.ext', '-out', 'server.pem');
  rmSync(join(dir, 'ca.key'));
  if (existsSync(CACHE_DIR) && !fresh()) rmSync(CACHE_DIR, { recursive: true, force: true });
  try {
    renameSync(dir, CACHE_DIR);
  } catch {
    // Another test process renamed its copy first; use that one.
    rmSync(dir, { recursive: true, force: true });
  }
}
