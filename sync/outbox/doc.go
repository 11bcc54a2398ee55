// Package outbox is glintd's durable store-and-forward queue of signed
// results, on bbolt (go.etcd.io/bbolt).
//
// # Durability
//
// Put allocates the next sequence number, has the caller build and sign the
// record with it, and stores the envelope in one bbolt read-write
// transaction. bbolt commits by writing the dirty pages, fdatasync, then the
// meta page, fdatasync again; Put returns only after that commit. The kiosk
// is told the verdict only after Put returns, so every result a person was
// told about is on disk, whatever happens next (kill -9, power loss): after a
// crash bbolt opens at the last committed meta page, and a Put that had not
// returned either committed whole or left no trace. The sequence counter
// lives in the same transaction, so a seq is never reused, even after the
// entry is deleted.
//
// NoSync is never set; the database file is opened with mode 0600.
//
// # Ordering and deletion
//
// Entries are keyed by big-endian seq, so iteration is in seq order. An entry
// is deleted only by Ack, which the link calls on the hub's verified receipt
// for exactly that seq and record ID: never on an MQTT PUBACK.
//
// # Full policy
//
// The queue is bounded by MaxBytes of envelope payload (bbolt's file is
// larger: pages, freelist and free space that bbolt reuses but does not
// return to the file system, at most about twice MaxBytes). Nothing is ever
// dropped to make room. Instead:
//
//   - Admit, which glintd calls before starting a session, refuses
//     (ErrFull) once less than Headroom bytes are free, so new sessions are
//     refused with a clear status while results of sessions already running
//     still fit in the headroom;
//   - Put refuses (ErrFull) only when even the headroom is exhausted; the
//     kiosk is then told the result could not be recorded, never a verdict
//     that was not stored;
//   - from AlarmRatio (80 %) of MaxBytes the alarm is raised: Stats().Alarm,
//     the glint_outbox_alarm gauge and the link's status message.
package outbox
