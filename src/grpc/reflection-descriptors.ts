import type * as protoLoader from '@grpc/proto-loader';
import descriptors from 'protobufjs/ext/descriptor/index.js';

interface FieldProto {
  name: string;
  label?: number;
  type?: number;
  typeName?: string;
}
interface MessageProto {
  name: string;
  field: FieldProto[];
  nestedType: MessageProto[];
  options?: { mapEntry?: boolean };
}
interface FileProto {
  package?: string;
  messageType: MessageProto[];
}

/**
 * The package definition that server reflection serves, with every map field's entry message
 * named as protoc names it. proto-loader builds its file descriptors with protobufjs, which names
 * the entry of `map<…> statuses` `Statuses` where protoc (and every reflection client written over
 * protoc's descriptor rules: grpcurl, Go's protodesc) requires `StatusesEntry`; grpcurl then refuses
 * the whole file ("incorrect implicit map entry name"), and with it the health service.
 */
export function reflectionDefinition(definition: protoLoader.PackageDefinition): protoLoader.PackageDefinition {
  // proto-loader gives every symbol of a load the same file list: rewrite each file once.
  const rewritten = new Map<Buffer, Buffer>();
  const rewrite = (bytes: Buffer) => {
    let fixed = rewritten.get(bytes);
    if (!fixed) rewritten.set(bytes, (fixed = fixMapEntries(bytes)));
    return fixed;
  };
  // Messages and enums carry the files (reflection reads them there); services are kept as they are.
  return Object.fromEntries(
    Object.entries(definition).map(([name, symbol]) => [
      name,
      Array.isArray(symbol.fileDescriptorProtos) ? { ...symbol, fileDescriptorProtos: symbol.fileDescriptorProtos.map(rewrite) } : symbol,
    ]),
  ) as protoLoader.PackageDefinition;
}

function fixMapEntries(bytes: Buffer): Buffer {
  const { FileDescriptorProto } = descriptors;
  // Changed in place and encoded again: every other part of the file goes back as it came.
  const file = FileDescriptorProto.decode(bytes) as unknown as FileProto;
  const scope = file.package ? `.${file.package}` : '';
  for (const message of file.messageType) fixMessage(message, scope);
  return Buffer.from(FileDescriptorProto.encode(file).finish());
}

const LABEL_REPEATED = 3;
const TYPE_MESSAGE = 11;

/** Renames the map entries nested in `message` (and in its nested messages), `scope` its parent's full name. */
function fixMessage(message: MessageProto, scope: string): void {
  const fullName = `${scope}.${message.name}`;
  const entries = new Map(message.nestedType.filter((nested) => nested.options?.mapEntry).map((entry) => [entry.name, entry]));
  for (const field of message.field) {
    if (field.label !== LABEL_REPEATED || field.type !== TYPE_MESSAGE || !field.typeName) continue;
    // protobufjs writes the entry's name alone, relative to the message.
    const entry = entries.get(field.typeName.startsWith(`${fullName}.`) ? field.typeName.slice(fullName.length + 1) : field.typeName);
    if (!entry) continue;
    entry.name = mapEntryName(field.name);
    field.typeName = `${fullName}.${entry.name}`;
  }
  for (const nested of message.nestedType) fixMessage(nested, fullName);
}

/** protoc's name for the entry message of a map field: `foo_bar` → `FooBarEntry`. */
export function mapEntryName(fieldName: string): string {
  let name = '';
  let upper = true;
  for (const char of fieldName) {
    if (char === '_') upper = true;
    else {
      name += upper ? char.toUpperCase() : char;
      upper = false;
    }
  }
  return `${name}Entry`;
}
