import { createReadStream, statSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { createGunzip } from 'node:zlib';
import { errorMessage } from '../../core/errors.ts';
import { validateShopEvent, type ShopEvent } from '../../schemas/shop-events.ts';

/** The columns of the public "eCommerce events history in cosmetics shop" files, in their order. */
export const SHOP_CSV_COLUMNS = ['event_time', 'event_type', 'product_id', 'category_id', 'category_code', 'brand', 'price', 'user_id', 'user_session'] as const;

export type ParsedLine = { event: ShopEvent; reject?: undefined } | { event?: undefined; reject: string };

/** Splits one CSV line; a field in double quotes may hold commas and doubled quotes. */
export function splitCsv(line: string): string[] {
  if (!line.includes('"')) return line.split(',');
  const fields: string[] = [];
  let field = '';
  let quoted = false;
  for (let i = 0; i < line.length; i++) {
    const c = line[i]!;
    if (quoted) {
      if (c === '"' && line[i + 1] === '"') (field += '"'), i++;
      else if (c === '"') quoted = false;
      else field += c;
    } else if (c === '"') quoted = true;
    else if (c === ',') fields.push(field), (field = '');
    else field += c;
  }
  fields.push(field);
  return fields;
}

/** `2019-12-01 00:00:00 UTC` (the data set's form) or ISO 8601, to epoch ms; undefined if neither. */
export function parseEventTime(text: string): number | undefined {
  const match = /^(\d{4}-\d{2}-\d{2})[ T](\d{2}:\d{2}:\d{2}(?:\.\d+)?)(?: UTC|Z)?$/.exec(text.trim());
  if (!match) return undefined;
  const ms = Date.parse(`${match[1]}T${match[2]}Z`);
  return Number.isNaN(ms) ? undefined : ms;
}

const SAFE = BigInt(Number.MAX_SAFE_INTEGER);

/** A decimal 64-bit id, exact: a number while safe, a bigint beyond 2^53 (never a rounded number). */
function parseLong(text: string): number | bigint | undefined {
  if (!/^-?\d{1,19}$/.test(text)) return undefined;
  const value = BigInt(text);
  return value <= SAFE && value >= -SAFE ? Number(value) : value;
}

/**
 * One data line as a shop event, or the reason it cannot be one. What the real files hold:
 * empty category_code or brand become null (absent in the source, absent in the lake); an empty
 * user_session, a negative price, an unknown event type or a malformed value are rejected with
 * the field named; exact duplicate lines are kept (they are events the source recorded twice;
 * `sql/` can count them), so nothing is dropped or altered without a trace.
 */
export function parseShopLine(line: string): ParsedLine {
  const fields = splitCsv(line);
  if (fields.length !== SHOP_CSV_COLUMNS.length) return { reject: `expected ${SHOP_CSV_COLUMNS.length} columns, found ${fields.length}` };
  const [eventTime, eventType, productId, categoryId, categoryCode, brand, price, userId, userSession] = fields.map((f) => f.trim()) as string[];
  const event_time = parseEventTime(eventTime!);
  if (event_time === undefined) return { reject: `event_time: not a time like "2019-12-01 00:00:00 UTC": ${JSON.stringify(eventTime)}` };
  const longs: Record<string, number | bigint | undefined> = { product_id: parseLong(productId!), category_id: parseLong(categoryId!), user_id: parseLong(userId!) };
  for (const [name, value] of Object.entries(longs)) {
    if (value === undefined) return { reject: `${name}: not an integer: ${JSON.stringify(fields[SHOP_CSV_COLUMNS.indexOf(name as never)])}` };
  }
  const priceValue = price === '' ? Number.NaN : Number(price);
  const record = {
    event_time,
    event_type: eventType,
    product_id: longs.product_id,
    category_id: longs.category_id,
    category_code: categoryCode || null,
    brand: brand || null,
    price: priceValue,
    user_id: longs.user_id,
    user_session: userSession,
  };
  try {
    return { event: validateShopEvent(record) };
  } catch (error) {
    // the rules' message names the field and shows the record
    return { reject: errorMessage(error).replace(/^invalid shop event: /, '').replace(/ in \{.*$/, '') };
  }
}

export interface CsvLine {
  lineNumber: number;
  text: string;
  parsed: ParsedLine;
}

/**
 * Streams a data-set file (plain or .gz) line by line with bounded memory, checking the header.
 * `progress()` tells how far into the file (bytes of the file as stored) the reader is.
 */
export function readShopCsv(file: string): { lines: AsyncGenerator<CsvLine>; progress(): { bytesRead: number; bytesTotal: number } } {
  const raw = createReadStream(file, { highWaterMark: 256 * 1024 });
  const bytesTotal = statSync(file).size;
  const text = file.endsWith('.gz') ? raw.pipe(createGunzip()) : raw;
  raw.on('error', (error) => text.destroy(error));
  async function* lines(): AsyncGenerator<CsvLine> {
    let lineNumber = 0;
    for await (const line of createInterface({ input: text, crlfDelay: Infinity })) {
      lineNumber++;
      if (lineNumber === 1) {
        const header = splitCsv(line.replace(/^\uFEFF/, '')).map((h) => h.trim());
        if (header.join(',') !== SHOP_CSV_COLUMNS.join(',')) {
          throw new Error(`${file}: the first line is not the data set's header (${SHOP_CSV_COLUMNS.join(',')}): ${JSON.stringify(line.slice(0, 200))}`);
        }
        continue;
      }
      if (line.trim() === '') continue;
      yield { lineNumber, text: line, parsed: parseShopLine(line) };
    }
  }
  return { lines: lines(), progress: () => ({ bytesRead: raw.bytesRead, bytesTotal }) };
}
