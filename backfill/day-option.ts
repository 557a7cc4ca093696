import { LakestreamError } from '../core/errors.ts';

/**
 * Checks a `--<option> YYYY-MM-DD` value and returns it. A well-formed but impossible day
 * (2026-13-01, 2026-02-30) would match no partition and the command would quietly do nothing, so
 * it is refused like a malformed one.
 */
export function dayOption(option: string, value: string): string {
  const parsed = /^\d{4}-\d{2}-\d{2}$/.test(value) ? new Date(`${value}T00:00:00Z`) : undefined;
  // Date rolls 2026-02-30 over to March 2 instead of failing, so the round trip is what detects it.
  if (!parsed || Number.isNaN(parsed.getTime()) || parsed.toISOString().slice(0, 10) !== value) {
    throw new LakestreamError('USAGE', `--${option} must be a calendar day as YYYY-MM-DD, got ${JSON.stringify(value)}`, { context: { option, value } });
  }
  return value;
}
