import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';

/** A JDK's major version, from its `release` file (or, failing that, its folder name). */
export function javaMajor(home: string): number {
  try {
    const version = /JAVA_VERSION="(\d+)/.exec(readFileSync(join(home, 'release'), 'utf8'));
    if (version) return Number(version[1]);
  } catch {
    // no release file: fall back to the folder name
  }
  // Debian and Temurin name their JDK folders java-17-openjdk-amd64, temurin-25-jdk-amd64, …
  const match = /(\d+)/.exec(home.split('/').pop() ?? '');
  return match ? Number(match[1]) : 0;
}

/** The newest JDK home of at least `minimum`: `explicit` if given, else the newest under /usr/lib/jvm. */
export function javaHome(minimum: number, explicit?: string): string | undefined {
  const root = '/usr/lib/jvm';
  const homes = explicit ? [explicit] : existsSync(root) ? readdirSync(root).map((name) => join(root, name)) : [];
  return homes
    .filter((home) => existsSync(join(home, 'bin', 'java')) && javaMajor(home) >= minimum)
    .sort((a, b) => javaMajor(b) - javaMajor(a))[0];
}

