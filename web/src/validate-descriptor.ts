/**
 * Stands in for @bufbuild/protovalidate's descriptor of buf/validate/validate.proto in the browser bundle
 * (see vite.config.ts). The generated code imports it only because the protos carry validation rules as
 * options; the browser never evaluates them (the service does), the options stay readable as unknown
 * fields, and resolving the import needs nothing but a file of that name. The real one is 71 kB.
 */
import { fileDesc, type GenFile } from "@bufbuild/protobuf/codegenv2";

/** An empty proto2 file named buf/validate/validate.proto, package buf.validate. */
export const file_buf_validate_validate: GenFile = fileDesc(
  "ChtidWYvdmFsaWRhdGUvdmFsaWRhdGUucHJvdG8SDGJ1Zi52YWxpZGF0ZWIGcHJvdG8y",
);
