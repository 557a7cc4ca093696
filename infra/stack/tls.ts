import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { run } from './install.ts';

export interface LocalCertificates {
  /** PEM of the local CA: clients verify the brokers against it (KAFKA_SSL_CA_LOCATION). */
  caFile: string;
  /** PKCS#12 key store of the brokers' key and certificate (valid for 127.0.0.1 and localhost). */
  keystoreFile: string;
}

/**
 * A CA and one broker certificate for the local stack, made once with openssl and kept in the
 * stack directory. For loopback use only: a real deployment brings certificates from its own CA.
 * The key store is PKCS#12 because Kafka does not read unencrypted PEM keys from a file.
 */
export async function ensureLocalCertificates(dir: string, keystorePassword: string): Promise<LocalCertificates> {
  const caFile = join(dir, 'ca.pem');
  const keystoreFile = join(dir, 'broker.p12');
  if (existsSync(caFile) && existsSync(keystoreFile)) return { caFile, keystoreFile };
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const file = (name: string) => join(dir, name);
  const openssl = (...args: string[]) => run('tls', 'openssl', args);
  await openssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '3650', '-subj', '/CN=lakestream local CA', '-keyout', file('ca.key'), '-out', caFile);
  await openssl('req', '-newkey', 'rsa:2048', '-nodes', '-subj', '/CN=localhost', '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost', '-keyout', file('broker.key'), '-out', file('broker.csr'));
  await openssl('x509', '-req', '-in', file('broker.csr'), '-CA', caFile, '-CAkey', file('ca.key'), '-CAcreateserial', '-days', '3650', '-copy_extensions', 'copy', '-out', file('broker.pem'));
  // the password goes through the environment, not the command line (visible in ps and in errors)
  await run('tls', 'openssl', ['pkcs12', '-export', '-in', file('broker.pem'), '-inkey', file('broker.key'), '-certfile', caFile, '-name', 'broker', '-out', keystoreFile, '-passout', 'env:LAKESTREAM_KEYSTORE_PASSWORD'], {
    env: { LAKESTREAM_KEYSTORE_PASSWORD: keystorePassword },
  });
  return { caFile, keystoreFile };
}
