import {
  createFileRegistry,
  fromBinary,
  toBinary,
  type DescFile,
  type FileRegistry,
} from '@bufbuild/protobuf';
import { FileDescriptorProtoSchema, FileDescriptorSetSchema } from '@bufbuild/protobuf/wkt';
import { status as Status } from '@grpc/grpc-js';
import type { reflectionV1 } from '@aether/proto';

type Request = reflectionV1.ServerReflectionRequest;
type Response = reflectionV1.ServerReflectionResponse;

/**
 * Answers server reflection (v1 and v1alpha share the wire format) from a complete descriptor set — a
 * `buf build` image that includes every import, google/protobuf well-known types too. That is what lets
 * `buf curl` and grpcurl resolve messages that use Timestamp or Struct, which reflection built from
 * proto-loader's partial descriptors cannot.
 */
export class ReflectionResponder {
  private readonly registry: FileRegistry;
  private readonly encoded = new Map<string, Buffer>();

  constructor(
    descriptorSet: Uint8Array,
    /** Fully qualified names of the services this server exposes. */
    private readonly services: () => string[],
  ) {
    this.registry = createFileRegistry(fromBinary(FileDescriptorSetSchema, descriptorSet));
  }

  respond(request: Request): Response {
    const base = { validHost: request.host, originalRequest: request };
    try {
      const q = request.messageRequest;
      switch (q?.$case) {
        case 'listServices':
          return {
            ...base,
            messageResponse: {
              $case: 'listServicesResponse',
              value: { service: this.services().map((name) => ({ name })) },
            },
          };
        case 'fileByFilename': {
          const file = this.registry.getFile(q.value);
          return file
            ? this.files(base, file)
            : this.error(base, Status.NOT_FOUND, `file not found: ${q.value}`);
        }
        case 'fileContainingSymbol': {
          const file = this.fileOfSymbol(q.value);
          return file
            ? this.files(base, file)
            : this.error(base, Status.NOT_FOUND, `symbol not found: ${q.value}`);
        }
        case 'fileContainingExtension': {
          const ext = this.registry.getExtensionFor(
            this.registry.getMessage(q.value.containingType) ?? (undefined as never),
            q.value.extensionNumber,
          );
          return ext ? this.files(base, ext.file) : this.error(base, Status.NOT_FOUND, 'extension not found');
        }
        case 'allExtensionNumbersOfType': {
          const msg = this.registry.getMessage(q.value);
          if (!msg) return this.error(base, Status.NOT_FOUND, `type not found: ${q.value}`);
          const numbers: number[] = [];
          for (const item of this.registry) {
            if (item.kind === 'extension' && item.extendee.typeName === msg.typeName)
              numbers.push(item.number);
          }
          return {
            ...base,
            messageResponse: {
              $case: 'allExtensionNumbersResponse',
              value: { baseTypeName: msg.typeName, extensionNumber: numbers },
            },
          };
        }
        default:
          return this.error(base, Status.INVALID_ARGUMENT, 'empty reflection request');
      }
    } catch (err) {
      return this.error(base, Status.INTERNAL, (err as Error).message);
    }
  }

  /** A symbol may be a type, a service, or a member of one (`pkg.Service.Method`, `pkg.Msg.field`). */
  private fileOfSymbol(symbol: string): DescFile | undefined {
    const found = this.registry.get(symbol);
    if (found) return found.file;
    const parent = symbol.slice(0, symbol.lastIndexOf('.'));
    const owner = parent ? this.registry.get(parent) : undefined;
    return owner?.file;
  }

  /** The file and all its transitive dependencies, dependencies first. */
  private files(base: Pick<Response, 'validHost' | 'originalRequest'>, file: DescFile): Response {
    const seen = new Set<string>();
    const out: Buffer[] = [];
    const visit = (f: DescFile): void => {
      if (seen.has(f.name)) return;
      seen.add(f.name);
      f.dependencies.forEach(visit);
      let bytes = this.encoded.get(f.name);
      if (!bytes) {
        bytes = Buffer.from(toBinary(FileDescriptorProtoSchema, f.proto));
        this.encoded.set(f.name, bytes);
      }
      out.push(bytes);
    };
    visit(file);
    return {
      ...base,
      messageResponse: { $case: 'fileDescriptorResponse', value: { fileDescriptorProto: out } },
    };
  }

  private error(
    base: Pick<Response, 'validHost' | 'originalRequest'>,
    code: Status,
    message: string,
  ): Response {
    return {
      ...base,
      messageResponse: { $case: 'errorResponse', value: { errorCode: code, errorMessage: message } },
    };
  }
}
