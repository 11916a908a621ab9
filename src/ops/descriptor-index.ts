/**
 * The lookups server reflection answers, computed once from the services we serve: every file they need
 * (transitively), every fully-qualified name declared in those files, and every extension by the message it
 * extends. Built from protobuf-es descriptors, so it always matches the code that is actually running.
 */
import type { DescEnum, DescFile, DescMessage, DescService } from "@bufbuild/protobuf";
import { nestedTypes } from "@bufbuild/protobuf/reflect";

/** What reflection can look up. Files are keyed by their proto path (`user/v1/user.proto`). */
export interface DescriptorIndex {
  /** Fully-qualified names of the services, in the order given. */
  readonly services: readonly string[];
  file(path: string): DescFile | undefined;
  /** The file declaring a service, method, message, field, oneof, enum, enum value or extension. */
  fileOfSymbol(name: string): DescFile | undefined;
  fileOfExtension(extendee: string, fieldNumber: number): DescFile | undefined;
  /** Field numbers of the known extensions of a message; undefined when the message is not known. */
  extensionNumbers(extendee: string): number[] | undefined;
}

/**
 * The full names a message declares besides the nested types nestedTypes yields: fields, oneofs, and the
 * map entry messages protobuf-es hides but other tools ask for (`user.v1.User.LabelsEntry`).
 */
function memberNames(message: DescMessage): string[] {
  return [...message.fields, ...message.oneofs, ...message.proto.nestedType].map(
    (m) => `${message.typeName}.${m.name}`,
  );
}

/** Enum values are scoped like their enum, not inside it (`user.v1.ROLE_ADMIN`). */
function valueNames(e: DescEnum): string[] {
  const scope = e.typeName.slice(0, e.typeName.lastIndexOf(".") + 1);
  return e.values.map((v) => scope + v.name);
}

/** Indexes `services` and every file they depend on. */
export function createDescriptorIndex(services: readonly DescService[]): DescriptorIndex {
  const files = new Map<string, DescFile>();
  const symbols = new Map<string, DescFile>();
  const extensions = new Map<string, Map<number, DescFile>>();
  const messages = new Set<string>();

  const addFile = (file: DescFile) => {
    if (files.has(file.proto.name)) return;
    files.set(file.proto.name, file);
    for (const type of nestedTypes(file)) {
      symbols.set(type.typeName, file);
      if (type.kind === "message") {
        messages.add(type.typeName);
        for (const name of memberNames(type)) symbols.set(name, file);
      } else if (type.kind === "enum") {
        for (const name of valueNames(type)) symbols.set(name, file);
      } else if (type.kind === "service") {
        for (const method of type.methods) symbols.set(`${type.typeName}.${method.name}`, file);
      } else {
        const byNumber = extensions.get(type.extendee.typeName) ?? new Map<number, DescFile>();
        byNumber.set(type.number, file);
        extensions.set(type.extendee.typeName, byNumber);
      }
    }
    for (const dependency of file.dependencies) addFile(dependency);
  };
  for (const service of services) addFile(service.file);

  return {
    services: services.map((s) => s.typeName),
    file: (path) => files.get(path),
    fileOfSymbol: (name) => symbols.get(name),
    fileOfExtension: (extendee, fieldNumber) => extensions.get(extendee)?.get(fieldNumber),
    extensionNumbers: (extendee) =>
      messages.has(extendee) ? [...(extensions.get(extendee)?.keys() ?? [])] : undefined,
  };
}
