import { LakestreamError } from '../errors.ts';
import type { Column } from '../lake-layout.ts';

/**
 * Iceberg table schemas derived from the Avro value schemas. A lake table holds the Avro fields
 * in their order plus two columns computed from the event time, `dt` (UTC date) and `hour`
 * (0-23), which its partition spec uses as identity partitions: the same `dt`/`hour` columns the
 * SQL files have always grouped by.
 *
 * Field ids are what Iceberg (and every reader) matches columns by, so they are assigned once
 * per column name and never reused: an evolved Avro schema keeps the ids of the columns it
 * shares with the table and gets new ids above the table's `last-column-id` for new ones.
 */

export type IcebergPrimitive = 'int' | 'long' | 'float' | 'double' | 'string' | 'boolean' | 'binary' | 'date';

export interface IcebergField {
  id: number;
  name: string;
  required: boolean;
  type: IcebergPrimitive;
  doc?: string;
}

export interface IcebergSchema {
  type: 'struct';
  'schema-id': number;
  fields: IcebergField[];
  'identifier-field-ids'?: number[];
}

export const PARTITION_COLUMNS = ['dt', 'hour'] as const;

const icebergTypeOf: Record<Column['sqlType'] | 'DATE', IcebergPrimitive> = {
  INTEGER: 'int',
  BIGINT: 'long',
  FLOAT: 'float',
  DOUBLE: 'double',
  VARCHAR: 'string',
  BOOLEAN: 'boolean',
  BLOB: 'binary',
  DATE: 'date',
};

/** The DuckDB type of each Iceberg type the lake uses (the inverse of the mapping above). */
export const duckdbTypeOf: Record<IcebergPrimitive, string> = {
  int: 'INTEGER',
  long: 'BIGINT',
  float: 'FLOAT',
  double: 'DOUBLE',
  string: 'VARCHAR',
  boolean: 'BOOLEAN',
  binary: 'BLOB',
  date: 'DATE',
};

/** Type changes Iceberg allows in place (and Avro's schema resolution allows too). */
const widenings: Record<string, IcebergPrimitive[]> = { int: ['long'], float: ['double'] };

export function canWiden(from: IcebergPrimitive, to: IcebergPrimitive): boolean {
  return from === to || (widenings[from]?.includes(to) ?? false);
}

/** The table columns of a record schema's columns: the Avro fields, then dt and hour. */
export function tableColumns(columns: Column[]): Array<{ name: string; type: IcebergPrimitive; required: boolean }> {
  for (const name of PARTITION_COLUMNS) {
    if (columns.some((column) => column.name === name)) {
      throw new LakestreamError('USAGE', `field ${name}: the name is taken by the lake's partition column`);
    }
  }
  return [
    ...columns.map((column) => ({ name: column.name, type: icebergTypeOf[column.sqlType], required: !column.nullable })),
    { name: 'dt', type: 'date' as const, required: true },
    { name: 'hour', type: 'int' as const, required: true },
  ];
}

export interface SchemaChange {
  schema: IcebergSchema;
  lastColumnId: number;
  /** Whether the schema differs from `current` (and must be added to the table). */
  changed: boolean;
}

/**
 * The table schema that can hold rows of `columns`, evolved from `current` (absent for a new
 * table): shared names keep their ids, widened types (int→long, float→double) are updates, new
 * columns are optional. A column the table has but the record lacks stays in the schema (old
 * files keep it; new rows read it as null), and must be optional for that. Throws
 * SCHEMA_INCOMPATIBLE for a change Iceberg cannot make in place.
 */
export function evolveSchema(current: { schema: IcebergSchema; lastColumnId: number } | undefined, columns: Column[]): SchemaChange {
  const wanted = tableColumns(columns);
  if (!current) {
    const fields = wanted.map((column, index) => ({ id: index + 1, name: column.name, required: column.required, type: column.type }));
    return { schema: { type: 'struct', 'schema-id': 0, fields }, lastColumnId: fields.length, changed: true };
  }
  let lastColumnId = current.lastColumnId;
  let changed = false;
  const byName = new Map(current.schema.fields.map((field) => [field.name, field]));
  const fields: IcebergField[] = [];
  for (const field of current.schema.fields) {
    const column = wanted.find((c) => c.name === field.name);
    if (!column) {
      if (field.required) {
        throw new LakestreamError('SCHEMA_INCOMPATIBLE', `field ${field.name}: required in the table, missing from the record schema`, {
          context: { field: field.name },
        });
      }
      fields.push(field);
      continue;
    }
    // Rows of an older, narrower schema still fit a widened column; a wider record widens it.
    const fits = canWiden(column.type, field.type);
    if (!fits && !canWiden(field.type, column.type)) {
      throw new LakestreamError('SCHEMA_INCOMPATIBLE', `field ${field.name}: the table's ${field.type} cannot hold or become ${column.type}`, {
        context: { field: field.name },
      });
    }
    const type = fits ? field.type : column.type;
    // A required column may become optional; an optional one never becomes required again.
    const required = field.required && column.required;
    if (type !== field.type || required !== field.required) changed = true;
    fields.push({ ...field, type, required });
  }
  for (const column of wanted) {
    if (byName.has(column.name)) continue;
    changed = true;
    fields.push({ id: ++lastColumnId, name: column.name, required: false, type: column.type });
  }
  const schema: IcebergSchema = { type: 'struct', 'schema-id': changed ? current.schema['schema-id'] + 1 : current.schema['schema-id'], fields };
  return { schema, lastColumnId, changed };
}

/** The partition spec every lake table uses: identity on dt, then on hour. */
export function partitionSpec(schema: IcebergSchema) {
  const id = (name: string) => {
    const field = schema.fields.find((f) => f.name === name);
    if (!field) throw new LakestreamError('USAGE', `the table schema has no ${name} column`);
    return field.id;
  };
  return {
    'spec-id': 0,
    fields: [
      { name: 'dt', transform: 'identity', 'source-id': id('dt'), 'field-id': 1000 },
      { name: 'hour', transform: 'identity', 'source-id': id('hour'), 'field-id': 1001 },
    ],
  };
}
