// Package result defines the result record: the signed verdict of one
// verification, the domain type shared by glintd (which produces, signs and
// queues it) and glint-hub (which verifies, stores and serves it).
//
// A Record has two encodings. The signed form is deterministic CBOR (RFC 8949
// §4.2.1 core deterministic encoding via github.com/fxamacker/cbor/v2): the
// same record always yields the same bytes, so a signature can be checked
// against a re-encoding and two devices never disagree about what was signed.
// The JSON view (Record.JSON) is for people and HTTP APIs; it carries the
// same field names.
//
// The schema is versioned by the "v" field (SchemaVersion). Adding a field is
// a compatible change within a version: decoders ignore fields they do not
// know. Renaming or re-typing a field makes a new version. Every field is
// documented in docs/result-record.md.
package result
